import Models
import NN
import Tensor
import XCTest

final class UNetTests: XCTestCase {
    /// Parameter counts and FLOPs of the reference presets (reference-models.md, counted in
    /// PyTorch independently).
    func testPresetsMatchReferenceSizes() throws {
        let s = try UNet(.unetS, key: RandomKey(seed: 0))
        XCTAssertEqual(s.parameterCount, 1_063_651)
        XCTAssertEqual(s.forwardFLOPs, 490_274_816)
        let m = try UNet(.unetM, key: RandomKey(seed: 0))
        XCTAssertEqual(m.parameterCount, 4_021_443)
        XCTAssertEqual(m.forwardFLOPs, 1_951_490_048)
        // unet-xs: the same counts from bench/models_torch.py's make_unet("unet-xs")
        let xs = try UNet(.unetXS, key: RandomKey(seed: 0))
        XCTAssertEqual(xs.parameterCount, 268_915)
        XCTAssertEqual(xs.forwardFLOPs, 123_717_632)
    }

    func testForwardShapesAndConfigErrors() throws {
        let c = UNetConfig(imageChannels: 1, imageSize: 16, baseChannels: 8, channelMultipliers: [1, 2], resBlocks: 1,
                           attentionResolutions: [8], dropout: 0.1, groups: 4, classes: 3)
        let net = try UNet(c, key: RandomKey(seed: 1))
        let x = Tensor.normal([2, 1, 16, 16], key: RandomKey(seed: 2))
        let y = net(x, timesteps: [3, 999], labels: [0, 3])
        XCTAssertEqual(y.shape, x.shape)
        let (_, g) = valueAndGradient(of: net) { net(x, timesteps: [3, 999], labels: [2, 1]).squared().mean() }
        XCTAssertEqual(g.keys, net.parameters().keys)
        let unused = g.keys.filter { g[$0]!.squaredNorm() == 0 }
        // only the label rows not used are zero; every weight tensor gets gradient
        XCTAssertEqual(unused, [])
        XCTAssertThrowsError(try UNet(UNetConfig(imageSize: 30), key: RandomKey(seed: 0))) { XCTAssertTrue("\($0)".contains("image_size")) }
        XCTAssertThrowsError(try UNet(UNetConfig(baseChannels: 12), key: RandomKey(seed: 0))) { XCTAssertTrue("\($0)".contains("groups")) }
    }
}
