import Foundation

/// Rényi-DP accounting for DP-SGD: the Poisson-subsampled Gaussian mechanism (Mironov,
/// Talwar and Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian Mechanism"),
/// composed over steps and phases, converted to (ε, δ) by the classic bound (Mironov 2017,
/// Prop. 3) or the improved one (Balle et al. 2020, "Hypothesis Testing Interpretations and
/// Rényi Differential Privacy", Thm. 21). Every quantity is computed in log space, so no
/// order overflows.
public enum RDP {
    /// Opacus's default orders: 1 + x/10 for x = 1…99, then 12…63.
    public static let defaultOrders: [Double] = (1..<100).map { 1 + Double($0) / 10 } + (12..<64).map(Double.init)

    /// RDP ε(α) of one step of the Gaussian mechanism with noise multiplier σ (noise std σ·C
    /// for ℓ2 sensitivity C) on a Poisson sample with rate q.
    public static func subsampledGaussian(q: Double, sigma: Double, order alpha: Double) -> Double {
        precondition(q >= 0 && q <= 1 && sigma > 0 && alpha > 1, "RDP: q \(q) in [0, 1], σ \(sigma) > 0, order \(alpha) > 1")
        if q == 0 { return 0 }
        if q == 1 { return alpha / (2 * sigma * sigma) }
        if alpha.isInfinite { return .infinity }
        let logA = alpha == alpha.rounded() ? logAInteger(q: q, sigma: sigma, alpha: Int(alpha)) : logAFractional(q: q, sigma: sigma, alpha: alpha)
        return logA / (alpha - 1)
    }

    /// RDP of `steps` compositions of the mechanism at each order.
    public static func compose(q: Double, sigma: Double, steps: Int, orders: [Double] = defaultOrders) -> [Double] {
        orders.map { Double(steps) * subsampledGaussian(q: q, sigma: sigma, order: $0) }
    }

    /// The two conversions from RDP to (ε, δ)-DP.
    public enum Conversion: String, Codable, Sendable, CaseIterable {
        /// ε = ε_α + log(1/δ)/(α − 1) (Mironov 2017).
        case classic
        /// ε = ε_α + log((α − 1)/α) − (log δ + log α)/(α − 1) (Balle et al. 2020), never larger.
        case improved
    }

    /// (ε, best order) for RDP values `rdp` at `orders`; ε is the minimum over orders.
    public static func epsilon(rdp: [Double], orders: [Double] = defaultOrders, delta: Double, conversion: Conversion) -> (epsilon: Double, order: Double) {
        precondition(rdp.count == orders.count && delta > 0 && delta < 1, "RDP.epsilon: \(rdp.count) values for \(orders.count) orders, δ \(delta)")
        var best = (Double.infinity, orders.first ?? .nan)
        for (e, a) in zip(rdp, orders) {
            let eps: Double
            switch conversion {
            case .classic: eps = e + Foundation.log(1 / delta) / (a - 1)
            case .improved: eps = e + Foundation.log((a - 1) / a) - (Foundation.log(delta) + Foundation.log(a)) / (a - 1)
            }
            if eps.isFinite && eps < best.0 { best = (max(eps, 0), a) }
        }
        return best
    }

    // MARK: log A_α (Mironov et al. 2019, §3.3)

    /// Integer α: A_α = Σ_{k=0}^{α} C(α, k) (1 − q)^{α−k} q^k exp((k² − k) / (2σ²)).
    static func logAInteger(q: Double, sigma: Double, alpha: Int) -> Double {
        var acc = -Double.infinity
        let lq = Foundation.log(q), l1q = Foundation.log1p(-q)
        for k in 0...alpha {
            let term = logBinomial(Double(alpha), Double(k)) + Double(k) * lq + Double(alpha - k) * l1q
                + Double(k * k - k) / (2 * sigma * sigma)
            acc = logAdd(acc, term)
        }
        return acc
    }

    /// Fractional α: the two-sided series of Mironov et al. (2019), Eq. (§3.3), summed until
    /// both terms are below e^−30.
    static func logAFractional(q: Double, sigma: Double, alpha: Double) -> Double {
        var a0 = -Double.infinity, a1 = -Double.infinity
        let z0 = sigma * sigma * Foundation.log(1 / q - 1) + 0.5
        let lq = Foundation.log(q), l1q = Foundation.log1p(-q)
        var i = 0.0
        while true {
            let (logCoef, positive) = logAbsBinomial(alpha, i)
            let j = alpha - i
            let t0 = logCoef + i * lq + j * l1q, t1 = logCoef + j * lq + i * l1q
            let e0 = Foundation.log(0.5) + logErfc((i - z0) / (2.0.squareRoot() * sigma))
            let e1 = Foundation.log(0.5) + logErfc((z0 - j) / (2.0.squareRoot() * sigma))
            let s0 = t0 + (i * i - i) / (2 * sigma * sigma) + e0
            let s1 = t1 + (j * j - j) / (2 * sigma * sigma) + e1
            if positive { a0 = logAdd(a0, s0); a1 = logAdd(a1, s1) } else { a0 = logSub(a0, s0); a1 = logSub(a1, s1) }
            i += 1
            if max(s0, s1) < -30 || i > 100_000 { break }
        }
        return logAdd(a0, a1)
    }

