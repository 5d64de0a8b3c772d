import Foundation
import XCTest

/// Runs the real `eidetic` binary (built beside the test bundle, or $EIDETIC_BIN) in a
/// fixture folder and reports what a person would see: exit status, stdout, stderr.
enum Binary {
    static var path: String {
        if let p = ProcessInfo.processInfo.environment["EIDETIC_BIN"] { return p }
        // .build/<config>/EideticPackageTests.xctest → .build/<config>/eidetic
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("eidetic").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        for c in [".build/release/eidetic", ".build/debug/eidetic"] where FileManager.default.isExecutableFile(atPath: c) {
            return FileManager.default.currentDirectoryPath + "/" + c
        }
        return "eidetic"
    }

    struct Result {
        var status: Int32
        var signaled: Bool
        var stdout: String
        var stderr: String
        var timedOut: Bool
    }

    /// Runs `eidetic args…` in `cwd`. `fileSizeLimitKB` runs it under `ulimit -f` with
    /// SIGXFSZ ignored, so writes past that size fail with EFBIG as on a full disk.
    static func run(_ args: [String], cwd: String, fileSizeLimitKB: Int? = nil, env: [String: String] = [:], timeout: Double = 120) -> Result {
        let p = Process()
        if let kb = fileSizeLimitKB {
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            // dash and bash count ulimit -f in 1024-byte blocks
            p.arguments = ["-c", "ulimit -f \(kb); trap '' XFSZ; exec \"$0\" \"$@\"", path] + args
        } else {
            p.executableURL = URL(fileURLWithPath: path)
            p.arguments = args
        }
        p.currentDirectoryURL = URL(fileURLWithPath: cwd)
        var e = ProcessInfo.processInfo.environment
        for (k, v) in env { e[k] = v }
        p.environment = e
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        p.standardInput = FileHandle.nullDevice
        var outData = Data(), errData = Data()
        let group = DispatchGroup()
        group.enter(); DispatchQueue.global().async { outData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter(); DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        do { try p.run() } catch { return Result(status: -1, signaled: false, stdout: "", stderr: "cannot start \(path): \(error)", timedOut: false) }
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while p.isRunning {
            if Date() > deadline { p.terminate(); timedOut = true; break }
            usleep(5_000)
        }
        p.waitUntilExit()
        group.wait()
        return Result(status: p.terminationStatus, signaled: p.terminationReason == .uncaughtSignal,
                      stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self), timedOut: timedOut)
    }
}

/// Every file under a folder with its size and content hash, to prove that a refused
/// command modified nothing. The run lock's text (which names the last holder) is left out.
struct FolderSnapshot: Equatable {
    var files: [String: String]

    init(_ root: String) {
        var f: [String: String] = [:]
        let fm = FileManager.default
        if let e = fm.enumerator(atPath: root) {
            for case let rel as String in e {
                let p = root + "/" + rel
                var isDir: ObjCBool = false
                guard fm.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue, !rel.hasSuffix(".lock") else { continue }
                let d = fm.contents(atPath: p) ?? Data()
                var h: UInt64 = 0xcbf29ce484222325   // FNV-1a over the bytes
                d.withUnsafeBytes { for b in $0 { h = (h ^ UInt64(b)) &* 0x100000001b3 } }
                f[rel] = "\(d.count):\(String(h, radix: 16))"
            }
        }
        files = f
    }

    /// Files that existed before and differ or are gone now.
    func changed(since before: FolderSnapshot) -> [String] {
        before.files.keys.filter { files[$0] != before.files[$0] }.sorted()
    }
}
