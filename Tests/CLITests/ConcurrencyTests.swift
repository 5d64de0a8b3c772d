import Foundation
import HDF5
import Tensor
import XCTest

/// One writer per run directory, recovery after kill -9, and SIGTERM: checkpoint, status
/// "interrupted", exact resume — through the real binary.
final class ConcurrencyTests: XCTestCase {
    var root = ""

    override func setUp() {
        root = NSTemporaryDirectory() + "eidetic-conc-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try! FileManager.default.copyItem(atPath: BadInputTests.repo + "/datasets/fashion-mnist-2k.h5", toPath: root + "/data.h5")
        let config = BadInputTests.tinyConfig.replacingOccurrences(of: "images = 200", with: "images = 40000")
        try! config.write(toFile: root + "/tiny.toml", atomically: true, encoding: .utf8)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: root) }

    func start(_ args: [String]) -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Binary.path)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: root)
        p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
        try! p.run()
        return p
    }

    func status(_ run: String) -> [String: Any] {
        guard let d = FileManager.default.contents(atPath: root + "/\(run)/status.json"),
              let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else { return [:] }
        return o
    }

    /// Waits until the run has trained past `step` (its status says so).
    func waitForStep(_ run: String, _ step: Int, timeout: Double = 60) {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let s = status(run)["step"] as? Int, s >= step, status(run)["state"] as? String == "running" { return }
            usleep(20_000)
        }
        XCTFail("run \(run) did not reach step \(step)")
    }

    func testSecondTrainerIsRefusedAndTakesOverAfterKill9() throws {
        let a = start(["train", "tiny.toml", "--run-dir", "run", "--set", "train.checkpoint_every=5"])
        waitForStep("run", 10)
        let b = Binary.run(["train", "tiny.toml", "--run-dir", "run"], cwd: root)
        XCTAssertEqual(b.status, 1)
        XCTAssertTrue(b.stderr.contains("pid \(a.processIdentifier)"), "the refusal names the holder: \(b.stderr)")
        XCTAssertTrue(b.stderr.hasPrefix("eidetic: error: ") && b.stderr.split(separator: "\n").count == 1, b.stderr)
        // sampling and evaluation are refused while it trains, too
        let s = Binary.run(["sample", "run", "--count", "1"], cwd: root)
        XCTAssertNotEqual(s.status, 0)
        XCTAssertTrue(s.stderr.contains("in use"), s.stderr)
        kill(a.processIdentifier, SIGKILL)
        a.waitUntilExit()
        let killedAt = status("run")["step"] as? Int ?? 0
        XCTAssertEqual(status("run")["state"] as? String, "running", "a killed run's status still says running")
        let st = Binary.run(["status", "run"], cwd: root)
        XCTAssertTrue(st.stdout.contains("killed"), "status recognises a stale 'running': \(st.stdout)")
        // a leftover temporary file from a killed write is removed by the next writer
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: root + "/run/checkpoints/.latest.h5.tmp-99999-1"))
        let c = Binary.run(["train", "tiny.toml", "--run-dir", "run", "--stop-after", "3"], cwd: root)
        XCTAssertEqual(c.status, 0, c.stderr)
        XCTAssertTrue(c.stdout.contains("ended without recording it"), c.stdout)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root + "/run/checkpoints"), ["latest.h5"])
        XCTAssertGreaterThanOrEqual(status("run")["step"] as? Int ?? 0, killedAt - 5 + 3)
        XCTAssertEqual(status("run")["state"] as? String, "stopped")
    }

    func testSIGTERMCheckpointsAndResumesExactly() throws {
        // reference: 60 steps in one go
        let ref = Binary.run(["train", "tiny.toml", "--run-dir", "ref", "--stop-at", "60"], cwd: root)
        XCTAssertEqual(ref.status, 0, ref.stderr)
        // interrupted: SIGTERM somewhere after step 10 (between checkpoints), then resume to 60
        let p = start(["train", "tiny.toml", "--run-dir", "int", "--stop-at", "60"])
        waitForStep("int", 12)
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 128 + SIGTERM)
        XCTAssertEqual(status("int")["state"] as? String, "interrupted")
        let stoppedAt = status("int")["step"] as? Int ?? -1
        XCTAssertGreaterThan(stoppedAt, 10); XCTAssertLessThan(stoppedAt, 60)
        let (_, attrs) = try TensorFile.load(root + "/int/checkpoints/latest.h5")
        XCTAssertEqual(attrs["step"], .int(Int64(stoppedAt)), "the checkpoint is at the step where it stopped")
        let r = Binary.run(["train", "tiny.toml", "--run-dir", "int", "--stop-at", "60"], cwd: root)
        XCTAssertEqual(r.status, 0, r.stderr)
        let (a, _) = try TensorFile.load(root + "/ref/checkpoints/latest.h5")
        let (b, _) = try TensorFile.load(root + "/int/checkpoints/latest.h5")
        XCTAssertEqual(a.keys, b.keys)
        for (k, t) in a {
            XCTAssertEqual(Data(bytes: t.rawPointer, count: t.count * t.dtype.size), Data(bytes: b[k]!.rawPointer, count: b[k]!.count * b[k]!.dtype.size), "\(k) differs after SIGTERM and resume")
        }
    }
}
