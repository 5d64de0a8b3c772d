import Foundation

/// Counter-based random numbers: Philox4x32-10 (Salmon et al., 2011, "Parallel random
/// numbers: as easy as 1, 2, 3"). A value is a pure function of (key, counter), so
/// element i of a random tensor depends only on its key and i — never on thread count,
/// batch size, or what was drawn before. Streams are separated by deriving keys
/// (`split`, `fold`), as in JAX and MLX.
public struct RandomKey: Hashable, Codable, Sendable, CustomStringConvertible {
    public var k0: UInt32
    public var k1: UInt32

    public init(k0: UInt32, k1: UInt32) { self.k0 = k0; self.k1 = k1 }

    /// The root key of a run.
    public init(seed: UInt64) { self.init(k0: UInt32(truncatingIfNeeded: seed), k1: UInt32(truncatingIfNeeded: seed >> 32)) }

    public var description: String { String(format: "RandomKey(%08x%08x)", k1, k0) }

    /// The Philox4x32-10 block for counter (c0, c1, c2, c3).
    @inline(__always)
    public func block(_ c0: UInt32, _ c1: UInt32, _ c2: UInt32, _ c3: UInt32) -> (UInt32, UInt32, UInt32, UInt32) {
        var (x0, x1, x2, x3) = (c0, c1, c2, c3)
        var (key0, key1) = (k0, k1)
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) &* UInt64(x0), p1 = UInt64(0xCD9E_8D57) &* UInt64(x2)
            let hi0 = UInt32(truncatingIfNeeded: p0 >> 32), lo0 = UInt32(truncatingIfNeeded: p0)
            let hi1 = UInt32(truncatingIfNeeded: p1 >> 32), lo1 = UInt32(truncatingIfNeeded: p1)
            (x0, x1, x2, x3) = (hi1 ^ x1 ^ key0, lo1, hi0 ^ x3 ^ key1, lo0)
            key0 = key0 &+ 0x9E37_79B9; key1 = key1 &+ 0xBB67_AE85
        }
        return (x0, x1, x2, x3)
    }

    /// A child key for `data` (a purpose, an index, a step): distinct data give
    /// independent streams. Uses counter lane 3 = 0xF01D to keep derivation apart from
    /// the counters that random tensors use.
    public func fold(_ data: UInt64) -> RandomKey {
        let b = block(UInt32(truncatingIfNeeded: data), UInt32(truncatingIfNeeded: data >> 32), 0x5EED, 0xF01D)
        return RandomKey(k0: b.0, k1: b.1)
    }

    /// A child key for a named purpose ("init", "batches", "noise", …).
    public func fold(_ purpose: String) -> RandomKey {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325   // FNV-1a
        for byte in purpose.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return fold(h)
    }

    /// `count` independent child keys.
    public func split(_ count: Int) -> [RandomKey] {
        (0..<count).map { i in
            let b = block(UInt32(truncatingIfNeeded: i), UInt32(truncatingIfNeeded: i >> 32), 0x5B17, 0xF01D)
            return RandomKey(k0: b.0, k1: b.1)
        }
    }

    /// The 32-bit random word number `i` of this key's stream.
    @inline(__always)
    public func word(_ i: Int) -> UInt32 {
        let c = UInt64(i / 4)
        let b = block(UInt32(truncatingIfNeeded: c), UInt32(truncatingIfNeeded: c >> 32), 0, 0)
        switch i % 4 { case 0: return b.0; case 1: return b.1; case 2: return b.2; default: return b.3 }
    }

    /// Fills `n` words of the stream starting at word 0.
    func words(_ n: Int, _ body: (Int, UInt32) -> Void) {
        var i = 0
        var c: UInt64 = 0
        while i < n {
            let b = block(UInt32(truncatingIfNeeded: c), UInt32(truncatingIfNeeded: c >> 32), 0, 0)
            body(i, b.0); if i + 1 < n { body(i + 1, b.1) }
            if i + 2 < n { body(i + 2, b.2) }; if i + 3 < n { body(i + 3, b.3) }
            i += 4; c += 1
        }
    }
}

/// u ∈ (0, 1) from 32 random bits (never 0, so log(u) is finite).
@inline(__always) func unitInterval(_ w: UInt32) -> Double { (Double(w) + 0.5) * (1.0 / 4_294_967_296.0) }

/// A position in a key's stream that advances: the stateful convenience on top of keys,
/// for code that draws many small things in sequence (batch order, timesteps). Its state
/// (key, counter) is two numbers and goes into checkpoints.
public struct RandomStream: Codable, Sendable, Equatable {
    public let key: RandomKey
    public private(set) var counter: UInt64

