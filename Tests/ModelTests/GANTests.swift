import Foundation
import Models
import NN
import Tensor
import XCTest

final class GANTests: XCTestCase {
    // MARK: sizes, names, configuration

    /// Parameter counts and FLOPs of reference-models.md B (counted in PyTorch:
    /// `count_params`, `dcgan_forward_flops` in bench/models_torch.py).
    func testPresetsMatchReferenceSizes() throws {
        let g = try DCGANGenerator(.dcgan32, key: RandomKey(seed: 0))
        XCTAssertEqual(g.parameterCount, 1_218_339)
        XCTAssertEqual(g.forwardFLOPs, 53_149_696)
        let d = try DCGANDiscriminator(.dcgan32, key: RandomKey(seed: 0))
        XCTAssertEqual(d.parameterCount, 663_361)
        XCTAssertEqual(d.forwardFLOPs, 35_135_488)
        for (name, params) in [("dcgan-32-nobn", 662_977), ("dcgan-32-gn", 663_361), ("sngan-32", 662_977)] {
            let c = try XCTUnwrap(GANConfig.preset(name))
            let dv = try DCGANDiscriminator(c, key: RandomKey(seed: 0))
            XCTAssertEqual(dv.parameterCount, params, name)
            XCTAssertEqual(dv.forwardFLOPs, 35_135_488, name)
            XCTAssertEqual(try DCGANGenerator(c, key: RandomKey(seed: 0)).parameterCount, 1_218_339, name)
        }
        XCTAssertEqual(GANConfig.presetNames.compactMap(GANConfig.preset).count, GANConfig.presetNames.count)
        XCTAssertNil(GANConfig.preset("dcgan-64"))
        XCTAssertEqual(GANConfig.preset("dcgan-32"), GANConfig(latentDim: 128, imageChannels: 3, imageSize: 32, stages: 3, generatorChannels: 256,
                                                              discriminatorChannels: 64, discriminatorNorm: "batch", groups: 8,
                                                              spectralNorm: false, powerIterations: 1, classes: 0))
        XCTAssertTrue(g.describe().contains("1218339") && d.describe().contains("35135488"), g.describe() + "\n" + d.describe())
    }

