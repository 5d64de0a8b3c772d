import XCTest
import Tensor
import NN

/// Per-example gradients (Tensor/Autodiff/PerExample.swift) against their oracle: one whole
/// batch-size-1 backward pass per example. Float to 1e-5 relative (the bar) and
/// Double to 1e-10, for every layer type a private model uses, and a refusal for BatchNorm.
final class PerExampleGradientTests: XCTestCase {
    /// A model exercising every rule: Linear (matmul + broadcast bias), Conv2d 3×3 and 4×4/2
    /// (grouped and direct kernels in Float), ConvTranspose2d, GroupNorm with and without the
    /// fused SiLU and a per-example shift, a 1×1 conv, an Embedding added per example, and a reshaped learned scale.
    final class Zoo: Module {
        let conv1: Conv2d, norm1: GroupNorm, down: Conv2d, up: ConvTranspose2d, norm2: GroupNorm
        let point: Conv2d, labels: Embedding, shifts: Embedding, head: Linear, scale: Tensor

        init(dtype: DType, key: RandomKey) {
            conv1 = Conv2d(3, 8, kernel: 3, padding: 1, key: key.fold("c1"), dtype: dtype)
            norm1 = GroupNorm(groups: 2, channels: 8, dtype: dtype)
            down = Conv2d(8, 6, kernel: 4, stride: 2, padding: 1, key: key.fold("down"), dtype: dtype)
            up = ConvTranspose2d(6, 4, kernel: 4, stride: 2, padding: 1, key: key.fold("up"), dtype: dtype)
            norm2 = GroupNorm(groups: 2, channels: 4, dtype: dtype)
            point = Conv2d(4, 3, kernel: 1, key: key.fold("pt"), dtype: dtype)
            labels = Embedding(vocabulary: 5, dimension: 3, key: key.fold("emb"), dtype: dtype)
            shifts = Embedding(vocabulary: 5, dimension: 4, key: key.fold("shift"), dtype: dtype)
            head = Linear(3 * 16 * 16, 2, key: key.fold("head"), dtype: dtype)
            scale = Tensor.normal([3], key: key.fold("scale")).converted(to: dtype)
        }

        func callAsFunction(_ x: Tensor, labels y: [Int]) -> Tensor {
            var h = norm1.callAsFunction(conv1(x))
            h = down(h).silu()
            // shifted per example (the U-Net's time-embedding add, fused)
            h = Tensor.groupNorm(up(h), groups: 2, weight: norm2.weight, bias: norm2.bias, silu: true, shift: shifts(y))
            h = point(h) * scale.reshaped([1, 3, 1, 1]) + labels(y).reshaped([y.count, 3, 1, 1])
            return head(h.flattened(from: 1))
        }
    }

    func losses(_ out: Tensor) -> Tensor { (out - 0.3).squared().sum() }

    func check(_ dtype: DType, rtol: Double) throws {
        let model = Zoo(dtype: dtype, key: RandomKey(seed: 7))
        let n = 5
        let x = Tensor.normal([n, 3, 16, 16], key: RandomKey(seed: 8)).converted(to: dtype)
        let y = [0, 3, 3, 1, 4]
        let params = model.parameters()
        let (total, perExample) = try valueAndPerExampleGradients(wrt: params.values, batch: n) {
            losses(model(x, labels: y))
        }
        XCTAssertEqual(perExample.count, params.count)
        var oracleTotal = 0.0
        for i in 0..<n {
            let xi = x.sliced(axis: 0, start: i, length: 1)
            let (li, gi) = valueAndGradients(wrt: params.values) { losses(model(xi, labels: [y[i]])) }
            oracleTotal += li.item
            for (k, key) in params.keys.enumerated() {
                XCTAssertEqual(perExample[k].shape, [n] + params.values[k].shape, key)
                let mine = perExample[k].sliced(axis: 0, start: i, length: 1).doubles, want = gi[k].doubles
                let scale = max(want.map { abs($0) }.max() ?? 0, 1e-12)
                let worst = zip(mine, want).map { abs($0 - $1) / scale }.max() ?? 0
                XCTAssertLessThan(worst, rtol, "\(dtype) \(key) example \(i): max error relative to max |gradient| = \(worst)")
            }
        }
        XCTAssertEqual(total.item, oracleTotal, accuracy: rtol * abs(oracleTotal) * 10)
        // Σ over examples is the batch gradient
        let (_, batch) = valueAndGradients(wrt: params.values) { losses(model(x, labels: y)) }
        for (k, key) in params.keys.enumerated() {
            let summed = perExample[k].sum(axes: [0]).doubles, want = batch[k].doubles
            let scale = max(want.map { abs($0) }.max() ?? 0, 1e-12)
            XCTAssertLessThan(zip(summed, want).map { abs($0 - $1) / scale }.max() ?? 0, rtol * 10, "\(dtype) \(key): Σ per-example vs batch")
        }
    }

