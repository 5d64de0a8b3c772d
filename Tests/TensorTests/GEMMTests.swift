import XCTest
import Tensor

/// Eidetic's own sgemm (Sources/CKernels/gemm.c): values against a Double reference, one
/// summation order whatever the micro-kernel (the same bits on AVX-512, AVX2 and the
/// portable C kernel), and rows independent of the batch (row i of C whatever m).
final class GEMMTests: XCTestCase {
    /// Shapes that cross every block edge: k beyond one k-block (256), m beyond one
    /// MC block (192) and not a multiple of any register tile, n not a multiple of 16 or 32.
    let shapes: [(m: Int, n: Int, k: Int)] = [(1, 1, 1), (3, 1024, 288), (37, 53, 301), (200, 70, 513), (13, 3100, 40), (64, 16, 0)]

    func values(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed &* 0x9E3779B97F4A7C15 | 1
        return (0..<count).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Float(Int(state % 2001) - 1000) / 1000
        }
    }

    /// C as op(A)·op(B)·alpha + beta·C0 in Double.
    func reference(_ tA: Bool, _ tB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: [Float], _ b: [Float],
                   _ beta: Float, _ c0: [Float]) -> [Double] {
        (0..<m * n).map { idx in
            let (i, j) = (idx / n, idx % n)
            var s = 0.0
            for p in 0..<k { s += Double(tA ? a[p * m + i] : a[i * k + p]) * Double(tB ? b[j * k + p] : b[p * n + j]) }
            return Double(alpha) * s + (beta == 0 ? 0 : Double(beta) * Double(c0[idx]))
        }
    }

    func run(_ isa: GEMM.ISA?, _ tA: Bool, _ tB: Bool, _ m: Int, _ n: Int, _ k: Int, alpha: Float, _ a: [Float], _ b: [Float],
             beta: Float, _ c0: [Float]) -> [Float] {
        var c = c0
        let ok = a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
            GEMM.own(isa: isa, transA: tA, transB: tB, m: m, n: n, k: k, alpha: alpha,
                     a: pa.baseAddress!, lda: tA ? max(m, 1) : max(k, 1), b: pb.baseAddress!, ldb: tB ? max(k, 1) : n,
                     beta: beta, c: pc.baseAddress!, ldc: n)
        } } }
        XCTAssertTrue(ok, "\(String(describing: isa)) reported failure")
        return c
    }

    func testMatchesDoubleReferenceOnEveryMicroKernel() {
        for (si, s) in shapes.enumerated() {
            for (tA, tB) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = values(max(s.m * s.k, 1), seed: UInt64(si * 4 + 1)), b = values(max(s.k * s.n, 1), seed: UInt64(si * 4 + 2))
                let c0 = values(s.m * s.n, seed: UInt64(si * 4 + 3))
                for (alpha, beta) in [(Float(1), Float(0)), (Float(0.5), Float(-2))] {
                    let want = reference(tA, tB, s.m, s.n, s.k, alpha, a, b, beta, c0)
                    for isa in GEMM.ISA.allCases where isa.isAvailable {
                        let got = run(isa, tA, tB, s.m, s.n, s.k, alpha: alpha, a, b, beta: beta, c0)
                        // |error| ≤ k·ε·Σ|a||b| + rounding of the result: bound by k·2⁻²³·k (|a|,|b| ≤ 1) + slack
                        let bound = Double(s.k + 2) * Double(s.k + 1) * 1.2e-7 + 1e-6
                        for idx in 0..<s.m * s.n where abs(Double(got[idx]) - want[idx]) > bound {
                            XCTFail("\(isa) \(s) tA=\(tA) tB=\(tB) α=\(alpha) β=\(beta): C[\(idx)] = \(got[idx]), want \(want[idx])")
                            break
                        }
                    }
                }
            }
        }
    }

    func testEveryMicroKernelGivesTheSameBits() {
        let available = GEMM.ISA.allCases.filter(\.isAvailable)
        XCTAssertTrue(available.contains(.portable))
        for (si, s) in shapes.enumerated() {
            for (tA, tB) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = values(max(s.m * s.k, 1), seed: UInt64(si + 10)), b = values(max(s.k * s.n, 1), seed: UInt64(si + 20))
                let c0 = values(s.m * s.n, seed: UInt64(si + 30))
                let want = run(.portable, tA, tB, s.m, s.n, s.k, alpha: 0.75, a, b, beta: 0.25, c0)
                for isa in available {
                    XCTAssertEqual(run(isa, tA, tB, s.m, s.n, s.k, alpha: 0.75, a, b, beta: 0.25, c0), want, "\(isa) \(s) tA=\(tA) tB=\(tB)")
                }
            }
        }
    }

    /// Row i of C is the same bits whether it is computed alone, in a batch of 5 or of 300
    /// (crossing the MC block and every register tile edge), at any offset.
    func testRowsDoNotDependOnTheBatch() {
        let (n, k) = (70, 600)
        let a = values(300 * k, seed: 7), b = values(k * n, seed: 8)
        for isa in GEMM.ISA.allCases where isa.isAvailable {
            let all = run(isa, false, false, 300, n, k, alpha: 1, a, b, beta: 0, [Float](repeating: 0, count: 300 * n))
            for (lo, m) in [(0, 1), (193, 1), (11, 5), (100, 200)] {
                let part = run(isa, false, false, m, n, k, alpha: 1, Array(a[lo * k ..< (lo + m) * k]), b, beta: 0,
                               [Float](repeating: 0, count: m * n))
                XCTAssertEqual(part, Array(all[lo * n ..< (lo + m) * n]), "\(isa): rows \(lo)..<\(lo + m)")
            }
        }
    }

    /// beta = 0 never reads C (NaN there must not leak), as BLAS specifies.
    /// Columns too: a slice of op(B)'s columns gives the same bits as the whole product
    /// (what lets a weight gradient split its columns across threads).
    func testColumnsDoNotDependOnTheirNeighbours() {
        let (m, n, k) = (37, 300, 600)
        let a = values(m * k, seed: 9), b = values(k * n, seed: 10)
        for isa in GEMM.ISA.allCases where isa.isAvailable {
            let all = run(isa, true, true, m, n, k, alpha: 1, a, b, beta: 0, [Float](repeating: 0, count: m * n))
            for (lo, w) in [(0, 1), (150, 150), (33, 70), (299, 1)] {
                // op(B) = Bᵀ with B stored [n × k]: columns lo..<lo+w are rows lo..<lo+w of B
                let part = run(isa, true, true, m, w, k, alpha: 1, a, Array(b[lo * k ..< (lo + w) * k]), beta: 0,
                               [Float](repeating: 0, count: m * w))
                for i in 0..<m { XCTAssertEqual(Array(part[i * w ..< (i + 1) * w]), Array(all[i * n + lo ..< i * n + lo + w]), "\(isa): row \(i), columns \(lo)..<\(lo + w)") }
            }
        }
    }

    /// One-column and one-row products (a Linear layer with one output, and its weight
    /// gradient) take their own loops in gemm.c; they must give the bits of that column or row
    /// inside a wide product, for every transpose, across k-blocks, with alpha and beta.
    func testSkinnyProductsMatchWideProducts() {
        let (m, n) = (29, 40)
        for k in [1, 300, 4096] {
            for (tA, tB) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = values(m * k, seed: UInt64(k + 1)), b = values(k * n, seed: UInt64(k + 2)), c0 = values(m * n, seed: UInt64(k + 3))
                for isa in GEMM.ISA.allCases where isa.isAvailable {
                    let wide = run(isa, tA, tB, m, n, k, alpha: 0.75, a, b, beta: 0.25, c0)
                    for j in [0, 17, n - 1] {
                        // op(B)'s column j: B[:, j] stored k × n, or B's row j stored n × k
                        let bj = tB ? Array(b[j * k ..< (j + 1) * k]) : (0..<k).map { b[$0 * n + j] }
                        let cj = (0..<m).map { c0[$0 * n + j] }
                        XCTAssertEqual(run(isa, tA, tB, m, 1, k, alpha: 0.75, a, bj, beta: 0.25, cj), (0..<m).map { wide[$0 * n + j] },
                                       "\(isa) k=\(k) tA=\(tA) tB=\(tB): column \(j)")
                    }
                    for i in [0, 9, m - 1] {
                        // op(A)'s row i: A[i, :] stored m × k, or A[:, i] stored k × m
                        let ai = tA ? (0..<k).map { a[$0 * m + i] } : Array(a[i * k ..< (i + 1) * k])
                        let got = run(isa, tA, tB, 1, n, k, alpha: 0.75, ai, b, beta: 0.25, Array(c0[i * n ..< (i + 1) * n]))
                        XCTAssertEqual(got, Array(wide[i * n ..< (i + 1) * n]), "\(isa) k=\(k) tA=\(tA) tB=\(tB): row \(i)")
                    }
                }
            }
        }
    }

    func testBetaZeroIgnoresGarbageInC() {
        let a = values(9 * 40, seed: 3), b = values(40 * 33, seed: 4)
        for isa in GEMM.ISA.allCases where isa.isAvailable {
            let c = run(isa, false, false, 9, 33, 40, alpha: 1, a, b, beta: 0, [Float](repeating: .nan, count: 9 * 33))
            XCTAssertFalse(c.contains { $0.isNaN }, "\(isa)")
        }
    }
}
