import Data
import Foundation
import XCTest

/// Every paper protocol (experiments/paper/P1…P13) at its `smoke` scale through the real
/// binary: the sweep runs to the end, and `eidetic tables` regenerates its tables and figures
/// byte for byte from the run files. CI has no CIFAR-10, so the runs read a **stand-in** at the
/// path the protocols name (`datasets/cifar10-16.h5`): the embedded Fashion-MNIST images,
/// tinted per class to three channels and shrunk to 16×16. The stand-in tests the pipeline,
/// never the science; results/paper/ holds the real-CIFAR smoke and full runs.
final class PaperProtocolTests: XCTestCase {
    var root = ""
    override func tearDown() { if !root.isEmpty { try? FileManager.default.removeItem(atPath: root) } }

    /// The embedded Fashion-MNIST (train and test splits) as a CIFAR-shaped set (3×16×16, 10 classes).
    static func writeStandIn(to path: String, size: Int = 16) throws {
        let file = try DatasetFile(BadInputTests.repo + "/datasets/fashion-mnist-2k.h5")
        func tinted(_ fm: ImageSet) -> ImageSet {
            let (h, w) = (fm.height, fm.width)
            var rgb = [UInt8](repeating: 0, count: fm.count * 3 * h * w)
            for i in 0..<fm.count {
                let l = fm.labels[i]
                let tint = [0.5 + 0.05 * Double(l), 1.0 - 0.04 * Double(l), 0.6 + 0.03 * Double(9 - l)]
                for c in 0..<3 { for p in 0..<(h * w) {
                    rgb[(i * 3 + c) * h * w + p] = UInt8(min(255, (Double(fm.images[i * h * w + p]) * tint[c]).rounded()))
                } }
            }
            let set = ImageSet(images: rgb, labels: fm.labels, channels: 3, height: h, width: w, classNames: fm.classNames)
            return h == size ? set : set.downsampled(by: h / size)
        }
        try DatasetFile.write([("train", tinted(try file.load("train"))), ("test", tinted(try file.load("test")))],
                              attributes: ["source": .string("stand-in for CIFAR-10 in tests: embedded Fashion-MNIST, tinted, \(size)×\(size)")], to: path)
    }

