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

    /// train.precision / sample.precision: fp32 by default and then not written (config
    /// hashes of earlier runs stay), bf16 for U-Nets only, never with DP-SGD.
    func testPrecisionKeys() throws {
        let c = try TrainConfig.load(toml: "[train]\nprecision = \"bf16\"\n[sample]\nprecision = \"bf16\"\n", file: "p.toml")
        XCTAssertEqual(c.train.precision, .bf16); XCTAssertEqual(c.sample.precision, .bf16)
        let json = String(decoding: try c.canonicalJSON(), as: UTF8.self)
        XCTAssertTrue(json.contains("\"precision\" : \"bf16\""), json)
        let back = try JSONDecoder().decode(TrainConfig.self, from: Data(json.utf8))
        XCTAssertEqual(back, c)
        let d = try TrainConfig.load(toml: "", file: "d.toml")
        XCTAssertEqual(d.train.precision, .fp32); XCTAssertEqual(d.sample.precision, .fp32)
        XCTAssertFalse(String(decoding: try d.canonicalJSON(), as: UTF8.self).contains("precision"))
        XCTAssertEqual(SampleRequest(c.sample).tag, SampleRequest(d.sample).tag + "-bf16")
        func error(_ t: String) -> String {
            do { _ = try TrainConfig.load(toml: t, file: "bad.toml"); return "no error" } catch { return "\(error)" }
        }
        XCTAssertTrue(error("[train]\nprecision = \"fp16\"").contains("train.precision: must be one of fp32, bf16"), error("[train]\nprecision = \"fp16\""))
        XCTAssertTrue(error("[model]\nkind = \"dcgan\"\n[train]\nprecision = \"bf16\"").contains("train.precision"))
        XCTAssertTrue(error("[model]\nkind = \"dcgan\"\n[sample]\nprecision = \"bf16\"").contains("sample.precision"))
        XCTAssertTrue(error("[train]\nprecision = \"bf16\"\n[privacy]\nnoise_multiplier = 1.0").contains("does not apply to private training"))
    }

    /// privacy.enabled = false: the section's keys are still checked, but training is
    /// ordinary (a sweep's non-private reference row), global clipping stays.
    func testPrivacySectionCanBeDisabled() throws {
        let on = try TrainConfig.load(toml: "[privacy]\ntarget_epsilon = 10.0\nmultiplicity = 4\n", file: "p.toml")
        XCTAssertEqual(on.privacy?.targetEpsilon, 10); XCTAssertEqual(on.train.gradClip, 0)
        let off = try TrainConfig.load(toml: "[privacy]\nenabled = false\ntarget_epsilon = 10.0\nmultiplicity = 4\n", file: "p.toml")
        XCTAssertNil(off.privacy); XCTAssertEqual(off.train.gradClip, 1.0)
        XCTAssertEqual(try off.identityHash(), try TrainConfig.load(toml: "", file: "d.toml").identityHash())
        XCTAssertThrowsError(try TrainConfig.load(toml: "[privacy]\nenabled = false\n", file: "p.toml")) {
            XCTAssertTrue("\($0)".contains("give exactly one of privacy.noise_multiplier"), "\($0)")
        }
        XCTAssertThrowsError(try TrainConfig.load(toml: "[privacy]\nenabled = false\nnoise_multiplier = 1.0\nmultiplicty = 2\n", file: "p.toml"))
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

    func config(steps: Int, precision: String = "fp32") -> String {
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
        precision = "\(precision)"
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

    /// Trains `straight` to step 40 in one go and `killed` with a SIGKILL after step 15, then
    /// resumed; checks that their checkpoints hold the same bits.
    func killAndResume(precision: String) throws -> (cfg: String, straight: String, killed: String) {
        let cfg = dir + "/c-\(precision).toml"
        try Data(config(steps: 40, precision: precision).utf8).write(to: URL(fileURLWithPath: cfg))
        let straight = dir + "/straight-\(precision)", killed = dir + "/killed-\(precision)"
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
        return (cfg, straight, killed)
    }

    /// train.precision = "bf16" keeps the guarantee: bf16 products, same bits after a kill.
    func testKilledBF16RunResumesBitIdentically() throws {
        guard binary != nil else { return XCTFail("eidetic binary not built: run `swift build -c release` (make test does)") }
        let (_, straight, _) = try killAndResume(precision: "bf16")
        let resolved = try String(contentsOfFile: straight + "/config.resolved.json", encoding: .utf8)
        XCTAssertTrue(resolved.contains("\"precision\" : \"bf16\""), resolved)
        let ps = try launch(["sample", straight, "--count", "3", "--steps", "2", "--precision", "bf16"]); ps.waitUntilExit()
        XCTAssertEqual(ps.terminationStatus, 0)
        let file = try FileManager.default.contentsOfDirectory(atPath: straight + "/samples").first { $0.hasSuffix("-bf16.h5") }
        XCTAssertNotNil(file, "bf16 samples are named …-bf16.h5")
        if let file { XCTAssertEqual(try DatasetFile(straight + "/samples/" + file).attributes["precision"], .string("bf16")) }
        // and bf16 is what ran: the same run in fp32 logs another loss at step 5
        let cfg32 = dir + "/c5.toml", run32 = dir + "/fp32-5"
        try Data(config(steps: 5).utf8).write(to: URL(fileURLWithPath: cfg32))
        let p = try launch(["train", cfg32, "--run-dir", run32]); p.waitUntilExit()
        func firstLoss(_ run: String) throws -> Double? {
            let line = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").first.map(String.init) ?? "{}"
            return (try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["loss"] as? Double
        }
        let (l16, l32) = (try firstLoss(straight), try firstLoss(run32))
        XCTAssertNotNil(l16); XCTAssertNotNil(l32)
        XCTAssertNotEqual(l16, l32, "bf16 and fp32 training give different losses")
        if let l16, let l32 { XCTAssertEqual(l16, l32, accuracy: 0.05 * abs(l32), "but close ones") }
    }

    func testKilledRunResumesBitIdentically() throws {
        guard binary != nil else { return XCTFail("eidetic binary not built: run `swift build -c release` (make test does)") }
        let (cfg, _, killed) = try killAndResume(precision: "fp32")
        XCTAssertFalse(try String(contentsOfFile: killed + "/config.resolved.json", encoding: .utf8).contains("precision"),
                       "fp32 (the default) is not written, so earlier runs keep their config hash")
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
