import Foundation
import Privacy
import XCTest

/// The RDP accountant against Opacus 1.6 (`opacus.accountants.analysis.rdp`, computed with
/// its default orders; the classic ε is min over orders of rdp + log(1/δ)/(α − 1)), and its
/// own invariants.
final class RDPAccountantTests: XCTestCase {
    /// (q, σ, steps, δ) → (improved ε, its order, classic ε), from Opacus.
    static let opacus: [(Double, Double, Int, Double, Double, Double, Double)] = [
        (0.01, 1.1, 1000, 1e-5, 1.7117700912203435, 9.6, 2.0820845442570732),
        (256.0 / 60000, 1.1, 14100, 1e-5, 2.6003429386103023, 8.1, 3.0124127259534426),
        (0.004, 0.8, 5000, 1e-5, 2.92523658148822, 5.9, 3.4726440857211998),
        (0.1, 4.0, 100, 1e-6, 1.2282987301348232, 18.0, 1.450822142819804),
        (1.0, 5.0, 10, 1e-5, 2.8136532471298397, 7.9, 3.234858613811872),
        (0.02, 0.5, 200, 1e-5, 14.352062162733562, 2.1, 15.673177822867139),
    ]

    func testEpsilonMatchesOpacus() {
        for (q, s, t, d, improved, order, classic) in Self.opacus {
            let p = PrivacySpent(phases: [(q, s, t)], delta: d)
            XCTAssertEqual(p.epsilonImproved, improved, accuracy: 1e-9 * improved, "improved ε at q \(q) σ \(s) T \(t)")
            XCTAssertEqual(p.bestOrder, order, accuracy: 1e-12, "best order at q \(q) σ \(s) T \(t)")
            XCTAssertEqual(p.epsilonClassic, classic, accuracy: 1e-9 * classic, "classic ε at q \(q) σ \(s) T \(t)")
            XCTAssertLessThanOrEqual(p.epsilonImproved, p.epsilonClassic)
        }
    }

