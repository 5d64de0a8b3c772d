import Data
import Diffusion
import Foundation
import Models
import TOML

/// Everything that defines a DDPM training run. Written as TOML by people; every key has
/// a default, unknown keys are errors, and the resolved config (all defaults filled in) is
/// saved beside the run as JSON. Sections: [run] [data] [model] [diffusion] [train] [sample].
public struct TrainConfig: Codable, Equatable, Sendable {
    public struct Run: Codable, Equatable, Sendable {
        public var name = "ddpm"
        public var seed: UInt64 = 0
        /// Parent folder of run directories.
        public var out = "results/runs"
    }
    public struct DataSection: Codable, Equatable, Sendable {
        public var file = "datasets/fashion-mnist-2k.h5"
        public var split = "train"
        /// Class-balanced subset of this many images (0: the whole split, or the plan's).
        public var subset = 0
        public var subsetSeed: UInt64 = 0
        /// Optional plan file (subset or duplication) choosing the training examples.
        public var plan = ""
        /// With a membership plan: which model's half this run trains on.
        public var planModel = -1
        /// Random horizontal flips.
        public var flip = true

        enum CodingKeys: String, CodingKey { case file, split, subset, subsetSeed, plan, planModel, flip }
        public init() {}
        // `planModel` is written only when set, so configs (and run-directory hashes) from
        // before it existed stay the same.
        public init(from d: Decoder) throws {
            let c = try d.container(keyedBy: CodingKeys.self)
            file = try c.decode(String.self, forKey: .file); split = try c.decode(String.self, forKey: .split)
            subset = try c.decode(Int.self, forKey: .subset); subsetSeed = try c.decode(UInt64.self, forKey: .subsetSeed)
            plan = try c.decode(String.self, forKey: .plan); flip = try c.decode(Bool.self, forKey: .flip)
            planModel = try c.decodeIfPresent(Int.self, forKey: .planModel) ?? -1
        }
        public func encode(to e: Encoder) throws {
            var c = e.container(keyedBy: CodingKeys.self)
            try c.encode(file, forKey: .file); try c.encode(split, forKey: .split); try c.encode(subset, forKey: .subset)
            try c.encode(subsetSeed, forKey: .subsetSeed); try c.encode(plan, forKey: .plan); try c.encode(flip, forKey: .flip)
            if planModel >= 0 { try c.encode(planModel, forKey: .planModel) }
        }
    }
    public struct Train: Codable, Equatable, Sendable {
        public var batchSize = 64
        /// Length of training in images seen (steps = images / batch size, rounded up).
        public var images = 64_000
        public var learningRate = 2e-4
        public var warmupSteps = 0
        public var gradClip = 1.0
        public var emaDecay = 0.999
        public var checkpointEvery = 500
        public var logEvery = 50
        /// BLAS/conv threads (0: all cores, or SLURM_CPUS_PER_TASK).
        public var threads = 0
        /// Probability of replacing the label with the null label (classifier-free guidance).
        public var labelDropout = 0.1
    }
    public struct Sample: Codable, Equatable, Sendable {
        public var count = 64
        public var batchSize = 64
        public var sampler = SamplerConfig()
        public var useEMA = true
    }
    public struct DiffusionSection: Codable, Equatable, Sendable {
        public var schedule = "linear"
        public var timesteps = 1000
        public var betaStart = 1e-4
        public var betaEnd = 0.02
        public var cosineOffset = 0.008

        public var process: GaussianDiffusion {
            GaussianDiffusion(schedule: schedule == "cosine" ? .cosine(offset: cosineOffset) : .linear(start: betaStart, end: betaEnd),
                              timesteps: timesteps)
        }
    }

    public var run = Run()
    public var data = DataSection()
    public var model = UNetConfig.unetS
    /// The preset the model section started from ("" when fully custom).
    public var modelPreset = "unet-s"
    public var diffusion = DiffusionSection()
    public var train = Train()
    public var sample = Sample()

    public init() {}

    /// Total optimizer steps.
    public var totalSteps: Int { (train.images + train.batchSize - 1) / train.batchSize }

