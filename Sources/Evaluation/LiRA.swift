import Foundation
import Tensor

/// Per-example membership signals of K models on M examples, Q queries each (noise draws,
/// timesteps, flips — the same for every model), with higher = more member-like (for
/// diffusion models: the negated denoising loss), and who trained on what.
public struct MembershipSignals: Codable, Equatable, Sendable {
    public var models: Int
    public var examples: Int
    public var queries: Int
    /// [models × examples × queries].
    public var values: [Double]
    /// keep[m][i]: model m trained on example i.
    public var keep: [[Bool]]

    public init(models: Int, examples: Int, queries: Int, values: [Double], keep: [[Bool]]) {
        precondition(values.count == models * examples * queries, "signals: \(values.count) values for \(models)×\(examples)×\(queries)")
        precondition(keep.count == models && keep.allSatisfy { $0.count == examples }, "signals: keep matrix is not \(models)×\(examples)")
        self.models = models; self.examples = examples; self.queries = queries; self.values = values; self.keep = keep
    }

    @inline(__always) public func value(_ m: Int, _ i: Int, _ q: Int) -> Double { values[(m * examples + i) * queries + q] }

    /// The same signals restricted to some queries (in the given order).
    public func selecting(queries qs: [Int]) -> MembershipSignals {
        precondition(qs.allSatisfy { $0 >= 0 && $0 < queries }, "signals: query out of range")
        var v = [Double](); v.reserveCapacity(models * examples * qs.count)
        for m in 0..<models { for i in 0..<examples { for q in qs { v.append(value(m, i, q)) } } }
        return MembershipSignals(models: models, examples: examples, queries: qs.count, values: v, keep: keep)
    }

    /// The signal averaged over queries (the Monte-Carlo mean of "Strong LiRA").
    public func averaged() -> MembershipSignals {
        var v = [Double](repeating: 0, count: models * examples)
        for m in 0..<models { for i in 0..<examples { v[m * examples + i] = (0..<queries).reduce(0) { $0 + value(m, i, $1) } / Double(queries) } }
        return MembershipSignals(models: models, examples: examples, queries: 1, values: v, keep: keep)
    }

    /// How many of the K models trained on each example.
    public var memberCounts: [Int] { (0..<examples).map { i in (0..<models).reduce(0) { $0 + (keep[$1][i] ? 1 : 0) } } }
}

/// Membership attacks from the LiRA paper (Carlini et al., 2022, "Membership Inference
/// Attacks From First Principles"; paper-spec §5, A4), applied to diffusion losses as in
/// Carlini et al. (2023) §5.2.
public enum MembershipAttack: String, Codable, CaseIterable, Sendable {
    /// Yeom et al.: one global threshold on the raw signal.
    case globalThreshold = "global-threshold"
    /// Gaussians fitted to each example's IN and OUT shadow signals; score = log-likelihood ratio.
    case online
    /// As `online`, with one pooled within-example σ for IN and one for OUT.
    case onlineFixedVariance = "online-fixed-variance"
    /// Only the OUT Gaussian: one-sided z-score (s − μ_out) / σ_out.
    case offline
    case offlineFixedVariance = "offline-fixed-variance"

    public var fixedVariance: Bool { self == .onlineFixedVariance || self == .offlineFixedVariance }
    /// Whether the attack fits IN shadows (the online variants).
    public var usesInShadows: Bool { self == .online || self == .onlineFixedVariance }
    /// Whether the attack uses shadow models at all (every variant but the global threshold).
    public var usesShadows: Bool { self != .globalThreshold }
}

/// The shadow-set sizes an attack uses for every (target, example) of a leave-one-model-out
/// evaluation. Sizes are common to all trials so that they cannot depend on whether the
/// target trained on the example (see `MembershipAttack.shadowSets(_:)`).
public struct ShadowSets: Codable, Equatable, Sendable {
    /// IN shadows per example (0: not used).
    public var inShadows: Int
    /// OUT shadows per example (0: not used).
    public var outShadows: Int
    public init(inShadows: Int, outShadows: Int) { self.inShadows = inShadows; self.outShadows = outShadows }
}

/// The trials of a leave-one-model-out evaluation: every model in turn is the target and
/// all others are shadows; one trial per (target, example).
public struct MembershipTrials: Codable, Sendable {
    public var attack: MembershipAttack
    public var scores: [Double]
    public var members: [Bool]
    public var examples: [Int]
    public var targets: [Int]
    /// The shadow-set sizes every trial used.
    public var shadows: ShadowSets
}

