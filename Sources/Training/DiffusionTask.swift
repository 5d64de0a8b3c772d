import Diffusion
import Foundation
import Models
import NN
import Optim
import Tensor

/// DDPM training of a U-Net (Ho et al., 2020, Alg. 1): x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε at a
/// uniform timestep, loss ‖ε − ε_θ(x_t, t)‖², Adam. Class-conditional models drop the label to
/// the null class with probability `train.label_dropout` (classifier-free guidance, Ho &
/// Salimans, 2022). Checkpoint layout: `model.*`, `optimizer.*` (and the loop's `ema.*`).
public final class DiffusionTask: TrainingTask {
    public let config: TrainConfig
    public let model: UNet
    public let optimizer: Adam
    public let diffusion: GaussianDiffusion
    /// DP-SGD around `optimizer` for private runs (`[privacy]`).
    public let privateOptimizer: DPOptimizer?
    let multiplicity: Int

    public init(_ config: TrainConfig, key: RandomKey, privacy: ResolvedPrivacy? = nil) throws {
        self.config = config
        model = try UNet(config.model, key: key.fold("init"))
        let adam = Adam(learningRate: config.train.learningRate)
        optimizer = adam
        diffusion = config.diffusion.process
        privateOptimizer = privacy.map { DPOptimizer(adam, clipNorm: $0.clipNorm, noiseMultiplier: $0.noiseMultiplier,
                                                     expectedBatchSize: $0.expectedBatchSize) }
        multiplicity = privacy?.multiplicity ?? 1
    }

    public var summary: String {
        String(format: "model %d parameters, %.3f GFLOP/image forward", model.parameterCount, Double(model.forwardFLOPs) / 1e9)
    }

    public var sampledModule: Module { model }

    public func step(_ batches: [TrainingBatch], _ context: StepContext) throws -> [(name: String, value: Double)] {
        let batch = batches[0], key = context.key
        optimizer.learningRate = context.learningRate
        var labels: [Int]? = nil
        if config.model.classes > 0 {
            let drop = key.fold("label-dropout")
            labels = batch.labels.enumerated().map { i, l in
                Double(drop.word(i)) / 4_294_967_296.0 < config.train.labelDropout ? config.model.classes : l
            }
        }
        if let dp = privateOptimizer { return try privateStep(batch, labels: labels, key: key, dp) }
        let x0 = batch.images
        let t = diffusion.randomTimesteps(batch.indices.count, key: key.fold("t"))
        let noise = Tensor.normal(x0.shape, key: key.fold("noise"))
        let loss = try descend(model, with: optimizer, clipNorm: context.gradClip) {
            diffusion.loss({ model($0, timesteps: $1.map(Double.init), labels: labels, dropoutKey: key.fold("dropout")) },
                           x0: x0, t: t, noise: noise)
        }
        return [("loss", loss)]
    }

    /// Examples per micro-batch of a private step (`descendPrivately`).
    static let privateMicroBatch = 16

    /// DP-SGD (Abadi et al., 2016) on a Poisson batch: each example repeated K times
    /// (multiplicity) with its own timestep and noise, per-example gradients of the summed
    /// per-example losses, clipped, noised and applied (`descendPrivately`).
    func privateStep(_ batch: TrainingBatch, labels: [Int]?, key: RandomKey, _ dp: DPOptimizer) throws -> [(name: String, value: Double)] {
        let n = batch.indices.count, k = multiplicity
        let rows = (0..<n).flatMap { i in Array(repeating: i, count: k) }
        let x0 = k == 1 || n == 0 ? batch.images : Tensor.concat(rows.map { batch.images.sliced(axis: 0, start: $0, length: 1) }, axis: 0)
        let rowLabels = labels.map { l in rows.map { l[$0] } }
        let t = diffusion.randomTimesteps(n * k, key: key.fold("t"))
        let noise = Tensor.normal([n * k] + Array(x0.shape.dropFirst()), key: key.fold("noise"))
        // micro-batches of a fixed size: per-example gradients of 16 examples at a time, so
        // memory is bounded and buffers keep their sizes however the Poisson batch varies
        // (the result is the same bits for any micro-batch size)
        let (loss, stats) = try descendPrivately(model, with: dp, batch: n, multiplicity: k, microBatch: Self.privateMicroBatch,
                                                 noiseKey: key.fold("dp-noise")) { range in
            let rowRange = range.lowerBound * k ..< range.upperBound * k
            let part = { (x: Tensor) in x.sliced(axis: 0, start: rowRange.lowerBound, length: rowRange.count) }
            // dropout masks are drawn per micro-batch from the key and its first row
            let dropKey = key.fold("dropout").fold(UInt64(rowRange.lowerBound))
            return diffusion.perExampleLoss({ model($0, timesteps: $1.map(Double.init), labels: rowLabels.map { Array($0[rowRange]) }, dropoutKey: dropKey) },
                                            x0: part(x0), t: Array(t[rowRange]), noise: part(noise)).sum()
        }
        return [("loss", n > 0 ? loss / Double(n) : 0), ("batch_examples", Double(stats.examples)),
                ("clipped_fraction", stats.clippedFraction), ("grad_norm", stats.meanNorm)]
    }

    public func state() -> TensorTree {
        var tree = model.state().prefixed("model")
        tree.merge(optimizer.stateTree().prefixed("optimizer"))
        return tree
    }

    public func load(_ tree: TensorTree, file: String) throws {
        try model.load(tree.subtree("model"))
        try optimizer.load(stateTree: tree.subtree("optimizer"))
        try checkFinite(model.parameters(), what: "model weights", file: file)
    }
}
