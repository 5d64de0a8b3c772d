import Foundation
import HDF5
import Models
import NN
import Tensor
import TOML
import Training
import XCTest

/// GAN configs, the GAN task on the shared training loop, spectral normalization after
/// real training steps, and generator sampling.
final class GANTrainingTests: XCTestCase {
    var dir = ""
    override func setUp() {
        dir = NSTemporaryDirectory() + "eidetic-gantrain-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    func config(_ extra: String = "", kind: String = "dcgan", set: [String] = []) throws -> TrainConfig {
        try TrainConfig.load(toml: """
        [run]
        seed = 1
        [data]
        file = "\(Self.repository)/datasets/fashion-mnist-2k.h5"
        subset = 32
        [model]
        kind = "\(kind)"
        image_channels = 1
        latent_dim = 16
        generator_channels = 32
        discriminator_channels = 8
        [train]
        batch_size = 8
        images = 80
        checkpoint_every = 5
        log_every = 5
        """ + "\n" + extra, file: "gan.toml", overrides: set)
    }

    func testKindsDefaultsAndResolvedConfig() throws {
        let d = try config()
        XCTAssertEqual(d.kind, .dcgan)
        XCTAssertEqual(d.modelPreset, "dcgan-32")
        XCTAssertEqual(d.ganTraining.loss, .nonSaturating)
        XCTAssertEqual(d.gan.discriminatorNorm, "batch")
        XCTAssertEqual(d.train.gradClip, 0, "GANs are not clipped unless asked")
        let s = try config(kind: "sngan")
        XCTAssertEqual(s.ganTraining.loss, .hinge)
        XCTAssertTrue(s.gan.spectralNorm)
        XCTAssertEqual(s.gan.discriminatorNorm, "none")
        // the resolved config holds the GAN sections and no diffusion ones, and reads back
        let json = String(decoding: try s.canonicalJSON(), as: UTF8.self)
        XCTAssertTrue(json.contains("\"modelKind\" : \"sngan\""), json)
        XCTAssertFalse(json.contains("diffusion") || json.contains("sampler") || json.contains("timesteps"), json)
        XCTAssertEqual(try JSONDecoder().decode(TrainConfig.self, from: try s.canonicalJSON()), s)
        // a U-Net config's resolved JSON is what it was before model kinds existed
        let u = try TrainConfig.load(toml: "", file: "u.toml")
        let ujson = String(decoding: try u.canonicalJSON(), as: UTF8.self)
        XCTAssertFalse(ujson.contains("modelKind") || ujson.contains("\"gan\"") || ujson.contains("lrSchedule"), ujson)
        // d_steps: images count real images, a batch per D step
        let k = try config("[gan]\nd_steps = 2")
        XCTAssertEqual(k.imagesPerStep, 16)
        XCTAssertEqual(k.totalSteps, 5)
    }

