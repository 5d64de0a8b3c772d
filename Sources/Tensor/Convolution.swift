import CKernels
import Foundation

/// 2-D convolution as im2col + GEMM (Chellapilla et al., 2006), its transpose, nearest
/// upsampling and average pooling. Layouts: x [N, C, H, W]; conv weight [O, C, KH, KW];
/// transposed-conv weight [Cin, Cout, KH, KW] (PyTorch's layouts).

/// The geometry of sliding a KH×KW window with `stride` and zero `padding` over a
/// C×H×W image: the window grid is outH×outW, and one column of the im2col matrix
/// holds the C·KH·KW values under one window.
public struct ConvGeometry: Equatable, Sendable {
    public let channels, height, width, kernelH, kernelW, stride, padding: Int
    public var outH: Int { (height + 2 * padding - kernelH) / stride + 1 }
    public var outW: Int { (width + 2 * padding - kernelW) / stride + 1 }
    /// Rows of the im2col matrix.
    public var patch: Int { channels * kernelH * kernelW }
    /// Columns of the im2col matrix.
    public var windows: Int { outH * outW }
    /// Whether this conv takes bf16 products (`DirectConvBF16`): set by `conv2d` from
    /// `ComputePrecision.current` where that kernel applies, and kept for its backward.
    public internal(set) var bf16Products = false

    public init(channels: Int, height: Int, width: Int, kernelH: Int, kernelW: Int, stride: Int, padding: Int) {
        precondition(stride >= 1 && padding >= 0, "conv: stride \(stride) must be ≥ 1 and padding \(padding) ≥ 0")
        precondition(height + 2 * padding >= kernelH && width + 2 * padding >= kernelW,
                     "conv: kernel \(kernelH)×\(kernelW) larger than padded input \(height)×\(width) (padding \(padding))")
        self.channels = channels; self.height = height; self.width = width
        self.kernelH = kernelH; self.kernelW = kernelW; self.stride = stride; self.padding = padding
    }
}

/// col[(c·KH + kh)·KW + kw, oh·OW + ow] = x[c, oh·s − p + kh, ow·s − p + kw] (0 outside);
/// rows of `col` are `ld` apart (default: the window count; larger when several images'
/// columns sit side by side).
func im2col<T: TensorScalar>(_ g: ConvGeometry, _ x: UnsafePointer<T>, _ col: UnsafeMutablePointer<T>, ld: Int? = nil) {
    let ld = ld ?? g.windows
    if T.self == Float.self {
        ek_im2col_f32(UnsafeRawPointer(x).assumingMemoryBound(to: Float.self), g.channels, g.height, g.width, g.kernelH, g.kernelW,
                      g.stride, g.padding, UnsafeMutableRawPointer(col).assumingMemoryBound(to: Float.self), ld)
        return
    }
    let (H, W, OH, OW, s, p) = (g.height, g.width, g.outH, g.outW, g.stride, g.padding)
    var row = 0
    for c in 0..<g.channels {
        let xc = x + c * H * W
        for kh in 0..<g.kernelH {
            for kw in 0..<g.kernelW {
                let dst = col + row * ld
                // valid ow: 0 <= ow*s - p + kw < W
                let owLo = Swift.max(0, (p - kw + s - 1) / s)
                let owHi = Swift.min(OW, (W + p - kw + s - 1) / s)
                for oh in 0..<OH {
                    let ih = oh * s - p + kh
                    let d = dst + oh * OW
                    if ih < 0 || ih >= H || owLo >= owHi {
                        for ow in 0..<OW { d[ow] = 0 }
                        continue
                    }
                    for ow in 0..<owLo { d[ow] = 0 }
                    for ow in owHi..<OW { d[ow] = 0 }
                    let src = xc + ih * W - p + kw
                    // rows are short (≤ 32 floats here): a plain loop beats a memcpy call
                    if s == 1 { for ow in owLo..<owHi { d[ow] = src[ow] } }
                    else { for ow in owLo..<owHi { d[ow] = src[ow * s] } }
                }
                row += 1
            }
        }
    }
}

/// The adjoint of im2col: x[c, ih, iw] += col[…] for every window covering (ih, iw).
/// `x` must be zeroed by the caller; rows of `col` are `ld` apart.
func col2im<T: TensorScalar>(_ g: ConvGeometry, _ col: UnsafePointer<T>, _ x: UnsafeMutablePointer<T>, ld: Int? = nil) {
    let ld = ld ?? g.windows
    if T.self == Float.self {
        ek_col2im_f32(UnsafeRawPointer(col).assumingMemoryBound(to: Float.self), g.channels, g.height, g.width, g.kernelH, g.kernelW,
                      g.stride, g.padding, UnsafeMutableRawPointer(x).assumingMemoryBound(to: Float.self), ld)
        return
    }
    let (H, W, OH, OW, s, p) = (g.height, g.width, g.outH, g.outW, g.stride, g.padding)
    var row = 0
    for c in 0..<g.channels {
        let xc = x + c * H * W
        for kh in 0..<g.kernelH {
            for kw in 0..<g.kernelW {
                let src = col + row * ld
                let owLo = Swift.max(0, (p - kw + s - 1) / s)
                let owHi = Swift.min(OW, (W + p - kw + s - 1) / s)
                if owLo < owHi {
                    for oh in 0..<OH {
                        let ih = oh * s - p + kh
                        if ih < 0 || ih >= H { continue }
                        let d = xc + ih * W - p + kw, r = src + oh * OW
                        if s == 1 { for ow in owLo..<owHi { d[ow] += r[ow] } }
                        else { for ow in owLo..<owHi { d[ow * s] += r[ow] } }
                    }
                }
                row += 1
            }
        }
    }
}

enum ConvKernels {
    static func forward<T: TensorScalar>(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, _ g: ConvGeometry, _ out: Tensor, _: T.Type) {
        let n = x.shape[0], o = w.shape[0]
        if T.self == Float.self && g.bf16Products {
            DirectConvBF16.forward(x, w, bias, g, out)
            return
        }
        if T.self == Float.self && DirectConv3x3.applies(g, outChannels: o) {
            DirectConv3x3.forward(x, w, bias, g, out)
            return
        }
        if T.self == Float.self && DirectConv.applies(g) {
            DirectConv.forward(x, w, bias, g, out)
            return
        }
        let px = x.pointer(T.self), pw = w.pointer(T.self), py = out.pointer(T.self)
        let inSize = g.channels * g.height * g.width, outSize = o * g.windows
        // Grouped while a tape records (training), or always with Eidetic's sgemm, whose every
        // element has one summation order whatever the product's shape (gemm.c). Otherwise
        // (OpenBLAS, Double) sampling and evaluation compute every image as its own product of
        // one fixed shape. Either way an image's output does not depend on its batch (batch
        // invariance by construction, as for Linear layers).
        let group = groupsAtInference(T.self) || Tape.current != nil ? imageGroup(windows: g.windows, rows: g.patch + o) : 0
        if group > 0 {
            forEachGroup(n, group: group, windows: g.windows, rows: g.patch + o, T.self) { chunk, lo, count, ld, col in
                let yT = col + g.patch * group * g.windows
                for q in 0..<count { im2col(g, px + (lo + q) * inSize, col + q * g.windows, ld: ld) }
                T.gemm(transA: false, transB: false, m: o, n: ld, k: g.patch, alpha: 1,
                       a: pw, lda: g.patch, b: col, ldb: ld, beta: 0, c: yT, ldc: ld)
                let y = py + lo * outSize
                scatter(yT, count: count, channels: o, windows: g.windows, into: y)
                if let bias {
                    let pb = bias.pointer(T.self)
                    for q in 0..<count { for c in 0..<o { let r = y + (q * o + c) * g.windows; for j in 0..<g.windows { r[j] += pb[c] } } }
                }
            }
            return
        }
        let pointwise = g.kernelH == 1 && g.kernelW == 1 && g.stride == 1 && g.padding == 0
        let chunks = Parallel.chunkCount(n)
        let scratch = ScratchBuffers<T>(count: Parallel.workers(for: chunks), elements: pointwise ? 0 : g.patch * g.windows)
        Parallel.run(chunks: chunks) { chunk, worker in
            let col = scratch[worker]
            for i in Parallel.chunkRange(chunk, of: n) {
                let y = py + i * outSize
                var beta: T = 0
                if let bias {
                    let pb = bias.pointer(T.self)
                    for c in 0..<o { (y + c * g.windows).update(repeating: pb[c], count: g.windows) }
                    beta = 1
                }
                let src: UnsafePointer<T>
                if pointwise { src = UnsafePointer(px + i * inSize) } else { im2col(g, px + i * inSize, col); src = UnsafePointer(col) }
                T.gemm(transA: false, transB: false, m: o, n: g.windows, k: g.patch, alpha: 1,
                       a: pw, lda: g.patch, b: src, ldb: g.windows, beta: beta, c: y, ldc: g.windows)
            }
        }
    }

