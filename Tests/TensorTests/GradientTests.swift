import XCTest
import Tensor

/// Finite-difference checks (Double) of every differentiable op, including broadcasting.
/// Each case reduces the op's output to a scalar with a fixed random weighting R, so the
/// whole vector-Jacobian product is exercised: f(x) = Σ op(x) ⊙ R.
final class GradientTests: XCTestCase {
    static var checked: [String] = []

    /// Random Double tensor; `positive` keeps values in (0.5, 1.5) for log/sqrt/pow bases.
    func rand(_ shape: [Int], _ seed: UInt64, positive: Bool = false) -> Tensor {
        let key = RandomKey(seed: seed)
        return positive ? Tensor.uniform(shape, low: 0.5, high: 1.5, key: key, dtype: .float64)
                        : Tensor.normal(shape, key: key, dtype: .float64)
    }

    func check(_ name: String, _ inputs: [Tensor], file: StaticString = #filePath, line: UInt = #line,
               rtol: Double = 1e-5, _ op: ([Tensor]) -> Tensor) {
        let probe = withoutGradient { op(inputs) }
        let weights = rand(probe.shape, 0xABCD)
        let report = checkGradient(inputs, rtol: rtol) { xs in (op(xs) * weights).sum() }
        XCTAssertTrue(report.passed, "\(name): \(report)", file: file, line: line)
        GradientTests.checked.append(name)
    }

    override class func tearDown() {
        print("gradient-checked ops (\(checked.count) cases): \(Array(Set(checked.map { $0.split(separator: " ")[0] })).sorted().joined(separator: ", "))")
        super.tearDown()
    }

    func testBinaryBroadcasting() {
        let pairs: [([Int], [Int])] = [([2, 3, 4], [2, 3, 4]), ([2, 3, 4], [3, 1]), ([2, 1, 4], [3, 4]), ([3, 4], []), ([], [2, 3]), ([1, 3], [2, 1])]
        for (i, (sa, sb)) in pairs.enumerated() {
            let s = UInt64(i * 10)
            check("add \(sa)+\(sb)", [rand(sa, s), rand(sb, s + 1)]) { $0[0] + $0[1] }
            check("sub \(sa)-\(sb)", [rand(sa, s), rand(sb, s + 1)]) { $0[0] - $0[1] }
            check("mul \(sa)*\(sb)", [rand(sa, s), rand(sb, s + 1)]) { $0[0] * $0[1] }
            check("div \(sa)/\(sb)", [rand(sa, s), rand(sb, s + 1, positive: true)]) { $0[0] / $0[1] }
            check("pow \(sa)^\(sb)", [rand(sa, s, positive: true), rand(sb, s + 1)]) { $0[0].pow($0[1]) }
        }
    }

    /// Random ranks (0–4), dimensions (1–4) and broadcasting patterns from a seeded stream:
    /// one operand's dimensions are randomly dropped (leading) or set to 1.
    func testRandomShapesWithBroadcasting() {
        var rng = RandomStream(key: RandomKey(seed: 2024))
        for trial in 0..<24 {
            let rank = rng.nextInt(below: 5)
            let full = (0..<rank).map { _ in 1 + rng.nextInt(below: 4) }
            var other = Array(full.dropFirst(rng.nextInt(below: rank + 1)))
            for i in other.indices where rng.nextInt(below: 3) == 0 { other[i] = 1 }
            let (sa, sb) = rng.nextInt(below: 2) == 0 ? (full, other) : (other, full)
            let s = UInt64(1000 + trial * 7)
            check("add random \(sa)+\(sb)", [rand(sa, s), rand(sb, s + 1)]) { $0[0] + $0[1] }
            check("sub random \(sa)-\(sb)", [rand(sa, s), rand(sb, s + 1)]) { $0[0] - $0[1] }
            check("mul random \(sa)*\(sb)", [rand(sa, s), rand(sb, s + 1)]) { $0[0] * $0[1] }
            check("div random \(sa)/\(sb)", [rand(sa, s), rand(sb, s + 1, positive: true)]) { $0[0] / $0[1] }
            check("pow random \(sa)^\(sb)", [rand(sa, s, positive: true), rand(sb, s + 1)]) { $0[0].pow($0[1]) }
            let x = rand(full, s + 2), xp = rand(full, s + 3, positive: true)
            check("exp random", [x]) { $0[0].exp() }
            check("log random", [xp]) { $0[0].log() }
            check("sqrt random", [xp]) { $0[0].sqrt() }
            check("tanh random", [x]) { $0[0].tanh() }
            check("sigmoid random", [x]) { $0[0].sigmoid() }
            check("silu random", [x]) { $0[0].silu() }
            check("gelu random", [x]) { $0[0].gelu() }
            check("abs random", [x]) { $0[0].abs() }
            check("relu random", [x]) { $0[0].relu() }
            check("leakyRelu random", [x]) { $0[0].leakyRelu() }
            if rank > 0 {
                let axes = (0..<rank).filter { _ in rng.nextInt(below: 2) == 0 }
                check("sum random axes \(axes) of \(full)", [x]) { $0[0].sum(axes: axes) }
                check("max random axes \(axes) of \(full)", [x]) { $0[0].max(axes: axes, keepingDims: true) }
                check("variance random axes \(axes) of \(full)", [x]) { $0[0].variance(axes: axes) }
                let axis = rng.nextInt(below: rank)
                check("softmax random axis \(axis) of \(full)", [x]) { $0[0].softmax(axis: axis) }
                check("logSumExp random axis \(axis) of \(full)", [x]) { $0[0].logSumExp(axis: axis) }
                let perm = randomPermutation(rank, key: RandomKey(seed: s))
                check("permute random \(perm) of \(full)", [x]) { $0[0].permuted(perm) }
                check("expand random \(other) to \(full)", [rand(other, s + 4)]) { $0[0].expanded(to: full) }
            }
        }
    }

