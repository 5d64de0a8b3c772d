import Data
import Evaluation
import Foundation
import TOML
import Training

/// What an experiment measures once its model is trained and sampled (`[eval]`).
public struct EvaluationSettings: Codable, Equatable, Sendable {
    /// Score the `sample.count` samples against the run's training set (Carlini et al. 2023,
    /// §4: ℓ2 and the relative distance over the n nearest neighbours).
    public var extraction = true
    public var extractionConfig = ExtractionConfig()
    /// The clique filter over generations (§4.1), or nil.
    public var clique: CliqueConfig?
    /// The single-run membership attack: members are the training images, `nonMembers`
    /// others of the same split; the signal is the diffusion loss (or D's logit for GANs).
    public var membership = false
    public var nonMembers = 256
    public var signal = LossSignalConfig()
    /// The extraction count's non-member baseline (`[eval.baseline]`): a twin of the model
    /// trained as long on a disjoint set of the same size and class counts (`TwinPlan`), whose
    /// generations are scored against this model's training set by the same rule.
    public var baseline = false
    public var baselineSeed: UInt64 = 0
    /// Sample quality beside memorization (`[eval.quality]`), or nil: FCD/KCD of the samples.
    /// Optional so that the settings of experiments without it encode (and hash) as before.
    public var quality: QualitySettings?
    /// The one-run privacy audit (`[eval.audit]`; Steinke, Nasr & Jagielski 2023), or nil:
    /// needs an audit plan (`plan.kind = "audit"`), whose canaries each had a fair coin.
    public var audit: AuditSettings?
    public init() {}

