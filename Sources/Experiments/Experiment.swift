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
    public init() {}

    /// Reads `[eval.extraction]` and `[eval.membership]` (each with `enabled`).
    static func read(_ r: ConfigReader, config c: TrainConfig) throws -> EvaluationSettings {
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
            e.clique = c
        } else {
            for k in ["clique_threshold", "clique_tiles", "clique_min"] where x.has(k) {
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
        return e
    }
}

/// A whole experiment: the training config (every section `eidetic train` reads) plus what
/// to evaluate. `eidetic run` carries it through train → sample → evaluate → summary.
public struct Experiment: Sendable {
    public var config: TrainConfig
    public var eval: EvaluationSettings
    /// The file it was read from and the `--set` overrides applied, as given.
    public var file: String
    public var overrides: [String]

    public static func load(toml text: String, file: String, overrides: [String] = []) throws -> Experiment {
        var eval = EvaluationSettings()
        let c = try TrainConfig.load(toml: text, file: file, overrides: overrides) { r, c in eval = try EvaluationSettings.read(r, config: c) }
        return Experiment(config: c, eval: eval, file: file, overrides: overrides)
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

/// The version of the code that produced a result: the package version and, when the
/// binary lives in a git checkout (the usual `.build/release/eidetic`), the commit.
public enum CodeVersion {
    public static let package = "0.13.0"
    public static let current: String = {
        var dir = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            if let head = try? String(contentsOfFile: dir.path + "/.git/HEAD", encoding: .utf8) {
                let h = head.trimmingCharacters(in: .whitespacesAndNewlines)
                if h.hasPrefix("ref: ") {
                    let ref = String(h.dropFirst(5))
                    if let sha = try? String(contentsOfFile: dir.path + "/.git/" + ref, encoding: .utf8) {
                        return "\(package) (git \(sha.prefix(12)))"
                    }
                    // packed refs
                    if let packed = try? String(contentsOfFile: dir.path + "/.git/packed-refs", encoding: .utf8),
                       let line = packed.split(separator: "\n").first(where: { $0.hasSuffix(" " + ref) }) {
                        return "\(package) (git \(line.prefix(12)))"
                    }
                } else if h.count >= 12 { return "\(package) (git \(h.prefix(12)))" }
            }
            dir = dir.deletingLastPathComponent()
        }
        return package
    }()
}
