import Foundation
import XCTest

/// `eidetic run` for both model families: every stage runs once, a second run finds them
/// all current, and a changed evaluation setting reruns only that stage.
final class ExperimentRunTests: XCTestCase {
    var root = ""
    override func tearDown() { if !root.isEmpty { try? FileManager.default.removeItem(atPath: root) } }

    static let gan = """
    [run]
    name = "gan"
    [data]
    file = "data.h5"
    subset = 32
    [model]
    kind = "dcgan"
    preset = ""
    image_channels = 1
    image_size = 32
    latent_dim = 16
    stages = 3
    generator_channels = 32
    discriminator_channels = 8
    [train]
    batch_size = 16
    images = 320
    checkpoint_every = 10
    log_every = 10
    [sample]
    count = 32
    [eval.membership]
    enabled = true
    non_members = 32
    """

    func stages(_ out: String) -> [String: String] {
        var d: [String: String] = [:]
        for l in out.split(separator: "\n") where l.hasPrefix("stage ") {
            let parts = l.dropFirst(6).split(separator: ":", maxSplits: 1)
            d[String(parts[0])] = parts[1].split(separator: " ").first.map(String.init)
        }
        return d
    }

    /// `[plan]`: a duplication plan built once before training, keyed by its settings.
    func testPlanStageBuildsTheDuplicationPlanOnce() throws {
        root = makeRunFixture("expplan", config: SweepTests.experiment.replacingOccurrences(of: "subset = 16\n", with: "")
            + "\n[plan]\nkind = \"duplicates\"\nsize = 16\ncopies = [4]\ncanaries = [2]\n", configName: "dup.toml")
        let first = Binary.run(["run", "dup.toml", "--threads", "1"], cwd: root)
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertEqual(stages(first.stdout)["plan"], "ran", first.stdout)
        XCTAssertTrue(first.stdout.contains("duplication plan results/runs/plans/duplicates-"), first.stdout)
        XCTAssertTrue(first.stdout.contains("(22 examples)"), "16 + 2 canaries × 3 more copies: \(first.stdout)")
        let again = Binary.run(["run", "dup.toml", "--threads", "1"], cwd: root)
        XCTAssertEqual(stages(again.stdout)["plan"], "current", again.stdout)
        XCTAssertEqual(stages(again.stdout)["train"], "current", again.stdout)
        // another canary count: another plan file, another run
        let other = Binary.run(["run", "dup.toml", "--threads", "1", "--set", "plan.canaries=[3]"], cwd: root)
        XCTAssertEqual(stages(other.stdout)["plan"], "ran", other.stdout)
        XCTAssertEqual(stages(other.stdout)["train"], "ran", other.stdout)
        // deduplicated (P8): the same duplication plan, one image per group of copies
        let dedup = Binary.run(["run", "dup.toml", "--threads", "1", "--set", "plan.dedup_threshold=0.0"], cwd: root)
        XCTAssertEqual(dedup.status, 0, dedup.stderr)
        XCTAssertTrue(dedup.stdout.contains("dedup plan results/runs/plans/dedup-") && dedup.stdout.contains("(16 examples)"), dedup.stdout)
        let plans = try FileManager.default.contentsOfDirectory(atPath: root + "/results/runs/plans")
        XCTAssertTrue(plans.contains { $0.hasPrefix("dedup-") && $0.hasSuffix("-source.json") }, "\(plans)")
    }