    /// Reads `[eval.extraction]`, `[eval.membership]`, `[eval.baseline]`, `[eval.quality]` and
    /// `[eval.audit]` (each with `enabled`); `plan` is the `[plan]` stage, read first.
    static func read(_ r: ConfigReader, config c: TrainConfig, plan: DataPlanStage?) throws -> EvaluationSettings {
        let kind = c.kind
        var e = EvaluationSettings()
        let ev = try r.section("eval")
        let x = try ev.section("extraction")
        e.extraction = try x.bool("enabled", e.extraction)
        e.extractionConfig.alpha = try x.double("alpha", e.extractionConfig.alpha, min: 0, max: 1)
        e.extractionConfig.neighbors = try x.int("neighbors", e.extractionConfig.neighbors, min: 1, max: 1_000_000)
        e.extractionConfig.relativeThreshold = try x.double("relative_threshold", e.extractionConfig.relativeThreshold, min: 1e-12)
        e.extractionConfig.l2Threshold = try x.double("l2_threshold", e.extractionConfig.l2Threshold, min: 0)
        if try x.bool("clique", false) {
            var c = CliqueConfig()
            c.threshold = try x.double("clique_threshold", c.threshold, min: 0)
            c.tiles = try x.int("clique_tiles", c.tiles, min: 1, max: 64)
            c.minSize = try x.int("clique_min", c.minSize, min: 2)
            if try x.bool("clique_calibrate", false) {
                if x.has("clique_threshold") { throw x.error("clique_calibrate", "chooses clique_threshold on the non-member twin; give one or the other") }
                c.calibrate = true
            }
            e.clique = c
        } else {
            for k in ["clique_threshold", "clique_tiles", "clique_min", "clique_calibrate"] where x.has(k) {
                throw x.error(k, "applies only with eval.extraction.clique = true")
            }
        }
        let m = try ev.section("membership")
        e.membership = try m.bool("enabled", e.membership)
        e.nonMembers = try m.int("non_members", e.nonMembers, min: 1, max: 10_000_000)
        if kind.isGAN {
            for k in ["timesteps", "draws"] where m.has(k) { throw m.error(k, "applies to diffusion models only (a GAN's signal is its discriminator's logit)") }
            e.signal = .discriminatorScore(flip: try m.bool("flip", false))
        } else {
            e.signal.timesteps = try m.ints("timesteps", e.signal.timesteps, min: 0, max: 100_000, maxCount: 64)
            if e.signal.timesteps.isEmpty { throw m.error("timesteps", "needs at least one timestep") }
            if let t = e.signal.timesteps.first(where: { $0 >= c.diffusion.timesteps }) {
                throw m.error("timesteps", "\(t) is outside the diffusion process (diffusion.timesteps = \(c.diffusion.timesteps): 0…\(c.diffusion.timesteps - 1))")
            }
            e.signal.draws = try m.int("draws", e.signal.draws, min: 1, max: 1024)
            e.signal.flip = try m.bool("flip", false)
        }
        e.signal.seed = UInt64(try m.int("seed", 0, min: 0))
        let b = try ev.section("baseline")
        e.baseline = try b.bool("enabled", false)
        e.baselineSeed = UInt64(try b.int("seed", 0, min: 0))
        if e.baseline && !e.extraction {
            throw b.error("enabled", "is the extraction count's baseline, but eval.extraction.enabled = false")
        }
        if e.clique?.calibrate == true && !e.baseline {
            throw x.error("clique_calibrate", "calibrates δ on the non-member twin's generations; it needs eval.baseline.enabled = true")
        }
        let q = try ev.section("quality")
        if try q.bool("enabled", false) {
            var s = QualitySettings()
            s.classifier = try q.string("classifier", "")
            s.referenceSplit = try q.string("reference_split", s.referenceSplit)
            if s.referenceSplit.isEmpty { throw q.error("reference_split", "names a split of data.file (e.g. \"test\")") }
            if s.referenceSplit == c.data.split { throw q.error("reference_split", "is the training split (\"\(c.data.split)\"); the reference must be held out") }
            s.epochs = try q.int("epochs", s.epochs, min: 1, max: 1000)
            s.seed = UInt64(try q.int("seed", 0, min: 0))
            if !s.classifier.isEmpty { for k in ["epochs", "seed"] where q.has(k) { throw q.error(k, "trains the classifier, but eval.quality.classifier names one already trained") } }
            e.quality = s
        } else {
            for k in ["classifier", "reference_split", "epochs", "seed"] where q.has(k) { throw q.error(k, "applies only with eval.quality.enabled = true") }
        }
        let a = try ev.section("audit")
        if try a.bool("enabled", false) {
            if kind.isGAN { throw a.error("enabled", "audits a diffusion model's loss on its canaries; a GAN run has no such signal here") }
            guard plan?.kind == "audit" || (plan == nil && !c.data.plan.isEmpty) else {
                throw a.error("enabled", "needs an audit plan: plan.kind = \"audit\" (canaries with a fair coin each), or data.plan naming one")
            }
            var s = AuditSettings()
            s.timesteps = try a.ints("timesteps", s.timesteps, min: 0, max: 100_000, maxCount: 64)
            if s.timesteps.isEmpty { throw a.error("timesteps", "needs at least one timestep") }
            if let t = s.timesteps.first(where: { $0 >= c.diffusion.timesteps }) {
                throw a.error("timesteps", "\(t) is outside the diffusion process (diffusion.timesteps = \(c.diffusion.timesteps): 0…\(c.diffusion.timesteps - 1))")
            }
            s.draws = try a.int("draws", s.draws, min: 1, max: 1024)
            s.confidence = try a.double("confidence", s.confidence, min: 0.5, max: 0.999999)
            e.audit = s
        } else {
            for k in ["timesteps", "draws", "confidence"] where a.has(k) { throw a.error(k, "applies only with eval.audit.enabled = true") }
        }
        return e
    }
}