    /// Whether inference may put images side by side: only when the GEMM gives every element
    /// the same bits whatever the product's shape (Eidetic's sgemm), not OpenBLAS's.
    static func groupsAtInference<T: TensorScalar>(_: T.Type) -> Bool { T.self == Float.self && GEMM.ownKernel }

    /// Images per group in training passes: with a small window grid (16 windows at 4×4)
    /// per-image products are thin (16 columns: BLAS repacks the whole weight matrix for every
    /// image; the weight gradient has inner dimension 16 and rewrites its partial once per
    /// image), so images are put side by side into one product of ≥ 512 columns (within 16 MB
    /// of scratch). 0: the per-image path (large grids). Fixed by the shape, never by the
    /// thread count, so results stay identical for any thread count.
    static func imageGroup(windows: Int, rows: Int) -> Int {
        guard windows < 256 else { return 0 }
        let want = (512 + windows - 1) / windows
        return max(1, min(want, (1 << 22) / max(rows * windows, 1)))
    }

    /// Runs `body(chunk, lo, count, ld, scratch)` for each group of `group` images of `n`
    /// (images lo..<lo + count, columns side by side with row stride ld = count·windows),
    /// with `rows × group·windows` elements of per-worker scratch.
    static func forEachGroup<T: TensorScalar>(_ n: Int, group: Int, windows: Int, rows: Int, _: T.Type,
                                              _ body: (_ chunk: Int, _ lo: Int, _ count: Int, _ ld: Int, _ scratch: UnsafeMutablePointer<T>) -> Void) {
        let chunks = (n + group - 1) / group
        let scratch = ScratchBuffers<T>(count: Parallel.workers(for: chunks), elements: rows * group * windows)
        Parallel.run(chunks: chunks) { chunk, worker in
            let lo = chunk * group, count = min(n, lo + group) - lo
            body(chunk, lo, count, count * windows, scratch[worker])
        }
    }

    /// dst[c, q·windows + j] = src[q, c, j] for q < count: `count` images' [C, windows] planes side by side.
    static func gather<T: TensorScalar>(_ src: UnsafePointer<T>, count: Int, channels: Int, windows: Int, into dst: UnsafeMutablePointer<T>) {
        let ld = count * windows
        for q in 0..<count { for c in 0..<channels {
            (dst + c * ld + q * windows).update(from: src + (q * channels + c) * windows, count: windows)
        } }
    }

    /// The inverse of `gather`.
    static func scatter<T: TensorScalar>(_ src: UnsafePointer<T>, count: Int, channels: Int, windows: Int, into dst: UnsafeMutablePointer<T>) {
        let ld = count * windows
        for q in 0..<count { for c in 0..<channels {
            (dst + (q * channels + c) * windows).update(from: src + c * ld + q * windows, count: windows)
        } }
    }

    /// Gradients of conv2d: dx = col2im(Wᵀ·dY), dW = Σ dY·colᵀ, db = Σ dY.
    static func backward<T: TensorScalar>(_ x: Tensor, _ w: Tensor, _ gy: Tensor, _ g: ConvGeometry,
                                          dx: Tensor?, dw: Tensor?, db: Tensor?, _: T.Type) {
        let n = x.shape[0], o = w.shape[0]
        if T.self == Float.self && g.bf16Products {
            DirectConvBF16.backward(x, w, gy, g, dx: dx, dw: dw, db: db)
            return
        }
        if T.self == Float.self && DirectConv3x3.applies(g, outChannels: o) {
            DirectConv3x3.backward(x, w, gy, g, dx: dx, dw: dw, db: db)
            return
        }
        if T.self == Float.self && DirectConv.applies(g) {
            DirectConv.backward(x, w, gy, g, dx: dx, dw: dw, db: db)
            return
        }
        let px = x.pointer(T.self), pw = w.pointer(T.self), pg = gy.pointer(T.self)
        let inSize = g.channels * g.height * g.width, outSize = o * g.windows
        let wSize = o * g.patch
        let group = imageGroup(windows: g.windows, rows: g.patch + o)
        if group > 0 {
            // images side by side: dYᵀ [o, G·windows] gathered, col [patch, G·windows]
            let chunks = (n + group - 1) / group
            let partial = dw == nil ? nil : ScratchBuffers<T>(count: 1, elements: chunks * wSize)
            forEachGroup(n, group: group, windows: g.windows, rows: g.patch + o, T.self) { chunk, lo, count, ld, col in
                let gyT = col + g.patch * group * g.windows
                gather(pg + lo * outSize, count: count, channels: o, windows: g.windows, into: gyT)
                if let partial {
                    for q in 0..<count { im2col(g, px + (lo + q) * inSize, col + q * g.windows, ld: ld) }
                    T.gemm(transA: false, transB: true, m: o, n: g.patch, k: ld, alpha: 1,
                           a: gyT, lda: ld, b: col, ldb: ld, beta: 0, c: partial[0] + chunk * wSize, ldc: g.patch)
                }
                if let dx {
                    T.gemm(transA: true, transB: false, m: g.patch, n: ld, k: o, alpha: 1,
                           a: pw, lda: g.patch, b: gyT, ldb: ld, beta: 0, c: col, ldc: ld)
                    let pdx = dx.pointer(T.self) + lo * inSize
                    pdx.update(repeating: 0, count: count * inSize)
                    for q in 0..<count { col2im(g, col + q * g.windows, pdx + q * inSize, ld: ld) }
                }
            }
            if let dw, let partial { sumChunks(partial[0], chunks: chunks, size: wSize, into: dw.pointer(T.self)) }
            if let db { channelSums(pg, n: n, channels: o, inner: g.windows, into: db.pointer(T.self)) }
            return
        }
        let pointwise = g.kernelH == 1 && g.kernelW == 1 && g.stride == 1 && g.padding == 0
        let chunks = Parallel.chunkCount(n)
        let scratch = ScratchBuffers<T>(count: Parallel.workers(for: chunks), elements: pointwise ? 0 : g.patch * g.windows)
        // one partial dW per chunk, summed in chunk order (thread-count independent)
        let partial = dw == nil ? nil : ScratchBuffers<T>(count: 1, elements: chunks * wSize)
        Parallel.run(chunks: chunks) { chunk, worker in
            let col = scratch[worker]
            for (j, i) in Parallel.chunkRange(chunk, of: n).enumerated() {
                let gi = pg + i * outSize
                if let partial {
                    let src: UnsafePointer<T>
                    if pointwise { src = UnsafePointer(px + i * inSize) } else { im2col(g, px + i * inSize, col); src = UnsafePointer(col) }
                    T.gemm(transA: false, transB: true, m: o, n: g.patch, k: g.windows, alpha: 1,
                           a: gi, lda: g.windows, b: src, ldb: g.windows, beta: j == 0 ? 0 : 1, c: partial[0] + chunk * wSize, ldc: g.patch)
                }
                if let dx {
                    let dxi = dx.pointer(T.self) + i * inSize
                    if pointwise {
                        T.gemm(transA: true, transB: false, m: g.patch, n: g.windows, k: o, alpha: 1,
                               a: pw, lda: g.patch, b: gi, ldb: g.windows, beta: 0, c: dxi, ldc: g.windows)
                    } else {
                        T.gemm(transA: true, transB: false, m: g.patch, n: g.windows, k: o, alpha: 1,
                               a: pw, lda: g.patch, b: gi, ldb: g.windows, beta: 0, c: col, ldc: g.windows)
                        dxi.update(repeating: 0, count: inSize)
                        col2im(g, col, dxi)
                    }
                }
            }
        }
        if let dw, let partial { sumChunks(partial[0], chunks: chunks, size: wSize, into: dw.pointer(T.self)) }
        if let db { channelSums(pg, n: n, channels: o, inner: g.windows, into: db.pointer(T.self)) }
    }

