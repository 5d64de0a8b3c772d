import CKernels
import Foundation
import Tensor

/// The k nearest neighbours of many queries, as flat arrays: row q holds query q's
/// neighbours nearest first (ties broken by the smaller index).
public struct NeighborTable: Equatable, Sendable {
    public let k: Int
    public private(set) var queries = 0
    /// Reference indices, [queries × k].
    public private(set) var indices: [Int32] = []
    /// Normalized ℓ2 distances (RMS over [0, 1] pixels), [queries × k].
    public private(set) var distances: [Double] = []
    /// Queries whose GEMM candidates could not be certified and were scanned exactly.
    public private(set) var exactScans = 0

    public init(k: Int) { self.k = k }

    public func neighbors(of q: Int) -> [NearestNeighbors.Neighbor] {
        (0..<k).map { NearestNeighbors.Neighbor(index: Int(indices[q * k + $0]), distance: distances[q * k + $0]) }
    }
    public func distance(_ q: Int, _ rank: Int) -> Double { distances[q * k + rank] }
    public func index(_ q: Int, _ rank: Int) -> Int { Int(indices[q * k + rank]) }

    /// Appends the rows of another table (the next block of queries).
    public mutating func append(_ other: NeighborTable) {
        precondition(other.k == k, "NeighborTable.append: k \(other.k) vs \(k)")
        queries += other.queries; indices += other.indices; distances += other.distances; exactScans += other.exactScans
    }

    mutating func appendRow(_ row: [(UInt64, Int)], dimension d: Int) {
        precondition(row.count == k)
        for (s, i) in row {
            indices.append(Int32(i))
            distances.append((Double(s) / Double(d)).squareRoot() / 255)
        }
        queries += 1
    }
}

/// Exact k-nearest-neighbour search by pixel ℓ2 over a fixed reference set, at GEMM speed
/// and with bounded memory (queries come in blocks; only the references stay resident).
/// ‖q − r‖² = ‖q‖² + ‖r‖² − 2 q·r on tiles; each query keeps a max-heap of its smallest
/// values. Two kernels give the same answer, ties broken by the smaller index:
///
/// - `.int8` (CPUs with AVX-512 VNNI): the dot products of uint8 images are computed
///   exactly in int32 (64 multiply-adds per instruction), so the distances are exact
///   integers and the heap is the answer. References are kept packed as uint8.
/// - `.float32` (any CPU): sgemm on Float32 images centred on the references' mean.
///   1. Candidates: each query keeps its k + m smallest Float32 values.
///   2. Exact ranking: the candidates' squared distances are recomputed in integers from
///      the uint8 pixels and sorted by (distance, index).
///   3. Certificate: the Float32 value of any pair is within τ = 2.5·γ_D·(‖q‖² + max‖r‖²)
///      of the truth (γ_D = D·u/(1 − D·u), the classic dot-product error bound for any
///      summation order). Every reference outside the heap had a value ≥ the heap's
///      largest W, so if W − τ exceeds the exact k-th distance no outsider can belong to
///      the top k. A query that fails the test (rare: a crowd of references within τ of
///      its k-th neighbour) is scanned exactly over all references.
public final class ReferenceIndex {
    public enum Kernel: String, Sendable, CaseIterable {
        case int8 = "int8-vnni", float32
        /// Whether this CPU can run the kernel.
        public var isAvailable: Bool { self == .float32 || ek_vnni_available() != 0 }
        /// The fastest kernel this CPU runs.
        public static var best: Kernel { Kernel.int8.isAvailable ? .int8 : .float32 }
    }
    public let references: ImageSet
    public let kernel: Kernel
    let dimension: Int
    // .float32: centred references, their squared norms and the largest of those
    let mean: [Float]
    let centred: [Float]
    let norms: [Float]
    let maxNorm: Float
    // .int8: references packed in EK_DOT_NR-row panels, and Σr² − 256·Σr per reference
    let packed: [UInt8]
    let referenceTerms: [Int64]
    /// Extra candidates kept beyond k (`.float32`).
    public var margin = 16
    /// Queries per tile (each tile re-reads all references, so larger is cheaper per
    /// query; memory per worker is about queryTile × (referenceTile + D) floats).
    public var queryTile = 1024
    /// References per GEMM tile (`.float32`; the int8 kernel blocks by itself).
    public var referenceTile = 1024

