import Data
import Diffusion
import Foundation
import HDF5
import Models
import Tensor
import Training

/// `eidetic eval inpaint`: the inpainting attack on member vs non-member cases.
/// - single run: `targets` of the run's training images vs as many images it never saw;
/// - plan: for pool examples, one model that trained on the example (IN) and one that did not (OUT).
/// Reports the hidden-half distance of the kept completions per group and the ROC of
/// "−distance" as a membership score.
public struct InpaintReport: Codable, Sendable {
    public struct Case: Codable, Sendable {
        public var datasetIndex: Int
        public var run: String
        public var member: Bool
        public var outcome: InpaintOutcome
    }
    public var config: InpaintConfig
    public var mode: String
    public var cases: [Case]
    public var memberKeptMean: [String: Double]
    public var nonMemberKeptMean: [String: Double]
    public var auc: Double
    public var command: String
    public var outputs: [String: String]

    static func stats(_ v: [Double]) -> [String: Double] {
        let s = v.sorted()
        guard !s.isEmpty else { return [:] }
        return ["mean": s.reduce(0, +) / Double(s.count), "median": s[s.count / 2], "min": s[0], "max": s[s.count - 1], "count": Double(s.count)]
    }

    /// Runs every (target, run, member) case; the folder `final` receives summary.json,
    /// inpaint.h5, examples.png (refused if it exists, unless `force`; written whole or not at all).
    public static func run(cases list: [(Int, RunDirectory, Bool)], mode: String, config: InpaintConfig, out final: String, force: Bool = true,
                           log: (String) -> Void = { print($0) }) throws -> InpaintReport {
        guard !list.isEmpty else { throw EvaluationError.input("inpainting: no targets") }
        let locks = try Set(list.map { $0.1.path }).sorted().map { try RunLock.acquire($0, mode: .shared, purpose: "evaluation") }
        defer { withExtendedLifetime(locks) {} }
        let out = try EvalOutput.begin(final, force: force)
        var models: [String: (UNet, TrainConfig)] = [:]
        var split: ImageSet? = nil
        var cases: [Case] = []
        var shown: [(ArraySlice<UInt8>, ArraySlice<UInt8>)] = []
        var maskedTargets: [Int: [UInt8]] = [:]
        for (n, (id, run, member)) in list.enumerated() {
            if models[run.path] == nil {
                let (_, signalModel, c) = try MembershipReport.record(run, useEMA: true)
                guard case .unet(let model) = signalModel else {
                    throw EvaluationError.input("\(run.path) is a \(c.kind.rawValue) run: inpainting needs a diffusion model")
                }
                model.eval()
                models[run.path] = (model, c)
            }
            let (model, c) = models[run.path]!
            if split == nil { split = try DatasetFile(try run.loadCheckpoint().data.file).load(c.data.split) }
            let target = split!.image(id)
            let label = split!.labels[id]
            let conditional = model.config.classes > 0
            let t0 = Date()
            let (completions, outcome) = Inpainting.attack(
                model: { x, t in model(x, timesteps: t.map(Double.init), labels: conditional ? [Int](repeating: label, count: t.count) : nil) },
                process: c.diffusion.process, target: target, channels: split!.channels, height: split!.height, width: split!.width,
                targetID: id, config: config)
            log(String(format: "[%d/%d] target %d, %@ (%@): kept mean %.4f, kept min %.4f, oracle min %.4f (%.1f s)", n + 1, list.count, id, run.path,
                       member ? "member" : "non-member", outcome.keptMean, outcome.keptMin, outcome.oracleMin, Date().timeIntervalSince(t0)))
            cases.append(Case(datasetIndex: id, run: run.path, member: member, outcome: outcome))
            if shown.count < 32 {
                if maskedTargets[id] == nil {
                    let mask = config.knownMask(channels: split!.channels, height: split!.height, width: split!.width)
                    maskedTargets[id] = zip(target, mask).map { $1 == 1 ? $0 : 128 }
                }
                shown.append((maskedTargets[id]![...], completions.image(outcome.kept[0])))
            }
        }
        let m = cases.filter(\.member).map(\.outcome.keptMean), nm = cases.filter { !$0.member }.map(\.outcome.keptMean)
        let roc = ROC(scores: cases.map { -$0.outcome.keptMean }, members: cases.map(\.member))
        let g = cases.count, k = config.count
        try EvalOutput.writeArrays([
            ("cases/kept_mean", Tensor(cases.map(\.outcome.keptMean), shape: [g], dtype: .float64)),
            ("cases/kept_min", Tensor(cases.map(\.outcome.keptMin), shape: [g], dtype: .float64)),
            ("cases/oracle_min", Tensor(cases.map(\.outcome.oracleMin), shape: [g], dtype: .float64)),
            ("cases/distances", Tensor(cases.flatMap(\.outcome.distances), shape: [g, k], dtype: .float64)),
            ("cases/losses", Tensor(cases.flatMap(\.outcome.losses), shape: [g, k], dtype: .float64)),
        ], int64: [("cases/dataset_index", cases.map { Int64($0.datasetIndex) }, [g]), ("cases/member", cases.map { $0.member ? 1 : 0 }, [g])],
           attributes: ["command": .string(EvalOutput.command)], to: out + "/inpaint.h5")
        if let s = split, !shown.isEmpty {
            try PNG.write(PNG.pairsGrid(shown, channels: s.channels, height: s.height, width: s.width, pairsPerRow: 4), to: out + "/examples.png")
        }
        let report = InpaintReport(config: config, mode: mode, cases: cases, memberKeptMean: stats(m), nonMemberKeptMean: stats(nm),
                                   auc: roc.auc, command: EvalOutput.command,
                                   outputs: ["summary": final + "/summary.json", "arrays": final + "/inpaint.h5",
                                             "examples": final + "/examples.png (masked target | best kept completion)"])
        try EvalOutput.writeJSON(report, to: out + "/summary.json")
        try EvalOutput.publish(out, to: final)
        return report
    }

