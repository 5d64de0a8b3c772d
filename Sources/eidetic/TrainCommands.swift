import ArgumentParser
import Data
import Diffusion
import Foundation
import Models
import Tensor
import Training
import Experiments

/// `eidetic train CONFIG`: starts the run the config describes, or resumes it.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a model (DDPM or GAN) from a TOML config (resumes an interrupted run).")
    @Argument(help: "Config file (TOML).") var config: String
    @Option(name: .customLong("set"), help: "Override a config key: --set train.lr=1e-4 (repeatable).") var overrides: [String] = []
    @Option(help: "Run directory (default: <run.out>/<run.name>-<config hash>).") var runDir: String?
    @Option(help: "Train at most this many more steps in this invocation, then checkpoint and stop (the run can be resumed).") var stopAfter: Int?
    @Option(help: "Stop at this step (absolute, counted from the start of the run), checkpoint, and exit.") var stopAt: Int?
    @OptionGroup var threads: ThreadOptions
    @Flag(help: "Print the resolved config and the run directory, and exit.") var dryRun = false
    @Flag(help: "When the run is complete, draw the config's [sample] request (EMA weights, seeds 0…count−1) unless that file exists.")
    var sample = false

    func validate() throws {
        try Check.atLeast(stopAfter, 1, "--stop-after")
        try Check.atLeast(stopAt, 1, "--stop-at")
    }

    func run() throws {
        let e = try Experiment.load(file: config, overrides: overrides)   // [eval] and [plan] are checked too
        let c = e.config
        let dir = try runDir ?? c.defaultRunDirectory()
        if dryRun {
            print(String(decoding: try c.canonicalJSON(), as: UTF8.self))
            print("run directory: \(dir)")
            return
        }
        threads.apply(configured: c.train.threads)
        if let p = e.plan, try p.build(data: c.data.file, split: c.data.split) { print("plan: \(p.kind) \(p.path)") }
        do {
            // the trainer (and its exclusive lock on the run) ends with this scope
            let trainer = try Trainer(config: c, directory: dir)
            trainer.threadsOverride = threads.threads
            try trainer.run(stopAfter: stopAfter, stopAt: stopAt)
        }
        print("run directory: \(dir)")
        let run = RunDirectory(dir)
        guard sample, run.readStatus()?["state"] as? String == "done" else { return }
        let req = SampleRequest(c.sample)
        let existing = sampleFilePath(run: run, request: req, step: try run.loadCheckpoint().step)
        if FileManager.default.fileExists(atPath: existing) {
            print("samples: \(existing) (already drawn)")
            return
        }
        let t0 = Date()
        let (file, grid, _) = try generateSamples(run: run, request: req) { done, total in
            FileHandle.standardError.write(Data("\rsampled \(done)/\(total)".utf8))
        }
        FileHandle.standardError.write(Data("\n".utf8))
        print(String(format: "wrote %@ and %@ (%.1f s)", file, grid, Date().timeIntervalSince(t0)))
    }
}

/// `eidetic sample RUN`: draws samples from a run's checkpoint.
struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate samples from a run's checkpoint (HDF5 + PNG grid).")
    @Argument(help: "Run directory.") var runDirectory: String
    @Option(help: "Number of samples (default: the config's sample.count).") var count: Int?
    @Option(help: "Batch size.") var batchSize: Int?
    @Option(help: "ddpm or ddim.") var sampler: String?
    @Option(help: "DDIM steps.") var steps: Int?
    @Option(help: "DDIM eta.") var eta: Double?
    @Option(help: "DDIM timestep spacing: linspace, leading or trailing.") var spacing: String?
    @Option(help: "Classifier-free guidance scale (1: none).") var guidance: Double?
    @Option(help: "Sample i uses seed first-seed + i.") var firstSeed: UInt64 = 0
    @Flag(inversion: .prefixedNo, help: "Use the EMA weights.") var ema = true
    @Flag(help: "Replace an existing sample file for the same request and checkpoint step.") var force = false
    @Option(help: "Convolution arithmetic: fp32 or bf16 (default: the run's sample.precision; bf16 files are named …-bf16).") var precision: String?
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        try Check.atLeast(count, 1, "--count")
        try Check.atLeast(batchSize, 1, "--batch-size")
        try Check.atLeast(steps, 1, "--steps")
        try Check.finite(eta, "--eta", min: 0)
        try Check.finite(guidance, "--guidance", min: 0)
        if let s = sampler, SamplerConfig.Kind(rawValue: s) == nil { throw ValidationError("--sampler must be ddpm or ddim, got '\(s)'") }
        if let p = precision, ComputePrecision(rawValue: p) == nil { throw ValidationError("--precision must be fp32 or bf16, got '\(p)'") }
        if let s = spacing, SamplerConfig.Spacing(rawValue: s) == nil { throw ValidationError("--spacing must be linspace, leading or trailing, got '\(s)'") }
        guard UInt64.max - firstSeed >= UInt64(count ?? 0) else { throw ValidationError("--first-seed \(firstSeed) + --count overflows 64 bits") }
    }

    func run() throws {
        threads.apply()
        let dir = RunDirectory(runDirectory)
        let c = try dir.loadConfig()
        if c.kind.isGAN {
            for (flag, given) in [("--sampler", sampler != nil), ("--steps", steps != nil), ("--eta", eta != nil),
                                  ("--spacing", spacing != nil), ("--guidance", guidance != nil)] where given {
                throw ValidationError("\(flag) applies to diffusion models; \(runDirectory) is a \(c.kind.rawValue) run (one generator pass per sample)")
            }
        }
        var s = c.sample.sampler
        if let k = sampler { guard let v = SamplerConfig.Kind(rawValue: k) else { throw ValidationError("--sampler must be ddpm or ddim") }; s.kind = v }
        if let v = steps { s.steps = v }
        if let v = eta { s.eta = v }
        if let v = spacing { guard let sp = SamplerConfig.Spacing(rawValue: v) else { throw ValidationError("--spacing must be linspace, leading or trailing") }; s.spacing = sp }
        if let v = guidance { s.guidance = v }
        guard UInt64.max - firstSeed >= UInt64(count ?? c.sample.count) else {
            throw ValidationError("--first-seed \(firstSeed) + \(count ?? c.sample.count) samples overflows 64-bit seeds")
        }
        let req = SampleRequest(count: count ?? c.sample.count, batchSize: batchSize ?? c.sample.batchSize, sampler: s, useEMA: ema, firstSeed: firstSeed,
                                precision: precision.map { ComputePrecision(rawValue: $0)! } ?? c.sample.precision)
        let t0 = Date()
        do { try Training.validate(req, config: c) } catch { throw ValidationError(flagged("\(error)")) }
        let (file, grid, _) = try generateSamples(run: dir, request: req, overwrite: force) { done, total in
            FileHandle.standardError.write(Data("\rsampled \(done)/\(total)".utf8))
        }
        FileHandle.standardError.write(Data("\n".utf8))
        print(String(format: "wrote %@ and %@ (%.1f s)", file, grid, Date().timeIntervalSince(t0)))
    }
}

