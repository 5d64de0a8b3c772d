import Tensor

/// Differentiable augmentation (Zhao et al., 2020, "Differentiable Augmentation for
/// Data-Efficient GAN Training"): the same random transforms are applied to the real and the
/// generated images the discriminator sees, and gradients flow through them to the generator.
///
/// Parsed from a policy string such as `"color,translation,cutout"` (applied in that order;
/// `""` is the identity). Each transform draws per-image parameters from the key given to the
/// call, so the same key gives the same output:
/// - `color`: brightness x + b, b ~ U(−0.5, 0.5); saturation (x − μ_c)·s + μ_c with μ_c the mean
///   over channels at each pixel, s ~ U(0, 2); contrast (x − μ)·c + μ with μ the image mean,
///   c ~ U(0.5, 1.5).
/// - `translation`: shift by integers (dy, dx), each uniform in [−r, r] with r = round(side/8)
///   (4 at 32×32, as the reference code's ratio 1/8), zero fill.
/// - `cutout`: zero a square of round(side/2) pixels centred at a uniform position (it may be
///   cut by the border, as in the reference code).
/// Encoded (Codable) as its policy string.
public struct DiffAugment: Codable, Equatable, Sendable, CustomStringConvertible {
    public enum Transform: String, Codable, Sendable, CaseIterable { case color, translation, cutout }

    public let transforms: [Transform]

    public init(_ transforms: [Transform] = []) { self.transforms = transforms }

    /// Parses a comma-separated policy; surrounding spaces are ignored, unknown or empty words throw.
    public init(policy: String) throws {
        let trimmed = DiffAugment.trimmed(policy)
        guard !trimmed.isEmpty else { self.init([]); return }
        var list: [Transform] = []
        for word in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let name = DiffAugment.trimmed(word)
            guard let t = Transform(rawValue: name) else { throw DiffAugmentError.unknownTransform(name) }
            list.append(t)
        }
        self.init(list)
    }

    private static func trimmed<S: StringProtocol>(_ s: S) -> String {
        String(s.drop(while: { $0.isWhitespace }).reversed().drop(while: { $0.isWhitespace }).reversed())
    }

    /// The policy string (`"color,translation"`; `""` for none).
    public var policy: String { transforms.map(\.rawValue).joined(separator: ",") }
    public var description: String { policy }
    public var isIdentity: Bool { transforms.isEmpty }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        try self.init(policy: text)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(policy)
    }

    /// Augments images x [N, C, H, W]; differentiable w.r.t. x.
    public func callAsFunction(_ x: Tensor, key: RandomKey) -> Tensor {
        guard !transforms.isEmpty else { return x }
        precondition(x.rank == 4, "DiffAugment: input \(x.shape) must be [N, C, H, W]")
        var y = x
        for (i, t) in transforms.enumerated() {
            let k = key.fold(t.rawValue).fold(UInt64(i))
            switch t {
            case .color: y = DiffAugment.color(y, key: k)
            case .translation: y = DiffAugment.translation(y, key: k)
            case .cutout: y = DiffAugment.cutout(y, key: k)
            }
        }
        return y
    }

    /// Brightness, saturation, contrast, each with one random factor per image.
    static func color(_ x: Tensor, key: RandomKey) -> Tensor {
        let perImage = [x.shape[0], 1, 1, 1]
        let brightness = Tensor.uniform(perImage, low: -0.5, high: 0.5, key: key.fold("brightness"), dtype: x.dtype)
        var y = x + brightness
        let saturation = Tensor.uniform(perImage, low: 0, high: 2, key: key.fold("saturation"), dtype: x.dtype)
        let pixelMean = y.mean(axes: [1], keepingDims: true)
        y = (y - pixelMean) * saturation + pixelMean
        let contrast = Tensor.uniform(perImage, low: 0.5, high: 1.5, key: key.fold("contrast"), dtype: x.dtype)
        let imageMean = y.mean(axes: [1, 2, 3], keepingDims: true)
        return (y - imageMean) * contrast + imageMean
    }

    /// out[n, c, i, j] = x[n, c, i + dy_n, j + dx_n], zero outside: pad once, slice per image.
    static func translation(_ x: Tensor, key: RandomKey) -> Tensor {
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let rh = Int(Double(h) / 8 + 0.5), rw = Int(Double(w) / 8 + 0.5)
        guard rh > 0 || rw > 0 else { return x }
        var stream = RandomStream(key: key)
        let padded = x.padded([(0, 0), (0, 0), (rh, rh), (rw, rw)])
        var images: [Tensor] = []
        images.reserveCapacity(n)
        for i in 0..<n {
            let dy = stream.nextInt(below: 2 * rh + 1) - rh, dx = stream.nextInt(below: 2 * rw + 1) - rw
            images.append(padded.sliced(axis: 0, start: i, length: 1)
                .sliced(axis: 2, start: rh + dy, length: h)
                .sliced(axis: 3, start: rw + dx, length: w))
        }
        return Tensor.concat(images, axis: 0)
    }

    /// Multiplies each image by a 0/1 mask with one zeroed square (the same for all channels).
    static func cutout(_ x: Tensor, key: RandomKey) -> Tensor {
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let sh = Int(Double(h) / 2 + 0.5), sw = Int(Double(w) / 2 + 0.5)
        var stream = RandomStream(key: key)
        var mask = [Double](repeating: 1, count: n * h * w)
        for i in 0..<n {
            // centre in 0 ..< side + (1 − size mod 2), as the reference code's randint
            let cy = stream.nextInt(below: h + 1 - sh % 2), cx = stream.nextInt(below: w + 1 - sw % 2)
            let y0 = Swift.max(cy - sh / 2, 0), y1 = Swift.min(cy - sh / 2 + sh, h)
            let x0 = Swift.max(cx - sw / 2, 0), x1 = Swift.min(cx - sw / 2 + sw, w)
            guard y0 < y1, x0 < x1 else { continue }
            for r in y0..<y1 { for c in x0..<x1 { mask[(i * h + r) * w + c] = 0 } }
        }
        return x * Tensor(mask, shape: [n, 1, h, w], dtype: x.dtype)
    }
}

public enum DiffAugmentError: Error, CustomStringConvertible, Equatable {
    case unknownTransform(String)
    public var description: String {
        switch self {
        case .unknownTransform(let w):
            return "unknown DiffAugment transform '\(w)' (known: \(DiffAugment.Transform.allCases.map(\.rawValue).joined(separator: ", ")))"
        }
    }
}
