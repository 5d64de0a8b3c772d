import Tensor

/// Uniform initialisation U(−b, b) with b = 1/√fanIn: PyTorch's default for Linear and
/// conv weights (kaiming_uniform with a = √5) and biases.
public func defaultUniformInit(_ shape: [Int], fanIn: Int, key: RandomKey, dtype: DType = .float32) -> Tensor {
    let b = 1 / Double(max(fanIn, 1)).squareRoot()
    return Tensor.uniform(shape, low: -b, high: b, key: key, dtype: dtype)
}

/// Glorot/Xavier uniform (Glorot & Bengio, 2010): U(−a, a), a = gain·√(6 / (fanIn + fanOut)).
public func xavierUniform(_ shape: [Int], fanIn: Int, fanOut: Int, gain: Double = 1, key: RandomKey) -> Tensor {
    let a = gain * (6 / Double(fanIn + fanOut)).squareRoot()
    return Tensor.uniform(shape, low: -a, high: a, key: key)
}

/// Kaiming/He normal (He et al., 2015): N(0, 2 / fanIn).
public func kaimingNormal(_ shape: [Int], fanIn: Int, key: RandomKey) -> Tensor {
    Tensor.normal(shape, std: (2 / Double(fanIn)).squareRoot(), key: key)
}

/// y = x Wᵀ + b. x [N, in] → [N, out]; weight [out, in].
public final class Linear: Module, Layer {
    public let weight: Tensor
    public let bias: Tensor?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, key: RandomKey, dtype: DType = .float32) {
        weight = defaultUniformInit([outFeatures, inFeatures], fanIn: inFeatures, key: key.fold("weight"), dtype: dtype)
        self.bias = bias ? defaultUniformInit([outFeatures], fanIn: inFeatures, key: key.fold("bias"), dtype: dtype) : nil
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.rank == 2 && x.shape[1] == weight.shape[1], "Linear: input \(x.shape) does not match weight \(weight.shape) (expects [N, \(weight.shape[1])])")
        let y = Tensor.matmul(x, weight, transposeB: true)
        return bias.map { y + $0 } ?? y
    }
}

/// 2-D convolution layer. x [N, in, H, W] → [N, out, H', W']; weight [out, in, k, k].
public final class Conv2d: Module, Layer {
    public let weight: Tensor
    public let bias: Tensor?
    public let stride: Int, padding: Int

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true, key: RandomKey,
                dtype: DType = .float32) {
        let fanIn = inChannels * kernel * kernel
        weight = defaultUniformInit([outChannels, inChannels, kernel, kernel], fanIn: fanIn, key: key.fold("weight"), dtype: dtype)
        self.bias = bias ? defaultUniformInit([outChannels], fanIn: fanIn, key: key.fold("bias"), dtype: dtype) : nil
        self.stride = stride; self.padding = padding
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
    }
}

/// Transposed 2-D convolution layer. weight [in, out, k, k] (PyTorch's layout).
public final class ConvTranspose2d: Module, Layer {
    public let weight: Tensor
    public let bias: Tensor?
    public let stride: Int, padding: Int

    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true, key: RandomKey,
                dtype: DType = .float32) {
        // PyTorch computes fan-in from weight.size(1) * k * k for transposed convs.
        let fanIn = outChannels * kernel * kernel
        weight = defaultUniformInit([inChannels, outChannels, kernel, kernel], fanIn: fanIn, key: key.fold("weight"), dtype: dtype)
        self.bias = bias ? defaultUniformInit([outChannels], fanIn: fanIn, key: key.fold("bias"), dtype: dtype) : nil
        self.stride = stride; self.padding = padding
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.convTranspose2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
    }
}

/// Group normalization (Wu & He, 2018) with a per-channel affine.
public final class GroupNorm: Module, Layer {
    public let weight: Tensor?
    public let bias: Tensor?
    public let groups: Int, eps: Double

