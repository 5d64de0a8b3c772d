import Data
import Diffusion
import Foundation
import HDF5
import Models
import NN
import Optim
import Tensor

public enum TrainingError: Error, CustomStringConvertible {
    case data(String)
    case diverged(step: Int, loss: Double)
    case runDirectory(String)
    case interrupted(step: Int, signal: Int32)
    public var description: String {
        switch self {
        case .data(let m): return m
        case .diverged(let s, let l): return "training diverged: loss \(l) at step \(s) (the last checkpoint is kept)"
        case .runDirectory(let m): return m
        case .interrupted(let s, let sig): return "interrupted by \(sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "signal \(sig)") at step \(s) (checkpointed; rerun the same command to resume)"
        }
    }
}

/// The files of one run: `config.resolved.json`, `status.json`, `metrics.jsonl`,
/// `log.txt`, `checkpoints/latest.h5`, `samples/`.
public struct RunDirectory: Sendable {
    public let path: String
    public init(_ path: String) { self.path = path }
    public var config: String { path + "/config.resolved.json" }
    public var status: String { path + "/status.json" }
    public var metrics: String { path + "/metrics.jsonl" }
    public var log: String { path + "/log.txt" }
    public var checkpoint: String { path + "/checkpoints/latest.h5" }
    public var samples: String { path + "/samples" }

    public func loadConfig() throws -> TrainConfig {
        guard let d = FileManager.default.contents(atPath: config) else { throw TrainingError.runDirectory("\(path): no config.resolved.json (not a run directory?)") }
        do { return try JSONDecoder().decode(TrainConfig.self, from: d) } catch {
            throw TrainingError.runDirectory("\(config): unreadable resolved config: \(error)")
        }
    }

    /// Writes `status.json` atomically: state (running, done, stopped, interrupted, failed),
    /// step, and the writer's pid and host, so a "running" left by a killed process is
    /// recognisable (`eidetic status`: no process holds the run's lock).
    public func writeStatus(_ fields: [String: Any]) {
        var f = fields
        f["updated"] = ISO8601DateFormatter().string(from: Date())
        f["pid"] = Int(getpid()); f["host"] = ProcessInfo.processInfo.hostName
        if let d = try? JSONSerialization.data(withJSONObject: f, options: [.sortedKeys, .prettyPrinted]) {
            try? writeFileAtomically(d, to: status)
        }
    }

    public func appendLog(_ line: String) { append(line, to: log) }

    /// `status.json` as a dictionary, or nil.
    public func readStatus() -> [String: Any]? {
        guard let d = FileManager.default.contents(atPath: status) else { return nil }
        return try? JSONSerialization.jsonObject(with: d) as? [String: Any]
    }

    /// Appends one line to a text file, creating it if needed.
    func append(_ line: String, to file: String) {
        let s = Data((line + "\n").utf8)
        if let h = FileHandle(forWritingAtPath: file) { h.seekToEndOfFile(); h.write(s); try? h.close() }
        else { try? s.write(to: URL(fileURLWithPath: file)) }
    }
}

