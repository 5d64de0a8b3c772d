import Data
import Evaluation
import HDF5
import Foundation
import Training

/// A sweep's results as its run files hold them: each job's `experiment.json` and the
/// sweep-level LiRA folder. Nothing here reads the database, so the same runs give the
/// same tables whichever launcher (local workers, Slurm) produced them.
public struct SweepResults {
    public struct Run {
        public var job: JobRecord
        /// The swept values of this job, in axis order.
        public var point: [(key: String, value: AxisValue)]
        public var summary: ExperimentSummary?
    }
    public var spec: SweepSpec
    public var runs: [Run]
    public var lira: (folder: String, report: MembershipReport)?
    /// The outlier join in the LiRA folder (`[outliers]`, P9), when computed.
    public var outliers: OutlierReport?
    /// The sweep-level inpainting attack (`[inpainting]`, P10), when computed.
    public var inpainting: (folder: String, report: InpaintReport)?

    init(spec: SweepSpec, runs: [Run], lira: (folder: String, report: MembershipReport)?, inpainting folder: String? = nil) {
        self.spec = spec; self.runs = runs; self.lira = lira
        if let f = folder, let d = FileManager.default.contents(atPath: f + "/summary.json"), let r = try? JSONDecoder().decode(InpaintReport.self, from: d) {
            inpainting = (f, r)
        }
        if let (f, _) = lira, let d = FileManager.default.contents(atPath: f + "/outliers/summary.json") {
            outliers = try? JSONDecoder().decode(OutlierReport.self, from: d)
        }
    }

    public static func collect(_ sweep: Sweep) throws -> SweepResults {
        let jobs = try sweep.expand()
        let points = sweep.spec.jobs()
        let runs = jobs.map { j in Run(job: j, point: points[j.idx], summary: try? ExperimentSummary.load(run: j.runDir)) }
        var lira: (String, MembershipReport)?
        if let f = try sweep.liraFolder(jobs), let r = try? JSONDecoder().decode(MembershipReport.self, from: Data(contentsOf: URL(fileURLWithPath: f + "/summary.json"))) {
            lira = (f, r)
        }
        return SweepResults(spec: sweep.spec, runs: runs, lira: lira, inpainting: try sweep.inpaintingFolder(jobs))
    }

    /// What `eidetic sweep export` writes beside the copied records (`records.json`): the jobs
    /// as the sweep expanded them where they ran, and the LiRA folder's name, so the tables can
    /// be rebuilt from the records alone wherever they are.
    public struct RecordIndex: Codable, Equatable {
        public struct Job: Codable, Equatable {
            public var idx: Int; public var id: String; public var overrides: String
            public init(idx: Int, id: String, overrides: String) { self.idx = idx; self.id = id; self.overrides = overrides }
        }
        public var sweep: String
        public var file: String
        public var fileSHA256: String
        public var jobs: [Job]
        public var lira: String?
        /// The inpainting folder's name (`[inpainting]`); absent from older records.
        public var inpainting: String?
        public init(sweep: String, file: String, fileSHA256: String, jobs: [Job], lira: String?, inpainting: String? = nil) {
            self.sweep = sweep; self.file = file; self.fileSHA256 = fileSHA256; self.jobs = jobs; self.lira = lira; self.inpainting = inpainting
        }
    }

    /// The results held in a records folder (`<records>/<sweep name>/`, from `sweep export`).
    public static func collect(_ sweep: Sweep, records: String) throws -> SweepResults {
        let dir = records + "/" + sweep.spec.name
        let path = dir + "/records.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SweepError.spec("\(path): no records of sweep \(sweep.spec.name) here (eidetic sweep export writes them)")
        }
        guard let index = try? JSONDecoder().decode(RecordIndex.self, from: data) else {
            throw SweepError.spec("\(path): not a records index (truncated or edited?); export the sweep again")
        }
        guard index.fileSHA256 == sweep.spec.fileHash else {
            throw SweepError.spec("\(path): the records come from another version of \(sweep.spec.file) (sha256 \(index.fileSHA256.prefix(12)) vs \(sweep.spec.fileHash.prefix(12)))")
        }
        let points = sweep.spec.jobs()
        guard index.jobs.count == points.count, index.jobs.allSatisfy({ $0.idx >= 0 && $0.idx < points.count }) else {
            throw SweepError.spec("\(path): \(index.jobs.count) jobs recorded, the sweep expands to \(points.count)")
        }
        let runs = index.jobs.map { j in
            let job = JobRecord(id: j.id, sweep: index.sweep, idx: j.idx, overrides: j.overrides, runDir: dir + "/runs/" + j.id, log: "", state: "done", current: 1, attempts: 0)
            return Run(job: job, point: points[j.idx], summary: try? ExperimentSummary.load(run: job.runDir))
        }
        var lira: (String, MembershipReport)?
        if let name = index.lira {
            let f = dir + "/" + name
            lira = (f, try JSONDecoder().decode(MembershipReport.self, from: Data(contentsOf: URL(fileURLWithPath: f + "/summary.json"))))
        }
        return SweepResults(spec: sweep.spec, runs: runs, lira: lira, inpainting: index.inpainting.map { dir + "/" + $0 })
    }

    /// Keys averaged over (replicates): seeds and which half of a membership plan.
    public static let defaultReplicates = ["run.seed", "data.plan_model", "run.name", "data.subset_seed"]
}