    /// A scratch working directory (`root`) with the paper's sweep files and the stand-in at
    /// the path the protocols name (`datasets/cifar10-<size>.h5`).
    func makeRoot(standIn size: Int) throws {
        let fm = FileManager.default
        root = NSTemporaryDirectory() + "paper\(size)-\(UUID().uuidString)"
        try fm.createDirectory(atPath: root + "/datasets", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/experiments", withIntermediateDirectories: true)
        try fm.copyItem(atPath: BadInputTests.repo + "/experiments/paper", toPath: root + "/experiments/paper")
        try Self.writeStandIn(to: root + "/datasets/cifar10-\(size).h5", size: size)
    }

    /// The 32×32 variants (experiments/paper/32x32/, paper-spec §11.1's resolution for final
    /// runs): one per protocol, each extending it with the 32×32 models. Every variant plans at
    /// every scale of its protocol (each job's config checked), and P3 (the 32×32 DDPM and GAN,
    /// with quality) and P12 (4 × 4 tiles of 8×8) run at smoke to their tables on a 32×32 stand-in.
    func testEvery32x32VariantPlansAndTwoRunAtSmokeScale() throws {
        let fm = FileManager.default
        try makeRoot(standIn: 32)
        let protocols = try fm.contentsOfDirectory(atPath: root + "/experiments/paper").filter { $0.hasPrefix("P") && $0.hasSuffix(".toml") }.sorted()
        let variants = try fm.contentsOfDirectory(atPath: root + "/experiments/paper/32x32").filter { $0.hasSuffix(".toml") }.sorted()
        XCTAssertEqual(variants, protocols, "one 32×32 variant per protocol, named as it")
        for v in variants {
            let file = "experiments/paper/32x32/" + v
            let text = try String(contentsOfFile: root + "/" + file, encoding: .utf8)
            XCTAssertTrue(text.contains("extends = \"experiments/paper/\(v)\""), v)
            let scales = try String(contentsOfFile: root + "/experiments/paper/" + v, encoding: .utf8).split(separator: "\n")
                .filter { $0.hasPrefix("[scale.") }.map { String($0.dropFirst(7).prefix { $0 != "]" }) }
            XCTAssertEqual(Set(scales), ["smoke", "full", "night"], v)
            for scale in scales {
                let r = Binary.run(["sweep", "plan", file, "--scale", scale], cwd: root)
                XCTAssertEqual(r.status, 0, "\(v) --scale \(scale): \(r.stdout.suffix(800)) \(r.stderr)")
                XCTAssertTrue(r.stdout.contains("-32-\(scale)/runs"), "\(v): the variant's own folder\n\(r.stdout)")
            }
        }
        for v in ["P3-ddpm-vs-gan.toml", "P12-cliques.toml"] {
            let file = "experiments/paper/32x32/" + v
            let r = Binary.run(["sweep", "run", file, "--scale", "smoke", "--workers", "2", "--threads", "1"], cwd: root, timeout: 600)
            XCTAssertEqual(r.status, 0, "\(v): \(r.stdout.suffix(1500)) \(r.stderr)")
            let name = v.hasPrefix("P3") ? "p3-ddpm-vs-gan-32-smoke" : "p12-cliques-32-smoke"
            let tables = root + "/results/sweeps/\(name)/tables"
            let summary = try String(contentsOfFile: tables + "/summary.md", encoding: .utf8)
            XCTAssertTrue(summary.contains("Sweep \(name)") && summary.contains("non-member baseline"), summary)
            // every job trained on the 32×32 file with a 32×32 model
            let runs = try fm.contentsOfDirectory(atPath: root + "/results/sweeps/\(name)/runs")
            XCTAssertEqual(runs.count, v.hasPrefix("P3") ? 2 : 1, "\(runs)")
            for run in runs {
                let config = try String(contentsOfFile: root + "/results/sweeps/\(name)/runs/\(run)/config.resolved.json", encoding: .utf8)
                XCTAssertTrue(config.contains("cifar10-32.h5") && config.replacingOccurrences(of: " ", with: "").contains("\"imageSize\":32"), "\(run): \(config.prefix(1500))")
            }
            if v.hasPrefix("P3") { XCTAssertTrue(summary.contains("FCD (real-vs-real floor; pixel noise)"), summary) }
            if v.hasPrefix("P12") {
                XCTAssertTrue(summary.contains("clique filter") && summary.contains("on the twin's generations") && summary.contains(" chosen on the twin"), summary)
                XCTAssertTrue(fm.fileExists(atPath: tables + "/clique-calibration.md"))
            }
            let before = FolderSnapshot(tables)
            XCTAssertEqual(Binary.run(["tables", file, "--scale", "smoke"], cwd: root).status, 0)
            XCTAssertEqual(FolderSnapshot(tables), before, "\(v): eidetic tables must regenerate the same bytes")
        }
    }

    func testEveryProtocolRunsAtSmokeScaleAndItsTablesRegenerate() throws {
        let fm = FileManager.default
        try makeRoot(standIn: 16)
        let protocols = try fm.contentsOfDirectory(atPath: root + "/experiments/paper").filter { $0.hasPrefix("P") && $0.hasSuffix(".toml") }
            .sorted { Int($0.dropFirst().prefix { $0.isNumber })! < Int($1.dropFirst().prefix { $0.isNumber })! }
        XCTAssertEqual(protocols.count, 13, "\(protocols)")   // paper-spec's P1–P12, and P13 (model size)
        for (n, p) in protocols.enumerated() {
            XCTAssertTrue(p.hasPrefix("P\(n + 1)-"), p)
            let file = "experiments/paper/" + p
            let t0 = Date()
            let r = Binary.run(["sweep", "run", file, "--scale", "smoke", "--workers", "2", "--threads", "1"], cwd: root, timeout: 600)
            XCTAssertEqual(r.status, 0, "\(p): \(r.stdout.suffix(1500)) \(r.stderr)")
            let name = try XCTUnwrap(r.stdout.split(separator: "\n").first { $0.contains(" jobs, ") }?.split(separator: ":").first.map(String.init), r.stdout)
            XCTAssertTrue(name.hasSuffix("-smoke"), name)
            let tables = root + "/results/sweeps/\(name)/tables"
            let before = FolderSnapshot(tables)
            XCTAssertFalse(before.files.isEmpty, "\(p): no tables")
            let again = Binary.run(["tables", file, "--scale", "smoke"], cwd: root)
            XCTAssertEqual(again.status, 0, "\(p): \(again.stderr)")
            XCTAssertEqual(FolderSnapshot(tables), before, "\(p): eidetic tables must regenerate the same bytes")
            let summary = try String(contentsOfFile: tables + "/summary.md", encoding: .utf8)
            if !["P4-", "P9-", "P10-"].contains(where: p.hasPrefix) {
                XCTAssertTrue(summary.contains("non-member baseline"), "\(p): extraction without its baseline\n\(summary)")
            }
            if p.hasPrefix("P4-") || p.hasPrefix("P9-") { XCTAssertTrue(fm.fileExists(atPath: tables + "/lira.md"), p) }
            if p.hasPrefix("P10-") {
                // the inpainting attack's paired IN-vs-OUT row over the 4 smoke targets
                let i = try String(contentsOfFile: tables + "/inpainting.md", encoding: .utf8)
                let row = try XCTUnwrap(i.split(separator: "\n").first { $0.hasPrefix("| 4 |") }, i)
                let closer = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }[3]
                XCTAssertTrue(closer.range(of: #"^[0-4]/4 = "#, options: .regularExpression) != nil, closer)
            }
            if p.hasPrefix("P9-") {
                // the outlier join: one row per LiRA quantity, ρ in [−1, 1] inside its interval, and the figure
                let o = try String(contentsOfFile: tables + "/outliers.md", encoding: .utf8)
                let rows = o.split(separator: "\n").filter { $0.hasPrefix("| online-fixed-variance score") }
                XCTAssertEqual(rows.count, 2, o)
                for row in rows {
                    let cell = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }[2]
                    let nums = cell.replacingOccurrences(of: "[", with: " ").replacingOccurrences(of: "]", with: " ").replacingOccurrences(of: ",", with: " ")
                        .split(separator: " ").compactMap { Double($0) }
                    XCTAssertEqual(nums.count, 3, cell)
                    if nums.count == 3 { XCTAssertTrue(-1 <= nums[1] && nums[1] <= nums[0] && nums[0] <= nums[2] && nums[2] <= 1, cell) }
                }
                XCTAssertTrue(fm.fileExists(atPath: tables + "/outliers.svg"))
            }
            if p.hasPrefix("P4-") {
                // LiRA at each of the six timesteps, every attack: both views of 2 draws, the
                // unflipped draws alone, and one query (with and without flip / multi-noise)
                let v = try String(contentsOfFile: tables + "/lira-timesteps.md", encoding: .utf8)
                for t in [10, 50, 100, 200, 400, 700] {
                    for q in ["4 averaged (2 draws × 2 views)", "2 averaged (unflipped)", "1"] {
                        XCTAssertTrue(v.contains("| \(t) | \(q) | online-fixed-variance |"), "\(t), \(q): \(v)")
                    }
                }
                XCTAssertTrue(fm.fileExists(atPath: tables + "/lira-timesteps.svg"))
                // the LiRA summary names the build that computed it, and its table says so
                let lira = try String(contentsOfFile: tables + "/lira.md", encoding: .utf8)
                XCTAssertTrue(lira.contains("; computed by 0.") && lira.contains("(git "), lira)
            }
            if p.hasPrefix("P11-") {
                XCTAssertTrue(summary.contains("accountant ε") && summary.contains("not private"), summary)
                // the one-run audit on the audit plan's canaries, for every setting (private or not)
                XCTAssertTrue(summary.contains("audited ε ≥"), summary)
                XCTAssertEqual(summary.split(separator: "\n").filter { $0.contains(" at δ = ") && $0.contains("; AUC ") }.count, 3, summary)
            }
            if ["P3-", "P5-", "P11-"].contains(where: p.hasPrefix) {
                // sample quality beside memorization: a number in every row
                XCTAssertTrue(summary.contains("FCD (real-vs-real floor; pixel noise)"), "\(p): no quality column\n\(summary)")
                let rows = summary.split(separator: "\n").filter { $0.hasPrefix("| ") }.dropFirst()
                XCTAssertTrue(!rows.isEmpty && rows.allSatisfy { !$0.hasSuffix("| n/a | n/a |") }, summary)
            }
            if p.hasPrefix("P13-") {
                // memorization against the swept model width, one point per width
                XCTAssertTrue(fm.fileExists(atPath: tables + "/memorization-vs-model_base_channels.svg"), p)
                XCTAssertEqual(summary.split(separator: "\n").filter { $0.hasPrefix("| 8 |") || $0.hasPrefix("| 16 |") || $0.hasPrefix("| 32 |") }.count, 3, summary)
            }
            if p.hasPrefix("P2-") || p.hasPrefix("P12-") {
                // the oracle's curve and the clique filter's on the same prefixes, in one figure
                let svg = try String(contentsOfFile: tables + "/extraction-curve.svg", encoding: .utf8)
                XCTAssertTrue(svg.contains("clique filter (verified, distinct)"), p)
                if p.hasPrefix("P2-") { XCTAssertTrue(svg.contains("non-member twin (baseline)"), p) }
            }
            if p.hasPrefix("P12-") {
                // the filter on this model's generations and, as its false-positive calibration, on the twin's
                XCTAssertTrue(summary.contains("clique filter") && summary.contains("on the twin's generations") && summary.contains("; twin "), summary)
                // δ chosen on the twin: the grid it tried, one row marked as the choice
                XCTAssertTrue(summary.contains(" chosen on the twin"), summary)
                let cal = try String(contentsOfFile: tables + "/clique-calibration.md", encoding: .utf8)
                XCTAssertEqual(cal.split(separator: "\n").filter { $0.hasPrefix("| ") }.count, 1 + 29, cal)
                XCTAssertEqual(cal.split(separator: "\n").filter { $0.contains("← δ") }.count, 1, cal)
            }
            if p.hasPrefix("P7-") || p.hasPrefix("P8-") {
                // canaries by copy count: 2 with 1 copy, 2 with 4 (the smoke plan), each row with its twin's count and the attack
                let d = try String(contentsOfFile: tables + "/duplicates.md", encoding: .utf8)
                let rows = d.split(separator: "\n").filter { $0.hasPrefix("| all |") }
                XCTAssertEqual(rows.map { $0.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }[1...2].joined(separator: ",") }, ["1,2", "4,2"], d)
                XCTAssertTrue(rows.allSatisfy { $0.contains("/2") && !$0.contains("n/a") }, d)
                XCTAssertTrue(fm.fileExists(atPath: tables + "/duplicates.svg"), p)
            }
            // the compact records (results/paper/) rebuild the same tables with the run folders gone
            if ["P4-", "P7-", "P8-", "P9-", "P10-", "P11-"].contains(where: p.hasPrefix) {
                let exp = Binary.run(["sweep", "export", file, "--scale", "smoke", "--to", "records"], cwd: root)
                XCTAssertEqual(exp.status, 0, exp.stderr)
                // existing records are replaced only when asked
                let again = Binary.run(["sweep", "export", file, "--scale", "smoke", "--to", "records"], cwd: root)
                XCTAssertNotEqual(again.status, 0)
                XCTAssertTrue(again.stderr.contains("exists (records of this sweep); pass --force"), again.stderr)
                XCTAssertEqual(Binary.run(["sweep", "export", file, "--scale", "smoke", "--to", "records", "--force"], cwd: root).status, 0)
                try fm.removeItem(atPath: root + "/results/sweeps/\(name)/runs")
                let exported = FolderSnapshot(root + "/records/\(name)/tables")
                XCTAssertEqual(Binary.run(["tables", file, "--scale", "smoke", "--records", "records"], cwd: root).status, 0)
                XCTAssertEqual(FolderSnapshot(root + "/records/\(name)/tables"), exported)
                let noRecords = Binary.run(["tables", file, "--scale", "smoke", "--records", "nowhere"], cwd: root)
                XCTAssertNotEqual(noRecords.status, 0)
                XCTAssertTrue(noRecords.stderr.contains("nowhere/\(name)/records.json: no records of sweep"), noRecords.stderr)
                let strip = { (t: String) in t.split(separator: "\n").filter { !$0.contains("results/sweeps") && !$0.contains("records/") }.joined(separator: "\n") }
                for f in ["summary.csv", "lira.md", "duplicates.md", "outliers.md", "inpainting.md"] where fm.fileExists(atPath: tables + "/" + f) {
                    XCTAssertEqual(strip(try String(contentsOfFile: root + "/records/\(name)/tables/" + f, encoding: .utf8)),
                                   strip(try String(contentsOfFile: tables + "/" + f, encoding: .utf8)), "\(p) \(f): the records give the sweep's numbers")
                }
                let sizes = fm.enumerator(atPath: root + "/records/\(name)")!.compactMap { $0 as? String }.filter { !$0.hasPrefix("tables") }
                    .compactMap { (try? fm.attributesOfItem(atPath: root + "/records/\(name)/" + $0)[.size] as? Int) ?? nil }
                XCTAssertLessThan(sizes.reduce(0, +), 2_000_000, "records stay compact")
            }
            print(String(format: "%@ smoke: %.1f s", p, Date().timeIntervalSince(t0)))
        }
        // the tables file stacks P7's and P8's exported duplicates tables (deduplication before/after)
        let stacked = Binary.run(["tables", "experiments/paper/tables.toml", "--scale", "smoke", "--records", "records"], cwd: root)
        XCTAssertEqual(stacked.status, 0, stacked.stderr)
        let dedup = try String(contentsOfFile: root + "/records/tables/deduplication.md", encoding: .utf8)
        for label in ["duplicated (P7, 16×16)", "deduplicated (P8, 16×16)"] {
            XCTAssertEqual(dedup.split(separator: "\n").filter { $0.hasPrefix("| \(label) | all |") }.count, 2, dedup)
        }
        // every table the paper's issue lists comes out of the one tables file: with numbers
        // from the protocols exported above, one "no records yet" row from the others
        let exportedTables: Set = ["membership-inference", "membership-inference-by-timestep", "duplicates", "outliers", "deduplication",
                                   "deduplication-summary", "dp-sgd"]
        for name in ["ddpm-vs-gan", "extraction-vs-generations", "memorization-vs-training-set-size", "memorization-vs-model-size"] + exportedTables.sorted() {
            let md = (try? String(contentsOfFile: root + "/records/tables/\(name).md", encoding: .utf8)) ?? ""
            XCTAssertTrue(md.contains("| P") || md.contains("| duplicated (P7, 16×16) |"), "\(name): \(md)")
            XCTAssertEqual(md.contains("no records yet"), !exportedTables.contains(name), "\(name): \(md)")
        }
        let first = FolderSnapshot(root + "/records/tables")
        XCTAssertEqual(Binary.run(["tables", "experiments/paper/tables.toml", "--scale", "smoke", "--records", "records"], cwd: root).status, 0)
        XCTAssertEqual(FolderSnapshot(root + "/records/tables"), first, "the tables file regenerates the same bytes")
        // sweeps not exported at that scale get a row saying so, not a silent gap
        try fm.createDirectory(atPath: root + "/empty", withIntermediateDirectories: true)
        let none = Binary.run(["tables", "experiments/paper/tables.toml", "--scale", "smoke", "--records", "empty"], cwd: root)
        XCTAssertEqual(none.status, 0, none.stderr)
        XCTAssertTrue(try String(contentsOfFile: root + "/empty/tables/deduplication.md", encoding: .utf8).contains("| duplicated (P7, 16×16) | no records yet (eidetic sweep export"))
        let noRecordsFlag = Binary.run(["tables", "experiments/paper/tables.toml"], cwd: root)
        XCTAssertNotEqual(noRecordsFlag.status, 0)
        XCTAssertTrue(noRecordsFlag.stderr.contains("is a tables file") && noRecordsFlag.stderr.contains("--records"), noRecordsFlag.stderr)
    }
}
