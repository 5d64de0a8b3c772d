import Foundation

/// Pointwise functions of one tensor. The backward-only cases (`sign`, …) are used by the
/// derivative table and are not recorded.
enum UnaryKernel {
    case neg, exp, log, sqrt, abs, sign, tanh, sigmoid, relu, silu, gelu
    case leakyRelu(Double), powScalar(Double), affine(scale: Double, shift: Double), clamp(Double, Double)

    /// Rough cost of one element in `Parallel.forRanges` units: transcendental functions
    /// take ~10× a load, an add and a store, so a 64-image RGB tanh is worth two threads.
    var costPerElement: Int {
        switch self {
        case .exp, .log, .tanh, .sigmoid, .silu, .gelu, .powScalar: return 16
        default: return 2
        }
    }
}

/// Pointwise functions of two broadcast tensors. `*Grad` cases take (x, upstream gradient).
enum BinaryKernel {
    case add, sub, mul, div, pow, equalMask
    case reluGrad, siluGrad, geluGrad, leakyReluGrad(Double)
}

@inline(__always) private func geluValue<T: TensorScalar>(_ x: T) -> T {
    x * (1 + T.erf(x * T(0.70710678118654752))) / 2
}
@inline(__always) private func geluDerivative<T: TensorScalar>(_ x: T) -> T {
    let cdf = (1 + T.erf(x * T(0.70710678118654752))) / 2
    let pdf = T.exp(-x * x / 2) * T(0.39894228040143268)
    return cdf + x * pdf
}

func unaryKernel<T: TensorScalar>(_ k: UnaryKernel, _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ n: Int) {
    switch k {
    case .neg: for i in 0..<n { y[i] = -x[i] }
    case .exp: T.vexp(x, y, n)
    case .log: for i in 0..<n { y[i] = T.log(x[i]) }
    case .sqrt: for i in 0..<n { y[i] = x[i].squareRoot() }
    case .abs: for i in 0..<n { y[i] = Swift.abs(x[i]) }
    case .sign: for i in 0..<n { y[i] = x[i] > 0 ? 1 : (x[i] < 0 ? -1 : 0) }
    case .tanh: T.vtanh(x, y, n)
    case .sigmoid: T.vsigmoid(x, y, n)
    case .relu: for i in 0..<n { y[i] = x[i] > 0 ? x[i] : 0 }
    case .silu: T.vsilu(x, y, n)
    case .gelu: for i in 0..<n { y[i] = geluValue(x[i]) }
    case .leakyRelu(let s): let a = T(s); for i in 0..<n { y[i] = x[i] > 0 ? x[i] : a * x[i] }
    case .powScalar(let p):
        if p == 2 { for i in 0..<n { y[i] = x[i] * x[i] } }
        else { let e = T(p); for i in 0..<n { y[i] = T.pow(x[i], e) } }
    case .affine(let a, let b): let a = T(a), b = T(b); for i in 0..<n { y[i] = x[i] * a + b }
    case .clamp(let lo, let hi): let lo = T(lo), hi = T(hi); for i in 0..<n { y[i] = x[i] < lo ? lo : (x[i] > hi ? hi : x[i]) }
    }
}

@inline(__always)
private func binaryRow<T: TensorScalar>(_ a: UnsafePointer<T>, _ sa: Int, _ b: UnsafePointer<T>, _ sb: Int,
                                        _ y: UnsafeMutablePointer<T>, _ n: Int, _ f: (T, T) -> T) {
    if sa == 1 && sb == 1 { for i in 0..<n { y[i] = f(a[i], b[i]) } }
    else if sa == 1 && sb == 0 { let bv = b[0]; for i in 0..<n { y[i] = f(a[i], bv) } }
    else if sa == 0 && sb == 1 { let av = a[0]; for i in 0..<n { y[i] = f(av, b[i]) } }
    else { for i in 0..<n { y[i] = f(a[i * sa], b[i * sb]) } }
}