/// A table: a header and rows of cells, written as Markdown, LaTeX and CSV.
public struct Table: Equatable {
    public var name: String
    public var caption: String
    public var header: [String]
    public var rows: [[String]]
    /// Per row: the run directories it was computed from.
    public var sources: [[String]]

    public func markdown() -> String {
        var s = "**\(caption)**\n\n| " + header.joined(separator: " | ") + " |\n|" + header.map { _ in "---" }.joined(separator: "|") + "|\n"
        for r in rows { s += "| " + r.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |\n" }
        return s
    }

    public func latex() -> String {
        func esc(_ x: String) -> String {
            var o = ""
            for ch in x {
                switch ch {
                case "\\": o += "\\textbackslash{}"
                case "&", "%", "$", "#", "_", "{", "}": o += "\\" + String(ch)
                case "±": o += "$\\pm$"
                case "–": o += "--"
                case "≥": o += "$\\geq$"
                case "≤": o += "$\\leq$"
                default: o.append(ch)
                }
            }
            return o
        }
        var s = "% \(name): generated by eidetic tables; do not edit\n\\begin{table}[t]\n\\centering\n\\caption{\(esc(caption))}\n"
        s += "\\begin{tabular}{" + header.map { _ in "l" }.joined() + "}\n\\toprule\n"
        s += header.map(esc).joined(separator: " & ") + " \\\\\n\\midrule\n"
        for r in rows { s += r.map(esc).joined(separator: " & ") + " \\\\\n" }
        return s + "\\bottomrule\n\\end{tabular}\n\\end{table}\n"
    }

    /// RFC 4180 CSV with a last column naming the runs behind each row.
    public func csv() -> String {
        func q(_ x: String) -> String { x.contains(",") || x.contains("\"") || x.contains("\n") ? "\"" + x.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : x }
        var s = (header + ["runs"]).map(q).joined(separator: ",") + "\n"
        for (r, src) in zip(rows, sources) { s += (r + [src.joined(separator: " ")]).map(q).joined(separator: ",") + "\n" }
        return s
    }
}

/// Builds the tables and figures of a sweep from its run files (`eidetic tables`,
/// `eidetic sweep report`): byte-identical for the same files.
public enum SweepTables {
    public static func fmt(_ x: Double, _ digits: Int = 3) -> String {
        x.isNaN ? "n/a" : String(format: "%.\(digits)f", x)
    }
    public static func meanStd(_ xs: [Double], _ digits: Int = 3) -> String {
        let v = xs.filter { !$0.isNaN }
        guard !v.isEmpty else { return "n/a" }
        let (m, s) = Intervals.meanStd(v)
        return v.count == 1 ? fmt(m, digits) : "\(fmt(m, digits)) ± \(fmt(s, digits))"
    }
    public static func interval(_ i: AttackMetrics.Interval, _ digits: Int = 3) -> String {
        "\(fmt(i.value, digits)) [\(fmt(i.low, digits)), \(fmt(i.high, digits))]"
    }

    /// The keys a row groups by: the swept keys that are not replicates.
    public static func groupKeys(_ spec: SweepSpec, replicates: [String]) -> [String] {
        var seen = Set<String>()
        return spec.axes.map(\.key).filter { !replicates.contains($0) && seen.insert($0).inserted }
    }

    /// One row per run: its swept values and its numbers.
    public static func runsTable(_ r: SweepResults, confidence: Double) -> Table {
        let keys = r.spec.axes.map(\.key)
        let withBaseline = r.runs.contains { $0.summary?.baseline != nil }, withQuality = r.runs.contains { $0.summary?.quality != nil }
        var t = Table(name: "runs", caption: "Every run of sweep \(r.spec.name)", header: ["job"] + keys + ["final loss", "extracted images (\(Int(confidence * 100))% CI)"] + (withBaseline ? ["non-member baseline (\(Int(confidence * 100))% CI)"] : []) + ["extracted generations", "single-run membership AUC [95% CI]"] + (withQuality ? ["FCD (real floor; noise) / KCD×1000"] : []), rows: [], sources: [])
        for run in r.runs {
            var row = [run.job.id] + keys.map { k in run.point.first { $0.key == k }?.value.toml ?? "" }
            guard let s = run.summary else { row += ["not run", "", "", ""] + (withBaseline ? [""] : []) + (withQuality ? [""] : []); t.rows.append(row); t.sources.append([run.job.runDir]); continue }
            row.append(s.training.finalLosses.keys.sorted().map { "\($0) \(fmt(s.training.finalLosses[$0]!, 4))" }.joined(separator: ", "))
            func count(_ x: ExperimentSummary.ExtractionResultSummary?) -> String {
                guard let x else { return "n/a" }
                let ci = Intervals.clopperPearson(successes: x.uniqueExtracted, trials: x.trainingImages, confidence: confidence)
                return "\(x.uniqueExtracted)/\(x.trainingImages) (\(fmt(ci.low)) – \(fmt(ci.high)))"
            }
            row.append(count(s.extraction))
            if withBaseline { row.append(count(s.baseline)) }
            row.append(s.extraction.map { "\($0.extractedGenerations)/\($0.generations)" } ?? "n/a")
            row.append(s.membership.map { interval($0.auc) } ?? "n/a")
            if withQuality { row.append(s.quality.map { "\(fmt($0.fcd, 2)) (\(fmt($0.fcdRealFloor, 2)); \($0.fcdNoise.map { fmt($0, 2) } ?? "n/a")) / \(fmt($0.kcd * 1000, 2))" } ?? "n/a") }
            t.rows.append(row); t.sources.append([run.job.runDir])
        }
        return t
    }