/// Names the flag behind a request check's message ("sampler steps …" → "--steps: sampler steps …").
func flagged(_ m: String) -> String {
    for (prefix, flag) in [("sample count", "--count"), ("sample batch size", "--batch-size"), ("sampler steps", "--steps"),
                           ("eta", "--eta"), ("guidance", "--guidance")] where m.hasPrefix(prefix) { return "\(flag): \(m)" }
    return m
}

/// `eidetic describe unet-s`, `eidetic describe dcgan-32` or `eidetic describe CONFIG.toml`:
/// layers, parameters and FLOPs.
struct Describe: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Describe a model: a preset name (unet-xs, unet-s, unet-m, dcgan-32, dcgan-32-nobn, dcgan-32-gn, sngan-32) or a config file.")
    @Argument(help: "A preset name or a TOML config.") var model: String

    func run() throws {
        if let preset = UNetConfig.preset(model) { print(try UNet(preset, key: RandomKey(seed: 0)).describe()); return }
        if let preset = GANConfig.preset(model) { print(try describeGAN(preset)); return }
        guard model.hasSuffix(".toml") || FileManager.default.fileExists(atPath: model) else {
            throw ValidationError("'\(model)' is neither a preset (\(UNetConfig.presetNames.joined(separator: ", ")), \(GANConfig.presetNames.joined(separator: ", "))) nor a config file")
        }
        let c = try Experiment.load(file: model).config
        print(c.kind.isGAN ? try describeGAN(c.gan) : try UNet(c.model, key: RandomKey(seed: 0)).describe())
    }

    func describeGAN(_ c: GANConfig) throws -> String {
        let g = try DCGANGenerator(c, key: RandomKey(seed: 0)), d = try DCGANDiscriminator(c, key: RandomKey(seed: 0))
        return g.describe() + "\n" + d.describe()
    }
}

/// `eidetic status RUN`: what a run directory holds and whether a process is working on it.
/// A "running" status with no process holding the run's lock was left by a killed process.
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a run's state (running, done, interrupted, failed, or killed) and progress.")
    @Argument(help: "Run directory.") var runDirectory: String

    func run() throws {
        let dir = RunDirectory(runDirectory)
        guard FileManager.default.fileExists(atPath: dir.config) else { throw ValidationError("\(runDirectory): no config.resolved.json (not a run directory?)") }
        let held = RunLock.isHeld(dir.path)
        let s = dir.readStatus() ?? [:]
        var state = s["state"] as? String ?? "not started"
        if state == "running" && !held { state = "killed (status says running, but no process holds the run's lock)" }
        else if held && state != "running" { state += " (a sampling or evaluation process is using it)" }
        print("\(runDirectory): \(state)")
        if let step = s["step"], let total = s["total_steps"] { print("step \(step) of \(total)") }
        if let pid = s["pid"], let host = s["host"] { print("last written by pid \(pid) on \(host) at \(s["updated"] ?? "?")") }
        if let e = s["error"] { print("error: \(e)") }
        if let eps = s["epsilon"] as? Double, let cls = s["epsilon_classic"] as? Double, let delta = s["delta"] as? Double {
            print(String(format: "privacy spent: ε = %.4g (improved conversion), %.4g (classic), δ = %.3g", eps, cls, delta))
        }
        if FileManager.default.fileExists(atPath: dir.checkpoint) {
            let ck = try dir.loadCheckpoint()
            print("checkpoint: step \(ck.step), \(ck.attributes["training_identity"] == nil ? "no recorded identity (written before identities were recorded)" : "identity and training data recorded")")
        }
    }
}
