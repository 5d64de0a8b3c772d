import Foundation
import XCTest

/// The Slurm launcher against a real single-node Slurm (Debian's slurm-wlm + munge, a
/// private config in a temporary folder, daemons started here and stopped after): a small
/// LiRA sweep submitted through real `sbatch` must give the same tables, byte for byte, as
/// the local launcher on the same sweep.
final class SlurmTests: XCTestCase {
    var dirs: [String] = []
    var slurmDir: String?

    override func tearDown() {
        if let d = slurmDir { _ = shell("bash \(BadInputTests.repo)/scripts/slurm/stop-slurm.sh \(d)") }
        for d in dirs { try? FileManager.default.removeItem(atPath: d) }
    }

    @discardableResult
    func shell(_ command: String, env: [String: String] = [:]) -> (status: Int32, output: String) {
        // output to a file, not a pipe (the daemons start-slurm.sh leaves behind would hold a
        // pipe open forever), and posix_spawn + a blocking waitpid: Foundation's Process
        // missed this bash's exit while the daemons it started were re-parented
        let log = NSTemporaryDirectory() + "slurm-shell-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let exports = env.map { "export \($0.key)=\"\($0.value)\"; " }.joined()
        let script = "\(exports)(\(command)) > \(log) 2>&1 < /dev/null"
        let words: [String] = ["/bin/bash", "-c", script]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, "/bin/bash", nil, nil, argv, environ) == 0 else { return (-1, "cannot start bash") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (code, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    static let sweep = """
    [sweep]
    name = "lira4"
    base = "micro.toml"
    [plan]
    kind = "membership"
    pool = 32
    models = 4
    seed = 0
    [[axis]]
    key = "data.plan_model"
    range = [0, 4]
    [lira]
    timesteps = [50]
    draws = 2
    """

    func fixture() -> String {
        let d = makeRunFixture("slurm", config: SweepTests.experiment, configName: "micro.toml")
        try! SlurmTests.sweep.write(toFile: d + "/sweep.toml", atomically: true, encoding: .utf8)
        dirs.append(d)
        return d
    }

    func testSlurmSweepGivesTheLocalLaunchersTables() throws {
        guard getuid() == 0 else {
            throw XCTSkip("Slurm test skipped: starting munged, slurmctld and slurmd needs root (uid \(getuid())); run the suite as root to include it")
        }
        let have = shell("command -v slurmctld && command -v munged && command -v sbatch")
        if have.status != 0 {
            let install = shell("DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends slurm-wlm munge")
            guard install.status == 0 else {
                throw XCTSkip("Slurm test skipped: slurm-wlm and munge are not installed and apt-get could not install them: \(install.output.suffix(300))")
            }
        }
        let d = NSTemporaryDirectory() + "slurm-ci-\(UUID().uuidString.prefix(8))"
        slurmDir = d
        let start = shell("bash \(BadInputTests.repo)/scripts/slurm/start-slurm.sh \(d)")
        XCTAssertEqual(start.status, 0, start.output)
        guard start.status == 0 else { return }
        let env = ["SLURM_CONF": d + "/slurm.conf"]

        // the same sweep with local workers
        let local = fixture()
        let l = Binary.run(["sweep", "run", "sweep.toml", "--workers", "2", "--threads", "1"], cwd: local, timeout: 600)
        XCTAssertEqual(l.status, 0, l.stdout + l.stderr)

        // through sbatch: one array task per job, then the report job
        let cluster = fixture()
        let s = Binary.run(["sweep", "run", "sweep.toml", "--launcher", "slurm", "--cpus-per-task", "1"], cwd: cluster, env: env)
        XCTAssertEqual(s.status, 0, s.stdout + s.stderr)
        XCTAssertTrue(s.stdout.contains("submitted 4 task(s) as Slurm array job"), s.stdout)
        let deadline = Date().addingTimeInterval(600)
        var mid = ""
        while Date() < deadline {
            let q = shell("squeue -h", env: env)
            if mid.isEmpty, q.output.contains("R") { mid = Binary.run(["sweep", "status", "sweep.toml"], cwd: cluster, env: env).stdout }
            if q.status == 0 && q.output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { break }
            usleep(300_000)
        }
        XCTAssertTrue(mid.isEmpty || mid.contains("Slurm task"), "status while queued/running should show Slurm's view: \(mid)")
        let status = Binary.run(["sweep", "status", "sweep.toml"], cwd: cluster, env: env)
        XCTAssertTrue(status.stdout.contains("lira4: 4/4 done, 0 failed"), status.stdout + shell("cat \(cluster)/results/sweeps/lira4/logs/slurm-*.out | tail -20").output)
        for name in ["summary", "runs", "lira"] {
            for ext in ["md", "csv", "tex"] {
                let a = FileManager.default.contents(atPath: local + "/results/sweeps/lira4/tables/\(name).\(ext)")
                let b = FileManager.default.contents(atPath: cluster + "/results/sweeps/lira4/tables/\(name).\(ext)")
                XCTAssertNotNil(a, "\(name).\(ext) (local)"); XCTAssertNotNil(b, "\(name).\(ext) (slurm)")
                XCTAssertEqual(a, b, "\(name).\(ext) differs between the local and the Slurm launcher")
            }
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: cluster + "/results/sweeps/lira4/report/index.html"), "the report job did not write the report")
        // a second submission has nothing to do
        let again = Binary.run(["sweep", "run", "sweep.toml", "--launcher", "slurm"], cwd: cluster, env: env)
        XCTAssertTrue(again.stdout.contains("nothing submitted"), again.stdout + again.stderr)
    }
}
