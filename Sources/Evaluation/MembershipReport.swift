import Data
import Diffusion
import Foundation
import HDF5
import Models
import Tensor
import Training

/// One model whose signals entered an attack: enough to find it again and to tell whether
/// it changed since.
public struct ModelRecord: Codable, Equatable, Sendable {
    public var run: String
    public var checkpointStep: Int
    public var weights: String
    public var configIdentity: String
    public var training: String
}

/// `eidetic eval mia`: white-box membership inference on diffusion models
/// (Carlini et al., 2023, §5.2). Two set-ups:
/// - one run: its training images are the members, images of the same split it never saw are
///   the non-members; the attack is the global loss threshold (no shadow models);
/// - a membership plan with K runs (one per plan model): every attack variant, evaluated
///   leave-one-model-out, K × N trials; runs must match the plan exactly.
public struct MembershipReport: Codable, Sendable {
    public struct AttackResult: Codable, Sendable {
        public var attack: MembershipAttack
        public var metrics: AttackMetrics
    }
    public var mode: String
    public var signal: LossSignalConfig
    /// The signal: −(mean loss over the queries) per example, or the queries separately.
    public var averageQueries: Bool
    public var models: [ModelRecord]
    public var examples: Int
    public var members: Int
    public var results: [AttackResult]
    public var plan: String?
    public var planSHA256: String?
    public var command: String
    public var outputs: [String: String]

    static func record(_ run: RunDirectory, useEMA: Bool) throws -> (ModelRecord, UNet, TrainConfig) {
        let c = try run.loadConfig()
        guard FileManager.default.fileExists(atPath: run.checkpoint) else {
            throw EvaluationError.input("\(run.path): no checkpoint (checkpoints/latest.h5); train it first")
        }
        let (tree, attrs) = try TensorFile.load(run.checkpoint)
        let model = try UNet(c.model, key: RandomKey(seed: 0))
        try model.load(useEMA ? tree.subtree("ema") : tree.subtree("model"))
        var step = -1
        if case .int(let s)? = attrs["step"] { step = Int(s) }
        let desc = try trainingSelection(c.data).description
        return (ModelRecord(run: run.path, checkpointStep: step, weights: useEMA ? "ema" : "raw", configIdentity: try c.identityHash(), training: desc), model, c)
    }

    /// Loss signals of one run's model on `images` (ids = dataset indices), cached in
    /// `<run>/eval/signals-<hash>.h5` keyed by the signal config, the examples and the checkpoint step.
    static func signals(run: RunDirectory, record: ModelRecord, model: UNet, config: TrainConfig, images: ImageSet, ids: [Int],
                        signal: LossSignalConfig, log: (String) -> Void) throws -> [Double] {
        var h = SHA256()
        h.update(Array(String(decoding: try JSONEncoder().encode(signal), as: UTF8.self).utf8))
        h.update(ids.flatMap { withUnsafeBytes(of: Int64($0).littleEndian, Array.init) })
        h.update(Array("\(record.checkpointStep) \(record.weights)".utf8))
        let tag = String(SHA256.hex(h.finalize()).prefix(12))
        let cache = run.path + "/eval/signals-\(tag).h5"
        if FileManager.default.fileExists(atPath: cache), let t = try? TensorFile.load(cache).tree["losses"], t.shape == [ids.count, signal.queries] {
            log("\(run.path): cached signals \(cache)")
            return t.doubles
        }
        let t0 = Date()
        let v = DiffusionSignals.losses(model: model, process: config.diffusion.process, images: images, ids: ids, config: signal) { done, total in
            FileHandle.standardError.write(Data("\r\(run.path): losses \(done)/\(total)".utf8))
        }
        FileHandle.standardError.write(Data("\n".utf8))
        log(String(format: "%@: %d examples × %d queries in %.1f s", run.path, ids.count, signal.queries, Date().timeIntervalSince(t0)))
        try FileManager.default.createDirectory(atPath: run.path + "/eval", withIntermediateDirectories: true)
        try TensorFile.save(TensorTree([("losses", Tensor(v, shape: [ids.count, signal.queries], dtype: .float64))]),
                            attributes: ["checkpoint_step": .int(Int64(record.checkpointStep)), "weights": .string(record.weights)], to: cache)
        return v
    }

