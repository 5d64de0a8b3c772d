import Foundation

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

    /// The signal averaged over queries (the Monte-Carlo mean of "Strong LiRA").
    public func averaged() -> MembershipSignals {
        var v = [Double](repeating: 0, count: models * examples)
        for m in 0..<models { for i in 0..<examples { v[m * examples + i] = (0..<queries).reduce(0) { $0 + value(m, i, $1) } / Double(queries) } }
        return MembershipSignals(models: models, examples: examples, queries: 1, values: v, keep: keep)
    }
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

    var fixedVariance: Bool { self == .onlineFixedVariance || self == .offlineFixedVariance }
}

/// The trials of a leave-one-model-out evaluation: every model in turn is the target and
/// all others are shadows; one trial per (target, example).
public struct MembershipTrials: Codable, Sendable {
    public var attack: MembershipAttack
    public var scores: [Double]
    public var members: [Bool]
    public var examples: [Int]
    public var targets: [Int]
}

extension MembershipAttack {
    /// Scores every (target, example) pair with the other models as shadows.
    /// Means are medians over shadows (as the reference code); per-example σ needs ≥ 2 IN and
    /// ≥ 2 OUT shadows (use a fixed-variance variant with few shadow models).
    public func leaveOneModelOut(_ s: MembershipSignals, targets: [Int]? = nil) throws -> MembershipTrials {
        let targetList = targets ?? Array(0..<s.models)
        var out = MembershipTrials(attack: self, scores: [], members: [], examples: [], targets: [])
        for m in targetList {
            let scores = try score(s, target: m)
            for i in 0..<s.examples {
                out.scores.append(scores[i]); out.members.append(s.keep[m][i]); out.examples.append(i); out.targets.append(m)
            }
        }
        return out
    }

    /// Membership scores of target model m's examples (higher = member).
    public func score(_ s: MembershipSignals, target m: Int) throws -> [Double] {
        if self == .globalThreshold {
            return (0..<s.examples).map { i in (0..<s.queries).reduce(0) { $0 + s.value(m, i, $1) } / Double(s.queries) }
        }
        let shadows = (0..<s.models).filter { $0 != m }
        // per (example, query): median and variance of IN and OUT shadow signals
        var muIn = [Double](repeating: .nan, count: s.examples * s.queries), muOut = muIn, varIn = muIn, varOut = muIn
        var pooledIn = (0.0, 0), pooledOut = (0.0, 0)
        for i in 0..<s.examples {
            let ins = shadows.filter { s.keep[$0][i] }, outs = shadows.filter { !s.keep[$0][i] }
            let online = self == .online || self == .onlineFixedVariance
            if outs.isEmpty || (online && ins.isEmpty) {
                throw EvaluationError.input("\(rawValue): example \(i) has \(ins.count) IN and \(outs.count) OUT shadow models for target \(m); need at least one of each (more shadow models)")
            }
            if !fixedVariance && (outs.count < 2 || (online && ins.count < 2)) {
                throw EvaluationError.input("\(rawValue): example \(i) has \(ins.count) IN / \(outs.count) OUT shadow models; per-example variance needs 2 of each — use the fixed-variance variant")
            }
            for q in 0..<s.queries {
                let k = i * s.queries + q
                if !ins.isEmpty {
                    let v = ins.map { s.value($0, i, q) }
                    muIn[k] = median(v); varIn[k] = variance(v)
                    if v.count > 1 { pooledIn.0 += varIn[k] * Double(v.count - 1); pooledIn.1 += v.count - 1 }
                }
                let v = outs.map { s.value($0, i, q) }
                muOut[k] = median(v); varOut[k] = variance(v)
                if v.count > 1 { pooledOut.0 += varOut[k] * Double(v.count - 1); pooledOut.1 += v.count - 1 }
            }
        }
        let fixedIn = pooledIn.1 > 0 ? pooledIn.0 / Double(pooledIn.1) : 0
        let fixedOut = pooledOut.1 > 0 ? pooledOut.0 / Double(pooledOut.1) : 0
        return (0..<s.examples).map { i in
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
            return total / Double(s.queries)
        }
    }
}

func logNormal(_ x: Double, _ mu: Double, _ v: Double) -> Double { -0.5 * ((x - mu) * (x - mu) / v + log(2 * Double.pi * v)) }

func median(_ v: [Double]) -> Double {
    let s = v.sorted(), n = s.count
    return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
}

/// Unbiased sample variance (0 for fewer than 2 values).
func variance(_ v: [Double]) -> Double {
    guard v.count > 1 else { return 0 }
    let m = v.reduce(0, +) / Double(v.count)
    return v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(v.count - 1)
}