    /// Reads a TOML config strictly; `overrides` are `section.key=value` strings applied first.
    public static func load(toml text: String, file: String, overrides: [String] = []) throws -> TrainConfig {
        var table = try parseTOML(text, file: file)
        var overridden = Set<String>()
        for o in overrides { overridden.insert(try table.set(override: o)) }
        let r = ConfigReader(table, file: file, overridden: overridden)
        var c = TrainConfig()
        let run = try r.section("run")
        c.run.name = try run.string("name", c.run.name)
        c.run.seed = UInt64(try run.int("seed", Int(c.run.seed), min: 0))
        c.run.out = try run.string("out", c.run.out)

        let d = try r.section("data")
        c.data.file = try d.string("file", c.data.file)
        c.data.split = try d.string("split", c.data.split)
        c.data.subset = try d.int("subset", c.data.subset, min: 0)
        c.data.subsetSeed = UInt64(try d.int("subset_seed", 0, min: 0))
        c.data.plan = try d.string("plan", c.data.plan)
        c.data.planModel = try d.int("plan_model", c.data.planModel, min: -1)
        c.data.flip = try d.bool("flip", c.data.flip)

        let m = try r.section("model")
        c.modelPreset = try m.string("preset", c.modelPreset)
        guard var mc = c.modelPreset.isEmpty ? UNetConfig() : UNetConfig.preset(c.modelPreset) else {
            throw m.error("preset", "unknown preset \"\(c.modelPreset)\" (known: unet-s, unet-m, or \"\" for custom)")
        }
        mc.imageChannels = try m.int("image_channels", mc.imageChannels, min: 1, max: 4)
        mc.imageSize = try m.int("image_size", mc.imageSize, min: 1, max: 1024)
        mc.baseChannels = try m.int("base_channels", mc.baseChannels, min: 1, max: 1024)
        mc.channelMultipliers = try m.ints("channel_multipliers", mc.channelMultipliers, min: 1, max: 64, maxCount: 8)
        mc.resBlocks = try m.int("res_blocks", mc.resBlocks, min: 1, max: 16)
        mc.attentionResolutions = try m.ints("attention_resolutions", mc.attentionResolutions, min: 1, maxCount: 8)
        mc.dropout = try m.double("dropout", mc.dropout, min: 0, max: 0.99)
        mc.groups = try m.int("groups", mc.groups, min: 1, max: 1024)
        mc.classes = try m.int("classes", mc.classes, min: 0, max: 100_000)
        mc.timeFeatures = try m.int("time_features", mc.timeFeatures, min: 2, max: 4096)
        mc.embeddingDim = try m.int("embedding_dim", mc.embeddingDim, min: 1, max: 8192)
        do { try mc.validate() } catch {
            // UNet's messages start with the offending key: name it as model.<key> (or its --set)
            let text = "\(error)".replacingOccurrences(of: "model: ", with: "")
            let key = String(text.prefix { $0.isLetter || $0 == "_" })
            let rest = text.dropFirst(key.count).drop { $0 == ":" || $0 == " " }
            throw m.has(key) || key.contains("_") ? m.error(key, String(rest)) : m.error("", text)
        }
        c.model = mc

        let df = try r.section("diffusion")
        c.diffusion.schedule = try df.choice("schedule", c.diffusion.schedule, ["linear", "cosine"])
        c.diffusion.timesteps = try df.int("timesteps", c.diffusion.timesteps, min: 1)
        c.diffusion.betaStart = try df.double("beta_start", c.diffusion.betaStart, min: 0, max: 1)
        c.diffusion.betaEnd = try df.double("beta_end", c.diffusion.betaEnd, min: 0, max: 1)
        c.diffusion.cosineOffset = try df.double("cosine_offset", c.diffusion.cosineOffset, min: 0)
        if c.diffusion.schedule == "linear" {
            guard c.diffusion.betaStart > 0 else { throw df.error("beta_start", "must be > 0, got \(c.diffusion.betaStart)") }
            guard c.diffusion.betaEnd < 1 else { throw df.error("beta_end", "must be < 1, got \(c.diffusion.betaEnd)") }
            guard c.diffusion.betaStart <= c.diffusion.betaEnd else {
                throw df.error("beta_start", "\(c.diffusion.betaStart) is larger than diffusion.beta_end = \(c.diffusion.betaEnd)")
            }
        }
        guard c.diffusion.timesteps <= 100_000 else { throw df.error("timesteps", "must be ≤ 100000, got \(c.diffusion.timesteps)") }

        let t = try r.section("train")
        c.train.batchSize = try t.int("batch_size", c.train.batchSize, min: 1, max: 1 << 16)
        c.train.images = try t.int("images", c.train.images, min: 1)
        c.train.learningRate = try t.double("lr", c.train.learningRate, min: 0)
        c.train.warmupSteps = try t.int("warmup_steps", c.train.warmupSteps, min: 0)
        c.train.gradClip = try t.double("grad_clip", c.train.gradClip, min: 0)
        c.train.emaDecay = try t.double("ema_decay", c.train.emaDecay, min: 0, max: 1)
        c.train.checkpointEvery = try t.int("checkpoint_every", c.train.checkpointEvery, min: 1)
        c.train.logEvery = try t.int("log_every", c.train.logEvery, min: 1)
        c.train.threads = try t.int("threads", c.train.threads, min: 0, max: 4096)
        c.train.labelDropout = try t.double("label_dropout", c.train.labelDropout, min: 0, max: 1)

        let s = try r.section("sample")
        c.sample.count = try s.int("count", c.sample.count, min: 1, max: 100_000_000)
        c.sample.batchSize = try s.int("batch_size", c.sample.batchSize, min: 1, max: 1 << 16)
        c.sample.useEMA = try s.bool("ema", c.sample.useEMA)
        c.sample.sampler.kind = SamplerConfig.Kind(rawValue: try s.choice("sampler", c.sample.sampler.kind.rawValue, ["ddpm", "ddim"]))!
        c.sample.sampler.steps = try s.int("steps", c.sample.sampler.steps, min: 1)
        c.sample.sampler.eta = try s.double("eta", c.sample.sampler.eta, min: 0)
        c.sample.sampler.spacing = SamplerConfig.Spacing(rawValue: try s.choice("spacing", c.sample.sampler.spacing.rawValue, ["linspace", "leading", "trailing"]))!
        c.sample.sampler.guidance = try s.double("guidance", c.sample.sampler.guidance, min: 0)
        if c.sample.sampler.kind == .ddim && c.sample.sampler.steps > c.diffusion.timesteps {
            throw s.error("steps", "\(c.sample.sampler.steps) sampler steps exceed diffusion.timesteps = \(c.diffusion.timesteps)")
        }
        if c.sample.sampler.guidance != 1 && c.model.classes == 0 {
            throw s.error("guidance", "\(c.sample.sampler.guidance) needs a class-conditional model (model.classes > 0)")
        }
        guard c.train.warmupSteps <= 10_000_000, c.train.images <= 1 << 40 else {
            throw t.error(c.train.images > 1 << 40 ? "images" : "warmup_steps", "is implausibly large")
        }
        if c.data.planModel >= 0 && c.data.plan.isEmpty { throw d.error("plan_model", "is set but data.plan is empty") }
        try r.finish()
        return c
    }