/// `[eval.audit]`: the one-run audit of the model on its audit plan's canaries (`eidetic
/// eval audit`, docs/EVALUATION.md): the canaries' negative diffusion loss at `timesteps`
/// (averaged over `draws` fixed noises) guesses each coin; the correct guesses give a lower
/// bound on ε at `confidence`, to set beside the accountant's upper bound.
public struct AuditSettings: Codable, Equatable, Sendable {
    public var timesteps = [50, 100, 200]
    public var draws = 4
    public var confidence = 0.95
    public init() {}

    public var signal: LossSignalConfig {
        var s = LossSignalConfig(); s.timesteps = timesteps; s.draws = draws
        return s
    }
}

/// `[eval.quality]`: Fréchet and kernel classifier distances (FCD, KCD; not FID) of the
/// samples against a held-out split, in the features of an Eidetic-trained classifier
/// (`QualityReport`, paper-spec §11.1), so memorization is read beside sample quality (the
/// paper compares models at equal FID). With `classifier` empty the classifier is trained on
/// first use (`epochs`, `seed`) at `<run.out>/quality/<data>-<hash>.h5`, once per dataset and
/// settings however many jobs ask for it at the same time.
public struct QualitySettings: Codable, Equatable, Sendable {
    public var classifier = ""
    public var referenceSplit = "test"
    public var epochs = 8
    public var seed: UInt64 = 0
    public init() {}

    /// The classifier file: the one named, or the shared one keyed by data and settings.
    public func classifierPath(config c: TrainConfig) throws -> String {
        if !classifier.isEmpty { return classifier }
        struct Key: Encodable { var file: String; var train: String; var test: String; var epochs: Int; var seed: UInt64 }
        let e = JSONEncoder(); e.outputFormatting = [.sortedKeys]
        let h = String(SHA256.hex([UInt8](try e.encode(Key(file: c.data.file, train: c.data.split, test: referenceSplit, epochs: epochs, seed: seed)))).prefix(10))
        let stem = ((c.data.file as NSString).lastPathComponent as NSString).deletingPathExtension
        return "\(c.run.out)/quality/\(stem)-classifier-\(h).h5"
    }
}

/// A data plan an experiment builds before training (`[plan]`): a class-balanced subset, a
/// subset with canaries duplicated k times (the paper's duplication study, §5), or an audit
/// plan (a class-balanced pool of `size` of which `canaries`, drawn uniformly, each get a fair
/// coin for inclusion and the rest are always trained on; the one-run audit, `[eval.audit]`).
public struct DataPlanStage: Codable, Equatable, Sendable {
    public var kind: String
    /// Base subset size (class-balanced) and its seed.
    public var size: Int
    public var seed: UInt64
    /// duplicates: canaries[i] canaries get copies[i] copies each.
    public var copies: [Int]
    public var canaries: [Int]
    /// Where the plan file goes: `<run.out>/plans/<kind>-<hash of data and settings>.json`.
    public var path: String
    /// duplicates: then deduplicate the physical list (exact copies, and near-copies below
    /// this normalized ℓ2), training on one image per group (the paper's deduplication
    /// defence, §7); nil: train on the copies. The duplication plan is kept beside it.
    public var dedupThreshold: Double?
    /// audit: how many of the `size` pool images are canaries (nil for the other kinds, so
    /// their plan paths, which hash these settings, are unchanged).
    public var auditCanaries: Int?

