import Examples
import NN
import Optim
import Tensor
import XCTest

final class ModuleTests: XCTestCase {
    final class Block: Module, Layer {
        let conv: Conv2d
        let norm: BatchNorm
        let extra: [Module]
        init(key: RandomKey) {
            conv = Conv2d(2, 4, kernel: 3, padding: 1, key: key)
            norm = BatchNorm(channels: 4)
            extra = [Linear(3, 2, key: key.fold(1)), Linear(2, 2, bias: false, key: key.fold(2))]
        }
        func callAsFunction(_ x: Tensor) -> Tensor { norm(conv(x)).relu() }
    }

    func testParameterTreeNamesAndOrder() {
        let b = Block(key: RandomKey(seed: 1))
        XCTAssertEqual(b.parameters().keys, ["conv.weight", "conv.bias", "norm.weight", "norm.bias",
                                             "extra.0.weight", "extra.0.bias", "extra.1.weight"])
        XCTAssertEqual(b.buffers().keys, ["norm.runningMean", "norm.runningVar"])
        XCTAssertEqual(b.parameterCount, 4 * 2 * 9 + 4 + 4 + 4 + 6 + 2 + 4)
    }

    func testTrainEvalModeAndBatchNormRunningStats() throws {
        let b = Block(key: RandomKey(seed: 2))
        let x = Tensor.normal([8, 2, 5, 5], mean: 3, key: RandomKey(seed: 3))
        _ = b(x)
        XCTAssertGreaterThan(b.norm.runningMean.doubles.map(Swift.abs).max()!, 0.01)
        b.eval()
        XCTAssertFalse(b.norm.isTraining)
        let y1 = b(x), y2 = b(x)
        XCTAssertEqual(y1.scalars, y2.scalars)   // eval: no statistics update
        // state round-trips through load
        let c = Block(key: RandomKey(seed: 99)); c.eval()
        try c.load(b.state())
        XCTAssertEqual(c(x).scalars, y1.scalars)
        var bad = b.state(); bad["conv.weight"] = Tensor.zeros([1])
        XCTAssertThrowsError(try c.load(bad)) { XCTAssertTrue("\($0)".contains("conv.weight")) }
    }

    /// BatchNorm in evaluation mode takes a one-pass kernel when no tape records; it gives the
    /// same bits as the differentiable composition of ops (with and without activations).
    func testEvalBatchNormFastPathIsBitIdentical() {
        let bn = BatchNorm(channels: 3)
        bn.runningMean.assign(Tensor.normal([3], key: RandomKey(seed: 1)))
        bn.runningVar.assign(Tensor.uniform([3], low: 0.5, high: 2, key: RandomKey(seed: 2)))
        bn.weight!.assign(Tensor.normal([3], mean: 1, std: 0.3, key: RandomKey(seed: 3)))
        bn.bias!.assign(Tensor.normal([3], key: RandomKey(seed: 4)))
        bn.eval()
        let x = Tensor.normal([5, 3, 4, 4], key: RandomKey(seed: 5))
        for act in [NormActivation.none, .relu, .leakyRelu(slope: 0.2)] {
            let fast = withoutGradient { bn(x, activation: act) }
            var taped = Tensor.zeros([1])
            _ = valueAndGradients(wrt: [x]) { taped = bn(x, activation: act); return taped.sum() }
            XCTAssertEqual(fast.scalars.map(\.bitPattern), taped.scalars.map(\.bitPattern), "\(act)")
        }
    }

    func testDropout() {
        let d = Dropout(0.25)
        let x = Tensor.ones([10000])
        let y = d(x, key: RandomKey(seed: 4)).doubles
        let zeros = Double(y.filter { $0 == 0 }.count) / 10000
        XCTAssertEqual(zeros, 0.25, accuracy: 0.02)
        XCTAssertTrue(y.allSatisfy { $0 == 0 || Swift.abs($0 - 1 / 0.75) < 1e-6 })
        d.eval()
        XCTAssertEqual(d(x, key: RandomKey(seed: 4)).scalars, x.scalars)
    }

