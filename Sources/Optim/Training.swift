import Foundation
import NN
import Tensor

/// Exponential moving average of weights (Polyak averaging; the DDPM/improved-diffusion
/// EMA): shadow ← decay·shadow + (1 − decay)·θ after each step. Sample from the shadow.
public final class EMA {
    public let decay: Double
    public private(set) var shadow: TensorTree

    /// Starts the average at a copy of `parameters`.
    public init(_ parameters: TensorTree, decay: Double = 0.9999) {
        precondition(decay >= 0 && decay <= 1, "EMA: decay \(decay) must be in [0, 1]")
        self.decay = decay
        shadow = parameters.copied()
    }

    public func update(from parameters: TensorTree) {
        precondition(parameters.keys == shadow.keys, "EMA: parameter keys changed")
        for (s, p) in zip(shadow.values, parameters.values) { s.lerpInPlace(toward: p, decay: decay) }
    }

    /// The decay used at update number `step` (0-based) with warmup: min(decay, (1 + n)/(10 + n)),
    /// so the average forgets the random initialisation early on (the TensorFlow / diffusers
    /// EMA warmup) instead of keeping decay^n of it — 17 % after 1,750 steps at 0.999.
    public func warmedDecay(step: Int) -> Double { min(decay, Double(1 + step) / Double(10 + step)) }

    /// One update with the warmed-up decay for update number `step`.
    public func update(from parameters: TensorTree, step: Int) {
        precondition(parameters.keys == shadow.keys, "EMA: parameter keys changed")
        let d = warmedDecay(step: step)
        for (s, p) in zip(shadow.values, parameters.values) { s.lerpInPlace(toward: p, decay: d) }
    }

    /// Restores a saved shadow (keys and shapes must match).
    public func load(_ tree: TensorTree) throws {
        for (k, s) in shadow {
            guard let t = tree[k] else { throw OptimizerError.missingState(k) }
            guard t.shape == s.shape else { throw OptimizerError.shapeMismatch(k, expected: s.shape, found: t.shape) }
            s.assign(t)
        }
    }
}

/// Scales all gradients by min(1, maxNorm / ‖g‖₂) where ‖g‖₂ is the norm of all of them
/// concatenated (Pascanu et al., 2013). Returns the norm before clipping.
@discardableResult
public func clipGlobalNorm(_ gradients: TensorTree, maxNorm: Double) -> Double {
    precondition(maxNorm > 0, "clipGlobalNorm: maxNorm \(maxNorm) must be > 0")
    let norm = gradients.values.reduce(0) { $0 + $1.squaredNorm() }.squareRoot()
    if norm > maxNorm {
        let s = maxNorm / (norm + 1e-6)
        for g in gradients.values { g.scaleInPlace(s) }
    }
    return norm
}

/// Learning rate as a function of the step: linear warmup from 0, then constant or
/// cosine decay to `minimum` at `totalSteps` (Loshchilov & Hutter, 2017, SGDR without restarts).
public struct LearningRateSchedule: Codable, Sendable, Equatable {
    public enum Decay: String, Codable, Sendable { case constant, cosine }
    public var base: Double
    public var warmupSteps: Int
    public var decay: Decay
    public var totalSteps: Int
    public var minimum: Double

    public init(base: Double, warmupSteps: Int = 0, decay: Decay = .constant, totalSteps: Int = 0, minimum: Double = 0) {
        precondition(base >= 0 && minimum >= 0 && warmupSteps >= 0, "LearningRateSchedule: negative setting")
        precondition(decay == .constant || totalSteps > warmupSteps, "LearningRateSchedule: cosine needs totalSteps (\(totalSteps)) > warmupSteps (\(warmupSteps))")
        self.base = base; self.warmupSteps = warmupSteps; self.decay = decay; self.totalSteps = totalSteps; self.minimum = minimum
    }

    /// The rate for update number `step` (0-based).
    public func rate(at step: Int) -> Double {
        // base × (fraction), in that order: the trainer's rate before this schedule was shared
        if step < warmupSteps { return base * (Double(step + 1) / Double(warmupSteps)) }
        switch decay {
        case .constant: return base
        case .cosine:
            let progress = min(1, Double(step - warmupSteps) / Double(max(totalSteps - warmupSteps, 1)))
            return minimum + (base - minimum) * 0.5 * (1 + cos(Double.pi * progress))
        }
    }
}

/// One gradient-descent step, the piece every training loop shares (the diffusion and GAN
/// tasks, the quality classifier, the examples): the gradient of `loss` with respect to
/// `model`'s parameters; a check that the loss is finite (otherwise nothing is updated and
/// `OptimizerError.nonFiniteLoss` is thrown); global-norm clipping when `clipNorm` > 0; the
/// optimizer's update. Returns the loss.
@discardableResult
public func descend(_ model: Module, with optimizer: Optimizer, clipNorm: Double = 0, loss: () throws -> Tensor) throws -> Double {
    let (value, gradients) = try valueAndGradient(of: model, loss)
    let v = value.item
    guard v.isFinite else { throw OptimizerError.nonFiniteLoss(v) }
    if clipNorm > 0 { clipGlobalNorm(gradients, maxNorm: clipNorm) }
    optimizer.update(model, gradients: gradients)
    return v
}
