import CKernels

/// Group normalization (Wu & He, 2018), batch normalization in training mode
/// (Ioffe & Szegedy, 2015), and embedding lookup.
///
/// Both norms share one backward formula, per normalisation set S with x̂ = (x − μ)·r:
///   dx = r · (dx̂ − mean_S(dx̂) − x̂ · mean_S(dx̂ · x̂)),  dx̂ = dy · γ.

enum NormKernels {
    /// GroupNorm over [N, C, L] with G groups: statistics per (n, g) over (C/G)·L values.
    /// x + shift[n, c] broadcast over the spatial axes, each value one addition (what the
    /// shifted GroupNorm normalizes; its backward rebuilds it).
    static func shifted(_ x: Tensor, _ shift: Tensor) -> Tensor {
        let (n, c) = (x.shape[0], x.shape[1]); let l = x.count / Swift.max(n * c, 1)
        let out = Tensor(uninitialized: x.shape, dtype: x.dtype)
        func run<T: TensorScalar>(_: T.Type) {
            let px = x.pointer(T.self), ps = shift.pointer(T.self), py = out.pointer(T.self)
            Parallel.forRanges(n * c, cost: x.count) { rows in
                for r in rows { let s = ps[r]; for j in 0..<l { py[r * l + j] = px[r * l + j] + s } }
            }
        }
        dispatch(x.dtype, { run(Float.self) }, { run(Double.self) })
        return out
    }