    static func read(_ r: ConfigReader, config c: TrainConfig) throws -> DataPlanStage? {
        guard r.has("plan") else { return nil }
        let p = try r.section("plan")
        let kind = try p.choice("kind", "subset", ["subset", "duplicates", "audit"])
        var s = DataPlanStage(kind: kind, size: try p.int("size", 0, min: 1, max: 100_000_000), seed: UInt64(try p.int("seed", 0, min: 0)),
                              copies: [], canaries: [], path: "")
        if !p.has("size") { throw p.error("size", "is required (the class-balanced base subset's size)") }
        if kind == "duplicates" {
            s.copies = try p.ints("copies", [], min: 1, max: 1_000_000, maxCount: 64)
            s.canaries = try p.ints("canaries", [], min: 0, max: 100_000_000, maxCount: 64)
            guard !s.copies.isEmpty, s.copies.count == s.canaries.count else {
                throw p.error("canaries", "needs one count per entry of plan.copies (\(s.copies.count)), got \(s.canaries.count)")
            }
            guard Set(s.copies).count == s.copies.count else { throw p.error("copies", "lists a copy count twice") }
            guard s.canaries.reduce(0, +) <= s.size else { throw p.error("canaries", "\(s.canaries.reduce(0, +)) canaries exceed the base subset of \(s.size)") }
            if p.has("dedup_threshold") { s.dedupThreshold = try p.double("dedup_threshold", 0, min: 0, max: 10) }
        } else if kind == "audit" {
            guard p.has("canaries") else { throw p.error("canaries", "is required for plan.kind = \"audit\" (how many of the plan.size images get a fair coin)") }
            let m = try p.int("canaries", 0, min: 1, max: 100_000_000)
            guard m <= s.size else { throw p.error("canaries", "\(m) canaries exceed plan.size = \(s.size)") }
            s.auditCanaries = m
            for k in ["copies", "dedup_threshold"] where p.has(k) { throw p.error(k, "applies to plan.kind = \"duplicates\" only") }
        } else {
            for k in ["copies", "canaries", "dedup_threshold"] where p.has(k) { throw p.error(k, "applies to plan.kind = \"duplicates\" only") }
        }
        if !c.data.plan.isEmpty { throw p.error("kind", "builds the plan, but data.plan is also set (\"\(c.data.plan)\"); give one") }
        if c.data.subset > 0 { throw p.error("size", "chooses the images, but data.subset = \(c.data.subset) would take a further subset; remove data.subset") }
        struct Key: Encodable { var file: String; var split: String; var stage: DataPlanStage }
        let e = JSONEncoder(); e.outputFormatting = [.sortedKeys]
        let h = String(SHA256.hex([UInt8](try e.encode(Key(file: c.data.file, split: c.data.split, stage: s)))).prefix(10))
        s.path = "\(c.run.out)/plans/\(s.dedupThreshold == nil ? kind : "dedup")-\(h).json"
        return s
    }

    /// With `dedupThreshold`: the duplication plan that was deduplicated.
    public var duplicationSource: String { (path as NSString).deletingPathExtension + "-source.json" }

    /// Writes the plan file unless it exists; returns whether it wrote it.
    public func build(data file: String, split: String) throws -> Bool {
        if FileManager.default.fileExists(atPath: path) { return false }
        let set = try DatasetFile(file).load(split)
        let ref = DatasetReference(file: file, split: split, contentSHA256: DatasetReference.contentHash(set))
        let base = try SubsetPlan(dataset: ref, labels: set.labels, classes: set.classNames.count, size: size, seed: seed)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        if kind == "subset" {
            _ = try PlanFile.write(base, to: path)
        } else if let m = auditCanaries {
            // the canaries drawn from the pool by the plan's seed; every other pool image is
            // always trained on (the same draw again, now with the rest as the base)
            let drawn = try AuditPlan(dataset: ref, pool: base.indices, base: [], canaries: m, seed: seed).canaries
            let always = Set(base.indices).subtracting(drawn).sorted()
            _ = try PlanFile.write(try AuditPlan(dataset: ref, pool: base.indices, base: always, canaries: m, seed: seed), to: path)
        } else {
            let spec = Dictionary(uniqueKeysWithValues: zip(copies, canaries))
            let dup = try DuplicationPlan(dataset: ref, base: base.indices, canariesPerCopies: spec, seed: seed)
            if let t = dedupThreshold {
                _ = try PlanFile.write(dup, to: duplicationSource)
                _ = try PlanFile.write(DeduplicationPlan(dataset: ref, images: set, candidates: dup.trainingIndices, threshold: t), to: path)
            } else {
                _ = try PlanFile.write(dup, to: path)
            }
        }
        return true
    }
}

