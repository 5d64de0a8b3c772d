import Foundation
import Privacy
import XCTest

/// The one-run audit (Steinke, Nasr and Jagielski 2023): p-values and bounds against an
/// independent scipy implementation (bench/audit_reference.py), and known-answer mechanisms:
/// a signal that reveals membership perfectly gives the largest bound r guesses can give, a
/// pure-noise signal gives ≈ 0, and ε₀-randomized response is bounded close to, and almost
/// never above, ε₀.
final class AuditTests: XCTestCase {
    /// (m, r, v, ε, δ, p-value, ε lower bound at p = 0.05) from `bench/audit_reference.py`.
    let reference: [(Int, Int, Int, Double, Double, Double, Double)] = [
        (1000, 100, 80, 1.0, 0.0, 0.07155624680483674, 0.958392045292099),
        (1000, 100, 80, 1.0, 1e-05, 0.07300911594917776, 0.9553185349552558),
        (1000, 1000, 600, 0.5, 1e-05, 0.9326488841050369, 0.29722695371877517),
        (64, 64, 64, 3.0, 0.0, 0.04461922313946681, 3.038198933836084),
        (64, 64, 64, 3.0, 0.01, 0.29829976436044714, 0.875131760184216),
        (5000, 200, 190, 2.0, 0.0001, 0.04761947795862011, 2.033158351932924),
        (100, 10, 3, 0.2, 0.0, 0.9725405430633993, 0.0),
        (100000, 100000, 73000, 0.99, 1e-05, 0.2648303226472799, 0.9825848249556766),
    ]

    func testMatchesScipyReference() {
        for (m, r, v, eps, delta, p, bound) in reference {
            let got = OneRunAudit.pValue(canaries: m, guesses: r, correct: v, epsilon: eps, delta: delta)
            XCTAssertEqual(got, p, accuracy: 1e-9 + 1e-7 * p, "p-value m \(m) r \(r) v \(v) ε \(eps) δ \(delta)")
            let b = OneRunAudit.epsilonLowerBound(canaries: m, guesses: r, correct: v, delta: delta)
            XCTAssertEqual(b, bound, accuracy: 1e-6, "bound m \(m) r \(r) v \(v) δ \(delta)")
        }
    }

    func testPValueFallsWithEvidenceAndRisesWithEpsilonAndDelta() {
        let base = OneRunAudit.pValue(canaries: 1000, guesses: 200, correct: 150, epsilon: 0.5, delta: 1e-5)
        XCTAssertLessThan(OneRunAudit.pValue(canaries: 1000, guesses: 200, correct: 160, epsilon: 0.5, delta: 1e-5), base)
        XCTAssertGreaterThan(OneRunAudit.pValue(canaries: 1000, guesses: 200, correct: 150, epsilon: 0.8, delta: 1e-5), base)
        XCTAssertGreaterThan(OneRunAudit.pValue(canaries: 1000, guesses: 200, correct: 150, epsilon: 0.5, delta: 1e-3), base)
        XCTAssertEqual(OneRunAudit.pValue(canaries: 10, guesses: 0, correct: 0, epsilon: 1, delta: 0), 1)
    }

    /// A deterministic stream for the simulated mechanisms (SplitMix64).
    struct Stream {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
    }

    func coins(_ m: Int, _ s: inout Stream) -> [Bool] { (0..<m).map { _ in s.next() & 1 == 1 } }

