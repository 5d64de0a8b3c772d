import ArgumentParser
import Foundation
import HDF5
import Models
import NN
import Tensor

/// `eidetic bench unet --export-check FILE [--preset NAME]`: one forward and backward pass of
/// a U-Net preset, written to an HDF5 tensor file that `bench/check_unet_torch.py` replays on
/// the PyTorch reference model (bench/models_torch.py) to compare the output, the loss and
/// every gradient — the issue-14 numerics gate for Eidetic's own kernels (direct and GEMM
/// convolutions, GroupNorm + SiLU, attention) at float32.
///
/// The computation: ε̂ = model(x, t) with the sinusoidal timestep features exported as an input
/// (`input.temb_features`: Eidetic computes them in Double, PyTorch's reference in float32,
/// whose sin(t·f) at t ≈ 1000 differs by more than the gate), then
/// loss = mean((ε̂ − target)²), differentiated with respect to every parameter and x.
/// Biases and GroupNorm affine parameters are redrawn (β, biases ~ N(0, 0.1), γ ~ 1 + N(0, 0.1))
/// so that no term is zero by initialisation.
///
/// File keys (TensorFile keys cannot contain "/"): `param.<torch name>`, `input.x`,
/// `input.t` (as float), `input.temb_features`, `input.target`, `output.eps`, `output.loss`,
/// `grad.param.<torch name>`, `grad.input.x`. Root attributes: `check`
/// ("eidetic-unet-check/1"), `preset`, `dtype`, `batch`, `seed`.
enum UNetCheckExport {
    static let format = "eidetic-unet-check/1"

    /// (PyTorch state_dict name, tensor) for every parameter of `m`, walking the structure
    /// exactly as bench/models_torch.py's UNet names it.
    static func torchParameters(_ m: UNet) -> [(String, Tensor)] {
        var out: [(String, Tensor)] = []
        func linear(_ l: Linear, _ n: String) { out.append((n + ".weight", l.weight)); if let b = l.bias { out.append((n + ".bias", b)) } }
        func conv(_ c: Conv2d, _ n: String) { out.append((n + ".weight", c.weight)); if let b = c.bias { out.append((n + ".bias", b)) } }
        func norm(_ g: GroupNorm, _ n: String) {
            if let w = g.weight { out.append((n + ".weight", w)) }
            if let b = g.bias { out.append((n + ".bias", b)) }
        }
        func block(_ b: ResBlock, _ n: String) {
            norm(b.norm1, n + ".norm1"); conv(b.conv1, n + ".conv1"); linear(b.embedding, n + ".temb_proj")
            norm(b.norm2, n + ".norm2"); conv(b.conv2, n + ".conv2")
            if let s = b.skip { conv(s, n + ".skip") }
        }
        func attention(_ a: SelfAttention2d, _ n: String) {
            norm(a.norm, n + ".norm"); conv(a.query, n + ".q"); conv(a.key, n + ".k"); conv(a.value, n + ".v"); conv(a.projection, n + ".proj")
        }
        linear(m.timeDense1, "temb_dense0"); linear(m.timeDense2, "temb_dense1"); conv(m.inputConv, "conv_in")
        var level = 0, r = 0
        for module in m.down {
            if let s = module as? Stage { block(s.block, "down.\(level).blocks.\(r)"); r += 1 }
            else if let d = module as? Downsample { conv(d.conv, "down.\(level).downsample.conv"); level += 1; r = 0 }
        }
        block(m.middle1, "mid_block1"); attention(m.middleAttention, "mid_attn"); block(m.middle2, "mid_block2")
        level = 0; r = 0
        for module in m.up {
            if let s = module as? Stage { block(s.block, "up.\(level).blocks.\(r)"); r += 1 }
            else if let u = module as? Upsample2x { conv(u.conv, "up.\(level).upsample.conv"); level += 1; r = 0 }
        }
        norm(m.outputNorm, "norm_out"); conv(m.outputConv, "conv_out")
        return out
    }

    /// Writes the check file; returns a one-line summary.
    static func export(preset: String, to path: String, batch: Int, seed: UInt64) throws -> String {
        guard let config = UNetConfig.preset(preset) else {
            throw ValidationError("--preset: unknown U-Net preset \"\(preset)\" (\(UNetConfig.presetNames.joined(separator: ", ")))")
        }
        guard config.attentionResolutions.isEmpty && config.classes == 0 && config.resBlocks == 1 else {
            throw ValidationError("--preset: \(preset) has a layout bench/models_torch.py does not build")
        }
        let key = RandomKey(seed: seed)
        let model = try UNet(config, key: key.fold("model"))
        let params = torchParameters(model)
        guard params.count == model.parameters().count else {
            throw ValidationError("--export-check: \(params.count) of the model's \(model.parameters().count) parameters have PyTorch names")
        }
        for (name, t) in params {
            let k = key.fold(name)
            if name.hasSuffix(".bias") { t.assign(Tensor.normal(t.shape, std: 0.1, key: k)) }
            else if name.contains("norm") && name.hasSuffix(".weight") { t.assign(Tensor.normal(t.shape, mean: 1, std: 0.1, key: k)) }
        }
        let x = Tensor.uniform([batch, config.imageChannels, config.imageSize, config.imageSize], low: -1, high: 1, key: key.fold("x"))
        let target = Tensor.normal(x.shape, key: key.fold("target"))
        let t = (0..<batch).map { Double(($0 * 997 + 13) % 1000) }
        var file = TensorTree()
        for (name, p) in params { file["param." + name] = p.copy() }
        file["input.x"] = x
        file["input.t"] = Tensor(t.map(Float.init), shape: [batch])
        file["input.temb_features"] = sinusoidalEmbedding(t, dimension: config.timeFeatures)
        file["input.target"] = target
        var wrt = TensorTree()
        for (name, p) in params { wrt["param." + name] = p }
        wrt["input.x"] = x
        var eps = x
        let (value, grads) = valueAndGradient(wrt: wrt) {
            eps = model(x, timesteps: t)
            return (eps - target).squared().mean()
        }
        file["output.eps"] = eps.detached()
        file["output.loss"] = value.reshaped([1])
        for (n, g) in grads { file["grad." + n] = g }
        try TensorFile.save(file, attributes: [
            "check": .string(format), "preset": .string(preset), "dtype": .string("float32"),
            "batch": .int(Int64(batch)), "seed": .int(Int64(bitPattern: seed)),
        ], to: path)
        return String(format: "%@: %@ float32, batch %d, loss %.9g; %d tensors (%d parameter gradients)",
                      path, preset, batch, value.item, file.count, params.count)
    }
}