/// A whole experiment: the training config (every section `eidetic train` reads) plus what
/// to evaluate. `eidetic run` carries it through train → sample → evaluate → summary.
public struct Experiment: Sendable {
    public var config: TrainConfig
    public var eval: EvaluationSettings
    /// The data plan built before training (its path is already `config.data.plan`).
    public var plan: DataPlanStage?
    /// The file it was read from and the `--set` overrides applied, as given.
    public var file: String
    public var overrides: [String]

    public static func load(toml text: String, file: String, overrides: [String] = []) throws -> Experiment {
        var eval = EvaluationSettings()
        var plan: DataPlanStage?
        var c = try TrainConfig.load(toml: text, file: file, overrides: overrides) { r, c in
            plan = try DataPlanStage.read(r, config: c)
            eval = try EvaluationSettings.read(r, config: c, plan: plan)
        }
        if let p = plan { c.data.plan = p.path }
        return Experiment(config: c, eval: eval, plan: plan, file: file, overrides: overrides)
    }

    public static func load(file: String, overrides: [String] = []) throws -> Experiment {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw TOMLError(file: file, line: 0, message: "cannot read the config file")
        }
        return try load(toml: String(decoding: data, as: UTF8.self), file: file, overrides: overrides)
    }

    /// `<run.out>/<run.name>-<identity hash>`, as for `eidetic train`.
    public func defaultRunDirectory() throws -> String { try config.defaultRunDirectory() }
}

/// The version of the code that produced a result: the package version and the commit.
/// The commit comes from `<binary>.version` (written by `make build`/`make test` after each
/// build: `git describe --always --dirty`) when it is at least as new as the binary, so a
/// binary copied elsewhere with its stamp, or run after the checkout moved on, still names
/// the commit it was built from; otherwise from the HEAD of the checkout the binary sits in,
/// marked "HEAD at run time" because that may be newer than the build.
public enum CodeVersion {
    public static let package = "0.13.0"
    public static let current: String = describe(executable: URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().path)

    public static func describe(executable: String) -> String {
        let fm = FileManager.default
        if let stamp = try? String(contentsOfFile: executable + ".version", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
           !stamp.isEmpty, stamp.count <= 80,
           let s = (try? fm.attributesOfItem(atPath: executable + ".version"))?[.modificationDate] as? Date,
           let b = (try? fm.attributesOfItem(atPath: executable))?[.modificationDate] as? Date, s >= b {
            return "\(package) (git \(stamp))"
        }
        var dir = URL(fileURLWithPath: executable).deletingLastPathComponent()
        for _ in 0..<6 {
            if let head = try? String(contentsOfFile: dir.path + "/.git/HEAD", encoding: .utf8) {
                let h = head.trimmingCharacters(in: .whitespacesAndNewlines)
                if h.hasPrefix("ref: ") {
                    let ref = String(h.dropFirst(5))
                    if let sha = try? String(contentsOfFile: dir.path + "/.git/" + ref, encoding: .utf8) {
                        return "\(package) (git \(sha.prefix(12)), HEAD at run time)"
                    }
                    // packed refs
                    if let packed = try? String(contentsOfFile: dir.path + "/.git/packed-refs", encoding: .utf8),
                       let line = packed.split(separator: "\n").first(where: { $0.hasSuffix(" " + ref) }) {
                        return "\(package) (git \(line.prefix(12)), HEAD at run time)"
                    }
                } else if h.count >= 12 { return "\(package) (git \(h.prefix(12)), HEAD at run time)" }
            }
            dir = dir.deletingLastPathComponent()
        }
        return "\(package) (commit unknown: no \((executable as NSString).lastPathComponent).version stamp beside the binary, not in a checkout)"
    }
}
