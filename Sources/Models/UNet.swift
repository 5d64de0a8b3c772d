import NN
import Tensor

/// The shape of a DDPM U-Net (Ho et al., 2020; layout of the DDPM / improved-diffusion
/// code): base channels, a multiplier per resolution, residual blocks per level, the
/// resolutions that get self-attention in the down and up paths (the middle always has
/// one), dropout, GroupNorm groups, and optional class conditioning.
public struct UNetConfig: Codable, Equatable, Sendable {
    public var imageChannels: Int
    public var imageSize: Int
    public var baseChannels: Int
    public var channelMultipliers: [Int]
    public var resBlocks: Int
    public var attentionResolutions: [Int]
    public var dropout: Double
    public var groups: Int
    /// Number of classes for class conditioning (0: unconditional). Label `classes` is the
    /// null label used for classifier-free guidance.
    public var classes: Int
    /// Width of the sinusoidal timestep features, and of the embedding MLP's output that
    /// every ResBlock receives (32 and 128 in both reference presets).
    public var timeFeatures: Int
    public var embeddingDim: Int

    public init(imageChannels: Int = 3, imageSize: Int = 32, baseChannels: Int = 32, channelMultipliers: [Int] = [1, 2, 2],
                resBlocks: Int = 1, attentionResolutions: [Int] = [], dropout: Double = 0, groups: Int = 8, classes: Int = 0,
                timeFeatures: Int = 32, embeddingDim: Int = 128) {
        self.imageChannels = imageChannels; self.imageSize = imageSize; self.baseChannels = baseChannels
        self.channelMultipliers = channelMultipliers; self.resBlocks = resBlocks; self.attentionResolutions = attentionResolutions
        self.dropout = dropout; self.groups = groups; self.classes = classes
        self.timeFeatures = timeFeatures; self.embeddingDim = embeddingDim
    }

    /// `unet-s`: base 32, (1, 2, 2) at 32/16/8, one res block per level, attention in the
    /// middle only; 1,063,651 parameters and 0.49 GFLOP per forward at 3×32×32.
    public static let unetS = UNetConfig()
    /// `unet-m`: the same with base 64 (4,021,443 parameters, 1.95 GFLOP).
    public static let unetM = UNetConfig(baseChannels: 64)

    /// `unet-xs`: the sweep preset (issue 14): base 16, (1, 2, 2), one res block per level,
    /// attention in the middle only, a 64-wide embedding. Sized so that a job — memorizing a
    /// 64–256 image subset, sampling, evaluating — takes minutes on 2 cores (docs/RESULTS.md
    /// has its parameter count, FLOPs and memorization curve).
    public static let unetXS = UNetConfig(baseChannels: 16, embeddingDim: 64)

    public static let presetNames = ["unet-xs", "unet-s", "unet-m"]

    public static func preset(_ name: String) -> UNetConfig? {
        switch name { case "unet-xs": return .unetXS; case "unet-s": return .unetS; case "unet-m": return .unetM; default: return nil }
    }

    /// Checks the configuration; the message names the offending field.
    public func validate() throws {
        func fail(_ m: String) -> UNetError { UNetError.invalidConfig(m) }
        guard imageChannels >= 1 else { throw fail("image_channels must be ≥ 1, got \(imageChannels)") }
        guard baseChannels >= 1, groups >= 1 else { throw fail(baseChannels < 1 ? "base_channels must be ≥ 1, got \(baseChannels)" : "groups must be ≥ 1, got \(groups)") }
        guard !channelMultipliers.isEmpty, channelMultipliers.allSatisfy({ $0 >= 1 }) else { throw fail("channel_multipliers must be non-empty and ≥ 1, got \(channelMultipliers)") }
        let down = 1 << (channelMultipliers.count - 1)
        guard imageSize >= down, imageSize % down == 0 else {
            throw fail("image_size: \(imageSize) must be divisible by 2^(levels−1) = \(down) for \(channelMultipliers.count) levels")
        }
        for m in channelMultipliers where (baseChannels * m) % groups != 0 {
            throw fail("groups: \(groups) does not divide the \(baseChannels * m) channels (base_channels × \(m)) of a level")
        }
        guard timeFeatures >= 2 && timeFeatures % 2 == 0 else { throw fail("time_features must be even and ≥ 2, got \(timeFeatures)") }
        guard embeddingDim >= 1 else { throw fail("embedding_dim must be ≥ 1, got \(embeddingDim)") }
        guard resBlocks >= 1 else { throw fail("res_blocks must be ≥ 1, got \(resBlocks)") }
        guard dropout >= 0 && dropout < 1 else { throw fail("dropout must be in [0, 1), got \(dropout)") }
        guard classes >= 0 else { throw fail("classes must be ≥ 0, got \(classes)") }
        let resolutions = (0..<channelMultipliers.count).map { imageSize >> $0 }
        for r in attentionResolutions where !resolutions.contains(r) {
            throw fail("attention_resolutions: \(r) is not a resolution of this U-Net (its levels are \(resolutions.map(String.init).joined(separator: ", ")))")
        }
    }
}

