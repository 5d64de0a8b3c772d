import Foundation
import HDF5
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

/// The `[model]` section of the tiny U-Net the CLI tests train (8 base channels, two levels).
let tinyUNetModelTOML = """
[model]
preset = ""
image_channels = 1
image_size = 32
base_channels = 8
channel_multipliers = [1, 2]
groups = 4
time_features = 8
embedding_dim = 16
"""

/// A fresh fixture folder for runs of the binary: the embedded dataset as `data.h5` and
/// `config` written to `configName`; returns the folder (remove it in tearDown).
func makeRunFixture(_ prefix: String, config: String, configName: String) -> String {
    let root = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    try! FileManager.default.copyItem(atPath: BadInputTests.repo + "/datasets/fashion-mnist-2k.h5", toPath: root + "/data.h5")
    try! config.write(toFile: root + "/" + configName, atomically: true, encoding: .utf8)
    return root
}

/// Kill-and-resume through the real binary: a training run SIGKILLed at random steps, then
/// finished, must end bit-identical to an uninterrupted one. Runs log one metrics line per
/// step (`log_every = 1`), which is how the steps are counted from outside.
enum KillResume {
    /// The last step the run in `cwd/run` logged.
    static func loggedSteps(_ cwd: String, _ run: String) -> Int {
        guard let d = FileManager.default.contents(atPath: cwd + "/\(run)/metrics.jsonl") else { return 0 }
        return d.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
    }

    /// Trains `config` into `run` up to step `end`, SIGKILLing it `kills` times at a random
    /// step past the last one, then lets it finish; returns the finishing invocation.
    static func trainKilled(_ config: String, run: String, end: Int, cwd: String, kills: Int = 3,
                            file: StaticString = #filePath, line: UInt = #line) throws -> Binary.Result {
        var rng = SystemRandomNumberGenerator()
        for kill in 0..<kills {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Binary.path)
            p.arguments = ["train", config, "--run-dir", run, "--stop-at", "\(end)"]
            p.currentDirectoryURL = URL(fileURLWithPath: cwd)
            p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
            try p.run()
            // a random step past the last checkpoint, well before the end, and never before
            // the first checkpoint (three kills before it would leave nothing to resume from)
            let from = max(loggedSteps(cwd, run), 0)
            let target = min(end - 20, from + 2 + Int.random(in: 0...12, using: &rng))
            let deadline = Date().addingTimeInterval(60)
            let checkpoint = cwd + "/\(run)/checkpoints/latest.h5"
            while (loggedSteps(cwd, run) < target || !FileManager.default.fileExists(atPath: checkpoint)) && p.isRunning && Date() < deadline {
                usleep(2_000)
            }
            Foundation.kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            XCTAssertTrue(p.terminationReason == .uncaughtSignal, "kill \(kill): the trainer finished before it was killed", file: file, line: line)
        }
        return Binary.run(["train", config, "--run-dir", run, "--stop-at", "\(end)"], cwd: cwd)
    }

    /// Trains `config` uninterrupted into `ref` and killed-and-resumed into `int`, both to `end`,
    /// and checks both succeed and end with the same checkpoint tensors, byte for byte.
    static func assertResumesLikeUninterrupted(_ config: String, end: Int, cwd: String,
                                               file: StaticString = #filePath, line: UInt = #line) throws {
        let ref = Binary.run(["train", config, "--run-dir", "ref", "--stop-at", "\(end)"], cwd: cwd)
        XCTAssertEqual(ref.status, 0, ref.stderr, file: file, line: line)
        let r = try trainKilled(config, run: "int", end: end, cwd: cwd, file: file, line: line)
        XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
        XCTAssertTrue(r.stdout.contains("resuming at step"), r.stdout, file: file, line: line)
        try assertSameTensors(cwd + "/ref/checkpoints/latest.h5", cwd + "/int/checkpoints/latest.h5", file: file, line: line)
    }

    /// Every tensor of two checkpoints, byte for byte.
    static func assertSameTensors(_ a: String, _ b: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (x, _) = try TensorFile.load(a), (y, _) = try TensorFile.load(b)
        XCTAssertEqual(x.keys.sorted(), y.keys.sorted(), file: file, line: line)
        for (k, t) in x {
            guard let u = y[k] else { continue }
            XCTAssertEqual(Data(bytes: t.rawPointer, count: t.count * t.dtype.size), Data(bytes: u.rawPointer, count: u.count * u.dtype.size),
                           "\(k) differs", file: file, line: line)
        }
    }
}
