import Evaluation
import XCTest

/// Known answers for the intervals the tables print.
final class IntervalTests: XCTestCase {
    func testClopperPearsonMatchesPublishedValues() {
        // k = 0: the upper bound is 1 − (α/2)^(1/n) in closed form
        let z = Intervals.clopperPearson(successes: 0, trials: 10)
        XCTAssertEqual(z.low, 0)
        XCTAssertEqual(z.high, 1 - pow(0.025, 0.1), accuracy: 1e-9)
        // k = n mirrors it
        let n = Intervals.clopperPearson(successes: 10, trials: 10)
        XCTAssertEqual(n.low, pow(0.025, 0.1), accuracy: 1e-9); XCTAssertEqual(n.high, 1)
        // 5 of 10: 0.187086, 0.812914 (scipy: beta.ppf(0.025, 5, 6), beta.ppf(0.975, 6, 5))
        let h = Intervals.clopperPearson(successes: 5, trials: 10)
        XCTAssertEqual(h.low, 0.187086, accuracy: 1e-6); XCTAssertEqual(h.high, 0.812914, accuracy: 1e-6)
        // 12 of 64: 0.1008152, 0.3046229 (scipy: beta.ppf(0.025, 12, 53), beta.ppf(0.975, 13, 52))
        let t = Intervals.clopperPearson(successes: 12, trials: 64)
        XCTAssertEqual(t.low, 0.1008152, accuracy: 1e-6); XCTAssertEqual(t.high, 0.3046229, accuracy: 1e-6)
        // 99% is wider
        let w = Intervals.clopperPearson(successes: 12, trials: 64, confidence: 0.99)
        XCTAssertLessThan(w.low, t.low); XCTAssertGreaterThan(w.high, t.high)
    }

    func testMeanAndSampleStd() {
        let (m, s) = Intervals.meanStd([2, 4, 4, 4, 5, 5, 7, 9])
        XCTAssertEqual(m, 5); XCTAssertEqual(s, (32.0 / 7).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(Intervals.meanStd([3]).std, 0)
    }

    func testSpearmanIntervalByFisherZ() {
        // ρ = 0.5, n = 103: z = atanh 0.5, SE = √(1.06/100); tanh(z ∓ 1.959964 SE) (computed independently)
        let ci = Intervals.spearman(0.5, n: 103)
        XCTAssertEqual(ci.low, 0.3341703233784237, accuracy: 1e-9)
        XCTAssertEqual(ci.high, 0.6358028251770368, accuracy: 1e-9)
        // symmetric in the sign of ρ, narrower with more examples, uninformative at n ≤ 3
        let neg = Intervals.spearman(-0.5, n: 103)
        XCTAssertEqual(neg.low, -ci.high, accuracy: 1e-12); XCTAssertEqual(neg.high, -ci.low, accuracy: 1e-12)
        let wide = Intervals.spearman(0.5, n: 20)
        XCTAssertLessThan(wide.low, ci.low); XCTAssertGreaterThan(wide.high, ci.high)
        XCTAssertTrue(Intervals.spearman(0.9, n: 3) == (-1, 1))
        XCTAssertTrue(Intervals.spearman(.nan, n: 50) == (-1, 1))
    }
}
