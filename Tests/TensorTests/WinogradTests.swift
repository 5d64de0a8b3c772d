import XCTest
import CKernels
import Tensor

/// Winograd F(2×2, 3×3) (winograd.c) against a Double reference, with its own error bound:
/// every output's error is within γ_n of the algorithm run on absolute values,
/// |Aᵀ[(|G||g||G|ᵀ) ⊙ (|B|ᵀ|d||B|)]|A| (the first-order bound of a chain of n roundings,
/// n = C + 12: four additions in each transform, the weight transform's one rounding, and
/// C in the GEMM's sums). Also: the input-gradient map (flipped weights), the same bits on
/// every ISA, and a typical error within a small factor of the direct kernel's.
final class WinogradTests: XCTestCase {
    /// (c, o, h, w): tiny, non-square, odd channel counts, U-Net-like (32→32 at 16×16).
    let shapes = [(1, 1, 2, 2), (3, 5, 4, 6), (7, 4, 10, 8), (32, 32, 16, 16), (64, 16, 8, 8)]

    func conv(_ x: [Double], _ w: [Double], c: Int, o: Int, h: Int, wd: Int, abs: Bool = false) -> [Double] {
        var y = [Double](repeating: 0, count: o * h * wd)
        for oi in 0..<o { for i in 0..<h { for j in 0..<wd {
            var acc = 0.0
            for ci in 0..<c { for a in 0..<3 { for b in 0..<3 {
                let ih = i + a - 1, iw = j + b - 1
                guard ih >= 0 && ih < h && iw >= 0 && iw < wd else { continue }
                let p = x[(ci * h + ih) * wd + iw] * w[((oi * c + ci) * 3 + a) * 3 + b]
                acc += abs ? Swift.abs(p) : p
            } } }
            y[(oi * h + i) * wd + j] = acc
        } } }
        return y
    }