    public init(groups: Int, channels: Int, eps: Double = 1e-5, affine: Bool = true, dtype: DType = .float32) {
        precondition(channels % groups == 0, "GroupNorm: \(channels) channels not divisible into \(groups) groups")
        self.groups = groups; self.eps = eps
        weight = affine ? Tensor.ones([channels], dtype: dtype) : nil
        bias = affine ? Tensor.zeros([channels], dtype: dtype) : nil
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps)
    }

    /// SiLU(GroupNorm(x)) in one fused op.
    public func silu(_ x: Tensor) -> Tensor {
        Tensor.groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps, silu: true)
    }

    /// SiLU(GN(x + shift)) for shift [N, C] (a per-image, per-channel term such as the
    /// U-Net's time embedding), in one pass: x + shift is never written.
    public func silu(_ x: Tensor, shift: Tensor) -> Tensor {
        Tensor.groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps, silu: true, shift: shift)
    }
}

/// Batch normalization (Ioffe & Szegedy, 2015). Training mode normalises with batch
/// statistics and updates the running ones (momentum as in PyTorch: new = (1−m)·old + m·batch,
/// unbiased batch variance); evaluation mode uses the running statistics.
public final class BatchNorm: Module, Layer {
    public let weight: Tensor?
    public let bias: Tensor?
    public let runningMean: Tensor
    public let runningVar: Tensor
    public let eps: Double, momentum: Double

    override public var bufferNames: Set<String> { ["runningMean", "runningVar"] }

    public init(channels: Int, eps: Double = 1e-5, momentum: Double = 0.1, affine: Bool = true, dtype: DType = .float32) {
        self.eps = eps; self.momentum = momentum
        weight = affine ? Tensor.ones([channels], dtype: dtype) : nil
        bias = affine ? Tensor.zeros([channels], dtype: dtype) : nil
        runningMean = Tensor.zeros([channels], dtype: dtype); runningVar = Tensor.ones([channels], dtype: dtype)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { callAsFunction(x, activation: .none) }

    /// BatchNorm(x), then `activation` (fused into the normalization's pass in training).
    public func callAsFunction(_ x: Tensor, activation: NormActivation) -> Tensor {
        let c = runningMean.count
        precondition(x.rank >= 2 && x.shape[1] == c, "BatchNorm: input \(x.shape) must be [N, \(c), …]")
        if isTraining {
            let (y, mean, variance) = Tensor.batchNormTraining(x, weight: weight, bias: bias, eps: eps, activation: activation)
            let m = Double(x.count / c)
            withoutGradient {
                runningMean.lerpInPlace(toward: mean, decay: 1 - momentum)
                runningVar.lerpInPlace(toward: variance * (m / max(m - 1, 1)), decay: 1 - momentum)
            }
            return y
        }
        var shape = [Int](repeating: 1, count: x.rank); shape[1] = c
        let scale = withoutGradient { (runningVar + eps).pow(-0.5) }
        if !isRecordingGradients {
            // sampling and evaluation: one pass, the same operations per value as below
            return Tensor.channelAffine(x, subtract: runningMean, scale: scale, weight: weight, bias: bias, activation: activation)
        }
        var y = (x - runningMean.reshaped(shape)) * scale.reshaped(shape)
        if let weight, let bias { y = y * weight.reshaped(shape) + bias.reshaped(shape) }
        return y.activated(activation)
    }
}

/// Row lookup: indices → [count, dim]. Initialised N(0, 1) as in PyTorch.
public final class Embedding: Module {
    public let weight: Tensor

    public init(vocabulary: Int, dimension: Int, key: RandomKey, dtype: DType = .float32) {
        weight = Tensor.normal([vocabulary, dimension], key: key.fold("weight"), dtype: dtype)
    }

