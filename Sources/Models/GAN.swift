import Foundation
import NN
import Tensor

/// The shape of a DCGAN-style generator / discriminator pair (Radford et al., 2016), with the
/// variants used in the memorization experiments: a discriminator with BatchNorm (the classic
/// DCGAN), GroupNorm (per-example, so usable with DP-SGD) or no normalization; spectral
/// normalization of every discriminator weight (Miyato et al., 2018, SNGAN); and class
/// conditioning (conditional BatchNorm in the generator, projection discriminator; Miyato &
/// Koyama, 2018).
///
/// The generator starts at base = imageSize / 2^stages (4×4 for 32 with 3 stages, 7×7 for 28
/// with 2) with `generatorChannels` channels, halved after each of the `stages` ×2
/// upsamplings (256 → 128 → 64 → 32). The discriminator has `stages` stride-2 4×4 convs with
/// `discriminatorChannels` channels first, doubled per conv (64 → 128 → 256), ending at base.
public struct GANConfig: Codable, Equatable, Sendable {
    public var latentDim: Int
    public var imageChannels: Int
    public var imageSize: Int
    public var stages: Int
    public var generatorChannels: Int
    public var discriminatorChannels: Int
    /// Normalization after every discriminator conv but the first: "batch", "group" or "none"
    /// (convs carry a bias only with "none", as in the PyTorch reference).
    public var discriminatorNorm: String
    /// GroupNorm groups (discriminatorNorm "group").
    public var groups: Int
    public var spectralNorm: Bool
    public var powerIterations: Int
    /// Number of classes for class conditioning (0: unconditional).
    public var classes: Int

    public init(latentDim: Int = 128, imageChannels: Int = 3, imageSize: Int = 32, stages: Int = 3, generatorChannels: Int = 256,
                discriminatorChannels: Int = 64, discriminatorNorm: String = "batch", groups: Int = 8, spectralNorm: Bool = false,
                powerIterations: Int = 1, classes: Int = 0) {
        self.latentDim = latentDim; self.imageChannels = imageChannels; self.imageSize = imageSize; self.stages = stages
        self.generatorChannels = generatorChannels; self.discriminatorChannels = discriminatorChannels
        self.discriminatorNorm = discriminatorNorm; self.groups = groups; self.spectralNorm = spectralNorm
        self.powerIterations = powerIterations; self.classes = classes
    }

    public static let normKinds = ["batch", "group", "none"]

    /// `dcgan-32`: reference-models.md B (G 1,218,339 parameters, 53.15 MFLOP; D with BatchNorm
    /// 663,361 parameters, 35.14 MFLOP).
    public static let dcgan32 = GANConfig()
    /// `dcgan-32-nobn`: D without normalization, convs with bias (662,977 parameters).
    public static let dcgan32NoBN = GANConfig(discriminatorNorm: "none")
    /// `dcgan-32-gn`: D with GroupNorm(8) (per-example, for DP-SGD).
    public static let dcgan32GN = GANConfig(discriminatorNorm: "group")
    /// `sngan-32`: D with spectral normalization on every conv and the linear layer, no
    /// normalization layers, convs with bias (662,977 parameters).
    public static let sngan32 = GANConfig(discriminatorNorm: "none", spectralNorm: true)

    /// `dcgan-xs`: the sweep preset (issue 14), unet-xs's GAN counterpart: half the
    /// generator's and the discriminator's widths and a 64-d latent (G 128 → 64 → 32 → 16,
    /// D 32 → 64 → 128, BatchNorm D); a quarter of dcgan-32's arithmetic.
    public static let dcganXS = GANConfig(latentDim: 64, generatorChannels: 128, discriminatorChannels: 32)

    public static let presetNames = ["dcgan-xs", "dcgan-32", "dcgan-32-nobn", "dcgan-32-gn", "sngan-32"]

    public static func preset(_ name: String) -> GANConfig? {
        switch name {
        case "dcgan-xs": return .dcganXS
        case "dcgan-32": return .dcgan32
        case "dcgan-32-nobn": return .dcgan32NoBN
        case "dcgan-32-gn": return .dcgan32GN
        case "sngan-32": return .sngan32
        default: return nil
        }
    }

