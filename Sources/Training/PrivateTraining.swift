import Foundation
import Privacy
import Tensor

/// A run's DP-SGD settings resolved against its training set (`[privacy]`): the Poisson
/// sampling rate q = train.batch_size / N, σ (given, or calibrated for `target_epsilon` over
/// the whole run, never overshooting), δ (given, or the largest power of ten below 1/N;
/// δ ≥ 1/N is refused: it would allow releasing an example outright), and the accountant
/// (RDP of the subsampled Gaussian at Opacus's default orders, composed over steps).
public struct ResolvedPrivacy: Sendable {
    public let sampleRate: Double
    public let noiseMultiplier: Double
    public let clipNorm: Double
    public let delta: Double
    public let expectedBatchSize: Double
    public let multiplicity: Int
    public let totalSteps: Int
    /// RDP of one step at `RDP.defaultOrders`.
    let rdpPerStep: [Double]

    public init(_ config: TrainConfig, examples n: Int) throws {
        guard let p = config.privacy else { throw TrainingError.data("the config has no [privacy] section") }
        let q = Double(config.train.batchSize) / Double(n)
        guard q > 0 && q <= 1 else { throw TrainingError.data("privacy: sample rate train.batch_size / N = \(config.train.batchSize) / \(n) must be in (0, 1]") }
        let delta = p.delta(examples: n)
        guard delta < 1 / Double(n) else {
            throw TrainingError.data("privacy.delta = \(delta) is not below 1/N = \(1 / Double(n)) for the \(n) training examples; δ ≥ 1/N allows releasing an example outright")
        }
        // one DP-SGD step per discriminator update for GANs (the discriminator is the private network)
        let steps = config.totalSteps * (config.kind.isGAN ? config.ganTraining.discriminatorSteps : 1)
        var sigma = p.noiseMultiplier
        if p.targetEpsilon > 0 {
            guard let s = PrivacySpent.sigma(forEpsilon: p.targetEpsilon, q: q, steps: steps, delta: delta) else {
                throw TrainingError.data("privacy.target_epsilon = \(p.targetEpsilon) cannot be reached in \(steps) steps at q = \(q) with σ ≤ 10⁶")
            }
            sigma = s
        }
        sampleRate = q; noiseMultiplier = sigma; clipNorm = p.clipNorm; self.delta = delta
        expectedBatchSize = Double(config.train.batchSize); multiplicity = p.multiplicity; totalSteps = steps
        trainingSteps = config.totalSteps
        rdpPerStep = RDP.defaultOrders.map { RDP.subsampledGaussian(q: q, sigma: sigma, order: $0) }
    }

    /// DP-SGD steps per training step (a GAN's discriminator updates).
    public var stepsPerTrainingStep: Int { max(1, totalSteps / max(trainingSteps, 1)) }
    let trainingSteps: Int

    /// (ε, δ) after `steps` DP-SGD steps, both conversions.
    public func spent(steps: Int) -> (improved: Double, classic: Double) {
        let rdp = rdpPerStep.map { $0 * Double(steps) }
        let imp = RDP.epsilon(rdp: rdp, delta: delta, conversion: .improved)
        let cls = RDP.epsilon(rdp: rdp, delta: delta, conversion: .classic)
        return (imp.epsilon, cls.epsilon)
    }

    /// Step `step`'s Poisson batch: each of the n examples independently with probability q,
    /// from the step's key (so a resumed run draws the same batches). May be empty.
    public func poissonBatch(examples n: Int, key: RandomKey) -> [Int] {
        (0..<n).filter { Double(key.word($0)) / 4_294_967_296.0 < sampleRate }
    }

    /// One line for the log.
    public var summary: String {
        let end = spent(steps: totalSteps)
        return String(format: "DP-SGD: q = %.6g (Poisson, expected batch %.0f), σ = %.6g, C = %.6g, δ = %.3g, multiplicity %d; after %d steps ε = %.4g (improved conversion), %.4g (classic)",
                      sampleRate, expectedBatchSize, noiseMultiplier, clipNorm, delta, multiplicity, totalSteps, end.improved, end.classic)
    }
}