    /// `kernel` defaults to the fastest this CPU runs; asking for `.int8` on a CPU without
    /// AVX-512 VNNI, or with images over 65,536 values, is a programming error.
    public init(_ references: ImageSet, kernel: Kernel? = nil) {
        self.references = references
        let d = references.imageSize, n = references.count
        let kernel = kernel ?? (d <= 65_536 && n < Int(Int32.max) ? Kernel.best : .float32)
        precondition(kernel.isAvailable, "ReferenceIndex: the int8 kernel needs AVX-512 VNNI, which this CPU lacks")
        precondition(kernel != .int8 || d <= 65_536, "ReferenceIndex: the int8 kernel handles images of at most 65,536 values, not \(d)")
        self.kernel = kernel
        dimension = d
        if kernel == .int8 {
            var p = [UInt8](repeating: 0, count: ek_panel_bytes(n, d, Int(EK_DOT_NR)))
            references.images.withUnsafeBufferPointer { x in
                p.withUnsafeMutableBufferPointer { ek_pack_panels(x.baseAddress!, n, d, Int(EK_DOT_NR), 0, $0.baseAddress!) }
            }
            packed = p
            referenceTerms = (0..<n).map { j in ReferenceIndex.squareAndSum(references.images, row: j, dimension: d) }.map { $0.0 - 256 * $0.1 }
            mean = []; centred = []; norms = []; maxNorm = 0
            return
        }
        packed = []; referenceTerms = []
        var m = [Double](repeating: 0, count: d)
        references.images.withUnsafeBufferPointer { p in
            for j in 0..<n { for t in 0..<d { m[t] += Double(p[j * d + t]) } }
        }
        let meanF = m.map { Float($0 / Double(max(n, 1)) / 255) }
        mean = meanF
        var c = [Float](repeating: 0, count: n * d)
        var nr = [Float](repeating: 0, count: n)
        references.images.withUnsafeBufferPointer { p in
            c.withUnsafeMutableBufferPointer { cp in
                nr.withUnsafeMutableBufferPointer { np in
                    ReferenceIndex.centre(p.baseAddress!, rows: n, dimension: d, mean: meanF, into: cp.baseAddress!, norms: np.baseAddress!)
                }
            }
        }
        centred = c; norms = nr; maxNorm = nr.max() ?? 0
    }

    static func centre(_ x: UnsafePointer<UInt8>, rows: Int, dimension d: Int, mean: [Float],
                       into out: UnsafeMutablePointer<Float>, norms: UnsafeMutablePointer<Float>) {
        mean.withUnsafeBufferPointer { mp in
            for i in 0..<rows {
                var s: Float = 0
                for t in 0..<d {
                    let v = Float(x[i * d + t]) * (1 / 255) - mp[t]
                    out[i * d + t] = v; s += v * v
                }
                norms[i] = s
            }
        }
    }

