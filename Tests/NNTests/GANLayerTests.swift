import Foundation
import NN
import Tensor
import XCTest

/// The GAN building blocks of NN: spectral normalization, conditional BatchNorm, GAN losses
/// and DiffAugment. Every derivative path is checked against central differences in Double.
final class GANLayerTests: XCTestCase {
    func dbl(_ shape: [Int], _ seed: UInt64, std: Double = 1) -> Tensor {
        Tensor.normal(shape, std: std, key: RandomKey(seed: seed), dtype: .float64)
    }

    /// f(inputs) = Σ op(inputs) ⊙ R with a fixed random R, so the whole vector-Jacobian product is checked.
    func assertGradient(_ name: String, _ inputs: [Tensor], rtol: Double = 1e-5, file: StaticString = #filePath, line: UInt = #line,
                        _ op: ([Tensor]) -> Tensor) {
        let probe = withoutGradient { op(inputs) }
        let weights = dbl(probe.shape, 0xF00D)
        let report = checkGradient(inputs, rtol: rtol) { (op($0) * weights).sum() }
        XCTAssertTrue(report.passed, "\(name): \(report)", file: file, line: line)
    }

    // MARK: spectral normalization

    /// W/σ̂ as a function of W (u, v fixed: evaluation mode) against central differences, for the
    /// conv, linear and embedding wrappers; and in training mode the tape's gradient is the same
    /// (the power-iteration vectors are constants of the derivative, as in PyTorch).
    func testSpectralNormGradientsMatchFiniteDifferences() {
        let conv = SpectralNormConv2d(weight: dbl([4, 3, 3, 3], 1, std: 0.3), bias: dbl([4], 2), stride: 2, padding: 1,
                                      key: RandomKey(seed: 3))
        let x = dbl([2, 3, 5, 5], 4)
        conv.eval()
        assertGradient("sn conv2d", [x, conv.weight, conv.bias!]) { _ in conv(x) }

        let linear = SpectralNormLinear(weight: dbl([3, 5], 5), bias: dbl([3], 6), powerIterations: 2, key: RandomKey(seed: 7))
        let xl = dbl([4, 5], 8)
        linear.eval()
        assertGradient("sn linear", [xl, linear.weight, linear.bias!]) { _ in linear(xl) }

        let embedding = SpectralNormEmbedding(weight: dbl([3, 6], 9), key: RandomKey(seed: 10))
        embedding.eval()
        assertGradient("sn embedding", [embedding.weight]) { _ in embedding([2, 0, 2]) }

        // the raw normalization, on a weight that is not tracked elsewhere
        let w = dbl([5, 2, 2, 2], 11), u = dbl([5], 12), v = dbl([8], 13)
        assertGradient("spectralNormalized", [w]) { t in spectralNormalized(t[0], u: u, v: v, powerIterations: 1, update: false) }

        // training mode: the forward updates u, v, and the gradient equals evaluation mode's with the updated vectors
        conv.train()
        let r = dbl([2, 4, 3, 3], 14)
        let uBefore = conv.u.doubles
        let (_, trainGrads) = valueAndGradients(wrt: [conv.weight]) { (conv(x) * r).sum() }
        XCTAssertNotEqual(conv.u.doubles, uBefore, "a training-mode forward advances the power iteration")
        conv.eval()
        let uAfter = conv.u.doubles
        let (_, evalGrads) = valueAndGradients(wrt: [conv.weight]) { (conv(x) * r).sum() }
        XCTAssertEqual(conv.u.doubles, uAfter, "evaluation mode leaves u untouched")
        XCTAssertEqual(trainGrads[0].doubles, evalGrads[0].doubles)
        let report = checkGradient([conv.weight]) { _ in (conv(x) * r).sum() }
        XCTAssertTrue(report.passed, "sn conv2d after a training step: \(report)")
    }

