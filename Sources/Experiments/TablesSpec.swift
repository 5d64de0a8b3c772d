import Data
import Foundation
import TOML
import Training

/// A tables file (`experiments/paper/tables.toml`): tables that join several sweeps'
/// records, e.g. P7's duplicated and P8's deduplicated training sets in one table. Each
/// `[[table]]` stacks the same-named table of every listed sweep (read from `sweep export`
/// records, never run folders), with a first column naming the sweep:
///
/// ```toml
/// [[table]]
/// name = "deduplication"                  # → <records>/tables/deduplication.{md,tex,csv}
/// from = "duplicates"                     # the sweep table to stack (summary, runs, lira, …)
/// caption = "Before (P7) and after (P8) deduplication"
/// sweeps = ["experiments/paper/P7-duplicates.toml", "experiments/paper/P8-deduplication.toml"]
/// labels = ["duplicated (P7)", "deduplicated (P8)"]
/// scale = "full"                          # each sweep's scale (`eidetic tables --scale` overrides)
/// ```
///
/// A sweep without records at that scale gets one row saying so, so the table is honest
/// about what has not been run; tables with different columns do not stack (an error).
public struct TablesSpec: Sendable {
    public struct Entry: Sendable {
        public var name: String
        public var from: String
        public var caption: String
        public var sweeps: [String]
        public var labels: [String]
        public var scale: String?
    }
    public var file: String
    public var entries: [Entry]

    /// Whether `file` is a tables file (it has `[[table]]` and no `[sweep]`).
    public static func isTablesFile(_ file: String) -> Bool {
        guard let d = FileManager.default.contents(atPath: file), let t = try? parseTOML(String(decoding: d, as: UTF8.self), file: file) else { return false }
        return t["table"] != nil && t["sweep"] == nil
    }

    public static let tableNames = ["summary", "runs", "lira", "duplicates", "lira-timesteps", "outliers", "inpainting"]

    public static func load(file: String) throws -> TablesSpec {
        guard let d = FileManager.default.contents(atPath: file) else { throw TOMLError(file: file, line: 0, message: "cannot read the tables file") }
        let r = ConfigReader(try parseTOML(String(decoding: d, as: UTF8.self), file: file), file: file)
        var spec = TablesSpec(file: file, entries: [])
        let tables = try r.tables("table")
        if tables.isEmpty { throw r.error("table", "a tables file lists [[table]] entries") }
        for t in tables {
            let name = try t.string("name", "")
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw t.error("name", name.isEmpty ? "is required" : "\"\(name)\" may hold only letters, digits, - and _")
            }
            if spec.entries.contains(where: { $0.name == name }) { throw t.error("name", "\"\(name)\" names two tables") }
            let sweeps = try t.strings("sweeps", [])
            if sweeps.isEmpty { throw t.error("sweeps", "lists the sweep files whose tables are stacked") }
            for f in sweeps where !FileManager.default.fileExists(atPath: f) { throw t.error("sweeps", "\(f): no such file (paths are relative to the working directory)") }
            let labels = try t.strings("labels", sweeps.map { (($0 as NSString).lastPathComponent as NSString).deletingPathExtension })
            if labels.count != sweeps.count { throw t.error("labels", "gives \(labels.count) labels for \(sweeps.count) sweeps") }
            let e = Entry(name: name, from: try t.choice("from", "summary", tableNames), caption: try t.string("caption", ""), sweeps: sweeps, labels: labels,
                          scale: t.has("scale") ? try t.string("scale", "") : nil)
            spec.entries.append(e)
        }
        try r.finish()
        return spec
    }

    /// The stacked tables, from the records under `records` (each sweep's at its scale, or at
    /// `scale` when given). `log` hears which sweeps have no records yet.
    public func tables(records: String, scale override: String? = nil, log: (String) -> Void = { print($0) }) throws -> [Table] {
        try entries.map { e in
            var out = Table(name: e.name, caption: "", header: [], rows: [], sources: [])
            var captions: [String] = []
            var missing: [(label: String, what: String)] = []
            for (file, label) in zip(e.sweeps, e.labels) {
                let s = try Sweep(file: file, scale: override ?? e.scale)
                let sweep = s.spec
                guard FileManager.default.fileExists(atPath: records + "/" + sweep.name + "/records.json") else {
                    missing.append((label, "no records yet (eidetic sweep export \(file)\(sweep.scale.map { " --scale \($0)" } ?? "") --to \(records))"))
                    log("note: \(e.name): \(label): \(missing.last!.what)")
                    continue
                }
                let r = try SweepResults.collect(s, records: records)
                guard let t = SweepTables.tables(r, replicates: sweep.replicates, confidence: sweep.confidence).first(where: { $0.name == e.from }) else {
                    missing.append((label, "no \(e.from) table")); continue
                }
                let header = ["sweep"] + t.header
                if out.header.isEmpty { out.header = header }
                guard out.header == header else {
                    throw SweepError.spec("\(file): its \(e.from) table's columns differ from the first sweep's in table \(e.name) (\(t.header.joined(separator: " | "))); stack tables with the same columns")
                }
                out.rows += t.rows.map { [label] + $0 }
                out.sources += t.sources
                captions.append("\(label): \(t.caption)")
            }
            if out.header.isEmpty { out.header = ["sweep", e.from] }
            for m in missing {
                out.rows.append([m.label, m.what] + Array(repeating: "", count: max(0, out.header.count - 2)))
                out.sources.append([])
            }
            out.caption = ([e.caption].filter { !$0.isEmpty } + captions).joined(separator: ". ")
            return out
        }
    }

    /// Writes the tables (md, tex, csv) and `sources.json` into `folder`; returns the paths.
    @discardableResult
    public func write(records: String, to folder: String, scale: String? = nil, log: (String) -> Void = { print($0) }) throws -> [String] {
        try SweepTables.writeTables(try tables(records: records, scale: scale, log: log), to: folder)
    }
}
