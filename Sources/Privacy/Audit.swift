import Foundation

/// Privacy auditing with one training run (Steinke, Nasr and Jagielski, NeurIPS 2023,
/// "Privacy Auditing with One (1) Training Run"): m canaries, each included in training by
/// an independent fair coin; an auditor scores every canary, guesses IN for the k₊ most
/// member-like and OUT for the k₋ least, abstains on the rest, and counts its correct
/// guesses v out of r = k₊ + k₋. If training is (ε, δ)-DP, v is stochastically dominated by
/// Binomial(r, e^ε/(1 + e^ε)) up to a δ term (their Theorem 3.3 / Algorithm 2), so a large v
/// rejects ε: the largest ε rejected at confidence 1 − p is a lower bound on the run's true ε.
///
/// The bound is valid for any scoring function that does not look at the coins. It is an
/// empirical *lower* bound; the accountant gives the *upper* bound. A correct DP-SGD run can
/// never show a lower bound above its accountant's ε except with probability p.
public enum OneRunAudit {
    /// What an audit counted and concluded.
    public struct Outcome: Codable, Equatable, Sendable {
        /// Canaries (m) and how many of them were IN.
        public var canaries: Int
        public var included: Int
        /// Guesses IN (k₊) and OUT (k₋) and the correct ones among them.
        public var guessedIn: Int
        public var guessedOut: Int
        public var correct: Int
        /// The lower bound on ε at `confidence` (0 when the guesses show no evidence).
        public var epsilonLowerBound: Double
        public var delta: Double
        public var confidence: Double
        /// Tests the confidence was shared among (Bonferroni): 1 for fixed guess counts.
        public var tests: Int
        public var guesses: Int { guessedIn + guessedOut }
    }

    /// log P[Binomial(r, q) = k] with log q and log(1 − q) given (stable for q near 0 or 1).
    static func logBinomialPMF(_ k: Int, _ r: Int, logQ: Double, log1mQ: Double) -> Double {
        let coef = lgamma(Double(r) + 1) - lgamma(Double(k) + 1) - lgamma(Double(r - k) + 1)
        let a = k == 0 ? 0 : Double(k) * logQ
        let b = r - k == 0 ? 0 : Double(r - k) * log1mQ
        return coef + a + b
    }

    /// softplus(x) = log(1 + eˣ), without overflow.
    static func softplus(_ x: Double) -> Double { max(x, 0) + log1p(exp(-abs(x))) }

    /// The probability, if training is (ε, δ)-DP, of at least v correct guesses out of r
    /// among m canaries (Steinke et al. 2023, Algorithm 2 / Proposition 5.2): P[Binomial(r, q) ≥ v]
    /// with q = e^ε/(1 + e^ε), plus 2·m·δ·max_{i=1…v} P[v − i ≤ Binomial(r, q) < v]/i; at most 1.
    public static func pValue(canaries m: Int, guesses r: Int, correct v: Int, epsilon: Double, delta: Double) -> Double {
        precondition(0 <= v && v <= r && r <= m, "audit: need 0 ≤ correct \(v) ≤ guesses \(r) ≤ canaries \(m)")
        precondition(epsilon >= 0 && delta >= 0 && delta <= 1, "audit: ε \(epsilon) ≥ 0, δ \(delta) in [0, 1]")
        if v == 0 { return 1 }
        let logQ = -softplus(-epsilon), log1mQ = -softplus(epsilon)
        // β = P[Binomial(r, q) ≥ v], summed from the largest term down for accuracy
        var beta = 0.0
        for k in stride(from: r, through: v, by: -1) { beta += exp(logBinomialPMF(k, r, logQ: logQ, log1mQ: log1mQ)) }
        var alpha = 0.0, sum = 0.0
        if delta > 0 {
            for i in 1...v {
                sum += exp(logBinomialPMF(v - i, r, logQ: logQ, log1mQ: log1mQ))
                alpha = max(alpha, sum / Double(i))
            }
        }
        return min(1, beta + alpha * delta * 2 * Double(m))
    }