    static func groupForward<T: TensorScalar>(_ x: Tensor, _ gamma: Tensor?, _ beta: Tensor?, groups G: Int, eps: Double, silu: Bool,
                                              _ out: Tensor, _ mean: Tensor, _ rstd: Tensor, shift: Tensor? = nil, _: T.Type) {
        let (n, c) = (x.shape[0], x.shape[1]); let l = x.count / (n * c); let cg = c / G
        let pm = mean.pointer(T.self), pr = rstd.pointer(T.self)
        let pgam = gamma?.pointer(T.self), pbet = beta?.pointer(T.self)
        if T.self == Float.self {
            // groupnorm.c: Double statistics in fixed lanes, vectorized; the same bits on any split
            let px = x.pointer(T.self), py = out.pointer(T.self)
            let f = { (p: UnsafeMutablePointer<T>?) in p.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: Float.self) } }
            let psh = shift?.pointer(T.self)
            Parallel.forRanges(n, cost: x.count * 6) { range in
                let row = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(l, 1))
                defer { row.deallocate() }
                for i in range {
                    ek_groupnorm_forward_f32(f(px + i * c * l), c, l, G, f(pgam), f(pbet), f(psh.map { $0 + i * c }), eps, silu ? 1 : 0,
                                             f(py + i * c * l), f(pm + i * G), f(pr + i * G), row)
                }
            }
            return
        }
        // Double (reference and tests): the shifted input materialized
        let x = shift.map { shifted(x, $0) } ?? x
        let px = x.pointer(T.self), py = out.pointer(T.self)
        Parallel.forRanges(n, cost: x.count * 6) { range in
        var scale = [T](repeating: 0, count: cg), shift = [T](repeating: 0, count: cg)
        for i in range { for g in 0..<G {
            let base = (i * c + g * cg) * l, m = cg * l
            var s: Double = 0, ss: Double = 0
            for j in 0..<m { let v = Double(px[base + j]); s += v }
            let mu = s / Double(m)
            for j in 0..<m { let d = Double(px[base + j]) - mu; ss += d * d }
            let r = 1 / (ss / Double(m) + eps).squareRoot()
            pm[i * G + g] = T(mu); pr[i * G + g] = T(r)
            for k in 0..<cg {
                let ch = g * cg + k
                let a = T(r) * (pgam?[ch] ?? 1)
                scale[k] = a; shift[k] = (pbet?[ch] ?? 0) - T(mu) * a
            }
            if T.self == Float.self {
                scale.withUnsafeBufferPointer { sc in shift.withUnsafeBufferPointer { sh in
                    ek_channel_affine(UnsafeRawPointer(px + base).assumingMemoryBound(to: Float.self),
                                      UnsafeRawPointer(sc.baseAddress!).assumingMemoryBound(to: Float.self),
                                      UnsafeRawPointer(sh.baseAddress!).assumingMemoryBound(to: Float.self),
                                      UnsafeMutableRawPointer(py + base).assumingMemoryBound(to: Float.self), 1, cg, l, silu ? 1 : 0)
                } }
            } else {
                for k in 0..<cg {
                    let a = scale[k], b = shift[k]; let o = base + k * l
                    for j in 0..<l { let v = px[o + j] * a + b; py[o + j] = silu ? v / (1 + T.exp(-v)) : v }
                }
            }
        } }
        }
    }

    /// With `silu`, `gy` is the gradient of SiLU(GN(x)): the pre-activation gradient
    /// dy·SiLU′(γx̂ + β) is rebuilt block by block (never stored) and fed to the GN rule.
    static func groupBackward<T: TensorScalar>(_ x: Tensor, _ gamma: Tensor?, _ beta: Tensor?, _ gy: Tensor, groups G: Int, silu: Bool,
                                               _ mean: Tensor, _ rstd: Tensor,
                                               dx: Tensor?, dgamma: Tensor?, dbeta: Tensor?,
                                               perExampleGamma: Tensor? = nil, perExampleBeta: Tensor? = nil, _: T.Type) {
        let (n, c) = (x.shape[0], x.shape[1]); let l = x.count / (n * c); let cg = c / G
        let px = x.pointer(T.self), pm = mean.pointer(T.self), pr = rstd.pointer(T.self)
        let pgam = gamma?.pointer(T.self), pbet = beta?.pointer(T.self)
        // pre-activation gradient, computed per image into this buffer when fused
        let pre = silu && T.self != Float.self ? Tensor(uninitialized: gy.shape, dtype: gy.dtype) : gy
        let pg = UnsafePointer(pre.pointer(T.self))
        let pdg = dgamma?.pointer(T.self), pdb = dbeta?.pointer(T.self)
        for ch in 0..<c { pdg?[ch] = 0; pdb?[ch] = 0 }
        // per-image channel sums (summed over images afterwards, in image order)
        var perImage = [T](repeating: 0, count: n * c * 2)
        perImage.withUnsafeMutableBufferPointer { sums in
        let ps = sums.baseAddress!
        if T.self == Float.self {
            let f = { (p: UnsafeMutablePointer<T>?) in p.map { UnsafeMutableRawPointer($0).assumingMemoryBound(to: Float.self) } }
            let pgy = gy.pointer(T.self), pdx = dx?.pointer(T.self)
            Parallel.forRanges(n, cost: x.count * 8) { range in
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(cg * l, 1))
                defer { scratch.deallocate() }
                for i in range {
                    ek_groupnorm_backward_f32(f(px + i * c * l), f(pgy + i * c * l), c, l, G, f(pgam), f(pbet), f(pm + i * G), f(pr + i * G),
                                              silu ? 1 : 0, scratch, f(pdx.map { $0 + i * c * l }), f(ps + i * c * 2))
                }
            }
        } else {
        Parallel.forRanges(n, cost: x.count * 8) { range in
        if silu {
            let src = gy.pointer(T.self), dst = pre.pointer(T.self)
            for i in range { for g in 0..<G {
                let mu = pm[i * G + g], r = pr[i * G + g]
                for k in 0..<cg {
                    let ch = g * cg + k, o = (i * c + ch) * l, ga = pgam?[ch] ?? 1, be = pbet?[ch] ?? 0
                    let a = r * ga, b = be - mu * a
                    for j in 0..<l { dst[o + j] = px[o + j] * a + b }          // pre-activation v
                    T.vsiluBackward(dst + o, src + o, dst + o, l)                // dy · SiLU′(v), vectorised
                }
            } }
        }
        for i in range { for g in 0..<G {
            let mu = pm[i * G + g], r = pr[i * G + g]
            var sumD: T = 0, sumDX: T = 0
            for k in 0..<cg {
                let ch = g * cg + k, o = (i * c + ch) * l, ga = pgam?[ch] ?? 1
                var sg: T = 0, sgx: T = 0
                for j in 0..<l { let xh = (px[o + j] - mu) * r; sg += pg[o + j]; sgx += pg[o + j] * xh }
                ps[(i * c + ch) * 2] = sgx; ps[(i * c + ch) * 2 + 1] = sg
                sumD += sg * ga; sumDX += sgx * ga
            }
            guard let dx else { continue }
            let pdx = dx.pointer(T.self), m = T(cg * l)
            let a = sumD / m, b = sumDX / m
            for k in 0..<cg {
                let ch = g * cg + k, o = (i * c + ch) * l, ga = pgam?[ch] ?? 1
                for j in 0..<l { let xh = (px[o + j] - mu) * r; pdx[o + j] = r * (pg[o + j] * ga - a - xh * b) }
            }
        } }
        }
        }
        for i in 0..<n { for ch in 0..<c { pdg?[ch] += ps[(i * c + ch) * 2]; pdb?[ch] += ps[(i * c + ch) * 2 + 1] } }
        // DP-SGD: each image's own affine gradients, [n, C]
        if let perExampleGamma { let q = perExampleGamma.pointer(T.self); for k in 0..<n * c { q[k] = ps[k * 2] } }
        if let perExampleBeta { let q = perExampleBeta.pointer(T.self); for k in 0..<n * c { q[k] = ps[k * 2 + 1] } }
        }
    }

    /// Σ_{j < count} f(j) in four interleaved partial sums, combined (a + b) + (c + d): a fixed
    /// order that does not wait on one addition chain.
    @inline(__always) static func laneSum<S: FloatingPoint>(_ count: Int, _ f: (Int) -> S) -> S {
        var a: S = 0, b: S = 0, c: S = 0, d: S = 0
        var j = 0
        while j + 4 <= count { a += f(j); b += f(j + 1); c += f(j + 2); d += f(j + 3); j += 4 }
        while j < count { a += f(j); j += 1 }
        return (a + b) + (c + d)
    }

    /// BatchNorm (training): statistics per channel over N and L, then `activation`.
    static func batchForward<T: TensorScalar>(_ x: Tensor, _ gamma: Tensor?, _ beta: Tensor?, eps: Double, activation: NormActivation,
                                              _ out: Tensor, _ mean: Tensor, _ rstd: Tensor, _ variance: Tensor, _: T.Type) {
        let (n, c) = (x.shape[0], x.shape[1]); let l = x.count / (n * c); let m = Double(n * l)
        let px = x.pointer(T.self), py = out.pointer(T.self)
        if T.self == Float.self {
            // channels are independent: split them across threads (each computed whole by one)
            let f = { (t: Tensor?) in t.map { UnsafePointer($0.pointer(Float.self)) } }
            Parallel.forRanges(c, cost: 16 * x.count) { channels in
                ek_batchnorm_forward_f32(f(x)!, n, c, l, channels.lowerBound, channels.upperBound, f(gamma), f(beta), eps,
                                         activation.code, Float(activation.slope), out.pointer(Float.self), mean.pointer(Float.self), rstd.pointer(Float.self), variance.pointer(Float.self))
            }
            return
        }
        // channels are independent: split them across threads (each computed whole by one)
        Parallel.forRanges(c, cost: 3 * x.count) { channels in for ch in channels {
            var s: Double = 0, ss: Double = 0
            for i in 0..<n { let o = (i * c + ch) * l; s += laneSum(l) { Double(px[o + $0]) } }
            let mu = s / m
            for i in 0..<n { let o = (i * c + ch) * l; ss += laneSum(l) { let d = Double(px[o + $0]) - mu; return d * d } }
            let v = ss / m, r = 1 / (v + eps).squareRoot()
            mean.pointer(T.self)[ch] = T(mu); rstd.pointer(T.self)[ch] = T(r); variance.pointer(T.self)[ch] = T(v)
            let a = T(r) * (gamma?.pointer(T.self)[ch] ?? 1), b = (beta?.pointer(T.self)[ch] ?? 0) - T(mu) * a
            for i in 0..<n { let o = (i * c + ch) * l; for j in 0..<l { py[o + j] = activation.apply(px[o + j] * a + b) } }
        } }
    }

    /// The gradients of `batchForward`; `gy` is the gradient of the activation's output.
    static func batchBackward<T: TensorScalar>(_ x: Tensor, _ gamma: Tensor?, _ beta: Tensor?, activation: NormActivation, _ gy: Tensor,
                                               _ mean: Tensor, _ rstd: Tensor, dx: Tensor?, dgamma: Tensor?, dbeta: Tensor?, _: T.Type) {
        let (n, c) = (x.shape[0], x.shape[1]); let l = x.count / (n * c); let m = T(n * l)
        let px = x.pointer(T.self), pg = gy.pointer(T.self)
        if T.self == Float.self {
            let f = { (t: Tensor?) in t.map { UnsafePointer($0.pointer(Float.self)) } }
            Parallel.forRanges(c, cost: 16 * x.count) { channels in
                ek_batchnorm_backward_f32(f(x)!, f(gy)!, n, c, l, channels.lowerBound, channels.upperBound, f(gamma), f(beta), f(mean)!, f(rstd)!,
                                          activation.code, Float(activation.slope), dx?.pointer(Float.self), dgamma?.pointer(Float.self), dbeta?.pointer(Float.self))
            }
            return
        }
        Parallel.forRanges(c, cost: 4 * x.count) { channels in for ch in channels {
            let mu = mean.pointer(T.self)[ch], r = rstd.pointer(T.self)[ch], ga = gamma?.pointer(T.self)[ch] ?? 1
            // dy through the activation, at the forward's pre-activation value (recomputed)
            let fa = r * ga, fb = (beta?.pointer(T.self)[ch] ?? 0) - mu * fa
            @inline(__always) func g(_ k: Int) -> T { activation.gradient(at: px[k] * fa + fb, pg[k]) }
            var sg: T = 0, sgx: T = 0
            for i in 0..<n {
                let o = (i * c + ch) * l
                sg += laneSum(l) { g(o + $0) }
                sgx += laneSum(l) { g(o + $0) * (px[o + $0] - mu) * r }
            }
            dgamma?.pointer(T.self)[ch] = sgx; dbeta?.pointer(T.self)[ch] = sg
            guard let dx else { continue }
            let pdx = dx.pointer(T.self), a = sg * ga / m, b = sgx * ga / m
            for i in 0..<n { let o = (i * c + ch) * l; for j in 0..<l {
                let xh = (px[o + j] - mu) * r
                pdx[o + j] = r * (g(o + j) * ga - a - xh * b)
            } }
        } }
    }
}

