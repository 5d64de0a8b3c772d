import Foundation
import HDF5
import Tensor
import XCTest

/// A private run through the real binary: SIGKILL at random steps, three times, then resume,
/// ends bit-identical to an uninterrupted run, and so do the Poisson batches, the noise and
/// the accountant (every step's batch size and ε in metrics.jsonl, the checkpoint's ε).
final class PrivateRunTests: XCTestCase {
    var root = ""

    static let config = """
    [run]
    name = "tiny-dp"
    seed = 5
    [data]
    file = "data.h5"
    subset = 64
    \(tinyUNetModelTOML)
    [train]
    batch_size = 8
    images = 100000
    checkpoint_every = 7
    log_every = 1
    [privacy]
    noise_multiplier = 1.3
    clip_norm = 0.5
    multiplicity = 2
    """

    override func setUp() { root = makeRunFixture("eidetic-dp-run", config: PrivateRunTests.config, configName: "dp.toml") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: root) }

    /// Per logged step: (step, loss, ε, Poisson batch size), the fields that must not depend on the kills.
    func trace(_ run: String) throws -> [[Double]] {
        try String(contentsOfFile: root + "/\(run)/metrics.jsonl", encoding: .utf8).split(separator: "\n").map { line in
            let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return ["step", "loss", "epsilon", "batch_examples"].map { (o[$0] as? NSNumber)?.doubleValue ?? .nan }
        }
    }

    func testKilledThreeTimesResumesBitExactlyWithSamplerNoiseAndAccountant() throws {
        let end = 60
        try KillResume.assertResumesLikeUninterrupted("dp.toml", end: end, cwd: root)
        let a = try trace("ref"), b = try trace("int")
        XCTAssertEqual(b.count, end, "no duplicated or lost metric lines across the kills")
        XCTAssertEqual(a.map { $0.map { $0.bitPattern } }, b.map { $0.map { $0.bitPattern } },
                       "steps, losses, ε and Poisson batch sizes are the same with and without the kills")
        XCTAssertGreaterThan(Set(b.map { $0[3] }).count, 2, "Poisson batch sizes vary")
        let (_, x) = try TensorFile.load(root + "/ref/checkpoints/latest.h5"), (_, y) = try TensorFile.load(root + "/int/checkpoints/latest.h5")
        XCTAssertEqual(x["privacy_epsilon"], y["privacy_epsilon"])
        guard case .double(let e)? = y["privacy_epsilon"] else { return XCTFail("no privacy_epsilon in \(y)") }
        XCTAssertEqual(e, b.last![2], accuracy: 1e-5 * e, "the checkpoint's ε is the last logged one (6 digits in the log)")
        // the run summary (status.json, `eidetic status`) carries the same ε
        let status = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/int/status.json"))) as! [String: Any]
        XCTAssertEqual(status["epsilon"] as? Double ?? 0, e, accuracy: 1e-12 * e); XCTAssertEqual(status["state"] as? String, "stopped")
        XCTAssertNotNil(status["epsilon_classic"]); XCTAssertEqual(status["delta"] as? Double, 0.01)
        let shown = Binary.run(["status", "int"], cwd: root)
        XCTAssertTrue(shown.stdout.contains("privacy spent: ε = ") && shown.stdout.contains("(improved conversion)"), shown.stdout)
    }
}