/// The training examples a config selects: a plan file's indices (subset, duplication, or
/// membership plan with `data.plan_model`), a class-balanced subset, or the whole split.
/// Returns the whole split, the dataset index of every training example (physical copies
/// repeated), and a description for the log.
public func trainingSelection(_ c: TrainConfig.DataSection) throws -> (split: ImageSet, indices: [Int], description: String) {
    let ds = try DatasetFile(c.file)
    guard ds.splits.contains(c.split) else {
        throw TrainingError.data("\(c.file): no split '\(c.split)' (data.split; the file has \(ds.splits.joined(separator: ", ")))")
    }
    let all = try ds.load(c.split)
    guard all.count > 0 else { throw TrainingError.data("\(c.file): split '\(c.split)' holds no images") }
    if let bad = all.labels.firstIndex(where: { $0 < 0 || $0 >= max(all.classNames.count, 1) }) {
        throw TrainingError.data("\(c.file): \(c.split) image \(bad) has label \(all.labels[bad]) but the file names \(all.classNames.count) classes")
    }
    var indices = Array(0..<all.count)
    var what = "\(c.file) \(c.split): all \(all.count)"
    if !c.plan.isEmpty {
        // dispatch on the plan's kind; every kind names the examples a model trains on
        let kind = try PlanFile.kind(of: c.plan)
        let reference: DatasetReference
        switch kind {
        case SubsetPlan.kind: let p = try PlanFile.read(SubsetPlan.self, from: c.plan); indices = p.indices; reference = p.dataset
        case DuplicationPlan.kind: let p = try PlanFile.read(DuplicationPlan.self, from: c.plan); indices = p.trainingIndices; reference = p.dataset
        case DeduplicationPlan.kind: let p = try PlanFile.read(DeduplicationPlan.self, from: c.plan); indices = p.kept; reference = p.dataset
        case OutlierScores.kind: let p = try PlanFile.read(OutlierScores.self, from: c.plan); indices = p.indices; reference = p.dataset
        case MembershipPlan.kind:
            let p = try PlanFile.read(MembershipPlan.self, from: c.plan)
            guard c.planModel >= 0 && c.planModel < p.models else {
                throw TrainingError.data("\(c.plan): membership plan of \(p.models) models; set data.plan_model to 0…\(p.models - 1) (got \(c.planModel))")
            }
            indices = p.members(model: c.planModel); reference = p.dataset
        default:
            throw TrainingError.data("\(c.plan): plan kind '\(kind)' names no training examples (known: subset, duplication, dedup, outliers, membership)")
        }
        if kind != MembershipPlan.kind && c.planModel >= 0 {
            throw TrainingError.data("data.plan_model is set but \(c.plan) is a \(kind) plan, not a membership plan")
        }
        what = kind == MembershipPlan.kind
            ? "\(c.file) \(c.split): membership plan \(c.plan), model \(c.planModel) (\(indices.count) examples)"
            : "\(c.file) \(c.split): \(kind) plan \(c.plan) (\(indices.count) examples)"
        if let bad = indices.first(where: { $0 < 0 || $0 >= all.count }) {
            throw TrainingError.data("\(c.plan): index \(bad) is outside \(c.file) \(c.split) (\(all.count) images)")
        }
        guard !indices.isEmpty else { throw TrainingError.data("\(c.plan): the plan selects no training examples") }
        if reference.split != c.split && !reference.split.isEmpty {
            throw TrainingError.data("\(c.plan) was made from split '\(reference.split)', but data.split is '\(c.split)'")
        }
        if !reference.contentSHA256.isEmpty {
            let got = DatasetReference.contentHash(all)
            guard got == reference.contentSHA256 else {
                throw TrainingError.data("\(c.plan) was made from other data: \(c.file) \(c.split) has sha256 \(got.prefix(12))…, the plan records \(reference.contentSHA256.prefix(12))… (\(reference.file))")
            }
        }
    }
    if c.subset > 0 {
        let labels = indices.map { all.labels[$0] }
        let plan = try SubsetPlan(dataset: DatasetReference(file: c.file, split: c.split, contentSHA256: ""),
                                  labels: labels, classes: all.classNames.count, size: c.subset, seed: c.subsetSeed)
        indices = plan.indices.map { indices[$0] }
        what += ", class-balanced subset of \(c.subset) (seed \(c.subsetSeed))"
    }
    return (all, indices, what)
}

/// The training images a config selects (see `trainingSelection`), checked against the model.
public func trainingSet(_ c: TrainConfig.DataSection, model: UNetConfig) throws -> (ImageSet, String) {
    let (all, indices, what) = try trainingSelection(c)
    let set = all.subset(indices)
    guard set.channels == model.imageChannels, set.height == model.imageSize, set.width == model.imageSize else {
        throw TrainingError.data("\(c.file): images are \(set.channels)×\(set.height)×\(set.width) but the model expects \(model.imageChannels)×\(model.imageSize)×\(model.imageSize) (model.image_channels / image_size)")
    }
    return (set, what)
}

/// DDPM training with Adam, EMA, warmup, gradient clipping and flips; resumes exactly
/// from its last checkpoint. Every random stream is derived from (run seed, purpose, step),
/// so a resumed run repeats the same batches, timesteps, noise and flips.
public final class DDPMTrainer {
    public let config: TrainConfig
    public let directory: RunDirectory
    public let model: UNet
    public let ema: EMA
    public let optimizer: Adam
    public let diffusion: GaussianDiffusion
    public let data: ImageSet
    /// What the checkpoint records and every later resume, sample and evaluation checks.
    public let identity: TrainingIdentity
    public private(set) var step = 0
    var lock: RunLock?
    /// `--threads` from the command line, which wins over train.threads.
    public var threadsOverride: Int?
    public private(set) var schedule: BatchSchedule
    let root: RandomKey
    /// Which examples were selected, for the log.
    let dataDescription: String
    /// Receives progress and log lines (flushed, so redirected logs stay current).
    public var output: (String) -> Void = { print($0); fflush(stdout) }

