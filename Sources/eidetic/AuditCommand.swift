import ArgumentParser
import Evaluation
import Foundation
import Training

/// `eidetic eval audit RUN`: the one-run privacy audit of a run trained on an audit plan.
struct EvalAudit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Lower-bound a run's ε from its canaries (one-run audit, Steinke, Nasr & Jagielski 2023), beside the accountant's ε.",
        discussion: """
        The run must be trained on an audit plan (`eidetic data plan audit`): m canaries, each \
        trained on by a fair coin. Every canary is scored with the run's membership signal (the \
        negated denoising loss of a diffusion model, a GAN's discriminator logit), the most \
        member-like are guessed IN and the least OUT, and the correct guesses give a lower \
        bound on ε at the stated confidence. Without --guesses a fixed grid of guess counts is \
        searched with a Bonferroni correction, so the bound keeps its confidence.
        """)
    @Argument(help: "Run directory.") var runDirectory: String
    @Option(help: "Diffusion runs: timesteps of the loss, comma-separated (default 100).") var timesteps: String?
    @Option(help: "Diffusion runs: noise draws per timestep (default 4).") var draws: Int?
    @Flag(help: "Also query the mirrored image.") var flip = false
    @Option(help: "Seed of the noise draws.") var seed: UInt64 = 0
    @Option(help: ArgumentHelp("Fixed guess counts IN:OUT (one test at the full confidence) instead of the default grid.", valueName: "k+:k-")) var guesses: String?
    @Option(help: "δ of the bound (default: the run's privacy δ; for a run without one, 1e-5, or the largest power of ten below 1/N when smaller).") var delta: Double?
    @Option(help: "Confidence of the bound.") var confidence = 0.95
    @Option(help: "Batch size of the signal evaluation.") var batchSize = 128
    @Flag(inversion: .prefixedNo, help: "Use the EMA weights (diffusion runs).") var ema = true
    @Option(help: "Output folder (default: <run>/eval/audit-<settings>).") var out: String?
    @Flag(help: "Replace an existing output folder.") var force = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        try Check.atLeast(draws ?? 1, 1, "--draws")
        try Check.atLeast(batchSize, 1, "--batch-size")
        try Check.finite(confidence, "--confidence", min: 0, max: 1)
        guard confidence > 0 && confidence < 1 else { throw ValidationError("--confidence must be strictly between 0 and 1, got \(confidence)") }
        if let delta { try Check.finite(delta, "--delta", min: 0, max: 1); guard delta < 1 else { throw ValidationError("--delta must be below 1, got \(delta)") } }
        _ = try guessCounts()
        _ = try EvalMIA.parseTimesteps(timesteps)
    }

    func guessCounts() throws -> (Int, Int)? {
        guard let guesses else { return nil }
        let parts = guesses.split(separator: ":", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, let a = parts[0], let b = parts[1], a >= 0, b >= 0, a + b >= 1 else {
            throw ValidationError("--guesses: '\(guesses)' is not IN:OUT with non-negative counts and at least one guess (e.g. 100:100)")
        }
        return (a, b)
    }

    func run() throws {
        threads.apply()
        let dir = RunDirectory(runDirectory)
        var signal = LossSignalConfig()
        if try dir.loadConfig().kind.isGAN {
            if timesteps != nil || draws != nil {
                throw ValidationError("--\(timesteps != nil ? "timesteps" : "draws") applies to diffusion runs; \(runDirectory) is a GAN run (its signal is the discriminator's logit)")
            }
            signal = LossSignalConfig.discriminatorScore(flip: flip, batchSize: batchSize)
            signal.seed = seed
        } else {
            signal.timesteps = try EvalMIA.parseTimesteps(timesteps)
            signal.draws = draws ?? 4; signal.flip = flip; signal.seed = seed; signal.batchSize = batchSize
        }
        let report = try AuditReport.audit(dir, signal: signal, useEMA: ema, delta: delta, guesses: try guessCounts(),
                                           confidence: confidence, out: out, force: force)
        for l in report.lines { print(l) }
        for k in report.outputs.keys.sorted() { print("\(k): \(report.outputs[k]!)") }
    }
}