    /// Transposed convolution: the adjoint of conv2d's input map. `g` describes the
    /// (larger) output image; its window grid is the input's H×W.
    static func transposeForward<T: TensorScalar>(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, _ g: ConvGeometry, _ out: Tensor, _: T.Type) {
        let n = x.shape[0], cin = x.shape[1]
        let px = x.pointer(T.self), pw = w.pointer(T.self), py = out.pointer(T.self)
        let inSize = cin * g.windows, outSize = g.channels * g.height * g.width
        // grouped as in `forward`
        let group = groupsAtInference(T.self) || Tape.current != nil ? imageGroup(windows: g.windows, rows: g.patch + cin) : 0
        if group > 0 {
            forEachGroup(n, group: group, windows: g.windows, rows: g.patch + cin, T.self) { chunk, lo, count, ld, col in
                let xT = col + g.patch * group * g.windows
                gather(px + lo * inSize, count: count, channels: cin, windows: g.windows, into: xT)
                T.gemm(transA: true, transB: false, m: g.patch, n: ld, k: cin, alpha: 1,
                       a: pw, lda: g.patch, b: xT, ldb: ld, beta: 0, c: col, ldc: ld)
                for q in 0..<count {
                    let y = py + (lo + q) * outSize
                    if let bias {
                        let pb = bias.pointer(T.self), hw = g.height * g.width
                        for c in 0..<g.channels { (y + c * hw).update(repeating: pb[c], count: hw) }
                    } else {
                        y.update(repeating: 0, count: outSize)
                    }
                    col2im(g, col + q * g.windows, y, ld: ld)
                }
            }
            return
        }
        let chunks = Parallel.chunkCount(n)
        let scratch = ScratchBuffers<T>(count: Parallel.workers(for: chunks), elements: g.patch * g.windows)
        Parallel.run(chunks: chunks) { chunk, worker in
            let col = scratch[worker]
            for i in Parallel.chunkRange(chunk, of: n) {
                T.gemm(transA: true, transB: false, m: g.patch, n: g.windows, k: cin, alpha: 1,
                       a: pw, lda: g.patch, b: px + i * inSize, ldb: g.windows, beta: 0, c: col, ldc: g.windows)
                let y = py + i * outSize
                if let bias {
                    let pb = bias.pointer(T.self), hw = g.height * g.width
                    for c in 0..<g.channels { (y + c * hw).update(repeating: pb[c], count: hw) }
                } else {
                    y.update(repeating: 0, count: outSize)
                }
                col2im(g, col, y)
            }
        }
    }

    static func transposeBackward<T: TensorScalar>(_ x: Tensor, _ w: Tensor, _ gy: Tensor, _ g: ConvGeometry,
                                                   dx: Tensor?, dw: Tensor?, db: Tensor?, _: T.Type) {
        let n = x.shape[0], cin = x.shape[1]
        let px = x.pointer(T.self), pw = w.pointer(T.self), pg = gy.pointer(T.self)
        let inSize = cin * g.windows, outSize = g.channels * g.height * g.width
        let wSize = cin * g.patch
        let group = imageGroup(windows: g.windows, rows: g.patch + cin)
        if group > 0 {
            // images side by side: col [patch, G·windows] from dY, xᵀ [cin, G·windows] gathered
            let chunks = (n + group - 1) / group
            let partial = dw == nil ? nil : ScratchBuffers<T>(count: 1, elements: chunks * wSize)
            forEachGroup(n, group: group, windows: g.windows, rows: g.patch + cin, T.self) { chunk, lo, count, ld, col in
                let xT = col + g.patch * group * g.windows
                for q in 0..<count { im2col(g, pg + (lo + q) * outSize, col + q * g.windows, ld: ld) }
                if let dx {
                    T.gemm(transA: false, transB: false, m: cin, n: ld, k: g.patch, alpha: 1,
                           a: pw, lda: g.patch, b: col, ldb: ld, beta: 0, c: xT, ldc: ld)
                    scatter(xT, count: count, channels: cin, windows: g.windows, into: dx.pointer(T.self) + lo * inSize)
                }
                if let partial {
                    gather(px + lo * inSize, count: count, channels: cin, windows: g.windows, into: xT)
                    T.gemm(transA: false, transB: true, m: cin, n: g.patch, k: ld, alpha: 1,
                           a: xT, lda: ld, b: col, ldb: ld, beta: 0, c: partial[0] + chunk * wSize, ldc: g.patch)
                }
            }
            if let dw, let partial { sumChunks(partial[0], chunks: chunks, size: wSize, into: dw.pointer(T.self)) }
            if let db { channelSums(pg, n: n, channels: g.channels, inner: g.height * g.width, into: db.pointer(T.self)) }
            return
        }
        let chunks = Parallel.chunkCount(n)
        let scratch = ScratchBuffers<T>(count: Parallel.workers(for: chunks), elements: g.patch * g.windows)
        let partial = dw == nil ? nil : ScratchBuffers<T>(count: 1, elements: chunks * wSize)
        Parallel.run(chunks: chunks) { chunk, worker in
            let col = scratch[worker]
            for (j, i) in Parallel.chunkRange(chunk, of: n).enumerated() {
                im2col(g, pg + i * outSize, col)
                if let dx {
                    T.gemm(transA: false, transB: false, m: cin, n: g.windows, k: g.patch, alpha: 1,
                           a: pw, lda: g.patch, b: col, ldb: g.windows, beta: 0, c: dx.pointer(T.self) + i * inSize, ldc: g.windows)
                }
                if let partial {
                    T.gemm(transA: false, transB: true, m: cin, n: g.patch, k: g.windows, alpha: 1,
                           a: px + i * inSize, lda: g.windows, b: col, ldb: g.windows, beta: j == 0 ? 0 : 1,
                           c: partial[0] + chunk * wSize, ldc: g.patch)
                }
            }
        }
        if let dw, let partial { sumChunks(partial[0], chunks: chunks, size: wSize, into: dw.pointer(T.self)) }
        if let db { channelSums(pg, n: n, channels: g.channels, inner: g.height * g.width, into: db.pointer(T.self)) }
    }

