import XCTest
import Tensor
import NN
import Models

/// Per-example gradients of whole models against the batch-size-1 oracle (issue 12): the
/// DDPM's `unet-s` and the discriminators that can be trained privately (no BatchNorm,
/// with and without spectral normalization, with a class projection); BatchNorm ones are
/// refused.
final class PerExampleModelTests: XCTestCase {
    func assertMatchesOracle(_ params: TensorTree, batch n: Int, rtol: Double, _ what: String,
                             loss: (_ lo: Int, _ count: Int) -> Tensor) throws {
        let (_, perExample) = try valueAndPerExampleGradients(wrt: params.values, batch: n) { loss(0, n) }
        for i in 0..<n {
            let (_, gi) = valueAndGradients(wrt: params.values) { loss(i, 1) }
            for (k, key) in params.keys.enumerated() {
                let mine = perExample[k].sliced(axis: 0, start: i, length: 1).doubles, want = gi[k].doubles
                let scale = max(want.map { abs($0) }.max() ?? 0, 1e-12)
                let worst = zip(mine, want).map { abs($0 - $1) / scale }.max() ?? 0
                XCTAssertLessThan(worst, rtol, "\(what) \(key) example \(i): relative error \(worst)")
            }
        }
    }

    func testUNetSmallMatchesTheOracle() throws {
        let model = try UNet(.unetS, key: RandomKey(seed: 1))
        let n = 3
        let x = Tensor.normal([n, 3, 32, 32], key: RandomKey(seed: 2)), target = Tensor.normal([n, 3, 32, 32], key: RandomKey(seed: 3))
        let t: [Double] = [3, 500, 999]
        try assertMatchesOracle(model.parameters(), batch: n, rtol: 1e-5, "unet-s") { lo, count in
            let pred = model(x.sliced(axis: 0, start: lo, length: count), timesteps: Array(t[lo ..< lo + count]))
            return (pred - target.sliced(axis: 0, start: lo, length: count)).squared().sum()
        }
    }

    func testPrivateDiscriminatorsMatchTheOracle() throws {
        for (name, base) in [("dcgan-32-gn", GANConfig.dcgan32GN), ("dcgan-32-nobn", .dcgan32NoBN), ("sngan-32", .sngan32)] {
            // n = 10 = classes: spectral norm's u of the class projection has the batch's leading size
            for (classes, n) in [(0, 4), (10, 4), (10, 10)] {
                let x = Tensor.normal([n, 3, 32, 32], key: RandomKey(seed: 4))
                let labels = (0..<n).map { ($0 * 7) % 10 }
                var c = base
                c.classes = classes
                let d = try DCGANDiscriminator(c, key: RandomKey(seed: 5))
                d.eval()  // spectral norm: no power-iteration update between the passes compared
                try assertMatchesOracle(d.parameters(), batch: n, rtol: 1e-5, "\(name) classes \(classes)") { lo, count in
                    let logits = d(x.sliced(axis: 0, start: lo, length: count), labels: classes > 0 ? Array(labels[lo ..< lo + count]) : nil)
                    return (logits - 0.5).squared().sum()
                }
            }
        }
    }

    func testBatchNormDiscriminatorIsRefused() throws {
        let d = try DCGANDiscriminator(.dcgan32, key: RandomKey(seed: 6))
        let x = Tensor.normal([2, 3, 32, 32], key: RandomKey(seed: 7))
        XCTAssertThrowsError(try valueAndPerExampleGradients(wrt: d.parameters().values, batch: 2) { d(x).sum() }) { error in
            XCTAssertTrue("\(error)".contains("batchNorm") && "\(error)".contains("GroupNorm"), "\(error)")
        }
    }
}
