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

    /// All pairs (i < j) within one set whose normalized ℓ2 is below `threshold`: Float32
    /// GEMM tiles on or above the diagonal (the centred rows and norms of `ReferenceIndex`)
    /// give candidates with slack for rounding; each is confirmed exactly in integers.
    public static func pairsWithin(_ set: ImageSet, threshold: Double) -> [(Int, Int, Double)] {
        let d = set.imageSize, n = set.count
        guard n > 1 else { return [] }
        let index = ReferenceIndex(set, kernel: .float32)  // the threshold search below reads its Float32 tiles
        // squared, [0,1]-scaled distance bound, with slack for Float32 rounding
        let bound = Float(threshold * threshold * Double(d)) * 1.01 + 1e-3
        var candidates: [(Int, Int)] = []
        let t = 1024
        var tile = [Float](repeating: 0, count: t * t)
        index.centred.withUnsafeBufferPointer { c in index.norms.withUnsafeBufferPointer { nr in tile.withUnsafeMutableBufferPointer { tp in
            for qs in stride(from: 0, to: n, by: t) {
                let qk = min(t, n - qs)
                for rs in stride(from: qs, to: n, by: t) {
                    let rk = min(t, n - rs)
                    Float.gemm(transA: false, transB: true, m: qk, n: rk, k: d, alpha: -2, a: c.baseAddress! + qs * d, lda: d,
                               b: c.baseAddress! + rs * d, ldb: d, beta: 0, c: tp.baseAddress!, ldc: rk)
                    for i in 0..<qk { for j in 0..<rk where qs + i < rs + j && tp[i * rk + j] + nr[qs + i] + nr[rs + j] <= bound {
                        candidates.append((qs + i, rs + j))
                    } }
                }
            }
        } } }
        return candidates.compactMap { i, j in
            let dist = normalizedL2(set.image(i), set.image(j))
            return dist < threshold ? (i, j, dist) : nil
        }
    }
}
