import Data
import Diffusion
import Evaluation
import Foundation
import Tensor
import Training
import XCTest

/// End to end on tiny runs: a membership plan's models trained for a few steps, then
/// `eval mia` (plan and single-run modes) and `eval extraction` write their folders — and
/// refuse runs that do not match the plan.
final class ReportTests: XCTestCase {
    var dir: String!
    override func setUp() { dir = NSTemporaryDirectory() + "eidetic-eval-\(UUID().uuidString)"; try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }
    var repo: String { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path }

    func config(plan: String, model: Int, seed: Int = 0) -> String {
        """
        [run]
        name = "mia-\(model)"
        seed = \(seed)
        [data]
        file = "\(repo)/datasets/fashion-mnist-2k.h5"
        plan = "\(plan)"
        plan_model = \(model)
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
        batch_size = 4
        images = 24
        lr = 1e-3
        checkpoint_every = 6
        log_every = 6
        threads = 2
        [sample]
        steps = 2
        """
    }

    func train(_ toml: String, _ name: String) throws -> RunDirectory {
        let c = try TrainConfig.load(toml: toml, file: name + ".toml")
        let path = dir + "/" + name
        try Trainer(config: c, directory: path).run(stopAfter: nil)
        return RunDirectory(path)
    }

    func testPlanModeSingleRunAndExtractionReports() throws {
        let file = repo + "/datasets/fashion-mnist-2k.h5"
        let split = try DatasetFile(file).load("train")
        let ref = DatasetReference(file: file, split: "train", contentSHA256: DatasetReference.contentHash(split))
        let planPath = dir + "/plan.json", otherPlan = dir + "/other.json"
        let plan = try MembershipPlan(dataset: ref, pool: Array(100..<116), models: 4, seed: 1)
        try PlanFile.write(plan, to: planPath)
        try PlanFile.write(try MembershipPlan(dataset: ref, pool: Array(100..<116), models: 4, seed: 2), to: otherPlan)
        let runs = try (0..<4).map { try train(config(plan: planPath, model: $0), "m\($0)") }
        XCTAssertEqual(try trainingSelection(runs[2].loadConfig().data).indices, plan.members(model: 2))

        var signal = LossSignalConfig()
        signal.timesteps = [50, 200]; signal.draws = 2; signal.flip = true
        let out = dir + "/mia"
        let r = try MembershipReport.withPlan(planPath, runs: runs, attacks: [.globalThreshold, .onlineFixedVariance, .offlineFixedVariance],
                                              signal: signal, out: out, bootstrap: 20, log: { _ in })
        XCTAssertEqual(r.results.map(\.attack), [.globalThreshold, .onlineFixedVariance, .offlineFixedVariance])
        XCTAssertEqual(r.results[0].metrics.trials, 4 * 16)
        XCTAssertEqual(r.results[0].metrics.members, 4 * 8)
        XCTAssertEqual(r.models.map(\.checkpointStep), [6, 6, 6, 6])
        for f in ["summary.json", "mia.h5", "roc.svg"] { XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + f), f) }
        // signals are cached per run and reused
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: runs[0].path + "/eval").filter { $0.hasPrefix("signals-") }.count, 1)
        let again = try MembershipReport.withPlan(planPath, runs: runs, attacks: [.globalThreshold], signal: signal, out: out + "-again", bootstrap: 20, log: { _ in })
        XCTAssertEqual(again.results[0].metrics.auc, r.results[0].metrics.auc)

        // refusals: a missing model, a run of another plan, a model trained twice
        func message(_ body: () throws -> Void) -> String { do { try body(); return "no error" } catch { return "\(error)" } }
        XCTAssertTrue(message { _ = try MembershipReport.withPlan(planPath, runs: Array(runs.prefix(3)), signal: signal, out: out, log: { _ in }) }
            .contains("no run for plan model(s) 3"))
        let stranger = try train(config(plan: otherPlan, model: 3), "other3")
        XCTAssertTrue(message { _ = try MembershipReport.withPlan(planPath, runs: Array(runs.prefix(3)) + [stranger], signal: signal, out: out, log: { _ in }) }
            .contains("differs from"))
        let twin = try train(config(plan: planPath, model: 0, seed: 5), "twin0")
        XCTAssertTrue(message { _ = try MembershipReport.withPlan(planPath, runs: runs + [twin], signal: signal, out: out, log: { _ in }) }
            .contains("trained by both"))

        let longer = try train(config(plan: planPath, model: 1).replacingOccurrences(of: "images = 24", with: "images = 32"), "longer1")
        XCTAssertTrue(message { _ = try MembershipReport.withPlan(planPath, runs: [runs[0], longer, runs[2], runs[3]], signal: signal, out: out, log: { _ in }) }
            .contains("different checkpoint steps"))

        // single-run mode: members are the run's half, non-members other images of the split
        let single = try MembershipReport.singleRun(runs[0], nonMembers: 10, signal: signal, bootstrap: 20, log: { _ in })
        let half = plan.members(model: 0).count
        XCTAssertEqual(single.examples, half + 10); XCTAssertEqual(single.members, half)
        XCTAssertEqual(single.results.map(\.attack), [.globalThreshold])

        // extraction: samples of run 0 against its own and another run's training set
        let samples = try generateSamples(run: runs[0], request: SampleRequest(count: 6, batchSize: 6, sampler: SamplerConfig(kind: .ddim, steps: 2))).file
        let own = try ExtractionReport.run(run: runs[0], samplesFile: samples, config: ExtractionConfig(), clique: CliqueConfig())
        XCTAssertEqual(own.extraction.generations, 6)
        XCTAssertEqual(own.extraction.trainingImages, half)
        XCTAssertEqual(own.extraction.neighborsUsed, half)
        let vs = try ExtractionReport.run(run: runs[0], samplesFile: samples, trainingRun: runs[1])
        XCTAssertTrue(vs.outputs["summary"]!.contains("-vs-m1-"))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: own.outputs["summary"]!))) as! [String: Any]
        XCTAssertNotNil(json["extraction"]); XCTAssertNotNil(json["samplesAttributes"])

        // inpainting: single-run and plan cases, tiny settings
        var ic = InpaintConfig()
        ic.count = 3; ic.keep = 2; ic.sampler = SamplerConfig(kind: .ddim, steps: 3, eta: 1); ic.rank.draws = 1
        let singleCases = try InpaintReport.singleRunCases(runs[0], targets: 2, seed: 0)
        XCTAssertEqual(singleCases.map(\.2), [true, true, false, false])
        XCTAssertTrue(singleCases.prefix(2).allSatisfy { plan.members(model: 0).contains($0.0) })
        let ip = try InpaintReport.run(cases: singleCases, mode: "single-run", config: ic, out: dir + "/inpaint", log: { _ in })
        XCTAssertEqual(ip.cases.count, 4); XCTAssertEqual(ip.cases[0].outcome.kept.count, 2)
        XCTAssertEqual(ip.memberKeptMean["count"], 2)
        let pc = try InpaintReport.planCases(planPath, runs: runs, targets: 3)
        XCTAssertEqual(pc.count, 6)
        for (n, (id, run, member)) in pc.enumerated() {
            XCTAssertEqual(id, plan.pool[n / 2])
            let m = try run.loadConfig().data.planModel
            XCTAssertEqual(plan.isMember(model: m, poolIndex: n / 2), member)
        }

        // quality: a classifier trained one epoch on the embedded set; the barely trained model's
        // samples are far from real images, real training images sit at the floor
        let clf = dir + "/clf.h5"
        let record = try QualityClassifier.train(dataFile: file, epochs: 1, batchSize: 64, out: clf, log: { _ in })
        XCTAssertGreaterThan(record.testAccuracy, 0.3)
        let q = try QualityReport.run(run: runs[0], samplesFile: samples, classifierPath: clf, maxReference: 200)
        XCTAssertEqual(q.classifier.checkpointSHA256, try QualityClassifier.fileSHA256(clf))
        XCTAssertGreaterThan(q.fcd, 2 * q.fcdRealFloor)
        XCTAssertEqual(q.baselines?.map(\.name), ["gaussian-noise"], "a U-Net run has no untrained-generator baseline")
        XCTAssertGreaterThan(q.baselines![0].fcd, 2 * q.fcdRealFloor)

        // outliers: the pool's outlier scores joined with the plan attack and run 0's extraction
        let scores = OutlierScores(dataset: ref, images: split, indices: plan.pool, neighbors: 5)
        let joined = try OutlierReport.run(outliers: scores, outlierFile: "pool-outliers", mia: out + "/mia.h5", attack: "online-fixed-variance",
                                           extraction: own.outputs["arrays"]!, out: dir + "/outliers")
        XCTAssertEqual(joined.joins.map(\.examples), [16, 16, half, half])
        XCTAssertTrue(joined.joins.allSatisfy { $0.spearman.isNaN || abs($0.spearman) <= 1 })
        XCTAssertEqual(joined.joins[0].deciles.map { Int($0[2]) }.reduce(0, +), 16)
        // scores of another pool share no examples: refused
        let elsewhere = OutlierScores(dataset: ref, images: split, indices: Array(500..<520), neighbors: 5)
        XCTAssertTrue(message { _ = try OutlierReport.run(outliers: elsewhere, outlierFile: "other", mia: out + "/mia.h5", attack: "global-threshold", extraction: nil, out: dir + "/o2") }
            .contains("examples in common"))
    }

    /// The noise baseline matches each pixel's mean and spread and nothing else: a constant
    /// pixel stays constant, a pixel that is 100 or 200 half the time becomes N(150, 50²).
    func testGaussianNoiseBaselineMatchesPixelMoments() {
        let a = [UInt8](repeating: 100, count: 4), b = [UInt8](repeating: 200, count: 4)
        var bytes: [UInt8] = []
        for i in 0..<10 { bytes += i % 2 == 0 ? a : b }
        for i in 0..<10 { bytes[i * 4 + 3] = 7 }   // pixel 3: always 7
        let set = ImageSet(images: bytes, labels: Array(repeating: 0, count: 10), channels: 1, height: 2, width: 2, classNames: [])
        let noise = gaussianNoiseImages(like: set, count: 20_000, key: RandomKey(seed: 3))
        XCTAssertEqual(noise.count, 20_000); XCTAssertEqual(noise.shape, [20_000, 1, 2, 2])
        for j in 0..<3 {
            let v = (0..<noise.count).map { Double(noise.images[$0 * 4 + j]) }
            let m = v.reduce(0, +) / Double(v.count)
            let sd = (v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(v.count)).squareRoot()
            XCTAssertEqual(m, 150, accuracy: 1.5, "pixel \(j) mean")
            XCTAssertEqual(sd, 50, accuracy: 1.5, "pixel \(j) std")
        }
        XCTAssertTrue((0..<noise.count).allSatisfy { noise.images[$0 * 4 + 3] == 7 })
        XCTAssertEqual(gaussianNoiseImages(like: set, count: 50, key: RandomKey(seed: 3)).images,
                       gaussianNoiseImages(like: set, count: 50, key: RandomKey(seed: 3)).images, "seeded")
        XCTAssertNotEqual(gaussianNoiseImages(like: set, count: 50, key: RandomKey(seed: 4)).images,
                          gaussianNoiseImages(like: set, count: 50, key: RandomKey(seed: 3)).images)
    }
}
