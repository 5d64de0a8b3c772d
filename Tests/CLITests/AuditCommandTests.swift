import Foundation
import XCTest

/// The privacy audit through the real binary, as a user runs it: an audit plan, a private run
/// trained on it, then `eval audit`, which prints the empirical lower bound beside the
/// accountant's ε and refuses to overwrite its folder without --force.
final class AuditCommandTests: XCTestCase {
    var root = ""
    static let config = """
    [run]
    name = "audit"
    seed = 2
    [data]
    file = "data.h5"
    plan = "audit.json"
    \(tinyUNetModelTOML)
    [train]
    batch_size = 8
    images = 160
    checkpoint_every = 10
    log_every = 10
    [privacy]
    noise_multiplier = 1.0
    """

    override func setUp() { root = makeRunFixture("eidetic-audit-cli", config: AuditCommandTests.config, configName: "audit.toml") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: root) }

    func testPlanTrainAndAuditFromTheCommandLine() throws {
        let plan = Binary.run(["data", "plan", "audit", "data.h5", "--canaries", "48", "--seed", "3", "--out", "audit.json"], cwd: root)
        XCTAssertEqual(plan.status, 0, plan.stderr)
        XCTAssertTrue(plan.stdout.hasPrefix("audit: 48 canaries ("), plan.stdout)
        let train = Binary.run(["train", "audit.toml", "--run-dir", "run"], cwd: root)
        XCTAssertEqual(train.status, 0, train.stderr)
        let audit = Binary.run(["eval", "audit", "run", "--timesteps", "50", "--draws", "2"], cwd: root)
        XCTAssertEqual(audit.status, 0, audit.stderr)
        for needle in ["audit: 48 canaries", "empirical ε ≥", "at 95% confidence", "the run's privacy delta", "accountant ε ≤", "improved conversion",
                       "summary: run/eval/audit-t50-r2/summary.json"] {
            XCTAssertTrue(audit.stdout.contains(needle), "missing '\(needle)' in:\n\(audit.stdout)")
        }
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/run/eval/audit-t50-r2/summary.json"))) as! [String: Any]
        let outcome = summary["outcome"] as! [String: Any]
        XCTAssertEqual(outcome["canaries"] as? Int, 48)
        XCTAssertLessThanOrEqual(outcome["epsilonLowerBound"] as! Double, summary["accountantEpsilon"] as! Double)
        let again = Binary.run(["eval", "audit", "run", "--timesteps", "50", "--draws", "2"], cwd: root)
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("pass --force"), again.stderr)
        let forced = Binary.run(["eval", "audit", "run", "--timesteps", "50", "--draws", "2", "--force", "--guesses", "10:10"], cwd: root)
        XCTAssertEqual(forced.status, 0, forced.stderr)
        XCTAssertTrue(forced.stdout.contains("20 guesses (10 IN, 10 OUT)"), forced.stdout)
    }
}
