import Data
import Diffusion
import Foundation
import Models
import Tensor

/// The inpainting (reconstruction) attack (Carlini et al., 2023, §5.3; paper-spec §6, P10):
/// hide half of a target image, let the model fill it in many times, keep the completions the
/// model itself likes best (lowest denoising loss), and measure how close they come to the
/// hidden truth. A model that trained on the target reconstructs it; one that did not, guesses.
///
/// Completion is replacement-based (RePaint, Lugmayr et al., 2022): at every reverse step the
/// known half is overwritten with the true image noised to the same timestep, and with
/// `jumps` > 0 each step is redone after re-noising (resampling), which lets the generated
/// half agree with the known one.
public struct InpaintConfig: Codable, Equatable, Sendable {
    public enum Half: String, Codable, CaseIterable, Sendable { case left, right, top, bottom }
    /// The hidden half.
    public var hidden: Half = .right
    /// Stochastic DDIM (η = 1) over 50 steps by default; ancestral DDPM is `kind = .ddpm`.
    public var sampler = SamplerConfig(kind: .ddim, steps: 50, eta: 1, spacing: .trailing)
    public var jumps = 0
    /// Completions per target (paper: 5,000; P10: 64–256) and how many are kept by loss (10).
    public var count = 64
    public var keep = 10
    /// The loss used for ranking: timesteps and draws (common noise for all completions).
    public var rank = LossSignalConfig()
    public var seed: UInt64 = 0
    public var batchSize = 64
    public init() {}

    /// The attack as `eval inpaint` and a sweep's `[inpainting]` run it: stochastic DDIM
    /// (η = 1) over `steps`, the ranking loss at one timestep with its own noise draws.
    public init(hidden: Half, count: Int, keep: Int, steps: Int, jumps: Int, rankTimestep: Int, rankDraws: Int, seed: UInt64) {
        self.hidden = hidden; self.count = count; self.keep = min(keep, count); self.jumps = jumps; self.seed = seed
        sampler = SamplerConfig(kind: .ddim, steps: steps, eta: 1)
        rank.timesteps = [rankTimestep]; rank.draws = rankDraws; rank.seed = seed
    }

    /// 1 where the pixel is known, 0 where hidden, for a C×H×W image.
    public func knownMask(channels c: Int, height h: Int, width w: Int) -> [Float] {
        var m = [Float](repeating: 1, count: c * h * w)
        for ch in 0..<c { for y in 0..<h { for x in 0..<w {
            let hiddenPixel: Bool
            switch hidden {
            case .left: hiddenPixel = x < w / 2
            case .right: hiddenPixel = x >= w / 2
            case .top: hiddenPixel = y < h / 2
            case .bottom: hiddenPixel = y >= h / 2
            }
            if hiddenPixel { m[(ch * h + y) * w + x] = 0 }
        } } }
        return m
    }
}

/// One target's reconstruction by one model.
public struct InpaintOutcome: Codable, Equatable, Sendable {
    /// Normalized ℓ2 over the hidden pixels, completion vs truth, of every completion (in seed order).
    public var distances: [Double]
    /// Ranking loss of every completion.
    public var losses: [Double]
    /// Indices of the kept completions (lowest loss first).
    public var kept: [Int]
    /// Mean and minimum hidden-half distance of the kept completions.
    public var keptMean: Double
    public var keptMin: Double
    /// The best of all completions by distance (an oracle, for reference only).
    public var oracleMin: Double
}