    /// The largest ε (to 1e-9) that v correct guesses out of r reject at level `pValue`
    /// (default 0.05: 95 % confidence): every ε below it has pValue(ε) < p. 0 when even ε = 0
    /// is not rejected (no evidence of leakage).
    public static func epsilonLowerBound(canaries m: Int, guesses r: Int, correct v: Int, delta: Double, pValue p: Double = 0.05) -> Double {
        precondition(p > 0 && p < 1, "audit: p-value level \(p) must be in (0, 1)")
        func rejected(_ e: Double) -> Bool { pValue(canaries: m, guesses: r, correct: v, epsilon: e, delta: delta) < p }
        guard rejected(0) else { return 0 }
        var lo = 0.0, hi = 1.0
        while rejected(hi) { lo = hi; hi *= 2; if hi > 1e4 { return lo } }
        while hi - lo > 1e-9 * max(1, lo) {
            let mid = (lo + hi) / 2
            if rejected(mid) { lo = mid } else { hi = mid }
        }
        return lo
    }

    /// Guesses from scores (higher = more member-like): IN for the `guessIn` highest, OUT
    /// for the `guessOut` lowest (ties broken by canary order, never by the coins); returns
    /// how many guesses were correct.
    public static func correctGuesses(scores: [Double], included: [Bool], guessIn: Int, guessOut: Int) -> Int {
        precondition(scores.count == included.count, "audit: \(scores.count) scores for \(included.count) canaries")
        precondition(guessIn >= 0 && guessOut >= 0 && guessIn + guessOut <= scores.count,
                     "audit: \(guessIn) IN + \(guessOut) OUT guesses for \(scores.count) canaries")
        precondition(!scores.contains { $0.isNaN }, "audit: a score is NaN")
        let order = scores.indices.sorted { (scores[$0], -$0) > (scores[$1], -$1) }
        let ins = order.prefix(guessIn).filter { included[$0] }.count
        let outs = order.suffix(guessOut).filter { !included[$0] }.count
        return ins + outs
    }

    /// The default guess counts, fixed before looking at anything: r ∈ {1, 2, 5, 10, 20, 50,
    /// 100} % of m (at least 1, distinct), each split evenly (k₊ = ⌈r/2⌉, k₋ = ⌊r/2⌋) and
    /// also all-IN (k₊ = r, k₋ = 0): members stand out by a low loss more often than
    /// non-members by a high one.
    public static func defaultGuessGrid(canaries m: Int) -> [(guessIn: Int, guessOut: Int)] {
        var rs: [Int] = []
        for f in [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0] {
            let r = max(1, Int((Double(m) * f).rounded()))
            if r <= m && !rs.contains(r) { rs.append(r) }
        }
        var grid: [(Int, Int)] = []
        for r in rs {
            grid.append(((r + 1) / 2, r / 2))
            if r > 1 { grid.append((r, 0)) }
        }
        return grid
    }

    /// The audit over a grid of guess counts with a Bonferroni correction: each of the T
    /// tests runs at level (1 − confidence)/T, and the best bound holds at `confidence`
    /// jointly (a union bound; choosing the best after the fact costs exactly this).
    public static func audit(scores: [Double], included: [Bool], delta: Double, confidence: Double = 0.95,
                             grid: [(guessIn: Int, guessOut: Int)]? = nil) -> Outcome {
        precondition(confidence > 0 && confidence < 1, "audit: confidence \(confidence) must be in (0, 1)")
        let m = scores.count
        let grid = grid ?? defaultGuessGrid(canaries: m)
        precondition(!grid.isEmpty, "audit: no guess counts")
        let level = (1 - confidence) / Double(grid.count)
        var best: Outcome? = nil
        for g in grid {
            let v = correctGuesses(scores: scores, included: included, guessIn: g.guessIn, guessOut: g.guessOut)
            let e = epsilonLowerBound(canaries: m, guesses: g.guessIn + g.guessOut, correct: v, delta: delta, pValue: level)
            let o = Outcome(canaries: m, included: included.filter { $0 }.count, guessedIn: g.guessIn, guessedOut: g.guessOut,
                            correct: v, epsilonLowerBound: e, delta: delta, confidence: confidence, tests: grid.count)
            // the largest bound; among equal bounds (0 above all) the most guesses, the most informative counts
            if best == nil || e > best!.epsilonLowerBound || (e == best!.epsilonLowerBound && o.guesses > best!.guesses) { best = o }
        }
        return best!
    }
}
