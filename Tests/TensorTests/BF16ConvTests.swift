import XCTest
import CKernels
import Tensor

/// bf16 convolutions (conv_bf16.c, `ComputePrecision.bf16`): the rounding to bf16 by known
/// answers; the kernels against Double loops on the bf16-rounded operands, within a
/// rounding-error bound for Float sums; VDPBF16PS's arithmetic (flushes included) on every
/// ISA bit for bit; and batch, thread and scope invariance through `Tensor.conv2d`.
final class BF16ConvTests: XCTestCase {
    /// (c, o, h, w): odd channel counts (a zero partner channel), output channels that fill
    /// 8-row tiles and ones that do not, widths of 8 (two rows per vector, four per weight-
    /// gradient step), 16, 32 and 64, and 70 input channels (pair blocks of 16, 16, 3).
    let shapes = [(5, 11, 8, 8), (9, 16, 4, 16), (16, 8, 2, 32), (7, 13, 2, 64), (12, 20, 4, 8), (70, 9, 2, 16)]

    func bf16(_ v: Float) -> Double {
        Double(Float(bitPattern: UInt32(ek_bf16_of(v)) << 16))
    }

    func testRoundingToBF16KnownAnswers() {
        let cases: [(UInt32, UInt16)] = [
            (0x3F80_0000, 0x3F80),   // 1
            (0x3F80_8000, 0x3F80),   // tie, even below
            (0x3F81_8000, 0x3F82),   // tie, even above
            (0x3F80_8001, 0x3F81),   // above the tie
            (0xBF80_7FFF, 0xBF80),   // below the tie, negative
            (0x7F7F_FFFF, 0x7F80),   // the largest float rounds to infinity
            (0x7F80_0000, 0x7F80), (0xFF80_0000, 0xFF80),   // infinities
            (0x0000_0001, 0x0000), (0x807F_FFFF, 0x8000),   // subnormals: a zero of their sign
            (0x0080_0000, 0x0080),   // the smallest normal
        ]
        for (f, want) in cases {
            XCTAssertEqual(ek_bf16_of(Float(bitPattern: f)), want, String(format: "%08x", f))
        }
        let nan = ek_bf16_of(Float(bitPattern: 0x7F80_0001))   // a NaN whose payload sits in the dropped half
        XCTAssertTrue(Float(bitPattern: UInt32(nan) << 16).isNaN)
        // the vector conversion (16 lanes at a time, then a scalar tail) rounds the same way
        var values = (0..<3).flatMap { _ in cases.map { Float(bitPattern: $0.0) } } + [Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0xFFC0_1234)]
        values += Tensor.normal([67], key: RandomKey(seed: 1)).scalars
        var converted = [UInt16](repeating: 0, count: values.count)
        ek_bf16_convert(values, values.count, &converted)
        XCTAssertEqual(converted, values.map { ek_bf16_of($0) })
        var pairs = [UInt32](repeating: 9, count: ek_conv3x3b_pair_words(3, 1, 32))
        ek_conv3x3b_pad_pairs(Array(values[0..<96]), 3, 1, 32, &pairs)
        XCTAssertEqual(pairs[34 + 1], UInt32(ek_bf16_of(values[0])) | UInt32(ek_bf16_of(values[32])) << 16)
        XCTAssertEqual(pairs[3 * 34 + 34 + 20], UInt32(ek_bf16_of(values[64 + 19])), "the odd channel's partner is zero")
    }

    /// Double loops on bf16-rounded operands: y, dx, dW, db and, for each, the sum of the
    /// terms' magnitudes (the scale of a Float summation's rounding error).
    func reference(_ x: [Double], _ w: [Double], _ b: [Double], _ g: [Double], n: Int, c: Int, o: Int, h: Int, wd: Int)
        -> (y: [Double], dx: [Double], dw: [Double], db: [Double], ay: [Double], adx: [Double], adw: [Double]) {
        var y = [Double](repeating: 0, count: n * o * h * wd), dx = [Double](repeating: 0, count: x.count)
        var dw = [Double](repeating: 0, count: w.count), db = [Double](repeating: 0, count: o)
        var ay = y, adx = dx, adw = dw
        for ni in 0..<n { for oi in 0..<o { for i in 0..<h { for j in 0..<wd {
            let yi = ((ni * o + oi) * h + i) * wd + j, gv = g[yi]
            var acc = b[oi], mag = abs(b[oi])
            db[oi] += gv
            for ci in 0..<c { for a in 0..<3 { for bb in 0..<3 {
                let ih = i + a - 1, iw = j + bb - 1
                guard ih >= 0 && ih < h && iw >= 0 && iw < wd else { continue }
                let xi = ((ni * c + ci) * h + ih) * wd + iw, wi = ((oi * c + ci) * 3 + a) * 3 + bb
                acc += w[wi] * x[xi]; mag += abs(w[wi] * x[xi])
                dw[wi] += gv * x[xi]; adw[wi] += abs(gv * x[xi])
                dx[xi] += gv * w[wi]; adx[xi] += abs(gv * w[wi])
            } } }
            y[yi] = acc; ay[yi] = mag
        } } } }
        return (y, dx, dw, db, ay, adx, adw)
    }

    /// |got − want| ≤ γ_k · magnitude, γ_k = k·u / (1 − k·u), u = 2⁻²⁴: the first-order
    /// bound of k Float roundings in a sum of exact products (bf16 products are exact).
    func assertWithinBound(_ got: [Float], _ want: [Double], _ magnitude: [Double], roundings k: Int, _ what: String,
                           file: StaticString = #filePath, line: UInt = #line) {
        let u = 0x1p-24, gamma = Double(k) * u / (1 - Double(k) * u)
        var failures = 0, worst = 0.0
        for i in want.indices {
            let err = abs(Double(got[i]) - want[i])
            worst = max(worst, magnitude[i] > 0 ? err / (gamma * magnitude[i]) : err)
            if err > gamma * magnitude[i] + 1e-30 { failures += 1 }
        }
        XCTAssertEqual(failures, 0, "\(what): \(failures) of \(want.count) outside the bound (worst \(worst)× it)", file: file, line: line)
    }

    func testConv2dUnderBF16MatchesDoubleOnRoundedOperands() {
        for (c, o, h, wd) in shapes {
            XCTAssertEqual(ek_conv3x3b_applies(h, wd), 1)
            let n = 3
            let x = Tensor.normal([n, c, h, wd], key: RandomKey(seed: 1)), w = Tensor.normal([o, c, 3, 3], key: RandomKey(seed: 2))
            let b = Tensor.normal([o], key: RandomKey(seed: 3)), g = Tensor.normal([n, o, h, wd], key: RandomKey(seed: 4))
            let r16 = { (t: Tensor) in t.scalars.map { self.bf16($0) } }
            // forward and dW on rounded x; dx on rounded dY and weights; db is a Float sum of dY
            let want = reference(r16(x), r16(w), b.doubles, r16(g), n: n, c: c, o: o, h: h, wd: wd)
            let (y, grads) = ComputePrecision.$current.withValue(.bf16) {
                valueAndGradients(wrt: [x, w, b], seed: g) { Tensor.conv2d(x, weight: w, bias: b, padding: 1) }
            }
            let what = "\(c)→\(o) at \(h)×\(wd)"
            assertWithinBound(y.scalars, want.y, want.ay, roundings: c * 9 + c / 32 + 2, "forward \(what)")
            assertWithinBound(grads[0].scalars, want.dx, want.adx, roundings: o * 9 + o / 32 + 2, "dx \(what)")
            assertWithinBound(grads[1].scalars, want.dw, want.adw, roundings: n * h * wd + 8, "dW \(what)")
            let fp32db = valueAndGradients(wrt: [b], seed: g) { Tensor.conv2d(x, weight: w, bias: b, padding: 1) }.1[0]
            XCTAssertEqual(grads[2].scalars, fp32db.scalars, "db \(what)")
            // and the operands really were rounded: against the unrounded Double result the
            // error is bf16's (~2⁻⁹ relative), far outside the Float bound
            let exact = reference(x.doubles, w.doubles, b.doubles, g.doubles, n: n, c: c, o: o, h: h, wd: wd)
            let off = zip(y.scalars, exact.y).map { abs(Double($0) - $1) }.max()!
            XCTAssertGreaterThan(off, 1e-4, "forward \(what) differs from the fp32-operand result by bf16 rounding")
        }
    }

    /// The native VDPBF16PS clone, the AVX-512F, AVX2 and portable emulations: same bits,
    /// including products whose sum is subnormal (flushed to a zero, as the instruction does).
    func testEveryISAGivesTheSameBits() throws {
        let isas = [EK_ISA_PORTABLE, EK_ISA_AVX2, EK_ISA_AVX512].filter { ek_sgemm_isa_available($0) == 1 }
            + (ek_bf16_native() == 1 ? [EK_ISA_AVX512BF16] : [])
        guard isas.count > 1 else { throw XCTSkip("one ISA on this CPU") }
        for (c, o, h, wd) in shapes {
            let n = 2
            var x = Tensor.normal([n, c, h, wd], key: RandomKey(seed: 5)).scalars
            let w = Tensor.normal([o, c, 3, 3], key: RandomKey(seed: 6)).scalars
            let b = Tensor.normal([o], key: RandomKey(seed: 7)).scalars
            var g = Tensor.normal([n, o, h, wd], key: RandomKey(seed: 8)).scalars
            // image 1 tiny: its products (≈ 2⁻¹⁴⁰) are subnormal, and flushed
            for i in (c * h * wd)..<x.count { x[i] *= 0x1p-70 }
            for i in (o * h * wd)..<g.count { g[i] *= 0x1p-70 }
            var results: [[Float]] = []
            for isa in isas {
                var fw = [UInt32](repeating: 0, count: ek_conv3x3b_packed_words(isa, o, c))
                var bw = [UInt32](repeating: 0, count: ek_conv3x3b_packed_words(isa, c, o))
                ek_conv3x3b_pack(isa, w, o, c, 0, &fw)
                ek_conv3x3b_pack(isa, w, c, o, 1, &bw)
                var pairs = [UInt32](repeating: 7, count: ek_conv3x3b_pair_words(max(c, o), h, wd))
                var y = [Float](repeating: .nan, count: n * o * h * wd), dx = [Float](repeating: .nan, count: x.count)
                var dw = [Float](repeating: 1, count: w.count)   // accumulates onto what is there
                for i in 0..<n {
                    let yi = i * o * h * wd, xi = i * c * h * wd
                    x.withUnsafeBufferPointer { ek_conv3x3b_pad_pairs($0.baseAddress! + xi, c, h, wd, &pairs) }
                    y.withUnsafeMutableBufferPointer { XCTAssertEqual(ek_conv3x3b_image(isa, pairs, c, h, wd, fw, o, b, $0.baseAddress! + yi), 0) }
                    g.withUnsafeBufferPointer { ek_conv3x3b_pad_pairs($0.baseAddress! + yi, o, h, wd, &pairs) }
                    dx.withUnsafeMutableBufferPointer { XCTAssertEqual(ek_conv3x3b_image(isa, pairs, o, h, wd, bw, c, nil, $0.baseAddress! + xi), 0) }
                }
                let planeSize = ek_conv3x3b_plane_halves(c, h, wd)
                var planes = [UInt16](repeating: 7, count: n * planeSize), g16 = [UInt16](repeating: 0, count: g.count)
                for i in 0..<n { x.withUnsafeBufferPointer { ek_conv3x3b_pad_plain($0.baseAddress! + i * c * h * wd, c, h, wd, &planes[i * planeSize]) } }
                ek_bf16_convert(g, g.count, &g16)
                // in two output-channel parts: rows of one part never touch the other's
                XCTAssertEqual(ek_conv3x3b_weight_grad(isa, planes, n, c, h, wd, g16, o, 0, o / 2, &dw), 0)
                XCTAssertEqual(ek_conv3x3b_weight_grad(isa, planes, n, c, h, wd, g16, o, o / 2, o, &dw), 0)
                results.append(y + dx + dw)
            }
            for (isa, r) in zip(isas.dropFirst(), results.dropFirst()) {
                XCTAssertEqual(r, results[0], "ISA \(isa) against the portable kernel, \(c)→\(o) at \(h)×\(wd)")
            }
        }
        // flushed, not subnormal: products of 2⁻⁷⁰ and 2⁻⁷⁰ (2⁻¹⁴⁰, a Float subnormal) sum to
        // zero; without the flush each output would be a multiple of 2⁻¹⁴⁰
        let (c, o, h, wd) = (4, 8, 2, 16)
        let tiny = [Float](repeating: 0x1p-70, count: c * h * wd), tinyW = [Float](repeating: 0x1p-70, count: o * c * 9)
        for isa in isas {
            var fw = [UInt32](repeating: 0, count: ek_conv3x3b_packed_words(isa, o, c))
            ek_conv3x3b_pack(isa, tinyW, o, c, 0, &fw)
            var pairs = [UInt32](repeating: 0, count: ek_conv3x3b_pair_words(c, h, wd)), y = [Float](repeating: .nan, count: o * h * wd)
            ek_conv3x3b_pad_pairs(tiny, c, h, wd, &pairs)
            XCTAssertEqual(ek_conv3x3b_image(isa, pairs, c, h, wd, fw, o, nil, &y), 0)
            XCTAssertEqual(y, [Float](repeating: 0, count: o * h * wd), "ISA \(isa) flushes subnormal sums")
            var planes = [UInt16](repeating: 0, count: ek_conv3x3b_plane_halves(c, h, wd)), g16 = [UInt16](repeating: 0, count: o * h * wd)
            ek_conv3x3b_pad_plain(tiny, c, h, wd, &planes)
            ek_bf16_convert([Float](repeating: -0x1p-70, count: o * h * wd), o * h * wd, &g16)
            var dw = [Float](repeating: 0, count: o * c * 9)
            XCTAssertEqual(ek_conv3x3b_weight_grad(isa, planes, 1, c, h, wd, g16, o, 0, o, &dw), 0)
            XCTAssertEqual(dw, [Float](repeating: 0, count: o * c * 9), "ISA \(isa) flushes subnormal weight-gradient sums")
        }
        XCTAssertEqual(ek_conv3x3b_applies(6, 8), 0)
        XCTAssertEqual(ek_conv3x3b_applies(3, 16), 0)
        XCTAssertEqual(ek_conv3x3b_applies(4, 48), 0)
    }

    /// An image's output does not depend on its batch, gradients not on the thread count;
    /// a conv recorded under bf16 takes its backward in bf16 wherever that runs; layers the
    /// kernel does not take (RGB-sized sides, strides) and the default scope stay fp32.
    func testInvarianceAndScope() {
        let saved = Threads.count
        defer { Threads.count = saved }
        let x = Tensor.normal([9, 12, 16, 16], key: RandomKey(seed: 9)), w = Tensor.normal([24, 12, 3, 3], key: RandomKey(seed: 10))
        let b = Tensor.normal([24], key: RandomKey(seed: 11))
        let bf = { (body: () -> Tensor) in ComputePrecision.$current.withValue(.bf16, operation: body) }
        let y = bf { Tensor.conv2d(x, weight: w, bias: b, padding: 1) }
        XCTAssertNotEqual(y.scalars, Tensor.conv2d(x, weight: w, bias: b, padding: 1).scalars, "bf16 is not the fp32 result")
        for (start, length) in [(4, 1), (2, 5)] {
            XCTAssertEqual(bf { Tensor.conv2d(x.sliced(axis: 0, start: start, length: length), weight: w, bias: b, padding: 1) }.scalars,
                           y.sliced(axis: 0, start: start, length: length).scalars, "images \(start)..<\(start + length)")
        }
        func grads() -> [[Float]] {
            ComputePrecision.$current.withValue(.bf16) {
                valueAndGradients(wrt: [x, w, b]) { Tensor.conv2d(x, weight: w, bias: b, padding: 1).squared().sum() }.1.map { $0.scalars }
            }
        }
        Threads.count = 1
        let one = grads()
        Threads.count = 2
        XCTAssertEqual(one, grads())
        // the gradient of a bf16 forward, differentiated outside the scope: still bf16
        let outside = valueAndGradients(wrt: [x, w, b]) {
            ComputePrecision.$current.withValue(.bf16) { Tensor.conv2d(x, weight: w, bias: b, padding: 1) }.squared().sum()
        }.1.map { $0.scalars }
        XCTAssertEqual(outside, one)
        XCTAssertNotEqual(outside[1], valueAndGradients(wrt: [w]) { Tensor.conv2d(x, weight: w, bias: b, padding: 1).squared().sum() }.1[0].scalars)
        // not taken: 3 input channels (conv3x3.c), stride 2 (im2col), width 24 (fp32 kernels' too)
        let rgb = Tensor.normal([2, 3, 16, 16], key: RandomKey(seed: 12)), w3 = Tensor.normal([8, 3, 3, 3], key: RandomKey(seed: 13))
        XCTAssertEqual(bf { Tensor.conv2d(rgb, weight: w3, padding: 1) }.scalars, Tensor.conv2d(rgb, weight: w3, padding: 1).scalars)
        XCTAssertEqual(bf { Tensor.conv2d(x, weight: w, stride: 2, padding: 1) }.scalars, Tensor.conv2d(x, weight: w, stride: 2, padding: 1).scalars)
        XCTAssertEqual(ComputePrecision.current, .fp32)
    }
}