extension Tensor {
    /// Group normalization of x [N, C, …] with `groups` groups, then the per-channel affine
    /// γ·x̂ + β when weight/bias ([C]) are given.
    /// - Parameter silu: apply SiLU to the result in the same pass (GN → SiLU is the
    ///   U-Net's most common pair; fusing saves a read and write of the activation).
    /// - Parameter shift: [N, C], added to x per image and channel before normalizing, without
    ///   writing x + shift (the U-Net's time-embedding add fused into the GroupNorm that
    ///   follows it): the same values as `groupNorm(x + shift.reshaped([N, C, 1, …]))`, one
    ///   pass over memory fewer.
    public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor? = nil, bias: Tensor? = nil, eps: Double = 1e-5, silu: Bool = false,
                                 shift: Tensor? = nil) -> Tensor {
        precondition(x.rank >= 2 && groups >= 1 && x.shape[1] % groups == 0,
                     "groupNorm: \(x.shape[safe: 1] ?? 0) channels of \(x.shape) not divisible into \(groups) groups")
        for p in [weight, bias].compactMap({ $0 }) { precondition(p.shape == [x.shape[1]], "groupNorm: affine shape \(p.shape) must be [\(x.shape[1])]") }
        precondition((weight == nil) == (bias == nil), "groupNorm: give both weight and bias or neither")
        if let shift {
            precondition(shift.shape == [x.shape[0], x.shape[1]], "groupNorm: shift \(shift.shape) must be [\(x.shape[0]), \(x.shape[1])]")
            checkSameDType(x, shift, "groupNorm")
        }
        let out = Tensor(uninitialized: x.shape, dtype: x.dtype)
        let mean = Tensor(uninitialized: [x.shape[0], groups], dtype: x.dtype), rstd = Tensor(uninitialized: [x.shape[0], groups], dtype: x.dtype)
        dispatch(x.dtype, { NormKernels.groupForward(x, weight, bias, groups: groups, eps: eps, silu: silu, out, mean, rstd, shift: shift, Float.self) },
                          { NormKernels.groupForward(x, weight, bias, groups: groups, eps: eps, silu: silu, out, mean, rstd, shift: shift, Double.self) })
        let affine = weight.map { [$0, bias!] } ?? []
        if let shift { return record(.groupNormShifted(groups: groups, silu: silu), [x, shift] + affine, out, saved: [mean, rstd]) }
        return record(.groupNorm(groups: groups, silu: silu), [x] + affine, out, saved: [mean, rstd])
    }

    /// Batch normalization with batch statistics (training mode) over N and the spatial
    /// axes of x [N, C, …]. Returns the output and the batch mean and (biased) variance,
    /// for updating running statistics.
    /// - Parameter activation: applied to the result in the same pass (DCGAN's BN → ReLU and
    ///   BN → LeakyReLU; each value exactly as the separate activation op gives it), saving a
    ///   write and read of the tensor forward and backward.
    public static func batchNormTraining(_ x: Tensor, weight: Tensor? = nil, bias: Tensor? = nil, eps: Double = 1e-5,
                                         activation: NormActivation = .none)
        -> (output: Tensor, mean: Tensor, variance: Tensor)
    {
        precondition(x.rank >= 2, "batchNorm: input \(x.shape) must be [N, C, …]")
        precondition(x.count / x.shape[1] > 1, "batchNorm: needs more than one value per channel, input \(x.shape)")
        for p in [weight, bias].compactMap({ $0 }) { precondition(p.shape == [x.shape[1]], "batchNorm: affine shape \(p.shape) must be [\(x.shape[1])]") }
        precondition((weight == nil) == (bias == nil), "batchNorm: give both weight and bias or neither")
        let c = x.shape[1]
        let out = Tensor(uninitialized: x.shape, dtype: x.dtype)
        let mean = Tensor(uninitialized: [c], dtype: x.dtype), rstd = Tensor(uninitialized: [c], dtype: x.dtype)
        let variance = Tensor(uninitialized: [c], dtype: x.dtype)
        dispatch(x.dtype, { NormKernels.batchForward(x, weight, bias, eps: eps, activation: activation, out, mean, rstd, variance, Float.self) },
                          { NormKernels.batchForward(x, weight, bias, eps: eps, activation: activation, out, mean, rstd, variance, Double.self) })
        let inputs = weight.map { [x, $0, bias!] } ?? [x]
        return (record(.batchNorm(activation), inputs, out, saved: [mean, rstd]), mean, variance)
    }

    /// Rows of `weight` [V, D] picked by `indices`: result [indices.count, D].
    public static func embedding(_ weight: Tensor, indices: [Int]) -> Tensor {
        precondition(weight.rank == 2, "embedding: weight \(weight.shape) must be [vocabulary, dim]")
        let (v, d) = (weight.shape[0], weight.shape[1])
        for i in indices { precondition(i >= 0 && i < v, "embedding: index \(i) out of range for vocabulary \(v)") }
        let out = Tensor(uninitialized: [indices.count, d], dtype: weight.dtype)
        let bytes = d * weight.dtype.size
        for (r, i) in indices.enumerated() { (out.rawPointer + r * bytes).copyMemory(from: weight.rawPointer + i * bytes, byteCount: bytes) }
        return record(.embedding(indices: indices), [weight], out)
    }

    /// Adjoint of `embedding`: scatter-adds rows of g [K, D] into a [vocabulary, D] tensor.
    static func embeddingBackward(_ g: Tensor, indices: [Int], vocabulary: Int) -> Tensor {
        let d = g.shape[1]
        let out = Tensor.zeros([vocabulary, d], dtype: g.dtype)
        func run<T: TensorScalar>(_: T.Type) {
            let pg = g.pointer(T.self), po = out.pointer(T.self)
            for (r, i) in indices.enumerated() { for j in 0..<d { po[i * d + j] += pg[r * d + j] } }
        }
        dispatch(g.dtype, { run(Float.self) }, { run(Double.self) })
        return out
    }
}