    /// Per-example weight and bias gradients of conv2d (DP-SGD): dw [n, O, C, KH, KW] and
    /// db [n, O], image i's slot written by image i's own product (the batch-of-one
    /// backward's), images split across threads.
    static func perExampleGradients<T: TensorScalar>(_ x: Tensor, _ gy: Tensor, _ g: ConvGeometry, outChannels o: Int,
                                                     dw: Tensor?, db: Tensor?, _: T.Type) {
        let n = x.shape[0]
        let px = x.pointer(T.self), pg = gy.pointer(T.self)
        let inSize = g.channels * g.height * g.width, outSize = o * g.windows, wSize = o * g.patch
        let chunks = Parallel.chunkCount(n)
        if let dw {
            let pdw = dw.pointer(T.self)
            if T.self == Float.self && DirectConv3x3.applies(g, outChannels: o) {
                pdw.update(repeating: 0, count: n * wSize)
                let scratch = ScratchBuffers<Float>(count: Parallel.workers(for: chunks), elements: ek_conv3x3_scratch(g.channels, g.height, g.width))
                let fx = UnsafeRawPointer(px).assumingMemoryBound(to: Float.self), fg = UnsafeRawPointer(pg).assumingMemoryBound(to: Float.self)
                let fw = UnsafeMutableRawPointer(pdw).assumingMemoryBound(to: Float.self)
                Parallel.run(chunks: chunks) { chunk, worker in
                    for i in Parallel.chunkRange(chunk, of: n) {
                        ek_conv3x3_weight_grad(fx + i * inSize, g.channels, g.height, g.width, fg + i * outSize, o, fw + i * wSize, scratch[worker])
                    }
                }
            } else if T.self == Float.self && DirectConv.applies(g) {
                // each image's own count-1 call: the bits of a batch-of-one backward
                let fx = UnsafeRawPointer(px).assumingMemoryBound(to: Float.self), fg = UnsafeRawPointer(pg).assumingMemoryBound(to: Float.self)
                let fw = UnsafeMutableRawPointer(pdw).assumingMemoryBound(to: Float.self)
                for i in 0..<n { DirectConv.weightGradient(fx + i * inSize, fg + i * outSize, n: 1, outChannels: o, g, into: fw + i * wSize) }
            } else {
                let pointwise = g.kernelH == 1 && g.kernelW == 1 && g.stride == 1 && g.padding == 0
                let scratch = ScratchBuffers<T>(count: Parallel.workers(for: chunks), elements: pointwise ? 0 : g.patch * g.windows)
                Parallel.run(chunks: chunks) { chunk, worker in
                    for i in Parallel.chunkRange(chunk, of: n) {
                        let src: UnsafePointer<T>
                        if pointwise { src = UnsafePointer(px + i * inSize) } else { im2col(g, px + i * inSize, scratch[worker]); src = UnsafePointer(scratch[worker]) }
                        T.gemm(transA: false, transB: true, m: o, n: g.patch, k: g.windows, alpha: 1,
                               a: pg + i * outSize, lda: g.windows, b: src, ldb: g.windows, beta: 0, c: pdw + i * wSize, ldc: g.patch)
                    }
                }
            }
        }
        if let db { for i in 0..<n { channelSums(pg + i * outSize, n: 1, channels: o, inner: g.windows, into: db.pointer(T.self) + i * o) } }
    }

    /// Per-example weight and bias gradients of convTranspose2d: dw [n, Cin, Cout, KH, KW], db [n, Cout].
    static func perExampleTransposeGradients<T: TensorScalar>(_ x: Tensor, _ gy: Tensor, _ g: ConvGeometry,
                                                              dw: Tensor?, db: Tensor?, _: T.Type) {
        let n = x.shape[0], cin = x.shape[1]
        let px = x.pointer(T.self), pg = gy.pointer(T.self)
        let inSize = cin * g.windows, outSize = g.channels * g.height * g.width, wSize = cin * g.patch
        if let dw {
            let pdw = dw.pointer(T.self)
            let chunks = Parallel.chunkCount(n)
            let scratch = ScratchBuffers<T>(count: Parallel.workers(for: chunks), elements: g.patch * g.windows)
            Parallel.run(chunks: chunks) { chunk, worker in
                for i in Parallel.chunkRange(chunk, of: n) {
                    im2col(g, pg + i * outSize, scratch[worker])
                    T.gemm(transA: false, transB: true, m: cin, n: g.patch, k: g.windows, alpha: 1,
                           a: px + i * inSize, lda: g.windows, b: scratch[worker], ldb: g.windows, beta: 0, c: pdw + i * wSize, ldc: g.patch)
                }
            }
        }
        if let db {
            for i in 0..<n { channelSums(pg + i * outSize, n: 1, channels: g.channels, inner: g.height * g.width, into: db.pointer(T.self) + i * g.channels) }
        }
    }

    /// out = Σ_c parts[c] in chunk order; element ranges split across threads (each
    /// element's adds keep that order, so the split changes no bit).
    static func sumChunks<T: TensorScalar>(_ parts: UnsafeMutablePointer<T>, chunks: Int, size: Int, into out: UnsafeMutablePointer<T>) {
        Parallel.forRanges(size, cost: size * max(chunks, 1)) { r in
            (out + r.lowerBound).update(from: parts + r.lowerBound, count: r.count)
            for c in 1..<max(chunks, 1) { let p = parts + c * size; for i in r { out[i] += p[i] } }
        }
    }

    /// out[c] = Σ_{n, j} g[n, c, j]: for each image, the channel's values summed in order,
    /// then added to out[c] in image order. Channels split across threads, and eight channels
    /// go through the inner loop together (eight independent chains of adds instead of one
    /// latency-bound chain); neither changes any channel's order of adds.
    static func channelSums<T: TensorScalar>(_ g: UnsafePointer<T>, n: Int, channels: Int, inner: Int, into out: UnsafeMutablePointer<T>) {
        Parallel.forRanges(channels, cost: n * channels * inner) { range in
            var c = range.lowerBound
            while c + 8 <= range.upperBound {
                for q in 0..<8 { out[c + q] = 0 }
                for i in 0..<n {
                    let r = g + (i * channels + c) * inner
                    var s0: T = 0, s1: T = 0, s2: T = 0, s3: T = 0, s4: T = 0, s5: T = 0, s6: T = 0, s7: T = 0
                    for j in 0..<inner {
                        s0 += r[j]; s1 += r[inner + j]; s2 += r[2 * inner + j]; s3 += r[3 * inner + j]
                        s4 += r[4 * inner + j]; s5 += r[5 * inner + j]; s6 += r[6 * inner + j]; s7 += r[7 * inner + j]
                    }
                    out[c] += s0; out[c + 1] += s1; out[c + 2] += s2; out[c + 3] += s3
                    out[c + 4] += s4; out[c + 5] += s5; out[c + 6] += s6; out[c + 7] += s7
                }
                c += 8
            }
            for c in c..<range.upperBound {
                out[c] = 0
                for i in 0..<n {
                    let r = g + (i * channels + c) * inner
                    var s: T = 0
                    for j in 0..<inner { s += r[j] }
                    out[c] += s
                }
            }
        }
    }
}