    /// σ̂ = uᵀ W v converges to the largest singular value: a diagonal-in-disguise matrix
    /// (orthogonal rows with norms 3, 2, 0.5) normalizes to spectral norm 1.
    func testSpectralNormOfKnownMatrix() {
        // rows: 3·e1, 2·(e2 + e3)/√2, 0.5·e4
        let s = 2 / 2.0.squareRoot()
        let w = Tensor([3, 0, 0, 0, 0, s, s, 0, 0, 0, 0, 0.5], shape: [3, 4], dtype: .float64)
        let layer = SpectralNormLinear(weight: w, bias: nil, key: RandomKey(seed: 1))
        layer.eval()
        let normalized = layer.normalizedWeight().doubles
        XCTAssertEqual(normalized[0], 1, accuracy: 1e-8)
        XCTAssertEqual(normalized[5], s / 3, accuracy: 1e-8)
        XCTAssertEqual(Swift.abs(layer.u.doubles[0]), 1, accuracy: 1e-8)
    }

    // MARK: conditional BatchNorm

    func testConditionalBatchNormGradientsAndLabels() {
        let cbn = ConditionalBatchNorm(channels: 3, classes: 4, dtype: .float64)
        XCTAssertEqual(cbn.parameters().keys, ["gamma", "beta"])
        XCTAssertEqual(cbn.buffers().keys, ["norm.runningMean", "norm.runningVar"])
        XCTAssertEqual(cbn.gamma.doubles, [Double](repeating: 1, count: 12))
        XCTAssertEqual(cbn.beta.doubles, [Double](repeating: 0, count: 12))
        cbn.gamma.assign(dbl([4, 3], 1)); cbn.beta.assign(dbl([4, 3], 2))
        let x = dbl([5, 3, 2, 2], 3), labels = [0, 2, 1, 2, 3]
        assertGradient("cbn train", [x, cbn.gamma, cbn.beta]) { t in cbn(t[0], labels: labels) }
        cbn.eval()
        assertGradient("cbn eval", [x, cbn.gamma, cbn.beta]) { t in cbn(t[0], labels: labels) }

        // y = γ[label]·x̂ + β[label]: with the same input, two labels give the affine maps of their rows
        let one = x.sliced(axis: 0, start: 0, length: 1)
        let a = cbn(one, labels: [1]).doubles, b = cbn(one, labels: [3]).doubles
        let plain = cbn.norm(one).doubles
        for i in 0..<a.count {
            let ch = i / 4
            XCTAssertEqual(a[i], cbn.gamma.doubles[3 + ch] * plain[i] + cbn.beta.doubles[3 + ch], accuracy: 1e-12)
            XCTAssertEqual(b[i], cbn.gamma.doubles[9 + ch] * plain[i] + cbn.beta.doubles[9 + ch], accuracy: 1e-12)
        }
        XCTAssertNotEqual(a, b)
    }

    // MARK: GAN losses

    func testGANLossesKnownAnswersAndGradients() {
        func softplus(_ x: Double) -> Double { Foundation.log(1 + Foundation.exp(x)) }
        let realValues: [Double] = [1, -2, 0.5], fakeValues: [Double] = [0.5, 3, -1]
        let real = Tensor(realValues, shape: [3], dtype: .float64), fake = Tensor(fakeValues, shape: [3], dtype: .float64)
        // non-saturating: BCE(real, 1) = softplus(−real), BCE(fake, 0) = softplus(fake)
        let realTerm: Double = realValues.map { softplus(-$0) }.reduce(0, +) / 3
        let fakeTerm: Double = fakeValues.map { softplus($0) }.reduce(0, +) / 3
        let generatorTerm: Double = fakeValues.map { softplus(-$0) }.reduce(0, +) / 3
        XCTAssertEqual(ganDiscriminatorLoss(real: real, fake: fake, .nonSaturating).item, realTerm + fakeTerm, accuracy: 1e-12)
        XCTAssertEqual(ganGeneratorLoss(fake: fake, .nonSaturating).item, generatorTerm, accuracy: 1e-12)
        let zero = Tensor([0, 0], shape: [2], dtype: .float64)
        XCTAssertEqual(ganDiscriminatorLoss(real: zero, fake: zero, .nonSaturating).item, 2 * Foundation.log(2.0), accuracy: 1e-12)
        // hinge: mean(relu(1 − real)) + mean(relu(1 + fake)) = (0 + 3 + 0.5)/3 + (1.5 + 4 + 0)/3
        XCTAssertEqual(ganDiscriminatorLoss(real: real, fake: fake, .hinge).item, 3.5 / 3 + 5.5 / 3, accuracy: 1e-12)
        XCTAssertEqual(ganGeneratorLoss(fake: fake, .hinge).item, -2.5 / 3, accuracy: 1e-12)
        // Float32 logits stay finite for large values
        let big = Tensor([80, -80], shape: [2])
        XCTAssertEqual(ganDiscriminatorLoss(real: big, fake: -big, .nonSaturating).item, 80, accuracy: 1e-3)

        let r = dbl([6], 1), f = dbl([6], 2)
        for kind in GANLoss.allCases {
            XCTAssertTrue(checkGradient([r, f]) { ganDiscriminatorLoss(real: $0[0], fake: $0[1], kind) }.passed, "D \(kind)")
            XCTAssertTrue(checkGradient([f]) { ganGeneratorLoss(fake: $0[0], kind) }.passed, "G \(kind)")
        }
        XCTAssertEqual(GANLoss(rawValue: "nonsaturating"), .nonSaturating)
        XCTAssertEqual(GANLoss(rawValue: "hinge"), .hinge)
    }

