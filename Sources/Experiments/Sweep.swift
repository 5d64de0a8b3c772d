import Data
import Foundation
import Tensor
import TOML
import Training

/// One value an axis takes, kept as TOML so that `--set key=value` round-trips it.
public struct AxisValue: Codable, Equatable, Sendable {
    public var toml: String
    init(_ v: TOMLValue) {
        switch v {
        case .string(let s):
            toml = "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        case .float(let d): toml = TOMLFormat.double(d)
        default: toml = v.description
        }
    }
    /// A short form for job slugs: strings without quotes, floats as written.
    var slug: String {
        var s = toml.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        s = String(s.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_" ? $0 : "_" })
        return String(s.prefix(24))
    }
}

enum TOMLFormat {
    /// The shortest text that reads back as the same Double, TOML-valid ("1e-4" → "0.0001").
    static func double(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d > 0 ? "inf" : "-inf" }
        var s = "\(d)"
        if !s.contains(".") && !s.contains("e") { s += ".0" }
        return s
    }
}

/// A parsed sweep file: a base experiment, fixed overrides, axes (grid, zipped, random),
/// an optional data plan built before any job, and sweep-level evaluations.
///
/// ```toml
/// [sweep]
/// name = "mia16"
/// base = "experiments/tiny-fashion.toml"   # relative to the working directory
/// out = "results/sweeps"                    # the results folder (its sweeps.db is shared)
/// draws = 0                                 # random draws of the random axes
/// seed = 0                                  # seed of the random draws
///
/// [set]                                     # overrides every job gets
/// train.images = 4000
///
/// [plan]                                    # optional: a membership plan for LiRA
/// kind = "membership"
/// pool = 64
/// models = 16
/// seed = 0
///
/// [[axis]]
/// key = "data.plan_model"
/// range = [0, 16]                           # or values = [...]
/// zip = "model"                             # axes with the same zip name vary together
///
/// [[axis]]
/// key = "train.lr"
/// log_uniform = [1e-4, 1e-2]                # random: uniform, log_uniform, or choice
///
/// [lira]                                    # after the jobs: LiRA over the plan's models
/// timesteps = [100]
/// draws = 4
///
/// [inpainting]                              # optional, with [plan]: the inpainting attack (P10)
/// targets = 50                              # pool examples, each completed by an IN and an OUT model
/// count = 64                                # completions per target and model …
/// keep = 10                                 # … the lowest-loss ones kept
/// hidden = "right"                          # left, right, top, bottom
/// steps = 50                                # stochastic DDIM (η = 1) steps; jumps = 0 RePaint resampling
/// rank_timestep = 100                       # the ranking loss's timestep and noise draws
/// rank_draws = 4
///
/// [outliers]                                # optional, with [lira]: outlier score vs LiRA score
/// neighbors = 50                            # mean ℓ2 to this many nearest pool images
/// attack = "online-fixed-variance"          # whose per-example scores are joined
///
/// [tables]                                  # what to tabulate
/// replicates = ["run.seed", "data.plan_model"]
/// confidence = 0.95
/// top_examples = 8                          # report dossiers for the most memorized …
/// examples = [1007]                         # … and for these training examples
///
/// [scale.smoke]                             # optional: `--scale smoke` merges this table
/// set.train.images = 2000                   # over the file (the sweep is then named
/// plan.pool = 32                            # "<name>-smoke", its own folder and jobs)
/// axis."data.plan_model".range = [0, 4]     # replaces that axis's values
/// ```
///
/// A file with `[scale.*]` tables runs only at one of its scales (`--scale NAME`, required);
/// a file without them runs as written.
public struct SweepSpec: Sendable {
    public struct Axis: Sendable {
        public var key: String
        public var values: [AxisValue]
        public var zip: String?
        public var random: Bool
        /// Where the axis is written (for errors).
        public var line = 0
        public var label = ""
    }
    public struct PlanSpec: Codable, Equatable, Sendable {
        public var kind: String
        public var pool: Int
        public var models: Int
        public var seed: UInt64
    }
    public struct LiRASpec: Codable, Equatable, Sendable {
        public var signal: LiRASignal
        public var bootstrap: Int
        /// `[outliers]`: the per-example LiRA scores joined with outlier scores (P9). Nil when
        /// absent, so that the LiRA folder of a sweep without it keeps its name.
        public var outliers: OutlierSpec?
    }
    /// The inpainting attack (paper §5.3; `eidetic eval inpaint --plan`): for each of the
    /// first `targets` pool examples, the `hidden` half completed `count` times by a model that
    /// trained on it (IN) and by one that did not (OUT), the `keep` of lowest loss at
    /// `rankTimestep` kept, scored by their ℓ2 to the true hidden half.
    public struct InpaintSpec: Codable, Equatable, Sendable {
        public var targets: Int
        public var count: Int
        public var keep: Int
        public var hidden: String
        public var steps: Int
        public var jumps: Int
        public var rankTimestep: Int
        public var rankDraws: Int
        public var seed: UInt64
    }
    /// Outlier scores over the plan's pool (mean ℓ2 to the `neighbors` nearest other pool
    /// images; paper-spec §7) against one LiRA attack's per-example scores.
    public struct OutlierSpec: Codable, Equatable, Sendable {
        public var neighbors: Int
        public var attack: String
        /// The attacks a LiRA folder can hold (Evaluation's MembershipAttack raw values).
        public static let attacks = ["global-threshold", "online", "online-fixed-variance", "offline", "offline-fixed-variance"]
    }
    /// The loss signal's settings (mirrors Evaluation's LossSignalConfig without importing it here).
    public struct LiRASignal: Codable, Equatable, Sendable {
        public var timesteps: [Int]
        public var draws: Int
        public var flip: Bool
        public var seed: UInt64
    }