/// 3×3 stride-1 padding-1 convolutions with an RGB-sized side (≤ 4 input or output
/// channels), computed directly (`ek_conv3x3_image`, `ek_conv3x3_weight_grad`) instead of
/// im2col + GEMM, whose im2col matrix would be 9× the image for a product of inner or outer
/// dimension 3. Float only; one image at a time, so batch invariance holds as on the GEMM path.
enum DirectConv3x3 {
    static func applies(_ g: ConvGeometry, outChannels o: Int) -> Bool {
        g.kernelH == 3 && g.kernelW == 3 && g.stride == 1 && g.padding == 1 && g.width % 16 == 0
            && min(g.channels, o) <= 4
    }

    static func forward(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, _ g: ConvGeometry, _ out: Tensor) {
        let n = x.shape[0], o = w.shape[0]
        let px = x.pointer(Float.self), pw = w.pointer(Float.self), py = out.pointer(Float.self)
        let pb: UnsafePointer<Float>? = bias.map { UnsafePointer($0.pointer(Float.self)) }
        let inSize = g.channels * g.height * g.width, outSize = o * g.windows
        let chunks = Parallel.chunkCount(n)
        let scratch = ScratchBuffers<Float>(count: Parallel.workers(for: chunks), elements: ek_conv3x3_scratch(g.channels, g.height, g.width))
        Parallel.run(chunks: chunks) { chunk, worker in
            for i in Parallel.chunkRange(chunk, of: n) {
                ek_conv3x3_image(px + i * inSize, g.channels, g.height, g.width, pw, o, pb, py + i * outSize, scratch[worker])
            }
        }
    }

    static func backward(_ x: Tensor, _ w: Tensor, _ gy: Tensor, _ g: ConvGeometry, dx: Tensor?, dw: Tensor?, db: Tensor?) {
        let n = x.shape[0], o = w.shape[0], c = g.channels
        let px = x.pointer(Float.self), pw = w.pointer(Float.self), pg = gy.pointer(Float.self)
        let inSize = c * g.height * g.width, outSize = o * g.windows, wSize = o * c * 9
        // dx is the forward map applied to dY with the weights transposed and flipped:
        // flipped[c][o][8 − k] = w[o][c][k]
        var flipped = [Float](repeating: 0, count: wSize)
        for oo in 0..<o { for cc in 0..<c { for k in 0..<9 { flipped[(cc * o + oo) * 9 + 8 - k] = pw[(oo * c + cc) * 9 + k] } } }
        let chunks = Parallel.chunkCount(n)
        let scratch = ScratchBuffers<Float>(count: Parallel.workers(for: chunks),
                                            elements: ek_conv3x3_scratch(max(c, o), g.height, g.width))
        // one partial dW per chunk, summed in chunk order (thread-count independent)
        let partial = dw == nil ? nil : ScratchBuffers<Float>(count: 1, elements: chunks * wSize)
        flipped.withUnsafeBufferPointer { pf in
            Parallel.run(chunks: chunks) { chunk, worker in
                if let partial { (partial[0] + chunk * wSize).update(repeating: 0, count: wSize) }
                for i in Parallel.chunkRange(chunk, of: n) {
                    if let partial {
                        ek_conv3x3_weight_grad(px + i * inSize, c, g.height, g.width, pg + i * outSize, o, partial[0] + chunk * wSize, scratch[worker])
                    }
                    if let dx {
                        ek_conv3x3_image(pg + i * outSize, o, g.height, g.width, pf.baseAddress!, c, nil,
                                         dx.pointer(Float.self) + i * inSize, scratch[worker])
                    }
                }
            }
        }
        if let dw, let partial { ConvKernels.sumChunks(partial[0], chunks: chunks, size: wSize, into: dw.pointer(Float.self)) }
        if let db { ConvKernels.channelSums(pg, n: n, channels: o, inner: g.windows, into: db.pointer(Float.self)) }
    }
}

/// 3×3 stride-1 padding-1 convolutions of any channel counts computed directly
/// (`conv_direct.c`: no im2col matrix, no packing of the image; weights packed once per
/// call), forward, input gradient (the forward with transposed, flipped weights) and
/// weight gradient. Float only, widths a multiple of 16 or 8 × even heights. Images are
/// computed one at a time, so an image's output never depends on its batch; weight
/// gradients sum fixed 4-image chunks, then chunks in order (any thread count, same bits).
/// `EIDETIC_CONV=gemm` in the environment turns it off (im2col + GEMM), for A/B benchmarks.
enum DirectConv {
    static let enabled: Bool = ProcessInfo.processInfo.environment["EIDETIC_CONV"] != "gemm"
    static var isa: Int32 { ek_sgemm_best_isa() }

    static func applies(_ g: ConvGeometry) -> Bool {
        enabled && g.kernelH == 3 && g.kernelW == 3 && g.stride == 1 && g.padding == 1 && ek_conv3x3d_applies(g.height, g.width) != 0
    }

    static func check(_ status: Int32) { precondition(status == 0, "direct conv: kernel refused its arguments (\(status))") }

    /// Weights packed for this CPU's tile: flipped = the input gradient's map.
    static func packed(_ w: UnsafePointer<Float>, outChannels o: Int, inChannels c: Int, flipped: Bool) -> [Float] {
        var p = [Float](repeating: 0, count: ek_conv3x3d_packed_floats(isa, o, c))
        p.withUnsafeMutableBufferPointer { ek_conv3x3d_pack(isa, w, o, c, flipped ? 1 : 0, $0.baseAddress!) }
        return p
    }

    static func forward(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, _ g: ConvGeometry, _ out: Tensor) {
        let n = x.shape[0], o = w.shape[0]
        let px = x.pointer(Float.self), py = out.pointer(Float.self)
        let pb: UnsafePointer<Float>? = bias.map { UnsafePointer($0.pointer(Float.self)) }
        if WinogradConv.chosen(channels: g.channels, outChannels: o, height: g.height, width: g.width, inputGradient: false) {
            WinogradConv.run(px, n: n, channels: g.channels, height: g.height, width: g.width, weight: w.pointer(Float.self),
                             outChannels: o, flipped: false, bias: pb, into: py)
            return
        }
        let inSize = g.channels * g.height * g.width, outSize = o * g.windows
        let weights = packed(w.pointer(Float.self), outChannels: o, inChannels: g.channels, flipped: false)
        let chunks = Parallel.chunkCount(n)
        let scratch = ScratchBuffers<Float>(count: Parallel.workers(for: chunks), elements: ek_conv3x3d_pad_floats(g.channels, g.height, g.width))
        weights.withUnsafeBufferPointer { pw in
            Parallel.run(chunks: chunks) { chunk, worker in
                for i in Parallel.chunkRange(chunk, of: n) {
                    check(ek_conv3x3d_image(isa, px + i * inSize, g.channels, g.height, g.width, pw.baseAddress!, o, pb,
                                            py + i * outSize, scratch[worker]))
                }
            }
        }
    }

    /// Images summed by one weight-gradient call: at least 4,096 windows, so each lane sum
    /// is reduced once per ≥ 256 vector steps (4 images at 32×32, 16 at 16×16, 64 at 8×8).
    /// Fixed by the shape, never by the thread count.
    static func weightGradientImages(_ g: ConvGeometry) -> Int {
        max(Parallel.imagesPerChunk, (4096 + g.windows - 1) / g.windows)
    }