    /// Side of the generator's first and the discriminator's last feature map.
    public var baseSize: Int { imageSize >> stages }
    /// Generator channels at each resolution, base first (stages + 1 entries: 256, 128, 64, 32).
    public var generatorWidths: [Int] { (0...stages).map { generatorChannels >> $0 } }
    /// Output channels of each discriminator conv (64, 128, 256).
    public var discriminatorWidths: [Int] { (0..<stages).map { discriminatorChannels << $0 } }
    /// Length of the flattened discriminator features (256·4·4 = 4096).
    public var discriminatorFeatures: Int { discriminatorWidths.last! * baseSize * baseSize }

    /// Checks the configuration; the error names the offending field (snake_case, as in TOML).
    public func validate() throws {
        func fail(_ key: String, _ m: String) -> GANError { .invalidConfig(key: key, message: m) }
        guard latentDim >= 1 else { throw fail("latent_dim", "must be ≥ 1, got \(latentDim)") }
        guard imageChannels >= 1 else { throw fail("image_channels", "must be ≥ 1, got \(imageChannels)") }
        guard stages >= 1 && stages <= 8 else { throw fail("stages", "must be in 1…8, got \(stages)") }
        let factor = 1 << stages
        guard imageSize >= factor && imageSize % factor == 0 else {
            throw fail("image_size", "\(imageSize) must be divisible by 2^stages = \(factor) for \(stages) stages")
        }
        guard generatorChannels >= factor && generatorChannels % factor == 0 else {
            throw fail("generator_channels", "\(generatorChannels) must be a positive multiple of 2^stages = \(factor) (it is halved at each of the \(stages) stages)")
        }
        guard discriminatorChannels >= 1 && discriminatorChannels <= (1 << 20) >> stages else {
            throw fail("discriminator_channels", "must be in 1…\((1 << 20) >> stages), got \(discriminatorChannels)")
        }
        guard GANConfig.normKinds.contains(discriminatorNorm) else {
            throw fail("discriminator_norm", "must be one of \(GANConfig.normKinds.joined(separator: ", ")), got \"\(discriminatorNorm)\"")
        }
        guard groups >= 1 else { throw fail("groups", "must be ≥ 1, got \(groups)") }
        if discriminatorNorm == "group" {
            for c in discriminatorWidths.dropFirst() where c % groups != 0 {
                throw fail("groups", "\(groups) does not divide the \(c) channels of a discriminator conv")
            }
        }
        guard powerIterations >= 1 else { throw fail("power_iterations", "must be ≥ 1, got \(powerIterations)") }
        guard classes >= 0 else { throw fail("classes", "must be ≥ 0, got \(classes)") }
    }
}

public enum GANError: Error, CustomStringConvertible, Equatable {
    case invalidConfig(key: String, message: String)
    public var description: String {
        switch self { case .invalidConfig(let key, let message): return "\(key): \(message)" }
    }
}

// MARK: - initialisation (Radford et al., 2016)

/// DCGAN's initialisation: weights N(0, 0.02), biases 0.
private func dcganWeight(_ t: Tensor, key: RandomKey) {
    t.assign(Tensor.normal(t.shape, std: 0.02, key: key.fold("dcgan-init"), dtype: t.dtype))
}

private func dcganConv(_ cin: Int, _ cout: Int, kernel: Int, stride: Int, padding: Int, bias: Bool, key: RandomKey, dtype: DType) -> Conv2d {
    let conv = Conv2d(cin, cout, kernel: kernel, stride: stride, padding: padding, bias: bias, key: key, dtype: dtype)
    dcganWeight(conv.weight, key: key); conv.bias?.fill(0)
    return conv
}

private func dcganLinear(_ fin: Int, _ fout: Int, key: RandomKey, dtype: DType) -> Linear {
    let linear = Linear(fin, fout, key: key, dtype: dtype)
    dcganWeight(linear.weight, key: key); linear.bias?.fill(0)
    return linear
}

/// BatchNorm with γ ~ N(1, 0.02), β = 0.
private func dcganBatchNorm(_ channels: Int, key: RandomKey, dtype: DType) -> BatchNorm {
    let bn = BatchNorm(channels: channels, dtype: dtype)
    bn.weight!.assign(Tensor.normal([channels], mean: 1, std: 0.02, key: key.fold("dcgan-init"), dtype: dtype))
    return bn
}