    func testEveryLayerMatchesTheBatchOfOneOracleInFloat() throws { try check(.float32, rtol: 1e-5) }

    func testEveryLayerMatchesTheBatchOfOneOracleInDouble() throws { try check(.float64, rtol: 1e-10) }

    func testBatchNormIsRefusedNamingTheLayerKind() {
        let conv = Conv2d(3, 4, kernel: 3, padding: 1, key: RandomKey(seed: 1)), bn = BatchNorm(channels: 4)
        let x = Tensor.normal([3, 3, 8, 8], key: RandomKey(seed: 2))
        let params = conv.parameters().values + bn.parameters().values
        XCTAssertThrowsError(try valueAndPerExampleGradients(wrt: params, batch: 3) { bn(conv(x)).squared().sum() }) { error in
            XCTAssertEqual(error as? PerExampleError, .unsupported(op: "batchNorm", parameter: 2))
            XCTAssertTrue("\(error)".contains("GroupNorm"), "\(error)")
        }
    }

    /// A parameter whose leading dimension equals the batch size is still a parameter (not sliced).
    func testParameterShapedLikeTheBatchIsNotSliced() throws {
        let n = 4
        let layer = Linear(3, n, key: RandomKey(seed: 3))  // weight [4, 3], bias [4]: leading axis = n
        let x = Tensor.normal([n, 3], key: RandomKey(seed: 4))
        let params = layer.parameters().values
        let (_, perExample) = try valueAndPerExampleGradients(wrt: params, batch: n) { layer(x).squared().sum() }
        for i in 0..<n {
            let (_, gi) = valueAndGradients(wrt: params) { layer(x.sliced(axis: 0, start: i, length: 1)).squared().sum() }
            for k in 0..<params.count {
                let mine = perExample[k].sliced(axis: 0, start: i, length: 1).doubles
                for (a, b) in zip(mine, gi[k].doubles) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b))) }
            }
        }
    }

    /// A batch of one: its gradient is the batch gradient, even where a constant of leading
    /// size 1 takes part in a parameter-only computation.
    func testBatchOfOneIsTheOrdinaryGradient() throws {
        let layer = Linear(3, 2, key: RandomKey(seed: 8))
        let x = Tensor.normal([1, 3], key: RandomKey(seed: 9)), one = Tensor.ones([1])
        let params = layer.parameters().values
        let f = { (layer(x) * (layer.weight.squared().sum(axes: [0, 1]).reshaped([1]) + one)).sum() }
        let (_, perExample) = try valueAndPerExampleGradients(wrt: params, batch: 1, of: f)
        let (_, plain) = valueAndGradients(wrt: params, of: f)
        for (a, b) in zip(perExample, plain) { XCTAssertEqual(a.shape, [1] + b.shape); XCTAssertEqual(a.doubles, b.doubles) }
    }
}