    /// How dW's work is split: `images` per group (`weightGradientImages`), `groups` of them,
    /// and output channels in parts of `step` (a multiple of the kernels' 3-channel tile) so
    /// that ≥ 8 tasks share the threads. Fixed by the shape, never by the thread count.
    static func weightGradientSplit(n: Int, outChannels o: Int, _ g: ConvGeometry) -> (images: Int, groups: Int, step: Int, parts: Int) {
        let count = min(n, weightGradientImages(g)), groups = (n + count - 1) / count
        let per = max(1, (8 + groups - 1) / groups)
        let step = ((o + per - 1) / per + 2) / 3 * 3
        return (count, groups, step, (o + step - 1) / step)
    }

    /// dW: image groups (`weightGradientImages`), each split into output-channel parts when
    /// there are few groups, so that ≥ 8 tasks share the threads. Every dW element is one
    /// task's, in one order; group partials are summed in group order. Same bits for any
    /// thread count.
    static func weightGradient(_ px: UnsafePointer<Float>, _ pg: UnsafePointer<Float>, n: Int, outChannels o: Int, _ g: ConvGeometry,
                               into dw: UnsafeMutablePointer<Float>) {
        let c = g.channels, inSize = c * g.height * g.width, outSize = o * g.windows, wSize = o * c * 9
        let padSize = ek_conv3x3d_pad_floats(c, g.height, g.width)
        let (count, groups, step, parts) = weightGradientSplit(n: n, outChannels: o, g)
        let partial = ScratchBuffers<Float>(count: 1, elements: groups * wSize)
        // with several parts per group, the images are padded once, up front
        let shared = parts > 1 ? ScratchBuffers<Float>(count: 1, elements: n * padSize) : nil
        if let shared {
            Parallel.run(chunks: Parallel.chunkCount(n)) { chunk, _ in
                for i in Parallel.chunkRange(chunk, of: n) { ek_conv3x3d_pad(px + i * inSize, c, g.height, g.width, shared[0] + i * padSize) }
            }
        }
        let tasks = groups * parts
        let own = shared == nil ? ScratchBuffers<Float>(count: Parallel.workers(for: tasks), elements: count * padSize) : nil
        Parallel.run(chunks: tasks) { task, worker in
            let group = task / parts, part = task % parts
            let lo = group * count, images = min(n, lo + count) - lo
            let o0 = part * step, o1 = min(o, o0 + step)
            let padded: UnsafeMutablePointer<Float>
            if let shared { padded = shared[0] + lo * padSize } else {
                padded = own![worker]
                for q in 0..<images { ek_conv3x3d_pad(px + (lo + q) * inSize, c, g.height, g.width, padded + q * padSize) }
            }
            let d = partial[0] + group * wSize
            (d + o0 * c * 9).update(repeating: 0, count: (o1 - o0) * c * 9)
            check(ek_conv3x3d_weight_grad(isa, padded, images, c, g.height, g.width, pg + lo * outSize, o, o0, o1, d))
        }
        ConvKernels.sumChunks(partial[0], chunks: groups, size: wSize, into: dw)
    }

    static func backward(_ x: Tensor, _ w: Tensor, _ gy: Tensor, _ g: ConvGeometry, dx: Tensor?, dw: Tensor?, db: Tensor?) {
        let n = x.shape[0], o = w.shape[0], c = g.channels
        let px = x.pointer(Float.self), pg = gy.pointer(Float.self)
        let inSize = c * g.height * g.width, outSize = o * g.windows
        if let dw { weightGradient(px, pg, n: n, outChannels: o, g, into: dw.pointer(Float.self)) }
        if let dx, WinogradConv.chosen(channels: o, outChannels: c, height: g.height, width: g.width, inputGradient: true) {
            WinogradConv.run(pg, n: n, channels: o, height: g.height, width: g.width, weight: w.pointer(Float.self),
                             outChannels: c, flipped: true, bias: nil, into: dx.pointer(Float.self))
        } else if let dx {
            let flipped = packed(w.pointer(Float.self), outChannels: c, inChannels: o, flipped: true)
            let chunks = Parallel.chunkCount(n)
            let scratch = ScratchBuffers<Float>(count: Parallel.workers(for: chunks), elements: ek_conv3x3d_pad_floats(o, g.height, g.width))
            flipped.withUnsafeBufferPointer { pf in
                Parallel.run(chunks: chunks) { chunk, worker in
                    for i in Parallel.chunkRange(chunk, of: n) {
                        check(ek_conv3x3d_image(isa, pg + i * outSize, o, g.height, g.width, pf.baseAddress!, c, nil,
                                                dx.pointer(Float.self) + i * inSize, scratch[worker]))
                    }
                }
            }
        }
        if let db { ConvKernels.channelSums(pg, n: n, channels: o, inner: g.windows, into: db.pointer(Float.self)) }
    }
}

/// `DirectConv` with bf16 products and Float sums (`conv_bf16.c`), for convolutions run
/// under `ComputePrecision.bf16`: forward and input gradient pair input channels, the
/// weight gradient pairs adjacent windows; inputs, dY and weights are rounded to bf16 as
/// they are copied into the kernels' planes (weights once per call, from the Float master
/// copy). Layers with an RGB-sized side (`DirectConv3x3`) and widths the kernel does not
/// take stay Float. The same image and group structure as `DirectConv`, so an image's
/// output never depends on its batch and dW has the same bits for any thread count.
enum DirectConvBF16 {
    static var isa: Int32 { ek_conv3x3b_best_isa() }

    static func applies(_ g: ConvGeometry, outChannels o: Int) -> Bool {
        DirectConv.applies(g) && !DirectConv3x3.applies(g, outChannels: o) && ek_conv3x3b_applies(g.height, g.width) != 0
    }

    static func packed(_ w: UnsafePointer<Float>, outChannels o: Int, inChannels c: Int, flipped: Bool) -> [UInt32] {
        var p = [UInt32](repeating: 0, count: ek_conv3x3b_packed_words(isa, o, c))
        p.withUnsafeMutableBufferPointer { ek_conv3x3b_pack(isa, w, o, c, flipped ? 1 : 0, $0.baseAddress!) }
        return p
    }

    /// y[i] = conv(x[i]) (+ bias) for each of n images of c channels at the geometry's size.
    static func images(_ px: UnsafePointer<Float>, n: Int, channels c: Int, _ g: ConvGeometry, weights: [UInt32], outChannels o: Int,
                       bias: UnsafePointer<Float>?, into py: UnsafeMutablePointer<Float>) {
        let inSize = c * g.height * g.width, outSize = o * g.windows
        let chunks = Parallel.chunkCount(n)
        let scratch = ScratchBuffers<UInt32>(count: Parallel.workers(for: chunks), elements: ek_conv3x3b_pair_words(c, g.height, g.width))
        weights.withUnsafeBufferPointer { pw in
            Parallel.run(chunks: chunks) { chunk, worker in
                for i in Parallel.chunkRange(chunk, of: n) {
                    ek_conv3x3b_pad_pairs(px + i * inSize, c, g.height, g.width, scratch[worker])
                    DirectConv.check(ek_conv3x3b_image(isa, scratch[worker], c, g.height, g.width, pw.baseAddress!, o, bias, py + i * outSize))
                }
            }
        }
    }

    static func forward(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, _ g: ConvGeometry, _ out: Tensor) {
        let o = w.shape[0]
        let pb: UnsafePointer<Float>? = bias.map { UnsafePointer($0.pointer(Float.self)) }
        images(x.pointer(Float.self), n: x.shape[0], channels: g.channels, g,
               weights: packed(w.pointer(Float.self), outChannels: o, inChannels: g.channels, flipped: false),
               outChannels: o, bias: pb, into: out.pointer(Float.self))
    }

