import CKernels
import XCTest

/// im2col.c's Float copies against the plain loops of their definition, bit for bit: col2im
/// adds each col value into x in ascending (kh, kw) order (what the 4 × 4 stride-2 gather
/// path must reproduce exactly, −0 inputs and borders included), and im2col copies.
final class Im2colTests: XCTestCase {
    func values(_ n: Int, seed: UInt64) -> [Float] {
        var s = seed &* 0x9E3779B97F4A7C15 | 1
        return (0..<n).map { i in
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            return i % 37 == 0 ? -0.0 : Float(Int(s % 2001) - 1000) / 1000
        }
    }

    /// (C, H, W, K, stride, pad): the DCGAN's 4 × 4 stride-2 shapes (the gather path, with
    /// 4- and 8-wide vectors), odd sizes and other kernels (the scatter path).
    let shapes = [(64, 16, 16, 4, 2, 1), (128, 8, 8, 4, 2, 1), (3, 32, 32, 4, 2, 1), (2, 6, 16, 4, 2, 1), (4, 10, 40, 4, 2, 1),
                  (3, 9, 9, 4, 2, 1), (2, 8, 8, 3, 1, 1), (2, 7, 11, 3, 2, 0), (1, 8, 8, 4, 2, 2)]

    func testCol2imAddsInKernelOrder() {
        for (si, (c, h, w, k, s, p)) in shapes.enumerated() {
            let oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1, ld = oh * ow + 3
            let col = values(c * k * k * ld, seed: UInt64(si + 1))
            var want = [Float](repeating: 0, count: c * h * w)
            for ci in 0..<c { for kh in 0..<k { for kw in 0..<k { for y in 0..<oh { for x in 0..<ow {
                let ih = y * s - p + kh, iw = x * s - p + kw
                guard ih >= 0, ih < h, iw >= 0, iw < w else { continue }
                want[(ci * h + ih) * w + iw] += col[((ci * k + kh) * k + kw) * ld + y * ow + x]
            } } } } }
            var got = [Float](repeating: 0, count: c * h * w)
            col.withUnsafeBufferPointer { pc in got.withUnsafeMutableBufferPointer { px in
                ek_col2im_f32(pc.baseAddress!, c, h, w, k, k, s, p, px.baseAddress!, ld)
            } }
            XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "col2im C=\(c) H=\(h) W=\(w) k\(k) s\(s) p\(p)")
        }
    }

    func testIm2colCopiesWindows() {
        for (si, (c, h, w, k, s, p)) in shapes.enumerated() {
            let oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1, ld = oh * ow + 3
            let x = values(c * h * w, seed: UInt64(si + 50))
            var want = [Float](repeating: 7, count: c * k * k * ld)
            for ci in 0..<c { for kh in 0..<k { for kw in 0..<k { for y in 0..<oh { for xx in 0..<ow {
                let ih = y * s - p + kh, iw = xx * s - p + kw
                want[((ci * k + kh) * k + kw) * ld + y * ow + xx] = ih >= 0 && ih < h && iw >= 0 && iw < w ? x[(ci * h + ih) * w + iw] : 0
            } } } } }
            var got = [Float](repeating: 7, count: c * k * k * ld)
            x.withUnsafeBufferPointer { px in got.withUnsafeMutableBufferPointer { pc in
                ek_im2col_f32(px.baseAddress!, c, h, w, k, k, s, p, pc.baseAddress!, ld)
            } }
            XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "im2col C=\(c) H=\(h) W=\(w) k\(k) s\(s) p\(p)")
        }
    }
}