extension Array {
    subscript(safe i: Int) -> Element? { i >= 0 && i < count ? self[i] : nil }
}

/// An activation fused into a normalization's pass (`batchNormTraining(activation:)`).
public enum NormActivation: Equatable, Sendable {
    case none, relu
    case leakyRelu(slope: Double)

    /// The C kernels' code: 0 none, 1 ReLU, 2 LeakyReLU.
    var code: Int32 { switch self { case .none: 0; case .relu: 1; case .leakyRelu: 2 } }
    var slope: Double { if case .leakyRelu(let s) = self { return s }; return 0 }

    /// act(v), as `relu()` / `leakyRelu(slope:)` compute it.
    @inline(__always) func apply<T: TensorScalar>(_ v: T) -> T {
        switch self {
        case .none: return v
        case .relu: return v > 0 ? v : 0
        case .leakyRelu(let s): return v > 0 ? v : T(s) * v
        }
    }

    /// g · act'(v), as the activation ops' gradients compute it.
    @inline(__always) func gradient<T: TensorScalar>(at v: T, _ g: T) -> T {
        switch self {
        case .none: return g
        case .relu: return v > 0 ? g : 0
        case .leakyRelu(let s): return v > 0 ? g : T(s) * g
        }
    }
}

extension Tensor {
    /// The activation as its own op (`relu()`, `leakyRelu(slope:)`), or self for `.none`.
    public func activated(_ a: NormActivation) -> Tensor {
        switch a {
        case .none: return self
        case .relu: return relu()
        case .leakyRelu(let s): return leakyRelu(slope: s)
        }
    }
}

