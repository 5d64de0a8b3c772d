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
