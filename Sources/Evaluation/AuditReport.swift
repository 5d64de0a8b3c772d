import Data
import Foundation
import HDF5
import Privacy
import Tensor
import Training

/// `eidetic eval audit RUN`: the one-run privacy audit (Steinke, Nasr and Jagielski 2023) of a
/// run trained on an audit plan (`eidetic data plan audit`). Every canary is scored with the
/// run's membership signal (a diffusion model's negated denoising loss, a GAN's
/// discriminator logit: the same signal and cache as `eval mia`), the most and least
/// member-like are guessed IN and OUT, and the correct guesses become a lower bound on ε at
/// 95 % confidence, printed beside the accountant's ε (an upper bound) for private runs.
public struct AuditReport: Codable, Sendable {
    public var run: String
    public var model: ModelRecord
    public var plan: String
    public var planSHA256: String
    public var signal: LossSignalConfig
    public var outcome: OneRunAudit.Outcome
    /// Where δ came from: "--delta", "the run's privacy delta", "the usual 1e-5" or "largest power of ten below 1/N".
    public var deltaSource: String
    /// The accountant's ε at the checkpoint (improved conversion) and its δ; nil for a non-private run.
    public var accountantEpsilon: Double?
    public var accountantDelta: Double?
    /// AUC of the canary scores against the coins (0.5: no signal), a diagnostic beside the bound.
    public var canaryAUC: Double
    /// Training examples N (base plus included canaries).
    public var trainingExamples: Int
    public var command: String
    public var outputs: [String: String]

    /// The default output folder: `<run>/eval/audit-<signal>[-<settings>]`.
    public static func outputFolder(run: String, signal: LossSignalConfig, useEMA: Bool, delta: Double?, guesses: (Int, Int)?, confidence: Double) -> String {
        var name = "audit-\(MembershipReport.signalName(signal))" + MembershipReport.extraSettings(signal: signal, useEMA: useEMA, bootstrap: 200, attacks: nil)
        if let delta { name += "-d\(delta)" }
        if let g = guesses { name += "-g\(g.0)_\(g.1)" }
        if confidence != 0.95 { name += "-c\(confidence)" }
        return run + "/eval/" + name
    }

    /// δ for a run without an accountant: the usual 1e-5, or the largest power of ten below
    /// 1/N when that is smaller (privacy.delta's default). Not privacy.delta's default for small
    /// N: its δ = 0.01 at N = 64 would spend the bound on the 2·m·δ term.
    public static func defaultDelta(examples n: Int) -> Double { min(1e-5, PrivacyConfig().delta(examples: n)) }

