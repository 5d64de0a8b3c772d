import Data
import Evaluation
import Foundation
import HDF5
import Training

/// The static HTML report of a sweep (`eidetic sweep report`): one page with the jobs'
/// status and logs, the tables, the figures (inline SVG), the extracted pairs of every run,
/// and the most memorized training examples, each with its own dossier page. Opens from
/// disk: no server, no network, no scripts from elsewhere.
public struct SweepReport {
    public let sweep: Sweep
    public let results: SweepResults
    public var topK = 8
    /// Training examples (dataset indices) that get a dossier besides the top-k.
    public var chosen: [Int] = []
    public var replicates = SweepResults.defaultReplicates
    /// Nearest-neighbour ℓ2 (normalized) under which two training images count as duplicates.
    public var duplicateThreshold = 0.05

    public init(sweep: Sweep, results: SweepResults) { self.sweep = sweep; self.results = results }

    var folder: String { sweep.spec.directory + "/report" }

    /// A path under the sweep folder, relative to a page in `report/` (depth 0) or
    /// `report/examples/` (depth 1); others stay absolute.
    func rel(_ path: String, depth: Int = 0) -> String {
        let abs = URL(fileURLWithPath: path).standardizedFileURL.path
        let base = URL(fileURLWithPath: sweep.spec.directory).standardizedFileURL.path + "/"
        let up = String(repeating: "../", count: depth + 1)
        return abs.hasPrefix(base) ? up + String(abs.dropFirst(base.count)) : "file://" + abs
    }

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static let style = """
    body{font-family:sans-serif;margin:24px;max-width:1200px;color:#222}
    table{border-collapse:collapse;margin:8px 0 20px}th,td{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}
    th{background:#f3f3f3}.done{color:#2a7}.failed{color:#c22}.running{color:#c80}.pending{color:#888}
    img.px{image-rendering:pixelated}figure{display:inline-block;margin:8px}figcaption{font-size:12px;color:#555;max-width:360px}
    .thumbs img{margin:2px}code{font-size:12px}
    """