    /// dW as `DirectConv.weightGradient` splits it (image groups × output-channel parts, group
    /// partials summed in group order), on bf16 copies of the images and of dY made up front.
    static func weightGradient(_ px: UnsafePointer<Float>, _ pg: UnsafePointer<Float>, n: Int, outChannels o: Int, _ g: ConvGeometry,
                               into dw: UnsafeMutablePointer<Float>) {
        let c = g.channels, inSize = c * g.height * g.width, outSize = o * g.windows, wSize = o * c * 9
        let padSize = ek_conv3x3b_plane_halves(c, g.height, g.width)
        let (count, groups, step, parts) = DirectConv.weightGradientSplit(n: n, outChannels: o, g)
        let planes = ScratchBuffers<UInt16>(count: 1, elements: n * padSize)
        let gy16 = ScratchBuffers<UInt16>(count: 1, elements: n * outSize)
        Parallel.run(chunks: Parallel.chunkCount(n)) { chunk, _ in
            for i in Parallel.chunkRange(chunk, of: n) {
                ek_conv3x3b_pad_plain(px + i * inSize, c, g.height, g.width, planes[0] + i * padSize)
                ek_bf16_convert(pg + i * outSize, outSize, gy16[0] + i * outSize)
            }
        }
        let partial = ScratchBuffers<Float>(count: 1, elements: groups * wSize)
        Parallel.run(chunks: groups * parts) { task, _ in
            let group = task / parts, part = task % parts
            let lo = group * count, imagesInGroup = min(n, lo + count) - lo
            let o0 = part * step, o1 = min(o, o0 + step)
            let d = partial[0] + group * wSize
            (d + o0 * c * 9).update(repeating: 0, count: (o1 - o0) * c * 9)
            DirectConv.check(ek_conv3x3b_weight_grad(isa, planes[0] + lo * padSize, imagesInGroup, c, g.height, g.width,
                                                     gy16[0] + lo * outSize, o, o0, o1, d))
        }
        ConvKernels.sumChunks(partial[0], chunks: groups, size: wSize, into: dw)
    }

    static func backward(_ x: Tensor, _ w: Tensor, _ gy: Tensor, _ g: ConvGeometry, dx: Tensor?, dw: Tensor?, db: Tensor?) {
        let n = x.shape[0], o = w.shape[0], c = g.channels
        let pg = gy.pointer(Float.self)
        if let dw { weightGradient(x.pointer(Float.self), pg, n: n, outChannels: o, g, into: dw.pointer(Float.self)) }
        if let dx {
            images(pg, n: n, channels: o, g, weights: packed(w.pointer(Float.self), outChannels: c, inChannels: o, flipped: true),
                   outChannels: c, bias: nil, into: dx.pointer(Float.self))
        }
        if let db { ConvKernels.channelSums(pg, n: n, channels: o, inner: g.windows, into: db.pointer(Float.self)) }
    }
}

/// Winograd F(2×2, 3×3) (`winograd.c`; Lavin & Gray 2016) for the forward and the input
/// gradient of 3×3 stride-1 padding-1 Float convolutions: 16 GEMMs over the tiles of one
/// image, 2.25× fewer multiply-adds than `DirectConv`, with a rounding error a few times
/// larger (bounded against Double in `WinogradTests`). Used per layer shape where the
/// committed, measured table `ConvChoice.winograd` says it is faster; `EIDETIC_WINOGRAD=on`
/// or `off` overrides the table for every shape (tests and A/B benchmarks). The choice
/// depends on the shape only, never on timing at run time, so results are reproducible
/// and a resumed run computes what the interrupted one did.
enum WinogradConv {
    static let setting: String = {
        let v = ProcessInfo.processInfo.environment["EIDETIC_WINOGRAD"] ?? "table"
        guard ["on", "off", "table"].contains(v) else {
            FileHandle.standardError.write(Data("eidetic: EIDETIC_WINOGRAD=\(v) is not on, off or table; using the table\n".utf8))
            return "table"
        }
        return v
    }()

    /// Whether this map (c input channels → o output channels at h×w) runs as Winograd.
    static func chosen(channels c: Int, outChannels o: Int, height h: Int, width w: Int, inputGradient: Bool) -> Bool {
        guard ek_wino2_applies(h, w) != 0 else { return false }
        switch setting {
        case "on": return true
        case "off": return false
        default: return ConvChoice.winograd.contains(ConvChoice.Shape(c, o, h, w, inputGradient: inputGradient))
        }
    }

    /// Tiles per GEMM: images are grouped so the 16 GEMMs have at least this many rows.
    static let rowsPerCall = 512

    /// y = conv(x, w) + bias, x [n][c][h][w] → y [n][o][h][w], groups of images per call
    /// (each single-threaded, groups in parallel); `flipped` computes the input-gradient map
    /// of a forward weight [c][o][3][3] (then c is the forward's output channels). An image's
    /// output does not depend on its group, so not on the batch or the thread count.
    static func run(_ px: UnsafePointer<Float>, n: Int, channels c: Int, height h: Int, width w: Int, weight: UnsafePointer<Float>,
                    outChannels o: Int, flipped: Bool, bias: UnsafePointer<Float>?, into py: UnsafeMutablePointer<Float>) {
        var u = [Float](repeating: 0, count: ek_wino2_weight_floats(o, c))
        u.withUnsafeMutableBufferPointer { ek_wino2_weights(weight, o, c, flipped ? 1 : 0, $0.baseAddress!) }
        let isa = DirectConv.isa
        let tiles = (h / 2) * (w / 2), per = max(1, (rowsPerCall + tiles - 1) / tiles)
        let calls = (n + per - 1) / per
        let scratch = ScratchBuffers<Float>(count: Parallel.workers(for: calls), elements: ek_wino2_scratch_floats(per, c, o, h, w))
        let inSize = c * h * w, outSize = o * h * w
        u.withUnsafeBufferPointer { pu in
            Parallel.run(chunks: calls) { call, worker in
                let lo = call * per, images = min(n, lo + per) - lo
                let rc = ek_wino2_images(isa, px + lo * inSize, images, c, h, w, pu.baseAddress!, o, bias, py + lo * outSize, scratch[worker])
                precondition(rc == 0, "winograd conv: kernel refused its arguments (\(rc))")
            }
        }
    }
}

/// Which kernel runs each 3×3 stride-1 layer shape: a committed table of measurements
/// (forward and input gradient, Winograd vs direct), never decided by timing at run time.
enum ConvChoice {
    struct Shape: Hashable {
        var channels, outChannels, height, width: Int
        var inputGradient: Bool
        init(_ c: Int, _ o: Int, _ h: Int, _ w: Int, inputGradient: Bool) {
            channels = c; outChannels = o; height = h; width = w; self.inputGradient = inputGradient
        }
    }
    /// Shapes where Winograd measured faster: `EIDETIC_WINOGRAD=on|off eidetic bench ops
    /// --shapes 64:C:O:HW --no-sgemm`, three alternating rounds on the 2-core Zen 5 VM
    /// (docs/ARCHITECTURE.md, "Winograd"). 256→256 at 16×16: forward 39.0–40.1 vs 46.6–47.4 ms,
    /// forward + backward 1.14× (its input gradient is the 256→256 map too). At the lab
    /// U-Nets' shapes (32–128 channels, 128–256 → 128 after concatenation) the direct kernel
    /// was as fast or faster: the transforms take 60 % of Winograd's time at 32 channels.
    static let winograd: Set<Shape> = [
        Shape(256, 256, 16, 16, inputGradient: false), Shape(256, 256, 16, 16, inputGradient: true),
    ]
}

