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
}
