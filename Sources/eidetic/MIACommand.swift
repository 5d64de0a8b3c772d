import ArgumentParser
import Evaluation
import Foundation
import Training

struct EvalMIA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mia",
        abstract: "Membership inference: one run (global loss threshold), a membership plan's runs, or a signal matrix computed elsewhere (--signals; LiRA variants, leave-one-model-out).")
    @Argument(help: "Run directories: one run, or all runs of --plan (none with --signals).") var runs: [String] = []
    @Option(help: "Membership plan the runs were trained on (plan mode).") var plan: String?
    @Option(help: ArgumentHelp("HDF5 file with datasets 'signals' [models × examples × queries] (higher = more member-like) and 'keep' [models × examples] (0/1): attack it instead of runs.", valueName: "file.h5")) var signals: String?
    @Option(help: "--signals: which way the signals point, higher-is-member or lower-is-member (e.g. losses); default: the file's 'direction' attribute, else higher-is-member.") var direction: String?
    @Flag(help: "--signals: fit each query separately and average the log-likelihood ratios (the reference code's way) instead of averaging the queries first.") var perQuery = false
    @Flag(help: "Replace an existing output folder (same evaluation, same settings).") var force = false
    @Option(help: "Single-run mode: non-member images drawn from the same split.") var nonMembers = 512
    @Option(help: "Diffusion runs: timesteps of the loss, comma-separated (default 100). GAN runs have none: their signal is the discriminator's logit.") var timesteps: String?
    @Option(help: "Diffusion runs: noise draws per timestep, the same for every model (default 4).") var draws: Int?
    @Flag(help: "Also query the mirrored image.") var flip = false
    @Option(help: "Seed of the noise draws and of the non-member choice.") var seed: UInt64 = 0
    @Option(help: "Attacks (plan and signals modes), comma-separated; default: every variant the keep matrix supports.") var attacks: String?
    @Option(help: "Bootstrap resamples for the confidence intervals.") var bootstrap = 200
    @Option(help: "Output folder (default: one run: <run>/eval/mia-single-<settings>; plan: results/mia/<plan name>/eval/mia-plan-<settings>; signals: <file's folder>/eval/mia-<file name>-<settings>).") var out: String?
    @Option(help: "Batch size of the loss evaluation.") var batchSize = 128
    @Flag(inversion: .prefixedNo, help: "Use the EMA weights.") var ema = true
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        try Check.atLeast(draws ?? 1, 1, "--draws")
        try Check.atLeast(batchSize, 1, "--batch-size")
        try Check.atLeast(nonMembers, 1, "--non-members")
        try Check.atLeast(bootstrap, 0, "--bootstrap")
        _ = try timestepList()
    }

    func timestepList() throws -> [Int] { try Self.parseTimesteps(timesteps) }

    /// `--timesteps` as integers ≥ 0 (default 100), shared with `eval audit`.
    static func parseTimesteps(_ timesteps: String?) throws -> [Int] {
        let list = try (timesteps ?? "100").split(separator: ",").map { part -> Int in
            guard let t = Int(part.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--timesteps: '\(part)' is not an integer") }
            guard t >= 0 else { throw ValidationError("--timesteps must be ≥ 0, got \(t)") }
            return t
        }
        guard !list.isEmpty else { throw ValidationError("--timesteps: give at least one timestep") }
        return list
    }

    func attackList() throws -> [MembershipAttack]? {
        guard let attacks else { return nil }
        guard !attacks.split(separator: ",").isEmpty else { throw ValidationError("--attacks: give at least one (known: \(MembershipAttack.allCases.map(\.rawValue).joined(separator: ", ")))") }
        return try attacks.split(separator: ",").map { a -> MembershipAttack in
            let name = a.trimmingCharacters(in: .whitespaces)
            guard let v = MembershipAttack(rawValue: name) else {
                throw ValidationError("--attacks: unknown '\(name)' (known: \(MembershipAttack.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return v
        }
    }

    func run() throws {
        if signals == nil {
            if direction != nil { throw ValidationError("--direction applies to --signals only (run and plan modes use −loss, higher = member)") }
            if perQuery { throw ValidationError("--per-query applies to --signals only") }
        }
        threads.apply()
        let report: MembershipReport
        var signal = LossSignalConfig()
        if let file = signals {
            guard runs.isEmpty else { throw ValidationError("--signals attacks a signal file; give no run directories (got \(runs.joined(separator: " ")))") }
            guard plan == nil else { throw ValidationError("--signals and --plan are exclusive") }
            var dir: SignalDirection? = nil
            if let direction {
                guard let d = SignalDirection(rawValue: direction) else {
                    throw ValidationError("--direction: '\(direction)' (known: \(SignalDirection.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                dir = d
            }
            report = try MembershipReport.fromSignalsFile(file, attacks: try attackList(), direction: dir, perQuery: perQuery,
                                                          bootstrap: bootstrap, out: out, force: force)
        } else {
            // the runs' kind decides the signal: a diffusion loss, or a GAN discriminator's logit
            let kinds = try Set(runs.map { try RunDirectory($0).loadConfig().kind.isGAN })
            guard kinds.count <= 1 else { throw ValidationError("the runs mix diffusion and GAN runs; attack one kind at a time") }
            if kinds.first == true {
                if timesteps != nil || draws != nil {
                    throw ValidationError("--\(timesteps != nil ? "timesteps" : "draws") applies to diffusion runs; \(runs[0]) is a GAN run (its signal is the discriminator's logit)")
                }
                signal = LossSignalConfig.discriminatorScore(flip: flip, batchSize: batchSize)
                signal.seed = seed
            } else {
                signal.timesteps = try timestepList()
                signal.draws = draws ?? 4; signal.flip = flip; signal.seed = seed; signal.batchSize = batchSize
            }
            if let plan {
                guard !runs.isEmpty else { throw ValidationError("--plan: give the plan's run directories") }
                let list = try attackList()
                let folder = out ?? MembershipReport.planOutputFolder(plan: plan, signal: signal, useEMA: ema, bootstrap: bootstrap, attacks: list)
                report = try MembershipReport.withPlan(plan, runs: runs.map(RunDirectory.init), attacks: list ?? MembershipAttack.allCases,
                                                       signal: signal, useEMA: ema, out: folder, bootstrap: bootstrap, force: force)
            } else {
                guard runs.count == 1 else { throw ValidationError("without --plan or --signals, give exactly one run directory (got \(runs.count))") }
                report = try MembershipReport.singleRun(RunDirectory(runs[0]), nonMembers: nonMembers, signal: signal, useEMA: ema, bootstrap: bootstrap,
                                                        out: out, force: force)
            }
        }
        if let f = report.signalsFile {
            print("signals: \(f.path): \(f.models) models × \(f.examples) examples × \(f.queries) quer\(f.queries == 1 ? "y" : "ies") (\(f.direction.rawValue), \(f.directionSource)); "
                  + "\(report.members) member trials; \(report.averageQueries ? "queries averaged" : "per-query fits")")
        } else {
            let what = signal.timesteps.isEmpty ? "discriminator logit" : "loss at t = \(signal.timesteps), \(signal.draws) draws"
            print("\(report.mode): \(report.models.count) model(s), \(report.examples) examples (\(report.members) member trials); \(what)\(signal.flip ? " + flip" : "")")
        }
        for r in report.results {
            let m = r.metrics
            let tpr = m.tprAtFPR.keys.sorted().map { k in String(format: "TPR@%@ %.3f [%.3f, %.3f]", k, m.tprAtFPR[k]!.value, m.tprAtFPR[k]!.low, m.tprAtFPR[k]!.high) }
            let shadows = r.attack.usesShadows ? "  (shadows: \(r.shadows.inShadows) IN, \(r.shadows.outShadows) OUT)" : ""
            print(String(format: "  %-24@ AUC %.3f [%.3f, %.3f]  ", r.attack.rawValue, m.auc.value, m.auc.low, m.auc.high) + tpr.joined(separator: "  ") + shadows)
        }
        for k in report.skipped.keys.sorted() { print("  skipped \(k): \(report.skipped[k]!)") }
        for k in report.outputs.keys.sorted() { print("\(k): \(report.outputs[k]!)") }
    }
}
