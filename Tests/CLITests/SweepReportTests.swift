import Foundation
import XCTest

/// A LiRA membership study from one sweep file to its report with one command; the tables
/// are byte-identical when rebuilt from the same files and trace every row to its runs; the
/// report opens in a real browser (headless Chromium) with every image loaded.
final class SweepReportTests: XCTestCase {
    var root = ""
    override func tearDown() { if !root.isEmpty { try? FileManager.default.removeItem(atPath: root) } }

    static var chromium: String? {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs headless Chromium on a page; returns (stdout, stderr).
    func browse(_ args: [String], page: String) -> (String, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: SweepReportTests.chromium!)
        p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--allow-file-access-from-files",
                       "--virtual-time-budget=5000", "--user-data-dir=" + root + "/chrome-profile"] + args + ["file://" + page]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try? p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    func testLiRAStudyFromOneFileToItsReport() throws {
        root = makeRunFixture("report", config: SweepTests.experiment, configName: "micro.toml")
        try SlurmTests.sweep.write(toFile: root + "/sweep.toml", atomically: true, encoding: .utf8)
        let r = Binary.run(["sweep", "run", "sweep.toml"], cwd: root, timeout: 600)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("lira: 4 models"), r.stdout)
        let dir = root + "/results/sweeps/lira4"
        let index = dir + "/report/index.html"
        XCTAssertTrue(FileManager.default.fileExists(atPath: index), r.stdout)

        // tables: the same bytes when rebuilt; every row traced to its runs
        let names = ["summary", "runs", "lira"].flatMap { n in ["md", "tex", "csv"].map { "\(n).\($0)" } } + ["sources.json", "roc.svg", "extraction-curve.svg"]
        let before = names.map { FileManager.default.contents(atPath: dir + "/tables/" + $0) }
        XCTAssertTrue(before.allSatisfy { $0 != nil }, "missing: \(zip(names, before).filter { $0.1 == nil }.map(\.0))")
        let t = Binary.run(["tables", "sweep.toml"], cwd: root)
        XCTAssertEqual(t.status, 0, t.stderr)
        for (n, b) in zip(names, before) { XCTAssertEqual(FileManager.default.contents(atPath: dir + "/tables/" + n), b, "\(n) changed when rebuilt") }
        let sources = try JSONSerialization.jsonObject(with: FileManager.default.contents(atPath: dir + "/tables/sources.json")!) as! [String: [[String]]]
        XCTAssertEqual(sources["runs"]?.count, 4)
        XCTAssertEqual(Set(sources["summary"]?.first ?? []).count, 4, "the summary row comes from the 4 runs")
        for run in sources["runs"]!.joined() { XCTAssertTrue(FileManager.default.fileExists(atPath: root + "/" + run + "/experiment.json"), run) }
        let lira = String(decoding: FileManager.default.contents(atPath: dir + "/tables/lira.md")!, as: UTF8.self)
        XCTAssertTrue(lira.contains("online-fixed-variance"), lira)
        let csv = String(decoding: FileManager.default.contents(atPath: dir + "/tables/summary.csv")!, as: UTF8.self)
        XCTAssertTrue(csv.hasPrefix("setting,runs,final loss,"), csv)

        // the page in a browser
        guard SweepReportTests.chromium != nil else {
            throw XCTSkip("report browser check skipped: no chromium (make test installs Debian's chromium)")
        }
        let html = try String(contentsOfFile: index, encoding: .utf8)
        let imgs = html.components(separatedBy: "<img ").count - 1
        XCTAssertGreaterThanOrEqual(imgs, 8, "4 pair grids and the top examples")
        let (dom, err) = browse(["--dump-dom"], page: index)
        XCTAssertTrue(dom.contains("data-images=\"\(imgs)/\(imgs)\""), "not every image loaded: \(dom.components(separatedBy: "data-images=").dropFirst().first?.prefix(20) ?? "no marker")")
        XCTAssertFalse(err.contains("ERR_FILE_NOT_FOUND"), err)
        XCTAssertTrue(dom.contains("Membership inference over 4 models"), "the LiRA table is missing")
        XCTAssertTrue(dom.contains("<svg"), "the figures are missing")
        let shot = root + "/report.png"
        _ = browse(["--window-size=1280,2000", "--screenshot=" + shot], page: index)
        let png = FileManager.default.contents(atPath: shot) ?? Data()
        XCTAssertGreaterThan(png.count, 20_000, "the screenshot is blank or missing")
        // a dossier: the image, the per-model table, and its images load
        let dossiers = try FileManager.default.contentsOfDirectory(atPath: dir + "/report/examples")
        XCTAssertFalse(dossiers.isEmpty)
        let page = dir + "/report/examples/" + dossiers.sorted()[0]
        let d = try String(contentsOfFile: page, encoding: .utf8)
        let dimgs = d.components(separatedBy: "<img ").count - 1
        let (ddom, _) = browse(["--dump-dom"], page: page)
        XCTAssertTrue(ddom.contains("data-images=\"\(dimgs)/\(dimgs)\""), "dossier images did not load")
        XCTAssertTrue(ddom.contains("In every model of the sweep"))
        XCTAssertGreaterThanOrEqual(ddom.components(separatedBy: "<td>plan_model").count - 1, 4, "one row per model")
    }
}
