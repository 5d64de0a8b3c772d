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

    /// All pairs (i < j) within one set whose normalized ℓ2 is below `threshold`, ordered by
    /// (i, j): the all-pairs search of deduplication plans and the clique filter. With the
    /// int8 kernel (`ReferenceIndex.Kernel.best`) every distance is exact in integers and
    /// only pairs at most the threshold (with a hair of slack) come out of the kernel;
    /// otherwise Float32 GEMM tiles give candidates with slack for rounding. Either way each
    /// candidate is confirmed by `normalizedL2`, so both kernels return the same pairs.
    public static func pairsWithin(_ set: ImageSet, threshold: Double, kernel: ReferenceIndex.Kernel? = nil) -> [(Int, Int, Double)] {
        let d = set.imageSize, n = set.count
        guard n > 1 else { return [] }
        let kernel = kernel ?? (d <= 65_536 && n < Int(Int32.max) ? ReferenceIndex.Kernel.best : .float32)
        if kernel == .int8 { return pairsWithinInt8(set, threshold: threshold) }
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
        return candidates.sorted { $0 < $1 }.compactMap { i, j in
            let dist = normalizedL2(set.image(i), set.image(j))
            return dist < threshold ? (i, j, dist) : nil
        }
    }

    /// Rows per task of the int8 threshold search (a multiple of the kernel's 12-row panels;
    /// tasks go to whichever thread is free, so the shorter rows near the end balance out).
    static let pairsTile = 240

    static func pairsWithinInt8(_ set: ImageSet, threshold: Double) -> [(Int, Int, Double)] {
        let d = set.imageSize, n = set.count
        let index = ReferenceIndex(set, kernel: .int8)
        // squared distance in pixel units: ℓ2 < t ⇔ Σ(a − b)² < t²·d·255²; a hair over it,
        // as normalizedL2 below makes the final call
        let bound = Int64(min((threshold * threshold * Double(d) * 65025 * (1 + 1e-9)).rounded(.up) + 1, Double(Int64.max / 4)))
        let tiles = (n + pairsTile - 1) / pairsTile
        var found = [[UInt64]](repeating: [], count: tiles)
        found.withUnsafeMutableBufferPointer { fp in
        set.images.withUnsafeBufferPointer { x in index.packed.withUnsafeBufferPointer { rp in index.referenceTerms.withUnsafeBufferPointer { rt in
            Parallel.run(chunks: tiles) { tile, _ in
                let qs = tile * pairsTile, qk = min(pairsTile, n - qs)
                let mr = Int(EK_DOT_MR), qPadded = (qk + mr - 1) / mr * mr
                let a = UnsafeMutablePointer<UInt8>.allocate(capacity: ek_panel_bytes(qk, d, mr))
                let qn = UnsafeMutablePointer<Int64>.allocate(capacity: qk)
                let buf = UnsafeMutablePointer<Int32>.allocate(capacity: qPadded * Int(EK_REF_BLOCK))
                defer { a.deallocate(); qn.deallocate(); buf.deallocate() }
                ek_pack_panels(x.baseAddress! + qs * d, qk, d, mr, 1, a)
                for i in 0..<qk { qn[i] = ReferenceIndex.squareAndSum(set.images, row: qs + i, dimension: d).0 }
                var out = [UInt64](repeating: 0, count: 1024)
                while true {
                    let count = out.withUnsafeMutableBufferPointer {
                        ek_pairs_within_tile(a, qk, qn, qs, rp.baseAddress!, n, rt.baseAddress!, d, bound, $0.baseAddress!, $0.count, buf)
                    }
                    if count <= out.count { out.removeLast(out.count - count); break }
                    out = [UInt64](repeating: 0, count: count)   // rare: a set full of near-copies
                }
                fp[tile] = out
            }
        } } } }
        return found.flatMap { $0 }.sorted().compactMap { key in
            let i = Int(key >> 32), j = Int(key & 0xffff_ffff)
            let dist = normalizedL2(set.image(i), set.image(j))
            return dist < threshold ? (i, j, dist) : nil
        }
    }
}
