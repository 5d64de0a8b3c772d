import XCTest
import CKernels
import Tensor

/// The direct 3×3 convolution kernels (conv_direct.c) that U-Net layers take: against Double
/// loops, across ISAs bit for bit, and through `Tensor.conv2d` (the path is checked by
/// comparing with the kernel's own bits).
final class DirectConvTests: XCTestCase {
    /// (c, o, h, w): output channels that fill 8-row tiles and ones that do not; widths of
    /// 8 (two rows per vector), 16, 32 and 48 (a row of two vectors plus one); 70 input
    /// channels: three channel blocks of the forward's order (32, 32, 6).
    let shapes = [(5, 11, 8, 8), (9, 16, 6, 16), (16, 8, 2, 32), (7, 13, 4, 48), (12, 20, 8, 8), (3, 17, 4, 16), (70, 9, 4, 16)]

    /// y[n, o, i, j] = b[o] + Σ w[o, c, a, b'] x[n, c, i + a − 1, j + b' − 1] in Double, with
    /// dx, dW and db for upstream g.
    func reference(_ x: [Double], _ w: [Double], _ b: [Double], _ g: [Double], n: Int, c: Int, o: Int, h: Int, wd: Int)
        -> (y: [Double], dx: [Double], dw: [Double], db: [Double]) {
        var y = [Double](repeating: 0, count: n * o * h * wd), dx = [Double](repeating: 0, count: x.count)
        var dw = [Double](repeating: 0, count: w.count), db = [Double](repeating: 0, count: o)
        for ni in 0..<n { for oi in 0..<o { for i in 0..<h { for j in 0..<wd {
            let yi = ((ni * o + oi) * h + i) * wd + j, gv = g[yi]
            var acc = b[oi]
            db[oi] += gv
            for ci in 0..<c { for a in 0..<3 { for bb in 0..<3 {
                let ih = i + a - 1, iw = j + bb - 1
                guard ih >= 0 && ih < h && iw >= 0 && iw < wd else { continue }
                let xi = ((ni * c + ci) * h + ih) * wd + iw, wi = ((oi * c + ci) * 3 + a) * 3 + bb
                acc += w[wi] * x[xi]; dw[wi] += gv * x[xi]; dx[xi] += gv * w[wi]
            } } }
            y[yi] = acc
        } } } }
        return (y, dx, dw, db)
    }

    func assertClose(_ a: [Float], _ b: [Double], rtol: Double = 1e-5, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        assertCloseToDoubles(a, b, rtol: rtol, what, file: file, line: line)
    }

    func testConv2dTakesTheDirectKernelAndMatchesDoubleLoops() {
        for (c, o, h, wd) in shapes {
            XCTAssertEqual(ek_conv3x3d_applies(h, wd), 1)
            let n = 5
            let x = Tensor.normal([n, c, h, wd], key: RandomKey(seed: 1)), w = Tensor.normal([o, c, 3, 3], key: RandomKey(seed: 2))
            let b = Tensor.normal([o], key: RandomKey(seed: 3)), g = Tensor.normal([n, o, h, wd], key: RandomKey(seed: 4))
            let want = reference(x.doubles, w.doubles, b.doubles, g.doubles, n: n, c: c, o: o, h: h, wd: wd)
            let (y, grads) = valueAndGradients(wrt: [x, w, b], seed: g) { Tensor.conv2d(x, weight: w, bias: b, padding: 1) }
            let what = "\(c)→\(o) at \(h)×\(wd)"
            assertClose(y.scalars, want.y, "forward \(what)")
            assertClose(grads[0].scalars, want.dx, "dx \(what)")
            assertClose(grads[1].scalars, want.dw, "dW \(what)")
            assertClose(grads[2].scalars, want.db, "db \(what)")
            assertClose(Tensor.conv2d(x, weight: w, padding: 1).scalars, reference(x.doubles, w.doubles, [Double](repeating: 0, count: o),
                                                                                 g.doubles, n: n, c: c, o: o, h: h, wd: wd).y, "no bias \(what)")

            // the path: image 3's output is the kernel's own bits (layers with ≤ 4 channels
            // on a side take conv3x3.c's kernel instead)
            if min(c, o) <= 4 { continue }
            let isa = ek_sgemm_best_isa()
            var packed = [Float](repeating: .nan, count: ek_conv3x3d_packed_floats(isa, o, c))
            var pad = [Float](repeating: .nan, count: ek_conv3x3d_pad_floats(c, h, wd))
            var out = [Float](repeating: .nan, count: o * h * wd)
            let xs = x.scalars, ws = w.scalars, bs = b.scalars, image = c * h * wd
            ek_conv3x3d_pack(isa, ws, o, c, 0, &packed)
            XCTAssertEqual(xs.withUnsafeBufferPointer { ek_conv3x3d_image(isa, $0.baseAddress! + 3 * image, c, h, wd, packed, o, bs, &out, &pad) }, 0)
            XCTAssertTrue(out == Array(y.scalars[(3 * o * h * wd)..<(4 * o * h * wd)]), "conv2d is the direct kernel \(what)")
        }
    }

