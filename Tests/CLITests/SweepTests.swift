import Foundation
import XCTest

/// Sweeps through the real binary: local workers, SIGKILL of the whole process group at
/// random moments, two runners sharing one sweep, a failing job and `retry`.
final class SweepTests: XCTestCase {
    var root = ""
    override func tearDown() { if !root.isEmpty { try? FileManager.default.removeItem(atPath: root) } }

    /// A 16-image U-Net experiment of 40 steps with extraction and the membership attack:
    /// a few seconds per job on one thread.
    static let experiment = """
    [run]
    name = "micro"
    [data]
    file = "data.h5"
    subset = 16
    flip = false
    \(tinyUNetModelTOML)
    [diffusion]
    timesteps = 100
    [train]
    batch_size = 16
    images = 640
    lr = 1e-3
    checkpoint_every = 5
    log_every = 5
    [sample]
    count = 16
    steps = 10
    [eval.membership]
    enabled = true
    non_members = 16
    timesteps = [50]
    draws = 1
    """

    func fixture(_ sweep: String) -> String {
        root = makeRunFixture("sweep", config: SweepTests.experiment, configName: "micro.toml")
        try! sweep.write(toFile: root + "/sweep.toml", atomically: true, encoding: .utf8)
        return root
    }

    /// The sweep's jobs as `sweep status --json` prints them.
    func jobs(_ cwd: String, _ sweep: String = "sweep.toml") -> [[String: String]] {
        let r = Binary.run(["sweep", "status", sweep, "--json"], cwd: cwd)
        guard let a = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]] else {
            XCTFail("sweep status --json: \(r.stdout) \(r.stderr)"); return []
        }
        return a.map { $0.mapValues { "\($0)" } }
    }

    /// How many times a run's log says it reached its last step.
    func completions(_ runDir: String, total: Int) -> Int {
        let log = (try? String(contentsOfFile: runDir + "/log.txt", encoding: .utf8)) ?? ""
        return log.split(separator: "\n").filter { $0.hasPrefix("step \(total)/\(total) ") }.count
    }

    func startSweep(_ args: [String], cwd: String, log: String) throws -> Process {
        let p = Process()
        // Foundation starts it in a process group of its own (pgid = pid), which its workers
        // join, so the test can SIGKILL the runner and all its workers at once
        p.executableURL = URL(fileURLWithPath: Binary.path)
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: cwd)
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let h = FileHandle(forWritingAtPath: log)!
        h.seekToEndOfFile()
        p.standardOutput = h; p.standardError = h
        try p.run()
        return p
    }

    static let eightJobs = """
    [sweep]
    name = "s8"
    base = "micro.toml"
    [[axis]]
    key = "run.seed"
    range = [0, 4]
    [[axis]]
    key = "train.lr"
    values = [1e-3, 5e-4]
    """

    /// Acceptance: 8 jobs, 2 workers, the whole process group SIGKILLed at three random
    /// moments and re-run each time: it completes, no job trains to completion twice, and
    /// every job's summary is there.
    func testKilledSweepCompletesWithoutRepeatingFinishedWork() throws {
        let cwd = fixture(SweepTests.eightJobs)
        XCTAssertEqual(Binary.run(["sweep", "plan", "sweep.toml"], cwd: cwd).status, 0)
        var rng = SystemRandomNumberGenerator()
        for k in 0..<3 {
            let p = try startSweep(["sweep", "run", "sweep.toml", "--workers", "2", "--threads", "1"], cwd: cwd, log: cwd + "/runner.log")
            // a random moment: after 1.5–8 s of work
            let wait = Double.random(in: 1.5...8, using: &rng)
            let deadline = Date().addingTimeInterval(wait)
            while Date() < deadline && p.isRunning { usleep(20_000) }
            guard p.isRunning else { break }
            kill(-p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            // (a late kill may land while the finished sweep writes its tables; the check
            // below that some job was interrupted is what proves the kills hit training)
            _ = k
        }
        let r = Binary.run(["sweep", "run", "sweep.toml", "--workers", "2", "--threads", "1"], cwd: cwd, timeout: 600)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("s8: 8/8 done, 0 failed"), r.stdout)
        let js = jobs(cwd)
        XCTAssertEqual(js.count, 8)
        for j in js {
            XCTAssertEqual(j["state"], "done", "\(j)")
            // the engine logs a step after its checkpoint is durable, so a second "step 40/40"
            // can only come from training a finished run again (none at all: killed between
            // the last checkpoint and its log line); the metrics show the run reached step 40
            let n = completions(cwd + "/" + j["runDir"]!, total: 40)
            XCTAssertLessThanOrEqual(n, 1, "\(j["id"]!) trained to completion \(n) times")
            let metrics = (try? String(contentsOfFile: cwd + "/" + j["runDir"]! + "/metrics.jsonl", encoding: .utf8)) ?? ""
            XCTAssertEqual(metrics.split(separator: "\n").filter { $0.hasPrefix("{\"step\": 40,") }.count, 1, "\(j["id"]!): \(metrics)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: cwd + "/" + j["runDir"]! + "/experiment.json"), "\(j)")
        }
        XCTAssertTrue(js.contains { Int($0["attempts"]!)! > 1 }, "no job was interrupted: the kills missed")
        // a re-run has nothing to do
        let again = Binary.run(["sweep", "run", "sweep.toml"], cwd: cwd)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertFalse(again.stdout.contains("started"), again.stdout)
        // a finished job whose run folder is gone is not trusted: it is run again, alone
        let lost = js[3]
        try FileManager.default.removeItem(atPath: cwd + "/" + lost["runDir"]!)
        let redo = Binary.run(["sweep", "run", "sweep.toml", "--workers", "2", "--threads", "1"], cwd: cwd, timeout: 600)
        XCTAssertEqual(redo.status, 0, redo.stderr)
        XCTAssertTrue(redo.stdout.contains("job \(lost["id"]!): done in the database, but"), redo.stdout)
        XCTAssertEqual(redo.stdout.split(separator: "\n").filter { $0.hasPrefix("started ") }.count, 1, redo.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: cwd + "/" + lost["runDir"]! + "/experiment.json"))
        XCTAssertTrue(redo.stdout.contains("s8: 8/8 done, 0 failed"), redo.stdout)
    }

    /// Acceptance: two `sweep run` processes on the same sweep share the jobs; none runs twice.
    /// A sweep file with scales runs at the one named (`--scale`, passed on to the workers,
    /// which load the file again), in its own folder; without `--scale` it is refused.
    func testScaledSweepRunsAtItsScale() throws {
        let cwd = fixture("""
        [sweep]
        name = "sc"
        base = "micro.toml"
        [[axis]]
        key = "run.seed"
        range = [0, 8]
        [scale.smoke]
        set.train.images = 160
        axis."run.seed".values = [3]
        [scale.full]
        """)
        let refused = Binary.run(["sweep", "run", "sweep.toml", "--workers", "1"], cwd: cwd)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("sweep.toml:7: this sweep runs at a scale: pass --scale (smoke, full)"), refused.stderr)
        let r = Binary.run(["sweep", "run", "sweep.toml", "--scale", "smoke", "--workers", "1", "--threads", "1"], cwd: cwd, timeout: 300)
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertNotEqual(Binary.run(["sweep", "status", "sweep.toml"], cwd: cwd).status, 0, "status without --scale is refused too")
        let s = Binary.run(["sweep", "status", "sweep.toml", "--scale", "smoke", "--json"], cwd: cwd)
        let rows = (try? JSONSerialization.jsonObject(with: Data(s.stdout.utf8)) as? [[String: Any]]) ?? []
        XCTAssertEqual(rows.count, 1, s.stdout + s.stderr)
        XCTAssertEqual(rows.first?["state"] as? String, "done")
        if let dir = rows.first?["runDir"] as? String {
            XCTAssertTrue(dir.hasPrefix("results/sweeps/sc-smoke/runs/seed3-"), dir)
            XCTAssertEqual(completions(cwd + "/" + dir, total: 10), 1)
        }
    }

    func testTwoRunnersShareTheWork() throws {
        let cwd = fixture(SweepTests.eightJobs)
        let a = try startSweep(["sweep", "run", "sweep.toml", "--workers", "1", "--threads", "1"], cwd: cwd, log: cwd + "/a.log")
        let b = try startSweep(["sweep", "run", "sweep.toml", "--workers", "1", "--threads", "1"], cwd: cwd, log: cwd + "/b.log")
        a.waitUntilExit(); b.waitUntilExit()
        XCTAssertEqual(a.terminationStatus, 0); XCTAssertEqual(b.terminationStatus, 0)
        let la = (try? String(contentsOfFile: cwd + "/a.log", encoding: .utf8)) ?? "", lb = (try? String(contentsOfFile: cwd + "/b.log", encoding: .utf8)) ?? ""
        let startedA = la.split(separator: "\n").filter { $0.hasPrefix("started ") }.count
        let startedB = lb.split(separator: "\n").filter { $0.hasPrefix("started ") }.count
        XCTAssertEqual(startedA + startedB, 8, la + lb)
        XCTAssertGreaterThan(startedA, 0, la); XCTAssertGreaterThan(startedB, 0, lb)
        for j in jobs(cwd) {
            XCTAssertEqual(j["state"], "done"); XCTAssertEqual(j["attempts"], "1", "\(j)")
            XCTAssertEqual(completions(cwd + "/" + j["runDir"]!, total: 40), 1)
        }
    }

    /// Acceptance: a job that diverges (NaN injected through a config key) is reported with
    /// its log and last error line, the others finish, and `retry` re-runs only it.
    func testFailedJobIsReportedAndRetriedAlone() throws {
        let cwd = fixture("""
        [sweep]
        name = "fail"
        base = "micro.toml"
        [[axis]]
        key = "train.inject_nan_at_step"
        values = [0, 12]
        [[axis]]
        key = "run.seed"
        values = [0, 1, 2]
        zip = "z"
        [[axis]]
        key = "run.name"
        values = ["a", "b", "c"]
        zip = "z"
        """)
        // seed and name vary together (3 points), crossed with 2 NaN settings: 6 jobs
        let r = Binary.run(["sweep", "run", "sweep.toml", "--workers", "2", "--threads", "1"], cwd: cwd, timeout: 600)
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        let js = jobs(cwd)
        XCTAssertEqual(js.count, 6)
        let failed = js.filter { $0["state"] == "failed" }
        XCTAssertEqual(failed.count, 3, "\(js)")
        XCTAssertTrue(failed.allSatisfy { $0["id"]!.hasPrefix("inject_nan_at_step12-") }, "\(failed)")
        XCTAssertEqual(js.filter { $0["state"] == "done" }.count, 3)
        for f in failed {
            XCTAssertTrue(f["error"]!.contains("step 12") || f["error"]!.contains("diverged"), f["error"]!)
            XCTAssertTrue(r.stdout.contains("failed   \(f["id"]!): "), r.stdout)
            XCTAssertTrue(r.stdout.contains("(log \(f["log"]!))"), r.stdout)
        }
        let before = Dictionary(uniqueKeysWithValues: js.map { ($0["id"]!, $0["attempts"]!) })
        let only = failed[0]["id"]!
        let retry = Binary.run(["sweep", "retry", "sweep.toml", "--job", only], cwd: cwd, timeout: 300)
        XCTAssertEqual(retry.status, 1, retry.stdout + retry.stderr)
        XCTAssertTrue(retry.stdout.contains("1 failed job(s) back to pending"), retry.stdout)
        for j in jobs(cwd) {
            let expected = j["id"] == only ? String(Int(before[only]!)! + 1) : before[j["id"]!]!
            XCTAssertEqual(j["attempts"], expected, "\(j)")
        }
    }
}
