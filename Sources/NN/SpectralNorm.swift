import Tensor

/// Spectral normalization (Miyato et al., 2018, "Spectral Normalization for Generative
/// Adversarial Networks"): a weight W, seen as the matrix W_mat [out, rest] (rest = every
/// other axis, e.g. in·k·k for a convolution), is used as W / σ̂ with σ̂ ≈ σ_max(W_mat)
/// estimated by power iteration.
///
/// `u` [out] and `v` [rest] are the persistent singular-vector estimates (module buffers, so
/// they are saved and loaded with `state()` / `load()`). With `update` (training mode), each
/// call first runs `powerIterations` steps without gradient, v ← normalize(W_matᵀ u),
/// u ← normalize(W_mat v), writing them back into the buffers; then σ̂ = uᵀ W_mat v is
/// computed with gradient w.r.t. W only: u and v are constants of the derivative, as in
/// PyTorch's `torch.nn.utils.spectral_norm`. Without `update` (evaluation) the stored u, v
/// are used as they are. normalize(x) = x / max(‖x‖, eps), eps = 1e-12 as in PyTorch.
public func spectralNormalized(_ weight: Tensor, u: Tensor, v: Tensor, powerIterations: Int, update: Bool,
                               eps: Double = 1e-12) -> Tensor {
    let out = weight.shape[0], rest = weight.count / max(out, 1)
    precondition(u.shape == [out] && v.shape == [rest],
                 "spectralNormalized: u \(u.shape) and v \(v.shape) must be [\(out)] and [\(rest)] for weight \(weight.shape)")
    let matrix = weight.reshaped([out, rest])
    if update {
        withoutGradient {
            for _ in 0..<powerIterations { spectralPowerIteration(matrix.detached(), u: u, v: v, eps: eps) }
        }
    }
    // Copies: a later training-mode call rewrites the buffers in place, and this graph's
    // backward pass must still see the vectors used here (PyTorch clones them for the same reason).
    let uConst = u.copy().reshaped([out, 1]), vConst = v.copy().reshaped([rest, 1])
    uConst.isBatchFree = true; vConst.isBatchFree = true   // never batch data (per-example gradients)
    let sigma = (Tensor.matmul(matrix, vConst) * uConst).sum()
    return weight / sigma
}

/// One power-iteration step on `matrix` [out, rest], updating `u` [out] and `v` [rest] in place.
public func spectralPowerIteration(_ matrix: Tensor, u: Tensor, v: Tensor, eps: Double = 1e-12) {
    let (out, rest) = (matrix.shape[0], matrix.shape[1])
    withoutGradient {
        let newV = Tensor.matmul(matrix, u.reshaped([out, 1]), transposeA: true)
        v.assign(normalizedVector(newV).reshaped([rest]))
        let newU = Tensor.matmul(matrix, v.reshaped([rest, 1]))
        u.assign(normalizedVector(newU).reshaped([out]))
    }
}

/// x / max(‖x‖₂, eps) (PyTorch's `F.normalize`).
private func normalizedVector(_ x: Tensor, eps: Double = 1e-12) -> Tensor {
    x * (1 / Swift.max(x.squaredNorm().squareRoot(), eps))
}

/// Initial singular-vector estimates for `weight`: u = normalize(N(0, 1)) from `key`, then
/// `warmUp` power iterations, so that σ̂ is already accurate before the first training step
/// (PyTorch's `parametrizations.spectral_norm` runs 15 at registration).
private func initialSingularVectors(_ weight: Tensor, key: RandomKey, warmUp: Int = 15) -> (u: Tensor, v: Tensor) {
    let out = weight.shape[0], rest = weight.count / max(out, 1)
    let u = normalizedVector(Tensor.normal([out], key: key.fold("u"), dtype: weight.dtype))
    let v = Tensor.zeros([rest], dtype: weight.dtype)
    let matrix = weight.reshaped([out, rest])
    for _ in 0..<Swift.max(warmUp, 1) { spectralPowerIteration(matrix, u: u, v: v) }
    return (u, v)
}

/// A 2-D convolution whose weight is spectrally normalized (`spectralNormalized`).
/// weight [out, in, k, k] (OIHW), bias [out]; buffers u [out], v [in·k·k]. PyTorch's
/// `spectral_norm(nn.Conv2d(…))` names these `weight_orig`, `bias`, `weight_u`, `weight_v`.
public final class SpectralNormConv2d: Module, Layer {
    public let weight: Tensor
    public let bias: Tensor?
    public let u: Tensor, v: Tensor
    public let stride: Int, padding: Int, powerIterations: Int