    /// Losses and attention are composites; check their gradients in Double.
    func testLossAndAttentionGradients() {
        func dbl(_ s: [Int], _ seed: UInt64) -> Tensor { Tensor.normal(s, key: RandomKey(seed: seed), dtype: .float64) }
        let logits = dbl([4, 3], 1), target = Tensor.uniform([4, 3], key: RandomKey(seed: 2), dtype: .float64)
        XCTAssertTrue(checkGradient([logits]) { mseLoss($0[0], target) }.passed)
        XCTAssertTrue(checkGradient([logits]) { bceWithLogitsLoss($0[0], target) }.passed)
        XCTAssertTrue(checkGradient([logits]) { crossEntropyLoss($0[0], labels: [0, 2, 1, 2]) }.passed)
        let signs = Tensor([1, -1, 1, -1, 1, 1, -1, -1, 1, 1, 1, -1], shape: [4, 3], dtype: .float64)
        XCTAssertTrue(checkGradient([logits]) { hingeLoss($0[0], signs) }.passed)
        // attention: differentiate w.r.t. input through a float64 copy of the layer's math
        let x = dbl([2, 4, 3, 3], 3)
        let wq = dbl([4, 4, 1, 1], 4), wk = dbl([4, 4, 1, 1], 5), wv = dbl([4, 4, 1, 1], 6)
        let report = checkGradient([x, wq, wk, wv]) { t in
            let (n, c, hw) = (2, 4, 9)
            let h = Tensor.groupNorm(t[0], groups: 2)
            let q = Tensor.conv2d(h, weight: t[1]).reshaped([n, c, hw]), k = Tensor.conv2d(h, weight: t[2]).reshaped([n, c, hw])
            let v = Tensor.conv2d(h, weight: t[3]).reshaped([n, c, hw])
            let a = (Tensor.matmul(q, k, transposeA: true) * 0.5).softmax(axis: -1)
            return (Tensor.matmul(v, a, transposeB: true).reshaped(t[0].shape) + t[0]).squared().sum()
        }
        XCTAssertTrue(report.passed, "\(report)")
        // numerical sanity: BCE of large logits stays finite
        let big = Tensor([100, -100], shape: [2])
        XCTAssertEqual(bceWithLogitsLoss(big, Tensor([1, 0], shape: [2])).item, 0, accuracy: 1e-6)
        XCTAssertEqual(crossEntropyLoss(Tensor([1000, 0], shape: [1, 2]), labels: [1]).item, 1000, accuracy: 1e-3)
    }

    func testSelfAttentionLayerShapesAndResidual() {
        let layer = SelfAttention2d(channels: 8, groups: 4, key: RandomKey(seed: 7))
        let x = Tensor.normal([2, 8, 4, 4], key: RandomKey(seed: 8))
        let y = layer(x)
        XCTAssertEqual(y.shape, x.shape)
        let (_, g) = valueAndGradient(of: layer) { layer(x).squared().mean() }
        XCTAssertEqual(g.keys, layer.parameters().keys)
        XCTAssertTrue(g.values.allSatisfy { $0.squaredNorm() > 0 })
    }
}

final class OptimizerTests: XCTestCase {
    /// Float Adam runs in C (vectorized); it gives exactly the Swift formula's bits, with and
    /// without weight decay (L2 and decoupled), over several steps.
    func testFloatAdamKernelGivesTheScalarFormulasBits() {
        for (wd, decoupled) in [(0.0, false), (0.01, false), (0.01, true)] {
            let n = 1000
            let p = Tensor.normal([n], key: RandomKey(seed: 1))
            let opt = Adam(learningRate: 0.003, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: wd, decoupledWeightDecay: decoupled)
            var (theta, m, v) = (p.scalars, [Float](repeating: 0, count: n), [Float](repeating: 0, count: n))
            for t in 1...3 {
                let g = Tensor.normal([n], key: RandomKey(seed: UInt64(10 + t)))
                opt.update(TensorTree([("w", p)]), gradients: TensorTree([("w", g)]))
                // the scalar formula of Optimizers.swift, in Float
                let c1 = 1 - Foundation.pow(0.9, Double(t)), c2 = 1 - Foundation.pow(0.999, Double(t))
                let (b1, b2) = (Float(0.9), Float(0.999)), stepSize = Float(0.003 / c1), rc2 = Float(1 / c2.squareRoot()), te = Float(1e-8)
                let l2 = decoupled ? Float(0) : Float(wd), shrink = decoupled ? Float(1 - 0.003 * wd) : Float(1)
                let gs = g.scalars
                for i in 0..<n {
                    let gi = gs[i] + l2 * theta[i]
                    m[i] = b1 * m[i] + (1 - b1) * gi
                    v[i] = b2 * v[i] + (1 - b2) * gi * gi
                    theta[i] = theta[i] * shrink - stepSize * m[i] / ((v[i]).squareRoot() * rc2 + te)
                }
                XCTAssertEqual(p.scalars.map(\.bitPattern), theta.map(\.bitPattern), "step \(t), weight decay \(wd), decoupled \(decoupled)")
            }
        }
    }

