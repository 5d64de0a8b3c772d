import Data
import Diffusion
import Evaluation
import Tensor
import XCTest

/// The per-timestep variants of a LiRA report (P4's "with and without flip / multi-noise")
/// select the right query columns: the layout is t-major, then draw, then view, and the
/// "unflipped" variant of a flipping signal is exactly the signal computed without flip.
final class LiRAVariantTests: XCTestCase {
    func testVariantQueryColumns() {
        var s = LossSignalConfig()
        s.timesteps = [10, 100]; s.draws = 3; s.flip = true
        let v = MembershipReport.variantQueries(s)
        XCTAssertEqual(v.map(\.timestep), [10, 10, 10, 100, 100, 100])
        XCTAssertEqual(v.map(\.averaged), [true, true, false, true, true, false])
        XCTAssertEqual(v.map(\.views), [2, 1, 1, 2, 1, 1])
        XCTAssertEqual(v.map(\.queries), [[0, 1, 2, 3, 4, 5], [0, 2, 4], [0], [6, 7, 8, 9, 10, 11], [6, 8, 10], [6]])
        s.flip = false
        let w = MembershipReport.variantQueries(s)
        XCTAssertEqual(w.map(\.queries), [[0, 1, 2], [0], [3, 4, 5], [3]])
        XCTAssertEqual(w.map(\.views), [nil, nil, nil, nil])
        // one draw with flip: both views averaged, and the unflipped view alone (no third variant)
        s.flip = true; s.draws = 1
        XCTAssertEqual(MembershipReport.variantQueries(s).map(\.queries), [[0, 1], [0], [2, 3], [2]])
        s.timesteps = []
        XCTAssertTrue(MembershipReport.variantQueries(s).isEmpty, "a discriminator's score has no timestep variants")
    }

    /// The unflipped columns of a flipping signal equal the signal without flip (same noise,
    /// same batches, an elementwise predictor: equal by construction), and the flipped
    /// columns differ (the mirrored images are asymmetric).
    func testUnflippedColumnsAreTheSignalWithoutFlip() {
        var s = RandomStream(key: RandomKey(seed: 3))
        let n = 5
        let px = (0..<(n * 3 * 8 * 8)).map { _ in UInt8((s.nextUniform() * 255).rounded()) }
        let images = ImageSet(images: px, labels: [Int](repeating: 0, count: n), channels: 3, height: 8, width: 8, classNames: [])
        let process = GaussianDiffusion(timesteps: 100)
        let predict: (Tensor, [Int], [Int]) -> Tensor = { x, _, _ in x * 0.5 }
        var c = LossSignalConfig()
        c.timesteps = [10, 60]; c.draws = 3; c.batchSize = 2; c.seed = 9
        c.flip = true
        let flipped = DiffusionSignals.losses(predict: predict, process: process, images: images, ids: Array(100..<(100 + n)), config: c)
        c.flip = false
        let plain = DiffusionSignals.losses(predict: predict, process: process, images: images, ids: Array(100..<(100 + n)), config: c)
        c.flip = true
        let variants = MembershipReport.variantQueries(c)
        for (ti, _) in c.timesteps.enumerated() {
            let unflipped = variants.first { $0.timestep == c.timesteps[ti] && $0.averaged && $0.views == 1 }!.queries
            let all = variants.first { $0.timestep == c.timesteps[ti] && $0.views == 2 }!.queries
            for i in 0..<n {
                XCTAssertEqual(unflipped.map { flipped[i * 12 + $0] }, (0..<3).map { plain[i * 6 + ti * 3 + $0] }, "example \(i), t index \(ti)")
                let mirrored = Set(all).subtracting(unflipped).sorted().map { flipped[i * 12 + $0] }
                XCTAssertEqual(mirrored.count, 3)
                XCTAssertNotEqual(mirrored, (0..<3).map { plain[i * 6 + ti * 3 + $0] })
            }
        }
    }
}
