import Foundation
import NN
import Tensor

/// What one DP-SGD step saw, for metrics: how many examples the (Poisson) batch held, their
/// gradient norms before clipping, and the share that clipping shortened.
public struct DPStepStats: Equatable, Sendable {
    public var examples: Int
    public var meanNorm: Double
    public var maxNorm: Double
    public var clippedFraction: Double

    public init(examples: Int, meanNorm: Double, maxNorm: Double, clippedFraction: Double) {
        self.examples = examples; self.meanNorm = meanNorm; self.maxNorm = maxNorm; self.clippedFraction = clippedFraction
    }
}

/// DP-SGD around any optimizer (Abadi et al., 2016, Algorithm 1; the wrapper pattern of
/// opacus's `DPOptimizer`). From per-example gradients gᵢ (see `valueAndPerExampleGradients`)
/// it forms
///
///     g̃ = ( Σᵢ gᵢ · min(1, C / ‖gᵢ‖₂) + N(0, σ²C²·I) ) / B
///
/// with ‖gᵢ‖₂ the flat norm over all parameters, C the clipping norm, σ the noise multiplier
/// and B the *expected* batch size (Poisson sampling at rate q = B / N gives batches of
/// varying size, empty ones included; dividing by the realized size would leak it). The
/// noise is drawn once per step and parameter from `noiseKey.fold(parameter name)`, so a
/// resumed run adds the same noise. Then the wrapped optimizer (SGD, Adam, …) applies g̃.
public final class DPOptimizer {
    public let base: Optimizer
    public let clipNorm: Double
    public let noiseMultiplier: Double
    public let expectedBatchSize: Double

    public var learningRate: Double {
        get { base.learningRate }
        set { base.learningRate = newValue }
    }

    public init(_ base: Optimizer, clipNorm: Double, noiseMultiplier: Double, expectedBatchSize: Double) {
        precondition(clipNorm > 0 && clipNorm.isFinite, "DPOptimizer: clipping norm \(clipNorm) must be finite and > 0")
        precondition(noiseMultiplier >= 0 && noiseMultiplier.isFinite, "DPOptimizer: noise multiplier \(noiseMultiplier) must be finite and ≥ 0")
        precondition(expectedBatchSize > 0 && expectedBatchSize.isFinite, "DPOptimizer: expected batch size \(expectedBatchSize) must be > 0")
        self.base = base; self.clipNorm = clipNorm; self.noiseMultiplier = noiseMultiplier
        self.expectedBatchSize = expectedBatchSize
    }