    public init(config: TrainConfig, directory: String) throws {
        self.config = config
        self.directory = RunDirectory(directory)
        root = RandomKey(seed: config.run.seed)
        let (set, what) = try trainingSet(config.data, model: config.model)
        dataDescription = what
        identity = try TrainingIdentity(config: config, trainingSet: set)
        guard config.train.batchSize <= set.count else {
            throw TrainingError.data("train.batch_size \(config.train.batchSize) is larger than the \(set.count) training images")
        }
        data = set
        model = try UNet(config.model, key: root.fold("init"))
        ema = EMA(model.parameters(), decay: config.train.emaDecay)
        optimizer = Adam(learningRate: config.train.learningRate)
        diffusion = config.diffusion.process
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
                let line = "train.images changed from \(old.train.images) to \(config.train.images): continuing the same run"
                output(line); directory.appendLog(line)
            }
        }
        guard fm.fileExists(atPath: directory.checkpoint) else {
            try writeFileAtomically(resolved, to: directory.config)
            return false
        }
        try restore()
        try writeFileAtomically(resolved, to: directory.config)
        return true
    }

    func restore() throws {
        let (tree, attrs) = try TensorFile.load(directory.checkpoint)
        try identity.verify(checkpoint: directory.checkpoint, attributes: attrs, requireIdentity: !FileManager.default.fileExists(atPath: directory.config))
        func int(_ k: String) throws -> Int {
            guard case .int(let v)? = attrs[k] else { throw TrainingError.runDirectory("\(directory.checkpoint): missing attribute \(k)") }
            return Int(v)
        }
        try model.load(tree.subtree("model"))
        try ema.load(tree.subtree("ema"))
        try optimizer.load(stateTree: tree.subtree("optimizer"))
        step = try int("step")
        guard step >= 0 else { throw TrainingError.runDirectory("\(directory.checkpoint): step \(step) is negative") }
        try checkFinite(model.parameters(), what: "model weights", file: directory.checkpoint)
        try checkFinite(ema.shadow, what: "EMA weights", file: directory.checkpoint)
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
        var tree = model.state().prefixed("model")
        tree.merge(ema.shadow.prefixed("ema"))
        tree.merge(optimizer.stateTree().prefixed("optimizer"))
        try TensorFile.save(tree, attributes: [
            "step": .int(Int64(step)), "images_seen": .int(Int64(step * config.train.batchSize)),
            "schedule_epoch": .int(Int64(schedule.epoch)), "schedule_position": .int(Int64(schedule.position)),
            "seed": .int(Int64(bitPattern: config.run.seed)), "config_hash": .string(try config.identityHash()),
            "rng": .string("Philox4x32-10; every stream is RandomKey(seed).fold(purpose).fold(step)"),
        ].merging(identity.attributes) { a, _ in a }, to: directory.checkpoint)
    }

    /// One optimizer step on the next batch; returns the loss.
    func trainStep() throws -> Double {
        let c = config.train
        let key = root.fold("step").fold(UInt64(step))
        optimizer.learningRate = c.warmupSteps > 0 ? c.learningRate * min(1, Double(step + 1) / Double(c.warmupSteps)) : c.learningRate
        let idx = schedule.next()
        let batch = data.subset(idx)
        let x0 = batch.tensor(flipKey: config.data.flip ? key.fold("flip") : nil)
        var labels: [Int]? = nil
        if config.model.classes > 0 {
            let drop = key.fold("label-dropout")
            labels = batch.labels.enumerated().map { i, l in
                Double(drop.word(i)) / 4_294_967_296.0 < c.labelDropout ? config.model.classes : l
            }
        }
        let t = diffusion.randomTimesteps(idx.count, key: key.fold("t"))
        let noise = Tensor.normal(x0.shape, key: key.fold("noise"))
        let (loss, grads) = valueAndGradient(of: model) {
            diffusion.loss({ model($0, timesteps: $1.map(Double.init), labels: labels, dropoutKey: key.fold("dropout")) },
                           x0: x0, t: t, noise: noise)
        }
        let value = loss.item
        guard value.isFinite else { throw TrainingError.diverged(step: step, loss: value) }
        if c.gradClip > 0 { clipGlobalNorm(grads, maxNorm: c.gradClip) }
        optimizer.update(model, gradients: grads)
        ema.update(from: model.parameters(), step: step)
        step += 1
        return value
    }

    /// Trains to the configured length (or `stopAfter` more steps, or up to step `stopAt`),
    /// checkpointing every `checkpoint_every` steps and at the end. On SIGINT/SIGTERM (see
    /// `Interruption`) it checkpoints, records status "interrupted" and throws.
    public func run(stopAfter: Int? = nil, stopAt: Int? = nil) throws {
        Threads.count = DDPMTrainer.threads(threadsOverride ?? config.train.threads)
        defer { lock = nil }   // one writer while training; released when run() returns
        let resumed = try prepare()
        let total = config.totalSteps
        let header = (resumed ? "resuming at step \(step)/\(total)" : "starting \(total) steps") +
            " in \(directory.path); data \(dataDescription); model \(model.parameterCount) parameters, " +
            String(format: "%.3f GFLOP/image forward; threads %d", Double(model.forwardFLOPs) / 1e9, Threads.count)
        output(header); directory.appendLog(header)
        directory.writeStatus(["state": "running", "step": step, "total_steps": total])
        let isTTY = isatty(STDOUT_FILENO) != 0
        let start = Date()
        let startStep = step
        var recent: [Double] = []
        let limit = min(total, stopAt ?? total, stopAfter.map { step + $0 } ?? total)
        Interruption.handled = true
        defer { Interruption.handled = false }
        do {
            while step < limit {
                if Interruption.requested {
                    if isTTY { print("") }
                    try saveCheckpoint()
                    directory.writeStatus(["state": "interrupted", "step": step, "total_steps": total, "signal": Interruption.signalName])
                    let line = "\(Interruption.signalName): checkpointed at step \(step)/\(total) and stopped; rerun the same command to resume"
                    output(line); directory.appendLog(line)
                    throw TrainingError.interrupted(step: step, signal: Interruption.signalNumber)
                }
                let loss = try trainStep()
                recent.append(loss)
                let elapsed = Date().timeIntervalSince(start)
                let ips = Double((step - startStep) * config.train.batchSize) / max(elapsed, 1e-9)
                let eta = Double(total - step) * Double(config.train.batchSize) / max(ips, 1e-9)
                if step % config.train.logEvery == 0 || step == total {
                    let mean = recent.reduce(0, +) / Double(recent.count); recent.removeAll()
                    let line = String(format: "{\"step\": %d, \"images\": %d, \"loss\": %.6f, \"images_per_sec\": %.2f, \"lr\": %.6g, \"elapsed_s\": %.1f}",
                                      step, step * config.train.batchSize, mean, ips, optimizer.learningRate, elapsed)
                    directory.appendMetrics(line)
                    let human = String(format: "step %d/%d  loss %.4f  %.1f img/s  ETA %@", step, total, mean, ips, formatDuration(eta))
                    if !isTTY { output(human) }
                    directory.appendLog(human)
                }
                if isTTY { print("\r" + String(format: "step %d/%d  loss %.4f  %.1f img/s  ETA %@   ", step, total, loss, ips, formatDuration(eta)), terminator: "") ; fflush(stdout) }
                if step % config.train.checkpointEvery == 0 || step == total {
                    try saveCheckpoint()
                    directory.writeStatus(["state": step == total ? "done" : "running", "step": step, "total_steps": total])
                }
            }
            if isTTY { print("") }
            if step < total, step % config.train.checkpointEvery != 0 { try saveCheckpoint() }
            directory.writeStatus(["state": step == total ? "done" : "stopped", "step": step, "total_steps": total])
        } catch TrainingError.interrupted(let s, let sig) {
            throw TrainingError.interrupted(step: s, signal: sig)
        } catch {
            directory.writeStatus(["state": "failed", "step": step, "total_steps": total, "error": "\(error)"])
            directory.appendLog("failed: \(error)")
            throw error
        }
    }

    /// The weights to sample from: the EMA (default) or the raw model.
    public func samplingModel(useEMA: Bool) throws -> UNet {
        if useEMA { try model.load(ema.shadow) }
        return model
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
