import Foundation
import XCTest

/// `eidetic privacy epsilon|sigma` through the real binary: JSON fields, the Opacus value, and
/// one error line naming the flag for impossible numbers.
final class PrivacyCommandTests: XCTestCase {
    func json(_ r: Binary.Result) throws -> [String: Double] {
        XCTAssertEqual(r.status, 0, r.stderr)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Double], r.stdout)
    }

    func testEpsilonAndSigma() throws {
        let cwd = NSTemporaryDirectory()
        let e = try json(Binary.run(["privacy", "epsilon", "--sample-rate", "0.01", "--noise-multiplier", "1.1", "--steps", "1000", "--delta", "1e-5", "--json"], cwd: cwd))
        XCTAssertEqual(try XCTUnwrap(e["epsilon_improved"]), 1.7117700912203435, accuracy: 1e-8)   // Opacus 1.6
        XCTAssertEqual(try XCTUnwrap(e["epsilon_classic"]), 2.0820845442570732, accuracy: 1e-8)
        XCTAssertEqual(e["best_order"], 9.6)
        let s = try json(Binary.run(["privacy", "sigma", "--epsilon", "1.7117700912203435", "--sample-rate", "0.01", "--steps", "1000", "--delta", "1e-5", "--json"], cwd: cwd))
        XCTAssertEqual(try XCTUnwrap(s["sigma"]), 1.1, accuracy: 1e-3)
        XCTAssertLessThanOrEqual(try XCTUnwrap(s["epsilon_improved"]), 1.7117700912203435)
        // a given order grid: only α = 2 and 32 (so the best order is one of them)
        let g = try json(Binary.run(["privacy", "epsilon", "--sample-rate", "0.01", "--noise-multiplier", "1.1", "--steps", "1000", "--delta", "1e-5", "--orders", "2, 32", "--json"], cwd: cwd))
        XCTAssertTrue([2, 32].contains(try XCTUnwrap(g["best_order"])), "\(g)")
        XCTAssertGreaterThan(try XCTUnwrap(g["epsilon_improved"]), 1.7117700912203435)
        let text = Binary.run(["privacy", "epsilon", "--sample-rate", "0.01", "--noise-multiplier", "1.1", "--steps", "1000", "--delta", "1e-5"], cwd: cwd)
        XCTAssertTrue(text.stdout.contains("improved") && text.stdout.contains("classic"), text.stdout)
    }

    func testImpossibleNumbersAreRefusedNamingTheFlag() {
        let base = ["--sample-rate", "0.01", "--steps", "100", "--delta", "1e-5"]
        for (args, flag) in [(["epsilon", "--noise-multiplier", "0"] + base, "--noise-multiplier"),
                             (["epsilon", "--noise-multiplier", "nan"] + base, "--noise-multiplier"),
                             (["epsilon", "--noise-multiplier", "1", "--sample-rate", "1.5", "--steps", "10", "--delta", "1e-5"], "--sample-rate"),
                             (["epsilon", "--noise-multiplier", "1", "--sample-rate", "0.1", "--steps", "0", "--delta", "1e-5"], "--steps"),
                             (["epsilon", "--noise-multiplier", "1", "--sample-rate", "0.1", "--steps", "10", "--delta", "1"], "--delta"),
                             (["sigma", "--epsilon", "-1"] + base, "--epsilon"),
                             (["sigma", "--epsilon", "1", "--orders", "2,0.5"] + base, "--orders"),
                             (["epsilon", "--noise-multiplier", "1", "--orders", "2,,3"] + base, "--orders"),
                             (["sigma", "--epsilon", "1e-9"] + base, "--epsilon")] {
            let r = Binary.run(["privacy"] + args, cwd: NSTemporaryDirectory())
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertTrue(r.stderr.hasPrefix("eidetic: error: ") && r.stderr.contains(flag), "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        }
    }

    /// `eidetic bench dp`: one JSON line with both step times and their ratio; a bad preset is one line.
    func testDPBenchmarkPrintsBothStepsAndTheRatio() throws {
        let cwd = NSTemporaryDirectory()
        let r = Binary.run(["bench", "dp", "--batch", "2", "--steps", "1", "--threads", "1", "--torch", "none"], cwd: cwd)
        XCTAssertEqual(r.status, 0, r.stderr)
        let line = try XCTUnwrap(r.stdout.split(separator: "\n").first { $0.hasPrefix("{") })
        let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let a = try XCTUnwrap(o["ordinary_seconds_per_step"] as? Double), b = try XCTUnwrap(o["dp_seconds_per_step"] as? Double)
        XCTAssertGreaterThan(a, 0); XCTAssertGreaterThan(b, 0)
        XCTAssertEqual(try XCTUnwrap(o["dp_over_ordinary"] as? Double), b / a, accuracy: 0.01 * b / a)
        let bad = Binary.run(["bench", "dp", "--preset", "unet-xl"], cwd: cwd)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--preset: unknown U-Net preset 'unet-xl'"), bad.stderr)
    }
}
