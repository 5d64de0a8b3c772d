import Data
import Foundation
import HDF5
import NN
import Optim
import Tensor

/// One batch of training examples as the loop hands it to a task.
public struct TrainingBatch {
    /// [B, C, H, W] in [−1, 1], flipped at random when `data.flip` is set.
    public let images: Tensor
    /// Class labels of the examples.
    public let labels: [Int]
    /// Positions of the examples in the training set.
    public let indices: [Int]

    public init(images: Tensor, labels: [Int], indices: [Int]) {
        self.images = images; self.labels = labels; self.indices = indices
    }
}

/// What the loop tells a task about the step it is to take.
public struct StepContext {
    /// 0-based update number.
    public let step: Int
    /// The step's random key, `RandomKey(run.seed).fold("step").fold(step)`; tasks fold a
    /// purpose into it ("t", "noise", "z", …), so a resumed run draws the same numbers.
    public let key: RandomKey
    /// The schedule's rate for this step (`train.lr` with warmup and decay).
    public let learningRate: Double
    /// The schedule's rate as a fraction of `train.lr` (tasks with several optimizers scale
    /// each of their own base rates by it).
    public let rateFactor: Double
    /// `train.grad_clip` (0: no clipping).
    public let gradClip: Double

    public init(step: Int, key: RandomKey, learningRate: Double, rateFactor: Double, gradClip: Double) {
        self.step = step; self.key = key; self.learningRate = learningRate; self.rateFactor = rateFactor; self.gradClip = gradClip
    }
}

/// What differs between model families; the `Trainer` owns everything else. This is the
/// split of improved-diffusion's `TrainLoop`, which takes the model and the diffusion process
/// as arguments: the loop never knows whether it trains a U-Net on a diffusion loss or a
/// generator against a discriminator.
public protocol TrainingTask: AnyObject {
    /// One line for the log: the networks and their sizes.
    var summary: String { get }
    /// The network whose weights the loop averages (EMA) and samples are drawn from.
    var sampledModule: Module { get }
    /// Real batches one step consumes (1; a GAN's discriminator steps per generator step).
    var batchesPerStep: Int { get }
    /// One update on `batches` (`batchesPerStep` of them). Returns named metrics (the first
    /// is the headline loss); throws `OptimizerError.nonFiniteLoss` when a loss is not finite,
    /// before updating the network it belongs to.
    func step(_ batches: [TrainingBatch], _ context: StepContext) throws -> [(name: String, value: Double)]
    /// What a checkpoint holds besides the EMA: weights, buffers and optimizer state, by name.
    func state() -> TensorTree
    /// Restores `state()` from a checkpoint (checked: shapes, finite weights).
    func load(_ tree: TensorTree, file: String) throws
}

extension TrainingTask {
    public var batchesPerStep: Int { 1 }
}

/// The training loop every model kind shares: data selection and batching (a
/// `BatchSchedule` over the selected examples, flips), step counting, the learning-rate
/// schedule, EMA of the sampled network, divergence detection, metrics and a progress line
/// with ETA, atomic checkpoints every `train.checkpoint_every` steps, exact resume after
/// SIGKILL, and a checkpoint on SIGINT/SIGTERM. Every random stream is derived from
/// (run seed, purpose, step), so a resumed run repeats the same batches and noise. The model
/// kind (`model.kind`) chooses the task: `DiffusionTask` for the U-Net.
public final class Trainer {
    public let config: TrainConfig
    public let directory: RunDirectory
    public let task: TrainingTask
    public let ema: EMA
    public let data: ImageSet
    /// What the checkpoint records and every later resume, sample and evaluation checks.
    public let identity: TrainingIdentity
    public private(set) var step = 0
    var lock: RunLock?
    /// `--threads` from the command line, which wins over train.threads.
    public var threadsOverride: Int?
    public private(set) var schedule: BatchSchedule
    /// DP-SGD settings resolved against the training set (nil: ordinary training).
    public let privacy: ResolvedPrivacy?
    public let learningRates: LearningRateSchedule
    let root: RandomKey
    /// Which examples were selected, for the log.
    let dataDescription: String
    /// Receives progress and log lines (flushed, so redirected logs stay current).
    public var output: (String) -> Void = { print($0); fflush(stdout) }