extension MembershipAttack {
    /// The common shadow-set sizes of a leave-one-model-out evaluation, or an error naming the
    /// example that makes the attack impossible.
    ///
    /// With c_i of the K models trained on example i, target m's shadows hold c_i − 1 IN
    /// copies of i when m trained on it and c_i when it did not (OUT: K − c_i and K − c_i − 1).
    /// Fitting those sets as they are leaks the answer (medians and variances of sets of
    /// different sizes spread differently: on signals without any membership effect the
    /// untrimmed online attacks scored AUC 0.42 at K = 4 and 0.48 at K = 16). So every set is
    /// trimmed to one size for all targets and examples, as the reference code does (it caps
    /// each example's IN and OUT sets at the smallest over examples): IN = min_i c_i − 1,
    /// OUT = min_i (K − c_i) − 1. With a balanced keep matrix (every example in K/2 models)
    /// that is K/2 − 1 each. The global threshold needs no shadows; the offline variants use
    /// only OUT shadows. Per-example variance needs ≥ 2 shadows in each set it fits, fixed
    /// variance ≥ 1.
    public func shadowSets(_ s: MembershipSignals) throws -> ShadowSets {
        guard usesShadows else { return ShadowSets(inShadows: 0, outShadows: 0) }
        let counts = s.memberCounts
        guard let fewestIn = counts.indices.min(by: { (counts[$0], $0) < (counts[$1], $1) }),
              let fewestOut = counts.indices.max(by: { (counts[$0], -$0) < (counts[$1], -$1) }) else {
            throw EvaluationError.input("\(rawValue): no examples")
        }
        let sets = ShadowSets(inShadows: usesInShadows ? max(0, counts[fewestIn] - 1) : 0, outShadows: max(0, s.models - counts[fewestOut] - 1))
        let need = fixedVariance ? 1 : 2
        let alternative = fixedVariance ? "more models, or a keep matrix with every example in about half of them"
                                        : "the \(rawValue)-fixed-variance variant, or more models"
        if sets.outShadows < need {
            throw EvaluationError.input("\(rawValue): example \(fewestOut) is left out by only \(s.models - counts[fewestOut]) of \(s.models) models, so trimmed to a common size every (target, example) has \(sets.outShadows) OUT shadow(s); \(fixedVariance ? "the attack" : "per-example variance") needs \(need) — use \(alternative)")
        }
        if usesInShadows && sets.inShadows < need {
            throw EvaluationError.input("\(rawValue): example \(fewestIn) is in only \(counts[fewestIn]) of \(s.models) models, so trimmed to a common size every (target, example) has \(sets.inShadows) IN shadow(s); \(fixedVariance ? "the attack" : "per-example variance") needs \(need) — use \(alternative)")
        }
        return sets
    }

    /// Scores every (target, example) pair with the other models as shadows.
    /// Means are medians over the trimmed shadow sets (as the reference code); see
    /// `shadowSets(_:)` for the trimming and `score(_:target:)` for the variances.
    public func leaveOneModelOut(_ s: MembershipSignals, targets: [Int]? = nil) throws -> MembershipTrials {
        let targetList = targets ?? Array(0..<s.models)
        let sets = try shadowSets(s)
        var out = MembershipTrials(attack: self, scores: [], members: [], examples: [], targets: [], shadows: sets)
        for m in targetList {
            let scores = try score(s, target: m, sets: sets)
            for i in 0..<s.examples {
                out.scores.append(scores[i]); out.members.append(s.keep[m][i]); out.examples.append(i); out.targets.append(m)
            }
        }
        return out
    }

    /// Membership scores of target model m's examples (higher = member).
    ///
    /// Shadows are the other models: of those that trained on the example, `inShadows` chosen
    /// at random, of those that did not, `outShadows` (`keptShadows`: seeded by target and
    /// example, the same for every query and every attack). Per query, μ = median of the kept
    /// set; per-example σ² = the kept set's unbiased variance. Fixed variance: σ²_in and σ²_out
    /// are within-example variances pooled over *all* of the target's shadows (Σ squared
    /// deviations from each example's mean / Σ (n − 1)), so they exist even when the trimmed
    /// sets hold one shadow each (K = 4), and over every example *but the one scored*: an
    /// example's own untrimmed shadows differ in number with the target's membership, and
    /// pooling them into its own σ pulled the null AUC down by about 0.002 at K = 4 (N = 240).
    public func score(_ s: MembershipSignals, target m: Int) throws -> [Double] {
        try score(s, target: m, sets: try shadowSets(s))
    }