public enum UNetError: Error, CustomStringConvertible {
    case invalidConfig(String)
    public var description: String { switch self { case .invalidConfig(let m): return "model: \(m)" } }
}

/// `[sin(t·f_i), cos(t·f_i)]`, f_i = 10000^(−i/(half−1)): the DDPM timestep embedding. [B, dim].
public func sinusoidalEmbedding(_ timesteps: [Double], dimension: Int) -> Tensor {
    let half = dimension / 2
    var v = [Float](repeating: 0, count: timesteps.count * dimension)
    for (b, t) in timesteps.enumerated() {
        for i in 0..<half {
            let f = Foundation.exp(-Foundation.log(10000.0) * Double(i) / Double(max(half - 1, 1)))
            v[b * dimension + i] = Float(Foundation.sin(t * f))
            v[b * dimension + half + i] = Float(Foundation.cos(t * f))
        }
    }
    return Tensor(v, shape: [timesteps.count, dimension])
}

import Foundation

/// GroupNorm → SiLU → conv3×3, then + Linear(SiLU(temb)) per channel, GroupNorm → SiLU →
/// (dropout) → conv3×3, plus a 1×1 skip when channels change.
public final class ResBlock: Module {
    public let norm1: GroupNorm, conv1: Conv2d, embedding: Linear, norm2: GroupNorm, conv2: Conv2d
    public let skip: Conv2d?
    let dropout: Dropout

    init(_ cin: Int, _ cout: Int, embeddingDim: Int, groups: Int, dropout: Double, key: RandomKey) {
        norm1 = GroupNorm(groups: groups, channels: cin, eps: 1e-6)
        conv1 = Conv2d(cin, cout, kernel: 3, padding: 1, key: key.fold("conv1"))
        embedding = Linear(embeddingDim, cout, key: key.fold("emb"))
        norm2 = GroupNorm(groups: groups, channels: cout, eps: 1e-6)
        conv2 = Conv2d(cout, cout, kernel: 3, padding: 1, key: key.fold("conv2"))
        skip = cin == cout ? nil : Conv2d(cin, cout, kernel: 1, key: key.fold("skip"))
        self.dropout = Dropout(dropout)
    }

    /// x [B, cin, H, W]; embeddingActivation = SiLU(temb) [B, E].
    func callAsFunction(_ x: Tensor, _ embeddingActivation: Tensor, dropoutKey: RandomKey) -> Tensor {
        var h = conv1(norm1.silu(x))
        let e = embedding(embeddingActivation)                  // [B, cout]
        h = norm2.silu(h, shift: e)                             // SiLU(GN(h + e)), h + e never written
        if dropout.probability > 0 { h = dropout(h, key: dropoutKey) }
        h = conv2(h)
        return (skip.map { $0(x) } ?? x) + h
    }
}

/// Stride-2 3×3 convolution.
public final class Downsample: Module, Layer {
    public let conv: Conv2d
    init(_ c: Int, key: RandomKey) { conv = Conv2d(c, c, kernel: 3, stride: 2, padding: 1, key: key) }
    public func callAsFunction(_ x: Tensor) -> Tensor { conv(x) }
}

/// Nearest ×2, then 3×3 convolution.
public final class Upsample2x: Module, Layer {
    public let conv: Conv2d
    init(_ c: Int, key: RandomKey) { conv = Conv2d(c, c, kernel: 3, padding: 1, key: key) }
    public func callAsFunction(_ x: Tensor) -> Tensor { conv(x.upsampledNearest(factor: 2)) }
}

