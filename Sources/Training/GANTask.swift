import Foundation
import Models
import NN
import Optim
import Tensor

/// GAN training (Goodfellow et al., 2014) of a DCGAN-style generator against a
/// discriminator, in the order of PyTorch's DCGAN example: draw z, generate the fake batch
/// once; update D on the real batch and the detached fake batch (separate forward calls, so
/// BatchNorm sees each batch alone); then update G through the *updated* D on the same fake
/// batch. With `gan.d_steps` = k > 1, k − 1 extra D updates on their own real batches and
/// fresh fakes come first (SNGAN's n_dis). Losses: non-saturating or hinge. DiffAugment
/// (Zhao et al., 2020), when set, is applied to every image D sees, real or fake, in both steps.
/// Class-conditional models generate fakes with the real batch's labels.
///
/// Checkpoint layout: `generator.*`, `discriminator.*` (weights, BatchNorm statistics and
/// spectral-norm vectors u, v), `optimizer_g.*`, `optimizer_d.*`, and the loop's `ema.*` (EMA
/// of the generator's parameters; its BatchNorm statistics are the generator's own).
///
/// Metrics per step: d_loss, g_loss, d_real_acc and d_fake_acc (fraction of real logits > 0
/// and fake logits < 0 in the last D step: both near 1 means D is winning, both near 0.5 means
/// balance) and fake_std, the per-pixel standard deviation across the fake batch averaged over
/// pixels (a cheap diversity statistic: it falls towards 0 when G collapses to one mode).
public final class GANTask: TrainingTask {
    public let config: TrainConfig
    public let generator: DCGANGenerator
    public let discriminator: DCGANDiscriminator
    public let optimizerG: Adam
    public let optimizerD: Adam
    public let augment: DiffAugment

    /// The key both networks' initial weights derive from (`untrainedGenerator` rebuilds G with it).
    static func initKey(_ root: RandomKey) -> RandomKey { root.fold("init") }

    /// DP-SGD for the discriminator (`[privacy]`): the only network that sees training
    /// images; the generator learns through it (post-processing).
    public let privateD: DPOptimizer?

    public init(_ config: TrainConfig, key: RandomKey, privacy: ResolvedPrivacy? = nil) throws {
        self.config = config
        let t = config.ganTraining
        generator = try DCGANGenerator(config.gan, key: Self.initKey(key).fold("generator"))
        discriminator = try DCGANDiscriminator(config.gan, key: Self.initKey(key).fold("discriminator"))
        optimizerG = Adam(learningRate: config.train.learningRate, beta1: t.beta1, beta2: t.beta2)
        let adamD = Adam(learningRate: t.discriminatorLR, beta1: t.beta1, beta2: t.beta2)
        optimizerD = adamD
        privateD = privacy.map { DPOptimizer(adamD, clipNorm: $0.clipNorm, noiseMultiplier: $0.noiseMultiplier, expectedBatchSize: $0.expectedBatchSize) }
        augment = try DiffAugment(policy: t.diffAugment)
    }

    public var summary: String {
        String(format: "generator %d parameters, %.1f MFLOP/image; discriminator %d parameters, %.1f MFLOP/image (%@ loss%@)",
               generator.parameterCount, Double(generator.forwardFLOPs) / 1e6,
               discriminator.parameterCount, Double(discriminator.forwardFLOPs) / 1e6,
               config.ganTraining.loss.rawValue, augment.isIdentity ? "" : ", DiffAugment \(augment.policy)")
    }

    public var sampledModule: Module { generator }
    public var batchesPerStep: Int { config.ganTraining.discriminatorSteps }

    /// D's logits for images as D sees them in training (augmented when DiffAugment is set).
    func judge(_ x: Tensor, labels: [Int]?, key: RandomKey) -> Tensor {
        discriminator(augment.isIdentity ? x : augment(x, key: key), labels: labels)
    }