    /// The portable, AVX2 and AVX-512 builds compute every element in one order: same bits.
    func testEveryISAGivesTheSameBits() throws {
        let isas = [EK_ISA_PORTABLE, EK_ISA_AVX2, EK_ISA_AVX512].filter { ek_sgemm_isa_available($0) == 1 }
        guard isas.count > 1 else { throw XCTSkip("one ISA on this CPU") }
        for (c, o, h, wd) in shapes {
            let n = 3
            let x = Tensor.normal([n, c, h, wd], key: RandomKey(seed: 5)).scalars, w = Tensor.normal([o, c, 3, 3], key: RandomKey(seed: 6)).scalars
            let b = Tensor.normal([o], key: RandomKey(seed: 7)).scalars, g = Tensor.normal([n, o, h, wd], key: RandomKey(seed: 8)).scalars
            var results: [[Float]] = []
            for isa in isas {
                var fw = [Float](repeating: 0, count: ek_conv3x3d_packed_floats(isa, o, c))
                var bw = [Float](repeating: 0, count: ek_conv3x3d_packed_floats(isa, c, o))
                ek_conv3x3d_pack(isa, w, o, c, 0, &fw)
                ek_conv3x3d_pack(isa, w, c, o, 1, &bw)
                var pad = [Float](repeating: .nan, count: n * ek_conv3x3d_pad_floats(max(c, o), h, wd))
                var y = [Float](repeating: .nan, count: n * o * h * wd), dx = [Float](repeating: .nan, count: x.count)
                var dw = [Float](repeating: 1, count: w.count)   // accumulates onto what is there
                for i in 0..<n {
                    let yi = i * o * h * wd, xi = i * c * h * wd
                    x.withUnsafeBufferPointer { px in y.withUnsafeMutableBufferPointer { py in
                        XCTAssertEqual(ek_conv3x3d_image(isa, px.baseAddress! + xi, c, h, wd, fw, o, b, py.baseAddress! + yi, &pad), 0)
                    } }
                    g.withUnsafeBufferPointer { pg in dx.withUnsafeMutableBufferPointer { pd in
                        XCTAssertEqual(ek_conv3x3d_image(isa, pg.baseAddress! + yi, o, h, wd, bw, c, nil, pd.baseAddress! + xi, &pad), 0)
                    } }
                }
                let padSize = ek_conv3x3d_pad_floats(c, h, wd)
                for i in 0..<n { x.withUnsafeBufferPointer { ek_conv3x3d_pad($0.baseAddress! + i * c * h * wd, c, h, wd, &pad[i * padSize]) } }
                // in two output-channel parts: rows of one part never touch the other's
                XCTAssertEqual(ek_conv3x3d_weight_grad(isa, pad, n, c, h, wd, g, o, 0, o / 2, &dw), 0)
                XCTAssertEqual(ek_conv3x3d_weight_grad(isa, pad, n, c, h, wd, g, o, o / 2, o, &dw), 0)
                results.append(y + dx + dw)
            }
            for (isa, r) in zip(isas.dropFirst(), results.dropFirst()) {
                XCTAssertEqual(r, results[0], "ISA \(isa) against the portable kernel, \(c)→\(o) at \(h)×\(wd)")
            }
        }
        XCTAssertEqual(ek_conv3x3d_applies(7, 8), 0)
        XCTAssertEqual(ek_conv3x3d_applies(4, 24), 0)
    }

    /// An image's forward output does not depend on its batch; weight gradients do not
    /// depend on the thread count; per-example weight gradients are the batch-of-one ones.
    func testBatchThreadAndPerExampleInvariance() throws {
        let saved = Threads.count
        defer { Threads.count = saved }
        let x = Tensor.normal([9, 12, 16, 16], key: RandomKey(seed: 9)), w = Tensor.normal([24, 12, 3, 3], key: RandomKey(seed: 10))
        let b = Tensor.normal([24], key: RandomKey(seed: 11))
        let y = Tensor.conv2d(x, weight: w, bias: b, padding: 1)
        for (start, length) in [(4, 1), (2, 5)] {
            XCTAssertEqual(Tensor.conv2d(x.sliced(axis: 0, start: start, length: length), weight: w, bias: b, padding: 1).scalars,
                           y.sliced(axis: 0, start: start, length: length).scalars, "images \(start)..<\(start + length)")
        }
        func grads() -> [[Float]] {
            valueAndGradients(wrt: [x, w, b]) { Tensor.conv2d(x, weight: w, bias: b, padding: 1).squared().sum() }.1.map { $0.scalars }
        }
        Threads.count = 1
        let one = grads()
        Threads.count = 2
        XCTAssertEqual(one, grads())
        let (_, perExample) = try valueAndPerExampleGradients(wrt: [w], batch: 9) { Tensor.conv2d(x, weight: w, bias: b, padding: 1).squared().sum() }
        for i in [0, 5] {
            let xi = x.sliced(axis: 0, start: i, length: 1)
            let single = valueAndGradients(wrt: [w]) { Tensor.conv2d(xi, weight: w, bias: b, padding: 1).squared().sum() }.1[0]
            XCTAssertEqual(perExample[0].sliced(axis: 0, start: i, length: 1).scalars, single.scalars, "per-example dW of image \(i)")
        }
    }
}
