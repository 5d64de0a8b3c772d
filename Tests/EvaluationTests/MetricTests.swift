import Data
import Evaluation
import Tensor
import XCTest

/// Known-answer tests for the evaluator's statistics: ROC/AUC/TPR by hand, LiRA on planted
/// Gaussian signals, Spearman by hand.
final class MetricTests: XCTestCase {
    func testROCByHand() {
        // members 0.9 0.8 0.6, non-members 0.7 0.55 0.5: 8 of 9 (member, non-member) pairs ordered
        let roc = ROC(scores: [0.9, 0.8, 0.7, 0.6, 0.55, 0.5], members: [true, true, false, true, false, false])
        XCTAssertEqual(roc.auc, 8.0 / 9.0, accuracy: 1e-12)
        XCTAssertEqual(roc.fpr, [0, 0, 0, 1.0 / 3, 1.0 / 3, 2.0 / 3, 1])
        XCTAssertEqual(roc.tpr, [0, 1.0 / 3, 2.0 / 3, 2.0 / 3, 1, 1, 1])
        XCTAssertEqual(roc.tpr(atFPR: 0), 2.0 / 3)
        XCTAssertEqual(roc.tpr(atFPR: 0.34), 1)
        // ties count one half; a perfect and a reversed attack
        XCTAssertEqual(ROC(scores: [1, 1, 0], members: [true, false, false]).auc, 0.75, accuracy: 1e-12)
        XCTAssertEqual(ROC(scores: [3, 2, 1], members: [true, false, false]).auc, 1)
        XCTAssertEqual(ROC(scores: [1, 2, 3], members: [true, false, false]).auc, 0)
        XCTAssertEqual(ROC(scores: [1, 2, 3], members: [true, false, false]).tpr(atFPR: 0.1), 0)
    }

    func testBootstrapIntervalsBracketTheEstimate() {
        var s = RandomStream(key: RandomKey(seed: 3))
        let members = (0..<400).map { $0 % 2 == 0 }
        let scores = members.map { ($0 ? 0.8 : 0) + gaussian(&s) }
        let m = AttackMetrics(scores: scores, members: members, bootstrap: 300)
        XCTAssertLessThanOrEqual(m.auc.low, m.auc.value); XCTAssertGreaterThanOrEqual(m.auc.high, m.auc.value)
        XCTAssertGreaterThan(m.auc.high - m.auc.low, 0.02); XCTAssertLessThan(m.auc.high - m.auc.low, 0.2)
        // theoretical AUC Φ(0.8/√2) = 0.714
        XCTAssertEqual(m.auc.value, 0.714, accuracy: 0.06)
    }

    func gaussian(_ s: inout RandomStream) -> Double {
        let u1 = max(s.nextUniform(), 1e-300), u2 = s.nextUniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }

    /// Examples differ a lot in difficulty (per-example mean ~ N(0, 1)); training on an
    /// example raises its signal by 0.5 with per-model noise 0.2. A global threshold drowns
    /// in the difficulty spread; LiRA calibrates per example and recovers the planted
    /// separation, AUC ≈ Φ(0.5 / (0.2·√2)) = 0.961 for the ideal likelihood-ratio test.
    func testLiRARecoversPlantedSeparation() throws {
        let models = 16, examples = 500
        var s = RandomStream(key: RandomKey(seed: 11))
        let difficulty = (0..<examples).map { _ in gaussian(&s) }
        // each example in exactly half of the models
        var keep = [[Bool]](repeating: [Bool](repeating: false, count: examples), count: models)
        for i in 0..<examples {
            let perm = randomPermutation(models, key: RandomKey(seed: 5).fold(UInt64(i)))
            for m in perm.prefix(models / 2) { keep[m][i] = true }
        }
        var values: [Double] = []
        for m in 0..<models { for i in 0..<examples { values.append(difficulty[i] + (keep[m][i] ? 0.5 : 0) + 0.2 * gaussian(&s)) } }
        let signals = MembershipSignals(models: models, examples: examples, queries: 1, values: values, keep: keep)
        var auc: [MembershipAttack: Double] = [:]
        for attack in MembershipAttack.allCases {
            let trials = try attack.leaveOneModelOut(signals)
            XCTAssertEqual(trials.scores.count, models * examples)
            auc[attack] = ROC(scores: trials.scores, members: trials.members).auc
        }
        XCTAssertEqual(auc[.onlineFixedVariance]!, 0.961, accuracy: 0.02)
        XCTAssertEqual(auc[.online]!, 0.961, accuracy: 0.04)
        XCTAssertGreaterThan(auc[.offlineFixedVariance]!, 0.9)
        XCTAssertLessThan(auc[.globalThreshold]!, 0.7, "the difficulty spread should defeat a global threshold")
        // a signal with no membership effect gives chance
        let null = MembershipSignals(models: models, examples: examples, queries: 1,
                                     values: (0..<(models * examples)).map { difficulty[$0 % examples] + 0.2 * gaussian(&s) }, keep: keep)
        let t = try MembershipAttack.onlineFixedVariance.leaveOneModelOut(null)
        XCTAssertEqual(ROC(scores: t.scores, members: t.members).auc, 0.5, accuracy: 0.03)
    }

    func testLiRARefusesTooFewShadows() {
        let keep = [[true], [false], [true]]
        let s = MembershipSignals(models: 3, examples: 1, queries: 1, values: [1, 2, 3], keep: keep)
        XCTAssertThrowsError(try MembershipAttack.online.leaveOneModelOut(s))
        XCTAssertNoThrow(try MembershipAttack.globalThreshold.leaveOneModelOut(s))
    }

    func testSpearmanAndDecilesByHand() {
        XCTAssertEqual(RankStatistics.ranks([5, 6, 7, 8, 7]), [1, 2, 3.5, 5, 3.5])
        XCTAssertEqual(RankStatistics.spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]), 8 / 95.0.squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(RankStatistics.spearman([1, 2, 3], [3, 2, 1]), -1, accuracy: 1e-12)
        let bins = RankStatistics.binMeans(key: (0..<10).map(Double.init), value: (0..<10).map { Double($0 % 2) }, bins: 5)
        XCTAssertEqual(bins.map(\.count), [2, 2, 2, 2, 2])
        XCTAssertEqual(bins.map(\.mean), [0.5, 0.5, 0.5, 0.5, 0.5])
        XCTAssertEqual(bins.first!.lowKey, 0); XCTAssertEqual(bins.last!.highKey, 9)
    }
}