    public static func load(file: String, overrides: [String] = []) throws -> TrainConfig {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw TOMLError(file: file, line: 0, message: "cannot read the config file")
        }
        return try load(toml: String(decoding: data, as: UTF8.self), file: file, overrides: overrides)
    }

    /// Canonical JSON (sorted keys): what is saved as config.resolved.json.
    public func canonicalJSON() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try e.encode(self)
    }

    /// Hash of what determines the results (the output folder, threads and logging
    /// cadence excluded), for the run's id.
    public func identityHash() throws -> String {
        var c = self
        c.run.out = ""; c.train.threads = 0; c.train.logEvery = 0; c.train.checkpointEvery = 0
        c.sample = Sample()
        let e = JSONEncoder(); e.outputFormatting = [.sortedKeys]
        return String(SHA256.hex([UInt8](try e.encode(c))).prefix(10))
    }

    /// The identity without the training length: what a checkpoint records and a resume,
    /// sample or evaluation checks (a run may be continued to more images).
    public func trainingIdentityHash() throws -> String {
        var c = self
        c.train.images = 0
        return try c.identityHash()
    }

    /// `results/runs/<name>-<hash>`.
    public func defaultRunDirectory() throws -> String { "\(run.out)/\(run.name)-\(try identityHash())" }
}
