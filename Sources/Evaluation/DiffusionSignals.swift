import Data
import Diffusion
import Foundation
import Models
import Tensor

/// White-box membership signals of a diffusion model (Carlini et al., 2023, §5.2): the
/// per-example denoising loss ‖ε − ε_θ(√ᾱ_t x + √(1−ᾱ_t) ε, t)‖² (mean over pixels) at chosen
/// timesteps, for R noise draws, optionally also on the mirrored image.
///
/// Common random numbers (paper-spec §5.3, §11.3): the noise for (example, timestep, draw)
/// comes from `key` folded with the example's dataset index, t and the draw — the same for
/// every model and every batch size — so shadow and target models see identical queries.
public struct LossSignalConfig: Codable, Equatable, Sendable {
    public var timesteps: [Int] = [100]
    public var draws = 4
    /// Also query the horizontally flipped image (with the same noise).
    public var flip = false
    public var seed: UInt64 = 0
    public var batchSize = 128
    public init() {}

    /// Queries per example, in the order timestep-major, then draw, then flip. A GAN's
    /// discriminator score has no timesteps or draws (`timesteps` empty): one query, two with flip.
    public var queries: Int { (timesteps.isEmpty ? 1 : timesteps.count * draws) * (flip ? 2 : 1) }

    /// The signal for a GAN run: the discriminator's logit, with or without the mirror image.
    public static func discriminatorScore(flip: Bool, batchSize: Int = 128) -> LossSignalConfig {
        var c = LossSignalConfig()
        c.timesteps = []; c.draws = 1; c.flip = flip; c.batchSize = batchSize
        return c
    }
}

public enum DiffusionSignals {
    /// Losses [examples × queries] of `model` on `images` (dataset indices `ids` key the noise).
    /// Class-conditional models see each image's own label.
    public static func losses(model: UNet, process: GaussianDiffusion, images: ImageSet, ids: [Int],
                              config c: LossSignalConfig, progress: ((Int, Int) -> Void)? = nil) -> [Double] {
        let wasTraining = model.isTraining
        model.eval()
        defer { model.train(wasTraining) }
        let conditional = model.config.classes > 0
        return losses(predict: { x, t, labels in model(x, timesteps: t.map(Double.init), labels: conditional ? labels : nil) },
                      process: process, images: images, ids: ids, config: c, progress: progress)
    }

    /// The same for any ε predictor `predict(x_t, t, labels)` (the model in evaluation mode).
    public static func losses(predict: (Tensor, [Int], [Int]) -> Tensor, process: GaussianDiffusion, images: ImageSet, ids: [Int],
                              config c: LossSignalConfig, progress: ((Int, Int) -> Void)? = nil) -> [Double] {
        precondition(ids.count == images.count, "loss signals: \(ids.count) ids for \(images.count) images")
        precondition(c.timesteps.allSatisfy { $0 >= 0 && $0 < process.timesteps }, "loss signals: timesteps \(c.timesteps) outside 0..<\(process.timesteps)")
        let shape = [images.channels, images.height, images.width]
        let key = RandomKey(seed: c.seed).fold("membership-noise")
        let flips = c.flip ? [false, true] : [false]
        var out = [Double](repeating: 0, count: images.count * c.queries)
        var done = 0
        for start in stride(from: 0, to: images.count, by: max(1, c.batchSize)) {
            let idx = Array(start..<min(images.count, start + c.batchSize))
            let batch = images.subset(idx)
            let x = batch.tensor()
            let xf = c.flip ? mirrored(x) : x
            let lab = batch.labels
            withoutGradient {
                var q = 0
                for t in c.timesteps {
                    for r in 0..<c.draws {
                        let noise = stack(idx.map { Tensor.normal(shape, key: key.fold(UInt64(ids[$0])).fold(UInt64(t)).fold(UInt64(r))) })
                        for f in flips {
                            let l = process.perExampleLoss({ predict($0, $1, lab) },
                                                           x0: f ? xf : x, t: [Int](repeating: t, count: idx.count), noise: noise).doubles
                            for (j, i) in idx.enumerated() { out[i * c.queries + q] = l[j] }
                            q += 1
                        }
                    }
                }
            }
            done += idx.count
            progress?(done, images.count)
        }
        return out
    }

    /// Left–right mirror of [N, C, H, W].
    static func mirrored(_ x: Tensor) -> Tensor {
        let s = x.shape, w = s[3]
        var v = x.scalars
        let rows = v.count / w
        for r in 0..<rows { v[(r * w)..<((r + 1) * w)].reverse() }
        return Tensor(v, shape: s)
    }
}

/// The membership signal of a GAN (Carlini et al., 2023, §6: the discriminator's output,
/// which was trained to tell the training images from generated ones): per example, the
/// discriminator's logit in evaluation mode (BatchNorm's running statistics, stored
/// spectral-norm vectors: no dependence on the batch), with the image's own label for
/// class-conditional models. Higher is more member-like.
public enum DiscriminatorSignals {
    /// Logits [examples × queries] (queries: the image, then its mirror with `config.flip`).
    public static func logits(discriminator d: DCGANDiscriminator, images: ImageSet, config c: LossSignalConfig,
                              progress: ((Int, Int) -> Void)? = nil) -> [Double] {
        let wasTraining = d.isTraining
        d.eval()
        defer { d.train(wasTraining) }
        let conditional = d.config.classes > 0
        var out = [Double](repeating: 0, count: images.count * c.queries)
        for start in stride(from: 0, to: images.count, by: max(1, c.batchSize)) {
            let idx = Array(start..<min(images.count, start + c.batchSize))
            let batch = images.subset(idx)
            let x = batch.tensor()
            let views = c.flip ? [x, DiffusionSignals.mirrored(x)] : [x]
            withoutGradient {
                for (q, v) in views.enumerated() {
                    let l = d(v, labels: conditional ? batch.labels : nil).doubles
                    for (j, i) in idx.enumerated() { out[i * c.queries + q] = l[j] }
                }
            }
            progress?(idx.last! + 1, images.count)
        }
        return out
    }
}
