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
        let sums = parameters.values.map { Tensor.zeros($0.shape, dtype: $0.dtype) }
        let norms = clipAndAdd(parameters, perExample: perExample, into: sums)
        return finish(parameters, sums: sums, norms: norms, noiseKey: noiseKey)
    }

    /// Adds Σᵢ gᵢ·min(1, C/‖gᵢ‖) to `sums` (one tensor per parameter), examples in order, and
    /// returns the examples' norms. Called once per micro-batch, it gives the same bits as
    /// one call on the whole batch.
    public func clipAndAdd(_ parameters: TensorTree, perExample: [Tensor], into sums: [Tensor]) -> [Double] {
        precondition(perExample.count == parameters.count && sums.count == parameters.count,
                     "DPOptimizer: \(perExample.count) per-example gradients for \(parameters.count) parameters")
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
        for (g, sum) in zip(perExample, sums) {
            let size = sum.count
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
            if sum.dtype == .float32 { accumulate(Float.self) } else { accumulate(Double.self) }
        }
        return norms
    }

    /// g̃ from the clipped sums: noise N(0, σ²C²) per parameter from `noiseKey.fold(name)`,
    /// then division by the expected batch size; and the step's statistics from the norms.
    public func finish(_ parameters: TensorTree, sums: [Tensor], norms: [Double], noiseKey: RandomKey) -> (gradient: TensorTree, stats: DPStepStats) {
        let n = norms.count
        let clipped = norms.filter { min(1, clipNorm / ($0 + 1e-6)) < 1 }.count
        let stats = DPStepStats(examples: n, meanNorm: n == 0 ? 0 : norms.reduce(0, +) / Double(n), maxNorm: norms.max() ?? 0,
                                clippedFraction: n == 0 ? 0 : Double(clipped) / Double(n))
        var out = TensorTree()
        for ((key, p), sum) in zip(parameters, sums) {
            if noiseMultiplier > 0 {
                sum.addInPlace(Tensor.normal(p.shape, std: noiseMultiplier * clipNorm, key: noiseKey.fold(key), dtype: p.dtype))
            }
            sum.scaleInPlace(1 / expectedBatchSize)
            out[key] = sum
        }
        return (out, stats)
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
    try descendPrivately(model, with: optimizer, batch: n, multiplicity: k, microBatch: 0, noiseKey: noiseKey) { _ in try loss() }
}

/// The same in micro-batches of at most `m` examples (0: all at once; Opacus's virtual
/// steps): `loss(range)` returns the summed loss of examples `range` (rows range·K), the
/// clipped gradients are summed across micro-batches in example order, and noise is added
/// once. The result is the same bits for any m (examples are independent and summed in
/// order); memory for per-example gradients is m examples' worth, and buffers keep the same
/// sizes from step to step however the Poisson batch varies.
///
/// `plus`, when given, is added to the privatized gradient before the update: the gradient
/// of loss terms that touch no training example (a GAN discriminator's fake images).
public func descendPrivately(_ model: Module, with optimizer: DPOptimizer, batch n: Int, multiplicity k: Int = 1, microBatch m: Int,
                             plus: TensorTree? = nil, noiseKey: RandomKey,
                             loss: (Range<Int>) throws -> Tensor) throws -> (loss: Double, stats: DPStepStats) {
    precondition(n >= 0 && k >= 1 && m >= 0, "descendPrivately: batch \(n), multiplicity \(k), micro-batch \(m)")
    let parameters = model.parameters()
    let sums = parameters.values.map { Tensor.zeros($0.shape, dtype: $0.dtype) }
    var value = 0.0, norms: [Double] = []
    var lo = 0
    while lo < n {
        let hi = min(n, lo + (m > 0 ? m : n))
        let (v, grads) = try valueAndPerExampleGradients(wrt: parameters.values, batch: (hi - lo) * k) { try loss(lo..<hi) }
        value += v.item / Double(k)
        guard value.isFinite else { throw OptimizerError.nonFiniteLoss(value) }
        let perExample = k == 1 ? grads : zip(grads, parameters.values).map { g, p in g.reshaped([hi - lo, k] + p.shape).mean(axes: [1]) }
        norms += optimizer.clipAndAdd(parameters, perExample: perExample, into: sums)
        lo = hi
    }
    let (gradient, stats) = optimizer.finish(parameters, sums: sums, norms: norms, noiseKey: noiseKey)
    if let plus { for (key, g) in gradient { g.addInPlace(plus[key]!) } }
    optimizer.base.update(parameters, gradients: gradient)
    return (value, stats)
}
