import ArgumentParser
import Data
import Examples
import Foundation
import Tensor
import Training
import Experiments

@main
struct Eidetic: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eidetic",
        abstract: "Train small diffusion models and GANs and measure what they memorize.",
        subcommands: [Quickstart.self, RunExperiment.self, SweepCommand.self, TablesCommand.self, Train.self, Sample.self, Status.self, Describe.self, DataCommand.self, Eval.self, PrivacyCommand.self, Example.self, Bench.self])

    /// Every failure ends as one line on stderr and a non-zero exit (`CLI.main`).
    static func main() { CLI.main() }
}

/// The main job on an embedded default: a small LiRA membership study. Four U-Net DDPMs,
/// each trained on its half of 16 embedded Fashion-MNIST images (8 each) long enough to
/// start memorizing them, run by 2 local workers; each is sampled and its samples scored
/// for extraction; LiRA then attacks all four; tables and the HTML report are written.
struct Quickstart: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A small membership study on embedded data: 4 DDPMs trained by 2 local workers, sampled, attacked (extraction + LiRA), tabulated and reported in HTML.")

    /// The experiment every model of the quickstart runs (written to results/quickstart.toml).
    static let experiment = """
    # The quickstart's experiment: a small U-Net DDPM (0.3 M parameters) on its half of the
    # sweep's 16-image pool of the embedded Fashion-MNIST subset (8 images), 1,500 steps.
    [run]
    name = "quickstart"
    seed = 0

    [data]
    file = "datasets/fashion-mnist-2k.h5"
    flip = false

    [model]
    preset = ""
    image_channels = 1
    image_size = 32
    base_channels = 16
    channel_multipliers = [1, 2, 2]
    groups = 8

    [train]
    batch_size = 8
    images = 12000
    lr = 1e-3
    warmup_steps = 50
    ema_decay = 0.995
    checkpoint_every = 100
    log_every = 100

    [sample]
    count = 64
    batch_size = 64
    sampler = "ddim"
    steps = 50

    [eval.extraction]
    enabled = true
    """

    /// The sweep (written to results/quickstart-sweep.toml).
    static let sweep = """
    # The quickstart's sweep: a membership plan of 4 models over 16 images, one job per model,
    # then LiRA over the four. `eidetic sweep run results/quickstart-sweep.toml` continues it.
    [sweep]
    name = "quickstart"
    base = "results/quickstart.toml"
    out = "results"

    [plan]
    kind = "membership"
    pool = 16
    models = 4
    seed = 0

    [[axis]]
    key = "data.plan_model"
    range = [0, 4]

    [lira]
    timesteps = [100, 200]
    draws = 2
    """

    @Option(help: "Jobs at once (default 2, or 1 on a 1-core machine).") var workers: Int?

    func validate() throws { try Check.atLeast(workers, 1, "--workers") }

    func run() throws {
        let start = Date()
        let fm = FileManager.default
        try fm.createDirectory(atPath: "results", withIntermediateDirectories: true)
        for (path, text) in [("results/quickstart.toml", Quickstart.experiment), ("results/quickstart-sweep.toml", Quickstart.sweep)] {
            if let old = fm.contents(atPath: path), String(decoding: old, as: UTF8.self) != text {
                print("using your edited \(path) (delete it to get the embedded default back)")
            } else if fm.contents(atPath: path) == nil {
                try writeFileAtomically(Data(text.utf8), to: path)
            }
        }
        let s = try Sweep(file: "results/quickstart-sweep.toml")
        let jobs = try s.plan()
        let w = workers ?? min(2, ProcessInfo.processInfo.activeProcessorCount)
        print("eidetic quickstart: \(jobs.count) DDPMs on halves of 16 embedded Fashion-MNIST images, \(w) worker(s) × 1 thread; logs in \(s.logsFolder)")
        Interruption.handled = true
        try s.runLocal(workers: w, threads: 1, executable: executablePath())
        for l in try s.summaryLines() { print(l) }
        if Interruption.requested { throw ExitCode(128 + Interruption.signalNumber) }
        let c = try s.counts()
        guard c.done == c.total else { throw ExitCode(1) }
        try finishSweep(s)
        for t in ["summary", "lira"] {
            if let text = try? String(contentsOfFile: s.spec.directory + "/tables/\(t).md", encoding: .utf8) { print(""); print(text, terminator: "") }
        }
        print(String(format: "\ndone in %.0f s. Open the report: %@", Date().timeIntervalSince(start), URL(fileURLWithPath: s.spec.directory + "/report/index.html").standardizedFileURL.path))
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