    func testConfigErrorsNameTheKey() throws {
        func fails(_ extra: String, kind: String = "dcgan", _ key: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try config(extra, kind: kind), file: file, line: line) { e in
                XCTAssertTrue("\(e)".contains(key), "\(e)", file: file, line: line)
            }
        }
        fails("[diffusion]\ntimesteps = 10", "diffusion")
        fails("[sample]\nsampler = \"ddpm\"", "sample.sampler")
        fails("[gan]\nloss = \"wasserstein\"", "gan.loss")
        fails("[gan]\ndiffaugment = \"color,zoom\"", "gan.diffaugment")
        fails("[gan]\nd_steps = 0", "gan.d_steps")
        fails("[gan]\nd_steps = 1", kind: "unet", "gan")
        XCTAssertThrowsError(try config(set: ["train.label_dropout=0.2"])) { e in XCTAssertTrue("\(e)".contains("label_dropout"), "\(e)") }
        fails("[model.extra]\n", "model.extra")
        XCTAssertThrowsError(try TrainConfig.load(toml: "[model]\nkind = \"dcgan\"\npreset = \"dcgan-64\"", file: "g.toml")) { e in
            XCTAssertTrue("\(e)".contains("model.preset") && "\(e)".contains("sngan-32"), "\(e)")
        }
        XCTAssertThrowsError(try TrainConfig.load(toml: "[model]\nkind = \"dcgan\"\nimage_size = 30", file: "g.toml")) { e in
            XCTAssertTrue("\(e)".contains("model.image_size"), "\(e)")
        }
        XCTAssertThrowsError(try TrainConfig.load(toml: "[model]\nkind = \"vae\"", file: "g.toml")) { e in
            XCTAssertTrue("\(e)".contains("model.kind"), "\(e)")
        }
    }

    /// Miyato et al. (2018) keep every D layer's largest singular value at 1: after training
    /// steps (one power iteration per forward), σ_max(W / σ̂) — computed here independently by
    /// power iteration in Double to convergence — is within 2 % of 1 for every layer.
    /// The fake_std metric: known answers (two images a, b: |a − b|/√2 at every pixel; n
    /// equal images: 0) and the same bits whatever the thread count on a batch large enough
    /// to split its pixels.
    func testMeanPixelStdKnownAnswersAndThreadCount() {
        let two = Tensor([0, 1, 2, 3, 2, 1, 2, 7] as [Double], shape: [2, 1, 2, 2])
        XCTAssertEqual(GANTask.meanPixelStd(two), (2 + 0 + 0 + 4) / 4 / 2.0.squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(GANTask.meanPixelStd(Tensor.ones([5, 3, 4, 4])), 0)
        let saved = Threads.count
        defer { Threads.count = saved }
        let big = Tensor.normal([64, 3, 32, 32], key: RandomKey(seed: 5))
        Threads.count = 1
        let one = GANTask.meanPixelStd(big)
        Threads.count = 2
        XCTAssertEqual(GANTask.meanPixelStd(big), one)
        XCTAssertEqual(one, 1, accuracy: 0.03)   // N(0, 1) pixels
    }

    func testSpectralNormHoldsAfterTrainingSteps() throws {
        let c = try config(kind: "sngan", set: ["train.images=240"])
        let trainer = try Trainer(config: c, directory: dir + "/run")
        trainer.output = { _ in }
        try trainer.run()
        let task = try XCTUnwrap(trainer.task as? GANTask)
        var layers: [(String, Tensor)] = []
        func visit(_ m: Module, _ path: String) {
            if let s = m as? SpectralNormConv2d { s.eval(); layers.append((path, s.normalizedWeight())) }
            if let s = m as? SpectralNormLinear { s.eval(); layers.append((path, s.normalizedWeight())) }
            for (n, child) in m.children { visit(child, path + "." + n) }
        }
        visit(task.discriminator, "discriminator")
        XCTAssertEqual(layers.count, 4, "three convs and the linear layer are spectrally normalized")
        for (name, w) in layers {
            let sigma = Self.largestSingularValue(w.doubles, rows: w.shape[0], columns: w.count / w.shape[0])
            print("\(name): σ_max(W/σ̂) = \(sigma)")
            XCTAssertEqual(sigma, 1, accuracy: 0.02, "\(name): σ_max(W/σ̂) = \(sigma)")
        }
        // and the raw weights are not already normalized (the test would be empty otherwise)
        let raw = try XCTUnwrap(task.discriminator.parameters().first { $0.key.hasSuffix("weight") }?.value)
        let rawSigma = Self.largestSingularValue(raw.doubles, rows: raw.shape[0], columns: raw.count / raw.shape[0])
        XCTAssertGreaterThan(abs(rawSigma - 1), 0.1, "raw σ_max \(rawSigma)")
    }

    /// σ_max of a row-major matrix by power iteration on AᵀA in Double, to convergence.
    static func largestSingularValue(_ a: [Double], rows: Int, columns: Int) -> Double {
        var v = (0..<columns).map { Double(($0 * 7919) % 101) / 101 + 0.1 }
        var sigma = 0.0
        for _ in 0..<5000 {
            var u = [Double](repeating: 0, count: rows)
            for i in 0..<rows { var s = 0.0; for j in 0..<columns { s += a[i * columns + j] * v[j] }; u[i] = s }
            var w = [Double](repeating: 0, count: columns)
            for i in 0..<rows { for j in 0..<columns { w[j] += a[i * columns + j] * u[i] } }
            let norm = w.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let next = norm.squareRoot()   // ‖AᵀA v‖ → σ² for unit v
            v = w.map { $0 / norm }
            if abs(next - sigma) < 1e-12 * next { sigma = next; break }
            sigma = next
        }
        return sigma
    }

    /// The untrained baseline of `eval quality` is the generator a run starts from, bit for bit.
    func testUntrainedGeneratorIsTheRunsStartingPoint() throws {
        let c = try config(set: ["run.seed=7"])
        let trainer = try Trainer(config: c, directory: dir + "/run")
        let task = try XCTUnwrap(trainer.task as? GANTask)
        let rebuilt = try untrainedGenerator(c)
        let a = task.generator.state(), b = rebuilt.state()
        XCTAssertEqual(a.keys.sorted(), b.keys.sorted())
        for k in a.keys { XCTAssertEqual(a[k]!.doubles, b[k]!.doubles, k) }
        let other = try untrainedGenerator(try config(set: ["run.seed=8"])).state()
        XCTAssertTrue(a.keys.contains { a[$0]!.count > 100 && a[$0]!.doubles != other[$0]!.doubles }, "another seed, other weights")
    }

    /// The generator's image for seed i does not depend on the batch it is drawn in, and a
    /// class-conditional generator's image depends on the label.
    func testGeneratorSamplesDependOnlyOnTheirSeed() throws {
        var g = GANConfig.dcgan32
        g.imageChannels = 1; g.latentDim = 16; g.generatorChannels = 32; g.classes = 3
        let gen = try DCGANGenerator(g, key: RandomKey(seed: 9))
        // move BatchNorm's running statistics off their initial values
        _ = withoutGradient { gen(gen.sampleLatents(16, key: RandomKey(seed: 1)), labels: Array(repeating: 1, count: 16)) }
        let seeds: [UInt64] = Array(100..<111)
        let labels = seeds.map { Int($0 % 3) }
        let whole = gen.sample(seeds: seeds, labels: labels, batchSize: 64)
        let pieces = gen.sample(seeds: seeds, labels: labels, batchSize: 3)
        XCTAssertEqual(whole.shape, [11, 1, 32, 32])
        XCTAssertEqual(whole.doubles, pieces.doubles, "batch size changed a sample")
        let alone = gen.sample(seeds: [seeds[5]], labels: [labels[5]])
        XCTAssertEqual(Array(whole.doubles[(5 * 1024)..<(6 * 1024)]), alone.doubles)
        // (the class-conditional BatchNorm starts with every class at γ = 1, β = 0)
        for (name, p) in gen.parameters() where name.hasSuffix("gamma") || name.hasSuffix("beta") {
            p.assign(Tensor.normal(p.shape, mean: name.hasSuffix("gamma") ? 1 : 0, std: 0.3, key: RandomKey(seed: 4).fold(name)))
        }
        let alone2 = gen.sample(seeds: [seeds[5]], labels: [labels[5]])
        let other = gen.sample(seeds: [seeds[5]], labels: [(labels[5] + 1) % 3])
        XCTAssertNotEqual(alone2.doubles, other.doubles, "the label changes the image")
        XCTAssertTrue(gen.isTraining, "sampling restores the training mode")
    }

    /// Every model kind trains through the same loop; a GAN run records its kind, resumes
    /// exactly in-process (stop and continue), and refuses to be treated as a U-Net.
    func testGANRunStopsAndResumesExactly() throws {
        let c = try config("[gan]\ndiffaugment = \"translation\"")
        let a = try Trainer(config: c, directory: dir + "/a"); a.output = { _ in }
        try a.run()
        let b = try Trainer(config: c, directory: dir + "/b"); b.output = { _ in }
        try b.run(stopAt: 4)
        let b2 = try Trainer(config: c, directory: dir + "/b"); b2.output = { _ in }
        try b2.run()
        let (x, attrs) = try TensorFile.load(dir + "/a/checkpoints/latest.h5")
        let (y, _) = try TensorFile.load(dir + "/b/checkpoints/latest.h5")
        XCTAssertEqual(attrs["model_kind"], .string("dcgan"))
        XCTAssertEqual(x.keys.sorted(), y.keys.sorted())
        for (k, t) in x { XCTAssertEqual(t.doubles, y[k]?.doubles, k) }
        let ck = try RunDirectory(dir + "/a").loadCheckpoint()
        XCTAssertThrowsError(try ck.model(useEMA: true, path: "a")) { e in XCTAssertTrue("\(e)".contains("dcgan"), "\(e)") }
        XCTAssertEqual(try ck.generator(useEMA: true, path: "a").config, c.gan)
    }
}