    /// 240 (q, σ, T, δ) points generated with Opacus 1.6 (bench/rdp_reference.py --grid,
    /// committed as opacus-grid.csv): improved and classic ε to 1e-6 relative, the same best order.
    func testEpsilonMatchesOpacusOnAGrid() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("opacus-grid.csv").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var checked = 0
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && !line.hasPrefix("q,") {
            let v = line.split(separator: ",").map { Double($0)! }
            let p = PrivacySpent(phases: [(v[0], v[1], Int(v[2]))], delta: v[3])
            let what = "q \(v[0]) σ \(v[1]) T \(Int(v[2])) δ \(v[3])"
            XCTAssertEqual(p.epsilonImproved, v[4], accuracy: 1e-6 * v[4], "improved ε at \(what)")
            XCTAssertEqual(p.bestOrder, v[5], "best order at \(what)")
            XCTAssertEqual(p.epsilonClassic, v[6], accuracy: 1e-6 * v[6], "classic ε at \(what)")
            checked += 1
        }
        XCTAssertEqual(checked, 240)
    }

    /// TF Privacy's MNIST table (N = 60,000, batch 256, δ = 1e-5, classic conversion; steps
    /// = ⌈epochs · N / batch⌉ as its `compute_dp_sgd_privacy` counts them): σ = 1.1 for 60
    /// epochs → ε ≈ 3.01, σ = 0.7 for 45 → 7.10, σ = 1.3 for 15 → 1.19 (two decimals).
    func testTFPrivacyMNISTTable() {
        for (sigma, epochs, published) in [(1.1, 60.0, 3.01), (0.7, 45.0, 7.10), (1.3, 15.0, 1.19)] {
            let steps = Int((epochs * 60000 / 256).rounded(.up))
            let p = PrivacySpent(phases: [(256.0 / 60000, sigma, steps)], delta: 1e-5)
            XCTAssertEqual(p.epsilonClassic, published, accuracy: 0.005, "σ \(sigma), \(epochs) epochs")
            XCTAssertLessThan(p.epsilonImproved, p.epsilonClassic)
        }
    }

    /// Single-step RDP at fractional and integer orders (Opacus `_compute_rdp`).
    func testSingleStepRDPAtFractionalAndIntegerOrders() {
        for (q, s, a, want) in [(0.01, 1.1, 2.5, 0.00016207740933199663), (0.01, 1.1, 32.0, 8.469416433675926),
                                (0.3, 0.7, 1.5, 0.25595572639898845), (0.3, 0.7, 7.0, 5.738235300141619)] {
            XCTAssertEqual(RDP.subsampledGaussian(q: q, sigma: s, order: a), want, accuracy: 1e-9 * want, "q \(q) σ \(s) α \(a)")
        }
        // no subsampling: the Gaussian mechanism's α / (2σ²); nothing sampled: 0
        XCTAssertEqual(RDP.subsampledGaussian(q: 1, sigma: 2, order: 5), 5.0 / 8)
        XCTAssertEqual(RDP.subsampledGaussian(q: 0, sigma: 2, order: 5), 0)
    }

    /// Large orders and tiny σ stay finite in log space (a direct sum would overflow), and
    /// RDP grows with the order and falls with σ.
    func testNoOverflowAndMonotone() {
        let big = RDP.subsampledGaussian(q: 0.5, sigma: 0.3, order: 63)
        XCTAssertTrue(big.isFinite && big > 0, "\(big)")
        var last = 0.0
        for a in RDP.defaultOrders {
            let r = RDP.subsampledGaussian(q: 0.01, sigma: 1, order: a)
            XCTAssertGreaterThanOrEqual(r, last * (1 - 1e-12), "order \(a)"); last = r
        }
        XCTAssertLessThan(RDP.subsampledGaussian(q: 0.01, sigma: 2, order: 8), RDP.subsampledGaussian(q: 0.01, sigma: 1, order: 8))
    }

    /// Phases compose additively: two phases of the same (q, σ) equal one of their total length.
    func testPhasesCompose() {
        let split = PrivacySpent(phases: [(0.01, 1.0, 300), (0.01, 1.0, 700)], delta: 1e-5)
        let whole = PrivacySpent(phases: [(0.01, 1.0, 1000)], delta: 1e-5)
        XCTAssertEqual(split.epsilonImproved, whole.epsilonImproved, accuracy: 1e-12)
        let mixed = PrivacySpent(phases: [(0.01, 1.0, 300), (0.02, 2.0, 700)], delta: 1e-5)
        XCTAssertNotEqual(mixed.epsilonImproved, whole.epsilonImproved)
    }

    /// σ for a target ε never overshoots it and is tight.
    func testSigmaForTargetEpsilon() throws {
        for target in [1.0, 3.0, 8.0] {
            let s = try XCTUnwrap(PrivacySpent.sigma(forEpsilon: target, q: 0.01, steps: 1000, delta: 1e-5))
            let at = PrivacySpent(phases: [(0.01, s, 1000)], delta: 1e-5).epsilonImproved
            XCTAssertLessThanOrEqual(at, target, "σ \(s) gives ε \(at) > \(target)")
            let below = PrivacySpent(phases: [(0.01, s * (1 - 1e-3), 1000)], delta: 1e-5).epsilonImproved
            XCTAssertGreaterThan(below, target, "σ \(s) is not the smallest")
        }
        // Opacus's classic MNIST example: q = 256/60000, 60 epochs, σ 1.1 gives ε ≈ 2.60
        let s = try XCTUnwrap(PrivacySpent.sigma(forEpsilon: 2.6003429386103023, q: 256.0 / 60000, steps: 14100, delta: 1e-5))
        XCTAssertEqual(s, 1.1, accuracy: 1e-3)
    }
}
