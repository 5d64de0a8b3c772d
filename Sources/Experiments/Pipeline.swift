import Data
import HDF5
import Evaluation
import Foundation
import Tensor
import Training

/// What one experiment produced: the numbers the tables read, and where each came from.
/// Written as `<run>/experiment.json` after every stage has run or was found current.
public struct ExperimentSummary: Codable, Equatable, Sendable {
    public struct Stage: Codable, Equatable, Sendable {
        public var name: String
        /// "ran" or "current" (its output existed for the same settings and was kept).
        public var state: String
        public var seconds: Double
        public var output: String
    }
    public struct TrainingResult: Codable, Equatable, Sendable {
        public var steps: Int
        public var images: Int
        public var trainingExamples: Int
        /// The last logged value of every metric whose name ends in "loss".
        public var finalLosses: [String: Double]
    }
    public struct ExtractionResultSummary: Codable, Equatable, Sendable {
        public var folder: String
        public var generations: Int
        public var trainingImages: Int
        /// Generations within the relative threshold, and the distinct training images they copy.
        public var extractedGenerations: Int
        public var uniqueExtracted: Int
        public var uniqueExtractedL2: Int
        public var medianL2: Double
        /// [generations, unique extracted] pairs (the paper's Figure 4 curve).
        public var curve: [[Int]]
        /// Dataset indices of the training images extracted (relative rule), ascending.
        public var extractedIndices: [Int]
    }
    /// The clique filter's outcome over the same generations (black-box, §4.1).
    public struct CliqueResultSummary: Codable, Equatable, Sendable {
        public var flagged: Int
        /// Flagged cliques whose medoid extracts a training image, and the distinct images.
        public var verified: Int
        public var uniqueVerified: Int
        public var minSize: Int
        public var tiles: Int
        /// [generations, flagged, verified, unique verified] on prefixes of the pool (nil in
        /// older records): the filter's count against the oracle's curve.
        public var curve: [[Int]]?
    }
    /// A private run's accountant: ε spent by its last step at δ, by both RDP conversions.
    public struct PrivacyResult: Codable, Equatable, Sendable {
        public var epsilon: Double
        public var epsilonClassic: Double
        public var delta: Double
    }
    /// A duplication plan's canaries with `copies` copies each (paper §7; P7/P8): how many
    /// this model's generations extract, how many the twin's generations flag (the baseline),
    /// and how the single-run attack separates them from the non-members (AUC of the canaries'
    /// scores against the non-members'; flagged: above the non-members' 99th percentile).
    public struct DuplicateOutcome: Codable, Equatable, Sendable {
        public var copies: Int
        public var canaries: Int
        public var extracted: Int
        public var baselineExtracted: Int?
        public var attackAUC: Double?
        public var flaggedAt1PercentFPR: Int?
    }
    public struct MembershipResultSummary: Codable, Equatable, Sendable {
        public var folder: String
        public var attack: String
        public var members: Int
        public var nonMembers: Int
        public var auc: AttackMetrics.Interval
        public var tprAtFPR: [String: AttackMetrics.Interval]
    }
    public var experiment: String
    public var overrides: [String]
    public var runDirectory: String
    public var kind: String
    public var seed: UInt64
    public var configIdentity: String
    public var dataFile: String
    public var dataSHA256: String
    public var codeVersion: String
    public var training: TrainingResult
    public var samples: String?
    public var extraction: ExtractionResultSummary?
    /// The non-member baseline (`[eval.baseline]`): the twin's generations scored against
    /// this run's training set by the same rule (`folder` is in the twin's run directory).
    public var baseline: ExtractionResultSummary?
    public var cliques: CliqueResultSummary?
    /// The clique filter over the twin's generations, verified against this run's training
    /// set (with `[eval.baseline]` and the filter on): its false positives (P12's calibration).
    public var baselineCliques: CliqueResultSummary?
    /// With `eval.extraction.clique_calibrate`: the δ the clique filter used above, chosen on
    /// the twin's generations (`CliqueCalibration`); nil in other records.
    public struct CliqueCalibrationSummary: Codable, Equatable, Sendable {
        public var folder: String
        public var threshold: Double
        public var calibrated: Bool
        /// Unique training images of its own that the twin's generations extract.
        public var ownExtracted: Int
        /// [δ, cliques flagged, false flags] on the twin's generations, ascending δ.
        public var points: [[Double]]
    }
    public var cliqueCalibration: CliqueCalibrationSummary?
    public var privacy: PrivacyResult?
    public var membership: MembershipResultSummary?
    /// Sample quality of the same generations (`[eval.quality]`): FCD/KCD against a held-out
    /// split, the real-vs-real floor and the per-pixel-noise baseline, measured the same way.
    public struct QualityResultSummary: Codable, Equatable, Sendable {
        public var folder: String
        public var samples: Int
        public var reference: String
        public var fcd: Double
        public var fcdRealFloor: Double
        /// KID-style kernel distance, mean and std over subsets (not ×1000).
        public var kcd: Double
        public var kcdStd: Double
        public var kcdRealFloor: Double
        /// FCD of per-pixel Gaussian noise matched to the training images: the bar to clear.
        public var fcdNoise: Double?
        public var classifier: String
        public var classifierAccuracy: Double
    }
    public var quality: QualityResultSummary?
    /// The one-run audit on the audit plan's canaries (`[eval.audit]`): the correct coin
    /// guesses and the ε lower bound they give at `delta` and `confidence`, beside the
    /// canaries' AUC (0.5: no signal). The accountant's upper bound is `privacy`.
    public struct AuditResultSummary: Codable, Equatable, Sendable {
        public var folder: String
        public var canaries: Int
        public var included: Int
        public var guesses: Int
        public var correct: Int
        public var epsilonLowerBound: Double
        public var delta: Double
        public var confidence: Double
        public var canaryAUC: Double
    }
    public var audit: AuditResultSummary?
    /// With a duplication plan (or one deduplicated from it): outcomes by copy count.
    public var duplicates: [DuplicateOutcome]?
    public var stages: [Stage]

