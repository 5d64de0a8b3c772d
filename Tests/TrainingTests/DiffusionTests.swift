import Diffusion
import Models
import NN
import Tensor
import XCTest

final class ScheduleTests: XCTestCase {
    func testLinearScheduleIdentities() {
        let d = GaussianDiffusion(schedule: .linear(start: 1e-4, end: 0.02), timesteps: 1000)
        XCTAssertEqual(d.betas.first!, 1e-4, accuracy: 1e-15)
        XCTAssertEqual(d.betas.last!, 0.02, accuracy: 1e-15)
        XCTAssertTrue(zip(d.alphasCumprod, d.alphasCumprod.dropFirst()).allSatisfy { $0 > $1 })
        XCTAssertEqual(d.alphasCumprod.last!, 4.0358e-5, accuracy: 1e-8)   // DDPM's ᾱ_T
        for t in [1, 10, 500, 999] {
            let expect = d.betas[t] * (1 - d.alphasCumprod[t - 1]) / (1 - d.alphasCumprod[t])
            XCTAssertEqual(d.posteriorVariance[t], expect, accuracy: 1e-15)
        }
        XCTAssertEqual(d.posteriorVariance[0], 0)
    }

    func testCosineSchedule() {
        let d = GaussianDiffusion(schedule: .cosine(offset: 0.008), timesteps: 1000)
        XCTAssertTrue(d.betas.allSatisfy { $0 > 0 && $0 <= 0.999 })
        func f(_ t: Double) -> Double { let v = cos((t / 1000 + 0.008) / 1.008 * .pi / 2); return v * v }
        XCTAssertEqual(d.alphasCumprod[499], f(500) / f(0), accuracy: 1e-9)
    }

    func testDDIMTimestepSpacings() {
        XCTAssertEqual(SamplerConfig(steps: 10, spacing: .trailing).timesteps(total: 1000), [999, 899, 799, 699, 599, 499, 399, 299, 199, 99])
        XCTAssertEqual(SamplerConfig(steps: 10, spacing: .leading).timesteps(total: 1000), [900, 800, 700, 600, 500, 400, 300, 200, 100, 0])
        XCTAssertEqual(SamplerConfig(steps: 4, spacing: .linspace).timesteps(total: 1000), [999, 666, 333, 0])
        XCTAssertEqual(SamplerConfig(kind: .ddpm).timesteps(total: 5), [4, 3, 2, 1, 0])
    }

    /// The per-example loss (the attack signal) is [B] and averages to the training loss;
    /// with fixed t and noise it is deterministic.
    func testPerExampleLoss() throws {
        let model = try UNet(UNetConfig(imageChannels: 1, imageSize: 8, baseChannels: 8, channelMultipliers: [1, 2], groups: 4,
                                        timeFeatures: 8, embeddingDim: 16), key: RandomKey(seed: 1))
        let d = GaussianDiffusion()
        let x0 = Tensor.uniform([5, 1, 8, 8], low: -1, high: 1, key: RandomKey(seed: 2))
        let noise = Tensor.normal(x0.shape, key: RandomKey(seed: 3)), t = [0, 10, 100, 500, 999]
        let f = { (x: Tensor, t: [Int]) in model(x, timesteps: t.map(Double.init)) }
        let per = d.perExampleLoss(f, x0: x0, t: t, noise: noise)
        XCTAssertEqual(per.shape, [5])
        XCTAssertEqual(per.doubles.reduce(0, +) / 5, d.loss(f, x0: x0, t: t, noise: noise).item, accuracy: 1e-6)
        XCTAssertEqual(per.scalars, d.perExampleLoss(f, x0: x0, t: t, noise: noise).scalars)
        // example 2 alone gives the same value as in the batch
        let one = d.perExampleLoss(f, x0: x0.sliced(axis: 0, start: 2, length: 1), t: [100], noise: noise.sliced(axis: 0, start: 2, length: 1))
        XCTAssertEqual(one.scalars[0], per.scalars[2])
    }

    func testQSampleMoments() {
        let d = GaussianDiffusion()
        let x0 = Tensor.full([20000], 0.5).reshaped([20000, 1, 1, 1])
        let noise = Tensor.normal(x0.shape, key: RandomKey(seed: 1))
        let t = [Int](repeating: 300, count: 20000)
        let v = d.qSample(x0, t: t, noise: noise).doubles
        let mean = v.reduce(0, +) / 20000
        XCTAssertEqual(mean, 0.5 * d.alphasCumprod[300].squareRoot(), accuracy: 0.02)
        let ts = d.randomTimesteps(50000, key: RandomKey(seed: 2))
        XCTAssertTrue(ts.allSatisfy { $0 >= 0 && $0 < 1000 })
        XCTAssertEqual(Double(ts.reduce(0, +)) / 50000, 499.5, accuracy: 5)
    }
}

