import Foundation
import XCTest

/// `eidetic bench lab`: jobs run end to end by separate processes for each layout, jobs per
/// hour and the stage split printed (here a tiny job on the embedded data); bad flags are one line.
final class LabBenchTests: XCTestCase {
    func testLabBenchRunsEveryLayoutAndPrintsJobsPerHour() throws {
        let config = """
        [run]
        name = "lab"
        seed = 0
        [data]
        file = "data.h5"
        subset = 16
        flip = false
        [model]
        preset = "unet-xs"
        image_channels = 1
        image_size = 32
        groups = 4
        [train]
        batch_size = 8
        images = 32
        log_every = 1
        [sample]
        count = 8
        batch_size = 8
        sampler = "ddim"
        steps = 4
        [eval.membership]
        enabled = true
        non_members = 8
        timesteps = [100]
        draws = 1
        """
        let root = makeRunFixture("lab", config: config, configName: "lab.toml")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let r = Binary.run(["bench", "lab", "--config", "lab.toml", "--layouts", "1x1,2x1", "--out", "runs", "--json"], cwd: root, timeout: 300)
        XCTAssertEqual(r.status, 0, r.stderr + r.stdout)
        let objects = try r.stdout.split(separator: "\n").filter { $0.hasPrefix("{") }.map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        XCTAssertEqual(objects.compactMap { $0["layout"] as? String }, ["1x1", "2x1"])
        for o in objects {
            let wall = try XCTUnwrap(o["wall_seconds"] as? Double), perHour = try XCTUnwrap(o["jobs_per_hour"] as? Double)
            XCTAssertEqual(perHour, 2 / wall * 3600, accuracy: 0.02 * perHour)
            let stages = try XCTUnwrap(o["stage_seconds"] as? [String: Double])
            XCTAssertEqual(Set(stages.keys).intersection(["train", "sample", "extraction", "membership"]).count, 4, "\(stages)")
        }
        // both layouts ran both seeds, each a finished experiment
        for layout in ["1x1", "2x1"] {
            let runs = try FileManager.default.contentsOfDirectory(atPath: "\(root)/runs/\(layout)").filter { $0.hasPrefix("lab-") }
            XCTAssertEqual(runs.count, 2, "\(layout): \(runs)")
            for run in runs { XCTAssertTrue(FileManager.default.fileExists(atPath: "\(root)/runs/\(layout)/\(run)/experiment.json")) }
        }
        // the output folder exists now: refused, one line
        let again = Binary.run(["bench", "lab", "--config", "lab.toml", "--out", "runs"], cwd: root)
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("--out: runs exists"), again.stderr)
        for (args, flag) in [(["--layouts", "2by1"], "--layouts"), (["--jobs", "0"], "--jobs"), (["--config", "nope.toml"], "--config")] {
            let bad = Binary.run(["bench", "lab"] + args, cwd: root)
            XCTAssertNotEqual(bad.status, 0)
            XCTAssertTrue(bad.stderr.hasPrefix("eidetic: error: ") && bad.stderr.contains(flag), bad.stderr)
            XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
        }
        // a failing job names itself and its log
        let broken = Binary.run(["bench", "lab", "--config", "lab.toml", "--layouts", "1x1", "--jobs", "1", "--out", "runs2", "--set", "train.lr=-1"], cwd: root)
        XCTAssertNotEqual(broken.status, 0)
        XCTAssertTrue(broken.stderr.contains("job 0 (1x1) failed") && broken.stderr.contains("train.lr"), broken.stderr)
    }
}