    // MARK: DiffAugment

    func testDiffAugmentPolicyParsing() throws {
        XCTAssertEqual(try DiffAugment(policy: "color,translation,cutout").transforms, [.color, .translation, .cutout])
        XCTAssertEqual(try DiffAugment(policy: " translation , color ").transforms, [.translation, .color])
        XCTAssertTrue(try DiffAugment(policy: "").isIdentity)
        XCTAssertThrowsError(try DiffAugment(policy: "color,flip")) { XCTAssertEqual($0 as? DiffAugmentError, .unknownTransform("flip")); XCTAssertTrue("\($0)".contains("'flip'")) }
        XCTAssertThrowsError(try DiffAugment(policy: "color,,cutout")) { XCTAssertEqual($0 as? DiffAugmentError, .unknownTransform("")) }
        let policy = try DiffAugment(policy: "translation,cutout")
        let json = try JSONEncoder().encode(policy)
        XCTAssertEqual(String(decoding: json, as: UTF8.self), "\"translation,cutout\"")
        XCTAssertEqual(try JSONDecoder().decode(DiffAugment.self, from: json), policy)
        XCTAssertThrowsError(try JSONDecoder().decode(DiffAugment.self, from: Data("\"zoom\"".utf8)))
    }

    func testDiffAugmentIsDeterministicAndIdentityWhenEmpty() throws {
        let x = Tensor.normal([4, 3, 16, 16], key: RandomKey(seed: 1))
        XCTAssertTrue(DiffAugment()(x, key: RandomKey(seed: 2)) === x)
        let all = try DiffAugment(policy: "color,translation,cutout")
        let a = all(x, key: RandomKey(seed: 3)), b = all(x, key: RandomKey(seed: 3)), c = all(x, key: RandomKey(seed: 4))
        XCTAssertEqual(a.shape, x.shape)
        XCTAssertEqual(a.scalars, b.scalars)
        XCTAssertNotEqual(a.scalars, c.scalars)
    }

    func testDiffAugmentGradientsMatchFiniteDifferences() throws {
        let x = dbl([3, 2, 8, 8], 5)
        for policy in ["color", "translation", "cutout", "color,translation,cutout"] {
            let augment = try DiffAugment(policy: policy)
            assertGradient("DiffAugment \(policy)", [x]) { augment($0[0], key: RandomKey(seed: 6)) }
        }
    }

    /// Each output image is the input shifted by one (dy, dx) with |dy|, |dx| ≤ 4 at 32×32, zero-filled;
    /// the shifts vary between images.
    func testDiffAugmentTranslationIsAZeroFilledShift() throws {
        let (n, c, h, w) = (16, 2, 32, 32)
        let x = Tensor.uniform([n, c, h, w], low: 1, high: 2, key: RandomKey(seed: 7), dtype: .float64)
        let y = try DiffAugment(policy: "translation")(x, key: RandomKey(seed: 8))
        let xs = x.doubles, ys = y.doubles
        var shifts = Set<[Int]>()
        for i in 0..<n {
            var matches: [[Int]] = []
            for dy in -4...4 { for dx in -4...4 {
                var ok = true
                loop: for ch in 0..<c { for r in 0..<h { for col in 0..<w {
                    let (sr, sc) = (r + dy, col + dx)
                    let expected = (0..<h).contains(sr) && (0..<w).contains(sc) ? xs[((i * c + ch) * h + sr) * w + sc] : 0
                    if ys[((i * c + ch) * h + r) * w + col] != expected { ok = false; break loop }
                } } }
                if ok { matches.append([dy, dx]) }
            } }
            XCTAssertEqual(matches.count, 1, "image \(i): \(matches)")
            if let m = matches.first { shifts.insert(m) }
        }
        XCTAssertGreaterThan(shifts.count, 4)
    }

