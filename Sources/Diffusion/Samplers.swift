import Foundation
import Models
import Tensor

/// How sampling walks back from x_T: ancestral DDPM over all T steps (Ho et al., 2020,
/// Alg. 2, with the posterior variance β̃_t), or DDIM (Song et al., 2021) over a subset of
/// `steps` timesteps chosen by `spacing`, with stochasticity η. The predicted x̂₀ is
/// clipped to [−1, 1] at every step (as in the DDPM and improved-diffusion code).
/// Classifier-free guidance (Ho & Salimans, 2022): ε = ε_∅ + s·(ε_y − ε_∅) with scale s
/// (s = 1: plain conditional; used only for class-conditional models).
public struct SamplerConfig: Codable, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Codable, Sendable { case ddpm, ddim }
    public enum Spacing: String, Codable, Sendable { case linspace, leading, trailing }
    public var kind: Kind
    public var steps: Int
    public var eta: Double
    public var spacing: Spacing
    public var guidance: Double

    public init(kind: Kind = .ddim, steps: Int = 50, eta: Double = 0, spacing: Spacing = .trailing, guidance: Double = 1) {
        self.kind = kind; self.steps = steps; self.eta = eta; self.spacing = spacing; self.guidance = guidance
    }

    public var description: String {
        kind == .ddpm ? "ddpm(T steps, posterior variance, clip x0, guidance \(guidance))"
                      : "ddim(steps \(steps), eta \(eta), spacing \(spacing.rawValue), clip x0, guidance \(guidance))"
    }

    /// The timesteps visited, in sampling (descending) order.
    public func timesteps(total T: Int) -> [Int] {
        if kind == .ddpm { return Array((0..<T).reversed()) }
        let s = max(1, min(steps, T))
        var ts: [Int]
        switch spacing {
        case .linspace: ts = (0..<s).map { Int((Double($0) * Double(T - 1) / Double(max(s - 1, 1))).rounded()) }
        case .leading: ts = (0..<s).map { $0 * (T / s) }
        case .trailing: ts = (0..<s).map { Int((Double(T) - Double($0) * Double(T) / Double(s)).rounded()) - 1 }.reversed()
        }
        return Array(Set(ts)).sorted(by: >)
    }
}

extension GaussianDiffusion {
    /// Draws one image per seed. Image i depends only on seeds[i] (and labels[i]): its
    /// starting noise and every step's noise come from RandomKey(seed: seeds[i]), so the
    /// batch size never changes a sample.
    /// - Returns: [N, C, H, W] in [−1, 1].
    public func sample(model: UNet, seeds: [UInt64], labels: [Int]? = nil, sampler: SamplerConfig,
                       batchSize: Int = 128, progress: ((Int, Int) -> Void)? = nil) -> Tensor {
        var batches: [Tensor] = []
        sample(model: model, seeds: seeds, labels: labels, sampler: sampler, batchSize: batchSize, progress: progress) { _, x in batches.append(x) }
        return Tensor.concat(batches, axis: 0)
    }

    /// The same samples handed over batch by batch (`each(first index, [B, C, H, W])`), so a
    /// caller can write 2^20 of them without holding them: the streamed sample files.
    public func sample(model: UNet, seeds: [UInt64], labels: [Int]? = nil, sampler: SamplerConfig,
                       batchSize: Int = 128, progress: ((Int, Int) -> Void)? = nil,
                       each: (Int, Tensor) throws -> Void) rethrows {
        let c = model.config
        precondition(labels == nil || labels!.count == seeds.count, "sample: \(labels!.count) labels for \(seeds.count) seeds")
        let wasTraining = model.isTraining
        model.eval()
        defer { model.train(wasTraining) }
        let imageShape = [c.imageChannels, c.imageSize, c.imageSize]
        var done = 0
        let schedule = sampler.timesteps(total: timesteps)
        for start in stride(from: 0, to: seeds.count, by: max(batchSize, 1)) {
            let idx = Array(start..<min(seeds.count, start + batchSize))
            let keys = idx.map { RandomKey(seed: seeds[$0]).fold("sample") }
            let lab = labels.map { l in idx.map { l[$0] } }
            var x = stack(keys.map { Tensor.normal(imageShape, key: $0.fold("x_T")) })
            withoutGradient {
                for (k, t) in schedule.enumerated() {
                    let eps = predictNoise(model, x, t: t, labels: lab, guidance: sampler.guidance)
                    let prev = k + 1 < schedule.count ? schedule[k + 1] : -1
                    let noise = stack(keys.map { Tensor.normal(imageShape, key: $0.fold(UInt64(t))) })
                    x = step(x, eps: eps, t: t, prev: prev, sampler: sampler, noise: noise)
                }
            }
            try each(start, x)
            done += idx.count
            progress?(done, seeds.count)
        }
    }

    /// ε̂ with optional classifier-free guidance.
    func predictNoise(_ model: UNet, _ x: Tensor, t: Int, labels: [Int]?, guidance: Double) -> Tensor {
        let ts = [Double](repeating: Double(t), count: x.shape[0])
        guard let labels, model.config.classes > 0, guidance != 1 else { return model(x, timesteps: ts, labels: labels) }
        let null = [Int](repeating: model.config.classes, count: labels.count)
        let both = model(Tensor.concat([x, x], axis: 0), timesteps: ts + ts, labels: labels + null)
        let n = x.shape[0]
        let cond = both.sliced(axis: 0, start: 0, length: n), uncond = both.sliced(axis: 0, start: n, length: n)
        return uncond + (cond - uncond) * guidance
    }

    /// One reverse step from timestep t to `prev` (−1 = the end), given ε̂ and this step's noise.
    public func step(_ x: Tensor, eps: Tensor, t: Int, prev: Int, sampler: SamplerConfig, noise: Tensor) -> Tensor {
        let ab = alphasCumprod[t], abPrev = prev >= 0 ? alphasCumprod[prev] : 1
        // x̂₀ = (x_t − √(1−ᾱ_t) ε̂) / √ᾱ_t, clipped; ε re-derived from the clipped x̂₀
        let x0 = ((x - eps * (1 - ab).squareRoot()) * (1 / ab.squareRoot())).clamped(-1, 1)
        switch sampler.kind {
        case .ddpm:
            // posterior mean μ̃ = c₁ x̂₀ + c₂ x_t, variance β̃_t (no noise at t = 0)
            let beta = betas[t], alpha = 1 - beta
            let c1 = beta * abPrev.squareRoot() / (1 - ab), c2 = (1 - abPrev) * alpha.squareRoot() / (1 - ab)
            let mean = x0 * c1 + x * c2
            return t > 0 ? mean + noise * posteriorVariance[t].squareRoot() : mean
        case .ddim:
            let epsClipped = (x - x0 * ab.squareRoot()) * (1 / (1 - ab).squareRoot())
            let sigma = sampler.eta * ((1 - abPrev) / (1 - ab)).squareRoot() * (1 - ab / abPrev).squareRoot()
            var out = x0 * abPrev.squareRoot() + epsClipped * Swift.max(0, 1 - abPrev - sigma * sigma).squareRoot()
            if sigma > 0 && prev >= 0 { out = out + noise * sigma }
            return out
        }
    }
}

/// Stacks equally shaped tensors along a new leading axis.
public func stack(_ tensors: [Tensor]) -> Tensor {
    Tensor.concat(tensors.map { $0.reshaped([1] + $0.shape) }, axis: 0)
}