    public func step(_ batches: [TrainingBatch], _ context: StepContext) throws -> [(name: String, value: Double)] {
        let kind = config.ganTraining.loss
        let conditional = config.gan.classes > 0
        optimizerG.learningRate = context.learningRate
        optimizerD.learningRate = config.ganTraining.discriminatorLR * context.rateFactor
        var dLoss = 0.0, realAcc = 0.0, fakeAcc = 0.0, fakeStd = 0.0

        /// One D update on a real batch and a (detached) fake batch.
        func discriminatorStep(real: TrainingBatch, fake: Tensor, fakeLabels: [Int]?, key: RandomKey) throws {
            if let dp = privateD {
                try privateDiscriminatorStep(real: real, fake: fake, fakeLabels: fakeLabels, key: key, dp)
                dLoss = lastDLoss; realAcc = lastRealAcc; fakeAcc = lastFakeAcc
                return
            }
            let labels = conditional ? real.labels : nil
            var realLogits = Tensor.zeros([1]), fakeLogits = Tensor.zeros([1])
            dLoss = try descend(discriminator, with: optimizerD, clipNorm: context.gradClip) {
                realLogits = judge(real.images, labels: labels, key: key.fold("augment-real"))
                fakeLogits = judge(fake.detached(), labels: labels, key: key.fold("augment-fake"))
                return ganDiscriminatorLoss(real: realLogits, fake: fakeLogits, kind)
            }
            realAcc = realLogits.doubles.reduce(0) { $0 + ($1 > 0 ? 1 : 0) } / Double(realLogits.count)
            fakeAcc = fakeLogits.doubles.reduce(0) { $0 + ($1 < 0 ? 1 : 0) } / Double(fakeLogits.count)
        }

        // Fakes: as many as real images with their labels; in a private run as many as the
        // expected batch with uniform labels, so nothing about the Poisson batch leaks through them.
        func fakeCount(_ real: TrainingBatch) -> Int { privateD.map { Int($0.expectedBatchSize) } ?? real.images.shape[0] }
        func fakeLabels(_ real: TrainingBatch, key: RandomKey) -> [Int]? {
            guard conditional else { return nil }
            guard privateD != nil else { return real.labels }
            let k = key.fold("fake-labels")
            return (0..<fakeCount(real)).map { Int((UInt64(k.word($0)) * UInt64(config.gan.classes)) >> 32) }
        }
        // extra discriminator steps (d_steps > 1), each on its own real batch and fresh fakes
        for (j, real) in batches.dropLast().enumerated() {
            let key = context.key.fold("d-step").fold(UInt64(j))
            let fl = fakeLabels(real, key: key)
            let fake = withoutGradient { generator(generator.sampleLatents(fakeCount(real), key: key.fold("z")), labels: fl) }
            try discriminatorStep(real: real, fake: fake, fakeLabels: fl, key: key)
        }
        // the last D step and the G step share one generator pass
        let real = batches[batches.count - 1]
        let labels = fakeLabels(real, key: context.key)
        let z = generator.sampleLatents(fakeCount(real), key: context.key.fold("z"))
        let gLoss = try descend(generator, with: optimizerG, clipNorm: context.gradClip) {
            let fake = generator(z, labels: labels)
            try discriminatorStep(real: real, fake: fake, fakeLabels: labels, key: context.key)
            fakeStd = withoutGradient { Self.meanPixelStd(fake) }
            return ganGeneratorLoss(fake: judge(fake, labels: labels, key: context.key.fold("augment-g")), kind)
        }
        let metrics = [("d_loss", dLoss), ("g_loss", gLoss), ("d_real_acc", realAcc), ("d_fake_acc", fakeAcc), ("fake_std", fakeStd)]
        guard privateD != nil else { return metrics }
        return metrics + [("batch_examples", Double(lastPrivateStats.examples)), ("clipped_fraction", lastPrivateStats.clippedFraction),
                          ("grad_norm", lastPrivateStats.meanNorm)]
    }