func binaryKernel<T: TensorScalar>(_ k: BinaryKernel, _ a: Tensor, _ b: Tensor, _ out: Tensor, _: T.Type) {
    let loop = StridedLoop(shape: out.shape, strides: [broadcastStrides(a.shape, to: out.shape),
                                                       broadcastStrides(b.shape, to: out.shape),
                                                       contiguousStrides(out.shape)])
    let pa = UnsafePointer(a.pointer(T.self)), pb = UnsafePointer(b.pointer(T.self)), py = out.pointer(T.self)
    let n = loop.innerCount, sa = loop.innerStride(0), sb = loop.innerStride(1)
    // SiLU's gradient has a vectorised C kernel for the common same-shape case.
    if case .siluGrad = k, sa == 1, sb == 1, loop.shape.count == 1 {
        T.vsiluBackward(pa, pb, py, n); return
    }
    loop.forEachRow { o in
        let a = pa + o[0], b = pb + o[1], y = py + o[2]
        switch k {
        case .add: binaryRow(a, sa, b, sb, y, n, +)
        case .sub: binaryRow(a, sa, b, sb, y, n, -)
        case .mul: binaryRow(a, sa, b, sb, y, n, *)
        case .div: binaryRow(a, sa, b, sb, y, n, /)
        case .pow: binaryRow(a, sa, b, sb, y, n) { T.pow($0, $1) }
        case .equalMask: binaryRow(a, sa, b, sb, y, n) { $0 == $1 ? 1 : 0 }
        case .reluGrad: binaryRow(a, sa, b, sb, y, n) { $0 > 0 ? $1 : 0 }
        case .leakyReluGrad(let s): let s = T(s); binaryRow(a, sa, b, sb, y, n) { $0 > 0 ? $1 : s * $1 }
        case .geluGrad: binaryRow(a, sa, b, sb, y, n) { geluDerivative($0) * $1 }
        case .siluGrad:
            binaryRow(a, sa, b, sb, y, n) { x, g in
                let s = 1 / (1 + T.exp(-x)); return g * (s + x * s * (1 - s))
            }
        }
    }
}

extension Tensor {
    func applyUnary(_ k: UnaryKernel) -> Tensor {
        let out = Tensor(uninitialized: shape, dtype: dtype)
        let px = storage.pointer, py = out.storage.pointer, size = dtype.size, isFloat = dtype == .float32
        Parallel.forRanges(count, cost: count * k.costPerElement) { r in
            if isFloat {
                unaryKernel(k, (px + r.lowerBound * size).assumingMemoryBound(to: Float.self), (py + r.lowerBound * size).assumingMemoryBound(to: Float.self), r.count)
            } else {
                unaryKernel(k, (px + r.lowerBound * size).assumingMemoryBound(to: Double.self), (py + r.lowerBound * size).assumingMemoryBound(to: Double.self), r.count)
            }
        }
        return out
    }

    static func applyBinary(_ k: BinaryKernel, _ a: Tensor, _ b: Tensor, name: String) -> Tensor {
        checkSameDType(a, b, name)
        let shape = a.shape == b.shape ? a.shape : broadcastShapes(a.shape, b.shape, op: name)
        let out = Tensor(uninitialized: shape, dtype: a.dtype)
        if a.shape == b.shape, a.count > 400_000 {
            // same shapes: split into contiguous pieces (views share storage, no copies)
            let size = a.dtype.size
            Parallel.forRanges(a.count, cost: a.count * 2) { r in
                func view(_ t: Tensor) -> Tensor { Tensor(shape: [r.count], storage: Storage(borrowing: t.storage.pointer + r.lowerBound * size, count: r.count, dtype: t.dtype)) }
                let (va, vb, vo) = (view(a), view(b), view(out))
                dispatch(a.dtype, { binaryKernel(k, va, vb, vo, Float.self) }, { binaryKernel(k, va, vb, vo, Double.self) })
            }
            return out
        }
        dispatch(a.dtype, { binaryKernel(k, a, b, out, Float.self) }, { binaryKernel(k, a, b, out, Double.self) })
        return out
    }

    /// A rank-0 tensor of this tensor's dtype.
    func scalarLike(_ v: Double) -> Tensor { Tensor(scalar: v, dtype: dtype) }

    // MARK: Differentiable pointwise ops

    public static func + (a: Tensor, b: Tensor) -> Tensor { record(.add, [a, b], applyBinary(.add, a, b, name: "add")) }
    public static func - (a: Tensor, b: Tensor) -> Tensor { record(.sub, [a, b], applyBinary(.sub, a, b, name: "sub")) }
    public static func * (a: Tensor, b: Tensor) -> Tensor { record(.mul, [a, b], applyBinary(.mul, a, b, name: "mul")) }
    public static func / (a: Tensor, b: Tensor) -> Tensor { record(.div, [a, b], applyBinary(.div, a, b, name: "div")) }
    public static prefix func - (a: Tensor) -> Tensor { record(.neg, [a], a.applyUnary(.neg)) }

    public static func + (a: Tensor, b: Double) -> Tensor { a.affine(scale: 1, shift: b) }
    public static func + (a: Double, b: Tensor) -> Tensor { b.affine(scale: 1, shift: a) }
    public static func - (a: Tensor, b: Double) -> Tensor { a.affine(scale: 1, shift: -b) }
    public static func - (a: Double, b: Tensor) -> Tensor { b.affine(scale: -1, shift: a) }
    public static func * (a: Tensor, b: Double) -> Tensor { a.affine(scale: b, shift: 0) }
    public static func * (a: Double, b: Tensor) -> Tensor { b.affine(scale: a, shift: 0) }
    public static func / (a: Tensor, b: Double) -> Tensor { a.affine(scale: 1 / b, shift: 0) }
    public static func / (a: Double, b: Tensor) -> Tensor { a * b.pow(-1) }

