import Data
import Diffusion
import Evaluation
import Tensor
import XCTest

/// Known answers for the inpainting attack with oracle "models": the exact ε predictor of a
/// model that memorized one image x* (ε̂ = (x_t − √ᾱ_t x*) / √(1 − ᾱ_t)). Such a model must
/// reconstruct x*'s hidden half; one that memorized another image must not.
final class InpaintingTests: XCTestCase {
    func image(seed: UInt64) -> [UInt8] {
        var s = RandomStream(key: RandomKey(seed: seed))
        let blocks = (0..<48).map { _ in s.nextUniform() * 255 }
        var px: [UInt8] = []
        for c in 0..<3 { for y in 0..<16 { for x in 0..<16 { px.append(UInt8(blocks[c * 16 + (y / 4) * 4 + x / 4].rounded())) } } }
        return px
    }

    func oracle(_ image: [UInt8], _ process: GaussianDiffusion) -> (Tensor, [Int]) -> Tensor {
        let star = ImageSet(images: image, labels: [0], channels: 3, height: 16, width: 16, classNames: []).tensor()
        return { x, t in
            let ab = process.alphasCumprod[t[0]]
            precondition(t.allSatisfy { $0 == t[0] })
            return (x - star * ab.squareRoot()) * (1 / (1 - ab).squareRoot())
        }
    }

    func testMemorizingModelReconstructsTheHiddenHalfAndAnotherDoesNot() {
        let process = GaussianDiffusion(timesteps: 100)
        let x = image(seed: 1), y = image(seed: 2)
        var c = InpaintConfig()
        c.sampler = SamplerConfig(kind: .ddim, steps: 10, eta: 1)
        c.count = 6; c.keep = 3; c.batchSize = 4
        c.rank.timesteps = [10]; c.rank.draws = 1
        let member = Inpainting.attack(model: oracle(x, process), process: process, target: x[...], channels: 3, height: 16, width: 16, targetID: 7, config: c)
        let other = Inpainting.attack(model: oracle(y, process), process: process, target: x[...], channels: 3, height: 16, width: 16, targetID: 7, config: c)
        XCTAssertEqual(member.outcome.kept.count, 3)
        XCTAssertLessThan(member.outcome.keptMean, 0.01, "the memorizing model restores the hidden half")
        XCTAssertGreaterThan(other.outcome.keptMean, 0.2, "a model that memorized another image does not")
        // the known half is the target's own (up to the last step's rounding)
        let mask = c.knownMask(channels: 3, height: 16, width: 16)
        let img = other.completions.image(0)
        for p in mask.indices where mask[p] == 1 { XCTAssertEqual(Int(img[img.startIndex + p]), Int(x[p]), accuracy: 1) }
        // kept = lowest loss; deterministic for a seed, resampling jumps run too
        XCTAssertEqual(other.outcome.kept, Array(other.outcome.losses.indices.sorted { (other.outcome.losses[$0], $0) < (other.outcome.losses[$1], $1) }.prefix(3)))
        let again = Inpainting.attack(model: oracle(y, process), process: process, target: x[...], channels: 3, height: 16, width: 16, targetID: 7, config: c)
        XCTAssertEqual(again.completions, other.completions)
        c.jumps = 2
        let jumped = Inpainting.attack(model: oracle(x, process), process: process, target: x[...], channels: 3, height: 16, width: 16, targetID: 7, config: c)
        XCTAssertLessThan(jumped.outcome.keptMean, 0.01)
    }
}