    /// A signal that reveals membership perfectly: r correct guesses out of r, so the bound is
    /// the closed form ε = logit(p^{1/r}) (δ = 0), the most any audit with r guesses can show.
    func testPerfectSignalGivesTheTightestBound() {
        var s = Stream(state: 1)
        let included = coins(1000, &s)
        let scores = included.map { $0 ? 1.0 : 0.0 }
        let o = OneRunAudit.audit(scores: scores, included: included, delta: 0, grid: [(guessIn: 100, guessOut: 0)])
        XCTAssertEqual(o.correct, 100)
        let q = pow(0.05, 1.0 / 100)
        XCTAssertEqual(o.epsilonLowerBound, log(q / (1 - q)), accuracy: 1e-6)
        // the default grid (14 tests, each at level 0.05/14) finds its best bound with the
        // most all-correct guesses (500 of them): the closed form at that level
        let best = OneRunAudit.audit(scores: scores, included: included, delta: 0)
        XCTAssertEqual(best.tests, 14)
        XCTAssertEqual(best.guesses, 500); XCTAssertEqual(best.correct, 500)
        let q500 = pow(0.05 / 14, 1.0 / 500)
        XCTAssertEqual(best.epsilonLowerBound, log(q500 / (1 - q500)), accuracy: 1e-6)
    }

    /// A signal of pure noise: no evidence, the bound is 0 (or nearly).
    func testPureNoiseSignalGivesAboutZero() {
        var s = Stream(state: 2)
        let included = coins(2000, &s)
        let scores = (0..<2000).map { _ in s.uniform() }
        let o = OneRunAudit.audit(scores: scores, included: included, delta: 1e-5)
        XCTAssertLessThan(o.epsilonLowerBound, 0.05, "\(o)")
    }

    /// ε₀-randomized response (the signal tells the truth with probability e^ε₀/(1 + e^ε₀)) is
    /// exactly ε₀-DP: with 10⁵ canaries the bound comes within 5 % of ε₀, and over 40
    /// independent audits of 2,000 canaries it exceeds ε₀ about 5 % of the time, as a 95 %
    /// bound must (at most 6 of 40 here; the count is binomial(40, ≤ 0.05)).
    func testRandomizedResponseIsBoundedNearAndBelowItsEpsilon() {
        let eps0 = 1.0, truth = 1 / (1 + exp(-eps0))
        func mechanism(_ m: Int, seed: UInt64) -> (scores: [Double], included: [Bool]) {
            var s = Stream(state: seed)
            let included = coins(m, &s)
            // the released bit, then a tiny tie-breaker that carries no information
            let scores = included.map { inc -> Double in
                let bit = s.uniform() < truth ? inc : !inc
                return (bit ? 1 : 0) + 1e-3 * s.uniform()
            }
            return (scores, included)
        }
        let big = mechanism(100_000, seed: 3)
        let o = OneRunAudit.audit(scores: big.scores, included: big.included, delta: 0, grid: [(guessIn: 50_000, guessOut: 50_000)])
        XCTAssertGreaterThan(o.epsilonLowerBound, 0.95 * eps0, "\(o)")
        XCTAssertLessThanOrEqual(o.epsilonLowerBound, eps0, "\(o)")
        var above = 0
        for seed in 100..<140 {
            let a = mechanism(2000, seed: UInt64(seed))
            if OneRunAudit.audit(scores: a.scores, included: a.included, delta: 0, grid: [(guessIn: 1000, guessOut: 1000)]).epsilonLowerBound > eps0 { above += 1 }
        }
        XCTAssertLessThanOrEqual(above, 6)
    }

    func testGuessesIgnoreTheCoinsAndBreakTiesByOrder() {
        // equal scores: the first canaries are guessed IN, the last OUT, whatever the coins
        let scores = [Double](repeating: 0, count: 6)
        XCTAssertEqual(OneRunAudit.correctGuesses(scores: scores, included: [true, true, false, false, false, true], guessIn: 2, guessOut: 2), 3)
        XCTAssertEqual(OneRunAudit.correctGuesses(scores: [3, 2, 1, 0], included: [true, false, true, false], guessIn: 1, guessOut: 1), 2)
        XCTAssertEqual(OneRunAudit.defaultGuessGrid(canaries: 10).map { [$0.guessIn, $0.guessOut] },
                       [[1, 0], [1, 1], [2, 0], [3, 2], [5, 0], [5, 5], [10, 0]])
    }
}