/// BatchNorm(x), or conditional BatchNorm(x, labels), or GroupNorm(x), then `activation`
/// (fused into BatchNorm's pass in training).
private func normalize(_ norm: Module, _ x: Tensor, labels: [Int]?, then activation: NormActivation) -> Tensor {
    switch norm {
    case let bn as BatchNorm: return bn(x, activation: activation)
    case let cbn as ConditionalBatchNorm:
        guard let labels else { preconditionFailure("GAN: a class-conditional model needs labels") }
        return cbn(x, labels: labels).activated(activation)
    case let gn as GroupNorm: return gn(x).activated(activation)
    default: preconditionFailure("GAN: unexpected normalization \(type(of: norm))")
    }
}

/// PyTorch's state_dict suffix for one of our tensor names.
private func torchSuffix(_ name: String, spectral: Bool) -> String? {
    switch name {
    case "weight": return spectral ? "weight_orig" : "weight"
    case "bias": return "bias"
    case "runningMean": return "running_mean"
    case "runningVar": return "running_var"
    case "u": return "weight_u"
    case "v": return "weight_v"
    default: return nil
    }
}

// MARK: - generator

/// The DCGAN generator: z [N, latentDim] → Linear → [N, C₀, b, b] → BN → ReLU, then `stages` ×
/// (ConvTranspose 4×4 stride 2 pad 1, no bias → BN → ReLU), then Conv 3×3 pad 1 (bias) → tanh,
/// images in [−1, 1]. With `classes > 0` every BN is a `ConditionalBatchNorm`.
///
/// Tensor names and their PyTorch counterparts (bench/models_torch.py `DCGANGenerator`, same
/// layouts: linear [out, in], conv-transpose [in, out, k, k], conv [out, in, k, k]);
/// `torchStateDictNames()` returns this map for a given model:
///
/// | here | PyTorch |
/// |---|---|
/// | `projection.weight`, `projection.bias` | `fc.weight`, `fc.bias` |
/// | `projectionNorm.{weight, bias, runningMean, runningVar}` | `bn0.{weight, bias, running_mean, running_var}` |
/// | `upsamplers.i.weight` | `net.{3i}.weight` |
/// | `upsampleNorms.i.…` | `net.{3i+1}.…` |
/// | `outputConv.{weight, bias}` | `net.{3·stages}.{weight, bias}` (net.9 for dcgan-32) |
///
/// Conditional models name their norms `….norm.{runningMean, runningVar}`, `….gamma`, `….beta`
/// (no PyTorch counterpart). PyTorch's `num_batches_tracked` has none here.
public final class DCGANGenerator: Module {
    public let config: GANConfig
    public let projection: Linear
    public let projectionNorm: Module             // BatchNorm or ConditionalBatchNorm
    public let upsamplers: [ConvTranspose2d]
    public let upsampleNorms: [Module]            // BatchNorm or ConditionalBatchNorm
    public let outputConv: Conv2d

    /// `dtype` .float64 builds a Double model (for gradient checks).
    public init(_ c: GANConfig, key: RandomKey, dtype: DType = .float32) throws {
        try c.validate()
        config = c
        let widths = c.generatorWidths, b = c.baseSize
        func norm(_ channels: Int, _ k: RandomKey) -> Module {
            c.classes > 0 ? ConditionalBatchNorm(channels: channels, classes: c.classes, dtype: dtype)
                          : dcganBatchNorm(channels, key: k, dtype: dtype)
        }
        projection = dcganLinear(c.latentDim, widths[0] * b * b, key: key.fold("projection"), dtype: dtype)
        projectionNorm = norm(widths[0], key.fold("projection-norm"))
        upsamplers = (0..<c.stages).map { i in
            let k = key.fold("upsample").fold(UInt64(i))
            let convT = ConvTranspose2d(widths[i], widths[i + 1], kernel: 4, stride: 2, padding: 1, bias: false, key: k, dtype: dtype)
            dcganWeight(convT.weight, key: k)
            return convT
        }
        upsampleNorms = (0..<c.stages).map { norm(widths[$0 + 1], key.fold("upsample-norm").fold(UInt64($0))) }
        outputConv = dcganConv(widths[c.stages], c.imageChannels, kernel: 3, stride: 1, padding: 1, bias: true,
                               key: key.fold("output"), dtype: dtype)
    }