    public static func path(run: String) -> String { run + "/experiment.json" }
    public static func load(run: String) throws -> ExperimentSummary {
        try JSONDecoder().decode(ExperimentSummary.self, from: Data(contentsOf: URL(fileURLWithPath: path(run: run))))
    }
}

/// Carries an experiment through its stages in order (train → sample → extraction →
/// membership → summary). Each stage's output is keyed by the settings that change it (the
/// run directory by the config's identity hash, the sample file by the request and the
/// checkpoint step, evaluation folders by a hash of their settings), so a stage whose
/// output exists is skipped, and an interrupted one is resumed (training from its last
/// checkpoint) or redone (sampling and evaluation write atomically).
public final class ExperimentPipeline {
    public let experiment: Experiment
    public let run: RunDirectory
    public var output: (String) -> Void = { print($0); fflush(stdout) }
    /// Threads for training (nil: the config's `train.threads`).
    public var threads: Int?

    public init(_ experiment: Experiment, runDirectory: String? = nil) throws {
        self.experiment = experiment
        run = RunDirectory(try runDirectory ?? experiment.defaultRunDirectory())
    }

    @discardableResult
    public func execute() throws -> ExperimentSummary {
        let c = experiment.config
        var stages: [ExperimentSummary.Stage] = []
        func stage<T>(_ name: String, _ body: () throws -> (T, String, Bool)) rethrows -> T {
            let t0 = Date()
            let (value, out, ran) = try body()
            let s = ExperimentSummary.Stage(name: name, state: ran ? "ran" : "current", seconds: Date().timeIntervalSince(t0), output: out)
            output(String(format: "stage %@: %@ (%.1f s) %@", name, s.state, s.seconds, out))
            stages.append(s)
            return value
        }

        // the quality stage's inputs must exist before hours of training, not after
        if let q = experiment.eval.quality {
            if !q.classifier.isEmpty, !FileManager.default.fileExists(atPath: q.classifier) {
                _ = try Self.ensureClassifier(q.classifier, settings: q, config: c, log: output)
            }
            let splits = try DatasetFile(c.data.file).splits
            guard splits.contains(q.referenceSplit) else {
                throw EvaluationError.input("eval.quality.reference_split: \(c.data.file) has no split '\(q.referenceSplit)' (it has \(splits.joined(separator: ", ")))")
            }
        }

        // 0. the data plan (written once; its path is keyed by the data and its settings)
        if let plan = experiment.plan {
            try stage("plan") { ((), plan.path, try plan.build(data: c.data.file, split: c.data.split)) }
        }

        // 1. train (resumes from the last checkpoint; a finished run is left as it is)
        let trainer = try Trainer(config: c, directory: run.path)
        trainer.threadsOverride = threads
        trainer.output = output
        let identity = trainer.identity
        let examples = trainer.data.count
        try stage("train") {
            let s = run.readStatus()
            let done = s?["state"] as? String == "done" && (s?["step"] as? Int) == c.totalSteps && FileManager.default.fileExists(atPath: run.checkpoint)
            if !done { try trainer.run() }
            return ((), run.path, !done)
        }
        let step = try run.loadCheckpoint().step

        // 2. sample
        let request = SampleRequest(c.sample)
        /// The sample file of `r` at `step`: kept when it exists, else generated.
        func samples(_ r: RunDirectory, step: Int) throws -> (String, String, Bool) {
            let path = sampleFilePath(run: r, request: request, step: step)
            if FileManager.default.fileExists(atPath: path) { return (path, path, false) }
            let file = try generateSamples(run: r, request: request).file
            return (file, file, true)
        }
        let samplesFile: String = try stage("sample") { try samples(run, step: step) }

        // 3. extraction (with the clique filter at `clique`)
        var extraction: ExperimentSummary.ExtractionResultSummary?
        var cliques: ExperimentSummary.CliqueResultSummary?
        func extractionStage(clique: CliqueConfig?) throws {
            struct Settings: Encodable { var samples: String; var config: ExtractionConfig; var clique: CliqueConfig? }
            let e = experiment.eval
            let name = try EvalOutput.folderName("extraction", ((samplesFile as NSString).lastPathComponent as NSString).deletingPathExtension,
                                                 settings: Settings(samples: (samplesFile as NSString).lastPathComponent, config: e.extractionConfig, clique: clique))
            let folder = run.path + "/eval/" + name
            extraction = try stage("extraction") {
                var ran = false
                if !FileManager.default.fileExists(atPath: folder + "/summary.json") {
                    _ = try ExtractionReport.run(run: run, samplesFile: samplesFile, config: e.extractionConfig, clique: clique, name: name, force: true)
                    ran = true
                }
                return (try Self.extractionSummary(folder: folder, threshold: e.extractionConfig.relativeThreshold), folder, ran)
            }
            if clique != nil { cliques = try Self.cliqueSummary(folder: folder) }
        }
        // with a calibrated clique filter, δ comes from the twin (3b) first
        let calibrating = experiment.eval.clique?.calibrate == true && experiment.eval.baseline
        if experiment.eval.extraction && !calibrating { try extractionStage(clique: experiment.eval.clique) }

        // 3b. the non-member baseline: a twin trained as long on a disjoint set of the same
        // size, sampled the same way, its generations scored against *this* training set
        var baseline: ExperimentSummary.ExtractionResultSummary?
        var baselineCliques: ExperimentSummary.CliqueResultSummary?
        var calibration: ExperimentSummary.CliqueCalibrationSummary?
        if experiment.eval.baseline {
            let e = experiment.eval
            let planPath = run.path + "/twin-plan.json"
            try stage("twin-plan") {
                if FileManager.default.fileExists(atPath: planPath) { return ((), planPath, false) }
                let (split, ids, _) = try trainingSelection(c.data)
                let ref = DatasetReference(file: c.data.file, split: c.data.split, contentSHA256: DatasetReference.contentHash(split))
                try PlanFile.write(try TwinPlan(dataset: ref, labels: split.labels, training: ids, seed: e.baselineSeed), to: planPath)
                return ((), planPath, true)
            }
            var tc = c
            tc.data.plan = planPath; tc.data.subset = 0; tc.data.planModel = -1
            let twin = RunDirectory(run.path + "/twin")
            let twinTrainer = try Trainer(config: tc, directory: twin.path)
            twinTrainer.threadsOverride = threads
            twinTrainer.output = { [output] in output("twin: " + $0) }
            try stage("twin-train") {
                let s = twin.readStatus()
                let done = s?["state"] as? String == "done" && (s?["step"] as? Int) == tc.totalSteps && FileManager.default.fileExists(atPath: twin.checkpoint)
                if !done { try twinTrainer.run() }
                return ((), twin.path, !done)
            }
            let twinStep = try twin.loadCheckpoint().step
            let twinSamples: String = try stage("twin-sample") { try samples(twin, step: twinStep) }
            var clique = e.clique
            if calibrating, let cc = e.clique {
                // δ chosen on the twin's generations and its own training set (CliqueCalibration)
                struct Settings: Encodable { var samples: String; var config: ExtractionConfig; var tiles: Int; var minSize: Int; var grid: [Double] }
                let name = try EvalOutput.folderName("clique-calibration", ((twinSamples as NSString).lastPathComponent as NSString).deletingPathExtension,
                                                     settings: Settings(samples: (twinSamples as NSString).lastPathComponent, config: e.extractionConfig,
                                                                        tiles: cc.tiles, minSize: cc.minSize, grid: CliqueCalibration.grid))
                let folder = twin.path + "/eval/" + name
                let cal: CliqueCalibration = try stage("clique-calibration") {
                    if let data = FileManager.default.contents(atPath: folder + "/summary.json") {
                        return (try JSONDecoder().decode(CliqueCalibration.self, from: data), folder, false)
                    }
                    return (try CliqueCalibration.run(run: twin, samplesFile: twinSamples, config: cc, extraction: e.extractionConfig, name: name, force: true), folder, true)
                }
                clique?.threshold = cal.threshold
                calibration = .init(folder: folder, threshold: cal.threshold, calibrated: cal.calibrated, ownExtracted: cal.ownExtracted,
                                    points: cal.points.map { [$0.threshold, Double($0.flagged), Double($0.falseFlags)] })
                if e.extraction { try extractionStage(clique: clique) }
            }
            struct Settings: Encodable { var samples: String; var against: String; var config: ExtractionConfig; var clique: CliqueConfig? }
            let name = try EvalOutput.folderName("baseline", ((twinSamples as NSString).lastPathComponent as NSString).deletingPathExtension,
                                                 settings: Settings(samples: (twinSamples as NSString).lastPathComponent, against: "parent", config: e.extractionConfig, clique: clique))
            let folder = twin.path + "/eval/" + name
            baseline = try stage("baseline") {
                var ran = false
                if !FileManager.default.fileExists(atPath: folder + "/summary.json") {
                    _ = try ExtractionReport.run(run: twin, samplesFile: twinSamples, trainingRun: run, config: e.extractionConfig, clique: clique, name: name, force: true)
                    ran = true
                }
                return (try Self.extractionSummary(folder: folder, threshold: e.extractionConfig.relativeThreshold), folder, ran)
            }
            // the clique filter on the twin's generations: what it flags and "verifies"
            // against a training set the generating model never saw (its false positives)
            if clique != nil { baselineCliques = try Self.cliqueSummary(folder: folder) }
        }

        // 4. membership (single run)
        var membership: ExperimentSummary.MembershipResultSummary?
        if experiment.eval.membership {
            let e = experiment.eval
            let folder = run.path + "/eval/" + (try EvalOutput.folderName("mia-single", "n\(e.nonMembers)", settings: e.signal))
            membership = try stage("membership") {
                var ran = false
                if !FileManager.default.fileExists(atPath: folder + "/summary.json") {
                    _ = try MembershipReport.singleRun(run, nonMembers: e.nonMembers, signal: e.signal, useEMA: c.sample.useEMA, out: folder, force: true, log: output)
                    ran = true
                }
                let r = try JSONDecoder().decode(MembershipReport.self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/summary.json")))
                guard let first = r.results.first else { throw EvaluationError.input("\(folder)/summary.json: no attack results") }
                return (ExperimentSummary.MembershipResultSummary(folder: folder, attack: first.attack.rawValue, members: first.metrics.members,
                                                                  nonMembers: first.metrics.nonMembers, auc: first.metrics.auc, tprAtFPR: first.metrics.tprAtFPR), folder, ran)
            }
        }

        // 4a. sample quality beside memorization (FCD/KCD; the classifier trained once if absent)
        var quality: ExperimentSummary.QualityResultSummary?
        if let q = experiment.eval.quality {
            let classifier = try q.classifierPath(config: c)
            try stage("quality-classifier") { ((), classifier, try Self.ensureClassifier(classifier, settings: q, config: c, log: output)) }
            quality = try stage("quality") {
                let folder = try QualityReport.defaultFolder(run: run, samplesFile: samplesFile, classifierPath: classifier, referenceSplit: q.referenceSplit)
                var ran = false
                if !FileManager.default.fileExists(atPath: folder + "/summary.json") {
                    _ = try QualityReport.run(run: run, samplesFile: samplesFile, classifierPath: classifier, referenceSplit: q.referenceSplit, out: folder, force: true)
                    ran = true
                }
                let r = try JSONDecoder().decode(QualityReport.self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/summary.json")))
                return (.init(folder: folder, samples: r.samples, reference: r.reference, fcd: r.fcd, fcdRealFloor: r.fcdRealFloor, kcd: r.kcd, kcdStd: r.kcdStd,
                              kcdRealFloor: r.kcdRealFloor, fcdNoise: r.baselines?.first { $0.name == "gaussian-noise" }?.fcd,
                              classifier: classifier, classifierAccuracy: r.classifier.testAccuracy), folder, ran)
            }
        }

        // 4c. the one-run privacy audit on the audit plan's canaries (an ε lower bound)
        var audit: ExperimentSummary.AuditResultSummary?
        if let a = experiment.eval.audit {
            let folder = AuditReport.outputFolder(run: run.path, signal: a.signal, useEMA: c.sample.useEMA, delta: nil, guesses: nil, confidence: a.confidence)
            audit = try stage("audit") {
                var ran = false
                if !FileManager.default.fileExists(atPath: folder + "/summary.json") {
                    _ = try AuditReport.audit(run, signal: a.signal, useEMA: c.sample.useEMA, confidence: a.confidence, out: folder, force: true, log: output)
                    ran = true
                }
                let r = try JSONDecoder().decode(AuditReport.self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/summary.json")))
                let o = r.outcome
                return (.init(folder: folder, canaries: o.canaries, included: o.included, guesses: o.guesses, correct: o.correct,
                              epsilonLowerBound: o.epsilonLowerBound, delta: o.delta, confidence: o.confidence, canaryAUC: r.canaryAUC), folder, ran)
            }
        }

        // 4b. outcomes by duplicate count (a duplication plan's canaries, or a deduplicated one's)
        let duplicates = try Self.duplicateOutcomes(config: c, stage: experiment.plan, extraction: extraction, baseline: baseline, membership: membership)

        // 5. summary
        var privacy: ExperimentSummary.PrivacyResult?
        if c.privacy != nil, let st = run.readStatus(), let eps = st["epsilon"] as? Double {
            privacy = .init(epsilon: eps, epsilonClassic: st["epsilon_classic"] as? Double ?? .nan, delta: st["delta"] as? Double ?? .nan)
        }
        let summary = ExperimentSummary(
            experiment: experiment.file, overrides: experiment.overrides, runDirectory: run.path, kind: c.kind.rawValue, seed: c.run.seed,
            configIdentity: try c.identityHash(), dataFile: c.data.file, dataSHA256: identity.dataSHA256, codeVersion: CodeVersion.current,
            training: .init(steps: step, images: step * c.imagesPerStep, trainingExamples: examples, finalLosses: Self.finalLosses(run.metrics)),
            samples: samplesFile, extraction: extraction, baseline: baseline, cliques: cliques, baselineCliques: baselineCliques, cliqueCalibration: calibration, privacy: privacy, membership: membership, quality: quality, audit: audit, duplicates: duplicates, stages: stages)
        try EvalOutput.writeJSON(summary, to: ExperimentSummary.path(run: run.path))
        output("summary: \(ExperimentSummary.path(run: run.path))")
        return summary
    }

    /// The quality classifier at `path`: kept when it exists; else trained there (the shared
    /// default path only: a classifier named in the config must exist). Jobs that ask at the
    /// same time wait on `<path>.lock` for the first to finish, so it is trained once.
    static func ensureClassifier(_ path: String, settings q: QualitySettings, config c: TrainConfig, log: @escaping (String) -> Void) throws -> Bool {
        if FileManager.default.fileExists(atPath: path) { return false }
        guard q.classifier.isEmpty else {
            throw EvaluationError.input("eval.quality.classifier: no classifier at \(path); train it with `eidetic eval quality-classifier --data \(c.data.file) --out \(path)`, or remove the key to have the experiment train one")
        }
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let fd = open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw EvaluationError.input("\(path).lock: cannot open: \(String(cString: strerror(errno)))") }
        defer { flock(fd, LOCK_UN); close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            log("quality classifier: another job is training \(path); waiting for it")
            guard flock(fd, LOCK_EX) == 0 else { throw EvaluationError.input("\(path).lock: cannot lock: \(String(cString: strerror(errno)))") }
        }
        if FileManager.default.fileExists(atPath: path) { return false }
        let r = try QualityClassifier.train(dataFile: c.data.file, trainSplit: c.data.split, testSplit: q.referenceSplit, epochs: q.epochs,
                                            batchSize: 128, seed: q.seed, out: path, log: { log("quality classifier: " + $0) })
        log(String(format: "quality classifier: %@ (test accuracy %.2f%%)", path, r.testAccuracy * 100))
        return true
    }

    /// The duplication plan behind a run (its own plan, or the source a dedup stage recorded)
    /// and each copy count's canaries: extracted, flagged by the baseline, and attacked.
    static func duplicateOutcomes(config c: TrainConfig, stage: DataPlanStage?, extraction: ExperimentSummary.ExtractionResultSummary?,
                                  baseline: ExperimentSummary.ExtractionResultSummary?,
                                  membership: ExperimentSummary.MembershipResultSummary?) throws -> [ExperimentSummary.DuplicateOutcome]? {
        guard !c.data.plan.isEmpty else { return nil }
        let kind = try PlanFile.kind(of: c.data.plan)
        let source: String
        if kind == DuplicationPlan.kind { source = c.data.plan }
        else if kind == DeduplicationPlan.kind, let s = stage, s.dedupThreshold != nil { source = s.duplicationSource }
        else { return nil }
        let dup = try PlanFile.read(DuplicationPlan.self, from: source)
        let extracted = Set(extraction?.extractedIndices ?? []), flagged = Set(baseline?.extractedIndices ?? [])
        // per-example attack scores (higher: more likely a member) from the single-run folder
        var score: [Int: Double] = [:], nonMember: [Double] = []
        if let m = membership {
            let f = try HDF5File.open(m.folder + "/mia.h5")
            defer { try? f.close() }
            let (ids, _) = try f.readInt64("examples/dataset_indices")
            let losses = try f.readTensor("signals/losses").doubles
            let q = ids.isEmpty ? 1 : losses.count / ids.count
            let training = Set(try trainingSelection(c.data).indices)
            for (i, id) in ids.enumerated() {
                let s = -losses[(i * q)..<((i + 1) * q)].reduce(0, +) / Double(q)
                score[Int(id)] = s
                if !training.contains(Int(id)) { nonMember.append(s) }
            }
        }
        nonMember.sort()
        let threshold = nonMember.isEmpty ? nil : nonMember[min(nonMember.count - 1, Int((0.99 * Double(nonMember.count)).rounded(.up)) - 1)]
        return Dictionary(grouping: dup.canaries, by: \.copies).keys.sorted().map { k in
            let ids = dup.canaries.filter { $0.copies == k }.map(\.index)
            let scores = ids.compactMap { score[$0] }
            let auc: Double? = scores.count == ids.count && !nonMember.isEmpty
                ? scores.map { s in nonMember.reduce(0.0) { $0 + ($1 < s ? 1 : $1 == s ? 0.5 : 0) } }.reduce(0, +) / Double(scores.count * nonMember.count) : nil
            return .init(copies: k, canaries: ids.count, extracted: ids.filter(extracted.contains).count,
                         baselineExtracted: baseline == nil ? nil : ids.filter(flagged.contains).count,
                         attackAUC: auc, flaggedAt1PercentFPR: threshold.map { t in scores.filter { $0 > t }.count })
        }
    }

    /// An extraction folder's clique-filter outcome, as the summary records it (nil: not run).
    static func cliqueSummary(folder: String) throws -> ExperimentSummary.CliqueResultSummary? {
        guard let c = try JSONDecoder().decode(ExtractionReport.self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/summary.json"))).cliques else { return nil }
        return .init(flagged: c.flagged, verified: c.verified, uniqueVerified: c.uniqueVerified, minSize: c.config.minSize, tiles: c.config.tiles, curve: c.curve)
    }

    /// An extraction folder's counts, as the summary records them.
    static func extractionSummary(folder: String, threshold: Double) throws -> ExperimentSummary.ExtractionResultSummary {
        let r = try JSONDecoder().decode(ExtractionReport.self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/summary.json")))
        let x = r.extraction
        return ExperimentSummary.ExtractionResultSummary(
            folder: folder, generations: x.generations, trainingImages: x.trainingImages,
            extractedGenerations: x.extractedGenerations["relative"] ?? 0, uniqueExtracted: x.uniqueExtracted["relative"] ?? 0,
            uniqueExtractedL2: x.uniqueExtracted["l2"] ?? 0, medianL2: x.l2Quantiles["median"] ?? .nan, curve: x.curve,
            extractedIndices: try extractedIndices(folder: folder, threshold: threshold))
    }

    /// The last logged value of each "…loss" metric.
    static func finalLosses(_ metricsPath: String) -> [String: Double] {
        guard let text = try? String(contentsOfFile: metricsPath, encoding: .utf8) else { return [:] }
        for line in text.split(separator: "\n").reversed() {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            var out: [String: Double] = [:]
            for (k, v) in o where k.hasSuffix("loss") { if let d = v as? Double { out[k] = d } else if let i = v as? Int { out[k] = Double(i) } }
            if !out.isEmpty { return out }
        }
        return [:]
    }

    /// Dataset indices of the training images extracted by the relative rule, from the
    /// evaluation's per-generation arrays.
    static func extractedIndices(folder: String, threshold: Double) throws -> [Int] {
        let f = try HDF5File.open(folder + "/extraction.h5")
        defer { try? f.close() }
        let relative = try f.readTensor("samples/relative").doubles
        let (nearest, shape) = try f.readInt64("nearest/dataset_indices")
        let k = shape.count == 2 ? shape[1] : 1
        var out = Set<Int>()
        for (g, r) in relative.enumerated() where r < threshold { out.insert(Int(nearest[g * k])) }
        return out.sorted()
    }
}