    /// x * scale + shift, one pass.
    public func affine(scale: Double, shift: Double) -> Tensor {
        record(.affine(scale: scale), [self], applyUnary(.affine(scale: scale, shift: shift)))
    }

    /// Elementwise power with a broadcast tensor exponent (base must be positive where the
    /// exponent's gradient is needed).
    public func pow(_ exponent: Tensor) -> Tensor {
        record(.pow, [self, exponent], Tensor.applyBinary(.pow, self, exponent, name: "pow"))
    }
    /// Elementwise power with a constant exponent.
    public func pow(_ exponent: Double) -> Tensor { record(.powScalar(exponent), [self], applyUnary(.powScalar(exponent))) }
    public func squared() -> Tensor { pow(2) }
    public func exp() -> Tensor { record(.exp, [self], applyUnary(.exp)) }
    public func log() -> Tensor { record(.log, [self], applyUnary(.log)) }
    public func sqrt() -> Tensor { record(.sqrt, [self], applyUnary(.sqrt)) }
    public func abs() -> Tensor { record(.abs, [self], applyUnary(.abs)) }
    public func tanh() -> Tensor { record(.tanh, [self], applyUnary(.tanh)) }
    public func sigmoid() -> Tensor { record(.sigmoid, [self], applyUnary(.sigmoid)) }
    public func relu() -> Tensor { record(.relu, [self], applyUnary(.relu)) }
    /// max(x, 0) + slope * min(x, 0)
    public func leakyRelu(slope: Double = 0.2) -> Tensor {
        record(.leakyRelu(slope: slope), [self], applyUnary(.leakyRelu(slope)))
    }
    /// x * sigmoid(x) (Ramachandran et al., 2017; "swish").
    public func silu() -> Tensor { record(.silu, [self], applyUnary(.silu)) }
    /// x * Φ(x), the exact (erf) GELU (Hendrycks & Gimpel, 2016).
    public func gelu() -> Tensor { record(.gelu, [self], applyUnary(.gelu)) }

    /// Not differentiable: each element limited to [lo, hi] (same dtype).
    public func clamped(_ lo: Double, _ hi: Double) -> Tensor { applyUnary(.clamp(lo, hi)) }

    /// Not differentiable: sign(x) ∈ {-1, 0, 1}.
    public func sign() -> Tensor { applyUnary(.sign) }

    // MARK: In-place updates (not recorded; optimizer and accumulation use)

    /// self += other * alpha (same shape).
    public func addInPlace(_ other: Tensor, alpha: Double = 1) {
        precondition(other.shape == shape, "addInPlace: shape \(other.shape) does not match \(shape)")
        checkSameDType(self, other, "addInPlace")
        dispatch(dtype, {
            let y = pointer(Float.self), x = other.pointer(Float.self), a = Float(alpha)
            for i in 0..<count { y[i] += a * x[i] }
        }, {
            let y = pointer(Double.self), x = other.pointer(Double.self)
            for i in 0..<count { y[i] += alpha * x[i] }
        })
    }

    /// self *= factor.
    public func scaleInPlace(_ factor: Double) {
        dispatch(dtype, {
            let y = pointer(Float.self), a = Float(factor)
            for i in 0..<count { y[i] *= a }
        }, {
            let y = pointer(Double.self)
            for i in 0..<count { y[i] *= factor }
        })
    }

    /// self = self * decay + other * (1 - decay): an exponential moving average step.
    public func lerpInPlace(toward other: Tensor, decay: Double) {
        precondition(other.shape == shape, "lerpInPlace: shape \(other.shape) does not match \(shape)")
        checkSameDType(self, other, "lerpInPlace")
        dispatch(dtype, {
            let y = pointer(Float.self), x = other.pointer(Float.self), d = Float(decay), e = Float(1 - decay)
            for i in 0..<count { y[i] = y[i] * d + x[i] * e }
        }, {
            let y = pointer(Double.self), x = other.pointer(Double.self)
            for i in 0..<count { y[i] = y[i] * decay + x[i] * (1 - decay) }
        })
    }

    /// Sum of squares of all elements, accumulated in Double.
    public func squaredNorm() -> Double {
        dispatch(dtype, {
            let p = pointer(Float.self); var s: Double = 0
            var i = 0
            // block partial sums in Float for speed, fold into Double
            while i < count {
                let e = Swift.min(i + 4096, count); var b: Float = 0
                for j in i..<e { b += p[j] * p[j] }
                s += Double(b); i = e
            }
            return s
        }, {
            let p = pointer(Double.self); var s: Double = 0
            for i in 0..<count { s += p[i] * p[i] }
            return s
        })
    }
}