/// One step of the down or up path: a ResBlock, optionally followed by attention.
public final class Stage: Module {
    public let block: ResBlock
    public let attention: SelfAttention2d?
    init(block: ResBlock, attention: SelfAttention2d?) { self.block = block; self.attention = attention }
    func callAsFunction(_ x: Tensor, _ emb: Tensor, dropoutKey: RandomKey) -> Tensor {
        let h = block(x, emb, dropoutKey: dropoutKey)
        return attention.map { $0(h) } ?? h
    }
}

/// The ε-prediction U-Net: ε̂ = model(x_t, t[, label]).
public final class UNet: Module {
    public let config: UNetConfig
    public let timeDense1: Linear, timeDense2: Linear
    public let labelEmbedding: Embedding?
    public let inputConv: Conv2d
    public let down: [Module]          // Stage or Downsample, in order
    public let middle1: ResBlock, middleAttention: SelfAttention2d, middle2: ResBlock
    public let up: [Module]            // Stage or Upsample2x, in order
    public let outputNorm: GroupNorm, outputConv: Conv2d

    public init(_ c: UNetConfig, key: RandomKey) throws {
        try c.validate()
        config = c
        let ch = c.baseChannels, emb = c.embeddingDim
        timeDense1 = Linear(c.timeFeatures, emb, key: key.fold("temb1"))
        timeDense2 = Linear(emb, emb, key: key.fold("temb2"))
        labelEmbedding = c.classes > 0 ? Embedding(vocabulary: c.classes + 1, dimension: emb, key: key.fold("label")) : nil
        inputConv = Conv2d(c.imageChannels, ch, kernel: 3, padding: 1, key: key.fold("in"))
        var downs: [Module] = [], skips = [ch]
        var cur = ch, res = c.imageSize
        func attn(_ channels: Int, _ k: RandomKey) -> SelfAttention2d? {
            c.attentionResolutions.contains(res) ? SelfAttention2d(channels: channels, groups: c.groups, eps: 1e-6, key: k) : nil
        }
        for (level, mult) in c.channelMultipliers.enumerated() {
            for r in 0..<c.resBlocks {
                let k = key.fold("down").fold(UInt64(level * 100 + r))
                downs.append(Stage(block: ResBlock(cur, ch * mult, embeddingDim: emb, groups: c.groups, dropout: c.dropout, key: k),
                                   attention: attn(ch * mult, k.fold("attn"))))
                cur = ch * mult; skips.append(cur)
            }
            if level != c.channelMultipliers.count - 1 {
                downs.append(Downsample(cur, key: key.fold("downsample").fold(UInt64(level))))
                skips.append(cur); res /= 2
            }
        }
        down = downs
        middle1 = ResBlock(cur, cur, embeddingDim: emb, groups: c.groups, dropout: c.dropout, key: key.fold("mid1"))
        middleAttention = SelfAttention2d(channels: cur, groups: c.groups, eps: 1e-6, key: key.fold("midattn"))
        middle2 = ResBlock(cur, cur, embeddingDim: emb, groups: c.groups, dropout: c.dropout, key: key.fold("mid2"))
        var ups: [Module] = []
        for (level, mult) in c.channelMultipliers.enumerated().reversed() {
            for r in 0...c.resBlocks {
                let k = key.fold("up").fold(UInt64(level * 100 + r))
                let skipChannels = skips.removeLast()
                ups.append(Stage(block: ResBlock(cur + skipChannels, ch * mult, embeddingDim: emb, groups: c.groups, dropout: c.dropout, key: k),
                                 attention: attn(ch * mult, k.fold("attn"))))
                cur = ch * mult
            }
            if level != 0 { ups.append(Upsample2x(cur, key: key.fold("upsample").fold(UInt64(level)))); res *= 2 }
        }
        up = ups
        outputNorm = GroupNorm(groups: c.groups, channels: cur, eps: 1e-6)
        outputConv = Conv2d(cur, c.imageChannels, kernel: 3, padding: 1, key: key.fold("out"))
    }

    /// SiLU of the timestep (+ label) embedding, [B, embeddingDim].
    public func embedding(timesteps: [Double], labels: [Int]?) -> Tensor {
        var e = timeDense2(timeDense1(sinusoidalEmbedding(timesteps, dimension: config.timeFeatures)).silu())
        if let labelEmbedding {
            let l = labels ?? [Int](repeating: config.classes, count: timesteps.count)
            precondition(l.count == timesteps.count, "UNet: \(l.count) labels for a batch of \(timesteps.count)")
            e = e + labelEmbedding(l)
        }
        return e.silu()
    }