    /// log C(n, k) for real n ≥ k ≥ 0 (integer k).
    static func logBinomial(_ n: Double, _ k: Double) -> Double { logAbsBinomial(n, k).0 }

    /// log |C(α, k)| and its sign for real α and integer k ≥ 0 (the generalized binomial).
    static func logAbsBinomial(_ alpha: Double, _ k: Double) -> (Double, Bool) {
        var logAbs = 0.0, positive = true
        var m = 0.0
        while m < k {
            let factor = (alpha - m) / (m + 1)
            if factor == 0 { return (-.infinity, true) }
            if factor < 0 { positive.toggle() }
            logAbs += Foundation.log(abs(factor))
            m += 1
        }
        return (logAbs, positive)
    }

    /// log(e^a + e^b).
    static func logAdd(_ a: Double, _ b: Double) -> Double {
        let (hi, lo) = a > b ? (a, b) : (b, a)
        if lo == -.infinity { return hi }
        return hi + Foundation.log1p(Foundation.exp(lo - hi))
    }

    /// log(e^a − e^b) for a ≥ b (−∞ when equal).
    static func logSub(_ a: Double, _ b: Double) -> Double {
        if b == -.infinity { return a }
        if a <= b { return -.infinity }   // the series' partial sums stay positive; guard rounding
        return a + Foundation.log(-Foundation.expm1(b - a))
    }

    /// log erfc(x), accurate where erfc underflows (asymptotic series beyond x = 20).
    static func logErfc(_ x: Double) -> Double {
        if x < 20 { return Foundation.log(Foundation.erfc(x)) }
        let x2 = x * x
        // erfc(x) ≈ e^{−x²} / (x√π) · (1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶))
        return -x2 - Foundation.log(x) - 0.5 * Foundation.log(Double.pi) + Foundation.log(1 - 1 / (2 * x2) + 3 / (4 * x2 * x2) - 15 / (8 * x2 * x2 * x2))
    }
}

/// What `eidetic privacy epsilon` reports for T steps of DP-SGD at (q, σ).
public struct PrivacySpent: Codable, Equatable, Sendable {
    public var epsilonImproved: Double
    public var epsilonClassic: Double
    public var bestOrder: Double
    public var bestOrderClassic: Double
    public var delta: Double

    /// Composition over phases, each (q, σ, steps), at the given orders.
    public init(phases: [(q: Double, sigma: Double, steps: Int)], delta: Double, orders: [Double] = RDP.defaultOrders) {
        var rdp = [Double](repeating: 0, count: orders.count)
        for p in phases {
            let r = RDP.compose(q: p.q, sigma: p.sigma, steps: p.steps, orders: orders)
            for i in rdp.indices { rdp[i] += r[i] }
        }
        let imp = RDP.epsilon(rdp: rdp, orders: orders, delta: delta, conversion: .improved)
        let cls = RDP.epsilon(rdp: rdp, orders: orders, delta: delta, conversion: .classic)
        epsilonImproved = imp.epsilon; bestOrder = imp.order
        epsilonClassic = cls.epsilon; bestOrderClassic = cls.order
        self.delta = delta
    }

    /// The smallest σ (to `tolerance`, by bisection) whose ε (improved conversion) is at most
    /// `epsilon` for `steps` steps at rate q; never returns a σ that overshoots the target.
    /// Nil when even σ = 1e6 cannot reach it.
    public static func sigma(forEpsilon epsilon: Double, q: Double, steps: Int, delta: Double,
                             orders: [Double] = RDP.defaultOrders, tolerance: Double = 1e-4) -> Double? {
        func eps(_ s: Double) -> Double { PrivacySpent(phases: [(q, s, steps)], delta: delta, orders: orders).epsilonImproved }
        var hi = 1.0
        while eps(hi) > epsilon { hi *= 2; if hi > 1e6 { return nil } }
        var lo = 0.0
        while hi - lo > tolerance * max(hi, 1e-3) {
            let mid = (lo + hi) / 2
            if mid > 0 && eps(mid) <= epsilon { hi = mid } else { lo = mid }
        }
        return hi
    }
}
