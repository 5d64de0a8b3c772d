import CKernels
import Foundation
import NN
import Tensor

/// An update rule applied to each parameter, with its state kept in a tree keyed like
/// the parameters ("m.<name>", "v.<name>", …) so it can be saved and resumed exactly.
/// The shape follows MLX's `OptimizerBase`: subclasses give the per-parameter step only.
///
///     let (loss, grads) = valueAndGradient(of: model) { … }
///     optimizer.update(model, gradients: grads)
public protocol Optimizer: AnyObject {
    /// Current learning rate (set it each step from a schedule).
    var learningRate: Double { get set }
    /// Number of updates applied so far.
    var step: Int { get }
    /// Applies one update in place to `parameters` (same keys as `gradients`).
    func update(_ parameters: TensorTree, gradients: TensorTree)
    /// Everything needed to resume: per-parameter slots and the step counter.
    func stateTree() -> TensorTree
    /// Restores what `stateTree()` produced.
    func load(stateTree: TensorTree) throws
}

extension Optimizer {
    /// Updates `model`'s parameters in place.
    public func update(_ model: Module, gradients: TensorTree) { update(model.parameters(), gradients: gradients) }
}

public enum OptimizerError: Error, CustomStringConvertible {
    case missingState(String)
    case shapeMismatch(String, expected: [Int], found: [Int])
    /// The loss was NaN or infinite; nothing was updated (`descend`).
    case nonFiniteLoss(Double)
    public var description: String {
        switch self {
        case .nonFiniteLoss(let v): return "the loss is \(v)"
        case .missingState(let k): return "optimizer state is missing '\(k)'"
        case .shapeMismatch(let k, let e, let f): return "optimizer state '\(k)' has shape \(f), expected \(e)"
        }
    }
}

/// Shared bookkeeping: lazily created per-parameter slots and the step counter.
open class SlotOptimizer {
    public var learningRate: Double
    public internal(set) var step = 0
    var slots: [String: TensorTree] = [:]   // slot name → tree keyed like parameters
    let slotNames: [String]

    init(learningRate: Double, slotNames: [String]) {
        precondition(learningRate >= 0, "learning rate \(learningRate) must be ≥ 0")
        self.learningRate = learningRate
        self.slotNames = slotNames
        for s in slotNames { slots[s] = TensorTree() }
    }

    func slot(_ name: String, for key: String, like p: Tensor) -> Tensor {
        if let t = slots[name]![key] { return t }
        let t = Tensor.zeros(like: p)
        slots[name]![key] = t
        return t
    }

    func checkKeys(_ parameters: TensorTree, _ gradients: TensorTree) {
        precondition(parameters.keys == gradients.keys,
                     "optimizer: gradient keys do not match parameter keys (\(gradients.keys.prefix(3)) vs \(parameters.keys.prefix(3)))")
    }

    public func stateTree() -> TensorTree {
        var t = TensorTree()
        t["step"] = Tensor(scalar: Double(step), dtype: .float64)
        for s in slotNames { t.merge(slots[s]!.prefixed(s)) }
        return t
    }

    public func load(stateTree t: TensorTree) throws {
        guard let s = t["step"] else { throw OptimizerError.missingState("step") }
        step = Int(s.item)
        for name in slotNames { slots[name] = t.subtree(name).copied() }
    }
}

/// Stochastic gradient descent with optional (heavy-ball) momentum and L2 weight decay:
/// b ← μ·b + (g + λθ); θ ← θ − lr·b (PyTorch's convention; Sutskever et al., 2013).
public final class SGD: SlotOptimizer, Optimizer {
    public let momentum: Double, weightDecay: Double

    public init(learningRate: Double, momentum: Double = 0, weightDecay: Double = 0) {
        precondition(momentum >= 0 && momentum < 1, "SGD: momentum \(momentum) must be in [0, 1)")
        precondition(weightDecay >= 0, "SGD: weight decay \(weightDecay) must be ≥ 0")
        self.momentum = momentum; self.weightDecay = weightDecay
        super.init(learningRate: learningRate, slotNames: momentum > 0 ? ["momentum"] : [])
    }

