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

/// Which way a signal file's values point: LiRA's attacks take higher = more member-like
/// (a confidence, a negated loss); losses are lower = more member-like and are negated on reading.
public enum SignalDirection: String, Codable, CaseIterable, Sendable {
    case higherIsMember = "higher-is-member"
    case lowerIsMember = "lower-is-member"
}

/// The signal matrix an `eval mia --signals` run attacked: where it came from and how it was read.
public struct SignalsFileRecord: Codable, Equatable, Sendable {
    public var path: String
    public var sha256: String
    public var models: Int
    public var examples: Int
    public var queries: Int
    public var direction: SignalDirection
    /// Where the direction came from: the file's `direction` attribute, the caller, or the default.
    public var directionSource: String
    /// Models that trained on each example: the smallest and largest count over examples.
    public var membersPerExample: [Int]
    /// Examples each model trained on: the smallest and largest count over models.
    public var examplesPerModel: [Int]
}

/// `eidetic eval mia`: white-box membership inference on diffusion models
/// (Carlini et al., 2023, §5.2). Three set-ups:
/// - one run: its training images are the members, images of the same split it never saw are
///   the non-members; the attack is the global loss threshold (no shadow models);
/// - a membership plan with K runs (one per plan model): every attack variant, evaluated
///   leave-one-model-out, K × N trials; runs must match the plan exactly;
/// - a signal matrix computed elsewhere (`--signals FILE.h5`: signals [models × examples ×
///   queries] and the keep matrix): the same attacks, leave-one-model-out.
public struct MembershipReport: Codable, Sendable {
    public struct AttackResult: Codable, Sendable {
        public var attack: MembershipAttack
        public var metrics: AttackMetrics
        /// IN / OUT shadows per (target, example) after trimming to common sizes (0: unused).
        public var shadows: ShadowSets
    }
    public var mode: String
    /// The loss signal (run and plan modes; nil for a signals file).
    public var signal: LossSignalConfig?
    /// The signal: the mean over the queries per example, or the queries separately
    /// (Gaussians fitted per query, log-likelihood ratios averaged, as the reference code).
    public var averageQueries: Bool
    public var models: [ModelRecord]
    public var signalsFile: SignalsFileRecord?
    public var examples: Int
    public var members: Int
    public var results: [AttackResult]
    /// Attacks asked for (or attempted by default) that the data cannot support, with why.
    public var skipped: [String: String]
    public var plan: String?
    public var planSHA256: String?
    public var command: String
    public var outputs: [String: String]
    /// Plan mode with several queries per example: every attack again on one timestep's
    /// queries — averaged over its draws and views ("Strong LiRA"'s multi-noise, and flip when
    /// the signal has it), and on its first draw of the unflipped image alone (paper §5.2's
    /// timestep and averaging comparison; P4). Nil otherwise.
    public var variants: [Variant]?
    /// The code version that computed this report (`EvalOutput.codeVersion`); absent in
    /// reports written before it was recorded.
    public var codeVersion: String? = nil

    public struct Variant: Codable, Sendable {
        public var timestep: Int
        /// Draws × views averaged (true) or one query (false).
        public var averaged: Bool
        public var queries: Int
        public var results: [VariantResult]
        /// With a flipping signal: views per draw averaged — 2 (the image and its mirror) or
        /// 1 (the unflipped image alone: the same draws without flip, isolating what flip
        /// adds). Absent without flip, and in records written before flip variants.
        public var views: Int? = nil
    }
    public struct VariantResult: Codable, Sendable {
        public var attack: MembershipAttack
        public var metrics: AttackMetrics
    }

    /// The network a run's membership signal comes from: a diffusion model's U-Net (its
    /// loss), or a GAN's discriminator (its logit).
    enum SignalModel {
        case unet(UNet)
        case discriminator(DCGANDiscriminator)
    }

    static func record(_ run: RunDirectory, useEMA: Bool) throws -> (ModelRecord, SignalModel, TrainConfig) {
        // the checkpoint is checked against the config, its weights for NaN, and the data it
        // names (recorded absolute paths, so any working directory) against its data hash
        let ck = try run.loadCheckpoint()
        var c = ck.config
        c.data = ck.data
        let model: SignalModel = c.kind.isGAN ? .discriminator(try ck.discriminator(path: run.checkpoint))
                                              : .unet(try ck.model(useEMA: useEMA, path: run.checkpoint))
        let step = ck.step
        let desc = try ck.trainingSelection(path: run.checkpoint).description
        // a discriminator has no EMA: its own weights whatever --ema says
        let weights = c.kind.isGAN ? "discriminator" : useEMA ? "ema" : "raw"
        return (ModelRecord(run: run.path, checkpointStep: step, weights: weights, configIdentity: try c.identityHash(), training: desc), model, c)
    }

