import CKernels
import Foundation
import Tensor

/// Pixel-space distances between images, exact and at GEMM speed.
///
/// The paper's base distance is the normalized ℓ2: ℓ2(a, b) = √(Σᵢ (aᵢ − bᵢ)² / d) with
/// pixels scaled to [0, 1] and d = C·H·W — the RMS pixel difference (Carlini et al., 2023,
/// §4.1; paper-spec §1.4). All-pairs distances use ‖a − b‖² = ‖a‖² + ‖b‖² − 2a·b with the
/// cross terms from sgemm on tiles (after centring both sides on the references' mean to
/// keep Float32 cancellation small); the distances reported for the selected neighbours
/// are then recomputed exactly in Double.
public enum NearestNeighbors {
    public struct Neighbor: Codable, Equatable, Sendable {
        public var index: Int
        public var distance: Double
    }

    /// Normalized ℓ2 between two uint8 images of the same size.
    public static func normalizedL2(_ a: ArraySlice<UInt8>, _ b: ArraySlice<UInt8>) -> Double {
        precondition(a.count == b.count, "normalizedL2: sizes \(a.count) and \(b.count) differ")
        var s = 0.0
        var i = a.startIndex, j = b.startIndex
        while i < a.endIndex { let d = Double(Int(a[i]) - Int(b[j])); s += d * d; i += 1; j += 1 }
        return (s / Double(max(a.count, 1))).squareRoot() / 255
    }

    /// Rows of uint8 images as Float in [0, 1].
    static func floats(_ set: ImageSet) -> [Float] { set.images.map { Float($0) * (1 / 255) } }

    /// Calls `visit(qStart, qCount, rStart, rCount, d²)` for tiles of the Q×R matrix of
    /// squared (unnormalised, [0,1]-scaled) distances; `d²` is row-major qCount×rCount.
    static func forEachTile(queries q: [Float], references r: [Float], dimension d: Int,
                            visit: (Int, Int, Int, Int, UnsafePointer<Float>) -> Void) {
        let nq = q.count / d, nr = r.count / d
        guard nq > 0 && nr > 0 else { return }
        var mean = [Float](repeating: 0, count: d)
        for j in 0..<nr { for k in 0..<d { mean[k] += r[j * d + k] } }
        for k in 0..<d { mean[k] /= Float(nr) }
        let qc = (0..<q.count).map { q[$0] - mean[$0 % d] }, rc = (0..<r.count).map { r[$0] - mean[$0 % d] }
        func norms(_ x: [Float], _ n: Int) -> [Float] { (0..<n).map { i in var s: Float = 0; for k in 0..<d { s += x[i * d + k] * x[i * d + k] }; return s } }
        let qn = norms(qc, nq), rn = norms(rc, nr)
        let tq = 256, tr = 2048
        var tile = [Float](repeating: 0, count: tq * tr)
        qc.withUnsafeBufferPointer { qp in rc.withUnsafeBufferPointer { rp in tile.withUnsafeMutableBufferPointer { tp in
            var qs = 0
            while qs < nq {
                let qk = min(tq, nq - qs)
                var rs = 0
                while rs < nr {
                    let rk = min(tr, nr - rs)
                    Float.gemm(transA: false, transB: true, m: qk, n: rk, k: d, alpha: -2, a: qp.baseAddress! + qs * d, lda: d,
                               b: rp.baseAddress! + rs * d, ldb: d, beta: 0, c: tp.baseAddress!, ldc: rk)
                    for i in 0..<qk { for j in 0..<rk { tp[i * rk + j] = max(0, tp[i * rk + j] + qn[qs + i] + rn[rs + j]) } }
                    visit(qs, qk, rs, rk, UnsafePointer(tp.baseAddress!))
                    rs += rk
                }
                qs += qk
            }
        } } }
    }

    /// The `k` nearest references of every query, nearest first, by normalized ℓ2 (ties by
    /// index). With `excludeSelf`, queries and references are the same set and i is not its
    /// own neighbour. Exact: see `ReferenceIndex`.
    public static func search(queries: ImageSet, references: ImageSet, k: Int, excludeSelf: Bool = false) -> [[Neighbor]] {
        precondition(!excludeSelf || queries.count == references.count, "nearest neighbours: excludeSelf needs queries == references")
        let kk = min(k, references.count - (excludeSelf ? 1 : 0))
        guard kk >= 1 else { return Array(repeating: [], count: queries.count) }
        let table = ReferenceIndex(references).search(queries, k: kk, selfOffset: excludeSelf ? 0 : nil)
        return (0..<table.queries).map { table.neighbors(of: $0) }
    }

    /// All pairs (i < j) within one set whose normalized ℓ2 is below `threshold`.
    public static func pairsWithin(_ set: ImageSet, threshold: Double) -> [(Int, Int, Double)] {
        let d = set.imageSize
        // squared, [0,1]-scaled distance bound, with slack for Float32 rounding; confirmed exactly below
        let bound = Float(threshold * threshold * Double(d)) * 1.01 + 1e-3
        var candidates: [(Int, Int)] = []
        let x = floats(set)
        forEachTile(queries: x, references: x, dimension: d) { qs, qk, rs, rk, tile in
            for i in 0..<qk { for j in 0..<rk where qs + i < rs + j && tile[i * rk + j] <= bound { candidates.append((qs + i, rs + j)) } }
        }
        return candidates.compactMap { i, j in
            let dist = normalizedL2(set.image(i), set.image(j))
            return dist < threshold ? (i, j, dist) : nil
        }
    }
}
