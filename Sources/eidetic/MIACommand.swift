import ArgumentParser
import Evaluation
import Foundation
import Training

struct EvalMIA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mia",
        abstract: "Membership inference from per-example diffusion losses: one run (global loss threshold) or a membership plan's runs (LiRA variants, leave-one-model-out).")
    @Argument(help: "Run directories: one run, or all runs of --plan.") var runs: [String]
    @Option(help: "Membership plan the runs were trained on (plan mode).") var plan: String?
    @Option(help: "Single-run mode: non-member images drawn from the same split.") var nonMembers = 512
    @Option(help: "Timesteps of the loss, comma-separated.") var timesteps = "100"
    @Option(help: "Noise draws per timestep (the same for every model).") var draws = 4
    @Flag(help: "Also query the mirrored image.") var flip = false
    @Option(help: "Seed of the noise draws and of the non-member choice.") var seed: UInt64 = 0
    @Option(help: "Attacks (plan mode), comma-separated.") var attacks = MembershipAttack.allCases.map(\.rawValue).joined(separator: ",")
    @Option(help: "Bootstrap resamples for the confidence intervals.") var bootstrap = 200
    @Option(help: "Output folder (plan mode; default results/mia/<plan name>).") var out: String?
    @Option(help: "Batch size of the loss evaluation.") var batchSize = 128
    @Flag(inversion: .prefixedNo, help: "Use the EMA weights.") var ema = true

    func run() throws {
        var signal = LossSignalConfig()
        signal.timesteps = try timesteps.split(separator: ",").map {
            guard let t = Int($0.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--timesteps: '\($0)' is not an integer") }
            return t
        }
        signal.draws = draws; signal.flip = flip; signal.seed = seed; signal.batchSize = batchSize
        let report: MembershipReport
        if let plan {
            let list = try attacks.split(separator: ",").map { a -> MembershipAttack in
                guard let v = MembershipAttack(rawValue: String(a)) else {
                    throw ValidationError("--attacks: unknown '\(a)' (known: \(MembershipAttack.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                return v
            }
            let stem = ((plan as NSString).lastPathComponent as NSString).deletingPathExtension
            report = try MembershipReport.withPlan(plan, runs: runs.map(RunDirectory.init), attacks: list, signal: signal, useEMA: ema,
                                                   out: out ?? "results/mia/\(stem)/eval/mia", bootstrap: bootstrap)
        } else {
            guard runs.count == 1 else { throw ValidationError("without --plan, give exactly one run directory (got \(runs.count))") }
            report = try MembershipReport.singleRun(RunDirectory(runs[0]), nonMembers: nonMembers, signal: signal, useEMA: ema, bootstrap: bootstrap)
        }
        print("\(report.mode): \(report.models.count) model(s), \(report.examples) examples (\(report.members) member trials); loss at t = \(signal.timesteps), \(signal.draws) draws\(signal.flip ? " + flip" : "")")
        for r in report.results {
            let m = r.metrics
            let tpr = m.tprAtFPR.keys.sorted().map { k in String(format: "TPR@%@ %.3f [%.3f, %.3f]", k, m.tprAtFPR[k]!.value, m.tprAtFPR[k]!.low, m.tprAtFPR[k]!.high) }
            print(String(format: "  %-24@ AUC %.3f [%.3f, %.3f]  ", r.attack.rawValue, m.auc.value, m.auc.low, m.auc.high) + tpr.joined(separator: "  "))
        }
        for k in report.outputs.keys.sorted() { print("\(k): \(report.outputs[k]!)") }
    }
}