    /// ε̂ for x [B, C, H, W] at integer timesteps t (as Doubles) and optional labels
    /// (nil or `config.classes` = the null label). `dropoutKey` drives dropout in training.
    public func callAsFunction(_ x: Tensor, timesteps: [Double], labels: [Int]? = nil, dropoutKey: RandomKey = RandomKey(seed: 0)) -> Tensor {
        let c = config
        precondition(x.rank == 4 && x.shape[1] == c.imageChannels && x.shape[2] == c.imageSize && x.shape[3] == c.imageSize,
                     "UNet: input \(x.shape) does not match [B, \(c.imageChannels), \(c.imageSize), \(c.imageSize)]")
        precondition(timesteps.count == x.shape[0], "UNet: \(timesteps.count) timesteps for a batch of \(x.shape[0])")
        let emb = embedding(timesteps: timesteps, labels: labels)
        var h = inputConv(x)
        var skips = [h]
        for (i, m) in down.enumerated() {
            if let s = m as? Stage { h = s(h, emb, dropoutKey: dropoutKey.fold(UInt64(i))) } else { h = (m as! Downsample)(h) }
            skips.append(h)
        }
        h = middle1(h, emb, dropoutKey: dropoutKey.fold("mid1"))
        h = middleAttention(h)
        h = middle2(h, emb, dropoutKey: dropoutKey.fold("mid2"))
        for (i, m) in up.enumerated() {
            if let s = m as? Stage {
                h = s(Tensor.concat([h, skips.removeLast()], axis: 1), emb, dropoutKey: dropoutKey.fold(UInt64(1000 + i)))
            } else { h = (m as! Upsample2x)(h) }
        }
        return outputConv(outputNorm.silu(h))
    }

    /// Forward FLOPs per image: 2 × multiply–adds of convolutions, linear layers and the
    /// attention products (norms, activations and adds not counted), as in reference-models.md.
    public var forwardFLOPs: Int {
        var flops = 0
        var res = config.imageSize
        func conv(_ c: Conv2d, _ r: Int) -> Int { let w = c.weight.shape; let o = r / c.stride; return 2 * w[0] * w[1] * w[2] * w[3] * o * o }
        func lin(_ l: Linear) -> Int { 2 * l.weight.shape[0] * l.weight.shape[1] }
        func block(_ b: ResBlock, _ r: Int) -> Int { conv(b.conv1, r) + conv(b.conv2, r) + lin(b.embedding) + (b.skip.map { conv($0, r) } ?? 0) }
        func attention(_ a: SelfAttention2d, _ r: Int) -> Int {
            let c = a.query.weight.shape[0]
            return 4 * conv(a.query, r) + 2 * (2 * c * r * r * r * r)
        }
        flops += lin(timeDense1) + lin(timeDense2) + conv(inputConv, res)
        for m in down {
            if let s = m as? Stage { flops += block(s.block, res) + (s.attention.map { attention($0, res) } ?? 0) }
            else if let d = m as? Downsample { flops += conv(d.conv, res); res /= 2 }
        }
        flops += block(middle1, res) + attention(middleAttention, res) + block(middle2, res)
        for m in up {
            if let s = m as? Stage { flops += block(s.block, res) + (s.attention.map { attention($0, res) } ?? 0) }
            else if let u = m as? Upsample2x { res *= 2; flops += conv(u.conv, res) }
        }
        return flops + conv(outputConv, res)
    }

    /// A short description: parameters, FLOPs and the stage layout.
    public func describe() -> String {
        var lines = ["UNet \(config.baseChannels)×\(config.channelMultipliers) res_blocks=\(config.resBlocks) attention=\(config.attentionResolutions)+middle dropout=\(config.dropout) classes=\(config.classes) input \(config.imageChannels)×\(config.imageSize)×\(config.imageSize)"]
        lines.append("parameters: \(parameterCount)")
        lines.append(String(format: "forward: %.4f GFLOP per image (%d); training step ≈ 3× that", Double(forwardFLOPs) / 1e9, forwardFLOPs))
        return lines.joined(separator: "\n")
    }
}
