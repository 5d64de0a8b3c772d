import XCTest
import Tensor

/// The Float BatchNorm kernel (CKernels/batchnorm.c) against the Double path, which the
/// finite-difference checks in GradientTests cover; and its independence of the thread count.
final class NormalizationKernelTests: XCTestCase {
    func close(_ a: Tensor, _ b: Tensor, _ what: String, rtol: Double = 2e-5) {
        let (u, v) = (a.doubles, b.doubles)
        XCTAssertEqual(u.count, v.count, what)
        let scale = max(v.map { abs($0) }.max() ?? 1, 1e-12)
        let worst = zip(u, v).map { abs($0 - $1) / scale }.max() ?? 0
        XCTAssertLessThan(worst, rtol, "\(what): max error relative to max |value| = \(worst)")
    }

    func testFloatBatchNormMatchesDouble() {
        // l = 20 (lanes of 8 plus a tail), l = 1 (a plain [N, C] input), l = 16
        for (shape, affine) in [([5, 3, 4, 5], true), ([7, 4], false), ([3, 6, 4, 4], true)] {
            let c = shape[1]
            let x = Tensor.normal(shape, key: RandomKey(seed: 1)) * 3 + 1.5
            let w = Tensor.normal([c], key: RandomKey(seed: 2)), b = Tensor.normal([c], key: RandomKey(seed: 3))
            let gy = Tensor.normal(shape, key: RandomKey(seed: 4))
            func run(_ dtype: DType) -> [Tensor] {
                let (xd, wd, bd, gd) = (x.converted(to: dtype), w.converted(to: dtype), b.converted(to: dtype), gy.converted(to: dtype))
                var stats: [Tensor] = []
                let (y, grads) = valueAndGradients(wrt: affine ? [xd, wd, bd] : [xd], seed: gd) {
                    let r = Tensor.batchNormTraining(xd, weight: affine ? wd : nil, bias: affine ? bd : nil)
                    stats = [r.mean, r.variance]
                    return r.output
                }
                return [y] + stats + grads
            }
            let f = run(.float32), d = run(.float64)
            for (i, name) in ["output", "mean", "variance", "dx", "dgamma", "dbeta"].prefix(f.count).enumerated() {
                close(f[i], d[i], "\(shape) \(name)")
            }
        }
    }

    /// BatchNorm with a fused ReLU / LeakyReLU gives, value for value, what BatchNorm followed by
    /// the separate activation op gives: output and every gradient, bit for bit, in Float and Double.
    func testFusedActivationIsBitIdenticalToTheSeparateOp() {
        for dtype in [DType.float32, .float64] {
            for (shape, affine) in [([6, 3, 4, 5], true), ([9, 4], false)] {
                let c = shape[1]
                let x = Tensor.normal(shape, key: RandomKey(seed: 5), dtype: dtype), gy = Tensor.normal(shape, key: RandomKey(seed: 8), dtype: dtype)
                let w = Tensor.normal([c], mean: 1, std: 0.5, key: RandomKey(seed: 6), dtype: dtype), b = Tensor.normal([c], key: RandomKey(seed: 7), dtype: dtype)
                for act in [NormActivation.relu, .leakyRelu(slope: 0.2)] {
                    func run(fused: Bool) -> [[Double]] {
                        let (y, grads) = valueAndGradients(wrt: affine ? [x, w, b] : [x], seed: gy) {
                            let (wt, bs) = affine ? (w, b) : (nil, nil)
                            return fused ? Tensor.batchNormTraining(x, weight: wt, bias: bs, activation: act).output
                                         : Tensor.batchNormTraining(x, weight: wt, bias: bs).output.activated(act)
                        }
                        return ([y] + grads).map(\.doubles)
                    }
                    let (f, u) = (run(fused: true), run(fused: false))
                    for (i, name) in ["output", "dx", "dgamma", "dbeta"].prefix(f.count).enumerated() {
                        XCTAssertEqual(f[i].map(\.bitPattern), u[i].map(\.bitPattern), "\(dtype) \(shape) \(act): \(name)")
                    }
                    XCTAssertTrue(f[0].contains { $0 == 0 || $0 < 0 } , "some values are cut by the activation")
                }
            }
        }
    }

    func testBatchNormDoesNotDependOnThreadCount() {
        let saved = Threads.count
        defer { Threads.count = saved }
        let x = Tensor.normal([64, 256, 4, 4], key: RandomKey(seed: 5)), w = Tensor.normal([256], key: RandomKey(seed: 6))
        let b = Tensor.normal([256], key: RandomKey(seed: 7))
        func run() -> [[Float]] {
            let (y, g) = valueAndGradients(wrt: [x, w, b]) { Tensor.batchNormTraining(x, weight: w, bias: b).output.squared().sum() }
            return [y.scalars] + g.map { $0.scalars }
        }
        Threads.count = 1
        let one = run()
        Threads.count = 2
        XCTAssertEqual(one, run())
    }
}