public enum Inpainting {
    /// Completes the hidden half of `target` (uint8 C×H×W) `config.count` times with the ε
    /// predictor `model(x_t, t)`; returns the completions as uint8 images and the outcome.
    /// `targetID` keys the random streams, so every model sees the same noise for a target.
    public static func attack(model: (Tensor, [Int]) -> Tensor, process: GaussianDiffusion, target: ArraySlice<UInt8>,
                              channels c: Int, height h: Int, width w: Int, targetID: Int, config: InpaintConfig)
        -> (completions: ImageSet, outcome: InpaintOutcome)
    {
        let single = ImageSet(images: Array(target), labels: [0], channels: c, height: h, width: w, classNames: [])
        let x0 = single.tensor()
        let known = config.knownMask(channels: c, height: h, width: w)
        let mask = Tensor(known, shape: [1, c, h, w]), inverse = Tensor(known.map { 1 - $0 }, shape: [1, c, h, w])
        let shape = [c, h, w]
        let key = RandomKey(seed: config.seed).fold("inpaint").fold(UInt64(targetID))
        let schedule = config.sampler.timesteps(total: process.timesteps)
        var images: [UInt8] = []
        for start in stride(from: 0, to: config.count, by: max(1, config.batchSize)) {
            let idx = Array(start..<min(config.count, start + config.batchSize))
            let keys = idx.map { key.fold(UInt64($0)) }
            let n = idx.count
            let truth = Tensor.concat([Tensor](repeating: x0, count: n), axis: 0)
            var x = stack(keys.map { Tensor.normal(shape, key: $0.fold("x_T")) })
            withoutGradient {
                for (k, t) in schedule.enumerated() {
                    let prev = k + 1 < schedule.count ? schedule[k + 1] : -1
                    for jump in 0...max(0, prev >= 0 ? config.jumps : 0) {
                        let tag = UInt64(t) << 8 | UInt64(jump)
                        let eps = model(x, [Int](repeating: t, count: n))
                        let noise = stack(keys.map { Tensor.normal(shape, key: $0.fold("step").fold(tag)) })
                        let unknown = process.step(x, eps: eps, t: t, prev: prev, sampler: config.sampler, noise: noise)
                        let knownPart: Tensor
                        if prev >= 0 {
                            let kn = stack(keys.map { Tensor.normal(shape, key: $0.fold("known").fold(tag)) })
                            knownPart = process.qSample(truth, t: [Int](repeating: prev, count: n), noise: kn)
                        } else { knownPart = truth }
                        x = knownPart * mask + unknown * inverse
                        if jump < (prev >= 0 ? config.jumps : 0) {
                            // re-noise x_prev back to x_t: q(x_t | x_prev) = N(√(ᾱ_t/ᾱ_prev) x_prev, (1 − ᾱ_t/ᾱ_prev) I)
                            let ratio = process.alphasCumprod[t] / process.alphasCumprod[prev]
                            let rn = stack(keys.map { Tensor.normal(shape, key: $0.fold("jump").fold(tag)) })
                            x = x * ratio.squareRoot() + rn * (1 - ratio).squareRoot()
                        }
                    }
                }
            }
            images += x.imageBytes()
        }
        let completions = ImageSet(images: images, labels: [Int](repeating: 0, count: config.count), channels: c, height: h, width: w, classNames: [])
        // the model's own loss on every completion, with the same noise for all of them
        var losses: [Double] = []
        let q = config.rank.queries
        for start in stride(from: 0, to: config.count, by: max(1, config.batchSize)) {
            let idx = Array(start..<min(config.count, start + config.batchSize))
            let v = DiffusionSignals.losses(predict: { x, t, _ in model(x, t) }, process: process, images: completions.subset(idx),
                                            ids: [Int](repeating: targetID, count: idx.count), config: config.rank)
            for j in idx.indices { losses.append((0..<q).reduce(0) { $0 + v[j * q + $1] } / Double(q)) }
        }
        let hiddenIdx = known.indices.filter { known[$0] == 0 }
        let truthBytes = Array(target)
        let distances = (0..<config.count).map { i -> Double in
            let img = completions.image(i)
            var s = 0.0
            for p in hiddenIdx { let d = Double(Int(img[img.startIndex + p]) - Int(truthBytes[p])); s += d * d }
            return (s / Double(max(hiddenIdx.count, 1))).squareRoot() / 255
        }
        let kept = Array((0..<config.count).sorted { (losses[$0], $0) < (losses[$1], $1) }.prefix(config.keep))
        let keptD = kept.map { distances[$0] }
        return (completions, InpaintOutcome(distances: distances, losses: losses, kept: kept,
                                            keptMean: keptD.reduce(0, +) / Double(max(keptD.count, 1)), keptMin: keptD.min() ?? .nan,
                                            oracleMin: distances.min() ?? .nan))
    }
}