    override public var bufferNames: Set<String> { ["u", "v"] }

    /// Wraps given initial values (`weight` [out, in, k, k]); `key` draws u.
    public init(weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0, powerIterations: Int = 1, key: RandomKey) {
        precondition(weight.rank == 4, "SpectralNormConv2d: weight \(weight.shape) must be [out, in, k, k]")
        precondition(bias.map { $0.shape == [weight.shape[0]] } ?? true, "SpectralNormConv2d: bias must be [\(weight.shape[0])]")
        precondition(powerIterations >= 1, "SpectralNormConv2d: powerIterations must be ≥ 1")
        self.weight = weight; self.bias = bias
        (u, v) = initialSingularVectors(weight, key: key)
        self.stride = stride; self.padding = padding; self.powerIterations = powerIterations
    }

    /// PyTorch's default initialisation (as `Conv2d`).
    public convenience init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true,
                            powerIterations: Int = 1, key: RandomKey, dtype: DType = .float32) {
        let plain = Conv2d(inChannels, outChannels, kernel: kernel, stride: stride, padding: padding, bias: bias, key: key, dtype: dtype)
        self.init(weight: plain.weight, bias: plain.bias, stride: stride, padding: padding, powerIterations: powerIterations, key: key.fold("sn"))
    }

    /// W / σ̂; in training mode this advances the power iteration (see `spectralNormalized`).
    public func normalizedWeight() -> Tensor {
        spectralNormalized(weight, u: u, v: v, powerIterations: powerIterations, update: isTraining)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.conv2d(x, weight: normalizedWeight(), bias: bias, stride: stride, padding: padding)
    }
}

/// y = x (W/σ̂)ᵀ + b with a spectrally normalized weight [out, in]; buffers u [out], v [in].
public final class SpectralNormLinear: Module, Layer {
    public let weight: Tensor
    public let bias: Tensor?
    public let u: Tensor, v: Tensor
    public let powerIterations: Int

    override public var bufferNames: Set<String> { ["u", "v"] }

    public init(weight: Tensor, bias: Tensor?, powerIterations: Int = 1, key: RandomKey) {
        precondition(weight.rank == 2, "SpectralNormLinear: weight \(weight.shape) must be [out, in]")
        precondition(bias.map { $0.shape == [weight.shape[0]] } ?? true, "SpectralNormLinear: bias must be [\(weight.shape[0])]")
        precondition(powerIterations >= 1, "SpectralNormLinear: powerIterations must be ≥ 1")
        self.weight = weight; self.bias = bias
        (u, v) = initialSingularVectors(weight, key: key)
        self.powerIterations = powerIterations
    }

    public convenience init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, powerIterations: Int = 1, key: RandomKey,
                            dtype: DType = .float32) {
        let plain = Linear(inFeatures, outFeatures, bias: bias, key: key, dtype: dtype)
        self.init(weight: plain.weight, bias: plain.bias, powerIterations: powerIterations, key: key.fold("sn"))
    }

    public func normalizedWeight() -> Tensor {
        spectralNormalized(weight, u: u, v: v, powerIterations: powerIterations, update: isTraining)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.rank == 2 && x.shape[1] == weight.shape[1], "SpectralNormLinear: input \(x.shape) does not match weight \(weight.shape)")
        let y = Tensor.matmul(x, normalizedWeight(), transposeB: true)
        return bias.map { y + $0 } ?? y
    }
}

/// Row lookup in a spectrally normalized table [vocabulary, dim] (u [vocabulary], v [dim]):
/// the class embedding of a projection discriminator (Miyato & Koyama, 2018, normalize it too).
public final class SpectralNormEmbedding: Module {
    public let weight: Tensor
    public let u: Tensor, v: Tensor
    public let powerIterations: Int

    override public var bufferNames: Set<String> { ["u", "v"] }

    public init(weight: Tensor, powerIterations: Int = 1, key: RandomKey) {
        precondition(weight.rank == 2, "SpectralNormEmbedding: weight \(weight.shape) must be [vocabulary, dim]")
        precondition(powerIterations >= 1, "SpectralNormEmbedding: powerIterations must be ≥ 1")
        self.weight = weight
        (u, v) = initialSingularVectors(weight, key: key)
        self.powerIterations = powerIterations
    }

    public func normalizedWeight() -> Tensor {
        spectralNormalized(weight, u: u, v: v, powerIterations: powerIterations, update: isTraining)
    }

    public func callAsFunction(_ indices: [Int]) -> Tensor { Tensor.embedding(normalizedWeight(), indices: indices) }
}
