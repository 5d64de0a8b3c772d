import Data
import Foundation
import HDF5
import TOML
import Tensor
import Training
import XCTest

final class ConfigTests: XCTestCase {
    func testStrictTOMLConfig() throws {
        let text = """
        # comment
        [run]
        name = "x"   # trailing comment
        seed = 3
        [model]
        preset = "unet-s"
        base_channels = 64
        [train]
        lr = 2e-4
        images = 1_000
        [sample]
        sampler = "ddpm"
        """
        let c = try TrainConfig.load(toml: text, file: "t.toml", overrides: ["train.batch_size=16", "sample.steps = 20"])
        XCTAssertEqual(c.run.seed, 3); XCTAssertEqual(c.model.baseChannels, 64); XCTAssertEqual(c.train.learningRate, 2e-4)
        XCTAssertEqual(c.train.images, 1000); XCTAssertEqual(c.train.batchSize, 16); XCTAssertEqual(c.sample.sampler.steps, 20)
        XCTAssertEqual(c.totalSteps, 63)
        func error(_ t: String) -> String {
            do { _ = try TrainConfig.load(toml: t, file: "bad.toml"); return "no error" } catch { return "\(error)" }
        }
        XCTAssertTrue(error("[train]\nlrr = 1").contains("bad.toml:2: train.lrr: unknown key"))
        XCTAssertTrue(error("[train]\nlr = \"fast\"").contains("train.lr: expected a number"))
        XCTAssertTrue(error("[train]\nbatch_size = 0").contains("train.batch_size: must be ≥ 1"))
        XCTAssertTrue(error("[model]\npreset = \"big\"").contains("unknown preset"))
        XCTAssertTrue(error("[model]\nimage_size = 30").contains("image_size"))
        XCTAssertTrue(error("[sample]\nsampler = \"euler\"").contains("sample.sampler: must be one of ddpm, ddim"))
        XCTAssertTrue(error("[train\nlr = 1").contains("bad.toml:1:"))
        XCTAssertTrue(error("[train]\nlr = 1\nlr = 2").contains("bad.toml:3: key 'lr' is defined twice"))
        XCTAssertTrue(error("[train]\nlr = fast").contains("bad.toml:2: cannot read value 'fast'"))
        XCTAssertTrue(error("bogus = 1").contains("bogus: unknown key"))
    }

    func testTOMLValues() throws {
        let t = try parseTOML("a = [1, 2, 3]\nb = 'lit'\nc = \"e\\\"s\"\nd = -1.5e3\ne = true\n[x.y]\nz = 1\n", file: "v")
        XCTAssertEqual(t["a"], .array([.integer(1), .integer(2), .integer(3)]))
        XCTAssertEqual(t["b"], .string("lit")); XCTAssertEqual(t["c"], .string("e\"s"))
        XCTAssertEqual(t["d"], .float(-1500)); XCTAssertEqual(t["e"], .bool(true))
        guard case .table(let x)? = t["x"], case .table(let y)? = x["y"] else { return XCTFail("nested table") }
        XCTAssertEqual(y["z"], .integer(1))
    }
}