    /// Single-run mode: members are the run's training images, non-members `nonMembers`
    /// other images of the same split (a seeded random choice).
    public static func singleRun(_ run: RunDirectory, nonMembers: Int, signal: LossSignalConfig, useEMA: Bool = true,
                                 bootstrap: Int = 200, log: (String) -> Void = { print($0) }) throws -> MembershipReport {
        let (rec, model, c) = try record(run, useEMA: useEMA)
        let (split, ids, _) = try trainingSelection(c.data)
        let members = Array(Set(ids)).sorted()
        let memberSet = Set(members)
        let candidates = (0..<split.count).filter { !memberSet.contains($0) }
        guard candidates.count >= nonMembers, nonMembers > 0 else {
            throw EvaluationError.input("\(c.data.file) \(c.data.split): \(candidates.count) images outside the training set, \(nonMembers) non-members asked for")
        }
        let perm = randomPermutation(candidates.count, key: RandomKey(seed: signal.seed).fold("non-members"))
        let outs = perm.prefix(nonMembers).map { candidates[$0] }.sorted()
        let all = members + outs
        let losses = try signals(run: run, record: rec, model: model, config: c, images: split.subset(all), ids: all, signal: signal, log: log)
        let q = signal.queries
        let s = MembershipSignals(models: 1, examples: all.count, queries: q, values: losses.map { -$0 },
                                  keep: [all.map { memberSet.contains($0) }])
        let trials = try MembershipAttack.globalThreshold.leaveOneModelOut(s)
        let out = run.path + "/eval/mia-single-t\(signal.timesteps.map(String.init).joined(separator: "_"))-r\(signal.draws)\(signal.flip ? "-flip" : "")-n\(nonMembers)"
        return try finish(out: out, mode: "single-run", signal: signal, models: [rec], examples: all, trialsList: [trials],
                          bootstrap: bootstrap, plan: nil, planHash: nil, extra: [("signals/losses", Tensor(losses, shape: [all.count, q], dtype: .float64))])
    }

    /// Plan mode: K runs trained on the halves of `plan`, each run's `data.plan` must be the
    /// same plan (by content hash) and every plan model must appear exactly once.
    public static func withPlan(_ planPath: String, runs: [RunDirectory], attacks: [MembershipAttack] = MembershipAttack.allCases,
                                signal: LossSignalConfig, useEMA: Bool = true, out: String, bootstrap: Int = 200,
                                log: (String) -> Void = { print($0) }) throws -> MembershipReport {
        let plan = try PlanFile.read(MembershipPlan.self, from: planPath)
        let planHash = try PlanFile.hash(plan)
        var byModel = [RunDirectory?](repeating: nil, count: plan.models)
        for r in runs {
            let c = try r.loadConfig()
            guard !c.data.plan.isEmpty, let p = try? PlanFile.read(MembershipPlan.self, from: c.data.plan) else {
                throw EvaluationError.mismatch("\(r.path): trains on '\(c.data.plan.isEmpty ? "no plan" : c.data.plan)', not on membership plan \(planPath)")
            }
            guard try PlanFile.hash(p) == planHash else {
                throw EvaluationError.mismatch("\(r.path): its plan \(c.data.plan) differs from \(planPath) (content hashes differ)")
            }
            guard c.data.subset == 0 else { throw EvaluationError.mismatch("\(r.path): data.subset = \(c.data.subset) takes a subset of the plan's half; the keep matrix would not describe it") }
            let m = c.data.planModel
            guard m >= 0 && m < plan.models else { throw EvaluationError.mismatch("\(r.path): data.plan_model = \(m) is not a model of \(planPath) (0…\(plan.models - 1))") }
            if let other = byModel[m] { throw EvaluationError.mismatch("plan model \(m) is trained by both \(other.path) and \(r.path)") }
            byModel[m] = r
        }
        let missing = byModel.indices.filter { byModel[$0] == nil }
        guard missing.isEmpty else {
            throw EvaluationError.mismatch("\(planPath): no run for plan model(s) \(missing.map(String.init).joined(separator: ", ")) (\(runs.count) runs given, the plan has \(plan.models) models)")
        }
        // load and check everything before the expensive part
        var loaded: [(RunDirectory, ModelRecord, UNet, TrainConfig)] = []
        var split: ImageSet? = nil
        for r in byModel.map({ $0! }) {
            let (rec, model, c) = try record(r, useEMA: useEMA)
            if split == nil {
                // every run's data reference is checked to match the first's; the first's content against the plan's hash
                split = try DatasetFile(c.data.file).load(c.data.split)
                guard plan.dataset.contentSHA256.isEmpty || DatasetReference.contentHash(split!) == plan.dataset.contentSHA256 else {
                    throw EvaluationError.mismatch("\(r.path): dataset \(c.data.file) \(c.data.split) is not the data \(planPath) was made from (content hash)")
                }
            } else if let first = loaded.first?.3.data, (first.file, first.split) != (c.data.file, c.data.split) {
                throw EvaluationError.mismatch("\(r.path): trains on \(c.data.file) \(c.data.split), \(loaded[0].0.path) on \(first.file) \(first.split)")
            }
            loaded.append((r, rec, model, c))
        }
        // shadow models stand in for the target only if they were trained alike: same budget
        let records = loaded.map(\.1)
        guard Set(records.map(\.checkpointStep)).count == 1 else {
            let list = records.map { "\($0.run) at step \($0.checkpointStep)" }.joined(separator: ", ")
            throw EvaluationError.mismatch("\(planPath): the runs are at different checkpoint steps (\(list)); finish or align them first")
        }
        var values: [Double] = []
        for (r, rec, model, c) in loaded {
            let losses = try signals(run: r, record: rec, model: model, config: c, images: split!.subset(plan.pool), ids: plan.pool, signal: signal, log: log)
            values += losses.map { -$0 }
        }
        let keep = (0..<plan.models).map { m in (0..<plan.pool.count).map { plan.isMember(model: m, poolIndex: $0) } }
        let s = MembershipSignals(models: plan.models, examples: plan.pool.count, queries: signal.queries, values: values, keep: keep).averaged()
        var trials: [MembershipTrials] = []
        for a in attacks {
            do { trials.append(try a.leaveOneModelOut(s)) } catch { log("skipping \(a.rawValue): \(error)") }
        }
        return try finish(out: out, mode: "plan", signal: signal, models: records, examples: plan.pool, trialsList: trials, bootstrap: bootstrap,
                          plan: planPath, planHash: planHash, extra: [("signals/negated_mean_loss", Tensor(s.values, shape: [plan.models, plan.pool.count], dtype: .float64))])
    }

