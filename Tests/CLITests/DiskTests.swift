import Foundation
import XCTest

/// Real full and read-only file systems: small tmpfs mounts (needs root and mount rights;
/// skipped where the sandbox forbids mounting — the file-size-limit cases in
/// BadInputTests cover a full disk everywhere).
final class DiskTests: XCTestCase {
    var root = ""
    var mounts: [String] = []

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "eidetic-disk-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: BadInputTests.repo + "/datasets/fashion-mnist-2k.h5", toPath: root + "/data.h5")
        try BadInputTests.tinyConfig.write(toFile: root + "/tiny.toml", atomically: true, encoding: .utf8)
    }

    override func tearDown() {
        for m in mounts.reversed() { _ = sh("umount '\(m)'") }
        try? FileManager.default.removeItem(atPath: root)
    }

    @discardableResult
    func sh(_ command: String) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command + " >/dev/null 2>&1"]
        try? p.run(); p.waitUntilExit()
        return p.terminationStatus
    }

    func mount(_ name: String, size: String, readOnly: Bool = false) throws -> String {
        let dir = root + "/" + name
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        guard getuid() == 0, sh("mount -t tmpfs -o size=\(size) tmpfs '\(dir)'") == 0 else { throw XCTSkip("cannot mount a tmpfs here") }
        mounts.append(dir)
        if readOnly { XCTAssertEqual(sh("mount -o remount,ro '\(dir)'"), 0) }
        return dir
    }

    func assertOneLine(_ r: Binary.Result, names: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNotEqual(r.status, 0, file: file, line: line)
        XCTAssertFalse(r.signaled, "crashed: \(r.stderr)", file: file, line: line)
        let lines = r.stderr.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).filter { !$0.hasPrefix("sampled ") }
        XCTAssertEqual(lines.count, 1, r.stderr, file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix("eidetic: error: ") && r.stderr.contains(names), r.stderr, file: file, line: line)
    }

    /// Training into a 600 KB file system: the checkpoint (≈ 800 KB) cannot be written; the
    /// error says so in one line, the process does not crash, and no temporary is left.
    func testFullDiskDuringCheckpoint() throws {
        let full = try mount("full", size: "600k")
        let r = Binary.run(["train", root + "/tiny.toml", "--run-dir", full + "/run", "--stop-at", "10"], cwd: root)
        assertOneLine(r, names: "latest.h5")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: full + "/run/checkpoints"), [])
        XCTAssertEqual((try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: full + "/run/status.json")))) .flatMap { ($0 as? [String: Any])?["state"] as? String }, "failed")
    }

    /// Outputs on a read-only file system are refused before any work.
    func testReadOnlyOutputs() throws {
        let ro = try mount("ro", size: "1m", readOnly: true)
        assertOneLine(Binary.run(["data", "plan", "subset", "data.h5", "--size", "8", "--out", ro + "/p.json"], cwd: root), names: ro)
        assertOneLine(Binary.run(["train", "tiny.toml", "--run-dir", ro + "/run"], cwd: root), names: ro)
        assertOneLine(Binary.run(["data", "import", "folder", "--from", root, "--out", ro + "/n.h5"], cwd: root), names: ro)
    }
}