    /// Cutout zeroes one square (half the side, possibly cut by the border) in every channel and keeps the rest.
    func testDiffAugmentCutoutZeroesOneSquarePerImage() throws {
        let (n, c, h, w) = (32, 3, 16, 16)
        let x = Tensor.uniform([n, c, h, w], low: 1, high: 2, key: RandomKey(seed: 9), dtype: .float64)
        let y = try DiffAugment(policy: "cutout")(x, key: RandomKey(seed: 10))
        let xs = x.doubles, ys = y.doubles
        var sawFullSquare = false, sawClipped = false
        for i in 0..<n {
            var rows = Set<Int>(), cols = Set<Int>(), zeros = 0
            for ch in 0..<c { for r in 0..<h { for col in 0..<w {
                let idx = ((i * c + ch) * h + r) * w + col
                if ys[idx] == 0 { zeros += 1; rows.insert(r); cols.insert(col) } else { XCTAssertEqual(ys[idx], xs[idx]) }
            } } }
            XCTAssertEqual(zeros, c * rows.count * cols.count, "image \(i): the zeroed set is a rectangle in every channel")
            XCTAssertTrue(rows.count <= 8 && cols.count <= 8 && !rows.isEmpty)
            XCTAssertEqual(rows.max()! - rows.min()! + 1, rows.count)
            XCTAssertEqual(cols.max()! - cols.min()! + 1, cols.count)
            // a side shorter than 8 only where the square meets the border
            if rows.count < 8 { XCTAssertTrue(rows.contains(0) || rows.contains(h - 1)) }
            if cols.count < 8 { XCTAssertTrue(cols.contains(0) || cols.contains(w - 1)) }
            if rows.count == 8 && cols.count == 8 { sawFullSquare = true } else { sawClipped = true }
        }
        XCTAssertTrue(sawFullSquare && sawClipped)
    }

    /// On gray images (equal channels) saturation is the identity, so color reduces to
    /// y = (x − mean x)·c + mean x + b with c ∈ [0.5, 1.5], b ∈ [−0.5, 0.5], drawn per image.
    func testDiffAugmentColorOnGrayImages() throws {
        let (n, h, w) = (64, 4, 4)
        let gray = Tensor.normal([n, 1, h, w], key: RandomKey(seed: 11), dtype: .float64)
        let x = Tensor.concat([gray, gray, gray], axis: 1)
        let y = try DiffAugment(policy: "color")(x, key: RandomKey(seed: 12))
        let xs = x.doubles, ys = y.doubles, m = 3 * h * w
        var slopes: [Double] = [], shifts: [Double] = []
        for i in 0..<n {
            let xi = Array(xs[i * m ..< (i + 1) * m]), yi = Array(ys[i * m ..< (i + 1) * m])
            let mx = xi.reduce(0, +) / Double(m), my = yi.reduce(0, +) / Double(m)
            let slope = (yi[0] - my) / (xi[0] - mx)
            for j in 0..<m { XCTAssertEqual(yi[j] - my, slope * (xi[j] - mx), accuracy: 1e-9) }
            slopes.append(slope); shifts.append(my - mx)
        }
        XCTAssertTrue(slopes.allSatisfy { $0 >= 0.5 && $0 <= 1.5 }, "\(slopes)")
        XCTAssertTrue(shifts.allSatisfy { $0 >= -0.5 && $0 <= 0.5 }, "\(shifts)")
        XCTAssertGreaterThan(slopes.max()! - slopes.min()!, 0.6)
        XCTAssertGreaterThan(shifts.max()! - shifts.min()!, 0.6)
    }
}
