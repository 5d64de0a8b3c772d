import Foundation
import HDF5
import Tensor
import TOML
import Privacy
import Training
import XCTest

/// `[privacy]`: the config's checks, δ's default and refusal, and a private DDPM run on the
/// shared loop: Poisson batches, ε in metrics.jsonl and the checkpoint, never above the
/// target, and exact resume (the Poisson sampler and the noise come from the step's key).
final class PrivateTrainingTests: XCTestCase {
    var dir = ""
    override func setUp() {
        dir = NSTemporaryDirectory() + "eidetic-dp-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    func toml(_ privacy: String, subset: Int = 64, extra: String = "") -> String {
        """
        [run]
        seed = 3
        [data]
        file = "\(Self.repository)/datasets/fashion-mnist-2k.h5"
        subset = \(subset)
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
        images = 64
        lr = 1e-3
        checkpoint_every = 3
        log_every = 1
        \(extra)
        [privacy]
        \(privacy)
        """
    }

    func error(_ text: String) -> String {
        do { _ = try TrainConfig.load(toml: text, file: "p.toml"); return "no error" } catch { return "\(error)" }
    }

    func testPrivacySectionIsCheckedKeyByKey() throws {
        let c = try TrainConfig.load(toml: toml("noise_multiplier = 1.1\nclip_norm = 0.5\nmultiplicity = 4"), file: "p.toml")
        XCTAssertEqual(c.privacy?.noiseMultiplier, 1.1); XCTAssertEqual(c.privacy?.clipNorm, 0.5); XCTAssertEqual(c.privacy?.multiplicity, 4)
        XCTAssertEqual(c.train.gradClip, 0, "DP clips per example; no global clip on top")
        XCTAssertNil(try TrainConfig.load(toml: "", file: "u.toml").privacy)
        XCTAssertTrue(error(toml("clip_norm = 1")).contains("p.toml:23: privacy.noise_multiplier: give exactly one"), error(toml("clip_norm = 1")))
        XCTAssertTrue(error(toml("noise_multiplier = 1\ntarget_epsilon = 3")).contains("privacy.target_epsilon: give exactly one"))
        XCTAssertTrue(error(toml("noise_multiplier = -1")).contains("privacy.noise_multiplier: must be ≥ 0"))
        XCTAssertTrue(error(toml("noise_multiplier = 1\ndelta = 1")).contains("privacy.delta: 1.0 must be in (0, 1)"))
        XCTAssertTrue(error(toml("noise_multiplier = 1\nmultiplicity = 0")).contains("privacy.multiplicity: must be ≥ 1"))
        XCTAssertTrue(error(toml("noise_multiplier = 1\nsigma = 1")).contains("privacy.sigma: unknown key"))
        XCTAssertTrue(error(toml("noise_multiplier = 1", extra: "grad_clip = 1.0")).contains("train.grad_clip: does not apply to private training"))
    }

    func testDeltaDefaultsBelowOneOverNAndLargerIsRefused() throws {
        var p = PrivacyConfig()
        XCTAssertEqual(p.delta(examples: 64), 0.01)
        XCTAssertEqual(p.delta(examples: 100), 0.001, "strictly below 1/N")
        XCTAssertEqual(p.delta(examples: 50_000), 1e-5)
        p.delta = 0.02
        XCTAssertEqual(p.delta(examples: 64), 0.02)
        let c = try TrainConfig.load(toml: toml("noise_multiplier = 1\ndelta = 0.02"), file: "p.toml")
        XCTAssertThrowsError(try Trainer(config: c, directory: dir + "/r")) { e in
            XCTAssertTrue("\(e)".contains("privacy.delta = 0.02 is not below 1/N = 0.015625 for the 64 training examples"), "\(e)")
        }
    }

