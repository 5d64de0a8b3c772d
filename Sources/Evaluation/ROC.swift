import Foundation
import Tensor

/// Receiver operating characteristic of a membership score (higher = "member"), the way
/// the LiRA paper reports attacks (Carlini et al., 2022): the full curve, AUC, and the true
/// positive rate at a low false positive rate.
public struct ROC: Codable, Equatable, Sendable {
    /// Curve points from (0, 0) to (1, 1); tied scores form one step.
    public var fpr: [Double]
    public var tpr: [Double]
    /// Score threshold of each point ("member if score ≥ threshold"); +∞ for the first.
    public var thresholds: [Double]
    public var positives: Int
    public var negatives: Int

    public init(scores: [Double], members: [Bool]) {
        precondition(scores.count == members.count, "ROC: \(scores.count) scores for \(members.count) labels")
        precondition(!scores.contains { $0.isNaN }, "ROC: a score is NaN")
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        let p = members.filter { $0 }.count, n = members.count - p
        positives = p; negatives = n
        var f = [0.0], t = [0.0], th = [Double.infinity]
        var tp = 0, fp = 0, k = 0
        while k < order.count {
            let s = scores[order[k]]
            while k < order.count && scores[order[k]] == s { if members[order[k]] { tp += 1 } else { fp += 1 }; k += 1 }
            f.append(n > 0 ? Double(fp) / Double(n) : 0); t.append(p > 0 ? Double(tp) / Double(p) : 0); th.append(s)
        }
        fpr = f; tpr = t; thresholds = th
    }

    /// Area under the curve (trapezoids; equals the Mann–Whitney probability that a member
    /// outscores a non-member, ties counting one half).
    public var auc: Double {
        var a = 0.0
        for i in 1..<fpr.count { a += (fpr[i] - fpr[i - 1]) * (tpr[i] + tpr[i - 1]) / 2 }
        return a
    }

    /// The highest TPR among thresholds whose FPR is at most `maxFPR`.
    public func tpr(atFPR maxFPR: Double) -> Double {
        var best = 0.0
        for i in fpr.indices where fpr[i] <= maxFPR + 1e-12 { best = max(best, tpr[i]) }
        return best
    }

    /// Best balanced accuracy over thresholds.
    public var accuracy: Double { zip(fpr, tpr).map { (1 - $0 + $1) / 2 }.max() ?? 0.5 }
}

/// AUC and TPR at fixed FPRs with percentile-bootstrap intervals over examples.
public struct AttackMetrics: Codable, Equatable, Sendable {
    public struct Interval: Codable, Equatable, Sendable { public var value: Double; public var low: Double; public var high: Double }
    public var trials: Int
    public var members: Int
    public var nonMembers: Int
    public var auc: Interval
    public var accuracy: Double
    /// Keyed by FPR as text ("0.001", "0.01").
    public var tprAtFPR: [String: Interval]
    /// Caveats, e.g. a TPR at an FPR that fewer than 5/FPR non-member trials cannot resolve.
    public var notes: [String]

    /// `groups[i]` is the example of trial i: the bootstrap resamples examples, keeping all of
    /// an example's trials (one per target model) together. nil: every trial is its own example.
    public init(scores: [Double], members: [Bool], groups: [Int]? = nil, fprs: [Double] = [0.001, 0.01],
                bootstrap: Int = 200, key: RandomKey = RandomKey(seed: 0x600d)) {
        let roc = ROC(scores: scores, members: members)
        trials = scores.count; self.members = roc.positives; nonMembers = roc.negatives; accuracy = roc.accuracy
        notes = fprs.filter { Double(roc.negatives) * $0 < 5 }.map {
            "TPR at FPR \($0) rests on \(roc.negatives) non-member trials (fewer than \(Int((5 / $0).rounded())) cannot resolve it): read it as TPR at the lowest FPR reached"
        }
        let g = groups ?? Array(scores.indices)
        var byGroup: [Int: [Int]] = [:]
        for (i, e) in g.enumerated() { byGroup[e, default: []].append(i) }
        let keys = byGroup.keys.sorted()
        var aucs: [Double] = [], tprs = [[Double]](repeating: [], count: fprs.count)
        var stream = RandomStream(key: key)
        for _ in 0..<bootstrap {
            var s: [Double] = [], m: [Bool] = []
            for _ in keys.indices {
                for i in byGroup[keys[stream.nextInt(below: keys.count)]]! { s.append(scores[i]); m.append(members[i]) }
            }
            guard m.contains(true) && m.contains(false) else { continue }
            let r = ROC(scores: s, members: m)
            aucs.append(r.auc)
            for (j, f) in fprs.enumerated() { tprs[j].append(r.tpr(atFPR: f)) }
        }
        func interval(_ v: Double, _ xs: [Double]) -> Interval {
            let s = xs.sorted()
            guard !s.isEmpty else { return Interval(value: v, low: v, high: v) }
            return Interval(value: v, low: s[Int(0.025 * Double(s.count - 1))], high: s[Int((0.975 * Double(s.count - 1)).rounded(.up))])
        }
        auc = interval(roc.auc, aucs)
        tprAtFPR = Dictionary(uniqueKeysWithValues: fprs.enumerated().map { ("\($0.element)", interval(roc.tpr(atFPR: $0.element), tprs[$0.offset])) })
    }
}
