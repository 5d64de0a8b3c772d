import Foundation
import XCTest

/// `eidetic bench extraction`: the evaluator streams a sample file through one reference
/// index, so its peak memory does not grow with the number of generations. Two pools (16,384
/// and 131,072 CIFAR-sized generations: 50 and 400 MB of pixels) are extracted in blocks of
/// 4,096; the larger pool's peak may exceed the smaller's only by its per-generation results
/// (about 100 bytes each), not by its images. The planted copies are the known answer.
final class ExtractionBenchTests: XCTestCase {
    func bench(_ samples: Int, _ extra: [String] = []) throws -> [String: Any] {
        let dir = NSTemporaryDirectory() + "eidetic-xbench-\(getpid())-\(samples)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = Binary.run(["bench", "extraction", "--samples", "\(samples)", "--training", "512", "--planted", "32",
                            "--block", "4096", "--threads", "2", "--dir", dir, "--json"] + extra, cwd: NSTemporaryDirectory(), timeout: 600)
        XCTAssertEqual(r.status, 0, r.stderr + r.stdout)
        XCTAssertTrue(r.stdout.contains("known answer: 32 extracted of 32 planted, each from its source: ok"), r.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir), "the bench removes its files unless --keep")
        guard let line = r.stdout.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            XCTFail("no JSON line: \(r.stdout)"); return [:]
        }
        return o
    }

    func testPeakMemoryDoesNotGrowWithThePool() throws {
        let small = try bench(16_384, ["--no-clique"]), large = try bench(131_072, ["--no-clique"])
        let ps = small["peak_rss_bytes"] as? Int ?? 0, pl = large["peak_rss_bytes"] as? Int ?? 0
        XCTAssertGreaterThan(ps, 0, "no peak memory reading (/proc/self/status)")
        let growth = pl - ps, pixels = (131_072 - 16_384) * 3072
        print("peak resident memory: \(ps / 1_000_000) MB at 16,384 generations, \(pl / 1_000_000) MB at 131,072")
        XCTAssertLessThan(growth, 60_000_000, "peak grew by \(growth) bytes for \(pixels) more bytes of generations: not streamed")
        XCTAssertEqual(large["extracted"] as? Int, 32)
    }

    func testCliqueSearchAndBadFlags() throws {
        // the clique search on the first generations finds nothing in noise and copies of distinct images
        let o = try bench(8_192)
        XCTAssertEqual(o["ok"] as? Bool, true)
        // an existing folder is refused and left alone (the bench removes its folder afterwards)
        let mine = NSTemporaryDirectory() + "eidetic-xbench-mine-\(getpid())"
        try FileManager.default.createDirectory(atPath: mine, withIntermediateDirectories: true)
        try "keep me".write(toFile: mine + "/notes.txt", atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: mine) }
        let taken = Binary.run(["bench", "extraction", "--samples", "64", "--training", "8", "--planted", "1", "--dir", mine], cwd: NSTemporaryDirectory())
        XCTAssertNotEqual(taken.status, 0)
        XCTAssertTrue(taken.stderr.contains("--dir"), taken.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: mine + "/notes.txt"), "the user's folder was touched")
        for args in [["--samples", "0"], ["--size", "1000"], ["--block", "-3"]] {
            let r = Binary.run(["bench", "extraction"] + args, cwd: NSTemporaryDirectory())
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.stderr.contains(args[0]), "\(args): \(r.stderr)")
        }
        let bad = Binary.run(["bench", "extraction", "--samples", "5", "--planted", "10"], cwd: NSTemporaryDirectory())
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--planted 10"), bad.stderr)
        XCTAssertEqual(bad.stderr.split(separator: "\n").filter { $0.lowercased().contains("error") }.count, 1, bad.stderr)
    }
}