    public func update(_ parameters: TensorTree, gradients: TensorTree) {
        checkKeys(parameters, gradients)
        step += 1
        for (key, p) in parameters {
            let g = gradients[key]!
            var d = g
            if weightDecay > 0 { d = g.copy(); d.addInPlace(p, alpha: weightDecay) }
            if momentum > 0 {
                let b = slot("momentum", for: key, like: p)
                b.scaleInPlace(momentum); b.addInPlace(d)
                d = b
            }
            p.addInPlace(d, alpha: -learningRate)
        }
    }
}

/// Adam (Kingma & Ba, 2015) with bias correction; `decoupledWeightDecay` gives AdamW
/// (Loshchilov & Hutter, 2019): θ ← θ − lr·λ·θ before the Adam step. Plain `weightDecay`
/// without decoupling adds λθ to the gradient (L2), as PyTorch's Adam does.
public final class Adam: SlotOptimizer, Optimizer {
    public let beta1: Double, beta2: Double, epsilon: Double, weightDecay: Double, decoupled: Bool

    public init(learningRate: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8,
                weightDecay: Double = 0, decoupledWeightDecay: Bool = false) {
        precondition(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "Adam: betas (\(beta1), \(beta2)) must be in [0, 1)")
        precondition(epsilon > 0 && weightDecay >= 0, "Adam: epsilon \(epsilon) must be > 0 and weight decay \(weightDecay) ≥ 0")
        self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon
        self.weightDecay = weightDecay; self.decoupled = decoupledWeightDecay
        super.init(learningRate: learningRate, slotNames: ["m", "v"])
    }

    public func update(_ parameters: TensorTree, gradients: TensorTree) {
        checkKeys(parameters, gradients)
        step += 1
        let c1 = 1 - Foundation.pow(beta1, Double(step)), c2 = 1 - Foundation.pow(beta2, Double(step))
        for (key, p) in parameters {
            let g = gradients[key]!
            precondition(g.shape == p.shape, "Adam: gradient for '\(key)' has shape \(g.shape), parameter \(p.shape)")
            let m = slot("m", for: key, like: p), v = slot("v", for: key, like: p)
            let lr = learningRate, b1 = beta1, b2 = beta2, eps = epsilon, wd = weightDecay, dec = decoupled
            func run<T: TensorScalar>(_: T.Type) {
                let pp = p.pointer(T.self), pg = g.pointer(T.self), pm = m.pointer(T.self), pv = v.pointer(T.self)
                let (tb1, tb2) = (T(b1), T(b2))
                let stepSize = T(lr / c1), rc2 = T(1 / c2.squareRoot()), te = T(eps)
                let l2 = dec ? T(0) : T(wd), shrink = dec ? T(1 - lr * wd) : T(1)
                // elementwise: any split across threads gives the same bits
                Parallel.forRanges(p.count, cost: 16 * p.count) { range in
                    if T.self == Float.self {
                        // the same operations in C, where they vectorize (Swift's pointers may alias)
                        func f(_ x: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<Float> { UnsafeMutableRawPointer(x + range.lowerBound).assumingMemoryBound(to: Float.self) }
                        func s(_ x: T) -> Float { unsafeBitCast(x, to: Float.self) }
                        ek_adam_f32(f(pp), f(pg), f(pm), f(pv), range.count, s(tb1), s(tb2), s(stepSize), s(rc2), s(te), s(l2), s(shrink))
                        return
                    }
                    for i in range {
                        let gi = pg[i] + l2 * pp[i]
                        pm[i] = tb1 * pm[i] + (1 - tb1) * gi
                        pv[i] = tb2 * pv[i] + (1 - tb2) * gi * gi
                        pp[i] = pp[i] * shrink - stepSize * pm[i] / ((pv[i]).squareRoot() * rc2 + te)
                    }
                }
            }
            if p.dtype == .float32 { run(Float.self) } else { run(Double.self) }
        }
    }
}

/// AdamW: Adam with decoupled weight decay (default λ = 0.01, as in PyTorch).
public func AdamW(learningRate: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8,
                  weightDecay: Double = 0.01) -> Adam {
    Adam(learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay, decoupledWeightDecay: true)
}