    /// Our tensors map 1:1 onto the PyTorch reference's state_dict (less num_batches_tracked),
    /// with PyTorch's shapes (Linear (out, in), ConvTranspose2d [in, out, k, k], Conv2d OIHW).
    func testTensorNamesAndLayoutsMatchThePyTorchReference() throws {
        let torchG: [String: [Int]] = [
            "fc.weight": [4096, 128], "fc.bias": [4096],
            "bn0.weight": [256], "bn0.bias": [256], "bn0.running_mean": [256], "bn0.running_var": [256],
            "net.0.weight": [256, 128, 4, 4],
            "net.1.weight": [128], "net.1.bias": [128], "net.1.running_mean": [128], "net.1.running_var": [128],
            "net.3.weight": [128, 64, 4, 4],
            "net.4.weight": [64], "net.4.bias": [64], "net.4.running_mean": [64], "net.4.running_var": [64],
            "net.6.weight": [64, 32, 4, 4],
            "net.7.weight": [32], "net.7.bias": [32], "net.7.running_mean": [32], "net.7.running_var": [32],
            "net.9.weight": [3, 32, 3, 3], "net.9.bias": [3],
        ]
        let g = try DCGANGenerator(.dcgan32, key: RandomKey(seed: 0))
        assertMapping(g, g.torchStateDictNames(), torchG)

        let torchD: [String: [Int]] = [
            "net.0.weight": [64, 3, 4, 4], "net.0.bias": [64],
            "net.2.weight": [128, 64, 4, 4],
            "net.3.weight": [128], "net.3.bias": [128], "net.3.running_mean": [128], "net.3.running_var": [128],
            "net.5.weight": [256, 128, 4, 4],
            "net.6.weight": [256], "net.6.bias": [256], "net.6.running_mean": [256], "net.6.running_var": [256],
            "net.9.weight": [1, 4096], "net.9.bias": [1],
        ]
        let d = try DCGANDiscriminator(.dcgan32, key: RandomKey(seed: 0))
        assertMapping(d, d.torchStateDictNames(), torchD)

        let torchNoBN: [String: [Int]] = [
            "net.0.weight": [64, 3, 4, 4], "net.0.bias": [64], "net.2.weight": [128, 64, 4, 4], "net.2.bias": [128],
            "net.5.weight": [256, 128, 4, 4], "net.5.bias": [256], "net.9.weight": [1, 4096], "net.9.bias": [1],
        ]
        let noBN = try DCGANDiscriminator(.dcgan32NoBN, key: RandomKey(seed: 0))
        assertMapping(noBN, noBN.torchStateDictNames(), torchNoBN)
        // torch.nn.utils.spectral_norm names: weight_orig, weight_u [out], weight_v [in·k·k]
        var torchSN: [String: [Int]] = [:]
        for (k, shape) in torchNoBN {
            if k.hasSuffix(".weight") {
                let base = String(k.dropLast(".weight".count))
                torchSN[base + ".weight_orig"] = shape
                torchSN[base + ".weight_u"] = [shape[0]]
                torchSN[base + ".weight_v"] = [shape.dropFirst().reduce(1, *)]
            } else { torchSN[k] = shape }
        }
        let sn = try DCGANDiscriminator(.sngan32, key: RandomKey(seed: 0))
        assertMapping(sn, sn.torchStateDictNames(), torchSN)
        XCTAssertEqual(sn.buffers().keys, ["convs.0.u", "convs.0.v", "convs.1.u", "convs.1.v", "convs.2.u", "convs.2.v", "linear.u", "linear.v"])
    }

    func assertMapping(_ model: Module, _ map: [String: String], _ torch: [String: [Int]], file: StaticString = #filePath, line: UInt = #line) {
        let state = model.state()
        XCTAssertEqual(Set(map.keys), Set(state.keys), "every tensor is mapped", file: file, line: line)
        XCTAssertEqual(Set(map.values), Set(torch.keys), "onto every PyTorch tensor", file: file, line: line)
        XCTAssertEqual(map.count, Set(map.values).count, "one-to-one", file: file, line: line)
        for (ours, theirs) in map { XCTAssertEqual(state[ours]?.shape, torch[theirs], "\(ours) → \(theirs)", file: file, line: line) }
    }

    func testConfigValidationNamesTheKeyAndCodableRoundTrip() throws {
        func key(_ c: GANConfig) -> String? {
            do { try c.validate(); return nil } catch let e as GANError {
                guard case .invalidConfig(let k, _) = e else { return nil }
                XCTAssertTrue("\(e)".hasPrefix(k + ": "), "\(e)")
                return k
            } catch { return "unexpected \(error)" }
        }
        for name in GANConfig.presetNames { XCTAssertNil(key(GANConfig.preset(name)!), name) }
        XCTAssertNil(key(GANConfig(imageChannels: 1, imageSize: 28, stages: 2)))
        XCTAssertEqual(key(GANConfig(imageSize: 30)), "image_size")
        XCTAssertEqual(key(GANConfig(imageSize: 28)), "image_size")          // 28 needs stages ≤ 2
        XCTAssertEqual(key(GANConfig(latentDim: 0)), "latent_dim")
        XCTAssertEqual(key(GANConfig(imageChannels: 0)), "image_channels")
        XCTAssertEqual(key(GANConfig(stages: 0)), "stages")
        XCTAssertEqual(key(GANConfig(generatorChannels: 12)), "generator_channels")
        XCTAssertEqual(key(GANConfig(discriminatorChannels: 0)), "discriminator_channels")
        XCTAssertEqual(key(GANConfig(discriminatorNorm: "layer")), "discriminator_norm")
        XCTAssertEqual(key(GANConfig(discriminatorNorm: "group", groups: 48)), "groups")
        XCTAssertNil(key(GANConfig(discriminatorNorm: "batch", groups: 48)))   // groups only matter for group norm
        XCTAssertEqual(key(GANConfig(groups: 0)), "groups")
        XCTAssertEqual(key(GANConfig(powerIterations: 0)), "power_iterations")
        XCTAssertEqual(key(GANConfig(classes: -1)), "classes")
        XCTAssertThrowsError(try DCGANGenerator(GANConfig(imageSize: 30), key: RandomKey(seed: 0))) { XCTAssertTrue("\($0)".hasPrefix("image_size:")) }
        XCTAssertThrowsError(try DCGANDiscriminator(GANConfig(discriminatorNorm: "x"), key: RandomKey(seed: 0))) {
            XCTAssertTrue("\($0)".hasPrefix("discriminator_norm:"))
        }
        let c = GANConfig(latentDim: 64, imageChannels: 1, imageSize: 28, stages: 2, discriminatorNorm: "group", spectralNorm: true, classes: 10)
        XCTAssertEqual(try JSONDecoder().decode(GANConfig.self, from: JSONEncoder().encode(c)), c)
    }