    func testUnary() {
        let x = rand([3, 5], 1), xp = rand([3, 5], 2, positive: true)
        check("neg", [x]) { -$0[0] }
        check("exp", [x]) { $0[0].exp() }
        check("log", [xp]) { $0[0].log() }
        check("sqrt", [xp]) { $0[0].sqrt() }
        check("abs", [x]) { $0[0].abs() }
        check("tanh", [x]) { $0[0].tanh() }
        check("sigmoid", [x]) { $0[0].sigmoid() }
        check("relu", [x]) { $0[0].relu() }
        check("leakyRelu", [x]) { $0[0].leakyRelu(slope: 0.2) }
        check("silu", [x]) { $0[0].silu() }
        check("gelu", [x]) { $0[0].gelu() }
        check("powScalar", [xp]) { $0[0].pow(2.7) }
        check("powScalar square", [x]) { $0[0].squared() }
        check("affine (scalar + - * /)", [x]) { 2 - ($0[0] * 3 + 1) / 4 }
        check("reciprocal", [xp]) { 1 / $0[0] }
        check("dropout (fixed mask)", [x]) { $0[0].dropout(probability: 0.3, key: RandomKey(seed: 5)) }
    }

    func testReductions() {
        let x = rand([2, 3, 4], 3)
        for axes in [nil, [0], [1], [2], [0, 2], [-1]] as [[Int]?] {
            check("sum \(String(describing: axes))", [x]) { $0[0].sum(axes: axes) }
            check("sum keep \(String(describing: axes))", [x]) { $0[0].sum(axes: axes, keepingDims: true) }
            check("mean \(String(describing: axes))", [x]) { $0[0].mean(axes: axes) }
            check("max \(String(describing: axes))", [x]) { $0[0].max(axes: axes) }
            check("variance \(String(describing: axes))", [x]) { $0[0].variance(axes: axes, unbiased: true) }
        }
        check("logSumExp", [x]) { $0[0].logSumExp(axis: 1) }
        check("softmax last", [x]) { $0[0].softmax(axis: -1) }
        check("softmax middle", [x]) { $0[0].softmax(axis: 1) }
        check("logSoftmax", [x]) { $0[0].logSoftmax(axis: 2) }
        check("expand", [rand([3, 1], 4)]) { $0[0].expanded(to: [2, 3, 5]) }
    }