    /// Audits one run. `guesses` fixes (k₊, k₋) (one test at the full confidence); nil searches
    /// `OneRunAudit.defaultGuessGrid` under a Bonferroni correction.
    public static func audit(_ run: RunDirectory, signal: LossSignalConfig, useEMA: Bool = true, delta requested: Double? = nil,
                             guesses: (Int, Int)? = nil, confidence: Double = 0.95, out: String? = nil, force: Bool = false,
                             log: (String) -> Void = { print($0) }) throws -> AuditReport {
        let out = out ?? outputFolder(run: run.path, signal: signal, useEMA: useEMA, delta: requested, guesses: guesses, confidence: confidence)
        try MembershipReport.mayWrite(out, force: force)
        let lock = try RunLock.acquire(run.path, mode: .shared, purpose: "evaluation")
        defer { withExtendedLifetime(lock) {} }
        let config = try run.loadConfigResolvingData()
        guard !config.data.plan.isEmpty, try PlanFile.kind(of: config.data.plan) == AuditPlan.kind else {
            let what = config.data.plan.isEmpty ? "no plan" : "data.plan = \(config.data.plan), a \(try PlanFile.kind(of: config.data.plan)) plan"
            throw EvaluationError.input("\(run.path) was not trained on an audit plan (\(what)); make one with `eidetic data plan audit` and train on it")
        }
        let (rec, model, c) = try MembershipReport.record(run, useEMA: useEMA)
        try MembershipReport.check(signal, run: run.path, config: c)
        let plan = try PlanFile.read(AuditPlan.self, from: c.data.plan)
        let planHash = try PlanFile.hash(plan)
        let (split, indices, _) = try trainingSelection(c.data)
        let m = plan.canaries.count
        if let g = guesses {
            guard g.0 >= 0, g.1 >= 0, g.0 + g.1 >= 1, g.0 + g.1 <= m else {
                throw EvaluationError.input("--guesses \(g.0):\(g.1): need 1 ≤ IN + OUT guesses ≤ \(m) canaries")
            }
        }
        guard confidence > 0 && confidence < 1 else { throw EvaluationError.input("--confidence \(confidence) must be in (0, 1)") }

        let attrs = try HDF5File.open(run.checkpoint).attributes()
        var accountant: (Double, Double)? = nil
        if case .double(let e)? = attrs["privacy_epsilon"], case .double(let d)? = attrs["privacy_delta"] { accountant = (e, d) }
        let delta: Double, source: String
        if let requested {
            guard requested >= 0 && requested < 1 else { throw EvaluationError.input("--delta \(requested) must be in [0, 1)") }
            delta = requested; source = "--delta"
        } else if let accountant {
            delta = accountant.1; source = "the run's privacy delta"
        } else {
            delta = defaultDelta(examples: indices.count); source = delta < 1e-5 ? "largest power of ten below 1/N" : "the usual 1e-5"
        }

        let losses = try MembershipReport.signals(run: run, record: rec, model: model, config: c, images: split.subset(plan.canaries),
                                                  ids: plan.canaries, signal: signal, log: log)
        let q = signal.queries
        let scores = (0..<m).map { i in -(0..<q).reduce(0.0) { $0 + losses[i * q + $1] } / Double(q) }
        if let bad = scores.firstIndex(where: { !$0.isFinite }) {
            throw EvaluationError.input("\(run.path): the membership signal of canary \(plan.canaries[bad]) is not finite (\(scores[bad])); the model's outputs are not usable")
        }
        let outcome = OneRunAudit.audit(scores: scores, included: plan.inclusion, delta: delta, confidence: confidence,
                                        grid: guesses.map { [(guessIn: $0.0, guessOut: $0.1)] })

        let tmp = try EvalOutput.begin(out, force: force)
        do {
            try EvalOutput.writeArrays([("scores", Tensor(scores, shape: [m], dtype: .float64)),
                                        ("signals/losses", Tensor(losses, shape: [m, q], dtype: .float64))],
                                       int64: [("canaries/dataset_indices", plan.canaries.map(Int64.init), [m]),
                                               ("canaries/included", plan.inclusion.map { $0 ? 1 : 0 }, [m])],
                                       attributes: ["command": .string(EvalOutput.command)], to: tmp + "/audit.h5")
            let report = AuditReport(run: run.path, model: rec, plan: c.data.plan, planSHA256: planHash, signal: signal, outcome: outcome,
                                     deltaSource: source, accountantEpsilon: accountant?.0, accountantDelta: accountant?.1,
                                     canaryAUC: ROC(scores: scores, members: plan.inclusion).auc,
                                     trainingExamples: indices.count, command: EvalOutput.command,
                                     outputs: ["arrays": out + "/audit.h5", "summary": out + "/summary.json"])
            try EvalOutput.writeJSON(report, to: tmp + "/summary.json")
            try EvalOutput.publish(tmp, to: out)
            return report
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw error
        }
    }

    /// The summary lines: the counts, the empirical lower bound and, beside it, the accountant's ε.
    public var lines: [String] {
        let o = outcome
        var l = [String(format: "audit: %d canaries (%d IN by their coins), %d guesses (%d IN, %d OUT), %d correct%@",
                        o.canaries, o.included, o.guesses, o.guessedIn, o.guessedOut, o.correct,
                        o.tests > 1 ? " (best of \(o.tests) guess counts, Bonferroni)" : "")]
        l.append(String(format: "  canary AUC %.3f (scores against the coins)", canaryAUC))
        l.append(String(format: "  empirical ε ≥ %.4g at %.0f%% confidence (δ = %.3g, %@; Steinke, Nasr & Jagielski 2023)",
                        o.epsilonLowerBound, o.confidence * 100, o.delta, deltaSource))
        if let e = accountantEpsilon, let d = accountantDelta {
            l.append(String(format: "  accountant ε ≤ %.4g (δ = %.3g, improved conversion) at checkpoint step %d", e, d, model.checkpointStep))
            if o.epsilonLowerBound > e {
                l.append("  WARNING: the empirical lower bound exceeds the accountant's ε: a privacy bug, or the 5 % chance the bound allows")
            }
        } else {
            l.append("  accountant: none (not a private run): the bound is this model's empirical ε")
        }
        return l
    }
}