    /// Standard normal latents [count, latentDim].
    public func sampleLatents(_ count: Int, key: RandomKey, dtype: DType = .float32) -> Tensor {
        Tensor.normal([count, config.latentDim], key: key, dtype: dtype)
    }

    /// Images [N, C, H, W] in [−1, 1] for latents z [N, latentDim]; `labels` (0..<classes, one
    /// per row) are required when the model is class-conditional and ignored otherwise.
    public func callAsFunction(_ z: Tensor, labels: [Int]? = nil) -> Tensor {
        let c = config
        precondition(z.rank == 2 && z.shape[1] == c.latentDim, "DCGANGenerator: latents \(z.shape) must be [N, \(c.latentDim)]")
        if c.classes > 0 {
            precondition(labels?.count == z.shape[0], "DCGANGenerator: needs one label per latent (\(z.shape[0])), got \(labels?.count ?? 0)")
        }
        let conditioning = c.classes > 0 ? labels : nil
        var h = projection(z).reshaped([z.shape[0], c.generatorWidths[0], c.baseSize, c.baseSize])
        h = normalize(projectionNorm, h, labels: conditioning, then: .relu)
        for (convT, norm) in zip(upsamplers, upsampleNorms) {
            h = normalize(norm, convT(h), labels: conditioning, then: .relu)
        }
        return outputConv(h).tanh()
    }

    /// Forward FLOPs per image: 2 × multiply–adds of the linear, conv-transpose and conv layers
    /// (norms and activations not counted), as PyTorch's FlopCounterMode counts them
    /// (53,149,696 for dcgan-32).
    public var forwardFLOPs: Int {
        let c = config, w = c.generatorWidths
        var flops = 2 * c.latentDim * w[0] * c.baseSize * c.baseSize
        for i in 0..<c.stages {
            let inputSide = c.baseSize << i
            flops += 2 * w[i] * w[i + 1] * 16 * inputSide * inputSide
        }
        return flops + 2 * w[c.stages] * c.imageChannels * 9 * c.imageSize * c.imageSize
    }

    /// Our tensor names → PyTorch `DCGANGenerator` state_dict names (conditional norms omitted).
    public func torchStateDictNames() -> [String: String] {
        var map: [String: String] = [:]
        func add(_ module: Module, ours: String, theirs: String) {
            for (name, _) in module.state() {
                if let s = torchSuffix(name, spectral: false) { map["\(ours).\(name)"] = "\(theirs).\(s)" }
            }
        }
        add(projection, ours: "projection", theirs: "fc")
        add(projectionNorm, ours: "projectionNorm", theirs: "bn0")
        for i in 0..<config.stages {
            add(upsamplers[i], ours: "upsamplers.\(i)", theirs: "net.\(3 * i)")
            add(upsampleNorms[i], ours: "upsampleNorms.\(i)", theirs: "net.\(3 * i + 1)")
        }
        add(outputConv, ours: "outputConv", theirs: "net.\(3 * config.stages)")
        return map
    }

    public func describe() -> String {
        let c = config
        return [
            "DCGAN generator z=\(c.latentDim) → \(c.generatorWidths[0])×\(c.baseSize)×\(c.baseSize) → "
                + c.generatorWidths.dropFirst().map(String.init).joined(separator: " → ")
                + " → \(c.imageChannels)×\(c.imageSize)×\(c.imageSize) tanh" + (c.classes > 0 ? ", conditional BN (\(c.classes) classes)" : ""),
            "parameters: \(parameterCount)",
            String(format: "forward: %.2f MFLOP per image (%d)", Double(forwardFLOPs) / 1e6, forwardFLOPs),
        ].joined(separator: "\n")
    }
}

// MARK: - discriminator