    func score(_ s: MembershipSignals, target m: Int, sets: ShadowSets) throws -> [Double] {
        guard m >= 0 && m < s.models else { throw EvaluationError.input("\(rawValue): target model \(m) is not one of the \(s.models) models") }
        if self == .globalThreshold {
            return (0..<s.examples).map { i in (0..<s.queries).reduce(0) { $0 + s.value(m, i, $1) } / Double(s.queries) }
        }
        let online = usesInShadows
        // per (example, query): median and variance of the kept IN and OUT shadow signals
        var muIn = [Double](repeating: .nan, count: s.examples * s.queries), muOut = muIn, varIn = muIn, varOut = muIn
        // fixed variance: per example, Σ squared deviations and degrees of freedom of all IN / OUT shadows
        var ssIn = [Double](repeating: 0, count: s.examples), ssOut = ssIn
        var dfIn = [Int](repeating: 0, count: s.examples), dfOut = dfIn
        var ins: [Int] = [], outs: [Int] = []
        for i in 0..<s.examples {
            ins.removeAll(keepingCapacity: true); outs.removeAll(keepingCapacity: true)
            for k in 0..<s.models where k != m { if s.keep[k][i] { ins.append(k) } else { outs.append(k) } }
            let keptIn = MembershipAttack.keptShadows(ins, count: sets.inShadows, target: m, example: i, side: "in")
            let keptOut = MembershipAttack.keptShadows(outs, count: sets.outShadows, target: m, example: i, side: "out")
            for q in 0..<s.queries {
                let k = i * s.queries + q
                if online {
                    let all = ins.map { s.value($0, i, q) }, kept = keptIn.map { s.value($0, i, q) }
                    muIn[k] = median(kept)
                    if fixedVariance {
                        if all.count > 1 { ssIn[i] += variance(all) * Double(all.count - 1); dfIn[i] += all.count - 1 }
                    } else { varIn[k] = variance(kept) }
                }
                let all = outs.map { s.value($0, i, q) }, kept = keptOut.map { s.value($0, i, q) }
                muOut[k] = median(kept)
                if fixedVariance {
                    if all.count > 1 { ssOut[i] += variance(all) * Double(all.count - 1); dfOut[i] += all.count - 1 }
                } else { varOut[k] = variance(kept) }
            }
        }
        let totalIn = (ssIn.reduce(0, +), dfIn.reduce(0, +)), totalOut = (ssOut.reduce(0, +), dfOut.reduce(0, +))
        return try (0..<s.examples).map { i in
            var fixedIn = 0.0, fixedOut = 0.0
            if fixedVariance {
                let df = (online ? totalIn.1 - dfIn[i] : 1, totalOut.1 - dfOut[i])
                guard df.0 > 0 && df.1 > 0 else {
                    throw EvaluationError.input("\(rawValue): apart from example \(i), no example has two \(df.1 == 0 ? "OUT" : "IN") shadows for target \(m), so the pooled variance is undefined; use more models or examples")
                }
                if online { fixedIn = (totalIn.0 - ssIn[i]) / Double(df.0) }
                fixedOut = (totalOut.0 - ssOut[i]) / Double(df.1)
            }
            var total = 0.0
            for q in 0..<s.queries {
                let k = i * s.queries + q, x = s.value(m, i, q)
                let vOut = max(fixedVariance ? fixedOut : varOut[k], 1e-30)
                switch self {
                case .offline, .offlineFixedVariance:
                    total += (x - muOut[k]) / vOut.squareRoot()
                default:
                    let vIn = max(fixedVariance ? fixedIn : varIn[k], 1e-30)
                    total += logNormal(x, muIn[k], vIn) - logNormal(x, muOut[k], vOut)
                }
            }
            guard !total.isNaN else {
                throw EvaluationError.input("\(rawValue): the score of example \(i) for target \(m) is not a number (signals too large in magnitude for Gaussian fits)")
            }
            return total / Double(s.queries)
        }
    }
}

extension MembershipAttack {
    /// The shadows kept of `shadows` (one side of a target's shadows of one example, in model
    /// order): `count` of them, the others dropped uniformly at random with a stream keyed by
    /// (target, example, side) only, returned in model order. Random, not the reference code's
    /// "first in model order": with one fixed target (the reference) any fixed rule is fair,
    /// but leave-one-model-out drops a shadow only from the side the target is *not* on, so a
    /// fixed rule would keep the last models out of non-member trials' IN sets and out of
    /// member trials' OUT sets; models differ (seed, overall loss level), and that made the
    /// null AUC swing 3–4× more from one keep matrix to the next (sd 0.054 vs 0.019 at K = 4
    /// with per-model offsets). Drawn at random, every shadow is kept with the same chance
    /// whether or not the target trained on the example.
    public static func keptShadows(_ shadows: [Int], count: Int, target: Int, example: Int, side: String) -> [Int] {
        guard count < shadows.count else { return shadows }
        var a = shadows
        var stream = RandomStream(key: RandomKey(seed: 0x11AA).fold("lira-shadows").fold(UInt64(target)).fold(UInt64(example)).fold(side))
        let drop = a.count - count
        for j in 0..<drop { a.swapAt(j, j + stream.nextInt(below: a.count - j)) }
        return a[drop...].sorted()
    }
}

func logNormal(_ x: Double, _ mu: Double, _ v: Double) -> Double { -0.5 * ((x - mu) * (x - mu) / v + log(2 * Double.pi * v)) }

/// The median (mean of the middle two for an even count).
public func median(_ v: [Double]) -> Double {
    let s = v.sorted(), n = s.count
    return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
}

/// Unbiased sample variance (0 for fewer than 2 values).
func variance(_ v: [Double]) -> Double {
    guard v.count > 1 else { return 0 }
    let m = v.reduce(0, +) / Double(v.count)
    return v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(v.count - 1)
}