    /// The Winograd algorithm in Double on absolute values: the error bound's magnitude term.
    func absoluteWinograd(_ x: [Double], _ w: [Double], c: Int, o: Int, h: Int, wd: Int) -> [Double] {
        let B: [[Double]] = [[1, 0, 0, 0], [0, 1, 1, 1], [1, 1, 1, 0], [0, 0, 0, 1]]   // |B| (B = (Bᵀ)ᵀ)
        let G: [[Double]] = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [0, 0, 1]]
        let A: [[Double]] = [[1, 0], [1, 1], [1, 1], [0, 1]]
        var y = [Double](repeating: 0, count: o * h * wd)
        for oi in 0..<o { for ty in 0..<(h / 2) { for tx in 0..<(wd / 2) {
            var m = [[Double]](repeating: [Double](repeating: 0, count: 4), count: 4)
            for ci in 0..<c {
                var d = [[Double]](repeating: [Double](repeating: 0, count: 4), count: 4)
                for a in 0..<4 { for b in 0..<4 {
                    let ih = 2 * ty + a - 1, iw = 2 * tx + b - 1
                    if ih >= 0 && ih < h && iw >= 0 && iw < wd { d[a][b] = abs(x[(ci * h + ih) * wd + iw]) }
                } }
                for a in 0..<4 { for b in 0..<4 {
                    var v = 0.0, u = 0.0
                    for p in 0..<4 { for q in 0..<4 { v += B[p][a] * d[p][q] * B[q][b] } }
                    for p in 0..<3 { for q in 0..<3 { u += G[a][p] * abs(w[((oi * c + ci) * 3 + p) * 3 + q]) * G[b][q] } }
                    m[a][b] += u * v
                } }
            }
            for i in 0..<2 { for j in 0..<2 {
                var s = 0.0
                for a in 0..<4 { for b in 0..<4 { s += A[a][i] * m[a][b] * A[b][j] } }
                y[(oi * h + 2 * ty + i) * wd + 2 * tx + j] = s
            } }
        } } }
        return y
    }

    func winograd(_ x: [Float], _ w: [Float], c: Int, o: Int, h: Int, wd: Int, flipped: Bool = false, bias: [Float]? = nil, isa: Int32 = ek_sgemm_best_isa()) -> [Float] {
        var u = [Float](repeating: .nan, count: ek_wino2_weight_floats(o, c))
        w.withUnsafeBufferPointer { ek_wino2_weights($0.baseAddress!, o, c, flipped ? 1 : 0, &u) }
        var scratch = [Float](repeating: .nan, count: ek_wino2_scratch_floats(1, c, o, h, wd))
        var y = [Float](repeating: .nan, count: o * h * wd)
        let rc = x.withUnsafeBufferPointer { xp in
            if let bias { return bias.withUnsafeBufferPointer { ek_wino2_images(isa, xp.baseAddress!, 1, c, h, wd, u, o, $0.baseAddress!, &y, &scratch) } }
            return ek_wino2_images(isa, xp.baseAddress!, 1, c, h, wd, u, o, nil, &y, &scratch)
        }
        XCTAssertEqual(rc, 0)
        return y
    }

    func testForwardIsWithinItsErrorBound() {
        for (c, o, h, wd) in shapes {
            let x = Tensor.normal([c, h, wd], key: RandomKey(seed: 11)).scalars, w = Tensor.normal([o, c, 3, 3], key: RandomKey(seed: 12)).scalars
            let xd = x.map(Double.init), wdb = w.map(Double.init)
            let want = conv(xd, wdb, c: c, o: o, h: h, wd: wd), mag = absoluteWinograd(xd, wdb, c: c, o: o, h: h, wd: wd)
            let got = winograd(x, w, c: c, o: o, h: h, wd: wd)
            let n = Double(c + 12), u = 0x1p-24, gamma = n * u / (1 - n * u)
            var worst = 0.0
            for i in want.indices {
                let err = abs(Double(got[i]) - want[i])
                XCTAssertLessThanOrEqual(err, gamma * mag[i] + 1e-30, "\(c)→\(o) at \(h)×\(wd), output \(i)")
                worst = max(worst, err / max(gamma * mag[i], 1e-30))
            }
            // and in practice well inside it, and close to the direct kernel's typical error
            XCTAssertLessThan(worst, 0.5, "\(c)→\(o) at \(h)×\(wd)")
            let direct = conv(xd.map { Double(Float($0)) }, wdb, c: c, o: o, h: h, wd: wd).map { Float($0) }   // correctly rounded: the best a Float kernel can do
            let scale = want.map(abs).max()!
            let rmsW = (zip(got, want).map { (Double($0) - $1) * (Double($0) - $1) }.reduce(0, +) / Double(want.count)).squareRoot()
            let rmsD = (zip(direct, want).map { (Double($0) - $1) * (Double($0) - $1) }.reduce(0, +) / Double(want.count)).squareRoot()
            XCTAssertLessThan(rmsW, max(16 * rmsD, 1e-7 * scale), "\(c)→\(o) at \(h)×\(wd): rms error \(rmsW) vs correctly rounded \(rmsD)")
            XCTAssertLessThan(zip(got, want).map { abs(Double($0) - $1) }.max()!, 1e-5 * scale, "\(c)→\(o) at \(h)×\(wd): the numerics gate")
        }
    }

    func testBiasAndInputGradientMap() {
        let (c, o, h, wd) = (6, 9, 8, 12)
        let w = Tensor.normal([o, c, 3, 3], key: RandomKey(seed: 21)).scalars
        let b = Tensor.normal([o], key: RandomKey(seed: 22)).scalars
        let x = Tensor.normal([c, h, wd], key: RandomKey(seed: 23)).scalars
        let plain = winograd(x, w, c: c, o: o, h: h, wd: wd), biased = winograd(x, w, c: c, o: o, h: h, wd: wd, bias: b)
        for i in plain.indices { XCTAssertEqual(biased[i], plain[i] + b[i / (h * wd)], "bias is added last, once") }
        // dx = the map with transposed, flipped weights applied to an upstream gradient [o][h][w]
        let g = Tensor.normal([o, h, wd], key: RandomKey(seed: 24)).scalars
        var flipped = [Double](repeating: 0, count: w.count)   // [c][o][3][3]
        for oi in 0..<o { for ci in 0..<c { for k in 0..<9 { flipped[(ci * o + oi) * 9 + 8 - k] = Double(w[(oi * c + ci) * 9 + k]) } } }
        let want = conv(g.map(Double.init), flipped, c: o, o: c, h: h, wd: wd)
        let mag = absoluteWinograd(g.map(Double.init), flipped, c: o, o: c, h: h, wd: wd)
        let got = winograd(g, w, c: o, o: c, h: h, wd: wd, flipped: true)
        let gamma = Double(o + 12) * 0x1p-24 / (1 - Double(o + 12) * 0x1p-24)
        for i in want.indices { XCTAssertLessThanOrEqual(abs(Double(got[i]) - want[i]), gamma * mag[i] + 1e-30, "dx output \(i)") }
    }

    func testSameBitsOnEveryISA() {
        let (c, o, h, wd) = (40, 24, 16, 16)
        let x = Tensor.normal([c, h, wd], key: RandomKey(seed: 31)).scalars, w = Tensor.normal([o, c, 3, 3], key: RandomKey(seed: 32)).scalars
        let isas = [EK_ISA_PORTABLE, EK_ISA_AVX2, EK_ISA_AVX512].filter { ek_sgemm_isa_available($0) == 1 }
        let first = winograd(x, w, c: c, o: o, h: h, wd: wd, isa: isas[0])
        for isa in isas.dropFirst() { XCTAssertEqual(winograd(x, w, c: c, o: o, h: h, wd: wd, isa: isa), first, "ISA \(isa)") }
        XCTAssertEqual(ek_wino2_applies(7, 8), 0, "odd sizes are refused")
    }

    /// Through `Tensor.conv2d`: the table's shape (256→256 at 16×16) takes Winograd for the
    /// forward and the input gradient: each image's output is the kernel's own bits for that
    /// image alone (so independent of the batch), and close to Double.
    func testConv2dTakesWinogradAtTheTablesShape() throws {
        if ProcessInfo.processInfo.environment["EIDETIC_WINOGRAD"] != nil { throw XCTSkip("EIDETIC_WINOGRAD overrides the table") }
        let (n, c, o, h, wd) = (3, 256, 256, 16, 16)
        let x = Tensor.normal([n, c, h, wd], key: RandomKey(seed: 41)), w = Tensor.normal([o, c, 3, 3], std: 0.05, key: RandomKey(seed: 42))
        let g = Tensor.normal([n, o, h, wd], key: RandomKey(seed: 43))
        let (y, grads) = valueAndGradients(wrt: [x], seed: g) { Tensor.conv2d(x, weight: w, padding: 1) }
        let (xs, ws, gs, ys, dxs) = (x.scalars, w.scalars, g.scalars, y.scalars, grads[0].scalars)
        let plane = c * h * wd
        for i in [0, 2] {
            let alone = winograd(Array(xs[i * plane ..< (i + 1) * plane]), ws, c: c, o: o, h: h, wd: wd)
            XCTAssertEqual(Array(ys[i * plane ..< (i + 1) * plane]), alone, "forward, image \(i)")
            let dxAlone = winograd(Array(gs[i * plane ..< (i + 1) * plane]), ws, c: o, o: c, h: h, wd: wd, flipped: true)
            XCTAssertEqual(Array(dxs[i * plane ..< (i + 1) * plane]), dxAlone, "input gradient, image \(i)")
        }
        let want = conv(xs[0 ..< plane].map(Double.init), ws.map(Double.init), c: c, o: o, h: h, wd: wd)
        let scale = want.map(abs).max()!
        XCTAssertLessThan(zip(ys.prefix(plane), want).map { abs(Double($0) - $1) }.max()!, 1e-5 * scale)
    }
}
