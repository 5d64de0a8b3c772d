/// Matrix products through BLAS GEMM, and softmax.

extension Tensor {
    /// Matrix product of op(a) and op(b), where op transposes the last two axes when asked.
    /// Rank 2: [M, K] × [K, N] → [M, N]. Rank 3 (batched): [B, M, K] × [B, K, N] → [B, M, N].
    ///
    /// Batch invariance, by construction: with rank 2 and `transposeA == false` (a Linear
    /// layer: the rows are examples) row i of the result depends only on row i of `a` and on
    /// `b`, bit for bit, for any M and thread count (`ek_rows_matmul`, not BLAS, whose kernels
    /// sum edge rows and small or single-row products in other orders). Rank 3 runs one
    /// whole GEMM per batch element, so each element's product is the same call whatever B.
    /// - Complexity: 2·B·M·N·K flops; rank 3 and Aᵀ·B in `cblas_sgemm`.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        checkSameDType(a, b, "matmul")
        precondition(a.rank == b.rank && (a.rank == 2 || a.rank == 3),
                     "matmul: needs two rank-2 or two rank-3 tensors, got \(a.shape) and \(b.shape)")
        let batched = a.rank == 3
        let batch = batched ? a.shape[0] : 1
        precondition(!batched || b.shape[0] == batch, "matmul: batch sizes differ in \(a.shape) and \(b.shape)")
        let (ar, ac) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (br, bc) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        let (m, k) = transposeA ? (ac, ar) : (ar, ac)
        let (kb, n) = transposeB ? (bc, br) : (br, bc)
        precondition(k == kb, "matmul: inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") × \(b.shape)\(transposeB ? "ᵀ" : "")")
        let out = Tensor(uninitialized: batched ? [batch, m, n] : [m, n], dtype: a.dtype)
        func run<T: TensorScalar>(_: T.Type) {
            let pa = a.pointer(T.self), pb = b.pointer(T.self), pc = out.pointer(T.self)
            if batched {
                // independent products, one whole GEMM per batch element: every element's
                // product has the same shape whatever the batch size or thread count
                Parallel.forRanges(batch, cost: batch * m * n * k / 4) { range in
                    for i in range {
                        T.gemm(transA: transposeA, transB: transposeB, m: m, n: n, k: k, alpha: 1,
                               a: pa + i * ar * ac, lda: ac, b: pb + i * br * bc, ldb: bc, beta: 0, c: pc + i * m * n, ldc: n)
                    }
                }
            } else if !transposeA && T.self == Float.self && GEMM.ownKernel {
                // rows of A are examples (Linear layers): Eidetic's sgemm is row-invariant by
                // construction (gemm.c), so an example's output never depends on its batch
                Parallel.forRanges(m, cost: m * n * k / 4) { rows in
                    T.gemm(transA: false, transB: transposeB, m: rows.count, n: n, k: k, alpha: 1,
                           a: pa + rows.lowerBound * ac, lda: ac, b: pb, ldb: bc, beta: 0, c: pc + rows.lowerBound * n, ldc: n)
                }
            } else if !transposeA {
                // rows of A are examples (Linear layers): the row-invariant kernel, so an
                // example's output never depends on the batch it is in
                var packed: [T] = []
                if transposeB {
                    packed = [T](unsafeUninitializedCapacity: k * n) { buf, count in
                        for j in 0..<n { for p in 0..<k { buf[p * n + j] = pb[j * bc + p] } }
                        count = k * n
                    }
                }
                packed.withUnsafeBufferPointer { pk in
                    let bp: UnsafePointer<T> = transposeB ? pk.baseAddress! : UnsafePointer(pb)
                    let ldb = transposeB ? n : bc
                    Parallel.forRanges(m, cost: m * n * k / 4) { rows in
                        T.rowsMatmul(m: rows.count, n: n, k: k, a: pa + rows.lowerBound * ac, lda: ac, b: bp, ldb: ldb,
                                     c: pc + rows.lowerBound * n, ldc: n)
                    }
                }
            } else if T.self == Float.self && GEMM.ownKernel {
                // Aᵀ·B sums over the rows of A (a weight gradient): Eidetic's sgemm gives every
                // column the same bits whatever its neighbours (gemm.c), so columns split across
                // threads without changing a bit
                Parallel.forRanges(n, cost: m * n * k / 4) { cols in
                    T.gemm(transA: true, transB: transposeB, m: m, n: cols.count, k: k, alpha: 1,
                           a: pa, lda: ac, b: pb + cols.lowerBound * (transposeB ? bc : 1), ldb: bc, beta: 0,
                           c: pc + cols.lowerBound, ldc: n)
                }
            } else {
                // Aᵀ·B sums over the rows of A (a weight gradient): one BLAS call
                T.gemm(transA: true, transB: transposeB, m: m, n: n, k: k, alpha: 1,
                       a: pa, lda: ac, b: pb, ldb: bc, beta: 0, c: pc, ldc: n)
            }
        }
        dispatch(a.dtype, { run(Float.self) }, { run(Double.self) })
        return record(.matmul(transposeA: transposeA, transposeB: transposeB), [a, b], out)
    }

    /// softmax along `axis`, computed with max subtraction.
    public func softmax(axis: Int = -1) -> Tensor {
        let ax = axis < 0 ? axis + rank : axis
        precondition(ax >= 0 && ax < rank, "softmax: axis \(axis) out of range for shape \(shape)")
        let (outer, inner) = outerInner(ax)
        let len = shape[ax]
        let out = Tensor(uninitialized: shape, dtype: dtype)
        func run<T: TensorScalar>(_: T.Type) {
            let x = pointer(T.self), y = out.pointer(T.self)
            for o in 0..<outer {
                for j in 0..<inner {
                    let base = o * len * inner + j
                    var m = -T.infinity
                    for i in 0..<len { m = Swift.max(m, x[base + i * inner]) }
                    var s: T = 0
                    for i in 0..<len { let e = T.exp(x[base + i * inner] - m); y[base + i * inner] = e; s += e }
                    let r = 1 / s
                    for i in 0..<len { y[base + i * inner] *= r }
                }
            }
        }
        if inner == 1, dtype == .float32 {
            // contiguous rows: vectorised exp
            let x = pointer(Float.self), y = out.pointer(Float.self)
            for o in 0..<outer {
                let xr = x + o * len, yr = y + o * len
                var m = -Float.infinity
                for i in 0..<len { m = Swift.max(m, xr[i]) }
                for i in 0..<len { yr[i] = xr[i] - m }
                Float.vexp(yr, yr, len)
                var s: Float = 0
                for i in 0..<len { s += yr[i] }
                let r = 1 / s
                for i in 0..<len { yr[i] *= r }
            }
        } else {
            dispatch(dtype, { run(Float.self) }, { run(Double.self) })
        }
        return record(.softmax(axis: ax), [self], out)
    }

    /// log softmax along `axis`: x - logsumexp(x).
    public func logSoftmax(axis: Int = -1) -> Tensor {
        self - logSumExp(axis: axis, keepingDims: true)
    }
}