    func testMatmul() {
        for ta in [false, true] { for tb in [false, true] {
            let a = rand(ta ? [4, 3] : [3, 4], 5), b = rand(tb ? [2, 4] : [4, 2], 6)
            check("matmul ta=\(ta) tb=\(tb)", [a, b]) { Tensor.matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
            let a3 = rand(ta ? [2, 4, 3] : [2, 3, 4], 7), b3 = rand(tb ? [2, 5, 4] : [2, 4, 5], 8)
            check("matmul batched ta=\(ta) tb=\(tb)", [a3, b3]) { Tensor.matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
        } }
    }

    func testConvolutions() {
        for (stride, pad, k) in [(1, 1, 3), (2, 1, 3), (1, 0, 1), (2, 0, 2), (1, 2, 3)] {
            let x = rand([2, 3, 6, 5], 9), w = rand([4, 3, k, k], 10), b = rand([4], 11)
            check("conv2d s\(stride) p\(pad) k\(k)", [x, w, b]) { Tensor.conv2d($0[0], weight: $0[1], bias: $0[2], stride: stride, padding: pad) }
            check("conv2d nobias s\(stride) p\(pad) k\(k)", [x, w]) { Tensor.conv2d($0[0], weight: $0[1], stride: stride, padding: pad) }
        }
        for (stride, pad, k) in [(2, 1, 4), (1, 1, 3), (2, 0, 2), (1, 0, 1)] {
            let x = rand([2, 3, 4, 3], 12), w = rand([3, 2, k, k], 13), b = rand([2], 14)
            check("convTranspose2d s\(stride) p\(pad) k\(k)", [x, w, b]) { Tensor.convTranspose2d($0[0], weight: $0[1], bias: $0[2], stride: stride, padding: pad) }
        }
        // a window grid of ≥ 256 (16×17) takes the per-image backward path, the grids above the grouped one
        let big = rand([2, 2, 16, 17], 16)
        check("conv2d 16×17 s1 p1 k3", [big, rand([3, 2, 3, 3], 17), rand([3], 18)]) { Tensor.conv2d($0[0], weight: $0[1], bias: $0[2], padding: 1) }
        check("convTranspose2d 16×17 s1 p1 k3", [big, rand([2, 3, 3, 3], 19), rand([3], 20)]) { Tensor.convTranspose2d($0[0], weight: $0[1], bias: $0[2], padding: 1) }
        let img = rand([2, 3, 4, 6], 15)
        check("upsample x2", [img]) { $0[0].upsampledNearest(factor: 2) }
        check("avgPool 2", [img]) { $0[0].avgPooled(kernel: 2) }
    }

    func testShapeOps() {
        let x = rand([2, 3, 4], 16), y = rand([2, 2, 4], 17)
        check("reshape", [x]) { $0[0].reshaped([4, -1]) }
        check("permute", [x]) { $0[0].permuted([2, 0, 1]) }
        check("transposed", [x]) { $0[0].transposed() }
        check("concat axis 1", [x, y]) { Tensor.concat([$0[0], $0[1]], axis: 1) }
        check("concat axis 0", [x, x.copy()]) { Tensor.concat([$0[0], $0[1]], axis: 0) }
        check("slice", [x]) { $0[0].sliced(axis: 2, start: 1, length: 2) }
        check("pad", [x]) { $0[0].padded(axis: 1, before: 1, after: 2) }
        check("pad multi", [x]) { $0[0].padded([(0, 1), (2, 0), (1, 1)]) }
    }

    func testNormsAndEmbedding() {
        let x = rand([2, 6, 3, 2], 18), g = rand([6], 19), b = rand([6], 20)
        check("groupNorm affine", [x, g, b]) { Tensor.groupNorm($0[0], groups: 3, weight: $0[1], bias: $0[2]) }
        check("groupNorm plain", [x]) { Tensor.groupNorm($0[0], groups: 2) }
        check("groupNorm+silu fused affine", [x, g, b]) { Tensor.groupNorm($0[0], groups: 3, weight: $0[1], bias: $0[2], silu: true) }
        check("groupNorm+silu fused plain", [x]) { Tensor.groupNorm($0[0], groups: 2, silu: true) }
        let s = rand([2, 6], 23)
        check("groupNorm shifted affine+silu", [x, s, g, b]) { Tensor.groupNorm($0[0], groups: 3, weight: $0[2], bias: $0[3], silu: true, shift: $0[1]) }
        check("groupNorm shifted plain", [x, s]) { Tensor.groupNorm($0[0], groups: 2, shift: $0[1]) }
        check("batchNorm affine", [x, g, b]) { Tensor.batchNormTraining($0[0], weight: $0[1], bias: $0[2]).output }
        check("batchNorm plain 2d", [rand([5, 3], 21)]) { Tensor.batchNormTraining($0[0]).output }
        check("batchNorm + ReLU", [x, g, b]) { Tensor.batchNormTraining($0[0], weight: $0[1], bias: $0[2], activation: .relu).output }
        check("batchNorm + LeakyReLU", [x, g, b]) { Tensor.batchNormTraining($0[0], weight: $0[1], bias: $0[2], activation: .leakyRelu(slope: 0.2)).output }
        check("embedding", [rand([5, 3], 22)]) { Tensor.embedding($0[0], indices: [4, 0, 4, 2]) }
    }

    /// A nested valueAndGradient call leaves the enclosing tape's tracking intact.
    func testNestedTapeLeavesOuterTapeIntact() {
        let x = Tensor([1, 2, 3], shape: [3], dtype: .float64)
        let (v, g) = valueAndGradients(wrt: [x]) { () -> Tensor in
            let y = x * x
            let (_, inner) = valueAndGradients(wrt: [x]) { (x * 5).sum() }
            return (y * x + inner[0]).sum()
        }
        XCTAssertEqual(g[0].doubles, [3, 12, 27])
        XCTAssertEqual(v.item, 36 + 15)
        XCTAssertFalse(v.isTracked)
    }

    /// A tensor used several times gets the sum of all its contributions.
    func testGradientsAccumulateOverUses() {
        let x = rand([3], 23)
        check("reuse x*x+x", [x]) { $0[0] * $0[0] + $0[0].exp() }
        let (_, g) = valueAndGradients(wrt: [x]) { (x * 2 + x * 3).sum() }
        XCTAssertEqual(g[0].doubles, [5, 5, 5])
    }
}