    static func page(_ title: String, _ body: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(esc(title))</title><style>\(style)</style></head>
        <body>
        \(body)
        <script>
        // marks the page once every image has loaded (the report's browser test reads it)
        window.addEventListener('load', function () {
          var imgs = Array.prototype.slice.call(document.images);
          var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
          document.body.setAttribute('data-images', ok + '/' + imgs.length);
        });
        </script>
        </body></html>

        """
    }

    static func html(_ t: Table) -> String {
        var s = "<table><caption style=\"caption-side:top;text-align:left;font-weight:bold\">\(esc(t.caption))</caption><tr>" + t.header.map { "<th>\(esc($0))</th>" }.joined() + "</tr>\n"
        for r in t.rows { s += "<tr>" + r.map { "<td>\(esc($0))</td>" }.joined() + "</tr>\n" }
        return s + "</table>\n"
    }

    /// Writes `report/index.html`, `report/examples/*.html` and their images; returns the index.
    @discardableResult
    public func write(log: (String) -> Void = { print($0) }) throws -> String {
        let fm = FileManager.default
        try fm.createDirectory(atPath: folder + "/examples", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: folder + "/images", withIntermediateDirectories: true)
        let spec = sweep.spec
        var body = "<h1>Sweep \(Self.esc(spec.name))</h1>\n"
        body += "<p>Sweep file <code>\(Self.esc(spec.file))</code> (sha256 \(spec.fileHash.prefix(12))), base experiment <code>\(Self.esc(spec.base))</code>, \(results.runs.count) jobs. "
        body += "Code: \(Self.esc(CodeVersion.current)). Every number below is read from the runs' files.</p>\n"

        // status (from the database: the only part that is not a run file)
        let db = Dictionary(uniqueKeysWithValues: ((try? sweep.store.jobs(sweep: spec.name)) ?? []).map { ($0.id, $0) })
        body += "<h2>Jobs</h2>\n<table><tr><th>#</th><th>job</th><th>state</th><th>attempts</th><th>seconds</th><th>log</th><th>run</th><th>error</th></tr>\n"
        for r in results.runs {
            let j = db[r.job.id] ?? r.job
            let state = r.summary != nil && j.state != "running" ? "done" : j.state
            body += "<tr><td>\(j.idx)</td><td>\(Self.esc(j.id))</td><td class=\"\(state)\">\(state)</td><td>\(j.attempts)</td><td>\(j.seconds.map { String(format: "%.1f", $0) } ?? "")</td>"
            body += "<td><a href=\"\(Self.esc(rel(j.log)))\">log</a></td><td><a href=\"\(Self.esc(rel(j.runDir)))\">run</a></td><td>\(Self.esc(j.error ?? ""))</td></tr>\n"
        }
        body += "</table>\n"

        // tables
        body += "<h2>Results</h2>\n"
        body += Self.html(SweepTables.summaryTable(results, replicates: replicates, confidence: 0.95))
        if let l = SweepTables.liraTable(results) { body += Self.html(l) }
        body += "<details><summary>Every run</summary>\n" + Self.html(SweepTables.runsTable(results, confidence: 0.95)) + "</details>\n"

        // figures
        let figs = SweepTables.figures(results, replicates: replicates)
        if !figs.isEmpty {
            body += "<h2>Figures</h2>\n"
            for (name, plot) in figs { body += "<figure>\(plot.render())<figcaption>\(Self.esc(name))</figcaption></figure>\n" }
        }

        // extracted pairs per run
        let pairs = results.runs.compactMap { r -> (String, String)? in
            guard let f = r.summary?.extraction?.folder, fm.fileExists(atPath: f + "/pairs.png") else { return nil }
            return (r.job.id, f + "/pairs.png")
        }
        if !pairs.isEmpty {
            body += "<h2>Generations beside their nearest training images</h2>\n<p>Each pair: a generation, then the training image nearest to it (closest first; extracted ones when there are any).</p>\n"
            for (id, p) in pairs.prefix(32) {
                body += "<figure><img class=\"px\" src=\"\(Self.esc(rel(p)))\" alt=\"pairs of \(Self.esc(id))\" style=\"max-width:520px\"><figcaption>\(Self.esc(id))</figcaption></figure>\n"
            }
        }

        // dossiers
        let ex = try Examples(report: self)
        let top = ex.topExamples(topK)
        let all = Array(Set(top + chosen.filter { ex.poolSet.contains($0) || ex.memberOf[$0] != nil })).sorted { (ex.rank[$0] ?? .max, $0) < (ex.rank[$1] ?? .max, $1) }
        if !all.isEmpty {
            body += "<h2>Most memorized training examples</h2>\n<p>Ranked by generations that copy them (over every run), then by the membership attack's score. Each links to its dossier.</p>\n<div class=\"thumbs\">"
            for e in all {
                let img = try ex.exampleImage(e)
                body += "<a href=\"examples/\(e).html\"><img class=\"px\" width=\"64\" src=\"\(Self.esc(img))\" alt=\"example \(e)\" title=\"example \(e): \(ex.copies[e, default: 0]) copies\"></a>"
                try Data(Self.page("Example \(e) — sweep \(spec.name)", try ex.dossier(e)).utf8).write(to: URL(fileURLWithPath: folder + "/examples/\(e).html"), options: .atomic)
            }
            body += "</div>\n"
        }
        for e in chosen where !all.contains(e) { log("note: example \(e) is in no run's training set or pool; no dossier") }
        let index = folder + "/index.html"
        try Data(Self.page("Sweep \(spec.name)", body).utf8).write(to: URL(fileURLWithPath: index), options: .atomic)
        return index
    }
}

/// Per-example facts across the sweep, for the dossiers.
struct Examples {
    let report: SweepReport
    let split: ImageSet
    let dataFile: String, splitName: String
    /// Dataset indices of every example some run trains on or the plan's pool holds.
    let pool: [Int]
    let poolSet: Set<Int>
    /// example → the jobs (positions in results.runs) whose training set holds it.
    var memberOf: [Int: [Int]] = [:]
    /// example → generations copying it: (run position, generation index).
    var copiers: [Int: [(Int, Int)]] = [:]
    var copies: [Int: Int] { copiers.mapValues(\.count) }
    /// example → run position → attack score (sweep-level LiRA, else the run's own attack).
    var scores: [Int: [Int: Double]] = [:]
    var attackName = ""
    var rank: [Int: Int] = [:]
    /// Outlier score of every pool example (mean ℓ2 to its 10 nearest pool neighbours);
    /// nil for pools over 5,000 images (quadratic).
    var poolOutlierScores: [Double]?
    static let outlierNeighbors = 10

    init(report: SweepReport) throws {
        self.report = report
        let runs = report.results.runs
        guard let first = runs.first(where: { $0.summary != nil }) else {
            split = ImageSet(images: [], labels: [], channels: 1, height: 1, width: 1, classNames: []); dataFile = ""; splitName = ""; pool = []; poolSet = []
            return
        }
        let c0 = try RunDirectory(first.job.runDir).loadConfig()
        dataFile = c0.data.file; splitName = c0.data.split
        split = try DatasetFile(dataFile).load(splitName)
        var union = Set<Int>()
        for (i, r) in runs.enumerated() where r.summary != nil {
            let c = try RunDirectory(r.job.runDir).loadConfig()
            guard c.data.file == dataFile && c.data.split == splitName else { continue }
            let (_, idx, _) = try trainingSelection(c.data)
            for e in Set(idx) { memberOf[e, default: []].append(i); union.insert(e) }
        }
        if let p = report.sweep.spec.planPath, let plan = try? PlanFile.read(MembershipPlan.self, from: p) { union.formUnion(plan.pool) }
        pool = union.sorted(); poolSet = union
        // generations that copy an example (the extraction's relative rule)
        for (i, r) in runs.enumerated() {
            guard let x = r.summary?.extraction, let f = try? HDF5File.open(x.folder + "/extraction.h5") else { continue }
            defer { try? f.close() }
            let rel = (try? f.readTensor("samples/relative").doubles) ?? []
            guard let (nn, shape) = try? f.readInt64("nearest/dataset_indices") else { continue }
            let k = shape.count == 2 ? shape[1] : 1
            let cfg = try? report.sweep.experiment(r.job.overrideList)
            let thr = cfg?.eval.extractionConfig.relativeThreshold ?? 1
            for (g, v) in rel.enumerated() where v < thr { copiers[Int(nn[g * k]), default: []].append((i, g)) }
        }
        // attack scores
        if let (folder, rep) = report.results.lira, let best = rep.results.max(by: { $0.metrics.auc.value < $1.metrics.auc.value }),
           let f = try? HDF5File.open(folder + "/mia.h5") {
            defer { try? f.close() }
            attackName = "LiRA " + best.attack.rawValue
            let a = best.attack.rawValue
            let sc = (try? f.readTensor("\(a)/scores").doubles) ?? []
            let exs = (try? f.readInt64("\(a)/example").values) ?? [], tg = (try? f.readInt64("\(a)/target").values) ?? []
            let ids = (try? f.readInt64("examples/dataset_indices").values) ?? []
            // target model m is the job whose data.plan_model is m
            var byModel: [Int: Int] = [:]
            for (i, r) in runs.enumerated() { if let v = r.point.first(where: { $0.key == "data.plan_model" }), let m = Int(v.value.toml) { byModel[m] = i } }
            for t in sc.indices where t < exs.count && t < tg.count {
                let e = Int(exs[t]); guard e < ids.count, let run = byModel[Int(tg[t])] else { continue }
                scores[Int(ids[e]), default: [:]][run] = sc[t]
            }
        }
        if pool.count > 1 && pool.count <= 5000 {
            let sub = split.subset(pool)
            let k = min(Examples.outlierNeighbors, pool.count - 1)
            poolOutlierScores = NearestNeighbors.search(queries: sub, references: sub, k: k, excludeSelf: true).map { l in l.reduce(0) { $0 + $1.distance } / Double(max(l.count, 1)) }
        }
        var order = pool
        let meanScore = scores.mapValues { d in d.values.reduce(0, +) / Double(max(d.count, 1)) }
        order.sort { (-(copiers[$0]?.count ?? 0), -(meanScore[$0] ?? -.infinity), $0) < (-(copiers[$1]?.count ?? 0), -(meanScore[$1] ?? -.infinity), $1) }
        for (i, e) in order.enumerated() { rank[e] = i }
    }

    func topExamples(_ k: Int) -> [Int] { pool.sorted { rank[$0]! < rank[$1]! }.prefix(k).map { $0 } }

    var folder: String { report.folder }

    /// `images/example-<i>.png` (written once); returns its path relative to report/.
    func exampleImage(_ e: Int) throws -> String {
        let name = "images/example-\(e).png"
        if !FileManager.default.fileExists(atPath: folder + "/" + name) {
            try PNG.write(PNG.image(planar: split.image(e), channels: split.channels, height: split.height, width: split.width), to: folder + "/" + name)
        }
        return name
    }

    func dossier(_ e: Int) throws -> String {
        let runs = report.results.runs
        let esc = SweepReport.esc
        let cls = e < split.count && split.labels[e] < split.classNames.count ? split.classNames[split.labels[e]] : "?"
        var b = "<p><a href=\"../index.html\">← sweep \(esc(report.sweep.spec.name))</a></p>\n"
        b += "<h1>Training example \(e) <small>(\(esc(cls)), \(esc(dataFile)) \(esc(splitName)))</small></h1>\n"
        b += "<img class=\"px\" width=\"160\" src=\"../\(try exampleImage(e))\" alt=\"example \(e)\">\n"
        // neighbours within the pool: duplicates and the outlier score
        let poolSet = pool
        let nn = NearestNeighbors.search(queries: split.subset([e]), references: split.subset(poolSet), k: min(11, poolSet.count))[0]
            .filter { poolSet[$0.index] != e }
        let kOut = min(Examples.outlierNeighbors, nn.count)
        let outlier = kOut > 0 ? nn.prefix(kOut).reduce(0) { $0 + $1.distance } / Double(kOut) : .nan
        b += "<h2>Outlier score and duplicates</h2>\n<p>Mean normalized ℓ2 to its \(kOut) nearest neighbours in the sweep's pool of \(poolSet.count) images: "
        b += String(format: "<b>%.4f</b>", outlier)
        if let all = poolOutlierScores {
            b += String(format: " (more isolated than %.0f%% of the pool)", 100 * Double(all.filter { $0 < outlier }.count) / Double(max(all.count, 1)))
        }
        b += ".</p>\n"
        let dups = nn.filter { $0.distance < report.duplicateThreshold }
        b += "<p>\(dups.count) duplicate(s) (ℓ2 < \(report.duplicateThreshold)) in the pool. Nearest neighbours:</p>\n<div class=\"thumbs\">"
        for n in nn.prefix(5) {
            let d = poolSet[n.index]
            b += "<figure><img class=\"px\" width=\"64\" src=\"../\(try exampleImage(d))\" alt=\"neighbour \(d)\"><figcaption>\(d): ℓ2 \(String(format: "%.4f", n.distance))</figcaption></figure>"
        }
        b += "</div>\n"
        // membership, attack scores, copies per model
        b += "<h2>In every model of the sweep</h2>\n<table><tr><th>job</th><th>trained on it</th><th>\(esc(attackName.isEmpty ? "attack score" : attackName + " score"))</th><th>generations copying it</th></tr>\n"
        let members = Set(memberOf[e] ?? [])
        let cps = copiers[e] ?? []
        for (i, r) in runs.enumerated() {
            let n = cps.filter { $0.0 == i }.count
            b += "<tr><td>\(esc(r.job.id))</td><td>\(members.contains(i) ? "yes" : "no")</td><td>\(scores[e]?[i].map { String(format: "%.3f", $0) } ?? "")</td><td>\(n)</td></tr>\n"
        }
        b += "</table>\n"
        if !cps.isEmpty {
            b += "<h2>Generations that copied it</h2>\n<div class=\"thumbs\">"
            var loaded: [Int: ImageSet] = [:]
            for (i, g) in cps.prefix(48) {
                if loaded[i] == nil, let samples = runs[i].summary?.samples { loaded[i] = try? DatasetFile(samples).load("samples") }
                guard let set = loaded[i], g < set.count else { continue }
                let name = "images/copy-\(e)-\(i)-\(g).png"
                try PNG.write(PNG.image(planar: set.image(g), channels: set.channels, height: set.height, width: set.width), to: folder + "/" + name)
                b += "<figure><img class=\"px\" width=\"64\" src=\"../\(name)\" alt=\"generation \(g) of \(esc(runs[i].job.id))\"><figcaption>\(esc(runs[i].job.id)) #\(g)</figcaption></figure>"
            }
            b += "</div>\n"
        } else {
            b += "<p>No generation of any run copied it.</p>\n"
        }
        return b
    }
}