    // MARK: forward, gradients, initialisation

    func testForwardShapesRangeAndEveryParameterGetsGradient() throws {
        let g = try DCGANGenerator(.dcgan32, key: RandomKey(seed: 1))
        let d = try DCGANDiscriminator(.dcgan32, key: RandomKey(seed: 2))
        let z = g.sampleLatents(4, key: RandomKey(seed: 3))
        XCTAssertEqual(z.shape, [4, 128])
        let images = g(z)
        XCTAssertEqual(images.shape, [4, 3, 32, 32])
        XCTAssertTrue(images.scalars.allSatisfy { $0 >= -1 && $0 <= 1 })
        XCTAssertEqual(d(images).shape, [4])
        // the generator step's loss reaches every parameter of both networks
        var both = g.parameters().prefixed("g"); both.merge(d.parameters().prefixed("d"))
        let (loss, grads) = valueAndGradient(wrt: both) { ganGeneratorLoss(fake: d(g(z)), .nonSaturating) }
        XCTAssertTrue(loss.item.isFinite)
        XCTAssertEqual(grads.keys.filter { grads[$0]!.squaredNorm() == 0 }, [])

        // Fashion-MNIST shape: 28×28×1 with two stages (7×7 base)
        let fm = GANConfig(imageChannels: 1, imageSize: 28, stages: 2)
        let gf = try DCGANGenerator(fm, key: RandomKey(seed: 4)), df = try DCGANDiscriminator(fm, key: RandomKey(seed: 5))
        let x = gf(gf.sampleLatents(2, key: RandomKey(seed: 6)))
        XCTAssertEqual(x.shape, [2, 1, 28, 28])
        XCTAssertEqual(df(x).shape, [2])
        XCTAssertEqual(df.config.discriminatorFeatures, 128 * 7 * 7)
        XCTAssertEqual(gf.forwardFLOPs, 2 * 128 * 256 * 49 + 2 * 256 * 128 * 16 * 49 + 2 * 128 * 64 * 16 * 196 + 2 * 64 * 9 * 784)
        XCTAssertEqual(df.forwardFLOPs, 2 * 64 * 16 * 196 + 2 * 64 * 128 * 16 * 49 + 2 * 128 * 49)
    }

