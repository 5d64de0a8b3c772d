import Data
import Diffusion
import Foundation
import Models
import NN
import Optim
import TOML
import Tensor

/// The model family a run trains (`model.kind`); it chooses the training task, the
/// sampler and the membership signal.
public enum ModelKind: String, Codable, Sendable, CaseIterable {
    /// A DDPM U-Net (`DiffusionTask`).
    case unet
    /// DCGAN (Radford et al., 2016): `GANTask`, non-saturating loss by default.
    case dcgan
    /// SNGAN (Miyato et al., 2018): spectrally normalized discriminator, hinge loss by default.
    case sngan
}

/// How a GAN is trained (`[gan]`): the generator uses `train.lr`, warmup and schedule; the
/// discriminator its own rate, scaled by the same schedule.
public struct GANTraining: Codable, Equatable, Sendable {
    /// "nonsaturating" (Goodfellow et al., 2014, the DCGAN example's) or "hinge" (SNGAN's).
    public var loss = GANLoss.nonSaturating
    /// Discriminator updates per generator update (each on its own real batch).
    public var discriminatorSteps = 1
    public var discriminatorLR = 2e-4
    /// Adam's betas for both networks (the DCGAN paper's 0.5, 0.999).
    public var beta1 = 0.5
    public var beta2 = 0.999
    /// DiffAugment policy (Zhao et al., 2020) applied to real and fake images before the
    /// discriminator: "" or a comma-separated subset of color, translation, cutout.
    public var diffAugment = ""
    public init() {}
}

/// DP-SGD for the run (`[privacy]`; Abadi et al., 2016): Poisson sampling at rate
/// q = train.batch_size / N, per-example clipping at `clipNorm`, Gaussian noise of std
/// σ·C, the RDP accountant's ε logged as training goes. Either σ (`noise_multiplier`) or a
/// target ε (`target_epsilon`, σ calibrated by bisection for the whole run) is given.
public struct PrivacyConfig: Codable, Equatable, Sendable {
    public var noiseMultiplier = 0.0
    public var targetEpsilon = 0.0
    public var clipNorm = 1.0
    /// 0: the largest power of ten below 1/N (N = training examples); δ ≥ 1/N is refused.
    public var delta = 0.0
    /// Augmentation multiplicity K: gradients of K (timestep, noise) draws per example are
    /// averaged before clipping (DPDM; Dockhorn et al., 2023).
    public var multiplicity = 1
    public init() {}

