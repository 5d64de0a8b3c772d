import Data
import Evaluation
import Tensor
import XCTest

/// Known answers for the quality proxies: the Fréchet distance of Gaussians in closed form,
/// the kernel distance near 0 for one distribution and positive for two.
final class QualityTests: XCTestCase {
    func randomSPD(_ d: Int, seed: UInt64) -> [Double] {
        let a = Tensor.normal([d, d], key: RandomKey(seed: seed), dtype: .float64).doubles
        var s = [Double](repeating: 0, count: d * d)
        for i in 0..<d { for j in 0..<d { for k in 0..<d { s[i * d + j] += a[i * d + k] * a[j * d + k] } }; s[i * d + i] += 0.5 }
        return s
    }

    func testJacobiReconstructsTheMatrix() {
        let d = 12, s = randomSPD(d, seed: 1)
        let (values, vectors) = FeatureDistance.jacobiEigen(s, d)
        for i in 0..<d { for j in 0..<d {
            let r = (0..<d).reduce(0.0) { $0 + vectors[i * d + $1] * values[$1] * vectors[j * d + $1] }
            XCTAssertEqual(r, s[i * d + j], accuracy: 1e-9)
        } }
        // the square root squares back
        let root = FeatureDistance.symmetricFunction(s, d) { $0.squareRoot() }
        let back = FeatureDistance.multiply(root, root, d)
        for i in 0..<(d * d) { XCTAssertEqual(back[i], s[i], accuracy: 1e-9) }
    }

    func testFrechetClosedForms() {
        let d = 10, s = randomSPD(d, seed: 2)
        let mu1 = (0..<d).map { Double($0) * 0.1 }, mu2 = (0..<d).map { Double($0) * 0.1 + 0.3 }
        // Σ₂ = 4Σ₁: tr(Σ₁ + 4Σ₁ − 2·2Σ₁) = tr Σ₁, plus ‖Δμ‖² = d·0.09
        let tr = (0..<d).reduce(0.0) { $0 + s[$1 * d + $1] }
        XCTAssertEqual(FeatureDistance.frechet(mu1: mu1, cov1: s, mu2: mu2, cov2: s.map { $0 * 4 }), tr + Double(d) * 0.09, accuracy: 1e-8)
        XCTAssertEqual(FeatureDistance.frechet(mu1: mu1, cov1: s, mu2: mu1, cov2: s), 0, accuracy: 1e-8)
        // diagonal covariances: Σ (σ₁ − σ₂)²
        var a = [Double](repeating: 0, count: 9), b = a
        for (i, (x, y)) in [(1.0, 4.0), (9.0, 1.0), (2.0, 2.0)].enumerated() { a[i * 3 + i] = x; b[i * 3 + i] = y }
        XCTAssertEqual(FeatureDistance.frechet(mu1: [0, 0, 0], cov1: a, mu2: [0, 0, 0], cov2: b), 1 + 4 + 0, accuracy: 1e-10)
    }

    func testSampleDistancesSeparateDistributions() {
        let d = 8, n = 1500
        let x = Tensor.normal([n, d], key: RandomKey(seed: 3), dtype: .float64).doubles
        let y = Tensor.normal([n, d], key: RandomKey(seed: 4), dtype: .float64).doubles
        let z = Tensor.normal([n, d], mean: 0.5, std: 1.5, key: RandomKey(seed: 5), dtype: .float64).doubles
        // FD(N(0,I), N(0.5, 2.25 I)) = 8·0.25 + 8·(1 − 1.5)² = 4
        XCTAssertLessThan(FeatureDistance.frechet(x, y, dimension: d), 0.1)
        XCTAssertEqual(FeatureDistance.frechet(x, z, dimension: d), 4, accuracy: 0.4)
        let same = FeatureDistance.kernel(x, y, dimension: d, subsets: 5, subsetSize: 500)
        let other = FeatureDistance.kernel(x, z, dimension: d, subsets: 5, subsetSize: 500)
        XCTAssertLessThan(abs(same.mean), 3 * same.std + 0.01)
        XCTAssertGreaterThan(other.mean, 10 * max(same.std, abs(same.mean)))
    }
}