    /// Radford et al. (2016): weights N(0, 0.02), BN γ ~ N(1, 0.02), β = 0, biases 0; the same
    /// key gives the same model, another key another one.
    func testDCGANInitialisationIsDeterministic() throws {
        let g = try DCGANGenerator(.dcgan32, key: RandomKey(seed: 7))
        let d = try DCGANDiscriminator(.dcgan32, key: RandomKey(seed: 8))
        func stats(_ t: Tensor) -> (mean: Double, std: Double) {
            let v = t.doubles, m = v.reduce(0, +) / Double(v.count)
            return (m, (v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(v.count)).squareRoot())
        }
        for (name, t) in g.parameters().merged(with: d.parameters()) {
            let s = stats(t)
            if name.hasSuffix("bias") {
                XCTAssertEqual(s.std, 0, name); XCTAssertEqual(s.mean, 0, name)
            } else if name.contains("Norm") || name.contains("norms.") {
                XCTAssertEqual(s.mean, 1, accuracy: 0.01, name); XCTAssertEqual(s.std, 0.02, accuracy: 0.008, name)
            } else {
                XCTAssertEqual(s.mean, 0, accuracy: 0.005, name); XCTAssertEqual(s.std, 0.02, accuracy: 0.003, name)
            }
        }
        let again = try DCGANGenerator(.dcgan32, key: RandomKey(seed: 7)), other = try DCGANGenerator(.dcgan32, key: RandomKey(seed: 9))
        for (name, t) in g.state() {
            XCTAssertEqual(again.state()[name]!.scalars, t.scalars, name)
            if !name.hasSuffix("bias") && !name.contains("running") { XCTAssertNotEqual(other.state()[name]!.scalars, t.scalars, name) }
        }
    }

    /// In evaluation mode (running statistics, stored u and v) an example's output does not depend
    /// on the rest of its batch; in training mode with BatchNorm it does.
    func testEvalModeOutputsArePerExample() throws {
        let z = Tensor.normal([8, 128], key: RandomKey(seed: 10))
        let g = try DCGANGenerator(.dcgan32, key: RandomKey(seed: 11))
        for s in 0..<3 { _ = g(Tensor.normal([8, 128], key: RandomKey(seed: 20 + UInt64(s)))) }   // move the running statistics
        let trainBatch = g(z).sliced(axis: 0, start: 3, length: 1).scalars, trainAlone = g(z.sliced(axis: 0, start: 3, length: 1)).scalars
        XCTAssertGreaterThan(maxRelativeDifference(trainBatch, trainAlone), 1e-2, "training mode uses batch statistics")
        g.eval()
        let images = g(z)
        for i in [0, 3, 7] {
            let alone = g(z.sliced(axis: 0, start: i, length: 1)).scalars
            XCTAssertLessThanOrEqual(maxRelativeDifference(images.sliced(axis: 0, start: i, length: 1).scalars, alone), 1e-5, "G image \(i)")
        }
        for name in GANConfig.presetNames {
            let d = try DCGANDiscriminator(GANConfig.preset(name)!, key: RandomKey(seed: 12))
            for s in 0..<3 { _ = d(g(Tensor.normal([8, 128], key: RandomKey(seed: 30 + UInt64(s))))) }
            d.eval()
            let logits = d(images).scalars
            for i in [0, 5] {
                let alone = d(images.sliced(axis: 0, start: i, length: 1)).scalars
                XCTAssertEqual(alone.count, 1)
                XCTAssertLessThanOrEqual(maxRelativeDifference([logits[i]], alone), 1e-5, "\(name) logit \(i): \(logits[i]) vs \(alone[0])")
            }
        }
    }