    public init(key: RandomKey, counter: UInt64 = 0) { self.key = key; self.counter = counter }

    /// The next fresh key (for one tensor-sized draw).
    public mutating func nextKey() -> RandomKey { defer { counter += 1 }; return key.fold(counter) }

    /// A uniform integer in 0..<bound (unbiased: Lemire's multiply-and-reject).
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0, "nextInt(below:) needs a positive bound, got \(bound)")
        while true {
            let k = nextKey()
            let r = UInt64(k.k0) | (UInt64(k.k1) << 32)
            let m = r.multipliedFullWidth(by: UInt64(bound))
            if m.low >= (0 &- UInt64(bound)) % UInt64(bound) { return Int(m.high) }
        }
    }

    /// A uniform Double in (0, 1).
    public mutating func nextUniform() -> Double { unitInterval(nextKey().k0) }
}

extension Tensor {
    /// Uniform values in [low, high).
    public static func uniform(_ shape: [Int], low: Double = 0, high: Double = 1, key: RandomKey, dtype: DType = .float32) -> Tensor {
        let t = Tensor(uninitialized: shape, dtype: dtype)
        let scale = high - low
        dispatch(dtype, {
            let p = t.pointer(Float.self)
            key.words(t.count) { i, w in p[i] = Float(low + scale * (Double(w >> 8) * (1.0 / 16_777_216.0))) }
        }, {
            let p = t.pointer(Double.self)
            key.words(t.count) { i, w in p[i] = low + scale * (Double(w) * (1.0 / 4_294_967_296.0)) }
        })
        return t
    }

    /// Normal values (Box–Muller on pairs of stream words: element 2j and 2j+1 use words 2j, 2j+1).
    public static func normal(_ shape: [Int], mean: Double = 0, std: Double = 1, key: RandomKey, dtype: DType = .float32) -> Tensor {
        let t = Tensor(uninitialized: shape, dtype: dtype)
        let n = t.count
        var values = [Double](repeating: 0, count: n + 1)
        var pending: UInt32 = 0
        key.words(n + (n & 1)) { i, w in
            if i & 1 == 0 { pending = w; return }
            let r = (-2 * Foundation.log(unitInterval(pending))).squareRoot()
            let theta = 2 * Double.pi * unitInterval(w)
            values[i - 1] = r * Foundation.cos(theta)
            values[i] = r * Foundation.sin(theta)
        }
        dispatch(dtype, { let p = t.pointer(Float.self); for i in 0..<n { p[i] = Float(mean + std * values[i]) } },
                        { let p = t.pointer(Double.self); for i in 0..<n { p[i] = mean + std * values[i] } })
        return t
    }

    /// 1 with probability p, else 0.
    public static func bernoulli(_ shape: [Int], probability p: Double, key: RandomKey, dtype: DType = .float32) -> Tensor {
        precondition(p >= 0 && p <= 1, "bernoulli: probability \(p) outside [0, 1]")
        let t = Tensor(uninitialized: shape, dtype: dtype)
        dispatch(dtype, { let q = t.pointer(Float.self); key.words(t.count) { i, w in q[i] = unitInterval(w) < p ? 1 : 0 } },
                        { let q = t.pointer(Double.self); key.words(t.count) { i, w in q[i] = unitInterval(w) < p ? 1 : 0 } })
        return t
    }
}

extension Tensor {
    /// Inverted dropout: zeroes each element with probability p and scales the rest by
    /// 1/(1 − p), so the expectation is unchanged (Srivastava et al., 2014). The mask is
    /// drawn from `key` and treated as a constant by the tape.
    public func dropout(probability p: Double, key: RandomKey) -> Tensor {
        precondition(p >= 0 && p < 1, "dropout: probability \(p) outside [0, 1)")
        if p == 0 { return self }
        let mask = Tensor.bernoulli(shape, probability: 1 - p, key: key, dtype: dtype)
        return self * (mask * (1 / (1 - p)))
    }
}

/// A uniformly random permutation of 0..<n (Fisher–Yates driven by the key's stream).
public func randomPermutation(_ n: Int, key: RandomKey) -> [Int] {
    var a = Array(0..<n)
    var stream = RandomStream(key: key)
    if n > 1 { for i in stride(from: n - 1, to: 0, by: -1) { a.swapAt(i, stream.nextInt(below: i + 1)) } }
    return a
}
