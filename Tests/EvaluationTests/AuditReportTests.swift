import Data
import Evaluation
import Foundation
import HDF5
import Tensor
import Training
import XCTest

/// `eval audit` end to end on tiny real runs: a private DDPM trained on an audit plan is
/// audited, and its empirical lower bound on ε never exceeds the accountant's ε (both are
/// reported); the same command on a non-private run reports the bound alone; runs not
/// trained on an audit plan are refused.
final class AuditReportTests: XCTestCase {
    var dir: String!
    override func setUp() { dir = NSTemporaryDirectory() + "eidetic-audit-\(UUID().uuidString)"; try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }
    var repo: String { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path }

    func config(plan: String, privacy: String?, images: Int = 240) -> String {
        """
        [run]
        seed = 1
        [data]
        file = "\(repo)/datasets/fashion-mnist-2k.h5"
        plan = "\(plan)"
        flip = false
        [model]
        preset = ""
        image_channels = 1
        image_size = 32
        base_channels = 8
        channel_multipliers = [1, 2]
        groups = 4
        time_features = 8
        embedding_dim = 16
        [train]
        batch_size = 8
        images = \(images)
        lr = 2e-3
        checkpoint_every = 30
        log_every = 30
        threads = 2
        """ + (privacy.map { "\n[privacy]\n" + $0 } ?? "")
    }

    func train(_ toml: String, _ name: String) throws -> RunDirectory {
        let c = try TrainConfig.load(toml: toml, file: name + ".toml")
        let t = try Trainer(config: c, directory: dir + "/" + name)
        t.output = { _ in }
        try t.run()
        return RunDirectory(dir + "/" + name)
    }

    func testPrivateRunsLowerBoundStaysBelowTheAccountantsEpsilon() throws {
        let file = repo + "/datasets/fashion-mnist-2k.h5"
        let split = try DatasetFile(file).load("train")
        let ref = DatasetReference(file: file, split: "train", contentSHA256: DatasetReference.contentHash(split))
        let plan = try AuditPlan(dataset: ref, pool: Array(0..<400), base: Array(400..<416), canaries: 96, seed: 2)
        let planPath = dir + "/audit.json"
        try PlanFile.write(plan, to: planPath)
        var signal = LossSignalConfig()
        signal.timesteps = [50, 200]; signal.draws = 2

        // DP-SGD at ε = 8 (improved conversion) over the run: the bound must stay below it
        let run = try train(config(plan: planPath, privacy: "target_epsilon = 8\nclip_norm = 1.0"), "dp")
        let r = try AuditReport.audit(run, signal: signal, log: { _ in })
        let attrs = try HDF5File.open(run.checkpoint).attributes()
        guard case .double(let eps)? = attrs["privacy_epsilon"], case .double(let delta)? = attrs["privacy_delta"] else { return XCTFail("\(attrs)") }
        XCTAssertEqual(r.accountantEpsilon, eps); XCTAssertEqual(r.accountantDelta, delta)
        XCTAssertEqual(r.outcome.delta, delta, "the bound uses the run's δ"); XCTAssertEqual(r.deltaSource, "the run's privacy delta")
        XCTAssertEqual(r.outcome.canaries, 96); XCTAssertEqual(r.outcome.included, plan.inclusion.filter { $0 }.count)
        XCTAssertEqual(r.trainingExamples, plan.trainingIndices.count)
        XCTAssertGreaterThan(eps, 7); XCTAssertLessThanOrEqual(eps, 8)
        XCTAssertGreaterThanOrEqual(r.outcome.epsilonLowerBound, 0)
        XCTAssertLessThanOrEqual(r.outcome.epsilonLowerBound, eps, "empirical lower bound above the accountant's ε: \(r.lines)")
        XCTAssertTrue(r.lines.joined(separator: "\n").contains("accountant ε ≤"), "\(r.lines)")
        for f in ["summary.json", "audit.h5"] { XCTAssertTrue(FileManager.default.fileExists(atPath: r.outputs[f == "audit.h5" ? "arrays" : "summary"]!), f) }
        let saved = try HDF5File.open(r.outputs["arrays"]!)
        XCTAssertEqual(try saved.readTensor("scores").shape, [96])
        XCTAssertEqual(try saved.readInt64("canaries/included").values, plan.inclusion.map { $0 ? 1 : 0 })

        // the same folder is not overwritten without force; fixed guess counts are one test
        func message(_ body: () throws -> Void) -> String { do { try body(); return "no error" } catch { return "\(error)" } }
        XCTAssertTrue(message { _ = try AuditReport.audit(run, signal: signal, log: { _ in }) }.contains("pass --force"))
        let fixed = try AuditReport.audit(run, signal: signal, guesses: (20, 20), log: { _ in })
        XCTAssertEqual(fixed.outcome.tests, 1); XCTAssertEqual(fixed.outcome.guesses, 40)
        XCTAssertLessThanOrEqual(fixed.outcome.epsilonLowerBound, eps)
        XCTAssertTrue(message { _ = try AuditReport.audit(run, signal: signal, guesses: (90, 10), log: { _ in }) }.contains("need 1 ≤ IN + OUT guesses ≤ 96"))

        // a non-private run on the same plan: the bound alone, at δ = 1e-5
        let open = try train(config(plan: planPath, privacy: nil), "open")
        let o = try AuditReport.audit(open, signal: signal, log: { _ in })
        XCTAssertNil(o.accountantEpsilon)
        XCTAssertEqual(o.outcome.delta, 1e-5); XCTAssertEqual(o.deltaSource, "the usual 1e-5")
        XCTAssertTrue(o.lines.joined(separator: "\n").contains("not a private run"), "\(o.lines)")

        // a run not trained on an audit plan is refused with the way to make one
        let subset = try SubsetPlan(dataset: ref, labels: split.labels, classes: split.classNames.count, size: 16, seed: 1)
        try PlanFile.write(subset, to: dir + "/subset.json")
        let plain = try train(config(plan: dir + "/subset.json", privacy: nil, images: 16), "plain")
        XCTAssertTrue(message { _ = try AuditReport.audit(plain, signal: signal, log: { _ in }) }.contains("was not trained on an audit plan"))
    }
}