final class SamplingTests: XCTestCase {
    func tinyModel(classes: Int = 0) throws -> UNet {
        try UNet(UNetConfig(imageChannels: 1, imageSize: 8, baseChannels: 8, channelMultipliers: [1, 2], groups: 4, classes: classes,
                            timeFeatures: 8, embeddingDim: 16), key: RandomKey(seed: 3))
    }

    /// Sample i depends only on its seed: 1,000 samples drawn in batches of 7 and of 250
    /// are bit-identical.
    func testBatchSizeChangesNoSample() throws {
        let model = try tinyModel()
        let d = GaussianDiffusion(timesteps: 100)
        let s = SamplerConfig(kind: .ddim, steps: 3, eta: 1, spacing: .trailing)
        let seeds = (0..<1000).map { UInt64($0) * 7919 }
        let a = d.sample(model: model, seeds: seeds, sampler: s, batchSize: 7)
        let b = d.sample(model: model, seeds: seeds, sampler: s, batchSize: 250)
        XCTAssertEqual(a.shape, [1000, 1, 8, 8])
        XCTAssertEqual(a.scalars, b.scalars)
        // and a sample drawn alone matches its place in the batch
        let one = d.sample(model: model, seeds: [seeds[123]], sampler: s, batchSize: 1)
        XCTAssertEqual(one.scalars, Array(a.scalars[(123 * 64)..<(124 * 64)]))
        // conditional with guidance: same property
        let cm = try tinyModel(classes: 3)
        let g = SamplerConfig(kind: .ddpm, guidance: 2)
        let labels = (0..<20).map { $0 % 3 }
        let d5 = GaussianDiffusion(timesteps: 5)
        XCTAssertEqual(d5.sample(model: cm, seeds: Array(0..<20), labels: labels, sampler: g, batchSize: 3).scalars,
                       d5.sample(model: cm, seeds: Array(0..<20), labels: labels, sampler: g, batchSize: 20).scalars)
    }

    /// With an oracle that predicts the true noise of a known x₀ — ε̂(x_t, t) =
    /// (x_t − √ᾱ_t x₀)/√(1−ᾱ_t) — the library's reverse steps end at x₀: DDIM with η = 0
    /// and η = 1, and ancestral DDPM (whose final step is the posterior mean at t = 0).
    func testReverseStepsRecoverX0FromAnOracle() {
        let d = GaussianDiffusion(timesteps: 200)
        let x0 = Tensor.uniform([2, 1, 4, 4], low: -0.9, high: 0.9, key: RandomKey(seed: 4))
        for s in [SamplerConfig(kind: .ddim, steps: 20, eta: 0), SamplerConfig(kind: .ddim, steps: 20, eta: 1), SamplerConfig(kind: .ddpm)] {
            var x = Tensor.normal([2, 1, 4, 4], key: RandomKey(seed: 5))
            let ts = s.timesteps(total: 200)
            for (k, t) in ts.enumerated() {
                let ab = d.alphasCumprod[t]
                let eps = (x - x0 * ab.squareRoot()) * (1 / (1 - ab).squareRoot())
                let noise = Tensor.normal(x.shape, key: RandomKey(seed: 6).fold(UInt64(t)))
                x = d.step(x, eps: eps, t: t, prev: k + 1 < ts.count ? ts[k + 1] : -1, sampler: s, noise: noise)
            }
            for (a, b) in zip(x.scalars, x0.scalars) { XCTAssertEqual(a, b, accuracy: 1e-3, "\(s)") }
        }
        // a wrong ε (zero) does not recover x₀: the test can fail
        var x = Tensor.normal([2, 1, 4, 4], key: RandomKey(seed: 5))
        let s = SamplerConfig(kind: .ddim, steps: 20, eta: 0), ts = s.timesteps(total: 200)
        for (k, t) in ts.enumerated() { x = d.step(x, eps: Tensor.zeros(x.shape), t: t, prev: k + 1 < ts.count ? ts[k + 1] : -1, sampler: s, noise: x) }
        XCTAssertGreaterThan(zip(x.scalars, x0.scalars).map { Swift.abs($0 - $1) }.max()!, 0.1)
    }
}