extension Tensor {
    /// 2-D cross-correlation (what deep-learning libraries call convolution).
    /// - Parameters: x [N, C, H, W]; weight [O, C, KH, KW]; bias [O] or nil.
    /// - Returns: [N, O, OH, OW] with OH = (H + 2·padding − KH) / stride + 1.
    /// - Complexity: 2·N·O·C·KH·KW·OH·OW flops.
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0) -> Tensor {
        precondition(x.rank == 4 && weight.rank == 4, "conv2d: input \(x.shape) and weight \(weight.shape) must be rank 4 (NCHW, OIHW)")
        precondition(x.shape[1] == weight.shape[1], "conv2d: input \(x.shape) has \(x.shape[1]) channels, weight \(weight.shape) expects \(weight.shape[1])")
        if let bias { precondition(bias.shape == [weight.shape[0]], "conv2d: bias \(bias.shape) must be [\(weight.shape[0])] for weight \(weight.shape)") }
        checkSameDType(x, weight, "conv2d")
        var g = ConvGeometry(channels: x.shape[1], height: x.shape[2], width: x.shape[3],
                             kernelH: weight.shape[2], kernelW: weight.shape[3], stride: stride, padding: padding)
        g.bf16Products = ComputePrecision.current == .bf16 && x.dtype == .float32 && DirectConvBF16.applies(g, outChannels: weight.shape[0])
        let out = Tensor(uninitialized: [x.shape[0], weight.shape[0], g.outH, g.outW], dtype: x.dtype)
        let k0 = Profiler.enabled ? Profiler.now() : 0
        dispatch(x.dtype, { ConvKernels.forward(x, weight, bias, g, out, Float.self) },
                          { ConvKernels.forward(x, weight, bias, g, out, Double.self) })
        if Profiler.enabled && Profiler.detailed {
            let saved = Profiler.last
            Profiler.charge("kernel conv \(g.channels)→\(weight.shape[0])@\(g.height)", since: k0)
            Profiler.last = saved
        }
        return record(.conv2d(g), bias.map { [x, weight, $0] } ?? [x, weight], out)
    }

    /// Transposed 2-D convolution (the gradient of conv2d with respect to its input).
    /// - Parameters: x [N, Cin, H, W]; weight [Cin, Cout, KH, KW]; bias [Cout] or nil.
    /// - Returns: [N, Cout, (H−1)·stride − 2·padding + KH, (W−1)·stride − 2·padding + KW].
    public static func convTranspose2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0) -> Tensor {
        precondition(x.rank == 4 && weight.rank == 4, "convTranspose2d: input \(x.shape) and weight \(weight.shape) must be rank 4")
        precondition(x.shape[1] == weight.shape[0], "convTranspose2d: input \(x.shape) has \(x.shape[1]) channels, weight \(weight.shape) expects \(weight.shape[0])")
        if let bias { precondition(bias.shape == [weight.shape[1]], "convTranspose2d: bias \(bias.shape) must be [\(weight.shape[1])]") }
        checkSameDType(x, weight, "convTranspose2d")
        let (kh, kw) = (weight.shape[2], weight.shape[3])
        let oh = (x.shape[2] - 1) * stride - 2 * padding + kh, ow = (x.shape[3] - 1) * stride - 2 * padding + kw
        precondition(oh > 0 && ow > 0, "convTranspose2d: empty output for input \(x.shape), kernel \(kh)×\(kw), stride \(stride), padding \(padding)")
        let g = ConvGeometry(channels: weight.shape[1], height: oh, width: ow, kernelH: kh, kernelW: kw, stride: stride, padding: padding)
        precondition(g.outH == x.shape[2] && g.outW == x.shape[3], "convTranspose2d: inconsistent geometry for \(x.shape)")
        let out = Tensor(uninitialized: [x.shape[0], g.channels, oh, ow], dtype: x.dtype)
        dispatch(x.dtype, { ConvKernels.transposeForward(x, weight, bias, g, out, Float.self) },
                          { ConvKernels.transposeForward(x, weight, bias, g, out, Double.self) })
        return record(.convTranspose2d(g), bias.map { [x, weight, $0] } ?? [x, weight], out)
    }

    /// Nearest-neighbour upsampling by an integer factor: [N, C, H, W] → [N, C, H·f, W·f].
    public func upsampledNearest(factor f: Int) -> Tensor {
        precondition(rank == 4 && f >= 1, "upsample: needs NCHW input and factor ≥ 1, got \(shape), \(f)")
        let (nc, h, w) = (shape[0] * shape[1], shape[2], shape[3])
        let out = Tensor(uninitialized: [shape[0], shape[1], h * f, w * f], dtype: dtype)
        func run<T: TensorScalar>(_: T.Type) {
            let x = pointer(T.self), y = out.pointer(T.self)
            Parallel.forRanges(nc, cost: out.count) { planes in
                for p in planes { for i in 0..<h {
                    let src = x + (p * h + i) * w
                    let row = y + (p * h * f + i * f) * w * f
                    if f == 2 { for j in 0..<w { let v = src[j]; row[2 * j] = v; row[2 * j + 1] = v } }
                    else { for j in 0..<w { let v = src[j]; for r in 0..<f { row[j * f + r] = v } } }
                    for r in 1..<Swift.max(f, 1) { (row + r * w * f).update(from: row, count: w * f) }
                } }
            }
        }
        dispatch(dtype, { run(Float.self) }, { run(Double.self) })
        return record(.upsample(f), [self], out)
    }

    /// k×k average pooling with stride k: [N, C, H, W] → [N, C, H/k, W/k] (H, W divisible by k).
    public func avgPooled(kernel k: Int) -> Tensor {
        precondition(rank == 4 && k >= 1 && shape[2] % k == 0 && shape[3] % k == 0,
                     "avgPool: shape \(shape) must be NCHW with H, W divisible by \(k)")
        let (nc, h, w) = (shape[0] * shape[1], shape[2], shape[3])
        let (oh, ow) = (h / k, w / k)
        let out = Tensor(uninitialized: [shape[0], shape[1], oh, ow], dtype: dtype)
        func run<T: TensorScalar>(_: T.Type) {
            let x = pointer(T.self), y = out.pointer(T.self), scale = 1 / T(k * k)
            Parallel.forRanges(nc, cost: count) { planes in
                for p in planes { for i in 0..<oh {
                    if k == 2 {
                        // the general loop's order of adds: (r0[2j] + r0[2j+1]) + r1[2j], + r1[2j+1]
                        let r0 = x + (p * h + i * 2) * w, r1 = r0 + w, d = y + (p * oh + i) * ow
                        for j in 0..<ow {
                            var s: T = 0
                            s += r0[2 * j]; s += r0[2 * j + 1]; s += r1[2 * j]; s += r1[2 * j + 1]
                            d[j] = s * scale
                        }
                        continue
                    }
                    for j in 0..<ow {
                        var s: T = 0
                        for a in 0..<k { let r = x + (p * h + i * k + a) * w + j * k; for b in 0..<k { s += r[b] } }
                        y[(p * oh + i) * ow + j] = s * scale
                    }
                } }
            }
        }
        dispatch(dtype, { run(Float.self) }, { run(Double.self) })
        return record(.avgPool(k), [self], out)
    }
}