    /// Cases for one run: `targets` training images and `targets` unseen images of the split.
    public static func singleRunCases(_ run: RunDirectory, targets: Int, seed: UInt64) throws -> [(Int, RunDirectory, Bool)] {
        let (split, ids, _) = try run.loadCheckpoint().trainingSelection(path: run.checkpoint)
        let members = Array(Set(ids)).sorted()
        let memberSet = Set(members)
        let others = (0..<split.count).filter { !memberSet.contains($0) }
        let key = RandomKey(seed: seed).fold("inpaint-targets")
        let mi = randomPermutation(members.count, key: key.fold("in")).prefix(targets).map { members[$0] }
        let oi = randomPermutation(others.count, key: key.fold("out")).prefix(targets).map { others[$0] }
        return mi.map { ($0, run, true) } + oi.map { ($0, run, false) }
    }

    /// Cases for a membership plan: the first `targets` pool examples, each with the first
    /// plan model that trained on it and the first that did not.
    public static func planCases(_ planPath: String, runs: [RunDirectory], targets: Int) throws -> [(Int, RunDirectory, Bool)] {
        let plan = try PlanFile.read(MembershipPlan.self, from: planPath)
        var byModel: [Int: RunDirectory] = [:]
        for r in runs {
            let c = try r.loadConfigResolvingData()
            guard let p = try? PlanFile.read(MembershipPlan.self, from: c.data.plan), try PlanFile.hash(p) == PlanFile.hash(plan) else {
                throw EvaluationError.mismatch("\(r.path): not trained on membership plan \(planPath)")
            }
            byModel[c.data.planModel] = r
        }
        var out: [(Int, RunDirectory, Bool)] = []
        for i in 0..<min(targets, plan.pool.count) {
            let inM = (0..<plan.models).first { plan.isMember(model: $0, poolIndex: i) && byModel[$0] != nil }
            let outM = (0..<plan.models).first { !plan.isMember(model: $0, poolIndex: i) && byModel[$0] != nil }
            guard let a = inM, let b = outM else { throw EvaluationError.mismatch("pool example \(i): no IN and OUT run among the runs given") }
            out.append((plan.pool[i], byModel[a]!, true)); out.append((plan.pool[i], byModel[b]!, false))
        }
        return out
    }
}
