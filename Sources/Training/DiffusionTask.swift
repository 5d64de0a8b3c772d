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

    public init(_ config: TrainConfig, key: RandomKey) throws {
        self.config = config
        model = try UNet(config.model, key: key.fold("init"))
        optimizer = Adam(learningRate: config.train.learningRate)
        diffusion = config.diffusion.process
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
        let x0 = batch.images
        let t = diffusion.randomTimesteps(batch.indices.count, key: key.fold("t"))
        let noise = Tensor.normal(x0.shape, key: key.fold("noise"))
        let loss = try descend(model, with: optimizer, clipNorm: context.gradClip) {
            diffusion.loss({ model($0, timesteps: $1.map(Double.init), labels: labels, dropoutKey: key.fold("dropout")) },
                           x0: x0, t: t, noise: noise)
        }
        return [("loss", loss)]
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