    /// The privatized gradient g̃ for `parameters` from per-example gradients ([n] + shape
    /// each, in the tree's order; n may be 0), and the step's statistics.
    public func privatize(_ parameters: TensorTree, perExample: [Tensor], noiseKey: RandomKey) -> (gradient: TensorTree, stats: DPStepStats) {
        precondition(perExample.count == parameters.count, "DPOptimizer: \(perExample.count) per-example gradients for \(parameters.count) parameters")
        let n = perExample.first?.shape.first ?? 0
        for (g, p) in zip(perExample, parameters.values) {
            precondition(g.shape == [n] + p.shape && g.dtype == p.dtype,
                         "DPOptimizer: per-example gradient \(g.shape) \(g.dtype) does not match [\(n)] + \(p.shape) \(p.dtype)")
        }
        // flat per-example norms, accumulated in Double
        var squared = [Double](repeating: 0, count: n)
        for g in perExample {
            let size = g.count / max(n, 1)
            var part = [Double](repeating: 0, count: n)
            part.withUnsafeMutableBufferPointer { out in
                let po = out.baseAddress!
                func add<T: TensorScalar>(_: T.Type) {
                    let pg = g.pointer(T.self)
                    // each example's sum by one thread, in eight Double lanes combined in a fixed order
                    Parallel.forRanges(n, cost: 2 * g.count) { range in
                        for i in range {
                            var lanes = SIMD8<Double>()
                            let row = pg + i * size
                            var j = 0
                            while j + 8 <= size {
                                let v = SIMD8<Double>(Double(row[j]), Double(row[j + 1]), Double(row[j + 2]), Double(row[j + 3]),
                                                      Double(row[j + 4]), Double(row[j + 5]), Double(row[j + 6]), Double(row[j + 7]))
                                lanes += v * v
                                j += 8
                            }
                            var s = lanes.sum()
                            while j < size { let x = Double(row[j]); s += x * x; j += 1 }
                            po[i] = s
                        }
                    }
                }
                if g.dtype == .float32 { add(Float.self) } else { add(Double.self) }
            }
            for i in 0..<n { squared[i] += part[i] }
        }
        let norms = squared.map { $0.squareRoot() }
        let factors = norms.map { min(1, clipNorm / ($0 + 1e-6)) }
        let stats = DPStepStats(examples: n, meanNorm: n == 0 ? 0 : norms.reduce(0, +) / Double(n), maxNorm: norms.max() ?? 0,
                                clippedFraction: n == 0 ? 0 : Double(factors.filter { $0 < 1 }.count) / Double(n))
        var out = TensorTree()
        for ((key, p), g) in zip(parameters, perExample) {
            let size = p.count
            let sum = Tensor.zeros(p.shape, dtype: p.dtype)
            func accumulate<T: TensorScalar>(_: T.Type) {
                let ps = sum.pointer(T.self), pg = g.pointer(T.self)
                let fs = factors.map { T($0) }
                // each element summed over examples in example order by one thread
                Parallel.forRanges(size, cost: 2 * n * size) { range in
                    for i in 0..<n {
                        let f = fs[i], row = pg + i * size
                        for j in range { ps[j] += f * row[j] }
                    }
                }
            }
            if p.dtype == .float32 { accumulate(Float.self) } else { accumulate(Double.self) }
            if noiseMultiplier > 0 {
                sum.addInPlace(Tensor.normal(p.shape, std: noiseMultiplier * clipNorm, key: noiseKey.fold(key), dtype: p.dtype))
            }
            sum.scaleInPlace(1 / expectedBatchSize)
            out[key] = sum
        }
        return (out, stats)
    }

    /// Privatizes and applies one update to `parameters`.
    @discardableResult
    public func update(_ parameters: TensorTree, perExample: [Tensor], noiseKey: RandomKey) -> DPStepStats {
        let (gradient, stats) = privatize(parameters, perExample: perExample, noiseKey: noiseKey)
        base.update(parameters, gradients: gradient)
        return stats
    }
}

/// One DP-SGD step on `model`: per-example gradients of `loss` (which must return the *sum*
/// of the losses of its n·K rows; not called when the Poisson batch is empty, n = 0),
/// clipped, noised and applied by `optimizer`. With augmentation multiplicity K > 1 the rows
/// are example-major (example i's K augmented copies are rows iK ..< iK + K) and an
/// example's gradient is the mean of its copies', taken before clipping (DPDM). Returns the
/// loss summed over examples (each the mean of its copies; 0 for an empty batch) and the
/// step's statistics. Throws `PerExampleError` for a model that mixes examples (BatchNorm)
/// and `OptimizerError.nonFiniteLoss` without updating anything.
public func descendPrivately(_ model: Module, with optimizer: DPOptimizer, batch n: Int, multiplicity k: Int = 1,
                             noiseKey: RandomKey, loss: () throws -> Tensor) throws -> (loss: Double, stats: DPStepStats) {
    precondition(n >= 0 && k >= 1, "descendPrivately: batch \(n) and multiplicity \(k)")
    let parameters = model.parameters()
    var value = 0.0
    var perExample = parameters.values.map { Tensor.zeros([0] + $0.shape, dtype: $0.dtype) }
    if n > 0 {
        let (v, grads) = try valueAndPerExampleGradients(wrt: parameters.values, batch: n * k, of: loss)
        value = v.item / Double(k)
        guard value.isFinite else { throw OptimizerError.nonFiniteLoss(value) }
        perExample = k == 1 ? grads : zip(grads, parameters.values).map { g, p in
            g.reshaped([n, k] + p.shape).mean(axes: [1])
        }
    }
    let stats = optimizer.update(parameters, perExample: perExample, noiseKey: noiseKey)
    return (value, stats)
}