extension Tensor {
    /// act(((x − m[c]) · s[c]) · w[c] + b[c]) per channel c of x [N, C, …], in one pass and
    /// with exactly these operations in this order (BatchNorm in evaluation mode: running
    /// mean m, s = (running variance + ε)^−½, then the affine, then the activation). Not
    /// differentiable: for use without a tape (sampling, evaluation).
    public static func channelAffine(_ x: Tensor, subtract m: Tensor, scale s: Tensor, weight w: Tensor?, bias b: Tensor?,
                                     activation: NormActivation = .none) -> Tensor {
        precondition(Tape.current == nil, "channelAffine is not differentiable; use it without a tape")
        let (n, c) = (x.shape[0], x.shape[1]); let l = x.count / Swift.max(n * c, 1)
        precondition([m, s].allSatisfy { $0.shape == [c] } && [w, b].allSatisfy { $0 == nil || $0!.shape == [c] } && (w == nil) == (b == nil),
                     "channelAffine: per-channel tensors must be [\(c)]")
        let out = Tensor(uninitialized: x.shape, dtype: x.dtype)
        func run<T: TensorScalar>(_: T.Type) {
            let px = x.pointer(T.self), py = out.pointer(T.self), pm = m.pointer(T.self), ps = s.pointer(T.self)
            let pw = w?.pointer(T.self), pb = b?.pointer(T.self)
            Parallel.forRanges(n * c, cost: 4 * x.count) { rows in
                for r in rows {
                    let ch = r % c, o = r * l
                    let (mu, sc) = (pm[ch], ps[ch])
                    if let pw, let pb {
                        let (wc, bc) = (pw[ch], pb[ch])
                        for j in 0..<l { py[o + j] = activation.apply((px[o + j] - mu) * sc * wc + bc) }
                    } else {
                        for j in 0..<l { py[o + j] = activation.apply((px[o + j] - mu) * sc) }
                    }
                }
            }
        }
        dispatch(x.dtype, { run(Float.self) }, { run(Double.self) })
        return out
    }
}