    public var file: String
    public var name: String
    public var base: String
    /// The axis key that varies the base experiment (`values = ["a.toml", "b.toml"]`).
    public static let baseKey = "sweep.base"
    public var out: String
    public var draws: Int
    public var seed: UInt64
    public var fixed: [String]
    /// Where each overridden key was set in the sweep file (for errors in the base config's terms).
    public var origins: [String: TOMLError] = [:]
    public var axes: [Axis]
    public var plan: PlanSpec?
    public var lira: LiRASpec?
    /// `[inpainting]`: the inpainting attack over the plan's models (P10), after the jobs.
    public var inpainting: InpaintSpec?
    /// What to tabulate (`[tables]`): the keys averaged over, the binomial intervals'
    /// confidence, and which training examples get report dossiers.
    public var replicates = ["run.seed", "data.plan_model", "run.name", "data.subset_seed"]
    public var confidence = 0.95
    public var topExamples = 8
    public var examples: [Int] = []
    /// SHA-256 of the sweep file's bytes (for a file with `sweep.extends`, of its bytes and
    /// the hash of the file it extends, so records follow both).
    public var fileHash: String
    /// The `[scale.NAME]` the sweep was loaded at (`--scale`), nil for a file without scales.
    public var scale: String?

    /// The sweep's own folder: `<out>/<name>`.
    public var directory: String { out + "/" + name }
    /// The database shared by every sweep in the results folder.
    public var database: String { out + "/sweeps.db" }
    /// `<dir>/plans/membership-<hash>.json`, the hash over `[plan]`, the base file and the
    /// data overrides, so a changed plan (more models, another pool) is built afresh rather
    /// than an older one reused.
    public var planPath: String? {
        plan.map { p in
            struct Key: Encodable { var plan: PlanSpec; var base: String; var data: [String] }
            let e = JSONEncoder(); e.outputFormatting = [.sortedKeys]
            let key = (try? e.encode(Key(plan: p, base: base, data: fixed.filter { $0.hasPrefix("data.") }.sorted()))) ?? Data()
            return directory + "/plans/membership-\(SHA256.hex([UInt8](key)).prefix(10)).json"
        }
    }