    /// δ for N training examples: the configured one, or the largest power of ten below 1/N.
    public func delta(examples n: Int) -> Double {
        if delta > 0 { return delta }
        var d = pow(10, floor(log10(1 / Double(max(n, 1)))))
        if d >= 1 / Double(max(n, 1)) { d /= 10 }
        return d
    }
}

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
        /// After warmup: "constant", or "cosine" decay to `minLR` at the last step.
        public var lrSchedule = "constant"
        public var minLR = 0.0
        /// Fault injection for tests of what a failed job looks like: the loss at this step
        /// (≥ 1) is reported as NaN, and training stops as it would on a real divergence.
        public var injectNaNAtStep = 0
        /// The convolutions' arithmetic (`ComputePrecision`): "fp32" (default, the reference)
        /// or "bf16" (bf16 products, Float sums and master weights; U-Net runs).
        public var precision = ComputePrecision.fp32

        enum CodingKeys: String, CodingKey {
            case batchSize, images, learningRate, warmupSteps, gradClip, emaDecay, checkpointEvery, logEvery, threads, labelDropout
            case lrSchedule, minLR, injectNaNAtStep, precision
        }
        public init() {}
        // The schedule keys are written only when not the defaults, so configs (and run
        // directory hashes) from before they existed stay the same.
        public init(from d: Decoder) throws {
            let c = try d.container(keyedBy: CodingKeys.self)
            batchSize = try c.decode(Int.self, forKey: .batchSize); images = try c.decode(Int.self, forKey: .images)
            learningRate = try c.decode(Double.self, forKey: .learningRate); warmupSteps = try c.decode(Int.self, forKey: .warmupSteps)
            gradClip = try c.decode(Double.self, forKey: .gradClip); emaDecay = try c.decode(Double.self, forKey: .emaDecay)
            checkpointEvery = try c.decode(Int.self, forKey: .checkpointEvery); logEvery = try c.decode(Int.self, forKey: .logEvery)
            threads = try c.decode(Int.self, forKey: .threads); labelDropout = try c.decode(Double.self, forKey: .labelDropout)
            lrSchedule = try c.decodeIfPresent(String.self, forKey: .lrSchedule) ?? "constant"
            minLR = try c.decodeIfPresent(Double.self, forKey: .minLR) ?? 0
            injectNaNAtStep = try c.decodeIfPresent(Int.self, forKey: .injectNaNAtStep) ?? 0
            precision = try c.decodeIfPresent(ComputePrecision.self, forKey: .precision) ?? .fp32
        }
        public func encode(to e: Encoder) throws {
            var c = e.container(keyedBy: CodingKeys.self)
            try c.encode(batchSize, forKey: .batchSize); try c.encode(images, forKey: .images)
            try c.encode(learningRate, forKey: .learningRate); try c.encode(warmupSteps, forKey: .warmupSteps)
            try c.encode(gradClip, forKey: .gradClip); try c.encode(emaDecay, forKey: .emaDecay)
            try c.encode(checkpointEvery, forKey: .checkpointEvery); try c.encode(logEvery, forKey: .logEvery)
            try c.encode(threads, forKey: .threads); try c.encode(labelDropout, forKey: .labelDropout)
            if lrSchedule != "constant" { try c.encode(lrSchedule, forKey: .lrSchedule) }
            if minLR != 0 { try c.encode(minLR, forKey: .minLR) }
            if injectNaNAtStep != 0 { try c.encode(injectNaNAtStep, forKey: .injectNaNAtStep) }
            if precision != .fp32 { try c.encode(precision, forKey: .precision) }
        }

        /// The learning rate at every step: linear warmup over `warmupSteps`, then constant or
        /// cosine decay to `minLR` at `totalSteps`.
        public func learningRateSchedule(totalSteps: Int) -> LearningRateSchedule {
            lrSchedule == "cosine" && totalSteps > warmupSteps
                ? LearningRateSchedule(base: learningRate, warmupSteps: warmupSteps, decay: .cosine, totalSteps: totalSteps, minimum: minLR)
                : LearningRateSchedule(base: learningRate, warmupSteps: warmupSteps)
        }
    }
    public struct Sample: Codable, Equatable, Sendable {
        public var count = 64
        public var batchSize = 64
        public var sampler = SamplerConfig()
        public var useEMA = true
        /// The sampler's convolution arithmetic (`ComputePrecision`; U-Net runs): "fp32"
        /// (default) or "bf16". Independent of train.precision: say which one the samples
        /// that a measurement uses were drawn with.
        public var precision = ComputePrecision.fp32

        enum CodingKeys: String, CodingKey { case count, batchSize, sampler, useEMA, precision }
        public init() {}
        // precision is written only when not fp32, so earlier configs keep their hashes
        public init(from d: Decoder) throws {
            let c = try d.container(keyedBy: CodingKeys.self)
            count = try c.decode(Int.self, forKey: .count); batchSize = try c.decode(Int.self, forKey: .batchSize)
            sampler = try c.decode(SamplerConfig.self, forKey: .sampler); useEMA = try c.decode(Bool.self, forKey: .useEMA)
            precision = try c.decodeIfPresent(ComputePrecision.self, forKey: .precision) ?? .fp32
        }
        public func encode(to e: Encoder) throws {
            var c = e.container(keyedBy: CodingKeys.self)
            try c.encode(count, forKey: .count); try c.encode(batchSize, forKey: .batchSize)
            try c.encode(sampler, forKey: .sampler); try c.encode(useEMA, forKey: .useEMA)
            if precision != .fp32 { try c.encode(precision, forKey: .precision) }
        }
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
    /// `model.kind`: which task trains the run and which sections apply.
    public var kind = ModelKind.unet
    /// The U-Net (`model.kind = "unet"`).
    public var model = UNetConfig.unetS
    /// The generator and discriminator (`model.kind = "dcgan"` or `"sngan"`).
    public var gan = GANConfig.dcgan32
    /// How the GAN is trained (`[gan]`).
    public var ganTraining = GANTraining()
    /// The preset the model section started from ("" when fully custom).
    public var modelPreset = "unet-s"
    public var diffusion = DiffusionSection()
    public var train = Train()
    public var sample = Sample()
    /// DP-SGD settings (`[privacy]`); nil for ordinary training.
    public var privacy: PrivacyConfig?

    public init() {}

    enum CodingKeys: String, CodingKey { case run, data, kind = "modelKind", model, modelPreset, diffusion, gan, train, sample, privacy }
    // `modelKind` is written only for kinds other than the U-Net, so the resolved configs
    // (and run directory hashes) of diffusion runs from before it existed stay the same.
    // `model` holds the kind's own section: a UNetConfig, or a GANConfig beside `gan`.
    public init(from d: Decoder) throws {
        let c = try d.container(keyedBy: CodingKeys.self)
        run = try c.decode(Run.self, forKey: .run); data = try c.decode(DataSection.self, forKey: .data)
        kind = try c.decodeIfPresent(ModelKind.self, forKey: .kind) ?? .unet
        modelPreset = try c.decode(String.self, forKey: .modelPreset)
        if kind.isGAN {
            gan = try c.decode(GANConfig.self, forKey: .model)
            ganTraining = try c.decode(GANTraining.self, forKey: .gan)
        } else {
            model = try c.decode(UNetConfig.self, forKey: .model)
            diffusion = try c.decode(DiffusionSection.self, forKey: .diffusion)
        }
        train = try c.decode(Train.self, forKey: .train)
        privacy = try c.decodeIfPresent(PrivacyConfig.self, forKey: .privacy)
        if kind.isGAN {
            let g = try c.decode(GeneratorSampling.self, forKey: .sample)
            sample.count = g.count; sample.batchSize = g.batchSize; sample.useEMA = g.useEMA
        } else {
            sample = try c.decode(Sample.self, forKey: .sample)
        }
    }

    /// `[sample]` of a GAN run: a sample is one generator pass, so there are no sampler settings.
    struct GeneratorSampling: Codable { var count: Int; var batchSize: Int; var useEMA: Bool }
    public func encode(to e: Encoder) throws {
        var c = e.container(keyedBy: CodingKeys.self)
        try c.encode(run, forKey: .run); try c.encode(data, forKey: .data)
        try c.encode(modelPreset, forKey: .modelPreset)
        if kind.isGAN {
            try c.encode(kind, forKey: .kind)
            try c.encode(gan, forKey: .model); try c.encode(ganTraining, forKey: .gan)
        } else {
            try c.encode(model, forKey: .model); try c.encode(diffusion, forKey: .diffusion)
        }
        try c.encode(train, forKey: .train)
        // written only when set, so ordinary configs (and run directory hashes) stay the same
        if let privacy { try c.encode(privacy, forKey: .privacy) }
        if kind.isGAN {
            try c.encode(GeneratorSampling(count: sample.count, batchSize: sample.batchSize, useEMA: sample.useEMA), forKey: .sample)
        } else {
            try c.encode(sample, forKey: .sample)
        }
    }

    /// Image channels, side and classes of the run's model, whatever its kind.
    public var imageChannels: Int { kind.isGAN ? gan.imageChannels : model.imageChannels }
    public var imageSize: Int { kind.isGAN ? gan.imageSize : model.imageSize }
    public var classes: Int { kind.isGAN ? gan.classes : model.classes }

    /// Real images one step consumes: a batch per discriminator step for GANs.
    public var imagesPerStep: Int { train.batchSize * (kind.isGAN ? ganTraining.discriminatorSteps : 1) }

    /// Total optimizer steps.
    public var totalSteps: Int { (train.images + imagesPerStep - 1) / imagesPerStep }

    /// Reads a TOML config strictly; `overrides` are `section.key=value` strings applied first.
    /// `extra` reads sections other than the training ones (an experiment's `[eval]`) from
    /// the same reader, given the config read so far, before the strict check for unknown keys.
    public static func load(toml text: String, file: String, overrides: [String] = [], extra: ((ConfigReader, TrainConfig) throws -> Void)? = nil) throws -> TrainConfig {
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
        c.kind = ModelKind(rawValue: try m.choice("kind", c.kind.rawValue, ModelKind.allCases.map(\.rawValue)))!
        if c.kind.isGAN {
            try c.readGAN(model: m, training: try r.section("gan"))
            for section in ["diffusion"] where r.has(section) {
                throw r.error(section, "applies to model.kind = \"unet\" only (this config's model.kind is \"\(c.kind.rawValue)\")")
            }
        } else {
            if r.has("gan") { throw r.error("gan", "applies to GAN kinds (model.kind = \"dcgan\" or \"sngan\") only") }
            try c.readUNet(model: m, diffusion: try r.section("diffusion"))
        }

        let t = try r.section("train")
        c.train.batchSize = try t.int("batch_size", c.train.batchSize, min: 1, max: 1 << 16)
        c.train.images = try t.int("images", c.train.images, min: 1)
        c.train.learningRate = try t.double("lr", c.train.learningRate, min: 0)
        c.train.warmupSteps = try t.int("warmup_steps", c.train.warmupSteps, min: 0)
        c.train.gradClip = try t.double("grad_clip", c.kind.isGAN ? 0 : c.train.gradClip, min: 0)
        c.train.emaDecay = try t.double("ema_decay", c.train.emaDecay, min: 0, max: 1)
        c.train.checkpointEvery = try t.int("checkpoint_every", c.train.checkpointEvery, min: 1)
        c.train.logEvery = try t.int("log_every", c.train.logEvery, min: 1)
        c.train.threads = try t.int("threads", c.train.threads, min: 0, max: 4096)
        c.train.labelDropout = try t.double("label_dropout", c.train.labelDropout, min: 0, max: 1)
        c.train.lrSchedule = try t.choice("lr_schedule", c.train.lrSchedule, ["constant", "cosine"])
        c.train.minLR = try t.double("min_lr", c.train.minLR, min: 0)
        if c.train.minLR > c.train.learningRate { throw t.error("min_lr", "\(c.train.minLR) is larger than train.lr = \(c.train.learningRate)") }
        c.train.injectNaNAtStep = try t.int("inject_nan_at_step", 0, min: 0)
        c.train.precision = ComputePrecision(rawValue: try t.choice("precision", c.train.precision.rawValue, ComputePrecision.allCases.map(\.rawValue)))!
        if c.train.precision == .bf16 && c.kind.isGAN {
            throw t.error("precision", "\"bf16\" applies to model.kind = \"unet\" (its 3×3 convolutions); the GAN layers have no bf16 kernels")
        }

        let s = try r.section("sample")
        c.sample.count = try s.int("count", c.sample.count, min: 1, max: 100_000_000)
        c.sample.batchSize = try s.int("batch_size", c.sample.batchSize, min: 1, max: 1 << 16)
        c.sample.useEMA = try s.bool("ema", c.sample.useEMA)
        c.sample.precision = ComputePrecision(rawValue: try s.choice("precision", c.sample.precision.rawValue, ComputePrecision.allCases.map(\.rawValue)))!
        if c.sample.precision == .bf16 && c.kind.isGAN {
            throw s.error("precision", "\"bf16\" applies to model.kind = \"unet\" (its 3×3 convolutions); the GAN layers have no bf16 kernels")
        }
        if c.kind.isGAN {
            for key in ["sampler", "steps", "eta", "spacing", "guidance"] where s.has(key) {
                throw s.error(key, "applies to diffusion models only (a GAN draws each sample in one generator pass)")
            }
            if t.has("label_dropout") { throw t.error("label_dropout", "applies to diffusion models only") }
        } else {
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
        }
        guard c.train.warmupSteps <= 10_000_000, c.train.images <= 1 << 40 else {
            throw t.error(c.train.images > 1 << 40 ? "images" : "warmup_steps", "is implausibly large")
        }
        if c.data.planModel >= 0 && c.data.plan.isEmpty { throw d.error("plan_model", "is set but data.plan is empty") }
        if r.has("privacy") {
            let p = try r.section("privacy")
            var dp = PrivacyConfig()
            dp.noiseMultiplier = try p.double("noise_multiplier", 0, min: 0, max: 1e6)
            dp.targetEpsilon = try p.double("target_epsilon", 0, min: 0, max: 1e6)
            if (dp.noiseMultiplier > 0) == (dp.targetEpsilon > 0) {
                throw p.error(dp.noiseMultiplier > 0 ? "target_epsilon" : "noise_multiplier",
                              "give exactly one of privacy.noise_multiplier (σ) and privacy.target_epsilon (ε), positive")
            }
            dp.clipNorm = try p.double("clip_norm", dp.clipNorm, min: 1e-12, max: 1e12)
            dp.delta = try p.double("delta", 0, min: 0, max: 1)
            if p.has("delta") && !(dp.delta > 0 && dp.delta < 1) { throw p.error("delta", "\(dp.delta) must be in (0, 1)") }
            dp.multiplicity = try p.int("multiplicity", 1, min: 1, max: 256)
            // enabled = false: the keys are checked but training is ordinary (a sweep's
            // non-private reference beside its private settings)
            let enabled = try p.bool("enabled", true)
            if enabled && c.kind.isGAN && c.gan.discriminatorNorm == "batch" {
                throw m.error("discriminator_norm", "\"batch\" mixes the examples of a batch, so a private discriminator cannot use it: set model.discriminator_norm = \"group\" or \"none\"")
            }
            if c.kind.isGAN && p.has("multiplicity") { throw p.error("multiplicity", "applies to diffusion models only") }
            if enabled {
                // a global clip after DP's per-example clipping is not what the accountant analyses
                if t.has("grad_clip") && c.train.gradClip > 0 {
                    throw t.error("grad_clip", "does not apply to private training (privacy.clip_norm clips each example)")
                }
                c.train.gradClip = 0
                if c.train.precision == .bf16 {
                    throw t.error("precision", "\"bf16\" does not apply to private training (DP-SGD's per-example gradients are fp32)")
                }
                c.privacy = dp
            }
        }
        try extra?(r, c)
        try r.finish()
        return c
    }

    public static func load(file: String, overrides: [String] = [], extra: ((ConfigReader, TrainConfig) throws -> Void)? = nil) throws -> TrainConfig {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw TOMLError(file: file, line: 0, message: "cannot read the config file")
        }
        return try load(toml: String(decoding: data, as: UTF8.self), file: file, overrides: overrides, extra: extra)
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

extension ModelKind {
    /// Generator + discriminator kinds (`GANTask`).
    public var isGAN: Bool { self != .unet }
}

extension TrainConfig {
    /// `[model]` and `[diffusion]` of a U-Net config.
    mutating func readUNet(model m: ConfigReader, diffusion df: ConfigReader) throws {
        modelPreset = try m.string("preset", modelPreset)
        guard var mc = modelPreset.isEmpty ? UNetConfig() : UNetConfig.preset(modelPreset) else {
            throw m.error("preset", "unknown preset \"\(modelPreset)\" (known: \(UNetConfig.presetNames.joined(separator: ", ")), or \"\" for custom)")
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
        model = mc

        diffusion.schedule = try df.choice("schedule", diffusion.schedule, ["linear", "cosine"])
        diffusion.timesteps = try df.int("timesteps", diffusion.timesteps, min: 1)
        diffusion.betaStart = try df.double("beta_start", diffusion.betaStart, min: 0, max: 1)
        diffusion.betaEnd = try df.double("beta_end", diffusion.betaEnd, min: 0, max: 1)
        diffusion.cosineOffset = try df.double("cosine_offset", diffusion.cosineOffset, min: 0)
        if diffusion.schedule == "linear" {
            guard diffusion.betaStart > 0 else { throw df.error("beta_start", "must be > 0, got \(diffusion.betaStart)") }
            guard diffusion.betaEnd < 1 else { throw df.error("beta_end", "must be < 1, got \(diffusion.betaEnd)") }
            guard diffusion.betaStart <= diffusion.betaEnd else {
                throw df.error("beta_start", "\(diffusion.betaStart) is larger than diffusion.beta_end = \(diffusion.betaEnd)")
            }
        }
        guard diffusion.timesteps <= 100_000 else { throw df.error("timesteps", "must be ≤ 100000, got \(diffusion.timesteps)") }
    }
}

extension TrainConfig {
    /// `[model]` and `[gan]` of a GAN config: the preset defaults to the kind's
    /// ("dcgan-32", "sngan-32"), the loss to the kind's (non-saturating, hinge).
    mutating func readGAN(model m: ConfigReader, training g: ConfigReader) throws {
        modelPreset = try m.string("preset", kind == .sngan ? "sngan-32" : "dcgan-32")
        guard var mc = modelPreset.isEmpty ? GANConfig() : GANConfig.preset(modelPreset) else {
            throw m.error("preset", "unknown preset \"\(modelPreset)\" (known: \(GANConfig.presetNames.joined(separator: ", ")), or \"\" for custom)")
        }
        mc.latentDim = try m.int("latent_dim", mc.latentDim, min: 1, max: 8192)
        mc.imageChannels = try m.int("image_channels", mc.imageChannels, min: 1, max: 4)
        mc.imageSize = try m.int("image_size", mc.imageSize, min: 1, max: 1024)
        mc.stages = try m.int("stages", mc.stages, min: 1, max: 8)
        mc.generatorChannels = try m.int("generator_channels", mc.generatorChannels, min: 1, max: 8192)
        mc.discriminatorChannels = try m.int("discriminator_channels", mc.discriminatorChannels, min: 1, max: 8192)
        mc.discriminatorNorm = try m.choice("discriminator_norm", mc.discriminatorNorm, GANConfig.normKinds)
        mc.groups = try m.int("groups", mc.groups, min: 1, max: 1024)
        mc.spectralNorm = try m.bool("spectral_norm", mc.spectralNorm)
        mc.powerIterations = try m.int("power_iterations", mc.powerIterations, min: 1, max: 100)
        mc.classes = try m.int("classes", mc.classes, min: 0, max: 100_000)
        do { try mc.validate() } catch GANError.invalidConfig(let key, let message) { throw m.error(key, message) }
        gan = mc

        var t = GANTraining()
        t.loss = GANLoss(rawValue: try g.choice("loss", kind == .sngan ? GANLoss.hinge.rawValue : GANLoss.nonSaturating.rawValue,
                                                [GANLoss.nonSaturating.rawValue, GANLoss.hinge.rawValue]))!
        t.discriminatorSteps = try g.int("d_steps", t.discriminatorSteps, min: 1, max: 100)
        t.discriminatorLR = try g.double("d_lr", t.discriminatorLR, min: 0)
        t.beta1 = try g.double("beta1", t.beta1, min: 0, max: 0.999999)
        t.beta2 = try g.double("beta2", t.beta2, min: 0, max: 0.999999)
        t.diffAugment = try g.string("diffaugment", t.diffAugment)
        do { t.diffAugment = try DiffAugment(policy: t.diffAugment).policy } catch { throw g.error("diffaugment", "\(error)") }
        ganTraining = t
    }
}