    /// A private D update (DP-SGD; cf. Xie et al., 2018, DPGAN): the real images' loss terms
    /// get per-example gradients, clipped, noised and divided by the expected batch size
    /// (an estimate of the gradient of the mean real loss); the fake batch's term, which
    /// touches no training image, is added as an ordinary gradient. Then Adam.
    func privateDiscriminatorStep(real: TrainingBatch, fake: Tensor, fakeLabels: [Int]?, key: RandomKey, _ dp: DPOptimizer) throws {
        let kind = config.ganTraining.loss
        let conditional = config.gan.classes > 0
        let params = discriminator.parameters()
        var fakeLogits = Tensor.zeros([1])
        let (fakeValue, fakeGrads) = valueAndGradient(wrt: params) {
            fakeLogits = judge(fake.detached(), labels: fakeLabels, key: key.fold("augment-fake"))
            return kind == .hinge ? (1 + fakeLogits).relu().mean() : bceWithLogitsLoss(fakeLogits, Tensor.zeros(fakeLogits.shape))
        }
        let fakeLoss = fakeValue.item
        guard fakeLoss.isFinite else { throw OptimizerError.nonFiniteLoss(fakeLoss) }
        // the real batch in micro-batches of a fixed size (bounded memory, buffers of stable
        // sizes however the Poisson batch varies)
        let n = real.indices.count
        var realCorrect = 0.0
        let (realValue, stats) = try descendPrivately(discriminator, with: dp, batch: n, microBatch: DiffusionTask.privateMicroBatch,
                                                      plus: fakeGrads, noiseKey: key.fold("dp-noise")) { range in
            let images = real.images.sliced(axis: 0, start: range.lowerBound, length: range.count)
            let labels = conditional ? Array(real.labels[range]) : nil
            let logits = judge(images, labels: labels, key: key.fold("augment-real").fold(UInt64(range.lowerBound)))
            realCorrect += withoutGradient { logits.doubles.reduce(0) { $0 + ($1 > 0 ? 1 : 0) } }
            // Σ over examples of each one's loss term
            return kind == .hinge ? (1 - logits).relu().sum() : bceWithLogitsLoss(logits, Tensor.ones(logits.shape)) * Double(range.count)
        }
        let total = realValue / dp.expectedBatchSize + fakeLoss
        lastPrivateStats = stats
        lastDLoss = total
        lastRealAcc = n == 0 ? 0 : realCorrect / Double(n)
        lastFakeAcc = fakeLogits.doubles.reduce(0) { $0 + ($1 < 0 ? 1 : 0) } / Double(fakeLogits.count)
    }
    var lastPrivateStats = DPStepStats(examples: 0, meanNorm: 0, maxNorm: 0, clippedFraction: 0)
    var lastDLoss = 0.0, lastRealAcc = 0.0, lastFakeAcc = 0.0

    /// Per-pixel standard deviation across the batch, averaged over pixels. In Double;
    /// each pixel's sums run over images in order and the average over pixels in order, so
    /// splitting pixels across threads changes no bit.
    public static func meanPixelStd(_ x: Tensor) -> Double {
        let n = x.shape[0], size = x.count / max(n, 1)
        guard n > 1 else { return 0 }
        var std = [Double](repeating: 0, count: size)
        func run<T: TensorScalar>(_: T.Type) {
            let v = x.pointer(T.self)
            std.withUnsafeMutableBufferPointer { out in
                let out = out.baseAddress!
                Parallel.forRanges(size, cost: 4 * x.count) { r in
                    // images in the outer loop (contiguous reads)
                    var mean = [Double](repeating: 0, count: r.count), ss = [Double](repeating: 0, count: r.count)
                    for i in 0..<n { let row = v + i * size + r.lowerBound; for p in 0..<r.count { mean[p] += Double(row[p]) } }
                    for p in 0..<r.count { mean[p] /= Double(n) }
                    for i in 0..<n { let row = v + i * size + r.lowerBound; for p in 0..<r.count { let d = Double(row[p]) - mean[p]; ss[p] += d * d } }
                    for p in 0..<r.count { out[r.lowerBound + p] = (ss[p] / Double(n - 1)).squareRoot() }
                }
            }
        }
        if x.dtype == .float32 { run(Float.self) } else { run(Double.self) }
        var total = 0.0
        for p in 0..<size { total += std[p] }
        return total / Double(size)
    }

    public func state() -> TensorTree {
        var tree = generator.state().prefixed("generator")
        tree.merge(discriminator.state().prefixed("discriminator"))
        tree.merge(optimizerG.stateTree().prefixed("optimizer_g"))
        tree.merge(optimizerD.stateTree().prefixed("optimizer_d"))
        return tree
    }

    public func load(_ tree: TensorTree, file: String) throws {
        try generator.load(tree.subtree("generator"))
        try discriminator.load(tree.subtree("discriminator"))
        try optimizerG.load(stateTree: tree.subtree("optimizer_g"))
        try optimizerD.load(stateTree: tree.subtree("optimizer_d"))
        try checkFinite(generator.state(), what: "generator weights", file: file)
        try checkFinite(discriminator.state(), what: "discriminator weights", file: file)
    }
}
