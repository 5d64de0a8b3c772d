import ArgumentParser
import Foundation
import HDF5
import Models
import NN
import Tensor

/// `eidetic bench dcgan --export-check FILE [--preset NAME]`: one training-mode forward and
/// backward pass of a GAN preset's generator and discriminator, written to an HDF5 tensor file
/// that `bench/check_dcgan_torch.py` replays on the PyTorch reference models
/// (bench/models_torch.py) to compare outputs, loss, gradients and updated buffers.
///
/// The computation (train mode, in this order, as in one DCGAN step):
///
///     fake = G(z);  logits_real = D(real);  logits_fake = D(fake)
///     loss = ganDiscriminatorLoss(real: logits_real, fake: logits_fake) + ½ · ganGeneratorLoss(fake: logits_fake)
///
/// differentiated with respect to every parameter of G and D and the inputs z and real (fake
/// is not detached, so G's gradient has both terms). The generator term is weighted ½ because
/// with weight 1 the two terms' gradients on logits_fake cancel: exactly for hinge
/// (1[1 + f > 0] − 1 = 0 for |f| < 1, leaving G without gradient), and nearly for
/// nonsaturating (σ(f) − (1 − σ(f)) = 2σ(f) − 1 ≈ 0 at the small logits of a fresh D). BatchNorm normalizes with batch
/// statistics and updates its running statistics; spectral norm runs its power iteration once
/// per D call (twice in all), as `torch.nn.utils.spectral_norm` does in train mode.
///
/// The models are built from the preset with `RandomKey(seed)` (DCGAN init), then every bias,
/// norm affine parameter and BatchNorm running statistic is redrawn (biases and β ~ N(0, 0.1),
/// γ ~ 1 + N(0, 0.1), running mean ~ N(0, 0.1), running variance ~ U(0.5, 1.5)) so that no
/// term of the computation is zero by initialisation and a wrong bias or statistic shows.
///
/// File keys (PyTorch state_dict names from `torchStateDictNames()`; TensorFile keys cannot
/// contain "/", so prefixes are dotted):
/// - `G.<name>`, `D.<name>`: every parameter and buffer before the pass (spectral norm:
///   `weight_orig`, `weight_u`, `weight_v`);
/// - `after.G.<name>`, `after.D.<name>`: the buffers after the pass (running statistics, u, v);
/// - `input.z` [N, latent], `input.real` [N, C, H, W];
/// - `output.fake`, `output.logits_real`, `output.logits_fake`, `output.loss` [1];
/// - `grad.G.<name>`, `grad.D.<name>`, `grad.input.z`, `grad.input.real`.
/// Root attributes: `check` ("eidetic-dcgan-check/1"), `preset`, `dtype`, `loss`,
/// `generator_loss_weight` (½), `batch`,
/// `seed`, `config` (the GANConfig as JSON).
enum DCGANCheckExport {
    static let format = "eidetic-dcgan-check/1"
    static let generatorLossWeight = 0.5

    /// Writes the check file; returns a one-line summary.
    static func export(preset: String, to path: String, batch: Int, dtype: DType, loss: GANLoss, seed: UInt64) throws -> String {
        guard let config = GANConfig.preset(preset) else {
            throw ValidationError("--preset: unknown GAN preset \"\(preset)\" (\(GANConfig.presetNames.joined(separator: ", ")))")
        }
        let key = RandomKey(seed: seed)
        let g = try DCGANGenerator(config, key: key.fold("generator"), dtype: dtype)
        let d = try DCGANDiscriminator(config, key: key.fold("discriminator"), dtype: dtype)
        perturb(g, key: key.fold("perturb-generator"))
        perturb(d, key: key.fold("perturb-discriminator"))
        g.train(); d.train()

        let gNames = g.torchStateDictNames(), dNames = d.torchStateDictNames()
        func torchName(_ names: [String: String], _ ours: String, _ model: String) throws -> String {
            guard let theirs = names[ours] else {
                throw ValidationError("--export-check: \(model) tensor '\(ours)' of \(preset) has no PyTorch counterpart")
            }
            return theirs
        }
        var file = TensorTree()
        for (n, t) in g.state() { file["G." + (try torchName(gNames, n, "generator"))] = t.copy() }
        for (n, t) in d.state() { file["D." + (try torchName(dNames, n, "discriminator"))] = t.copy() }

        let z = Tensor.normal([batch, config.latentDim], key: key.fold("z"), dtype: dtype)
        let real = Tensor.uniform([batch, config.imageChannels, config.imageSize, config.imageSize], low: -1, high: 1,
                                  key: key.fold("real"), dtype: dtype)
        file["input.z"] = z
        file["input.real"] = real

        var wrt = TensorTree()
        for (n, t) in g.parameters() { wrt["G." + gNames[n]!] = t }
        for (n, t) in d.parameters() { wrt["D." + dNames[n]!] = t }
        wrt["input.z"] = z
        wrt["input.real"] = real
        var fake = z, logitsReal = z, logitsFake = z
        let (value, grads) = valueAndGradient(wrt: wrt) {
            fake = g(z)
            logitsReal = d(real)
            logitsFake = d(fake)
            return ganDiscriminatorLoss(real: logitsReal, fake: logitsFake, loss) + ganGeneratorLoss(fake: logitsFake, loss) * generatorLossWeight
        }
        file["output.fake"] = fake.detached()
        file["output.logits_real"] = logitsReal.detached()
        file["output.logits_fake"] = logitsFake.detached()
        file["output.loss"] = value.reshaped([1])
        for (n, t) in g.buffers() { file["after.G." + gNames[n]!] = t.copy() }
        for (n, t) in d.buffers() { file["after.D." + dNames[n]!] = t.copy() }
        for (n, t) in grads { file["grad." + n] = t }

        let json = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
        try TensorFile.save(file, attributes: [
            "check": .string(format), "preset": .string(preset), "dtype": .string(dtype.rawValue), "loss": .string(loss.rawValue),
            "generator_loss_weight": .double(generatorLossWeight), "batch": .int(Int64(batch)), "seed": .int(Int64(bitPattern: seed)), "config": .string(json),
        ], to: path)
        return String(format: "%@: %@ %@, batch %d, %@ loss %.17g; %d tensors (%d parameter gradients)",
                      path, preset, dtype.rawValue, batch, loss.rawValue, value.item, file.count, grads.count - 2)
    }

    /// Redraws biases, norm affine parameters and running statistics (see the type's comment).
    private static func perturb(_ model: Module, key: RandomKey) {
        for (name, t) in model.state() {
            let k = key.fold(name)
            let last = name.split(separator: ".").last.map(String.init) ?? name
            let isNorm = name.contains("Norm") || name.hasPrefix("norms.")
            switch last {
            case "bias": t.assign(Tensor.normal(t.shape, std: 0.1, key: k, dtype: t.dtype))
            case "weight" where isNorm: t.assign(Tensor.normal(t.shape, mean: 1, std: 0.1, key: k, dtype: t.dtype))
            case "runningMean": t.assign(Tensor.normal(t.shape, std: 0.1, key: k, dtype: t.dtype))
            case "runningVar": t.assign(Tensor.uniform(t.shape, low: 0.5, high: 1.5, key: k, dtype: t.dtype))
            default: break
            }
        }
    }
}