    /// One Adam step from a known state against values computed by hand
    /// (PyTorch's update rule: m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ), θ −= lr·m̂/(√v̂ + ε)).
    func testAdamMatchesHandComputation() {
        let p = Tensor([1.0, -2.0], shape: [2], dtype: .float64)
        let params = TensorTree([("w", p)])
        let opt = Adam(learningRate: 0.1, beta1: 0.9, beta2: 0.99, epsilon: 1e-8)
        let g1 = Tensor([0.5, -1.0], shape: [2], dtype: .float64), g2 = Tensor([0.1, 0.3], shape: [2], dtype: .float64)
        opt.update(params, gradients: TensorTree([("w", g1)]))
        opt.update(params, gradients: TensorTree([("w", g2)]))
        var expected: [Double] = []
        for (theta0, a, b) in [(1.0, 0.5, 0.1), (-2.0, -1.0, 0.3)] {
            var theta = theta0, m = 0.0, v = 0.0
            for (t, g) in [(1, a), (2, b)] {
                m = 0.9 * m + 0.1 * g; v = 0.99 * v + 0.01 * g * g
                let mh = m / (1 - pow(0.9, Double(t))), vh = v / (1 - pow(0.99, Double(t)))
                theta -= 0.1 * mh / (vh.squareRoot() + 1e-8)
            }
            expected.append(theta)
        }
        for (a, b) in zip(p.doubles, expected) { XCTAssertEqual(a, b, accuracy: 1e-12) }
        XCTAssertEqual(opt.step, 2)
    }

    func testAdamWDecouplesDecayAndSGDMomentum() {
        let p = Tensor([2.0], shape: [1], dtype: .float64)
        let opt = AdamW(learningRate: 0.1, weightDecay: 0.5)
        opt.update(TensorTree([("w", p)]), gradients: TensorTree([("w", Tensor([0.0], shape: [1], dtype: .float64))]))
        XCTAssertEqual(p.item, 2 * (1 - 0.1 * 0.5), accuracy: 1e-12)   // zero gradient: only the decay acts

        let q = Tensor([1.0], shape: [1], dtype: .float64)
        let sgd = SGD(learningRate: 0.1, momentum: 0.9)
        for _ in 0..<2 { sgd.update(TensorTree([("w", q)]), gradients: TensorTree([("w", Tensor([1.0], shape: [1], dtype: .float64))])) }
        XCTAssertEqual(q.item, 1 - 0.1 * 1 - 0.1 * 1.9, accuracy: 1e-12)
    }

    func testOptimizerStateResumesExactly() throws {
        func run(steps: Int, resumeAt: Int?) -> [Float] {
            let model = Linear(3, 2, key: RandomKey(seed: 1))
            var opt = Adam(learningRate: 0.01)
            let x = Tensor.normal([5, 3], key: RandomKey(seed: 2)), y = Tensor.normal([5, 2], key: RandomKey(seed: 3))
            for s in 0..<steps {
                if s == resumeAt {
                    let state = opt.stateTree().copied(), weights = model.state().copied()
                    opt = Adam(learningRate: 0.01)
                    try! opt.load(stateTree: state)
                    try! model.load(weights)
                }
                let (_, g) = valueAndGradient(of: model) { mseLoss(model(x), y) }
                opt.update(model, gradients: g)
            }
            return model.weight.scalars + model.bias!.scalars
        }
        XCTAssertEqual(run(steps: 6, resumeAt: nil), run(steps: 6, resumeAt: 3))
    }

