import CBLAS
import CKernels
import Foundation

/// The element types a tensor can hold, with the few per-type primitives the generic
/// kernels need: transcendentals, vectorised loops and BLAS GEMM.
public protocol TensorScalar: BinaryFloatingPoint, SIMDScalar where Self.RawSignificand: FixedWidthInteger {
    static var dtype: DType { get }
    static func exp(_ x: Self) -> Self
    static func log(_ x: Self) -> Self
    static func tanh(_ x: Self) -> Self
    static func pow(_ x: Self, _ y: Self) -> Self
    static func erf(_ x: Self) -> Self
    /// y[i] = exp(x[i])
    static func vexp(_ x: UnsafePointer<Self>, _ y: UnsafeMutablePointer<Self>, _ n: Int)
    static func vsigmoid(_ x: UnsafePointer<Self>, _ y: UnsafeMutablePointer<Self>, _ n: Int)
    static func vtanh(_ x: UnsafePointer<Self>, _ y: UnsafeMutablePointer<Self>, _ n: Int)
    static func vsilu(_ x: UnsafePointer<Self>, _ y: UnsafeMutablePointer<Self>, _ n: Int)
    static func vsiluBackward(_ x: UnsafePointer<Self>, _ g: UnsafePointer<Self>, _ dx: UnsafeMutablePointer<Self>, _ n: Int)
    /// Row-major C = alpha op(A) op(B) + beta C.
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Self,
                     a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
                     beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
    /// Row-major C = A·B (A [m, k], B [k, n]) where row i of C depends only on row i of A
    /// and on B, bit for bit, whatever m (`ek_rows_matmul_*`).
    static func rowsMatmul(m: Int, n: Int, k: Int, a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
                           c: UnsafeMutablePointer<Self>, ldc: Int)
}

@inline(__always) private func cblasTrans(_ t: Bool) -> CBLAS_TRANSPOSE { t ? CblasTrans : CblasNoTrans }

