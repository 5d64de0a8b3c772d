import ArgumentParser
import Data
import Examples
import Foundation
import Tensor
import Training

@main
struct Eidetic: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eidetic",
        abstract: "Train small diffusion models and GANs and measure what they memorize.",
        subcommands: [Quickstart.self, RunExperiment.self, SweepCommand.self, TablesCommand.self, Train.self, Sample.self, Status.self, Describe.self, DataCommand.self, Eval.self, PrivacyCommand.self, Example.self, Bench.self])

    /// Every failure ends as one line on stderr and a non-zero exit (`CLI.main`).
    static func main() { CLI.main() }
}

/// The main job on an embedded default: train a small DDPM on a few images of the
/// embedded Fashion-MNIST subset until it memorizes them, sample from it, and show every
/// sample beside its nearest training image.
struct Quickstart: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a small DDPM on embedded data until it memorizes, sample, and show samples beside their nearest training images.")

    /// The embedded default config (also saved as config.resolved.json in the run).
    static let config = """
    # Quickstart: a small U-Net DDPM (0.3 M parameters) on 16 Fashion-MNIST images of the
    # embedded dataset, trained for 2,500 steps: about 5 minutes on 2 cores, after which a
    # good part of its samples are near-copies of training images.
    [run]
    name = "quickstart"
    seed = 0

    [data]
    file = "datasets/fashion-mnist-2k.h5"
    subset = 16
    flip = false

    [model]
    preset = ""
    image_channels = 1
    image_size = 32
    base_channels = 16
    channel_multipliers = [1, 2, 2]
    groups = 8

    [train]
    batch_size = 16
    images = 40000
    lr = 1e-3
    warmup_steps = 50
    ema_decay = 0.995
    checkpoint_every = 100
    log_every = 50

    [sample]
    count = 64
    batch_size = 64
    sampler = "ddim"
    steps = 50
    """

    @Option(help: "Run directory.") var runDir = "results/quickstart"
    @Option(name: .customLong("set"), help: "Override a config key (repeatable), e.g. --set train.images=16000.") var overrides: [String] = []
    @Option(help: "Normalized ℓ2 below which a sample counts as a copy of a training image.") var threshold = 0.05
    @OptionGroup var threads: ThreadOptions

    func validate() throws { try Check.finite(threshold, "--threshold", above: 0) }

    func run() throws {
        let start = Date()
        let config = try TrainConfig.load(toml: Quickstart.config, file: "<embedded quickstart config>", overrides: overrides)
        print("eidetic quickstart: DDPM on \(config.data.subset) images of \(config.data.file) (\(config.totalSteps) steps); run directory \(runDir)")
        threads.apply(configured: config.train.threads)
        let trainer = try Trainer(config: config, directory: runDir)
        trainer.threadsOverride = threads.threads
        try trainer.run()
        let request = SampleRequest(count: config.sample.count, batchSize: config.sample.batchSize, sampler: config.sample.sampler, useEMA: config.sample.useEMA)
        let run = RunDirectory(runDir)
        let step = try run.loadCheckpoint().step
        let existing = sampleFilePath(run: run, request: request, step: step)
        let file: String, grid: String, samples: ImageSet
        if FileManager.default.fileExists(atPath: existing) {
            // the same request at the same checkpoint step: the same samples (deterministic)
            (file, grid, samples) = (existing, existing.replacingOccurrences(of: ".h5", with: ".png"), try DatasetFile(existing).load("samples"))
            print("using the samples already drawn at step \(step): \(existing)")
        } else {
            (file, grid, samples) = try generateSamples(run: run, request: request)
        }
        let (train, _) = try trainingSet(config)
        let nn = NearestNeighbors.search(queries: samples, references: train, k: 1)
        let order = (0..<samples.count).sorted { nn[$0][0].distance < nn[$1][0].distance }
        let pairs = order.map { (samples.image($0), train.image(nn[$0][0].index)) }
        let pairsPath = RunDirectory(runDir).samples + "/nearest-pairs.png"
        try PNG.write(PNG.pairsGrid(pairs, channels: samples.channels, height: samples.height, width: samples.width, pairsPerRow: 8), to: pairsPath)
        let copies = order.filter { nn[$0][0].distance < threshold }
        let distinct = Set(copies.map { nn[$0][0].index })
        let d = order.map { nn[$0][0].distance }
        print(String(format: "\nnearest training image per sample (normalized ℓ2): min %.4f, median %.4f, max %.4f", d.first ?? 0, d[d.count / 2], d.last ?? 0))
        print("memorized: \(copies.count) of \(samples.count) samples are within ℓ2 < \(threshold) of a training image (\(distinct.count) of \(train.count) training images reproduced)")
        print("samples:        \(file)")
        print("sample grid:    \(grid)")
        print("pairs grid:     \(pairsPath)   (each sample, then its nearest training image; closest first)")
        print("metrics:        \(RunDirectory(runDir).metrics)")
        print(String(format: "done in %.1f s", Date().timeIntervalSince(start)))
    }
}

struct Example: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a small training example.")
    enum Name: String, ExpressibleByArgument { case xor, cnn }
    @Argument(help: "xor or cnn") var name: Name
    @Option(help: "Root random seed.") var seed: UInt64 = 0

    func run() throws {
        switch name {
        case .xor:
            let (loss, p) = try Examples.xor(seed: seed)
            print(String(format: "XOR loss %.5f  predictions %@", loss, p.map { String(format: "%.3f", $0) }.joined(separator: " ")))
        case .cnn:
            let (acc, loss) = try Examples.trainTinyCNN(seed: seed) { print($0) }
            print(String(format: "test accuracy %.2f%%  final loss %.4f", acc * 100, loss))
        }
    }
}