    /// One row per setting of the non-replicate keys: means ± std over replicates, pooled
    /// extraction counts with exact binomial intervals.
    public static func summaryTable(_ r: SweepResults, replicates: [String], confidence: Double) -> Table {
        let keys = groupKeys(r.spec, replicates: replicates)
        var groups: [[String]: [SweepResults.Run]] = [:]
        var order: [[String]] = []
        for run in r.runs where run.summary != nil {
            let g = keys.map { k in run.point.first { $0.key == k }?.value.toml ?? "" }
            if groups[g] == nil { order.append(g) }
            groups[g, default: []].append(run)
        }
        let withBaseline = r.runs.contains { $0.summary?.baseline != nil }
        let withCliques = r.runs.contains { $0.summary?.cliques != nil }, withPrivacy = r.runs.contains { $0.summary?.privacy != nil }
        let withQuality = r.runs.contains { $0.summary?.quality != nil }, withAudit = r.runs.contains { $0.summary?.audit != nil }
        let versions = Set(r.runs.compactMap { $0.summary?.codeVersion }).sorted().joined(separator: ", ")
        var t = Table(name: "summary", caption: "Sweep \(r.spec.name): mean ± std over \(replicates.filter { k in r.spec.axes.contains { $0.key == k } }.joined(separator: ", ").nonEmpty ?? "runs"); pooled extraction counts with exact \(Int(confidence * 100))% intervals; computed by \(versions.nonEmpty ?? "no runs yet")",
                      header: (keys.isEmpty ? ["setting"] : keys) + ["runs", "final loss", "extracted images", "extracted fraction (\(Int(confidence * 100))% CI)"]
                        + (withBaseline ? ["non-member baseline (\(Int(confidence * 100))% CI)"] : []) + ["extracted generations"]
                        + (withCliques ? ["clique filter: flagged / verified (unique images)\(r.runs.contains { $0.summary?.baselineCliques != nil } ? "; on the twin's generations" : "")"] : []) + (withPrivacy ? ["accountant ε (classic) at δ"] : [])
                        + (withAudit ? ["audited ε ≥ (one-run audit: correct / guesses of canaries; canary AUC)"] : [])
                        + ["single-run membership AUC", "TPR at 1% FPR"]
                        + (withQuality ? ["FCD (real-vs-real floor; pixel noise)", "KCD×1000"] : []), rows: [], sources: [])
        for g in order {
            let rs = groups[g]!.map { $0.summary! }
            var row = keys.isEmpty ? ["all"] : g
            row.append(String(rs.count))
            let lossName = rs.first?.training.finalLosses.keys.sorted().first { $0 == "loss" || $0 == "g_loss" } ?? rs.first?.training.finalLosses.keys.sorted().first
            row.append(lossName.map { n in meanStd(rs.compactMap { $0.training.finalLosses[n] }, 4) } ?? "n/a")
            func pooled(_ xs: [ExperimentSummary.ExtractionResultSummary]) -> String {
                let k = xs.reduce(0) { $0 + $1.uniqueExtracted }, n = xs.reduce(0) { $0 + $1.trainingImages }
                let ci = Intervals.clopperPearson(successes: k, trials: n, confidence: confidence)
                return "\(k)/\(n) = \(fmt(Double(k) / Double(max(n, 1)))) (\(fmt(ci.low)) – \(fmt(ci.high)))"
            }
            let xs = rs.compactMap(\.extraction), bs = rs.compactMap(\.baseline)
            if xs.count == rs.count, !xs.isEmpty {
                row.append(meanStd(xs.map { Double($0.uniqueExtracted) }, 2))
                row.append(pooled(xs))
                if withBaseline { row.append(bs.count == rs.count ? pooled(bs) : "n/a") }
                row.append(meanStd(xs.map { Double($0.extractedGenerations) }, 2))
            } else { row += ["n/a", "n/a", "n/a"] + (withBaseline ? ["n/a"] : []) }
            if withCliques {
                let cs = rs.compactMap(\.cliques)
                let tw = rs.compactMap(\.baselineCliques)
                let cal = rs.compactMap(\.cliqueCalibration)
                row.append((cs.isEmpty ? "n/a" : "\(cs.reduce(0) { $0 + $1.flagged }) / \(cs.reduce(0) { $0 + $1.verified }) (\(cs.reduce(0) { $0 + $1.uniqueVerified }))")
                           + (tw.isEmpty ? "" : "; twin \(tw.reduce(0) { $0 + $1.flagged }) / \(tw.reduce(0) { $0 + $1.verified }) (\(tw.reduce(0) { $0 + $1.uniqueVerified }))")
                           + (cal.isEmpty ? "" : "; δ = " + cal.map { String(format: "%.2f", $0.threshold) + ($0.calibrated ? "" : " (uncalibrated: false flags at every δ)") }.joined(separator: ", ") + " chosen on the twin"))
            }
            if withPrivacy {
                let ps = rs.compactMap(\.privacy)
                row.append(ps.isEmpty ? "not private" : "\(meanStd(ps.map(\.epsilon), 2)) (\(meanStd(ps.map(\.epsilonClassic), 2))) at \(String(format: "%g", ps[0].delta))")
            }
            if withAudit {
                // each run's own bound (bounds do not pool: each is a test on its own coins)
                let au = rs.compactMap(\.audit)
                row.append(au.isEmpty ? "n/a" : au.map { String(format: "%@ at δ = %g, %g%% (%d / %d of %d; AUC %@)", fmt($0.epsilonLowerBound, 2), $0.delta, $0.confidence * 100,
                                                                 $0.correct, $0.guesses, $0.canaries, fmt($0.canaryAUC)) }.joined(separator: "; "))
            }
            let ms = rs.compactMap(\.membership)
            row.append(ms.count == 1 ? interval(ms[0].auc) : ms.isEmpty ? "n/a" : meanStd(ms.map(\.auc.value)))
            let tpr = ms.count == 1 ? ms[0].tprAtFPR["0.01"].map { interval($0) } ?? "n/a" : ms.isEmpty ? "n/a" : meanStd(ms.compactMap { $0.tprAtFPR["0.01"]?.value })
            row.append(tpr + (ms.first.map { unresolved($0.nonMembers, fpr: 0.01) } ?? ""))
            if withQuality {
                let qs = rs.compactMap(\.quality)
                if qs.isEmpty { row += ["n/a", "n/a"] } else {
                    row.append("\(meanStd(qs.map(\.fcd), 2)) (\(meanStd(qs.map(\.fcdRealFloor), 2)); \(meanStd(qs.compactMap(\.fcdNoise), 2)))")
                    row.append(qs.count == 1 ? "\(fmt(qs[0].kcd * 1000, 2)) ± \(fmt(qs[0].kcdStd * 1000, 2))" : meanStd(qs.map { $0.kcd * 1000 }, 2))
                }
            }
            t.rows.append(row); t.sources.append(groups[g]!.map(\.job.runDir))
        }
        return t
    }

    /// The clique filter's δ chosen on each run's non-member twin (`clique_calibrate`; P12):
    /// per δ tried, the cliques the twin's generations flag and the false flags among them
    /// (medoid extracting none of the twin's own training images). Nil when no run calibrated.
    public static func cliqueCalibrationTable(_ r: SweepResults) -> Table? {
        let runs = r.runs.filter { $0.summary?.cliqueCalibration != nil }
        guard !runs.isEmpty else { return nil }
        var t = Table(name: "clique-calibration", caption: "Sweep \(r.spec.name): the clique filter's δ chosen on the non-member twin — the largest δ below the first at which the twin's generations flag a clique whose medoid extracts none of the twin's own training images (a false flag)",
                      header: ["run", "δ (tiled ℓ2)", "cliques flagged on the twin's generations", "false flags", "chosen"], rows: [], sources: [])
        for run in runs {
            let c = run.summary!.cliqueCalibration!
            for p in c.points where p.count == 3 {
                t.rows.append([run.job.id, String(format: "%.2f", p[0]), String(Int(p[1])), String(Int(p[2])),
                               p[0] == c.threshold ? (c.calibrated ? "← δ" : "← δ (uncalibrated)") : ""])
                t.sources.append([run.job.runDir])
            }
        }
        return t
    }

    /// Outcomes by duplicate count (P7/P8): per setting of the non-replicate keys and copy
    /// count, the canaries pooled over replicates — extracted (k/n, exact interval), flagged by
    /// the non-member twin, the single-run attack's AUC against non-members (mean over runs),
    /// and how many the attack flags at 1 % FPR. Nil when no run has a duplication plan.
    public static func duplicatesTable(_ r: SweepResults, replicates: [String], confidence: Double) -> Table? {
        guard r.runs.contains(where: { $0.summary?.duplicates != nil }) else { return nil }
        let keys = groupKeys(r.spec, replicates: replicates)
        var groups: [[String]: [SweepResults.Run]] = [:], order: [[String]] = []
        for run in r.runs where run.summary?.duplicates != nil {
            let g = keys.map { k in run.point.first { $0.key == k }?.value.toml ?? "" }
            if groups[g] == nil { order.append(g) }
            groups[g, default: []].append(run)
        }
        var t = Table(name: "duplicates", caption: "Sweep \(r.spec.name): canaries by number of copies, pooled over replicates (extraction: relative ℓ2 < 1, exact \(Int(confidence * 100))% intervals; attack: single-run loss threshold)",
                      header: (keys.isEmpty ? ["setting"] : keys) + ["copies", "canaries", "extracted (\(Int(confidence * 100))% CI)", "flagged by the non-member twin", "attack AUC vs non-members", "flagged at 1% FPR"], rows: [], sources: [])
        for g in order {
            let outcomes = groups[g]!.flatMap { $0.summary!.duplicates! }
            for k in Set(outcomes.map(\.copies)).sorted() {
                let o = outcomes.filter { $0.copies == k }
                let n = o.reduce(0) { $0 + $1.canaries }, x = o.reduce(0) { $0 + $1.extracted }
                let ci = Intervals.clopperPearson(successes: x, trials: n, confidence: confidence)
                let b = o.compactMap(\.baselineExtracted), f = o.compactMap(\.flaggedAt1PercentFPR)
                t.rows.append((keys.isEmpty ? ["all"] : g) + [String(k), String(n), "\(x)/\(n) (\(fmt(ci.low)) – \(fmt(ci.high)))",
                               b.count == o.count ? "\(b.reduce(0, +))/\(n)" : "n/a", meanStd(o.compactMap(\.attackAUC)),
                               f.count == o.count ? "\(f.reduce(0, +))/\(n)" : "n/a"])
                t.sources.append(groups[g]!.map(\.job.runDir))
            }
        }
        return t
    }

    /// The sweep-level LiRA results: one row per attack, AUC and TPRs with bootstrap intervals.
    public static func liraTable(_ r: SweepResults) -> Table? {
        guard let (folder, rep) = r.lira else { return nil }
        let fprs = Set(rep.results.flatMap { $0.metrics.tprAtFPR.keys }).sorted { Double($0)! < Double($1)! }
        var t = Table(name: "lira", caption: "Membership inference over \(rep.models.count) models (\(rep.examples) examples, \(rep.members) member trials); 95% bootstrap intervals over examples\(rep.codeVersion.map { "; computed by \($0)" } ?? "")",
                      header: ["attack", "AUC"] + fprs.map { "TPR at \(fmtPercent($0)) FPR" } + ["accuracy"], rows: [], sources: [])
        for a in rep.results {
            t.rows.append([a.attack.rawValue, interval(a.metrics.auc)] + fprs.map { f in (a.metrics.tprAtFPR[f].map { interval($0, 4) } ?? "n/a") + unresolved(a.metrics.nonMembers, fpr: Double(f) ?? 1) } + [fmt(a.metrics.accuracy)])
            t.sources.append([folder])
        }
        return t
    }

    /// The inpainting attack (paper §5.3, P10): per target, the kept completions' mean ℓ2 to
    /// the hidden half under a model that trained on it (IN) and one that did not (OUT). The
    /// design is paired, so the headline is how often IN is closer (exact binomial interval;
    /// 0.5 is no effect), beside the AUC of −ℓ2 over all cases.
    public static func inpaintingTable(_ r: SweepResults, confidence: Double) -> Table? {
        guard let (folder, rep) = r.inpainting else { return nil }
        let c = rep.config
        var byTarget: [Int: (in: Double?, out: Double?)] = [:]
        for k in rep.cases {
            var e = byTarget[k.datasetIndex] ?? (nil, nil)
            if k.member { e.in = k.outcome.keptMean } else { e.out = k.outcome.keptMean }
            byTarget[k.datasetIndex] = e
        }
        let pairs = byTarget.values.compactMap { p in p.in.flatMap { i in p.out.map { (i, $0) } } }
        let closer = pairs.filter { $0.0 < $0.1 }.count
        let ci = Intervals.clopperPearson(successes: closer, trials: pairs.count, confidence: confidence)
        func stat(_ m: [String: Double]) -> String { "\(fmt(m["mean"] ?? .nan, 4)) (\(fmt(m["median"] ?? .nan, 4)))" }
        var t = Table(name: "inpainting", caption: "Inpainting attack (\(rep.mode)): the \(c.hidden.rawValue) half of \(pairs.count) targets completed \(c.count) times by a model that trained on the target (IN) and one that did not (OUT), the \(c.keep) of lowest loss at t = \(c.rank.timesteps.map(String.init).joined(separator: ",")) kept (\(c.sampler.steps)-step stochastic DDIM, \(c.jumps) jumps); normalized ℓ2 over the hidden pixels; exact \(Int(confidence * 100))% interval",
                      header: ["targets", "IN: kept ℓ2 mean (median)", "OUT: kept ℓ2 mean (median)", "IN closer than OUT (\(Int(confidence * 100))% CI)", "AUC of −ℓ2"], rows: [], sources: [])
        t.rows.append([String(pairs.count), stat(rep.memberKeptMean), stat(rep.nonMemberKeptMean),
                       "\(closer)/\(pairs.count) = \(fmt(Double(closer) / Double(max(pairs.count, 1)))) (\(fmt(ci.low)) – \(fmt(ci.high)))", fmt(rep.auc)])
        t.sources.append([folder])
        return t
    }

    /// Outliers (paper-spec §7, P9): Spearman's ρ between each pool example's outlier score
    /// and its per-example LiRA quantity, with a 95% interval from Fisher's z and the
    /// Fieller–Hartley–Pearson (1957) standard error √(1.06 / (n − 3)) for rank correlations.
    public static func outliersTable(_ r: SweepResults) -> Table? {
        guard let o = r.outliers, let (folder, rep) = r.lira else { return nil }
        var t = Table(name: "outliers", caption: "Outlier score (mean ℓ2 to the \(o.neighbors) nearest other pool images) against per-example LiRA scores over \(rep.models.count) models; Spearman ρ with a 95% interval (Fisher z, SE √(1.06/(n−3))); decile means of the quantity",
                      header: ["quantity", "examples", "Spearman ρ (95% CI)", "least outlying decile", "most outlying decile"], rows: [], sources: [])
        for j in o.joins {
            let ci = Intervals.spearman(j.spearman, n: j.examples)
            t.rows.append([j.quantity, String(j.examples), String(format: "%.3f [%.3f, %.3f]", j.spearman, ci.low, ci.high),
                           j.deciles.first.map { fmt($0[3]) } ?? "n/a", j.deciles.last.map { fmt($0[3]) } ?? "n/a"])
            t.sources.append([folder + "/outliers"])
        }
        return t
    }

    /// A TPR at `fpr` rests on about fpr × n false positives; below 5 of them (n < 5 / fpr
    /// non-member trials; paper-spec §11.1) the table says so instead of implying a resolution.
    static func unresolved(_ nonMembers: Int, fpr: Double) -> String {
        Double(nonMembers) * fpr >= 5 ? "" : " (unresolved: \(nonMembers) non-members < \(Int((5 / fpr).rounded())))"
    }

    /// LiRA by timestep (P4; paper §5.2): every attack on one timestep's queries, averaged
    /// over its noise draws (and both views when the signal flips) or on one draw alone.
    public static func liraVariantsTable(_ r: SweepResults) -> Table? {
        guard let (folder, rep) = r.lira, let vs = rep.variants, !vs.isEmpty else { return nil }
        let sig = rep.signal
        let fprs = Set(vs.flatMap { $0.results.flatMap { $0.metrics.tprAtFPR.keys } }).sorted { Double($0)! < Double($1)! }
        let unflipped = vs.contains { $0.averaged && $0.views == 1 }
        var t = Table(name: "lira-timesteps", caption: "Membership inference by timestep over \(rep.models.count) models (\(rep.examples) examples); queries averaged: \(sig.map { "\($0.draws) noise draws\($0.flip ? " × 2 views (flip)" : "")" } ?? "n/a")\(unflipped ? ", the same draws of the unflipped image alone," : "") vs one draw of the unflipped image; 95% bootstrap intervals over examples",
                      header: ["timestep", "queries", "attack", "AUC"] + fprs.map { "TPR at \(fmtPercent($0)) FPR" }, rows: [], sources: [])
        func queries(_ v: MembershipReport.Variant) -> String {
            guard v.averaged else { return "1" }
            switch v.views {
            case 2?: return "\(v.queries) averaged (\(v.queries / 2) draw\(v.queries == 2 ? "" : "s") × 2 views)"
            case 1?: return "\(v.queries) averaged (unflipped)"
            default: return "\(v.queries) averaged"
            }
        }
        for v in vs { for a in v.results {
            t.rows.append([String(v.timestep), queries(v), a.attack.rawValue, interval(a.metrics.auc)]
                          + fprs.map { f in (a.metrics.tprAtFPR[f].map { interval($0, 4) } ?? "n/a") + unresolved(a.metrics.nonMembers, fpr: Double(f) ?? 1) })
            t.sources.append([folder])
        } }
        return t
    }

    static func fmtPercent(_ s: String) -> String {
        guard let d = Double(s) else { return s }
        return String(format: "%g%%", d * 100)
    }

    /// Figures: unique extracted vs generations (per run), memorization vs each swept
    /// non-replicate numeric key, and the LiRA ROC (log-log).
    public static func figures(_ r: SweepResults, replicates: [String]) -> [(name: String, plot: SVGPlot)] {
        var out: [(String, SVGPlot)] = []
        var curve = SVGPlot(title: "Extraction: distinct training images vs generations", xLabel: "generations", yLabel: "distinct training images extracted")
        for run in r.runs { if let x = run.summary?.extraction, !x.curve.isEmpty {
            curve.series.append(.init(name: run.job.id, x: x.curve.map { Double($0[0]) }, y: x.curve.map { Double($0[1]) }))
            // the same rule on the non-member twin's generations: the count's baseline at every prefix
            if let b = run.summary?.baseline, !b.curve.isEmpty {
                curve.series.append(.init(name: run.job.id + " non-member twin (baseline)", x: b.curve.map { Double($0[0]) }, y: b.curve.map { Double($0[1]) }))
            }
            // the black-box clique filter's verified distinct images on the same prefixes (P2)
            if let c = run.summary?.cliques?.curve, !c.isEmpty {
                curve.series.append(.init(name: run.job.id + " clique filter (verified, distinct)", x: c.map { Double($0[0]) }, y: c.map { Double($0[3]) }))
            }
        } }
        if let last = r.runs.compactMap({ $0.summary?.extraction?.generations }).max(), last >= 64 { curve.logX = true }
        let top = curve.series.flatMap(\.y).max() ?? 0
        curve.yRange = 0...max(1, top)
        if !curve.series.isEmpty { out.append(("extraction-curve", curve)) }
        for key in groupKeys(r.spec, replicates: replicates) {
            var byValue: [Double: [Double]] = [:]
            for run in r.runs {
                guard let x = run.summary?.extraction, let v = run.point.first(where: { $0.key == key }).flatMap({ Double($0.value.toml) }) else { continue }
                byValue[v, default: []].append(Double(x.uniqueExtracted))
            }
            guard byValue.count >= 2 else { continue }
            let xs = byValue.keys.sorted()
            var p = SVGPlot(title: "Memorization vs \(key)", xLabel: key, yLabel: "distinct training images extracted (mean)")
            p.logX = xs.first! > 0 && xs.last! / xs.first! >= 100
            p.series = [.init(name: "mean over replicates", x: xs, y: xs.map { Intervals.meanStd(byValue[$0]!).mean })]
            out.append(("memorization-vs-" + key.replacingOccurrences(of: ".", with: "_"), p))
        }
        // extraction and attack success vs number of copies (P7/P8), pooled over all runs
        let dups = r.runs.compactMap { $0.summary?.duplicates }.flatMap { $0 }
        if !dups.isEmpty {
            let ks = Set(dups.map(\.copies)).sorted().map(Double.init)
            var p = SVGPlot(title: "Duplicated training images: extraction and attack vs copies", xLabel: "copies in the training set", yLabel: "fraction of canaries / attack AUC")
            p.logX = (ks.last ?? 1) / (ks.first ?? 1) >= 8
            p.yRange = 0...1
            func frac(_ f: (ExperimentSummary.DuplicateOutcome) -> Int?) -> [Double] {
                ks.map { k in let o = dups.filter { Double($0.copies) == k }; return Double(o.compactMap(f).reduce(0, +)) / Double(max(1, o.reduce(0) { $0 + $1.canaries })) }
            }
            p.series = [.init(name: "extracted", x: ks, y: frac { $0.extracted })]
            if dups.allSatisfy({ $0.baselineExtracted != nil }) { p.series.append(.init(name: "flagged by the non-member twin", x: ks, y: frac { $0.baselineExtracted })) }
            if dups.allSatisfy({ $0.attackAUC != nil }) {
                p.series.append(.init(name: "attack AUC (mean)", x: ks, y: ks.map { k in Intervals.meanStd(dups.filter { Double($0.copies) == k }.compactMap(\.attackAUC)).mean }))
            }
            out.append(("duplicates", p))
        }
        if let (_, rep) = r.lira, let vs = rep.variants, Set(vs.map(\.timestep)).count >= 2 {
            var p = SVGPlot(title: "Membership inference vs timestep (\(rep.models.count) models)", xLabel: "timestep t", yLabel: "AUC")
            p.logX = true
            let ts = Set(vs.map(\.timestep)).sorted()
            for a in Set(vs.flatMap { $0.results.map(\.attack.rawValue) }).sorted() {
                // one series per kind of variant: all queries averaged; with flip, the unflipped
                // draws averaged; one draw
                func kind(_ v: MembershipReport.Variant) -> String { !v.averaged ? " (one draw)" : v.views == 1 ? " (draws, no flip)" : "" }
                for k in ["", " (draws, no flip)", " (one draw)"] where vs.contains(where: { kind($0) == k }) {
                    let pts = ts.compactMap { t in vs.first { $0.timestep == t && kind($0) == k }?
                        .results.first { $0.attack.rawValue == a }.map { (Double(max(t, 1)), $0.metrics.auc.value) } }
                    p.series.append(.init(name: a + k, x: pts.map(\.0), y: pts.map(\.1)))
                }
            }
            out.append(("lira-timesteps", p))
        }
        if let o = r.outliers, !o.joins.isEmpty {
            var p = SVGPlot(title: "Outliers: per-example LiRA score by outlier-score decile", xLabel: "outlier score (decile mean of the bounds; mean ℓ2 to \(o.neighbors) nearest)", yLabel: "mean per-example score in the decile")
            for j in o.joins where !j.deciles.isEmpty {
                p.series.append(.init(name: String(format: "%@ (ρ = %.3f)", j.quantity, j.spearman), x: j.deciles.map { ($0[0] + $0[1]) / 2 }, y: j.deciles.map { $0[3] }))
            }
            out.append(("outliers", p))
        }
        if let (folder, rep) = r.lira, let f = try? HDF5ROC.read(folder + "/mia.h5", attacks: rep.results.map(\.attack.rawValue)) {
            var roc = SVGPlot(title: "Membership inference ROC (\(rep.models.count) models)", xLabel: "false positive rate", yLabel: "true positive rate")
            roc.logX = true; roc.logY = true; roc.diagonal = true
            let lowest = pow(10, (log10(1.0 / Double(max(f.first?.fpr.count ?? 10, 10)))).rounded(.down))
            roc.xRange = lowest...1; roc.yRange = lowest...1
            for (a, c) in zip(rep.results, f) { roc.series.append(.init(name: String(format: "%@ (AUC %.3f)", a.attack.rawValue, a.metrics.auc.value), x: c.fpr, y: c.tpr)) }
            out.append(("roc", roc))
        }
        return out
    }

    /// Every table of a sweep's results, by name: summary, runs, and when the results have
    /// them lira, duplicates, lira-timesteps, outliers, inpainting.
    public static func tables(_ r: SweepResults, replicates: [String], confidence: Double) -> [Table] {
        var tables = [summaryTable(r, replicates: replicates, confidence: confidence), runsTable(r, confidence: confidence)]
        if let l = liraTable(r) { tables.append(l) }
        if let d = duplicatesTable(r, replicates: replicates, confidence: confidence) { tables.append(d) }
        if let c = cliqueCalibrationTable(r) { tables.append(c) }
        if let v = liraVariantsTable(r) { tables.append(v) }
        if let o = outliersTable(r) { tables.append(o) }
        if let i = inpaintingTable(r, confidence: confidence) { tables.append(i) }
        return tables
    }

    /// Writes each table as `<name>.{md,tex,csv}` and all their sources as `sources.json`
    /// into `folder` (created); returns the paths written.
    public static func writeTables(_ tables: [Table], to folder: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var written: [String] = [], sources: [String: [[String]]] = [:]
        for t in tables {
            for (ext, text) in [("md", t.markdown()), ("tex", t.latex()), ("csv", t.csv())] {
                let p = folder + "/\(t.name).\(ext)"
                try writeFileAtomically(Data(text.utf8), to: p); written.append(p)
            }
            sources[t.name] = t.sources
        }
        let e = JSONEncoder(); e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try writeFileAtomically(try e.encode(sources) + Data("\n".utf8), to: folder + "/sources.json"); written.append(folder + "/sources.json")
        return written
    }

    /// Writes every table (md, tex, csv), figure (svg, and png when `rsvg-convert` is
    /// there) and `sources.json` into `folder`; returns the paths written.
    @discardableResult
    public static func write(_ r: SweepResults, to folder: String, replicates: [String] = SweepResults.defaultReplicates, confidence: Double = 0.95,
                             log: (String) -> Void = { print($0) }) throws -> [String] {
        var written = try writeTables(self.tables(r, replicates: replicates, confidence: confidence), to: folder)
        let rsvg = ["/usr/bin/rsvg-convert", "/usr/local/bin/rsvg-convert"].first { FileManager.default.isExecutableFile(atPath: $0) }
        for (name, plot) in figures(r, replicates: replicates) {
            let svg = folder + "/\(name).svg"
            try writeFileAtomically(Data(plot.render().utf8), to: svg); written.append(svg)
            if let rsvg {
                let png = folder + "/\(name).png"
                let p = Process()
                p.executableURL = URL(fileURLWithPath: rsvg)
                p.arguments = ["--format", "png", "--output", png + ".tmp", svg]
                p.standardError = FileHandle.nullDevice
                try p.run(); p.waitUntilExit()
                if p.terminationStatus == 0 { _ = rename(png + ".tmp", png); written.append(png) }
            }
        }
        if rsvg == nil { log("note: PNG figures skipped (rsvg-convert not found: apt-get install librsvg2-bin); the SVGs are written") }
        return written
    }
}

/// The ROC arrays a LiRA folder's mia.h5 holds per attack.
enum HDF5ROC {
    static func read(_ path: String, attacks: [String]) throws -> [(fpr: [Double], tpr: [Double])] {
        let f = try HDF5File.open(path)
        defer { try? f.close() }
        return try attacks.map { a in (try f.readTensor("\(a)/roc_fpr").doubles, try f.readTensor("\(a)/roc_tpr").doubles) }
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
