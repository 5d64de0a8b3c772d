import Foundation
import HDF5
import Tensor
import XCTest

/// GAN runs through the real binary: SIGKILL at random steps, three times, then resume,
/// ends bit-identical to an uninterrupted run (weights, BatchNorm statistics, spectral-norm
/// vectors, both optimizers, the EMA); samples go through the same sample files.
final class GANRunTests: XCTestCase {
    var root = ""

    /// A small class-conditional SNGAN-style model with BatchNorm in G, spectral norm in D,
    /// hinge loss, two D steps per G step and DiffAugment: every piece of GAN state.
    static let config = """
    [run]
    name = "tiny-gan"
    seed = 3
    [data]
    file = "data.h5"
    subset = 64
    [model]
    kind = "sngan"
    image_channels = 1
    image_size = 32
    latent_dim = 16
    generator_channels = 32
    discriminator_channels = 8
    classes = 10
    [gan]
    d_steps = 2
    diffaugment = "color,translation,cutout"
    [train]
    batch_size = 8
    images = 100000
    checkpoint_every = 7
    log_every = 1
    [sample]
    count = 12
    batch_size = 5
    """

    override func setUp() { root = makeRunFixture("eidetic-gan", config: GANRunTests.config, configName: "gan.toml") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: root) }

    func testKilledThreeTimesResumesBitExactly() throws {
        let end = 80
        try KillResume.assertResumesLikeUninterrupted("gan.toml", end: end, cwd: root)
        let (tree, attrs) = try TensorFile.load(root + "/int/checkpoints/latest.h5")
        XCTAssertEqual(attrs["model_kind"], .string("sngan"))
        for prefix in ["generator.", "discriminator.", "optimizer_g.", "optimizer_d.", "ema."] {
            XCTAssertTrue(tree.keys.contains { $0.hasPrefix(prefix) }, "the checkpoint holds \(prefix)*")
        }
        XCTAssertTrue(tree.keys.contains { $0.hasPrefix("discriminator.") && ($0.hasSuffix(".u") || $0.hasSuffix(".v")) },
                      "spectral-norm vectors are checkpointed: \(tree.keys.filter { $0.hasPrefix("discriminator.") })")
        XCTAssertTrue(tree.keys.contains { $0.hasPrefix("generator.") && $0.contains("running") }, "G's BatchNorm statistics are checkpointed")
        // metrics: losses, D accuracies and the diversity statistic, once per logged step
        let metrics = try String(contentsOfFile: root + "/int/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(metrics.count, end, "no duplicated or lost metric lines across the kills")
        for key in ["d_loss", "g_loss", "d_real_acc", "d_fake_acc", "fake_std"] { XCTAssertTrue(metrics[0].contains("\"\(key)\""), String(metrics[0])) }

        // sampling: the same sample files as diffusion runs; sample i depends only on seed i
        let a = Binary.run(["sample", "int"], cwd: root)
        XCTAssertEqual(a.status, 0, a.stderr)
        let b = Binary.run(["sample", "int", "--count", "3", "--first-seed", "4", "--batch-size", "2"], cwd: root)
        XCTAssertEqual(b.status, 0, b.stderr)
        let all = try HDF5File.open(root + "/int/samples/step\(end)-gan-ema-n12-seed0.h5").readUInt8("samples/images")
        let part = try HDF5File.open(root + "/int/samples/step\(end)-gan-ema-n3-seed4.h5").readUInt8("samples/images")
        let size = 32 * 32
        XCTAssertEqual(Array(all.values[(4 * size)..<(7 * size)]), part.values, "samples 4…6 are the same drawn alone in batches of 2")
        let bad = Binary.run(["sample", "int", "--steps", "5"], cwd: root)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--steps") && bad.stderr.contains("sngan"), bad.stderr)
    }

    /// Extraction, the discriminator-score membership attack (one run, and LiRA over a
    /// membership plan of GAN runs) work on GAN runs; diffusion-only settings are refused.
    func testEvaluatorWorksOnGANRuns() throws {
        let small = GANRunTests.config.replacingOccurrences(of: "images = 100000", with: "images = 320")
            .replacingOccurrences(of: "d_steps = 2", with: "d_steps = 1")
        try small.write(toFile: root + "/small.toml", atomically: true, encoding: .utf8)
        let t = Binary.run(["train", "small.toml", "--run-dir", "g", "--sample"], cwd: root)
        XCTAssertEqual(t.status, 0, t.stderr)
        // --sample: the finished run draws its config's [sample] request once
        let drawn = try FileManager.default.contentsOfDirectory(atPath: root + "/g/samples").filter { $0.hasSuffix(".h5") }
        XCTAssertEqual(drawn.count, 1, "\(drawn)")
        XCTAssertTrue(drawn[0].hasPrefix("step40-gan-ema-") && t.stdout.contains(drawn[0]), t.stdout)
        let again = Binary.run(["train", "small.toml", "--run-dir", "g", "--sample"], cwd: root)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stdout.contains("already drawn"), again.stdout)
        let e = Binary.run(["eval", "extraction", "g", "--count", "16", "--no-clique"], cwd: root)
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertTrue(e.stdout.contains("step40-gan-ema-n16-seed0.h5"), e.stdout)
        let m = Binary.run(["eval", "mia", "g", "--non-members", "32", "--flip"], cwd: root)
        XCTAssertEqual(m.status, 0, m.stderr)
        XCTAssertTrue(m.stdout.contains("discriminator logit + flip") && m.stdout.contains("global-threshold"), m.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: root + "/g/eval/mia-single-dscore-flip-n32/summary.json"))
        for (args, needle) in [(["eval", "mia", "g", "--timesteps", "5"], "--timesteps applies to diffusion runs"),
                               (["eval", "inpaint", "g"], "needs a diffusion model")] {
            let r = Binary.run(args, cwd: root)
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertTrue(r.stderr.hasPrefix("eidetic: error: ") && r.stderr.contains(needle), r.stderr)
        }
        // LiRA over a membership plan of four GAN runs
        XCTAssertEqual(Binary.run(["data", "plan", "subset", "data.h5", "--size", "20", "--seed", "0", "--out", "pool.json"], cwd: root).status, 0)
        let p = Binary.run(["data", "plan", "membership", "data.h5", "--pool", "pool.json", "--models", "4", "--seed", "0", "--out", "plan.json"], cwd: root)
        XCTAssertEqual(p.status, 0, p.stderr)
        let plan = small.replacingOccurrences(of: "subset = 64", with: "plan = \"plan.json\"").replacingOccurrences(of: "images = 320", with: "images = 80")
        try plan.write(toFile: root + "/plan.toml", atomically: true, encoding: .utf8)
        for k in 0..<4 {
            let r = Binary.run(["train", "plan.toml", "--run-dir", "m\(k)", "--set", "data.plan_model=\(k)"], cwd: root)
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let l = Binary.run(["eval", "mia", "--plan", "plan.json", "m0", "m1", "m2", "m3", "--out", "lira"], cwd: root)
        XCTAssertEqual(l.status, 0, l.stderr)
        XCTAssertTrue(l.stdout.contains("plan: 4 model(s), 20 examples") && l.stdout.contains("discriminator logit"), l.stdout)
        let summary = try String(contentsOfFile: root + "/lira/summary.json", encoding: .utf8)
        XCTAssertTrue(summary.contains("\"weights\" : \"discriminator\""), summary)
    }
}