    func testStagesRunOnceThenAreCurrentForBothFamilies() throws {
        root = makeRunFixture("exprun", config: ExperimentRunTests.gan, configName: "gan.toml")
        try SweepTests.experiment.write(toFile: root + "/unet.toml", atomically: true, encoding: .utf8)
        for (config, kind) in [("gan.toml", "dcgan"), ("unet.toml", "unet")] {
            let first = Binary.run(["run", config, "--threads", "1"], cwd: root)
            XCTAssertEqual(first.status, 0, first.stderr)
            XCTAssertEqual(stages(first.stdout), ["train": "ran", "sample": "ran", "extraction": "ran", "membership": "ran"], first.stdout)
            let again = Binary.run(["run", config, "--threads", "1"], cwd: root)
            XCTAssertEqual(stages(again.stdout), ["train": "current", "sample": "current", "extraction": "current", "membership": "current"], again.stdout)
            // another extraction threshold: only that stage runs again
            let other = Binary.run(["run", config, "--threads", "1", "--set", "eval.extraction.l2_threshold=0.1"], cwd: root)
            XCTAssertEqual(stages(other.stdout), ["train": "current", "sample": "current", "extraction": "ran", "membership": "current"], other.stdout)
            let dir = try XCTUnwrap(first.stdout.split(separator: "\n").last { $0.hasPrefix("run directory: ") }).dropFirst(15)
            let s = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/" + dir + "/experiment.json"))) as! [String: Any]
            XCTAssertEqual(s["kind"] as? String, kind)
            XCTAssertNotNil(s["membership"] as? [String: Any]); XCTAssertNotNil(s["extraction"] as? [String: Any])
            XCTAssertEqual((s["dataSHA256"] as? String)?.count, 64)
            XCTAssertTrue((s["codeVersion"] as? String)?.hasPrefix("0.13.0") == true)
        }
    }

