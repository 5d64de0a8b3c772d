/// Shape broadcasting (NumPy rules: align trailing dimensions; a dimension of 1 stretches)
/// and the strided loop every broadcasting kernel uses.

/// The broadcast shape of `a` and `b`; a precondition failure names both shapes.
public func broadcastShapes(_ a: [Int], _ b: [Int], op: String = "broadcast") -> [Int] {
    let r = max(a.count, b.count)
    var out = [Int](repeating: 1, count: r)
    for i in 0..<r {
        let da = i < r - a.count ? 1 : a[i - (r - a.count)]
        let db = i < r - b.count ? 1 : b[i - (r - b.count)]
        precondition(da == db || da == 1 || db == 1,
                     "\(op): shapes \(a) and \(b) cannot be broadcast together")
        out[i] = da == 1 ? db : da
    }
    return out
}

/// Row-major strides of a contiguous tensor.
func contiguousStrides(_ shape: [Int]) -> [Int] {
    var s = [Int](repeating: 1, count: shape.count)
    var acc = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
    return s
}

/// Strides for reading a contiguous tensor of `shape` as if it had shape `out`
/// (right-aligned; stride 0 on broadcast dimensions).
func broadcastStrides(_ shape: [Int], to out: [Int]) -> [Int] {
    let own = contiguousStrides(shape)
    var s = [Int](repeating: 0, count: out.count)
    let off = out.count - shape.count
    for i in 0..<shape.count where shape[i] != 1 || out[i + off] == 1 { s[i + off] = shape[i] == 1 ? 0 : own[i] }
    return s
}

/// A loop nest over `shape` with one stride vector per operand, after merging dimensions
/// that are contiguous for every operand. `forEachRow` calls `body(offsets, n)` for each
/// innermost run of `n` elements, where `offsets[k]` is operand k's starting offset and
/// the operand advances by `innerStrides[k]` per element.
struct StridedLoop {
    var shape: [Int]
    var strides: [[Int]]

    init(shape: [Int], strides: [[Int]]) {
        // drop size-1 dims, then merge dims i and i+1 when every operand is contiguous across them
        var sh: [Int] = []
        var st: [[Int]] = Array(repeating: [], count: strides.count)
        for d in 0..<shape.count where shape[d] != 1 {
            sh.append(shape[d]); for k in 0..<strides.count { st[k].append(strides[k][d]) }
        }
        if sh.isEmpty { sh = [1]; for k in 0..<st.count { st[k] = [0] } }
        var i = sh.count - 2
        while i >= 0 {
            let mergeable = (0..<st.count).allSatisfy { st[$0][i] == st[$0][i + 1] * sh[i + 1] }
            if mergeable {
                sh[i] *= sh[i + 1]; sh.remove(at: i + 1)
                for k in 0..<st.count { st[k][i] = st[k][i + 1]; st[k].remove(at: i + 1) }
            }
            i -= 1
        }
        self.shape = sh
        self.strides = st
    }

    var innerCount: Int { shape[shape.count - 1] }
    func innerStride(_ k: Int) -> Int { strides[k][shape.count - 1] }

    /// Calls body(offsets) for each innermost row.
    @inline(__always)
    func forEachRow(_ body: ([Int]) -> Void) {
        let outerDims = shape.count - 1
        var index = [Int](repeating: 0, count: max(outerDims, 0))
        var offsets = [Int](repeating: 0, count: strides.count)
        let rows = shape.dropLast().reduce(1, *)
        for _ in 0..<rows {
            body(offsets)
            // increment the multi-index (last outer dim fastest)
            var d = outerDims - 1
            while d >= 0 {
                index[d] += 1
                for k in 0..<offsets.count { offsets[k] += strides[k][d] }
                if index[d] < shape[d] { break }
                for k in 0..<offsets.count { offsets[k] -= strides[k][d] * shape[d] }
                index[d] = 0
                d -= 1
            }
        }
    }
}