    static func finish(out: String, mode: String, signal: LossSignalConfig, models: [ModelRecord], examples: [Int], trialsList: [MembershipTrials],
                       bootstrap: Int, plan: String?, planHash: String?, extra: [(String, Tensor)]) throws -> MembershipReport {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var results: [AttackResult] = []
        var arrays = extra
        var ints: [(String, [Int64], [Int])] = [("examples/dataset_indices", examples.map(Int64.init), [examples.count])]
        var plot = SVGPlot(title: "Membership inference ROC", xLabel: "false positive rate", yLabel: "true positive rate")
        plot.logX = true; plot.logY = true; plot.diagonal = true
        let trials0 = trialsList.first?.scores.count ?? 1
        let lowest = pow(10, (log10(1.0 / Double(max(trials0, 10)))).rounded(.down))
        plot.xRange = lowest...1; plot.yRange = lowest...1
        for t in trialsList {
            let metrics = AttackMetrics(scores: t.scores, members: t.members, groups: t.examples, bootstrap: bootstrap)
            results.append(AttackResult(attack: t.attack, metrics: metrics))
            let roc = ROC(scores: t.scores, members: t.members)
            arrays.append(("\(t.attack.rawValue)/scores", Tensor(t.scores, shape: [t.scores.count], dtype: .float64)))
            arrays.append(("\(t.attack.rawValue)/roc_fpr", Tensor(roc.fpr, shape: [roc.fpr.count], dtype: .float64)))
            arrays.append(("\(t.attack.rawValue)/roc_tpr", Tensor(roc.tpr, shape: [roc.tpr.count], dtype: .float64)))
            ints.append(("\(t.attack.rawValue)/members", t.members.map { $0 ? 1 : 0 }, [t.members.count]))
            ints.append(("\(t.attack.rawValue)/example", t.examples.map(Int64.init), [t.examples.count]))
            ints.append(("\(t.attack.rawValue)/target", t.targets.map(Int64.init), [t.targets.count]))
            plot.series.append(.init(name: String(format: "%@ (AUC %.3f)", t.attack.rawValue, roc.auc), x: roc.fpr, y: roc.tpr))
        }
        try EvalOutput.writeArrays(arrays, int64: ints, attributes: ["command": .string(EvalOutput.command)], to: out + "/mia.h5")
        try plot.write(to: out + "/roc.svg")
        let report = MembershipReport(mode: mode, signal: signal, averageQueries: true, models: models, examples: examples.count,
                                      members: trialsList.first.map { $0.members.filter { $0 }.count } ?? 0, results: results,
                                      plan: plan, planSHA256: planHash, command: EvalOutput.command,
                                      outputs: ["arrays": out + "/mia.h5", "roc": out + "/roc.svg", "summary": out + "/summary.json"])
        try EvalOutput.writeJSON(report, to: out + "/summary.json")
        return report
    }
}
