import Foundation

/// Rank statistics for joining per-example quantities (outlier scores, attack scores,
/// extraction outcomes).
public enum RankStatistics {
    /// Ranks 1…n with ties given their average rank.
    public static func ranks(_ x: [Double]) -> [Double] {
        let order = x.indices.sorted { x[$0] < x[$1] }
        var r = [Double](repeating: 0, count: x.count)
        var k = 0
        while k < order.count {
            var e = k
            while e + 1 < order.count && x[order[e + 1]] == x[order[k]] { e += 1 }
            let avg = Double(k + e) / 2 + 1
            for j in k...e { r[order[j]] = avg }
            k = e + 1
        }
        return r
    }

    public static func pearson(_ x: [Double], _ y: [Double]) -> Double {
        precondition(x.count == y.count && x.count > 1, "correlation: \(x.count) vs \(y.count) values")
        let mx = x.reduce(0, +) / Double(x.count), my = y.reduce(0, +) / Double(y.count)
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for i in x.indices { sxy += (x[i] - mx) * (y[i] - my); sxx += (x[i] - mx) * (x[i] - mx); syy += (y[i] - my) * (y[i] - my) }
        return sxx > 0 && syy > 0 ? sxy / (sxx * syy).squareRoot() : .nan
    }

    /// Spearman's ρ: Pearson correlation of the (tie-averaged) ranks.
    public static func spearman(_ x: [Double], _ y: [Double]) -> Double { pearson(ranks(x), ranks(y)) }

    /// Splits examples into `bins` quantile bins of `key` (ascending) and reports the mean
    /// of `value` in each: the decile table of an outlier score against an attack outcome.
    public static func binMeans(key: [Double], value: [Double], bins: Int = 10) -> [(lowKey: Double, highKey: Double, count: Int, mean: Double)] {
        precondition(key.count == value.count, "decile table: \(key.count) keys vs \(value.count) values")
        let order = key.indices.sorted { (key[$0], $0) < (key[$1], $1) }
        return (0..<bins).compactMap { b in
            let lo = b * order.count / bins, hi = (b + 1) * order.count / bins
            guard hi > lo else { return nil }
            let idx = order[lo..<hi]
            return (key[idx.first!], key[idx.last!], idx.count, idx.reduce(0) { $0 + value[$1] } / Double(idx.count))
        }
    }
}

/// Intervals for counts and means that the experiment tables report.
public enum Intervals {
    /// The exact (Clopper–Pearson, 1934) confidence interval for a binomial proportion k/n:
    /// the p where P(X ≥ k) and P(X ≤ k) equal (1 − confidence)/2, by bisection on the
    /// binomial CDF (summed in log space).
    public static func clopperPearson(successes k: Int, trials n: Int, confidence: Double = 0.95) -> (low: Double, high: Double) {
        precondition(n >= 0 && k >= 0 && k <= n, "Clopper–Pearson: \(k) of \(n)")
        guard n > 0 else { return (0, 1) }
        let a = (1 - confidence) / 2
        var logFact = [Double](repeating: 0, count: n + 1)
        for i in stride(from: 1, through: n, by: 1) { logFact[i] = logFact[i - 1] + log(Double(i)) }
        func cdf(_ k: Int, _ p: Double) -> Double {   // P(X ≤ k)
            if k < 0 { return 0 }
            if k >= n { return 1 }
            if p <= 0 { return 1 }
            if p >= 1 { return 0 }
            let lp = log(p), lq = log1p(-p)
            var s = 0.0
            for i in 0...k { s += exp(logFact[n] - logFact[i] - logFact[n - i] + Double(i) * lp + Double(n - i) * lq) }
            return min(s, 1)
        }
        func solve(_ f: (Double) -> Double, increasing: Bool) -> Double {
            var lo = 0.0, hi = 1.0
            for _ in 0..<80 {
                let mid = (lo + hi) / 2
                if (f(mid) < a) == increasing { lo = mid } else { hi = mid }
            }
            return (lo + hi) / 2
        }
        let low = k == 0 ? 0 : solve({ 1 - cdf(k - 1, $0) }, increasing: true)   // P(X ≥ k) rises with p
        let high = k == n ? 1 : solve({ cdf(k, $0) }, increasing: false)          // P(X ≤ k) falls with p
        return (low, high)
    }

    /// Mean and sample standard deviation (0 for one value).
    public static func meanStd(_ x: [Double]) -> (mean: Double, std: Double) {
        guard !x.isEmpty else { return (.nan, .nan) }
        let m = x.reduce(0, +) / Double(x.count)
        guard x.count > 1 else { return (m, 0) }
        let v = x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(x.count - 1)
        return (m, v.squareRoot())
    }

    /// The 95% interval of Spearman's ρ over n examples: Fisher's z with the
    /// Fieller–Hartley–Pearson (1957) standard error √(1.06 / (n − 3)) for rank correlations.
    /// (−1, 1) when n ≤ 3 or ρ is not finite.
    public static func spearman(_ rho: Double, n: Int) -> (low: Double, high: Double) {
        guard n > 3, rho.isFinite else { return (-1, 1) }
        let z = atanh(max(-0.999999, min(0.999999, rho))), se = (1.06 / Double(n - 3)).squareRoot()
        return (tanh(z - 1.959964 * se), tanh(z + 1.959964 * se))
    }
}
