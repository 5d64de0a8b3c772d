import Foundation

/// An n-dimensional array of `Float` (or `Double`, for gradient checks), contiguous and
/// row-major; images are NCHW.
///
/// A tensor's values do not change after an op has produced it, except through the
/// explicitly named in-place methods used by optimizers (`assign`, `update`). Ops are
/// functions returning new tensors; while a gradient tape is recording
/// (`valueAndGradient`), ops on tracked tensors are recorded for the backward pass.
public final class Tensor {
    public let shape: [Int]
    public let count: Int
    let storage: Storage

    /// Which tape this tensor was recorded on (0: none) and its gradient slot there.
    var tapeID: Int = 0
    var slot: Int = -1
    /// Set on constants that belong to a parameter's own computation (spectral norm's u, v):
    /// per-example gradients never take them for batch data, whatever their leading size.
    public var isBatchFree = false

    public var dtype: DType { storage.dtype }
    public var rank: Int { shape.count }

    init(shape: [Int], storage: Storage) {
        let n = Tensor.elementCount(shape)
        precondition(n == storage.count, "shape \(shape) needs \(n) elements, storage has \(storage.count)")
        self.shape = shape
        self.count = n
        self.storage = storage
    }

    /// Uninitialised (or zeroed) tensor of the given shape.
    init(uninitialized shape: [Int], dtype: DType, zeroed: Bool = false) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        self.shape = shape
        self.count = Tensor.elementCount(shape)
        self.storage = Storage(count: count, dtype: dtype, zeroed: zeroed)
    }

    static func elementCount(_ shape: [Int]) -> Int { shape.reduce(1, *) }

    // MARK: Construction

    public convenience init(_ values: [Float], shape: [Int]) {
        precondition(values.count == Tensor.elementCount(shape),
                     "\(values.count) values do not fill shape \(shape)")
        self.init(uninitialized: shape, dtype: .float32)
        values.withUnsafeBufferPointer { src in
            storage.pointer.copyMemory(from: src.baseAddress!, byteCount: values.count * 4)
        }
    }

    public convenience init(_ values: [Double], shape: [Int], dtype: DType = .float64) {
        precondition(values.count == Tensor.elementCount(shape),
                     "\(values.count) values do not fill shape \(shape)")
        self.init(uninitialized: shape, dtype: dtype)
        switch dtype {
        case .float64:
            values.withUnsafeBufferPointer { src in
                storage.pointer.copyMemory(from: src.baseAddress!, byteCount: values.count * 8)
            }
        case .float32:
            let p = storage.pointer.assumingMemoryBound(to: Float.self)
            for i in 0..<values.count { p[i] = Float(values[i]) }
        }
    }

    /// A rank-0 tensor.
    public convenience init(scalar: Double, dtype: DType = .float32) {
        self.init([scalar], shape: [], dtype: dtype)
    }

    public static func zeros(_ shape: [Int], dtype: DType = .float32) -> Tensor {
        Tensor(uninitialized: shape, dtype: dtype, zeroed: true)
    }

    public static func full(_ shape: [Int], _ value: Double, dtype: DType = .float32) -> Tensor {
        let t = Tensor(uninitialized: shape, dtype: dtype)
        t.fill(value)
        return t
    }

    public static func ones(_ shape: [Int], dtype: DType = .float32) -> Tensor { full(shape, 1, dtype: dtype) }

    public static func zeros(like t: Tensor) -> Tensor { zeros(t.shape, dtype: t.dtype) }

    // MARK: Reading values

    /// All elements as `Float` (converted from Double when needed).
    public var scalars: [Float] {
        switch dtype {
        case .float32: return Array(UnsafeBufferPointer(start: storage.pointer.assumingMemoryBound(to: Float.self), count: count))
        case .float64:
            let p = storage.pointer.assumingMemoryBound(to: Double.self)
            return (0..<count).map { Float(p[$0]) }
        }
    }

    /// All elements as `Double`.
    public var doubles: [Double] {
        switch dtype {
        case .float64: return Array(UnsafeBufferPointer(start: storage.pointer.assumingMemoryBound(to: Double.self), count: count))
        case .float32:
            let p = storage.pointer.assumingMemoryBound(to: Float.self)
            return (0..<count).map { Double(p[$0]) }
        }
    }

    /// The single value of a one-element tensor.
    public var item: Double {
        precondition(count == 1, "item needs a one-element tensor, shape is \(shape)")
        return dtype == .float32 ? Double(storage.pointer.assumingMemoryBound(to: Float.self)[0])
                                 : storage.pointer.assumingMemoryBound(to: Double.self)[0]
    }

    /// Element at a flat (row-major) index, as Double. For tests and inspection, not loops.
    public subscript(flat i: Int) -> Double {
        precondition(i >= 0 && i < count, "flat index \(i) out of range for shape \(shape)")
        return dtype == .float32 ? Double(storage.pointer.assumingMemoryBound(to: Float.self)[i])
                                 : storage.pointer.assumingMemoryBound(to: Double.self)[i]
    }

    /// Typed pointer to the elements. The caller must not write through it unless it owns
    /// the tensor (an op's fresh output, or an in-place update).
    @inline(__always)
    public func pointer<T: TensorScalar>(_: T.Type) -> UnsafeMutablePointer<T> {
        precondition(T.dtype == dtype, "expected \(T.dtype) tensor, got \(dtype) of shape \(shape)")
        return storage.pointer.assumingMemoryBound(to: T.self)
    }

    /// Raw bytes (for file I/O).
    public var rawPointer: UnsafeMutableRawPointer { storage.pointer }

    // MARK: In-place updates (optimizers, loading, EMA)

    /// Set every element to `value`.
    public func fill(_ value: Double) {
        switch dtype {
        case .float32: let p = pointer(Float.self); let v = Float(value); for i in 0..<count { p[i] = v }
        case .float64: let p = pointer(Double.self); for i in 0..<count { p[i] = value }
        }
    }

    /// Copy `other`'s values into this tensor (same shape; dtype converted).
    public func assign(_ other: Tensor) {
        precondition(other.shape == shape, "assign: shape \(other.shape) does not match \(shape)")
        if other.dtype == dtype {
            storage.pointer.copyMemory(from: other.storage.pointer, byteCount: count * dtype.size)
        } else if dtype == .float32 {
            let d = pointer(Float.self), s = other.pointer(Double.self)
            for i in 0..<count { d[i] = Float(s[i]) }
        } else {
            let d = pointer(Double.self), s = other.pointer(Float.self)
            for i in 0..<count { d[i] = Double(s[i]) }
        }
    }

    /// A new tensor with the same values, not shared and not tracked.
    public func copy() -> Tensor {
        let t = Tensor(uninitialized: shape, dtype: dtype)
        t.storage.pointer.copyMemory(from: storage.pointer, byteCount: count * dtype.size)
        return t
    }

    /// The same values converted to another dtype (a copy; not differentiable).
    public func converted(to dtype: DType) -> Tensor {
        if dtype == self.dtype { return copy() }
        let t = Tensor(uninitialized: shape, dtype: dtype)
        t.assign(self)
        return t
    }

    /// Whether any element is NaN or infinite.
    public var hasNonFinite: Bool {
        switch dtype {
        case .float32: let p = pointer(Float.self); for i in 0..<count where !p[i].isFinite { return true }
        case .float64: let p = pointer(Double.self); for i in 0..<count where !p[i].isFinite { return true }
        }
        return false
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let vals = doubles.prefix(8).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor(\(dtype), shape \(shape): [\(vals)\(count > 8 ? ", …" : "")])"
    }
}

/// Runs the Float or Double instantiation of a generic kernel for `dtype`.
@inline(__always)
func dispatch<R>(_ dtype: DType, _ f32: () -> R, _ f64: () -> R) -> R {
    dtype == .float32 ? f32() : f64()
}

func checkSameDType(_ a: Tensor, _ b: Tensor, _ op: String) {
    precondition(a.dtype == b.dtype, "\(op): dtype \(a.dtype) of shape \(a.shape) vs \(b.dtype) of shape \(b.shape)")
}