    /// `[eval.baseline]`: a twin trained as long on a disjoint set of the same size and class
    /// counts (and the same duplicate structure), its generations scored against this run's
    /// training set; every twin stage runs once and is current afterwards.
    func testBaselineTwinIsDisjointSameSizeAndScoredAgainstTheRun() throws {
        root = makeRunFixture("expbase", config: SweepTests.experiment.replacingOccurrences(of: "subset = 16\n", with: "")
            + "\n[plan]\nkind = \"duplicates\"\nsize = 16\ncopies = [3]\ncanaries = [2]\n[eval.baseline]\nenabled = true\n", configName: "base.toml")
        let first = Binary.run(["run", "base.toml", "--threads", "1"], cwd: root)
        XCTAssertEqual(first.status, 0, first.stderr)
        for s in ["twin-plan", "twin-train", "twin-sample", "baseline"] { XCTAssertEqual(stages(first.stdout)[s], "ran", first.stdout) }
        let dir = root + "/" + (try XCTUnwrap(first.stdout.split(separator: "\n").last { $0.hasPrefix("run directory: ") }).dropFirst(15))
        // the twin's list: same length, no shared example, same classes, same copies
        let env = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/twin-plan.json"))) as! [String: Any]
        let plan = env["plan"] as! [String: Any]
        let (orig, twins, list) = (plan["original"] as! [Int], plan["twins"] as! [Int], plan["trainingIndices"] as! [Int])
        XCTAssertEqual(orig.count, 16); XCTAssertEqual(list.count, 20)
        XCTAssertTrue(Set(orig).isDisjoint(with: twins)); XCTAssertEqual(Set(twins).count, 16)
        XCTAssertEqual(Dictionary(list.map { ($0, 1) }, uniquingKeysWith: +).values.sorted(), [1] * 14 + [3, 3])
        let s = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/experiment.json"))) as! [String: Any]
        let x = try XCTUnwrap(s["extraction"] as? [String: Any]), b = try XCTUnwrap(s["baseline"] as? [String: Any])
        XCTAssertEqual(b["trainingImages"] as? Int, 16, "scored against this run's 16 distinct images")
        XCTAssertEqual(b["generations"] as? Int, x["generations"] as? Int)
        XCTAssertTrue((b["folder"] as? String)?.contains("/twin/eval/baseline-") == true, "\(b)")
        // the baseline's nearest images are this run's training images, never the twin's
        let twinLog = try String(contentsOfFile: dir + "/twin/log.txt", encoding: .utf8)
        XCTAssertTrue(twinLog.contains("twin plan") && twinLog.contains("(20 examples)"), twinLog)
        let again = Binary.run(["run", "base.toml", "--threads", "1"], cwd: root)
        for s in ["train", "twin-plan", "twin-train", "twin-sample", "baseline"] { XCTAssertEqual(stages(again.stdout)[s], "current", again.stdout) }
        // a baseline needs the extraction it is the baseline of
        let bad = Binary.run(["run", "base.toml", "--set", "eval.extraction.enabled=false"], cwd: root)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("eval.baseline.enabled") || bad.stderr.contains("baseline"), bad.stderr)
    }

    /// `[eval.quality]`: FCD/KCD of the generations beside the extraction count. The feature
    /// classifier is trained once at the shared default path even when two jobs ask for it at
    /// the same time (one trains, the other waits or finds it), and the stage is then current.
    func testQualityStageTrainsTheClassifierOnceForConcurrentJobs() throws {
        root = makeRunFixture("expqual", config: SweepTests.experiment + "\n[eval.quality]\nenabled = true\nepochs = 1\n", configName: "q.toml")
        func start(_ args: [String]) throws -> (Process, Pipe) {
            let p = Process(), out = Pipe()
            p.executableURL = URL(fileURLWithPath: Binary.path)
            p.arguments = args; p.currentDirectoryURL = URL(fileURLWithPath: root)
            p.standardOutput = out; p.standardError = out
            try p.run()
            return (p, out)
        }
        let jobs = try [start(["run", "q.toml", "--threads", "1"]), start(["run", "q.toml", "--threads", "1", "--set", "run.seed=1"])]
        var outs: [String] = []
        for (p, pipe) in jobs {
            let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0, text)
            outs.append(text)
        }
        XCTAssertEqual(outs.map { stages($0)["quality-classifier"] ?? "missing" }.sorted(), ["current", "ran"], outs.joined(separator: "\n----\n"))
        let classifiers = try FileManager.default.contentsOfDirectory(atPath: root + "/results/runs/quality").filter { $0.hasSuffix(".h5") }
        XCTAssertEqual(classifiers.count, 1, "\(classifiers)")
        for out in outs {
            XCTAssertEqual(stages(out)["quality"], "ran", out)
            let dir = root + "/" + (try XCTUnwrap(out.split(separator: "\n").last { $0.hasPrefix("run directory: ") }).dropFirst(15))
            let s = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/experiment.json"))) as! [String: Any]
            let q = try XCTUnwrap(s["quality"] as? [String: Any])
            XCTAssertEqual(q["samples"] as? Int, 16)
            XCTAssertEqual(q["reference"] as? String, "data.h5 test")
            // real training images sit nearer the test split than per-pixel noise does
            let floor = try XCTUnwrap(q["fcdRealFloor"] as? Double), noise = try XCTUnwrap(q["fcdNoise"] as? Double)
            XCTAssertLessThan(floor, noise, "\(q)")
            XCTAssertTrue((q["classifier"] as? String)?.hasPrefix("results/runs/quality/data-classifier-") == true, "\(q)")
        }
        let again = Binary.run(["run", "q.toml", "--threads", "1"], cwd: root)
        XCTAssertEqual(stages(again.stdout)["quality-classifier"], "current", again.stdout)
        XCTAssertEqual(stages(again.stdout)["quality"], "current", again.stdout)
        // bad settings: one line naming the key
        for (set, key) in [("eval.quality.reference_split=\"train\"", "eval.quality.reference_split"),
                           ("eval.quality.reference_split=\"heldout\"", "eval.quality.reference_split: data.h5 has no split 'heldout' (it has "),
                           ("eval.quality.classifier=\"none.h5\"", "eval.quality.epochs: trains the classifier"),
                           ("eval.quality.enabled=false", "eval.quality.epochs")] {
            let bad = Binary.run(["run", "q.toml", "--threads", "1", "--set", set], cwd: root)
            XCTAssertNotEqual(bad.status, 0, set)
            XCTAssertTrue(bad.stderr.contains(key), "\(set): \(bad.stderr)")
            XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
        }
        // a classifier named in the config must exist, and is checked before training
        try (SweepTests.experiment + "\n[eval.quality]\nenabled = true\nclassifier = \"none.h5\"\n").write(toFile: root + "/named.toml", atomically: true, encoding: .utf8)
        let named = Binary.run(["run", "named.toml", "--threads", "1", "--set", "run.seed=7"], cwd: root)
        XCTAssertNotEqual(named.status, 0)
        XCTAssertTrue(named.stderr.contains("eval.quality.classifier: no classifier at none.h5"), named.stderr)
        XCTAssertFalse(named.stdout.contains("stage train"), "refused before training: \(named.stdout)")
    }
}

private func * (a: [Int], n: Int) -> [Int] { Array([[Int]](repeating: a, count: n).joined()) }
