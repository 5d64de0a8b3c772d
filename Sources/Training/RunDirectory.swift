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
        case AuditPlan.kind: let p = try PlanFile.read(AuditPlan.self, from: c.plan); indices = p.trainingIndices; reference = p.dataset
        case TwinPlan.kind: let p = try PlanFile.read(TwinPlan.self, from: c.plan); indices = p.trainingIndices; reference = p.dataset
        case MembershipPlan.kind:
            let p = try PlanFile.read(MembershipPlan.self, from: c.plan)
            guard c.planModel >= 0 && c.planModel < p.models else {
                throw TrainingError.data("\(c.plan): membership plan of \(p.models) models; set data.plan_model to 0…\(p.models - 1) (got \(c.planModel))")
            }
            indices = p.members(model: c.planModel); reference = p.dataset
        default:
            throw TrainingError.data("\(c.plan): plan kind '\(kind)' names no training examples (known: subset, duplication, dedup, outliers, membership, audit, twin)")
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
public func trainingSet(_ config: TrainConfig) throws -> (ImageSet, String) {
    let c = config.data
    let (all, indices, what) = try trainingSelection(c)
    let set = all.subset(indices)
    let (channels, size) = (config.imageChannels, config.imageSize)
    guard set.channels == channels, set.height == size, set.width == size else {
        throw TrainingError.data("\(c.file): images are \(set.channels)×\(set.height)×\(set.width) but the model expects \(channels)×\(size)×\(size) (model.image_channels / image_size)")
    }
    if config.classes > 0, let bad = set.labels.first(where: { $0 >= config.classes }) {
        throw TrainingError.data("\(c.file): a training image has label \(bad), but model.classes = \(config.classes)")
    }
    return (set, what)
}
