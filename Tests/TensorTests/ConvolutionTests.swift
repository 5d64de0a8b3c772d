import XCTest
import Tensor

/// conv2d and its transpose against direct (naive) loops, forward and backward, in Float.
final class ConvolutionTests: XCTestCase {
    /// y[n,o,i,j] = b[o] + Σ_{c,a,b} w[o,c,a,b] · x[n,c,i·s−p+a, j·s−p+b]
    func naiveConv(_ x: [Double], _ xs: [Int], _ w: [Double], _ ws: [Int], _ b: [Double], stride s: Int, pad p: Int) -> ([Double], [Int]) {
        let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3]), (o, kh, kw) = (ws[0], ws[2], ws[3])
        let oh = (h + 2 * p - kh) / s + 1, ow = (wd + 2 * p - kw) / s + 1
        var y = [Double](repeating: 0, count: n * o * oh * ow)
        for ni in 0..<n { for oi in 0..<o { for i in 0..<oh { for j in 0..<ow {
            var acc = b[oi]
            for ci in 0..<c { for a in 0..<kh { for bb in 0..<kw {
                let ih = i * s - p + a, iw = j * s - p + bb
                if ih >= 0 && ih < h && iw >= 0 && iw < wd {
                    acc += w[((oi * c + ci) * kh + a) * kw + bb] * x[((ni * c + ci) * h + ih) * wd + iw]
                }
            } } }
            y[((ni * o + oi) * oh + i) * ow + j] = acc
        } } } }
        return (y, [n, o, oh, ow])
    }

    func assertClose(_ a: [Float], _ b: [Double], rtol: Double = 1e-5, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        assertCloseToDoubles(a, b, rtol: rtol, what, file: file, line: line)
    }

    func testConv2dMatchesDirectConvolution() {
        // small window grids take the grouped backward path (images side by side), grids of
        // ≥ 256 windows (the 17×16 and 34×33 inputs) the per-image one; 3×3 stride-1 convs
        // with ≤ 4 channels on one side and widths divisible by 16 the direct kernel
        let gemmCases = [(1, 1, 3, 9), (2, 1, 3, 9), (1, 0, 1, 9), (2, 1, 4, 9), (1, 2, 5, 9), (1, 1, 3, 17), (2, 1, 4, 34), (2, 0, 4, 10), (3, 1, 3, 11), (3, 2, 4, 12)].map {
            (stride: $0.0, pad: $0.1, k: $0.2, h: $0.3, c: 5, o: 6, wd: $0.3 - 1)
        }
        let directCases = [(stride: 1, pad: 1, k: 3, h: 4, c: 3, o: 8, wd: 16), (stride: 1, pad: 1, k: 3, h: 5, c: 7, o: 3, wd: 32),
                           (stride: 1, pad: 1, k: 3, h: 3, c: 2, o: 4, wd: 16),
                           // blocks of 4, 3, 2 and 1 output channels, rows of two vectors plus one
                           (stride: 1, pad: 1, k: 3, h: 3, c: 4, o: 6, wd: 48), (stride: 1, pad: 1, k: 3, h: 2, c: 1, o: 5, wd: 16)]
        for (stride, pad, k, h, c, o, wd) in gemmCases + directCases {
            let xs = [3, c, h, wd], ws = [o, c, k, k]
            let x = Tensor.normal(xs, key: RandomKey(seed: 1)), w = Tensor.normal(ws, key: RandomKey(seed: 2)), b = Tensor.normal([o], key: RandomKey(seed: 3))
            let (yRef, ys) = naiveConv(x.doubles, xs, w.doubles, ws, b.doubles, stride: stride, pad: pad)
            let y = Tensor.conv2d(x, weight: w, bias: b, stride: stride, padding: pad)
            XCTAssertEqual(y.shape, ys)
            assertClose(y.scalars, yRef, "conv2d forward s\(stride) p\(pad) k\(k) \(c)→\(o)")

            // Backward against the adjoint definitions: with upstream g,
            // dW[o,c,a,b] = Σ g[n,o,i,j] x[n,c,i·s−p+a, j·s−p+b]; dx by scattering; db = Σ g.
            let g = Tensor.normal(ys, key: RandomKey(seed: 4))
            let (taped, grads) = valueAndGradients(wrt: [x, w, b], seed: g) { Tensor.conv2d(x, weight: w, bias: b, stride: stride, padding: pad) }
            assertClose(taped.scalars, yRef, "conv2d forward under a tape (grouped on small grids) s\(stride) p\(pad) k\(k)")
            let (xd, wdv, gd) = (x.doubles, w.doubles, g.doubles)
            var dx = [Double](repeating: 0, count: x.count), dw = [Double](repeating: 0, count: w.count), db = [Double](repeating: 0, count: o)
            let n = xs[0], (oh, ow) = (ys[2], ys[3])
            for ni in 0..<n { for oi in 0..<o { for i in 0..<oh { for j in 0..<ow {
                let gv = gd[((ni * o + oi) * oh + i) * ow + j]
                db[oi] += gv
                for ci in 0..<c { for a in 0..<k { for bb in 0..<k {
                    let ih = i * stride - pad + a, iw = j * stride - pad + bb
                    guard ih >= 0 && ih < h && iw >= 0 && iw < wd else { continue }
                    let xi = ((ni * c + ci) * h + ih) * wd + iw, wi = ((oi * c + ci) * k + a) * k + bb
                    dw[wi] += gv * xd[xi]; dx[xi] += gv * wdv[wi]
                } } }
            } } } }
            assertClose(grads[0].scalars, dx, "conv2d dx s\(stride) p\(pad) k\(k)")
            assertClose(grads[1].scalars, dw, "conv2d dW s\(stride) p\(pad) k\(k)")
            assertClose(grads[2].scalars, db, "conv2d db s\(stride) p\(pad) k\(k)")
        }
    }

    /// convTranspose2d is the adjoint of conv2d's input map: ⟨conv(x), y⟩ = ⟨x, convT(y)⟩,
    /// and its forward output equals conv2d's input gradient.
    func testConvTransposeIsAdjointOfConv() {
        for (stride, pad, k, h) in [(2, 1, 4, 8), (1, 1, 3, 8), (2, 0, 2, 8), (2, 1, 4, 32), (1, 1, 3, 16)] {
            let x = Tensor.normal([2, 3, h, h], key: RandomKey(seed: 5)), w = Tensor.normal([4, 3, k, k], key: RandomKey(seed: 6))
            let y = Tensor.conv2d(x, weight: w, stride: stride, padding: pad)
            let g = Tensor.normal(y.shape, key: RandomKey(seed: 7))
            let t = Tensor.convTranspose2d(g, weight: w, stride: stride, padding: pad)
            XCTAssertEqual(t.shape, x.shape)
            let (_, grads) = valueAndGradients(wrt: [x], seed: g) { Tensor.conv2d(x, weight: w, stride: stride, padding: pad) }
            assertClose(t.scalars, grads[0].doubles, "convTranspose2d vs conv2d input gradient s\(stride) p\(pad) k\(k)")
            let (taped, _) = valueAndGradients(wrt: [g], seed: t) { Tensor.convTranspose2d(g, weight: w, stride: stride, padding: pad) }
            assertClose(taped.scalars, t.doubles, "convTranspose2d under a tape s\(stride) p\(pad) k\(k)")
            let lhs = (y * g).sum().item, rhs = (x * t).sum().item
            XCTAssertEqual(lhs, rhs, accuracy: 1e-4 * Swift.abs(lhs) + 1e-3)
        }
    }

    /// Without a tape (sampling, evaluation) an image's convolution output does not depend on
    /// its batch, bit for bit, on the small grids that training groups as well as large ones.
    func testInferenceConvolutionsDoNotDependOnTheBatch() {
        for h in [8, 32] {
            let x = Tensor.normal([9, 6, h, h], key: RandomKey(seed: 20)), w = Tensor.normal([5, 6, 4, 4], key: RandomKey(seed: 21))
            let wt = Tensor.normal([6, 3, 4, 4], key: RandomKey(seed: 22)), b = Tensor.normal([5], key: RandomKey(seed: 23))
            let y = Tensor.conv2d(x, weight: w, bias: b, stride: 2, padding: 1), z = Tensor.convTranspose2d(x, weight: wt, stride: 2, padding: 1)
            for (start, length) in [(4, 1), (2, 5), (0, 9)] {
                let part = x.sliced(axis: 0, start: start, length: length)
                XCTAssertEqual(Tensor.conv2d(part, weight: w, bias: b, stride: 2, padding: 1).scalars,
                               y.sliced(axis: 0, start: start, length: length).scalars, "conv2d \(h)×\(h) images \(start)..<\(start + length)")
                XCTAssertEqual(Tensor.convTranspose2d(part, weight: wt, stride: 2, padding: 1).scalars,
                               z.sliced(axis: 0, start: start, length: length).scalars, "convTranspose2d \(h)×\(h)")
            }
        }
    }

    /// Batched kernels split the batch into fixed chunks, so results are bit-identical
    /// whatever the thread count.
    func testConvolutionResultsDoNotDependOnThreadCount() {
        let saved = Threads.count
        defer { Threads.count = saved }
        let x = Tensor.normal([10, 4, 8, 8], key: RandomKey(seed: 10)), w = Tensor.normal([6, 4, 3, 3], key: RandomKey(seed: 11))
        let b = Tensor.normal([6], key: RandomKey(seed: 12)), wt = Tensor.normal([4, 3, 4, 4], key: RandomKey(seed: 13))
        let xr = Tensor.normal([10, 3, 4, 16], key: RandomKey(seed: 14)), wr = Tensor.normal([5, 3, 3, 3], key: RandomKey(seed: 15))
        func run() -> [[Float]] {
            let (y, g) = valueAndGradients(wrt: [x, w, b]) { Tensor.conv2d(x, weight: w, bias: b, padding: 1).squared().sum() }
            let (r, q) = valueAndGradients(wrt: [xr, wr]) { Tensor.conv2d(xr, weight: wr, padding: 1).squared().sum() }
            let (z, h) = valueAndGradients(wrt: [x, wt]) { Tensor.convTranspose2d(x, weight: wt, stride: 2, padding: 1).squared().sum() }
            return [y.scalars, z.scalars, r.scalars] + g.map { $0.scalars } + h.map { $0.scalars } + q.map { $0.scalars }
        }
        Threads.count = 1
        let one = run()
        Threads.count = 2
        XCTAssertEqual(one, run())
    }

    /// Shapes large enough that the weight-gradient reduction (partials summed in chunk
    /// order) and the bias sums split across threads: the same bits at 1 and 2 threads, and
    /// the bias gradient equal to the plain serial loop (per image, the channel's values in
    /// order, then images in order) bit for bit.
    func testGradientReductionsSplitAcrossThreadsWithoutChangingBits() {
        let saved = Threads.count
        defer { Threads.count = saved }
        let x = Tensor.normal([64, 3, 32, 32], key: RandomKey(seed: 20)), w = Tensor.normal([64, 3, 4, 4], key: RandomKey(seed: 21))
        let b = Tensor.normal([64], key: RandomKey(seed: 22))
        let x2 = Tensor.normal([64, 64, 16, 16], key: RandomKey(seed: 23)), w2 = Tensor.normal([128, 64, 4, 4], key: RandomKey(seed: 24))
        var upstream = Tensor.zeros([1])
        func run() -> [[Float]] {
            let (_, g) = valueAndGradients(wrt: [w, b]) {
                let y = Tensor.conv2d(x, weight: w, bias: b, stride: 2, padding: 1)
                upstream = y.detached()
                return (y * y.detached()).sum()   // dL/dy = y
            }
            let (_, h) = valueAndGradients(wrt: [w2]) { Tensor.conv2d(x2, weight: w2, stride: 2, padding: 1).squared().sum() }
            return g.map { $0.scalars } + h.map { $0.scalars }
        }
        Threads.count = 1
        let one = run()
        Threads.count = 2
        let two = run()
        XCTAssertEqual(one, two)
        let dy = upstream.scalars, inner = 16 * 16
        var want = [Float](repeating: 0, count: 64)
        for c in 0..<64 {
            for i in 0..<64 {
                var s: Float = 0
                for j in 0..<inner { s += dy[(i * 64 + c) * inner + j] }
                want[c] += s
            }
        }
        XCTAssertEqual(two[1], want, "bias gradient")
    }

    func testMatmulMatchesNaive() {
        let a = Tensor.normal([7, 5], key: RandomKey(seed: 8)), b = Tensor.normal([5, 3], key: RandomKey(seed: 9))
        let c = Tensor.matmul(a, b)
        let (ad, bd) = (a.doubles, b.doubles)
        var ref = [Double](repeating: 0, count: 21)
        for i in 0..<7 { for j in 0..<3 { for k in 0..<5 { ref[i * 3 + j] += ad[i * 5 + k] * bd[k * 3 + j] } } }
        assertClose(c.scalars, ref, "matmul")
    }

    /// Batch invariance by construction: every row of a rank-2 product (a Linear layer's
    /// examples) is bit-identical to the same row computed alone, in any batch of any size,
    /// at any thread count, with and without transposed B; rank-3 products likewise per
    /// batch element. And the values are right (against a Double reference).
    func testMatmulRowsDoNotDependOnTheBatch() {
        let saved = Threads.count
        defer { Threads.count = saved }
        for (k, n) in [(32, 128), (128, 256), (7, 5), (100, 17), (1, 1)] {
            let a = Tensor.normal([301, k], key: RandomKey(seed: UInt64(k))), w = Tensor.normal([n, k], key: RandomKey(seed: UInt64(n)))
            let wt = w.transposed()
            let alone = (0..<301).map { Tensor.matmul(a.sliced(axis: 0, start: $0, length: 1), w, transposeB: true).scalars }
            for threads in [1, 2, 3] {
                Threads.count = threads
                for rows in [1, 2, 3, 4, 5, 7, 16, 17, 64, 128, 301] {
                    let start = (rows * 37) % (302 - rows)
                    let batch = a.sliced(axis: 0, start: start, length: rows)
                    let y = Tensor.matmul(batch, w, transposeB: true), z = Tensor.matmul(batch, wt)
                    for r in 0..<rows {
                        let row = Array(y.scalars[(r * n)..<((r + 1) * n)])
                        XCTAssertEqual(row, alone[start + r], "k \(k) n \(n) rows \(rows) threads \(threads) row \(r)")
                        XCTAssertEqual(Array(z.scalars[(r * n)..<((r + 1) * n)]), row)
                    }
                }
            }
            let ad = a.doubles, wd = w.doubles, y = Tensor.matmul(a, w, transposeB: true).scalars
            for i in stride(from: 0, to: 301, by: 29) { for j in 0..<n {
                var ref = 0.0
                for p in 0..<k { ref += ad[i * k + p] * wd[j * k + p] }
                XCTAssertEqual(Double(y[i * n + j]), ref, accuracy: 1e-5 * Double(k).squareRoot() * 4)
            } }
        }
        let q = Tensor.normal([9, 16, 64], key: RandomKey(seed: 5)), kk = Tensor.normal([9, 16, 64], key: RandomKey(seed: 6))
        let all = Tensor.matmul(q, kk, transposeA: true)
        for i in [0, 4, 8] {
            let one = Tensor.matmul(q.sliced(axis: 0, start: i, length: 1), kk.sliced(axis: 0, start: i, length: 1), transposeA: true)
            XCTAssertEqual(one.scalars, Array(all.scalars[(i * 4096)..<((i + 1) * 4096)]))
        }
    }
}

/// Max |a − b| relative to max |b| below `rtol` (Float results against a Double reference).
func assertCloseToDoubles(_ a: [Float], _ b: [Double], rtol: Double, _ what: String, file: StaticString, line: UInt) {
    XCTAssertEqual(a.count, b.count, what, file: file, line: line)
    let scale = b.map { Swift.abs($0) }.max() ?? 1
    var worst = 0.0
    for (u, v) in zip(a, b) { worst = max(worst, Swift.abs(Double(u) - v) / max(scale, 1e-12)) }
    XCTAssertLessThan(worst, rtol, "\(what): max error relative to max |value| = \(worst)", file: file, line: line)
}