    public init(config: TrainConfig, directory: String) throws {
        self.config = config
        self.directory = RunDirectory(directory)
        root = RandomKey(seed: config.run.seed)
        let (set, what) = try trainingSet(config)
        dataDescription = what
        identity = try TrainingIdentity(config: config, trainingSet: set)
        guard config.train.batchSize <= set.count else {
            throw TrainingError.data("train.batch_size \(config.train.batchSize) is larger than the \(set.count) training images")
        }
        data = set
        privacy = try config.privacy.map { _ in try ResolvedPrivacy(config, examples: set.count) }
        task = try makeTask(config, key: root, privacy: privacy)
        ema = EMA(task.sampledModule.parameters(), decay: config.train.emaDecay)
        learningRates = config.train.learningRateSchedule(totalSteps: config.totalSteps)
        schedule = BatchSchedule(count: set.count, batchSize: config.train.batchSize, key: root.fold("batches"))
    }

    public static func threads(_ configured: Int) -> Int {
        if configured > 0 { return configured }
        if let s = ProcessInfo.processInfo.environment["SLURM_CPUS_PER_TASK"], let n = Int(s), n > 0 { return n }
        return ProcessInfo.processInfo.activeProcessorCount
    }

    /// Takes the run directory's exclusive lock, creates it or checks that it holds this same
    /// config, and restores the last checkpoint if there is one (after checking that it was
    /// trained with this config and this training data). Returns whether it resumed.
    @discardableResult
    public func prepare() throws -> Bool {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory.path + "/checkpoints", withIntermediateDirectories: true)
        if lock == nil { lock = try RunLock.acquire(directory.path, mode: .exclusive, purpose: "training") }
        for p in removeStaleTemporaries(in: directory.path) { directory.appendLog("removed \(p), left by an interrupted write") }
        if let s = directory.readStatus(), s["state"] as? String == "running" {
            let line = "the previous process (pid \(s["pid"].map { "\($0)" } ?? "?")) ended without recording it (killed?) at step ≥ \(s["step"].map { "\($0)" } ?? "?"); resuming from the last checkpoint"
            output(line); directory.appendLog(line)
        }
        let resolved = try config.canonicalJSON()
        if let existing = fm.contents(atPath: directory.config) {
            // The same config, or the same one trained for more (or fewer) images: with a
            // constant rate after warmup, a longer run is a continuation of a shorter one.
            let old = try? JSONDecoder().decode(TrainConfig.self, from: existing)
            guard let old, try old.trainingIdentityHash() == config.trainingIdentityHash() else {
                throw TrainingError.runDirectory("\(directory.path) holds a run with a different config (see its config.resolved.json); choose another --run-dir")
            }
            if old.train.images != config.train.images {
                guard config.train.lrSchedule == "constant" else {
                    throw TrainingError.runDirectory("\(directory.path): train.images changed from \(old.train.images) to \(config.train.images), but with train.lr_schedule = \"\(config.train.lrSchedule)\" the rate at every step depends on the length; choose another --run-dir")
                }
                let line = "train.images changed from \(old.train.images) to \(config.train.images): continuing the same run"
                output(line); directory.appendLog(line)
            }
        }
        guard fm.fileExists(atPath: directory.checkpoint) else {
            // a run killed before its first checkpoint starts again from step 0
            if fm.fileExists(atPath: directory.metrics) { try writeFileAtomically(Data(), to: directory.metrics) }
            try writeFileAtomically(resolved, to: directory.config)
            return false
        }
        try restore()
        try writeFileAtomically(resolved, to: directory.config)
        return true
    }

    func restore() throws {
        let file = directory.checkpoint
        let (tree, attrs) = try TensorFile.load(file)
        try identity.verify(checkpoint: file, attributes: attrs, requireIdentity: !FileManager.default.fileExists(atPath: directory.config))
        func int(_ k: String) throws -> Int {
            guard case .int(let v)? = attrs[k] else { throw TrainingError.runDirectory("\(file): missing attribute \(k)") }
            return Int(v)
        }
        try task.load(tree, file: file)
        try ema.load(tree.subtree("ema"))
        step = try int("step")
        guard step >= 0 else { throw TrainingError.runDirectory("\(file): step \(step) is negative") }
        try checkFinite(ema.shadow, what: "EMA weights", file: file)
        schedule = BatchSchedule(count: schedule.count, batchSize: schedule.batchSize, key: schedule.key,
                                 epoch: try int("schedule_epoch"), position: try int("schedule_position"))
        // metrics past the checkpoint were produced by steps that will run again
        if let text = try? String(contentsOfFile: directory.metrics, encoding: .utf8) {
            let kept = text.split(separator: "\n").filter { line in
                guard let d = line.data(using: .utf8), let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
                      let s = o["step"] as? Int else { return false }
                return s <= step
            }
            try writeFileAtomically(Data((kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).utf8), to: directory.metrics)
        }
    }

    func saveCheckpoint() throws {
        var tree = task.state()
        tree.merge(ema.shadow.prefixed("ema"))
        try TensorFile.save(tree, attributes: [
            "step": .int(Int64(step)), "images_seen": .int(Int64(step * config.imagesPerStep)),
            "schedule_epoch": .int(Int64(schedule.epoch)), "schedule_position": .int(Int64(schedule.position)),
            "seed": .int(Int64(bitPattern: config.run.seed)), "config_hash": .string(try config.identityHash()),
            "model_kind": .string(config.kind.rawValue),
            "rng": .string("Philox4x32-10; every stream is RandomKey(seed).fold(purpose).fold(step)"),
        ].merging(identity.attributes) { a, _ in a }.merging(privacyAttributes) { a, _ in a }, to: directory.checkpoint)
    }

    /// The run summary (`status.json`): state, step of total, and for private runs the privacy
    /// spent so far (ε by both conversions, δ).
    func statusFields(_ state: String, _ extra: [String: Any] = [:]) -> [String: Any] {
        var f: [String: Any] = ["state": state, "step": step, "total_steps": config.totalSteps]
        if let privacy {
            let spent = privacy.spent(steps: step * privacy.stepsPerTrainingStep)
            f["epsilon"] = spent.improved; f["epsilon_classic"] = spent.classic; f["delta"] = privacy.delta
        }
        return f.merging(extra) { _, b in b }
    }

    /// What a private run's checkpoint records of its privacy: ε so far (improved
    /// conversion), δ, σ and q.
    var privacyAttributes: [String: AttributeValue] {
        guard let privacy else { return [:] }
        let spent = privacy.spent(steps: step * privacy.stepsPerTrainingStep)
        return ["privacy_epsilon": .double(spent.improved), "privacy_epsilon_classic": .double(spent.classic),
                "privacy_delta": .double(privacy.delta), "privacy_sigma": .double(privacy.noiseMultiplier),
                "privacy_sample_rate": .double(privacy.sampleRate), "privacy_clip_norm": .double(privacy.clipNorm)]
    }

    /// One update on the next batches at learning rate `rate` (the schedule's for this step);
    /// returns the task's metrics.
    func trainStep(rate: Double) throws -> [(name: String, value: Double)] {
        let key = root.fold("step").fold(UInt64(step))
        let batches = (0..<task.batchesPerStep).map { j -> TrainingBatch in
            // private runs: a Poisson sample of the training set (possibly empty), as the accountant assumes
            let poissonKey = j == 0 ? key.fold("poisson") : key.fold("poisson").fold(UInt64(j))
            let idx = privacy.map { $0.poissonBatch(examples: data.count, key: poissonKey) } ?? schedule.next()
            if idx.isEmpty {
                return TrainingBatch(images: Tensor.zeros([0, config.imageChannels, config.imageSize, config.imageSize]), labels: [], indices: [])
            }
            let batch = data.subset(idx)
            let flipKey = j == 0 ? key.fold("flip") : key.fold("flip").fold(UInt64(j))
            return TrainingBatch(images: batch.tensor(flipKey: config.data.flip ? flipKey : nil), labels: batch.labels, indices: idx)
        }
        let context = StepContext(step: step, key: key, learningRate: rate,
                                  rateFactor: learningRates.base > 0 ? rate / learningRates.base : 0, gradClip: config.train.gradClip)
        var metrics: [(name: String, value: Double)]
        do {
            metrics = try ComputePrecision.$current.withValue(config.train.precision) { try task.step(batches, context) }
        } catch OptimizerError.nonFiniteLoss(let v) {
            throw TrainingError.diverged(step: step, loss: v)
        }
        if config.train.injectNaNAtStep > 0 && step + 1 == config.train.injectNaNAtStep, let i = metrics.firstIndex(where: { $0.name.hasSuffix("loss") }) {
            metrics[i].value = .nan   // train.inject_nan_at_step: a divergence on demand (tests)
        }
        if let bad = metrics.first(where: { !$0.value.isFinite && $0.name.hasSuffix("loss") }) {
            throw TrainingError.diverged(step: step, loss: bad.value)
        }
        ema.update(from: task.sampledModule.parameters(), step: step)
        step += 1
        return metrics
    }

    /// Trains to the configured length (or `stopAfter` more steps, or up to step `stopAt`),
    /// checkpointing every `checkpoint_every` steps and at the end. On SIGINT/SIGTERM (see
    /// `Interruption`) it checkpoints, records status "interrupted" and throws.
    public func run(stopAfter: Int? = nil, stopAt: Int? = nil) throws {
        Threads.count = Trainer.threads(threadsOverride ?? config.train.threads)
        defer { lock = nil }   // one writer while training; released when run() returns
        let resumed = try prepare()
        let total = config.totalSteps
        let header = (resumed ? "resuming at step \(step)/\(total)" : "starting \(total) steps") +
            " in \(directory.path); data \(dataDescription); \(task.summary); threads \(Threads.count)"
        output(header); directory.appendLog(header)
        if let privacy { output(privacy.summary); directory.appendLog(privacy.summary) }
        directory.writeStatus(statusFields("running"))
        let isTTY = isatty(STDOUT_FILENO) != 0
        let start = Date()
        let startStep = step
        var recent: [[(name: String, value: Double)]] = []
        let limit = min(total, stopAt ?? total, stopAfter.map { step + $0 } ?? total)
        Interruption.handled = true
        defer { Interruption.handled = false }
        do {
            while step < limit {
                if Interruption.requested {
                    if isTTY { print("") }
                    try saveCheckpoint()
                    directory.writeStatus(statusFields("interrupted", ["signal": Interruption.signalName]))
                    let line = "\(Interruption.signalName): checkpointed at step \(step)/\(total) and stopped; rerun the same command to resume"
                    output(line); directory.appendLog(line)
                    throw TrainingError.interrupted(step: step, signal: Interruption.signalNumber)
                }
                let rate = learningRates.rate(at: step)
                let metrics = try trainStep(rate: rate)
                recent.append(metrics)
                let elapsed = Date().timeIntervalSince(start)
                let ips = Double((step - startStep) * config.imagesPerStep) / max(elapsed, 1e-9)
                let eta = Double(total - step) * Double(config.imagesPerStep) / max(ips, 1e-9)
                // the metrics line goes first (restore() drops lines past the checkpoint), the
                // human line after the checkpoint: "step N/N" in log.txt means step N is durable,
                // so a finished run never logs its last step twice
                var human: String?
                if step % config.train.logEvery == 0 || step == total {
                    let means = metrics.indices.map { i in (metrics[i].name, recent.reduce(0) { $0 + $1[i].value } / Double(recent.count)) }
                    recent.removeAll()
                    let fields = means.map { String(format: "\"%@\": %.6f", $0.0, $0.1) }.joined(separator: ", ")
                    let dp = privacy.map { String(format: ", \"epsilon\": %.6g, \"delta\": %.3g", $0.spent(steps: step * $0.stepsPerTrainingStep).improved, $0.delta) } ?? ""
                    let line = String(format: "{\"step\": %d, \"images\": %d, %@%@, \"images_per_sec\": %.2f, \"lr\": %.6g, \"elapsed_s\": %.1f}",
                                      step, step * config.imagesPerStep, fields, dp, ips, rate, elapsed)
                    directory.appendMetrics(line)
                    human = String(format: "step %d/%d  %@  %.1f img/s  ETA %@", step, total, Trainer.format(means), ips, formatDuration(eta))
                }
                if step % config.train.checkpointEvery == 0 || step == total {
                    try saveCheckpoint()
                    directory.writeStatus(statusFields(step == total ? "done" : "running"))
                }
                if let human {
                    if !isTTY { output(human) }
                    directory.appendLog(human)
                }
                if isTTY { print("\r" + String(format: "step %d/%d  %@  %.1f img/s  ETA %@   ", step, total, Trainer.format(metrics), ips, formatDuration(eta)), terminator: "") ; fflush(stdout) }
            }
            if isTTY { print("") }
            if step < total, step % config.train.checkpointEvery != 0 { try saveCheckpoint() }
            directory.writeStatus(statusFields(step == total ? "done" : "stopped"))
        } catch TrainingError.interrupted(let s, let sig) {
            throw TrainingError.interrupted(step: s, signal: sig)
        } catch {
            directory.writeStatus(statusFields("failed", ["error": "\(error)"]))
            directory.appendLog("failed: \(error)")
            throw error
        }
    }

    /// "loss 0.1234" or "d_loss 1.3021  g_loss 0.7012  …".
    static func format(_ metrics: [(name: String, value: Double)]) -> String {
        metrics.map { String(format: "%@ %.4f", $0.name, $0.value) }.joined(separator: "  ")
    }
}

/// The task for a config's model kind.
func makeTask(_ config: TrainConfig, key: RandomKey, privacy: ResolvedPrivacy? = nil) throws -> TrainingTask {
    switch config.kind {
    case .unet: return try DiffusionTask(config, key: key, privacy: privacy)
    case .dcgan, .sngan: return try GANTask(config, key: key, privacy: privacy)
    }
}

extension RunDirectory {
    func appendMetrics(_ line: String) { append(line, to: metrics) }
}

func formatDuration(_ s: Double) -> String {
    guard s.isFinite else { return "?" }
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t / 60 % 60) : String(format: "%dm%02ds", t / 60, t % 60)
}
