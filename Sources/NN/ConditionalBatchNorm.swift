import Tensor

/// Class-conditional batch normalization (de Vries et al., 2017; Dumoulin et al., 2017; used
/// in the SNGAN / projection-discriminator generators of Miyato & Koyama, 2018): a `BatchNorm`
/// without affine, then a per-class scale and shift, y = γ[label]·x̂ + β[label].
///
/// Parameters `gamma` and `beta` are [classes, channels] tables, initialised to 1 and 0 (so
/// at initialisation it is plain BatchNorm); the running statistics live in `norm`.
public final class ConditionalBatchNorm: Module {
    public let norm: BatchNorm
    public let gamma: Tensor
    public let beta: Tensor

    public init(channels: Int, classes: Int, eps: Double = 1e-5, momentum: Double = 0.1, dtype: DType = .float32) {
        precondition(classes >= 1, "ConditionalBatchNorm: needs at least one class")
        norm = BatchNorm(channels: channels, eps: eps, momentum: momentum, affine: false, dtype: dtype)
        gamma = Tensor.ones([classes, channels], dtype: dtype)
        beta = Tensor.zeros([classes, channels], dtype: dtype)
    }

    public var classes: Int { gamma.shape[0] }

    /// x [N, C, …], one label in 0..<classes per example.
    public func callAsFunction(_ x: Tensor, labels: [Int]) -> Tensor {
        precondition(labels.count == x.shape[0], "ConditionalBatchNorm: \(labels.count) labels for a batch of \(x.shape[0])")
        for l in labels { precondition(l >= 0 && l < classes, "ConditionalBatchNorm: label \(l) outside 0..<\(classes)") }
        var shape = [Int](repeating: 1, count: x.rank); shape[0] = x.shape[0]; shape[1] = x.shape[1]
        let scale = Tensor.embedding(gamma, indices: labels).reshaped(shape)
        let shift = Tensor.embedding(beta, indices: labels).reshaped(shape)
        return norm(x) * scale + shift
    }
}
