import Foundation
import Tensor

/// The noise schedule β₁…β_T, computed in Double.
public enum BetaSchedule: Codable, Equatable, Sendable {
    /// Linear from `start` to `end` (Ho et al., 2020: 1e-4 … 0.02 over T = 1000).
    case linear(start: Double, end: Double)
    /// ᾱ(t) = cos²(((t/T + s)/(1 + s))·π/2) (Nichol & Dhariwal, 2021), β clipped at 0.999.
    case cosine(offset: Double)

    public var name: String { switch self { case .linear: return "linear"; case .cosine: return "cosine" } }

    public func betas(_ T: Int) -> [Double] {
        switch self {
        case .linear(let a, let b):
            return (0..<T).map { T == 1 ? a : a + (b - a) * Double($0) / Double(T - 1) }
        case .cosine(let s):
            func abar(_ t: Double) -> Double { let v = Foundation.cos((t / Double(T) + s) / (1 + s) * Double.pi / 2); return v * v }
            return (0..<T).map { min(1 - abar(Double($0 + 1)) / abar(Double($0)), 0.999) }
        }
    }
}

/// The DDPM forward process and its coefficient tables (model/process split as in
/// improved-diffusion's `gaussian_diffusion.py`). Timesteps are 0-based: t = 0 … T−1.
public struct GaussianDiffusion: Sendable {
    public let schedule: BetaSchedule
    public let timesteps: Int
    public let betas: [Double]
    public let alphasCumprod: [Double]
    public let alphasCumprodPrev: [Double]
    /// β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t), the posterior q(x_{t−1} | x_t, x₀) variance.
    public let posteriorVariance: [Double]

    public init(schedule: BetaSchedule = .linear(start: 1e-4, end: 0.02), timesteps: Int = 1000) {
        precondition(timesteps >= 1, "diffusion: timesteps must be ≥ 1, got \(timesteps)")
        self.schedule = schedule; self.timesteps = timesteps
        let b = schedule.betas(timesteps)
        var ac: [Double] = []
        var p = 1.0
        for beta in b { p *= 1 - beta; ac.append(p) }
        let prev = [1] + ac.dropLast()
        betas = b
        alphasCumprod = ac
        alphasCumprodPrev = prev
        posteriorVariance = (0..<timesteps).map { b[$0] * (1 - prev[$0]) / (1 - ac[$0]) }
    }

    /// Per-example coefficient as a [B, 1, 1, 1] tensor.
    func coefficient(_ table: [Double], _ t: [Int], _ f: (Double) -> Double, dtype: DType) -> Tensor {
        Tensor(t.map { f(table[$0]) }, shape: [t.count, 1, 1, 1], dtype: dtype)
    }

    /// x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε.
    public func qSample(_ x0: Tensor, t: [Int], noise: Tensor) -> Tensor {
        precondition(x0.shape == noise.shape && t.count == x0.shape[0], "qSample: x0 \(x0.shape), noise \(noise.shape), \(t.count) timesteps")
        return x0 * coefficient(alphasCumprod, t, { $0.squareRoot() }, dtype: x0.dtype)
             + noise * coefficient(alphasCumprod, t, { (1 - $0).squareRoot() }, dtype: x0.dtype)
    }

    /// The ε-prediction loss per example, mean over pixels of (ε̂(x_t, t) − ε)²: shape [B].
    /// With fixed t and noise this is the per-example signal membership attacks use.
    public func perExampleLoss(_ model: (Tensor, [Int]) -> Tensor, x0: Tensor, t: [Int], noise: Tensor) -> Tensor {
        let xt = qSample(x0, t: t, noise: noise)
        let err = (model(xt, t) - noise).squared()
        return err.mean(axes: Array(1..<err.rank))
    }

    /// The training loss: the mean of `perExampleLoss` over the batch.
    public func loss(_ model: (Tensor, [Int]) -> Tensor, x0: Tensor, t: [Int], noise: Tensor) -> Tensor {
        let xt = qSample(x0, t: t, noise: noise)
        return (model(xt, t) - noise).squared().mean()
    }

    /// Uniform timesteps in 0..<T, one per example: example i's draw is word i of `key`.
    public func randomTimesteps(_ count: Int, key: RandomKey) -> [Int] {
        (0..<count).map { Int((UInt64(key.word($0)) * UInt64(timesteps)) >> 32) }
    }
}