/// The DCGAN discriminator: `stages` × Conv 4×4 stride 2 pad 1 with LeakyReLU(0.2), the first
/// with a bias and no normalization, the others followed by BatchNorm / GroupNorm (no conv
/// bias) or nothing (conv bias); then flatten (C, H, W order) → Linear(features, 1): one logit
/// per example, [N]. With `spectralNorm`, every conv and the linear layer (and the projection
/// embedding) use W/σ̂ (`SpectralNormConv2d` etc.). With `classes > 0` it is a projection
/// discriminator (Miyato & Koyama, 2018): logit = linear(h) + ⟨embed(y), h⟩ on the flattened
/// features h, embed [classes, features] initialised N(0, 0.02).
///
/// Names and their PyTorch counterparts (bench/models_torch.py `DCGANDiscriminator`; conv
/// weights [out, in, k, k], linear [1, features]); `torchStateDictNames()` returns the map:
///
/// | here | PyTorch |
/// |---|---|
/// | `convs.0.{weight, bias}` | `net.0.{weight, bias}` |
/// | `convs.i.weight` (i ≥ 1; `.bias` without norm) | `net.{3i−1}.…` (net.2, net.5) |
/// | `norms.{i−1}.{weight, bias, runningMean, runningVar}` | `net.{3i}.…` (net.3, net.6) |
/// | `linear.{weight, bias}` | `net.{3·stages}.…` (net.9) |
/// | spectral norm: `….weight`, `….u`, `….v` | `….weight_orig`, `….weight_u`, `….weight_v` (`torch.nn.utils.spectral_norm`) |
///
/// `projection.weight` (and its `u`, `v`) has no PyTorch counterpart.
public final class DCGANDiscriminator: Module {
    public let config: GANConfig
    public let convs: [Module]          // Conv2d or SpectralNormConv2d
    public let norms: [Module]          // BatchNorm or GroupNorm, one per conv after the first (none for "none")
    public let linear: Module           // Linear or SpectralNormLinear
    public let projection: Module?      // Embedding or SpectralNormEmbedding (classes > 0)

    public init(_ c: GANConfig, key: RandomKey, dtype: DType = .float32) throws {
        try c.validate()
        config = c
        let widths = c.discriminatorWidths
        let hasNorm = c.discriminatorNorm != "none"
        var convs: [Module] = [], norms: [Module] = []
        for i in 0..<c.stages {
            let k = key.fold("conv").fold(UInt64(i))
            let conv = dcganConv(i == 0 ? c.imageChannels : widths[i - 1], widths[i], kernel: 4, stride: 2, padding: 1,
                                 bias: i == 0 || !hasNorm, key: k, dtype: dtype)
            convs.append(c.spectralNorm
                ? SpectralNormConv2d(weight: conv.weight, bias: conv.bias, stride: 2, padding: 1, powerIterations: c.powerIterations, key: k.fold("sn"))
                : conv)
            if i > 0 && hasNorm {
                norms.append(c.discriminatorNorm == "batch"
                    ? dcganBatchNorm(widths[i], key: key.fold("norm").fold(UInt64(i)), dtype: dtype)
                    : GroupNorm(groups: c.groups, channels: widths[i], dtype: dtype))
            }
        }
        self.convs = convs; self.norms = norms
        let lin = dcganLinear(c.discriminatorFeatures, 1, key: key.fold("linear"), dtype: dtype)
        linear = c.spectralNorm
            ? SpectralNormLinear(weight: lin.weight, bias: lin.bias, powerIterations: c.powerIterations, key: key.fold("linear").fold("sn"))
            : lin
        if c.classes > 0 {
            let k = key.fold("projection")
            let table = Tensor.normal([c.classes, c.discriminatorFeatures], std: 0.02, key: k.fold("dcgan-init"), dtype: dtype)
            if c.spectralNorm {
                projection = SpectralNormEmbedding(weight: table, powerIterations: c.powerIterations, key: k.fold("sn"))
            } else {
                let e = Embedding(vocabulary: c.classes, dimension: c.discriminatorFeatures, key: k, dtype: dtype)
                e.weight.assign(table)
                projection = e
            }
        } else {
            projection = nil
        }
    }