    func testEMAClippingAndSchedule() {
        let p = Tensor([0.0, 0.0], shape: [2])
        let ema = EMA(TensorTree([("w", p)]), decay: 0.9)
        p.assign(Tensor([1, 2], shape: [2]))
        ema.update(from: TensorTree([("w", p)]))
        XCTAssertEqual(ema.shadow["w"]!.scalars, [0.1, 0.2])
        // warmup: the first updates use a small decay (1/10, then 2/11, …), capped at decay
        XCTAssertEqual(ema.warmedDecay(step: 0), 0.1, accuracy: 1e-12)
        XCTAssertEqual(ema.warmedDecay(step: 1000), 0.9, accuracy: 1e-12)
        ema.update(from: TensorTree([("w", Tensor([11.0, 12.0], shape: [2]))]), step: 0)
        XCTAssertEqual(ema.shadow["w"]!.doubles[0], 0.1 * 0.1 + 0.9 * 11, accuracy: 1e-5)

        let g = TensorTree([("a", Tensor([3, 0], shape: [2])), ("b", Tensor([4], shape: [1]))])
        let norm = clipGlobalNorm(g, maxNorm: 1)
        XCTAssertEqual(norm, 5, accuracy: 1e-9)
        XCTAssertEqual(Double(g["a"]![flat: 0]), 0.6, accuracy: 1e-5)
        XCTAssertEqual(Double(g["b"]![flat: 0]), 0.8, accuracy: 1e-5)

        let s = LearningRateSchedule(base: 1, warmupSteps: 10, decay: .cosine, totalSteps: 110, minimum: 0.1)
        XCTAssertEqual(s.rate(at: 0), 0.1, accuracy: 1e-12)
        XCTAssertEqual(s.rate(at: 9), 1, accuracy: 1e-12)
        XCTAssertEqual(s.rate(at: 60), 0.55, accuracy: 1e-12)
        XCTAssertEqual(s.rate(at: 110), 0.1, accuracy: 1e-12)
    }
}

final class ExampleTrainingTests: XCTestCase {
    func testMLPLearnsXORDeterministically() throws {
        let a = try Examples.xor(seed: 0), b = try Examples.xor(seed: 0)
        XCTAssertEqual(a.predictions, b.predictions)
        XCTAssertLessThan(a.loss, 0.01)
        for (p, t) in zip(a.predictions, [0.0, 1, 1, 0]) { XCTAssertEqual(p, t, accuracy: 0.1) }
    }

    func testTinyCNNReaches95PercentDeterministically() throws {
        let a = try Examples.trainTinyCNN(seed: 0), b = try Examples.trainTinyCNN(seed: 0)
        XCTAssertEqual(a.testAccuracy, b.testAccuracy)
        XCTAssertEqual(a.finalLoss, b.finalLoss)
        XCTAssertGreaterThan(a.testAccuracy, 0.95)
        print("tiny CNN test accuracy: \(a.testAccuracy)")
    }

    /// The shifted GroupNorm (the U-Net's time-embedding add fused in) gives the bits of
    /// GroupNorm on the added tensor in Float, for planes of a multiple of 8 values and not.
    func testShiftedGroupNormEqualsTheAddedTensorBitForBit() {
        for (hw, affine, silu) in [(8, true, true), (3, true, false), (5, false, true)] {
            let x = Tensor.normal([3, 8, hw, hw], key: RandomKey(seed: 51)), e = Tensor.normal([3, 8], key: RandomKey(seed: 52))
            let w = affine ? Tensor.normal([8], key: RandomKey(seed: 53)) : nil, b = affine ? Tensor.normal([8], key: RandomKey(seed: 54)) : nil
            let fused = Tensor.groupNorm(x, groups: 4, weight: w, bias: b, silu: silu, shift: e)
            let apart = Tensor.groupNorm(x + e.reshaped([3, 8, 1, 1]), groups: 4, weight: w, bias: b, silu: silu)
            XCTAssertEqual(fused.scalars, apart.scalars, "\(hw)×\(hw) affine \(affine) silu \(silu)")
        }
    }
}