    public func callAsFunction(_ indices: [Int]) -> Tensor { Tensor.embedding(weight, indices: indices) }
}

/// Inverted dropout: in training, zero each element with probability p and scale the
/// rest by 1/(1−p); identity in evaluation mode. The mask comes from the caller's key.
public final class Dropout: Module {
    public let probability: Double

    public init(_ probability: Double) {
        precondition(probability >= 0 && probability < 1, "Dropout: probability \(probability) outside [0, 1)")
        self.probability = probability
    }

    public func callAsFunction(_ x: Tensor, key: RandomKey) -> Tensor {
        isTraining ? x.dropout(probability: probability, key: key) : x
    }
}

/// Pointwise activation as a layer.
public final class Activation: Module, Layer {
    public enum Kind: String, Sendable { case relu, silu, gelu, tanh, sigmoid, leakyRelu }
    public let kind: Kind
    public let slope: Double

    public init(_ kind: Kind, slope: Double = 0.2) { self.kind = kind; self.slope = slope }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        switch kind {
        case .relu: return x.relu()
        case .silu: return x.silu()
        case .gelu: return x.gelu()
        case .tanh: return x.tanh()
        case .sigmoid: return x.sigmoid()
        case .leakyRelu: return x.leakyRelu(slope: slope)
        }
    }
}

/// k×k average pooling with stride k.
public final class AvgPool: Module, Layer {
    public let kernel: Int
    public init(_ kernel: Int) { self.kernel = kernel }
    public func callAsFunction(_ x: Tensor) -> Tensor { x.avgPooled(kernel: kernel) }
}

/// Nearest-neighbour upsampling by an integer factor.
public final class Upsample: Module, Layer {
    public let factor: Int
    public init(_ factor: Int) { self.factor = factor }
    public func callAsFunction(_ x: Tensor) -> Tensor { x.upsampledNearest(factor: factor) }
}

/// Flattens [N, …] to [N, rest].
public final class Flatten: Module, Layer {
    override public init() {}
    public func callAsFunction(_ x: Tensor) -> Tensor { x.flattened(from: 1) }
}

/// Layers applied in order; parameters are named "layers.<i>.…".
public final class Sequential: Module, Layer {
    public let layers: [Module]

    public init(_ layers: [any Layer]) { self.layers = layers }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        layers.reduce(x) { ($1 as! any Layer)($0) }
    }
}

/// Single-head self-attention over the spatial positions of a feature map, with a
/// residual connection (the DDPM U-Net's AttnBlock; Ho et al., 2020):
/// h = GN(x); q, k, v = 1×1 convs; out = x + proj(softmax(qᵀk / √C) v).
public final class SelfAttention2d: Module, Layer {
    public let norm: GroupNorm
    public let query: Conv2d, key: Conv2d, value: Conv2d, projection: Conv2d

    public init(channels: Int, groups: Int, eps: Double = 1e-6, key rk: RandomKey) {
        norm = GroupNorm(groups: groups, channels: channels, eps: eps)
        query = Conv2d(channels, channels, kernel: 1, key: rk.fold("q"))
        key = Conv2d(channels, channels, kernel: 1, key: rk.fold("k"))
        value = Conv2d(channels, channels, kernel: 1, key: rk.fold("v"))
        projection = Conv2d(channels, channels, kernel: 1, key: rk.fold("proj"))
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let hn = norm(x)
        let q = query(hn).reshaped([n, c, h * w]), k = key(hn).reshaped([n, c, h * w]), v = value(hn).reshaped([n, c, h * w])
        // scores[b, i, j] = Σ_c q[b, c, i] k[b, c, j] / √C
        let scores = Tensor.matmul(q, k, transposeA: true) * (1 / Double(c).squareRoot())
        let attn = scores.softmax(axis: -1)                       // [n, hw(i), hw(j)]
        let out = Tensor.matmul(v, attn, transposeB: true)         // [n, c, hw(i)] = v · attnᵀ
        return x + projection(out.reshaped([n, c, h, w]))
    }
}