    /// max |a − b| / max(|a|_∞, |b|_∞): relative to the output's scale.
    func maxRelativeDifference(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count)
        let scale = Double(max(a.map(Swift.abs).max() ?? 0, b.map(Swift.abs).max() ?? 0, 1e-30))
        return zip(a, b).map { Double(Swift.abs($0 - $1)) }.max()! / scale
    }

    // MARK: spectral normalization

    /// The weights are scaled by 4 (a drift as training might cause), then get 20 random updates,
    /// each followed by one training-mode forward (one power iteration): the weight each layer
    /// uses, W/σ̂, has largest singular value within 2 % of 1, by an independent one-sided
    /// Jacobi SVD in Double; the raw weights' are far from 1.
    func testSpectralNormKeepsLargestSingularValueNearOne() throws {
        let d = try DCGANDiscriminator(.sngan32, key: RandomKey(seed: 13))
        let x = Tensor.normal([2, 3, 32, 32], key: RandomKey(seed: 14))
        let weights = d.parameters().keys.filter { $0.hasSuffix("weight") }
        XCTAssertEqual(weights, ["convs.0.weight", "convs.1.weight", "convs.2.weight", "linear.weight"])
        for name in weights { d.parameters()[name]!.scaleInPlace(4) }
        for step in 0..<20 {
            for name in weights {
                let w = d.parameters()[name]!
                w.addInPlace(Tensor.normal(w.shape, std: 0.002, key: RandomKey(seed: 100 + UInt64(step)).fold(name)))
            }
            _ = d(x)
        }
        d.eval()
        var layers: [(String, Tensor, Tensor)] = []
        for (i, conv) in d.convs.enumerated() {
            let c = try XCTUnwrap(conv as? SpectralNormConv2d)
            layers.append(("conv \(i)", c.weight, c.normalizedWeight()))
        }
        let linear = try XCTUnwrap(d.linear as? SpectralNormLinear)
        layers.append(("linear", linear.weight, linear.normalizedWeight()))
        for (name, raw, normalized) in layers {
            let sigmaRaw = largestSingularValue(raw), sigma = largestSingularValue(normalized)
            XCTAssertEqual(sigma, 1, accuracy: 0.02, "\(name): σ_max(W/σ̂) = \(sigma)")
            XCTAssertGreaterThanOrEqual(sigma, 1 - 1e-5, "\(name): σ̂ = uᵀWv cannot exceed σ_max")
            XCTAssertGreaterThan(Swift.abs(sigmaRaw - 1), 0.1, "\(name): raw σ_max = \(sigmaRaw) (the check must be able to fail)")
            print("spectral norm \(name): σ_max(W) = \(sigmaRaw), σ_max(W/σ̂) = \(sigma)")
        }
    }

    /// The Jacobi reference on matrices with known singular values.
    func testJacobiSingularValuesReference() {
        // Q·diag(4, 3, 0.5)·P for rotations Q, P: rows of a rotated diagonal
        let c = Foundation.cos(0.3), s = Foundation.sin(0.3)
        let a = Tensor([4 * c, 4 * s, 0, 0, -3 * s, 3 * c, 0, 0, 0, 0, 0.5, 0], shape: [3, 4], dtype: .float64)
        assertClose(singularValues(a), [4, 3, 0.5], accuracy: 1e-12)
        // [[1, 1], [0, 1]]: σ = (√5 ± 1) / 2
        assertClose(singularValues(Tensor([1, 1, 0, 1], shape: [2, 2], dtype: .float64)), [(5.0.squareRoot() + 1) / 2, (5.0.squareRoot() - 1) / 2], accuracy: 1e-12)
        // tall matrices use the transpose
        assertClose(singularValues(Tensor([2, 0, 0, 0, 0, 1], shape: [3, 2], dtype: .float64)), [2, 1], accuracy: 1e-12)
    }

    func largestSingularValue(_ w: Tensor) -> Double { singularValues(w).first! }

    /// Singular values (descending) of w viewed as [shape[0], rest], by one-sided Jacobi
    /// (Hestenes) rotations of the rows of the wider orientation until all are orthogonal.
    func singularValues(_ w: Tensor) -> [Double] {
        let m0 = w.shape[0], n0 = w.count / m0, v = w.doubles
        let transpose = m0 > n0
        let (m, n) = transpose ? (n0, m0) : (m0, n0)
        var flat = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { flat[i * n + j] = transpose ? v[j * n0 + i] : v[i * n0 + j] } }
        return flat.withUnsafeMutableBufferPointer { a -> [Double] in
            for _ in 0..<60 {
                var rotated = false
                for i in 0..<m { for j in (i + 1)..<max(m, i + 1) {
                    let ri = a.baseAddress! + i * n, rj = a.baseAddress! + j * n
                    var alpha = 0.0, beta = 0.0, gamma = 0.0
                    for k in 0..<n { alpha += ri[k] * ri[k]; beta += rj[k] * rj[k]; gamma += ri[k] * rj[k] }
                    guard gamma != 0, Swift.abs(gamma) > 1e-15 * (alpha * beta).squareRoot() else { continue }
                    rotated = true
                    let zeta = (beta - alpha) / (2 * gamma)
                    let t = (zeta >= 0 ? 1.0 : -1.0) / (Swift.abs(zeta) + (1 + zeta * zeta).squareRoot())
                    let cs = 1 / (1 + t * t).squareRoot(), sn = cs * t
                    for k in 0..<n {
                        let x = ri[k], y = rj[k]
                        ri[k] = cs * x - sn * y; rj[k] = sn * x + cs * y
                    }
                } }
                if !rotated { break }
            }
            return (0..<m).map { i in (0..<n).reduce(0.0) { $0 + a[i * n + $1] * a[i * n + $1] }.squareRoot() }.sorted(by: >)
        }
    }

    /// state() carries u and v: a fresh discriminator loaded from it gives bit-identical outputs.
    func testSpectralNormStateRoundTrip() throws {
        let d = try DCGANDiscriminator(.sngan32, key: RandomKey(seed: 15))
        let x = Tensor.normal([3, 3, 32, 32], key: RandomKey(seed: 16))
        for step in 0..<3 {
            d.parameters()["convs.1.weight"]!.addInPlace(Tensor.normal([128, 64, 4, 4], std: 0.01, key: RandomKey(seed: 40 + UInt64(step))))
            _ = d(x)
        }
        d.eval()
        let expected = d(x).scalars
        let fresh = try DCGANDiscriminator(.sngan32, key: RandomKey(seed: 99))
        fresh.eval()
        XCTAssertNotEqual(fresh(x).scalars, expected)
        try fresh.load(d.state())
        XCTAssertEqual(fresh(x).scalars, expected)
        for (name, t) in d.buffers() { XCTAssertEqual(fresh.buffers()[name]!.scalars, t.scalars, name) }
        // a state without the power-iteration vectors is refused
        var missing = d.state(); missing["convs.2.u"] = nil
        XCTAssertThrowsError(try fresh.load(missing)) { XCTAssertTrue("\($0)".contains("convs.2.u")) }
    }

    // MARK: class conditioning

    /// A small Double conditional pair: gradients of G (through conditional BatchNorm, training
    /// mode) and of D (projection; batch norm, group norm, spectral norm in evaluation mode)
    /// against central differences, w.r.t. the input and every parameter.
    func testConditionalModelsMatchFiniteDifferences() throws {
        let small = GANConfig(latentDim: 4, imageChannels: 2, imageSize: 8, stages: 2, generatorChannels: 8, discriminatorChannels: 4,
                              groups: 2, classes: 3)
        let labels = [2, 0, 1, 2]
        let g = try DCGANGenerator(small, key: RandomKey(seed: 17), dtype: .float64)
        let cbn = try XCTUnwrap(g.upsampleNorms[0] as? ConditionalBatchNorm)
        XCTAssertEqual(cbn.gamma.shape, [3, 4])
        for (name, t) in g.parameters() where name.hasSuffix("gamma") || name.hasSuffix("beta") {   // away from 1 / 0
            XCTAssertEqual(t.shape.first, 3)
            t.addInPlace(Tensor.normal(t.shape, std: 0.3, key: RandomKey(seed: 18).fold(name), dtype: .float64))
        }
        let z = Tensor.normal([4, 4], key: RandomKey(seed: 19), dtype: .float64)
        let rImage = Tensor.normal([4, 2, 8, 8], key: RandomKey(seed: 20), dtype: .float64)
        var report = checkGradient([z] + g.parameters().values) { _ in (g(z, labels: labels) * rImage).sum() }
        XCTAssertTrue(report.passed, "conditional G: \(report)")
        g.eval()
        report = checkGradient([z] + g.parameters().values) { _ in (g(z, labels: labels) * rImage).sum() }
        XCTAssertTrue(report.passed, "conditional G eval: \(report)")

        let x = Tensor.normal([4, 2, 8, 8], key: RandomKey(seed: 21), dtype: .float64)
        let rLogit = Tensor([0.7, -1.3, 0.4, 2.1], shape: [4], dtype: .float64)
        for (norm, spectral) in [("batch", false), ("group", false), ("none", true)] {
            var c = small; c.discriminatorNorm = norm; c.spectralNorm = spectral
            let d = try DCGANDiscriminator(c, key: RandomKey(seed: 22), dtype: .float64)
            XCTAssertEqual(d.parameters().keys.last, "projection.weight")
            if spectral { d.eval() }
            report = checkGradient([x] + d.parameters().values) { _ in (d(x, labels: labels) * rLogit).sum() }
            XCTAssertTrue(report.passed, "projection D (\(norm), spectral \(spectral)): \(report)")
        }
    }

    /// With classes > 0 the outputs depend on the label: D at once (random projection), G after
    /// its per-class γ, β move away from their initial 1, 0 (before that it is label-blind, by design).
    func testConditionalOutputsDependOnTheLabel() throws {
        var c = GANConfig.dcgan32; c.classes = 10
        let g = try DCGANGenerator(c, key: RandomKey(seed: 23)), d = try DCGANDiscriminator(c, key: RandomKey(seed: 24))
        g.eval(); d.eval()
        let z = g.sampleLatents(1, key: RandomKey(seed: 25))
        XCTAssertEqual(g(z, labels: [1]).scalars, g(z, labels: [7]).scalars, "conditional BN starts as plain BN")
        for (name, t) in g.parameters() where name.hasSuffix("gamma") || name.hasSuffix("beta") {
            t.addInPlace(Tensor.normal(t.shape, std: 0.1, key: RandomKey(seed: 26).fold(name)))
        }
        let a = g(z, labels: [1]), b = g(z, labels: [7])
        XCTAssertGreaterThan(maxRelativeDifference(a.scalars, b.scalars), 1e-3)
        let da = d(a, labels: [1]).item, db = d(a, labels: [7]).item
        XCTAssertGreaterThan(Swift.abs(da - db), 1e-4)
        // the projection term is exactly ⟨embed(y), h⟩: the logit difference between two labels
        // is ⟨embed(1) − embed(7), h⟩ with the flattened last features h
        var h = a
        for (i, conv) in d.convs.enumerated() {
            h = (conv as! Conv2d)(h)
            if i > 0 { h = (d.norms[i - 1] as! BatchNorm)(h) }
            h = h.leakyRelu(slope: 0.2)
        }
        let features = h.flattened(from: 1).doubles, table = (d.projection as! Embedding).weight.doubles, f = features.count
        let expected = (0..<f).reduce(0.0) { $0 + (table[1 * f + $1] - table[7 * f + $1]) * features[$1] }
        XCTAssertEqual(da - db, expected, accuracy: 1e-4 * max(1, Swift.abs(expected)))
        // unconditional models ignore labels
        let plain = try DCGANDiscriminator(.dcgan32, key: RandomKey(seed: 27)); plain.eval()
        XCTAssertEqual(plain(a, labels: [3]).scalars, plain(a).scalars)
    }
}

extension TensorTree {
    func merged(with other: TensorTree) -> TensorTree { var t = prefixed("a"); t.merge(other.prefixed("b")); return t }
}

func assertClose(_ a: [Double], _ b: [Double], accuracy: Double, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: accuracy, "\(a) vs \(b)", file: file, line: line) }
}