    /// Neighbours of every query image. With `selfOffset` = o, query i is reference o + i
    /// and is not its own neighbour (deduplication, outlier scores).
    public func search(_ queries: ImageSet, k: Int, selfOffset: Int? = nil) -> NeighborTable {
        precondition(queries.imageSize == dimension,
                     "nearest neighbours: query images \(queries.channels)×\(queries.height)×\(queries.width) vs references \(references.channels)×\(references.height)×\(references.width)")
        let available = references.count - (selfOffset == nil ? 0 : 1)
        precondition(k >= 1 && k <= available, "nearest neighbours: k = \(k) but only \(available) references")
        let d = dimension, nq = queries.count, nr = references.count
        // big tiles, but at least one per worker so small query sets still use every core
        let tileQ = max(16, min(queryTile, (nq + Threads.count - 1) / max(1, Threads.count))), tileR = max(1, referenceTile)
        let tiles = (nq + tileQ - 1) / tileQ
        if kernel == .int8 { return searchInt8(queries, k: k, selfOffset: selfOffset, tileQ: tileQ, tiles: tiles) }
        let cap = min(nr, k + margin + (selfOffset == nil ? 0 : 1))
        var rows = [[(UInt64, Int)]](repeating: [], count: nq)
        var scanned = [Bool](repeating: false, count: nq)
        let gammaD = Double(d) * 0x1p-24 / (1 - Double(d) * 0x1p-24)
        rows.withUnsafeMutableBufferPointer { rowsP in scanned.withUnsafeMutableBufferPointer { scannedP in
        queries.images.withUnsafeBufferPointer { qBytes in references.images.withUnsafeBufferPointer { rBytes in
        centred.withUnsafeBufferPointer { rc in norms.withUnsafeBufferPointer { rn in
            Parallel.run(chunks: tiles) { tile, _ in
                let qs = tile * tileQ, qk = min(tileQ, nq - qs)
                let qc = UnsafeMutablePointer<Float>.allocate(capacity: qk * d)
                let qn = UnsafeMutablePointer<Float>.allocate(capacity: qk)
                let buf = UnsafeMutablePointer<Float>.allocate(capacity: qk * tileR)
                let hv = UnsafeMutablePointer<Float>.allocate(capacity: qk * cap)
                let hi = UnsafeMutablePointer<Int64>.allocate(capacity: qk * cap)
                var counts = [Int](repeating: 0, count: qk)
                defer { qc.deallocate(); qn.deallocate(); buf.deallocate(); hv.deallocate(); hi.deallocate() }
                ReferenceIndex.centre(qBytes.baseAddress! + qs * d, rows: qk, dimension: d, mean: mean, into: qc, norms: qn)
                var rs = 0
                while rs < nr {
                    let rk = min(tileR, nr - rs)
                    Float.gemm(transA: false, transB: true, m: qk, n: rk, k: d, alpha: -2, a: qc, lda: d,
                               b: rc.baseAddress! + rs * d, ldb: d, beta: 0, c: buf, ldc: rk)
                    counts.withUnsafeMutableBufferPointer { cp in
                        for i in 0..<qk {
                            ek_heap_offer(buf + i * rk, rn.baseAddress! + rs, rk, Int64(rs), hv + i * cap, hi + i * cap, cap, cp.baseAddress! + i)
                        }
                    }
                    rs += rk
                }
                for i in 0..<qk {
                    let q = qs + i
                    let selfIndex = selfOffset.map { $0 + q }
                    let qp = qBytes.baseAddress! + q * d
                    var cands: [(UInt64, Int)] = []
                    var worst = -Float.infinity
                    for c in 0..<counts[i] {
                        let j = Int(hi[i * cap + c])
                        worst = max(worst, hv[i * cap + c])
                        if j == selfIndex { continue }
                        cands.append((ek_sqdist_u8(qp, rBytes.baseAddress! + j * d, d), j))
                    }
                    cands.sort { $0 < $1 }
                    if cands.count > k { cands.removeLast(cands.count - k) }
                    // certificate (units: squared distance of [0, 1] pixels)
                    let complete = counts[i] == nr
                    let tau = 2.5 * gammaD * Double(qn[i] + maxNorm) + 1e-6
                    let kth = Double(cands[cands.count - 1].0) / (255 * 255)
                    if !complete && !(Double(worst) + Double(qn[i]) - tau > kth) {
                        cands = ReferenceIndex.exactScan(qp, rBytes.baseAddress!, count: nr, dimension: d, k: k, skip: selfIndex)
                        scannedP[q] = true
                    }
                    rowsP[q] = cands
                }
            }
        } } } } } }
        var table = NeighborTable(k: k)
        for r in rows { table.appendRow(r, dimension: d) }
        table.addExactScans(scanned.filter { $0 }.count)
        return table
    }