    /// Logits [N] for images x [N, C, H, W]; `labels` (0..<classes, one per image) are required
    /// when the model is class-conditional and ignored otherwise.
    public func callAsFunction(_ x: Tensor, labels: [Int]? = nil) -> Tensor {
        let c = config
        precondition(x.rank == 4 && x.shape[1] == c.imageChannels && x.shape[2] == c.imageSize && x.shape[3] == c.imageSize,
                     "DCGANDiscriminator: input \(x.shape) does not match [N, \(c.imageChannels), \(c.imageSize), \(c.imageSize)]")
        let n = x.shape[0]
        var h = x
        for (i, conv) in convs.enumerated() {
            h = (conv as! any Layer)(h)
            if i > 0 && !norms.isEmpty { h = normalize(norms[i - 1], h, labels: nil, then: .leakyRelu(slope: 0.2)) }
            else { h = h.leakyRelu(slope: 0.2) }
        }
        let features = h.flattened(from: 1)                              // [N, F], (C, H, W) order
        var logits = (linear as! any Layer)(features).reshaped([n])
        if let projection {
            guard let labels, labels.count == n else {
                preconditionFailure("DCGANDiscriminator: needs one label per image (\(n)), got \(labels?.count ?? 0)")
            }
            for l in labels { precondition(l >= 0 && l < c.classes, "DCGANDiscriminator: label \(l) outside 0..<\(c.classes)") }
            let embedded: Tensor
            switch projection {
            case let e as Embedding: embedded = e(labels)
            case let e as SpectralNormEmbedding: embedded = e(labels)
            default: preconditionFailure("DCGANDiscriminator: unexpected projection \(type(of: projection))")
            }
            logits = logits + (embedded * features).sum(axes: [1])
        }
        return logits
    }

    /// Forward FLOPs per image: 2 × multiply–adds of the convs and the linear layer (norms,
    /// activations, the projection's inner product and the spectral-norm power iteration not
    /// counted), as PyTorch's FlopCounterMode counts them (35,135,488 for dcgan-32).
    public var forwardFLOPs: Int {
        let c = config, w = c.discriminatorWidths
        var flops = 0
        for i in 0..<c.stages {
            let outputSide = c.imageSize >> (i + 1)
            flops += 2 * (i == 0 ? c.imageChannels : w[i - 1]) * w[i] * 16 * outputSide * outputSide
        }
        return flops + 2 * c.discriminatorFeatures
    }

    /// Our tensor names → PyTorch `DCGANDiscriminator` state_dict names (spectral-norm layers
    /// as `torch.nn.utils.spectral_norm` names them; the projection omitted).
    public func torchStateDictNames() -> [String: String] {
        var map: [String: String] = [:]
        func add(_ module: Module, ours: String, theirs: String) {
            let spectral = module is SpectralNormConv2d || module is SpectralNormLinear
            for (name, _) in module.state() {
                if let s = torchSuffix(name, spectral: spectral) { map["\(ours).\(name)"] = "\(theirs).\(s)" }
            }
        }
        for (i, conv) in convs.enumerated() { add(conv, ours: "convs.\(i)", theirs: "net.\(i == 0 ? 0 : 3 * i - 1)") }
        for (j, norm) in norms.enumerated() { add(norm, ours: "norms.\(j)", theirs: "net.\(3 * (j + 1))") }
        add(linear, ours: "linear", theirs: "net.\(3 * config.stages)")
        return map
    }

    public func describe() -> String {
        let c = config
        var kind = c.discriminatorNorm == "none" ? "no norm" : "\(c.discriminatorNorm) norm"
        if c.spectralNorm { kind += ", spectral norm (\(c.powerIterations) power iteration\(c.powerIterations == 1 ? "" : "s"))" }
        if c.classes > 0 { kind += ", projection (\(c.classes) classes)" }
        return [
            "DCGAN discriminator \(c.imageChannels)×\(c.imageSize)×\(c.imageSize) → "
                + c.discriminatorWidths.map(String.init).joined(separator: " → ")
                + " (\(c.baseSize)×\(c.baseSize)) → linear 1; \(kind)",
            "parameters: \(parameterCount)",
            String(format: "forward: %.2f MFLOP per image (%d)", Double(forwardFLOPs) / 1e6, forwardFLOPs),
        ].joined(separator: "\n")
    }
}
