import XCTest
import Tensor
import NN
import Optim

/// DP-SGD's privatized gradient: clipping, noise and the division by the expected batch size
/// as known answers; noise statistics and reproducibility; and the whole private step against
/// an ordinary step where clipping and noise cannot act.
final class DPOptimizerTests: XCTestCase {
    func tree(_ pairs: [(String, Tensor)]) -> TensorTree { TensorTree(pairs) }

    /// Two examples over two parameters: example 0 has flat norm 5 (3, 4 split across the
    /// parameters) and is clipped to C = 1; example 1 has norm 0.5 and is kept.
    func testClipsEachExampleByItsFlatNormAndDividesByTheExpectedBatch() {
        let params = tree([("a", Tensor.zeros([1])), ("b", Tensor.zeros([1]))])
        let ga = Tensor([Float(3), 0.3], shape: [2, 1]), gb = Tensor([Float(4), 0.4], shape: [2, 1])
        let dp = DPOptimizer(SGD(learningRate: 1), clipNorm: 1, noiseMultiplier: 0, expectedBatchSize: 4)
        let (g, stats) = dp.privatize(params, perExample: [ga, gb], noiseKey: RandomKey(seed: 1))
        XCTAssertEqual(g["a"]!.item, (3.0 / 5 + 0.3) / 4, accuracy: 1e-6)
        XCTAssertEqual(g["b"]!.item, (4.0 / 5 + 0.4) / 4, accuracy: 1e-6)
        XCTAssertEqual(stats.examples, 2)
        XCTAssertEqual(stats.maxNorm, 5, accuracy: 1e-5)
        XCTAssertEqual(stats.meanNorm, 2.75, accuracy: 1e-5)
        XCTAssertEqual(stats.clippedFraction, 0.5)
    }

    /// With zero gradients the result is the noise: mean 0, std σC/B, a pure function of the
    /// key (and of the parameter's name), in Float and Double.
    func testNoiseHasStdSigmaTimesClipOverBatchAndComesFromTheKey() {
        for dtype in [DType.float32, .float64] {
            let params = tree([("w", Tensor.zeros([200_000], dtype: dtype)), ("v", Tensor.zeros([3], dtype: dtype))])
            let zeros = params.values.map { Tensor.zeros([2] + $0.shape, dtype: dtype) }
            let dp = DPOptimizer(SGD(learningRate: 1), clipNorm: 2, noiseMultiplier: 1.5, expectedBatchSize: 8)
            let (g, _) = dp.privatize(params, perExample: zeros, noiseKey: RandomKey(seed: 9))
            let v = g["w"]!.doubles
            let mean = v.reduce(0, +) / Double(v.count)
            let std = (v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(v.count)).squareRoot()
            XCTAssertEqual(mean, 0, accuracy: 0.005)
            XCTAssertEqual(std, 1.5 * 2 / 8, accuracy: 0.375 * 0.01, "\(dtype)")
            let (again, _) = dp.privatize(params, perExample: zeros, noiseKey: RandomKey(seed: 9))
            XCTAssertEqual(again["w"]!.doubles, v)
            let (other, _) = dp.privatize(params, perExample: zeros, noiseKey: RandomKey(seed: 10))
            XCTAssertNotEqual(other["w"]!.doubles, v)
            XCTAssertNotEqual(Array(g["w"]!.doubles.prefix(3)), g["v"]!.doubles, "each parameter has its own stream")
        }
    }

    /// An empty Poisson batch still takes a step: pure noise over B (no forward pass).
    func testEmptyBatchAppliesNoiseOnly() throws {
        let model = Linear(3, 2, key: RandomKey(seed: 2))
        let before = model.parameters().copied()
        let dp = DPOptimizer(SGD(learningRate: 1), clipNorm: 1, noiseMultiplier: 1, expectedBatchSize: 4)
        let (loss, stats) = try descendPrivately(model, with: dp, batch: 0, noiseKey: RandomKey(seed: 3)) {
            XCTFail("the loss must not be evaluated for an empty batch"); return Tensor.zeros([1])
        }
        XCTAssertEqual(loss, 0)
        XCTAssertEqual(stats.examples, 0)
        let noise = Tensor.normal([2, 3], std: 1, key: RandomKey(seed: 3).fold("weight"))
        for (a, (b, z)) in zip(model.weight.doubles, zip(before["weight"]!.doubles, noise.doubles)) {
            XCTAssertEqual(a, b - z / 4, accuracy: 1e-6)
        }
    }

    /// With C beyond every example's norm and σ = 0, a private step is an ordinary step on
    /// the mean loss over B examples.
    func testWithoutClippingOrNoiseItIsAnOrdinaryStep() throws {
        let n = 6
        let x = Tensor.normal([n, 4], key: RandomKey(seed: 4)), y = Tensor.normal([n, 2], key: RandomKey(seed: 5))
        let a = Linear(4, 2, key: RandomKey(seed: 6)), b = Linear(4, 2, key: RandomKey(seed: 6))
        let dp = DPOptimizer(Adam(learningRate: 0.01), clipNorm: 1e6, noiseMultiplier: 0, expectedBatchSize: Double(n))
        let (loss, stats) = try descendPrivately(a, with: dp, batch: n, noiseKey: RandomKey(seed: 7)) { (a(x) - y).squared().sum() }
        XCTAssertEqual(stats.clippedFraction, 0)
        let plain = try descend(b, with: Adam(learningRate: 0.01)) { (b(x) - y).squared().sum() * (1 / Double(n)) }
        XCTAssertEqual(loss / Double(n), plain, accuracy: 1e-5)
        for (p, q) in zip(a.parameters().values, b.parameters().values) {
            for (u, v) in zip(p.doubles, q.doubles) { XCTAssertEqual(u, v, accuracy: 1e-6) }
        }
    }

    /// Micro-batches (Opacus's virtual steps) give the same bits as one pass over the batch.
    func testMicroBatchesGiveTheSameUpdate() throws {
        let n = 7
        let x = Tensor.normal([n, 4], key: RandomKey(seed: 11)), y = Tensor.normal([n, 2], key: RandomKey(seed: 12))
        var results: [[Double]] = []
        for m in [0, 1, 3, 7, 10] {
            let model = Linear(4, 2, key: RandomKey(seed: 13))
            let dp = DPOptimizer(SGD(learningRate: 0.1), clipNorm: 0.5, noiseMultiplier: 0.7, expectedBatchSize: 6)
            let (loss, stats) = try descendPrivately(model, with: dp, batch: n, microBatch: m, noiseKey: RandomKey(seed: 14)) { r in
                (model(x.sliced(axis: 0, start: r.lowerBound, length: r.count)) - y.sliced(axis: 0, start: r.lowerBound, length: r.count)).squared().sum()
            }
            XCTAssertEqual(stats.examples, n)
            results.append(model.parameters().values.flatMap { $0.doubles } + [loss])
        }
        for r in results.dropFirst() { XCTAssertEqual(r.dropLast(), results[0].dropLast()); XCTAssertEqual(r.last!, results[0].last!, accuracy: 1e-5) }
    }
}