extension Float: TensorScalar {
    public static var dtype: DType { .float32 }
    @inline(__always) public static func exp(_ x: Float) -> Float { Foundation.expf(x) }
    @inline(__always) public static func log(_ x: Float) -> Float { Foundation.logf(x) }
    @inline(__always) public static func tanh(_ x: Float) -> Float { Foundation.tanhf(x) }
    @inline(__always) public static func pow(_ x: Float, _ y: Float) -> Float { Foundation.powf(x, y) }
    @inline(__always) public static func erf(_ x: Float) -> Float { Foundation.erff(x) }
    public static func vexp(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) { ek_exp(x, y, n) }
    public static func vsigmoid(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) { ek_sigmoid(x, y, n) }
    public static func vtanh(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) { ek_tanh(x, y, n) }
    public static func vsilu(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) { ek_silu(x, y, n) }
    public static func vsiluBackward(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        ek_silu_backward(x, g, dx, n)
    }
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if GEMM.ownKernel {
            let status = ek_sgemm(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            precondition(status == 0, "sgemm: out of memory for packing buffers (\(m)×\(n)×\(k))")
            return
        }
        Threads.pinBLAS()
        cblas_sgemm(CblasRowMajor, cblasTrans(transA), cblasTrans(transB), Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
    public static func rowsMatmul(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                  c: UnsafeMutablePointer<Float>, ldc: Int) {
        ek_rows_matmul_f32(a, m, k, lda, b, ldb, n, c, ldc)
    }
}

extension Double: TensorScalar {
    public static var dtype: DType { .float64 }
    @inline(__always) public static func exp(_ x: Double) -> Double { Foundation.exp(x) }
    @inline(__always) public static func log(_ x: Double) -> Double { Foundation.log(x) }
    @inline(__always) public static func tanh(_ x: Double) -> Double { Foundation.tanh(x) }
    @inline(__always) public static func pow(_ x: Double, _ y: Double) -> Double { Foundation.pow(x, y) }
    @inline(__always) public static func erf(_ x: Double) -> Double { Foundation.erf(x) }
    public static func vexp(_ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, _ n: Int) {
        for i in 0..<n { y[i] = Foundation.exp(x[i]) }
    }
    public static func vsigmoid(_ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, _ n: Int) {
        for i in 0..<n { y[i] = 1 / (1 + Foundation.exp(-x[i])) }
    }
    public static func vtanh(_ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, _ n: Int) {
        for i in 0..<n { y[i] = Foundation.tanh(x[i]) }
    }
    public static func vsilu(_ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>, _ n: Int) {
        for i in 0..<n { y[i] = x[i] / (1 + Foundation.exp(-x[i])) }
    }
    public static func vsiluBackward(_ x: UnsafePointer<Double>, _ g: UnsafePointer<Double>, _ dx: UnsafeMutablePointer<Double>, _ n: Int) {
        for i in 0..<n {
            let s = 1 / (1 + Foundation.exp(-x[i]))
            dx[i] = g[i] * (s + x[i] * s * (1 - s))
        }
    }
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
                            a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
                            beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int) {
        Threads.pinBLAS()
        cblas_dgemm(CblasRowMajor, cblasTrans(transA), cblasTrans(transB), Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
    public static func rowsMatmul(m: Int, n: Int, k: Int, a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
                                  c: UnsafeMutablePointer<Double>, ldc: Int) {
        ek_rows_matmul_f64(a, m, k, lda, b, ldb, n, c, ldc)
    }
}

/// Which single-precision GEMM Eidetic runs. Its own (Sources/CKernels/gemm.c) wherever the
/// CPU has AVX2 + FMA or AVX-512: it picks its micro-kernel by the CPU's features, never by
/// `OPENBLAS_CORETYPE`, and gives the same bits on both ISAs and for any batch size.
/// OpenBLAS elsewhere (older x86-64, other architectures), or when the environment sets
/// `EIDETIC_GEMM=openblas` (to compare the two in benchmarks). Double precision always
/// uses OpenBLAS.
public enum GEMM {
    public static let ownKernel: Bool = {
        if ProcessInfo.processInfo.environment["EIDETIC_GEMM"] == "openblas" { return false }
        return ownAvailable
    }()

    /// Whether this CPU runs one of Eidetic's vector micro-kernels (AVX2 + FMA or AVX-512).
    public static var ownAvailable: Bool { ek_sgemm_best_isa() != EK_ISA_PORTABLE }

    /// OpenBLAS's sgemm whatever `ownKernel` says (benchmarks), row-major like `Float.gemm`.
    public static func openBLAS(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                                a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, cblasTrans(transA), cblasTrans(transB), Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Eidetic's micro-kernels; all three give the same bits (gemm.c).
    public enum ISA: Int32, CaseIterable, Sendable {
        case portable = 0, avx2 = 1, avx512 = 2
        public var isAvailable: Bool { ek_sgemm_isa_available(rawValue) != 0 }
    }

    /// Eidetic's sgemm with OpenBLAS's signature, on the best micro-kernel or a chosen one
    /// (tests and benchmarks). False when that micro-kernel cannot run here.
    @discardableResult
    public static func own(isa: ISA? = nil, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                           beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) -> Bool {
        let chosen = isa?.rawValue ?? ek_sgemm_best_isa()
        return ek_sgemm_isa(chosen, transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) == 0
    }

    /// "eidetic avx512", "eidetic avx2" or "openblas": what `Float.gemm` runs.
    public static var description: String {
        guard ownKernel else { return "openblas" }
        return ek_sgemm_best_isa() == EK_ISA_AVX512 ? "eidetic avx512" : "eidetic avx2"
    }
}

/// The number of threads Eidetic's kernels use (convolutions, matrix products, norms and
/// large pointwise ops split their work over this many workers). OpenBLAS itself is kept
/// single-threaded: its idle pool threads spin and steal the cores our workers need, and
/// two single-threaded GEMMs on two cores beat one two-threaded GEMM on conv shapes
/// (platform-notes §3). Default: the number of cores.
public enum Threads {
    nonisolated(unsafe) static var value = ProcessInfo.processInfo.activeProcessorCount
    nonisolated(unsafe) static var blasPinned = false

    public static var count: Int {
        get { value }
        set { value = max(1, newValue); pinBLAS() }
    }

    /// Keeps OpenBLAS at one thread (idempotent, cheap).
    @inline(__always) static func pinBLAS() {
        if !blasPinned { openblas_set_num_threads(1); blasPinned = true }
    }

    /// Runs `body` with OpenBLAS's own threading at `n` threads (used only to measure the
    /// machine's native sgemm figure), then returns to single-threaded BLAS.
    public static func withNativeBLAS<R>(threads n: Int, _ body: () throws -> R) rethrows -> R {
        blasPinned = true
        openblas_set_num_threads(Int32(n))
        defer { openblas_set_num_threads(1) }
        return try body()
    }

    /// OpenBLAS's build configuration and the kernel family it picked for this CPU.
    public static var blasConfiguration: String {
        String(cString: openblas_get_config()) + " core=" + String(cString: openblas_get_corename())
    }
}