    /// The tag of a run's signal cache file: SHA-256 over the signal config as canonical JSON
    /// (sorted keys, so equal settings always give the same tag), the examples' dataset
    /// indices and the checkpoint step and weights.
    public static func signalCacheTag(signal: LossSignalConfig, ids: [Int], checkpointStep: Int, weights: String) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var h = SHA256()
        h.update([UInt8](try e.encode(signal)))
        h.update(ids.flatMap { withUnsafeBytes(of: Int64($0).littleEndian, Array.init) })
        h.update(Array("\(checkpointStep) \(weights)".utf8))
        return String(SHA256.hex(h.finalize()).prefix(12))
    }

    /// Loss signals of one run's model on `images` (ids = dataset indices), cached in
    /// `<run>/eval/signals-<tag>.h5` (`signalCacheTag`).
    static func signals(run: RunDirectory, record: ModelRecord, model: SignalModel, config: TrainConfig, images: ImageSet, ids: [Int],
                        signal: LossSignalConfig, log: (String) -> Void) throws -> [Double] {
        let tag = try signalCacheTag(signal: signal, ids: ids, checkpointStep: record.checkpointStep, weights: record.weights)
        let cache = run.path + "/eval/signals-\(tag).h5"
        if FileManager.default.fileExists(atPath: cache), let t = try? TensorFile.load(cache).tree["losses"], t.shape == [ids.count, signal.queries] {
            log("\(run.path): cached signals \(cache)")
            return t.doubles
        }
        let t0 = Date()
        let progress: (Int, Int) -> Void = { done, total in FileHandle.standardError.write(Data("\r\(run.path): signals \(done)/\(total)".utf8)) }
        let v: [Double]
        switch model {
        case .unet(let unet):
            v = DiffusionSignals.losses(model: unet, process: config.diffusion.process, images: images, ids: ids, config: signal, progress: progress)
        case .discriminator(let d):
            // stored as a loss (lower = member), like the diffusion signal: the negated logit
            v = DiscriminatorSignals.logits(discriminator: d, images: images, config: signal, progress: progress).map { -$0 }
        }
        FileHandle.standardError.write(Data("\n".utf8))
        log(String(format: "%@: %d examples × %d queries in %.1f s", run.path, ids.count, signal.queries, Date().timeIntervalSince(t0)))
        try FileManager.default.createDirectory(atPath: run.path + "/eval", withIntermediateDirectories: true)
        try TensorFile.save(TensorTree([("losses", Tensor(v, shape: [ids.count, signal.queries], dtype: .float64))]),
                            attributes: ["checkpoint_step": .int(Int64(record.checkpointStep)), "weights": .string(record.weights)], to: cache)
        return v
    }

    /// A signal the run's model can compute: for a diffusion model, timesteps inside its
    /// process, at least one draw; for a GAN, the discriminator score (no timesteps, one draw);
    /// a positive batch size (errors name the `eval mia` flag).
    static func check(_ signal: LossSignalConfig, run: String, config: TrainConfig) throws {
        if config.kind.isGAN {
            guard signal.timesteps.isEmpty && signal.draws == 1 else {
                throw EvaluationError.input("--timesteps/--draws apply to diffusion runs; \(run) is a \(config.kind.rawValue) run (its signal is the discriminator's logit)")
            }
            guard signal.batchSize >= 1 else { throw EvaluationError.input("--batch-size must be ≥ 1, got \(signal.batchSize)") }
            return
        }
        let timesteps = config.diffusion.timesteps
        guard !signal.timesteps.isEmpty else { throw EvaluationError.input("--timesteps: no timesteps given (\(run) is a diffusion run)") }
        if let t = signal.timesteps.first(where: { $0 < 0 || $0 >= timesteps }) {
            throw EvaluationError.input("--timesteps \(t) is outside \(run)'s diffusion process (diffusion.timesteps = \(timesteps): 0…\(timesteps - 1))")
        }
        guard signal.draws >= 1 else { throw EvaluationError.input("--draws must be ≥ 1, got \(signal.draws)") }
        guard signal.batchSize >= 1 else { throw EvaluationError.input("--batch-size must be ≥ 1, got \(signal.batchSize)") }
    }

    /// Single-run mode: members are the run's training images, non-members `nonMembers`
    /// other images of the same split (a seeded random choice).
    /// Writes `out`, by default `<run>/eval/mia-single-<settings>/`; an existing folder is
    /// replaced only when `force` (the library's default, as before; the CLI asks for `--force`).
    public static func singleRun(_ run: RunDirectory, nonMembers: Int, signal: LossSignalConfig, useEMA: Bool = true,
                                 bootstrap: Int = 200, out: String? = nil, force: Bool = true, log: (String) -> Void = { print($0) }) throws -> MembershipReport {
        let out = out ?? run.path + "/eval/mia-single-\(signalName(signal))-n\(nonMembers)"
            + extraSettings(signal: signal, useEMA: useEMA, bootstrap: bootstrap, attacks: nil)
        try mayWrite(out, force: force)
        let (rec, model, c) = try record(run, useEMA: useEMA)
        try check(signal, run: run.path, config: c)
        let (split, ids, _) = try trainingSelection(c.data)   // c.data: as recorded by the checkpoint (record checked its hash)
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
        return try finish(out: out, force: force, mode: "single-run", signal: signal, models: [rec], examples: all, trialsList: [trials],
                          bootstrap: bootstrap, plan: nil, planHash: nil, extra: [("signals/losses", Tensor(losses, shape: [all.count, q], dtype: .float64))])
    }

    /// Plan mode: K runs trained on the halves of `plan`, each run's `data.plan` must be the
    /// same plan (by content hash) and every plan model must appear exactly once.
    public static func withPlan(_ planPath: String, runs: [RunDirectory], attacks: [MembershipAttack] = MembershipAttack.allCases,
                                signal: LossSignalConfig, useEMA: Bool = true, out: String, bootstrap: Int = 200, force: Bool = true,
                                log: (String) -> Void = { print($0) }) throws -> MembershipReport {
        let plan = try PlanFile.read(MembershipPlan.self, from: planPath)
        let planHash = try PlanFile.hash(plan)
        var byModel = [RunDirectory?](repeating: nil, count: plan.models)
        for r in runs {
            let c = try r.loadConfigResolvingData()
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
        var loaded: [(RunDirectory, ModelRecord, SignalModel, TrainConfig)] = []
        var split: ImageSet? = nil
        for r in byModel.map({ $0! }) {
            let (rec, model, c) = try record(r, useEMA: useEMA)
            try check(signal, run: r.path, config: c)
            if split == nil {
                // every run's data reference is checked to match the first's; the first's content against the plan's hash
                split = try DatasetFile(c.data.file).load(c.data.split)
                guard plan.dataset.contentSHA256.isEmpty || DatasetReference.contentHash(split!) == plan.dataset.contentSHA256 else {
                    throw EvaluationError.mismatch("\(r.path): dataset \(c.data.file) \(c.data.split) is not the data \(planPath) was made from (content hash)")
                }
            } else if let first = loaded.first?.3, first.kind != c.kind {
                throw EvaluationError.mismatch("\(r.path) is a \(c.kind.rawValue) run, \(loaded[0].0.path) a \(first.kind.rawValue) run: shadow models must be trained alike")
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
        try mayWrite(out, force: force)
        var values: [Double] = []
        for (r, rec, model, c) in loaded {
            let losses = try signals(run: r, record: rec, model: model, config: c, images: split!.subset(plan.pool), ids: plan.pool, signal: signal, log: log)
            values += losses.map { -$0 }
        }
        let keep = (0..<plan.models).map { m in (0..<plan.pool.count).map { plan.isMember(model: m, poolIndex: $0) } }
        let full = MembershipSignals(models: plan.models, examples: plan.pool.count, queries: signal.queries, values: values, keep: keep)
        let s = full.averaged()
        var trials: [MembershipTrials] = []
        var skipped: [String: String] = [:]
        for a in attacks {
            do { trials.append(try a.leaveOneModelOut(s)) } catch { skipped[a.rawValue] = "\(error)" }
        }
        // per timestep: all its queries averaged, with flip also its draws of the unflipped
        // image alone, and one query (queries are t-major, then draw, then view)
        var variants: [Variant]? = nil
        if signal.queries > 1 && !signal.timesteps.isEmpty {
            variants = Self.variantQueries(signal).map { c in
                let sub = full.selecting(queries: c.queries).averaged()
                let results = attacks.compactMap { a in
                    (try? a.leaveOneModelOut(sub)).map { VariantResult(attack: a, metrics: AttackMetrics(scores: $0.scores, members: $0.members, groups: $0.examples, bootstrap: bootstrap)) }
                }
                return Variant(timestep: c.timestep, averaged: c.averaged, queries: c.queries.count, results: results, views: c.views)
            }
        }
        return try finish(out: out, force: force, mode: "plan", signal: signal, models: records, examples: plan.pool, trialsList: trials, bootstrap: bootstrap,
                          plan: planPath, planHash: planHash, skipped: skipped,
                          extra: [("signals/negated_mean_loss", Tensor(s.values, shape: [plan.models, plan.pool.count], dtype: .float64))],
                          variants: variants)
    }

    /// The query columns of each per-timestep variant of a diffusion-loss signal (queries are
    /// t-major, then draw, then view — `LossSignalConfig.queries`): all of the timestep's
    /// queries; with flip and several draws, the draws of the unflipped image alone (what flip
    /// adds, isolated); and, when the timestep has several queries, its first one.
    public static func variantQueries(_ signal: LossSignalConfig) -> [(timestep: Int, averaged: Bool, views: Int?, queries: [Int])] {
        guard !signal.timesteps.isEmpty else { return [] }
        let perT = signal.queries / signal.timesteps.count, views = signal.flip ? 2 : 1
        var out: [(timestep: Int, averaged: Bool, views: Int?, queries: [Int])] = []
        for (ti, t) in signal.timesteps.enumerated() {
            out.append((t, true, signal.flip ? 2 : nil, Array((ti * perT)..<((ti + 1) * perT))))
            if signal.flip && signal.draws > 1 { out.append((t, true, 1, (0..<signal.draws).map { ti * perT + $0 * views })) }
            if perT > 1 { out.append((t, false, signal.flip ? 1 : nil, [ti * perT])) }
        }
        return out
    }

    /// The signal in an output folder's name: `t100-r4[-flip]` (diffusion loss) or
    /// `dscore[-flip]` (a GAN's discriminator logit).
    static func signalName(_ signal: LossSignalConfig) -> String {
        signal.timesteps.isEmpty ? "dscore\(signal.flip ? "-flip" : "")"
            : "t\(signal.timesteps.map(String.init).joined(separator: "_"))-r\(signal.draws)\(signal.flip ? "-flip" : "")"
    }

    /// The part of an output folder's name that says the non-default settings.
    static func extraSettings(signal: LossSignalConfig, useEMA: Bool, bootstrap: Int, attacks: [MembershipAttack]?) -> String {
        (signal.seed != 0 ? "-s\(signal.seed)" : "") + (useEMA ? "" : "-raw") + (bootstrap != 200 ? "-b\(bootstrap)" : "")
            + (attacks.map { "-" + $0.map(\.rawValue).joined(separator: "+") } ?? "")
    }

    /// The default output folder of plan mode: `results/mia/<plan name>/eval/mia-plan-<settings>`,
    /// named by every setting that changes the numbers.
    public static func planOutputFolder(plan: String, signal: LossSignalConfig, useEMA: Bool = true, bootstrap: Int = 200,
                                        attacks: [MembershipAttack]? = nil) -> String {
        let stem = URL(fileURLWithPath: plan).deletingPathExtension().lastPathComponent
        return "results/mia/\(stem)/eval/mia-plan-\(signalName(signal))"
            + extraSettings(signal: signal, useEMA: useEMA, bootstrap: bootstrap, attacks: attacks)
    }

    /// Refuses, before any work, an output folder that exists unless `force`.
    static func mayWrite(_ out: String, force: Bool) throws {
        if !force && FileManager.default.fileExists(atPath: out) {
            throw EvaluationError.input("\(out) exists (same evaluation, same settings); pass --force to replace it, or --out for another folder")
        }
    }

    /// Computes the metrics and writes the folder whole: into a temporary folder beside `out`
    /// that replaces `out` only when everything is written (`EvalOutput.begin` / `publish`).
    static func finish(out: String, force: Bool, mode: String, signal: LossSignalConfig?, averageQueries: Bool = true, models: [ModelRecord],
                       signalsFile: SignalsFileRecord? = nil, examples: [Int], trialsList: [MembershipTrials],
                       bootstrap: Int, plan: String?, planHash: String?, skipped: [String: String] = [:], extra: [(String, Tensor)],
                       variants: [Variant]? = nil) throws -> MembershipReport {
        let tmp = try EvalOutput.begin(out, force: force)
        do {
            let report = try write(tmp: tmp, out: out, mode: mode, signal: signal, averageQueries: averageQueries, models: models, signalsFile: signalsFile,
                                   examples: examples, trialsList: trialsList, bootstrap: bootstrap, plan: plan, planHash: planHash, skipped: skipped, extra: extra,
                                   variants: variants)
            try EvalOutput.publish(tmp, to: out)
            return report
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw error
        }
    }

    static func write(tmp: String, out: String, mode: String, signal: LossSignalConfig?, averageQueries: Bool, models: [ModelRecord],
                      signalsFile: SignalsFileRecord?, examples: [Int], trialsList: [MembershipTrials],
                      bootstrap: Int, plan: String?, planHash: String?, skipped: [String: String], extra: [(String, Tensor)],
                      variants: [Variant]? = nil) throws -> MembershipReport {
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
            results.append(AttackResult(attack: t.attack, metrics: metrics, shadows: t.shadows))
            let roc = ROC(scores: t.scores, members: t.members)
            arrays.append(("\(t.attack.rawValue)/scores", Tensor(t.scores, shape: [t.scores.count], dtype: .float64)))
            arrays.append(("\(t.attack.rawValue)/roc_fpr", Tensor(roc.fpr, shape: [roc.fpr.count], dtype: .float64)))
            arrays.append(("\(t.attack.rawValue)/roc_tpr", Tensor(roc.tpr, shape: [roc.tpr.count], dtype: .float64)))
            ints.append(("\(t.attack.rawValue)/members", t.members.map { $0 ? 1 : 0 }, [t.members.count]))
            ints.append(("\(t.attack.rawValue)/example", t.examples.map(Int64.init), [t.examples.count]))
            ints.append(("\(t.attack.rawValue)/target", t.targets.map(Int64.init), [t.targets.count]))
            plot.series.append(.init(name: String(format: "%@ (AUC %.3f)", t.attack.rawValue, roc.auc), x: roc.fpr, y: roc.tpr))
        }
        try EvalOutput.writeArrays(arrays, int64: ints, attributes: ["command": .string(EvalOutput.command)], to: tmp + "/mia.h5")
        try plot.write(to: tmp + "/roc.svg")
        let report = MembershipReport(mode: mode, signal: signal, averageQueries: averageQueries, models: models, signalsFile: signalsFile,
                                      examples: examples.count, members: trialsList.first.map { $0.members.filter { $0 }.count } ?? 0,
                                      results: results, skipped: skipped, plan: plan, planSHA256: planHash, command: EvalOutput.command,
                                      outputs: ["arrays": out + "/mia.h5", "roc": out + "/roc.svg", "summary": out + "/summary.json"], variants: variants,
                                      codeVersion: EvalOutput.codeVersion)
        try EvalOutput.writeJSON(report, to: tmp + "/summary.json")
        return report
    }
}

// MARK: - Signal matrices computed elsewhere (`eval mia --signals FILE.h5`)

extension MembershipReport {
    /// Reads a signal file: dataset `signals` (float, [models × examples × queries], or
    /// [models × examples] for one query) and dataset `keep` (integers 0/1, [models × examples]:
    /// model m trained on example i), plus an optional string attribute `direction`
    /// (`higher-is-member`, the default, or `lower-is-member`, e.g. losses) on the file or on
    /// `signals`. Returns the signals oriented higher = member. Every problem is one error
    /// naming the file and the dataset: shapes, non-finite values, keep values other than 0/1,
    /// fewer than 2 models, no member or no non-member trial at all.
    public static func readSignalsFile(_ path: String, direction requested: SignalDirection? = nil) throws -> (MembershipSignals, SignalsFileRecord) {
        guard FileManager.default.fileExists(atPath: path) else { throw EvaluationError.input("\(path): no such file") }
        let f = try HDF5File.open(path)
        let names = f.datasetNames
        func missing(_ name: String, _ what: String) -> EvaluationError {
            .input("\(path): no dataset '\(name)' (expected \(what); the file has \(names.isEmpty ? "no datasets" : names.map { "'\($0)'" }.joined(separator: ", ")))")
        }
        guard f.contains("signals") else { throw missing("signals", "float64 [models × examples × queries], higher = more member-like") }
        guard f.contains("keep") else { throw missing("keep", "uint8 0/1 [models × examples]: keep[m][i] = model m trained on example i") }
        let si = try f.info("signals"), ki = try f.info("keep")
        guard si.isFloat || si.isInteger else { throw EvaluationError.input("\(path): dataset 'signals' is not numeric (expected float64 [models × examples × queries])") }
        guard si.shape.count == 2 || si.shape.count == 3 else {
            throw EvaluationError.input("\(path): dataset 'signals' has shape \(si.shape); expected [models × examples × queries] (or [models × examples] for one query)")
        }
        let k = si.shape[0], n = si.shape[1], q = si.shape.count == 3 ? si.shape[2] : 1
        guard k >= 2 else { throw EvaluationError.input("\(path): dataset 'signals' has \(k) model(s); leave-one-model-out needs at least 2 (a target and a shadow)") }
        guard n >= 1, q >= 1 else { throw EvaluationError.input("\(path): dataset 'signals' has shape \(si.shape): no examples or no queries") }
        guard ki.shape == [k, n] else {
            throw EvaluationError.input("\(path): dataset 'keep' has shape \(ki.shape); 'signals' is \(si.shape), so keep must be [\(k), \(n)] (models × examples)")
        }
        // direction: the caller's, else the file's attribute (on 'signals' or the root), else higher-is-member
        var fileDirection: SignalDirection? = nil
        for (object, attrs) in [("signals", try f.attributes(of: "signals")), ("/", try f.attributes())] {
            guard let a = attrs["direction"] else { continue }
            guard case .string(let text) = a, let d = SignalDirection(rawValue: text) else {
                throw EvaluationError.input("\(path): attribute 'direction' of \(object == "/" ? "the file" : "dataset 'signals'") is '\(a)'; expected \(SignalDirection.allCases.map(\.rawValue).joined(separator: " or "))")
            }
            if let other = fileDirection, other != d {
                throw EvaluationError.input("\(path): the file says '\(other.rawValue)' on 'signals' and '\(d.rawValue)' on the root; make them agree")
            }
            fileDirection = d
        }
        if let requested, let fileDirection, requested != fileDirection {
            throw EvaluationError.input("\(path): the file's 'direction' attribute is '\(fileDirection.rawValue)' but '\(requested.rawValue)' was asked for; drop one")
        }
        let direction = requested ?? fileDirection ?? .higherIsMember
        let source = requested != nil ? "requested" : fileDirection != nil ? "file attribute" : "default"

        var values = try f.readTensor("signals", as: .float64).doubles
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw EvaluationError.input("\(path): dataset 'signals' holds \(values[bad]) at [model \(bad / (n * q)), example \(bad / q % n), query \(bad % q)]; every signal must be finite")
        }
        if direction == .lowerIsMember { values = values.map { -$0 } }
        let keepValues: [Double]
        if ki.isInteger {
            keepValues = try f.readInt64("keep").values.map(Double.init)
        } else if ki.isFloat {
            keepValues = try f.readTensor("keep", as: .float64).doubles
        } else {
            throw EvaluationError.input("\(path): dataset 'keep' is not integer (store it as uint8 0/1; h5py booleans are HDF5 enums: write keep.astype('uint8'))")
        }
        if let bad = keepValues.firstIndex(where: { $0 != 0 && $0 != 1 }) {
            throw EvaluationError.input("\(path): dataset 'keep' holds \(keepValues[bad]) at [model \(bad / n), example \(bad % n)]; expected 0 or 1")
        }
        let keep = (0..<k).map { m in (0..<n).map { keepValues[m * n + $0] == 1 } }
        let ones = keepValues.reduce(0, +)
        guard ones > 0 && ones < Double(k * n) else {
            throw EvaluationError.input("\(path): dataset 'keep' is all \(ones > 0 ? "ones" : "zeros"): there are no \(ones > 0 ? "non-member" : "member") trials to tell apart")
        }
        let s = MembershipSignals(models: k, examples: n, queries: q, values: values, keep: keep)
        let counts = s.memberCounts, sizes = keep.map { $0.reduce(0) { $0 + ($1 ? 1 : 0) } }
        let record = SignalsFileRecord(path: path, sha256: try fileSHA256(path), models: k, examples: n, queries: q, direction: direction, directionSource: source,
                                       membersPerExample: [counts.min()!, counts.max()!], examplesPerModel: [sizes.min()!, sizes.max()!])
        return (s, record)
    }

    /// Writes a signal file that `readSignalsFile` reads: `signals` float64 [K × N × Q],
    /// `keep` uint8 [K × N], and the `direction` attribute; atomically.
    public static func writeSignalsFile(_ s: MembershipSignals, direction: SignalDirection = .higherIsMember, to path: String) throws {
        try writeAtomically(to: path) { tmp in
            let f = try HDF5File.create(tmp)
            try f.setAttribute("direction", .string(direction.rawValue))
            try f.write("signals", tensor: Tensor(s.values, shape: [s.models, s.examples, s.queries], dtype: .float64))
            try f.write("keep", uint8: s.keep.flatMap { $0.map { $0 ? 1 : 0 } }, shape: [s.models, s.examples], compression: 0)
            f.flush()
        }
    }

    /// SHA-256 of a file's bytes, read in 16 MiB pieces.
    static func fileSHA256(_ path: String) throws -> String {
        guard let h = FileHandle(forReadingAtPath: path) else { throw EvaluationError.input("\(path): cannot read") }
        defer { try? h.close() }
        var sha = SHA256()
        while let d = try h.read(upToCount: 1 << 24), !d.isEmpty { sha.update([UInt8](d)) }
        return SHA256.hex(sha.finalize())
    }

    /// The default output folder of a signals-file evaluation: `<file's folder>/eval/mia-<file
    /// name>-<settings>`, beside the file as `<run>/eval/…` is beside a run, named by every
    /// setting that changes the numbers, so other settings never overwrite it.
    public static func signalsOutputFolder(file: String, attacks: [MembershipAttack]?, direction: SignalDirection, perQuery: Bool, bootstrap: Int) -> String {
        let url = URL(fileURLWithPath: file)
        let stem = url.deletingPathExtension().lastPathComponent
        let list = attacks.map { $0.map(\.rawValue).joined(separator: "+") } ?? "all"
        let name = "mia-\(stem)-\(list)-\(perQuery ? "per-query" : "mean")\(direction == .lowerIsMember ? "-lower-is-member" : "")-b\(bootstrap)"
        return url.deletingLastPathComponent().path + "/eval/" + name
    }

    /// `eidetic eval mia --signals FILE.h5`: every attack of `attacks` (nil: all variants,
    /// skipping — and recording why — those the keep matrix cannot support) evaluated
    /// leave-one-model-out on a signal matrix computed elsewhere. The queries are averaged
    /// first (as in plan mode) unless `perQuery` (a Gaussian per query, log-likelihood ratios
    /// averaged: the reference code's way). Writes `out` (default `signalsOutputFolder`) whole;
    /// refuses an existing folder unless `force`.
    public static func fromSignalsFile(_ path: String, attacks: [MembershipAttack]? = nil, direction: SignalDirection? = nil, perQuery: Bool = false,
                                       bootstrap: Int = 200, out: String? = nil, force: Bool = false) throws -> MembershipReport {
        guard bootstrap >= 0 else { throw EvaluationError.input("bootstrap: \(bootstrap) resamples") }
        let (raw, record) = try readSignalsFile(path, direction: direction)
        let folder = out ?? signalsOutputFolder(file: path, attacks: attacks, direction: record.direction, perQuery: perQuery, bootstrap: bootstrap)
        try mayWrite(folder, force: force)
        let s = perQuery ? raw : raw.averaged()
        var trials: [MembershipTrials] = [], skipped: [String: String] = [:]
        for a in attacks ?? MembershipAttack.allCases {
            do { trials.append(try a.leaveOneModelOut(s)) } catch {
                if attacks != nil { throw EvaluationError.input("\(path): \(error)") }
                skipped[a.rawValue] = "\(error)"
            }
        }
        guard !trials.isEmpty else { throw EvaluationError.input("\(path): no attack can run on this keep matrix (\(skipped.values.sorted().joined(separator: "; ")))") }
        return try finish(out: folder, force: force, mode: "signals", signal: nil, averageQueries: !perQuery, models: [], signalsFile: record,
                          examples: Array(0..<s.examples), trialsList: trials, bootstrap: bootstrap, plan: nil, planHash: nil, skipped: skipped, extra: [])
    }
}