    /// The `.int8` kernel: exact distances throughout, so each query's heap is its answer.
    func searchInt8(_ queries: ImageSet, k: Int, selfOffset: Int?, tileQ: Int, tiles: Int) -> NeighborTable {
        let d = dimension, nq = queries.count, nr = references.count
        var rows = [[(UInt64, Int)]](repeating: [], count: nq)
        rows.withUnsafeMutableBufferPointer { rowsP in
        queries.images.withUnsafeBufferPointer { qBytes in packed.withUnsafeBufferPointer { rp in
        referenceTerms.withUnsafeBufferPointer { rt in
            Parallel.run(chunks: tiles) { tile, _ in
                let qs = tile * tileQ, qk = min(tileQ, nq - qs)
                let mr = Int(EK_DOT_MR), qPadded = (qk + mr - 1) / mr * mr
                let a = UnsafeMutablePointer<UInt8>.allocate(capacity: ek_panel_bytes(qk, d, mr))
                let qn = UnsafeMutablePointer<Int64>.allocate(capacity: qk)
                let heap = UnsafeMutablePointer<UInt64>.allocate(capacity: qk * k)
                let counts = UnsafeMutablePointer<Int>.allocate(capacity: qk)
                let buf = UnsafeMutablePointer<Int32>.allocate(capacity: qPadded * Int(EK_REF_BLOCK))
                defer { a.deallocate(); qn.deallocate(); heap.deallocate(); counts.deallocate(); buf.deallocate() }
                let x = qBytes.baseAddress! + qs * d
                ek_pack_panels(x, qk, d, mr, 1, a)
                for i in 0..<qk { qn[i] = ReferenceIndex.squareAndSum(queries.images, row: qs + i, dimension: d).0 }
                ek_knn_exact_tile(a, qk, qn, rp.baseAddress!, nr, rt.baseAddress!, d,
                                  Int64(selfOffset.map { $0 + qs } ?? -1), heap, k, counts, buf)
                for i in 0..<qk {
                    let keys = UnsafeBufferPointer(start: heap + i * k, count: counts[i]).sorted()
                    rowsP[qs + i] = keys.map { ($0 >> 32, Int($0 & 0xffff_ffff)) }
                }
            }
        } } } }
        var table = NeighborTable(k: k)
        for r in rows { table.appendRow(r, dimension: d) }
        return table
    }

    /// (Σx², Σx) of one row of uint8 images, exactly.
    static func squareAndSum(_ images: [UInt8], row: Int, dimension d: Int) -> (Int64, Int64) {
        images.withUnsafeBufferPointer { x in
            var sq: Int64 = 0, sum: Int64 = 0
            for t in row * d..<(row + 1) * d { let v = Int64(x[t]); sq += v * v; sum += v }
            return (sq, sum)
        }
    }

    /// Brute force in integers: the k smallest (Σ(q − r)², index) over all references.
    static func exactScan(_ q: UnsafePointer<UInt8>, _ r: UnsafePointer<UInt8>, count n: Int, dimension d: Int, k: Int, skip: Int?) -> [(UInt64, Int)] {
        var best: [(UInt64, Int)] = []
        for j in 0..<n where j != skip {
            let s = ek_sqdist_u8(q, r + j * d, d)
            if best.count == k, (s, j) >= best[k - 1] { continue }
            var pos = best.count
            while pos > 0 && (s, j) < best[pos - 1] { pos -= 1 }
            best.insert((s, j), at: pos)
            if best.count > k { best.removeLast() }
        }
        return best
    }
}

extension NeighborTable {
    mutating func addExactScans(_ n: Int) { exactScans += n }
}