    public static func load(file: String, overrides: [String] = [], scale: String? = nil) throws -> SweepSpec {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw TOMLError(file: file, line: 0, message: "cannot read the sweep file")
        }
        var table = try parseTOML(String(decoding: data, as: UTF8.self), file: file)
        var fileHash = SHA256.hex([UInt8](data))
        try applyExtends(to: &table, hash: &fileHash, file: file, chain: [file])
        try applyScale(scale, to: &table, file: file)
        var overridden = Set<String>()
        for o in overrides { overridden.insert(try table.set(override: o)) }
        let r = ConfigReader(table, file: file, overridden: overridden)
        let s = try r.section("sweep")
        let name = try s.string("name", "")
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }), !name.hasPrefix(".") else {
            throw s.error("name", name.isEmpty ? "is required (the sweep's folder name)" : "\"\(name)\" may hold only letters, digits, '-', '_' and '.'")
        }
        let base = try s.string("base", "")
        if base.isEmpty { throw s.error("base", "is required (the experiment config every job starts from)") }
        if !FileManager.default.fileExists(atPath: base) { throw s.error("base", "\(base): no such file (paths are relative to the working directory)") }
        var spec = SweepSpec(file: file, name: name, base: base, out: try s.string("out", "results/sweeps"),
                             draws: try s.int("draws", 0, min: 0, max: 100_000), seed: UInt64(try s.int("seed", 0, min: 0)),
                             fixed: [], origins: [:], axes: [], plan: nil, lira: nil, fileHash: fileHash)
        if let scale {
            spec.scale = scale
            spec.name = name + "-" + scale
        }

        // [set]: nested tables flatten to dotted keys
        switch r.raw("set") {
        case nil: break
        case .table(let t)?:
            func flatten(_ t: TOMLTable, _ prefix: String) {
                for k in t.keys {
                    if case .table(let sub)? = t[k] { flatten(sub, prefix + k + ".") }
                    else {
                        spec.fixed.append(prefix + k + "=" + AxisValue(t[k]!).toml)
                        spec.origins[prefix + k] = TOMLError(file: file, line: t.line(of: k), message: "set.\(prefix + k)")
                    }
                }
            }
            flatten(t, "")
        case let v?: throw r.error("set", "expected a table of config keys, found \(v.typeName)")
        }

        var randomCount = 0
        for a in try r.tables("axis") {
            let key = try a.string("key", "")
            guard key.split(separator: ".").count >= 2 else { throw a.error("key", key.isEmpty ? "is required (a dotted config key such as run.seed)" : "\"\(key)\" is not a dotted config key such as run.seed") }
            let kinds = ["values", "range", "uniform", "log_uniform", "choice"].filter { a.has($0) }
            guard kinds.count == 1 else {
                throw a.error(kinds.count > 1 ? kinds[1] : "values", kinds.isEmpty ? "give the axis's values: values, range, uniform, log_uniform or choice" : "give one of \(kinds.joined(separator: " and "))")
            }
            if key == SweepSpec.baseKey && !kinds.isEmpty && kinds[0] != "values" { throw a.error(kinds[0], "sweep.base takes values = [files]") }
            var axis = Axis(key: key, values: [], zip: a.has("zip") ? try a.string("zip", "") : nil, random: false, line: a.line(of: "key"), label: a.path)
            switch kinds[0] {
            case "values":
                guard case .array(let vs)? = a.raw("values"), !vs.isEmpty else { throw a.error("values", "must be a non-empty array") }
                axis.values = vs.map(AxisValue.init)
                if key == SweepSpec.baseKey {
                    // the base experiment itself varies (e.g. a DDPM and a GAN on the same data)
                    for v in vs {
                        guard case .string(let f) = v, !f.contains("\""), !f.contains("\\") else { throw a.error("values", "sweep.base values are experiment files (strings without quotes or backslashes)") }
                        if !FileManager.default.fileExists(atPath: f) { throw a.error("values", "\(f): no such file (paths are relative to the working directory)") }
                    }
                }
            case "range":
                let r2 = try a.ints("range", [], maxCount: 3)
                guard r2.count == 2 || r2.count == 3 else { throw a.error("range", "is [start, end] or [start, end, step] (end excluded)") }
                let stepBy = r2.count == 3 ? r2[2] : 1
                guard stepBy > 0, r2[1] > r2[0], (r2[1] - r2[0]) / stepBy <= 100_000 else { throw a.error("range", "\(r2) is empty or too long") }
                axis.values = stride(from: r2[0], to: r2[1], by: stepBy).map { AxisValue(.integer($0)) }
            default:
                axis.random = true
                randomCount += 1
                if axis.zip != nil { throw a.error("zip", "random axes are drawn together already (sweep.draws times); zip applies to listed values") }
                guard spec.draws > 0 else { throw a.error(kinds[0], "is a random axis, but sweep.draws is 0") }
                var stream = RandomStream(key: RandomKey(seed: spec.seed).fold("sweep-axis").fold(UInt64(randomCount)))
                let u = (0..<spec.draws).map { _ in stream.nextUniform() }
                if kinds[0] == "choice" {
                    guard case .array(let vs)? = a.raw("choice"), !vs.isEmpty else { throw a.error("choice", "must be a non-empty array") }
                    axis.values = u.map { AxisValue(vs[min(vs.count - 1, Int($0 * Double(vs.count)))]) }
                } else {
                    let k = kinds[0]
                    guard case .array(let bounds)? = a.raw(k), bounds.count == 2, let lo = number(bounds[0]), let hi = number(bounds[1]), lo < hi, lo.isFinite, hi.isFinite else {
                        throw a.error(k, "is [low, high] with low < high")
                    }
                    if k == "log_uniform" && lo <= 0 { throw a.error(k, "needs low > 0") }
                    axis.values = u.map { x in
                        let v = k == "uniform" ? lo + x * (hi - lo) : exp(log(lo) + x * (log(hi) - log(lo)))
                        return AxisValue(.float(Double(String(format: "%.6g", v))!))
                    }
                }
            }
            try a.finish()
            spec.origins[key] = TOMLError(file: file, line: a.line(of: "key"), message: "\(a.path).key \"\(key)\"")
            if spec.axes.contains(where: { $0.key == key }) { throw a.error("key", "\"\(key)\" is swept by two axes") }
            spec.axes.append(axis)
        }
        if spec.draws > 0 && randomCount == 0 { throw s.error("draws", "is \(spec.draws), but no axis is random (uniform, log_uniform or choice)") }
        // zipped axes must agree in length
        var zipLength: [String: (Int, String)] = [:]
        for a in spec.axes { if let z = a.zip {
            if let (n, other) = zipLength[z], n != a.values.count {
                throw TOMLError(file: file, line: a.line, message: "\(a.label).zip: \"\(z)\" gives \(a.key) \(a.values.count) values but \(other) \(n); zipped axes vary together and must be equally long")
            }
            zipLength[z] = (a.values.count, a.key)
        } }

        if r.has("plan") {
            let p = try r.section("plan")
            let kind = try p.choice("kind", "membership", ["membership"])
            let models = try p.int("models", 16, min: 2, max: 4096)
            if models % 2 != 0 { throw p.error("models", "must be even (each example is in exactly half the models), got \(models)") }
            spec.plan = PlanSpec(kind: kind, pool: try p.int("pool", 0, min: 0, max: 100_000_000), models: models, seed: UInt64(try p.int("seed", 0, min: 0)))
            if spec.fixed.contains(where: { $0.hasPrefix("data.plan=") }) {
                let o = spec.origins["data.plan"]!
                throw TOMLError(file: o.file, line: o.line, message: "\(o.message): is set by [plan] (the sweep builds the plan file)")
            }
        }
        if r.has("lira") {
            guard spec.plan != nil else { throw r.error("lira", "needs a [plan] (LiRA compares models trained with and without each example)") }
            let l = try r.section("lira")
            spec.lira = LiRASpec(signal: LiRASignal(timesteps: try l.ints("timesteps", [100], min: 0, max: 100_000, maxCount: 64), draws: try l.int("draws", 4, min: 1, max: 1024),
                                                    flip: try l.bool("flip", false), seed: UInt64(try l.int("seed", 0, min: 0))),
                                 bootstrap: try l.int("bootstrap", 200, min: 0, max: 100_000))
        }
        if r.has("inpainting") {
            guard let plan = spec.plan else { throw r.error("inpainting", "needs a [plan] (each target is completed by a model with it and one without)") }
            let i = try r.section("inpainting")
            let ip = InpaintSpec(targets: try i.int("targets", 50, min: 1, max: 1_000_000), count: try i.int("count", 64, min: 1, max: 100_000),
                                 keep: try i.int("keep", 10, min: 1, max: 100_000), hidden: try i.choice("hidden", "right", ["left", "right", "top", "bottom"]),
                                 steps: try i.int("steps", 50, min: 1, max: 100_000), jumps: try i.int("jumps", 0, min: 0, max: 1000),
                                 rankTimestep: try i.int("rank_timestep", 100, min: 0, max: 100_000), rankDraws: try i.int("rank_draws", 4, min: 1, max: 1024),
                                 seed: UInt64(try i.int("seed", 0, min: 0)))
            if ip.keep > ip.count { throw i.error("keep", "is \(ip.keep), more than the \(ip.count) completions (inpainting.count)") }
            if plan.pool > 0 && ip.targets > plan.pool { throw i.error("targets", "is \(ip.targets), more than the plan's pool of \(plan.pool)") }
            spec.inpainting = ip
        }
        if r.has("outliers") {
            guard spec.lira != nil else { throw r.error("outliers", "needs a [lira] (outlier scores are joined with LiRA's per-example scores)") }
            let o = try r.section("outliers")
            let n = try o.int("neighbors", 50, min: 1, max: 100_000)
            if let p = spec.plan, p.pool > 0, n >= p.pool { throw o.error("neighbors", "is \(n), but the plan's pool has \(p.pool) examples; it must be smaller") }
            let attack = try o.choice("attack", "online-fixed-variance", OutlierSpec.attacks)
            // leave-one-model-out on a balanced plan leaves models/2 − 1 shadows a side: a
            // fixed variance needs 1, a per-example variance 2 (LiRA.swift, shadowSets)
            let need = attack == "global-threshold" ? 2 : attack.hasSuffix("fixed-variance") ? 4 : 6
            if let p = spec.plan, p.models < need {
                throw o.error("attack", "\(attack) needs a plan of ≥ \(need) models (plan.models = \(p.models) leaves too few shadows per example); use more models or global-threshold")
            }
            spec.lira!.outliers = OutlierSpec(neighbors: n, attack: attack)
        }
        if r.has("tables") {
            let t = try r.section("tables")
            spec.replicates = try t.strings("replicates", spec.replicates)
            spec.confidence = try t.double("confidence", spec.confidence, min: 0.5, max: 0.999999)
            spec.topExamples = try t.int("top_examples", spec.topExamples, min: 0, max: 10_000)
            spec.examples = try t.ints("examples", [], min: 0, maxCount: 10_000)
        }
        try r.finish()
        return spec
    }

    /// Merges `[scale.NAME]` over the file's table and removes the `scale` tables: values
    /// replace values, tables merge key by key, and `axis."KEY"` tables replace fields of the
    /// `[[axis]]` with that key (a new values/range/… replaces the axis's old one).
    static func applyScale(_ scale: String?, to table: inout TOMLTable, file: String) throws {
        guard let raw = table["scale"] else {
            if let scale { throw TOMLError(file: file, line: 0, message: "--scale \(scale): this sweep file has no [scale.*] tables (it runs as written)") }
            return
        }
        guard case .table(let scales) = raw, !scales.keys.isEmpty,
              scales.keys.allSatisfy({ if case .table = scales[$0]! { return true } else { return false } }) else {
            throw TOMLError(file: file, line: table.line(of: "scale"), message: "scale: expected tables [scale.NAME] of keys to change, found \(raw)")
        }
        let names = scales.keys.joined(separator: ", ")
        // a scale names the sweep's folder (<name>-<scale>), so it obeys sweep.name's rule
        if let bad = scales.keys.first(where: { $0.isEmpty || !$0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" } }) {
            throw TOMLError(file: file, line: table.line(of: "scale"), message: "scale.\"\(bad)\": a scale's name may hold only letters, digits, '-' and '_'")
        }
        guard let scale else {
            throw TOMLError(file: file, line: table.line(of: "scale"), message: "this sweep runs at a scale: pass --scale (\(names))")
        }
        guard case .table(let chosen)? = scales[scale] else {
            throw TOMLError(file: file, line: table.line(of: "scale"), message: "--scale \(scale): the file's scales are \(names)")
        }
        table["scale"] = nil
        try merge(chosen, into: &table, what: "scale.\(scale)", file: file)
    }

    /// `[sweep] extends = "OTHER.toml"`: this file is OTHER with this file's keys merged over it,
    /// as a scale merges (values replace values, tables merge key by key — `[scale.NAME]`
    /// tables too — and `axis."KEY"` tables change the fields of OTHER's `[[axis]]` with that
    /// key; a `[[axis]]` array of this file's own replaces OTHER's axes). A protocol's variant
    /// (experiments/paper/32x32/: the same study at 32×32) is then a few lines naming what
    /// differs. OTHER may extend another file in turn; a cycle is refused.
    static func applyExtends(to table: inout TOMLTable, hash: inout String, file: String, chain: [String]) throws {
        guard case .table(var sweep)? = table["sweep"], let raw = sweep["extends"] else { return }
        guard case .string(let parent) = raw, !parent.isEmpty else {
            throw TOMLError(file: file, line: sweep.line(of: "extends"), message: "sweep.extends: expected the path of a sweep file, found \(raw)")
        }
        if chain.contains(parent) {
            throw TOMLError(file: file, line: sweep.line(of: "extends"), message: "sweep.extends: \(parent) extends this file in turn (\((chain + [parent]).joined(separator: " → ")))")
        }
        guard let data = FileManager.default.contents(atPath: parent) else {
            throw TOMLError(file: file, line: sweep.line(of: "extends"), message: "sweep.extends: \(parent): no such file (paths are relative to the working directory)")
        }
        var base = try parseTOML(String(decoding: data, as: UTF8.self), file: parent)
        var parentHash = SHA256.hex([UInt8](data))
        try applyExtends(to: &base, hash: &parentHash, file: parent, chain: chain + [parent])
        sweep["extends"] = nil
        table["sweep"] = .table(sweep)
        try merge(table, into: &base, what: "\(file) (extending \(parent))", file: file, axesMayReplace: true)
        table = base
        hash = SHA256.hex(Array("\(hash) extends \(parentHash)".utf8))
    }

    /// Merges `over` into `base` (a scale or an extending file over the file's table).
    static func merge(_ over: TOMLTable, into base: inout TOMLTable, what: String, file: String, axesMayReplace: Bool = false) throws {
        let kinds = ["values", "range", "uniform", "log_uniform", "choice"]
        func merge(_ over: TOMLTable, into base: inout TOMLTable, path: String) throws {
            for k in over.keys {
                let v = over[k]!
                if path.isEmpty && k == "axis", axesMayReplace, case .array = v {
                    base[k] = v
                } else if path.isEmpty && k == "axis" {
                    guard case .table(let byKey) = v else { throw TOMLError(file: file, line: over.line(of: k), message: "\(what).axis: expected tables axis.\"KEY\" of fields") }
                    guard case .array(var axes)? = base["axis"] else {
                        throw TOMLError(file: file, line: over.line(of: k), message: "\(what).axis: the file has no [[axis]]")
                    }
                    for key in byKey.keys {
                        guard case .table(let fields) = byKey[key]!,
                              let i = axes.firstIndex(where: { if case .table(let t) = $0, t["key"] == .string(key) { return true } else { return false } }),
                              case .table(var axis) = axes[i] else {
                            throw TOMLError(file: file, line: byKey.line(of: key), message: "\(what).axis.\"\(key)\": no [[axis]] has key = \"\(key)\" (or it is not a table of fields)")
                        }
                        if fields.keys.contains(where: kinds.contains) { for kind in kinds { axis[kind] = nil } }
                        for f in fields.keys { axis[f] = fields[f]! }
                        axes[i] = .table(axis)
                    }
                    base["axis"] = .array(axes)
                } else if case .table(let sub) = v, case .table(var into)? = base[k] {
                    try merge(sub, into: &into, path: path + k + ".")
                    base[k] = .table(into)
                } else {
                    base[k] = v
                }
            }
        }
        try merge(over, into: &base, path: "")
    }

    static func number(_ v: TOMLValue) -> Double? {
        switch v { case .integer(let i): return Double(i); case .float(let d): return d; default: return nil }
    }

    /// The jobs: the product over zip groups (an axis without `zip` is its own group) and the
    /// random draws (all random axes together, `draws` points), in a fixed order.
    public func jobs() -> [[(key: String, value: AxisValue)]] {
        var groups: [[[(key: String, value: AxisValue)]]] = []
        var seen: [String: Int] = [:]
        var randomGroup: Int?
        for a in axes {
            let points = a.values.map { [(key: a.key, value: $0)] }
            let g: Int?
            if a.random { g = randomGroup } else if let z = a.zip { g = seen[z] } else { g = nil }
            if let g {
                groups[g] = zip(groups[g], points).map { $0 + $1 }
            } else {
                groups.append(points)
                if a.random { randomGroup = groups.count - 1 } else if let z = a.zip { seen[z] = groups.count - 1 }
            }
        }
        var out: [[(key: String, value: AxisValue)]] = [[]]
        for g in groups { out = out.flatMap { prefix in g.map { prefix + $0 } } }
        return out
    }
}