/// Runs of the real `eidetic` binary: an interrupted (SIGKILL) run resumes to the same
/// bits as an uninterrupted one.
final class ResumeTests: XCTestCase {
    var dir: String!
    override func setUp() { dir = NSTemporaryDirectory() + "eidetic-train-\(UUID().uuidString)"; try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    var repo: String { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path }
    var binary: String? {
        let candidates = [Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("eidetic").path,
                          repo + "/.build/release/eidetic", repo + "/.build/debug/eidetic"]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    func config(steps: Int) -> String {
        """
        [run]
        name = "resume-test"
        seed = 11
        [data]
        file = "\(repo)/datasets/fashion-mnist-2k.h5"
        subset = 20
        flip = true
        [model]
        preset = ""
        image_channels = 1
        image_size = 32
        base_channels = 8
        channel_multipliers = [1, 2]
        groups = 4
        time_features = 8
        embedding_dim = 16
        dropout = 0.1
        [train]
        batch_size = 8
        images = \(8 * steps)
        lr = 1e-3
        warmup_steps = 3
        checkpoint_every = 5
        log_every = 5
        threads = 2
        """
    }

    func launch(_ args: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary!)
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    func checkpointStep(_ run: String) -> Int {
        guard let (_, a) = try? TensorFile.load(run + "/checkpoints/latest.h5"), case .int(let s)? = a["step"] else { return -1 }
        return Int(s)
    }

    func testKilledRunResumesBitIdentically() throws {
        guard binary != nil else { return XCTFail("eidetic binary not built: run `swift build -c release` (make test does)") }
        let cfg = dir + "/c.toml"
        try Data(config(steps: 40).utf8).write(to: URL(fileURLWithPath: cfg))
        let straight = dir + "/straight", killed = dir + "/killed"
        let p1 = try launch(["train", cfg, "--run-dir", straight]); p1.waitUntilExit()
        XCTAssertEqual(p1.terminationStatus, 0)

        let p2 = try launch(["train", cfg, "--run-dir", killed])
        let deadline = Date().addingTimeInterval(120)
        while checkpointStep(killed) < 15 && Date() < deadline && p2.isRunning { usleep(20_000) }
        kill(p2.processIdentifier, SIGKILL)
        p2.waitUntilExit()
        let at = checkpointStep(killed)
        XCTAssertGreaterThanOrEqual(at, 15); XCTAssertLessThan(at, 40, "the run finished before it could be killed")
        let p3 = try launch(["train", cfg, "--run-dir", killed]); p3.waitUntilExit()
        XCTAssertEqual(p3.terminationStatus, 0)

        let (a, _) = try TensorFile.load(straight + "/checkpoints/latest.h5")
        let (b, _) = try TensorFile.load(killed + "/checkpoints/latest.h5")
        XCTAssertEqual(a.keys, b.keys)
        for (k, t) in a {
            let u = b[k]!
            XCTAssertEqual(Data(bytes: t.rawPointer, count: t.count * 4), Data(bytes: u.rawPointer, count: u.count * 4), "\(k) differs after resume")
        }
        // metrics cover every logged step once, in order
        let steps = try String(contentsOfFile: killed + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").compactMap { line -> Int? in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["step"] as? Int
        }
        XCTAssertEqual(steps, Array(stride(from: 5, through: 40, by: 5)))
        let status = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: killed + "/status.json"))) as! [String: Any]
        XCTAssertEqual(status["state"] as? String, "done")

        // samples: file layout and a different config in the same directory is refused
        let ps = try launch(["sample", killed, "--count", "5", "--steps", "3"]); ps.waitUntilExit()
        XCTAssertEqual(ps.terminationStatus, 0)
        let files = try FileManager.default.contentsOfDirectory(atPath: killed + "/samples")
        XCTAssertEqual(Set(files.map { ($0 as NSString).pathExtension }), ["h5", "png"])
        let sampleFile = killed + "/samples/" + files.first { $0.hasSuffix(".h5") }!
        let ds = try DatasetFile(sampleFile)
        XCTAssertEqual(try ds.shape("samples"), [5, 1, 32, 32])
        XCTAssertEqual(ds.attributes["checkpoint_step"], .int(40))
        // training longer continues the same run
        try Data(config(steps: 45).utf8).write(to: URL(fileURLWithPath: cfg))
        let p5 = try launch(["train", cfg, "--run-dir", killed]); p5.waitUntilExit()
        XCTAssertEqual(p5.terminationStatus, 0)
        XCTAssertEqual(checkpointStep(killed), 45)
        // any other change is refused
        try Data(config(steps: 45).replacingOccurrences(of: "lr = 1e-3", with: "lr = 2e-3").utf8).write(to: URL(fileURLWithPath: cfg))
        let p4 = Process(); p4.executableURL = URL(fileURLWithPath: binary!); p4.arguments = ["train", cfg, "--run-dir", killed]
        let pipe = Pipe(); p4.standardError = pipe; p4.standardOutput = pipe
        try p4.run(); p4.waitUntilExit()
        XCTAssertNotEqual(p4.terminationStatus, 0)
        XCTAssertTrue(String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).contains("different config"))
    }
}