    func testPrivateRunLogsEpsilonAndResumesExactly() throws {
        let c = try TrainConfig.load(toml: toml("target_epsilon = 8\nmultiplicity = 2"), file: "p.toml")
        let a = try Trainer(config: c, directory: dir + "/a"); a.output = { _ in }
        try a.run()
        let b = try Trainer(config: c, directory: dir + "/b"); b.output = { _ in }
        try b.run(stopAt: 5)
        let b2 = try Trainer(config: c, directory: dir + "/b"); b2.output = { _ in }
        try b2.run()
        let (x, attrs) = try TensorFile.load(dir + "/a/checkpoints/latest.h5")
        let (y, _) = try TensorFile.load(dir + "/b/checkpoints/latest.h5")
        XCTAssertEqual(x.keys.sorted(), y.keys.sorted())
        for (k, t) in x { XCTAssertEqual(t.doubles, y[k]?.doubles, "\(k) differs after resume") }

        let lines = try String(contentsOfFile: dir + "/b/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let rows = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(rows.compactMap { $0["step"] as? Int }, Array(1...8))
        let eps = rows.compactMap { $0["epsilon"] as? Double }
        XCTAssertEqual(eps.count, 8)
        XCTAssertEqual(eps, eps.sorted(), "ε grows with the steps")
        XCTAssertLessThanOrEqual(eps.last!, 8, "the calibrated σ never overshoots the target")
        XCTAssertGreaterThan(eps.last!, 7.9)
        guard case .double(let e)? = attrs["privacy_epsilon"], case .double(let d)? = attrs["privacy_delta"] else { return XCTFail("\(attrs)") }
        XCTAssertEqual(e, eps.last!, accuracy: 1e-4); XCTAssertEqual(d, 0.01)
        // Poisson batches: sizes vary around the expected 8 (64 examples at q = 1/8)
        let sizes = rows.compactMap { $0["batch_examples"] as? Double }
        XCTAssertGreaterThan(Set(sizes).count, 1, "\(sizes)")
    }

    /// A private discriminator: BatchNorm refused, one DP-SGD step per D update in the
    /// accountant, Poisson batches per D step, exact resume; the generator is not private.
    func testPrivateGANDiscriminatorResumesExactlyAndCountsEveryDStep() throws {
        func gan(_ preset: String, kind: String = "dcgan") -> String {
            """
            [run]
            seed = 2
            [data]
            file = "\(Self.repository)/datasets/fashion-mnist-2k.h5"
            subset = 64
            [model]
            kind = "\(kind)"
            preset = "\(preset)"
            image_channels = 1
            classes = 10
            [gan]
            d_steps = 2
            [train]
            batch_size = 8
            images = 64
            log_every = 1
            checkpoint_every = 3
            [privacy]
            noise_multiplier = 1.0
            """
        }
        XCTAssertTrue(error(gan("dcgan-32")).contains("model.discriminator_norm: \"batch\" mixes the examples"), error(gan("dcgan-32")))
        XCTAssertTrue(error(gan("dcgan-32-gn") + "\nmultiplicity = 2").contains("privacy.multiplicity: applies to diffusion models only"))
        for (preset, kind) in [("dcgan-32-gn", "dcgan"), ("sngan-32", "sngan")] {
            let c = try TrainConfig.load(toml: gan(preset, kind: kind), file: "g.toml")
            let a = try Trainer(config: c, directory: dir + "/\(kind)-a"); a.output = { _ in }
            try a.run()
            let b = try Trainer(config: c, directory: dir + "/\(kind)-b"); b.output = { _ in }
            try b.run(stopAt: 2)
            let b2 = try Trainer(config: c, directory: dir + "/\(kind)-b"); b2.output = { _ in }
            try b2.run()
            let (x, attrs) = try TensorFile.load(dir + "/\(kind)-a/checkpoints/latest.h5")
            let (y, _) = try TensorFile.load(dir + "/\(kind)-b/checkpoints/latest.h5")
            for (k, t) in x { XCTAssertEqual(t.doubles, y[k]?.doubles, "\(kind): \(k) differs after resume") }
            // 64 images at 8 × 2 a step: 4 training steps × 2 discriminator updates = 8 DP-SGD steps at q = 8/64, σ = 1
            let want = ResolvedPrivacyCheck.epsilon(q: 0.125, sigma: 1, steps: 8, delta: 0.01)
            guard case .double(let e)? = attrs["privacy_epsilon"] else { return XCTFail("\(attrs)") }
            XCTAssertEqual(e, want, accuracy: 1e-9 * want)
            let rows = try String(contentsOfFile: dir + "/\(kind)-a/metrics.jsonl", encoding: .utf8).split(separator: "\n")
                .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            XCTAssertEqual(rows.count, 4)
            XCTAssertTrue(rows.allSatisfy { $0["epsilon"] is Double && $0["batch_examples"] is Double && $0["d_loss"] is Double })
        }
    }
}

/// The accountant's ε (improved conversion) at Opacus's default orders, independently of the trainer.
enum ResolvedPrivacyCheck {
    static func epsilon(q: Double, sigma: Double, steps: Int, delta: Double) -> Double {
        PrivacySpent(phases: [(q, sigma, steps)], delta: delta).epsilonImproved
    }
}
