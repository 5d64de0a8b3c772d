import Tensor

/// How a loss reduces its per-element (or per-example) values.
public enum Reduction: Sendable { case mean, sum, none }

@inline(__always) func reduce(_ t: Tensor, _ r: Reduction) -> Tensor {
    switch r { case .mean: return t.mean(); case .sum: return t.sum(); case .none: return t }
}

/// Mean squared error, (prediction − target)².
public func mseLoss(_ prediction: Tensor, _ target: Tensor, reduction: Reduction = .mean) -> Tensor {
    precondition(prediction.shape == target.shape, "mseLoss: prediction \(prediction.shape) vs target \(target.shape)")
    return reduce((prediction - target).squared(), reduction)
}

/// Binary cross-entropy on logits, computed stably as max(x, 0) − x·y + log(1 + e^{−|x|}).
/// Targets in [0, 1].
public func bceWithLogitsLoss(_ logits: Tensor, _ targets: Tensor, reduction: Reduction = .mean) -> Tensor {
    precondition(logits.shape == targets.shape, "bceWithLogitsLoss: logits \(logits.shape) vs targets \(targets.shape)")
    let loss = logits.relu() - logits * targets + ((-logits.abs()).exp() + 1).log()
    return reduce(loss, reduction)
}

/// Softmax cross-entropy: logits [N, K], integer labels in 0..<K. `.none` gives [N].
public func crossEntropyLoss(_ logits: Tensor, labels: [Int], reduction: Reduction = .mean) -> Tensor {
    precondition(logits.rank == 2 && logits.shape[0] == labels.count,
                 "crossEntropyLoss: logits \(logits.shape) need [N, K] with N = \(labels.count) labels")
    let k = logits.shape[1]
    var onehot = [Double](repeating: 0, count: labels.count * k)
    for (i, l) in labels.enumerated() {
        precondition(l >= 0 && l < k, "crossEntropyLoss: label \(l) out of range 0..<\(k)")
        onehot[i * k + l] = 1
    }
    let target = Tensor(onehot, shape: logits.shape, dtype: logits.dtype)
    let perExample = -(logits.logSoftmax(axis: 1) * target).sum(axes: [1])
    return reduce(perExample, reduction)
}

/// Hinge loss max(0, 1 − y·s) with labels y ∈ {−1, +1} (same shape as the scores).
public func hingeLoss(_ scores: Tensor, _ labels: Tensor, reduction: Reduction = .mean) -> Tensor {
    precondition(scores.shape == labels.shape, "hingeLoss: scores \(scores.shape) vs labels \(labels.shape)")
    return reduce((1 - scores * labels).relu(), reduction)
}

/// The adversarial objective of a GAN, on raw discriminator logits.
/// - `nonSaturating`: Goodfellow et al. (2014)'s −log D(G(z)) generator loss, with the
///   discriminator's binary cross-entropy (as PyTorch's DCGAN example).
/// - `hinge`: Lim & Ye (2017) / Miyato et al. (2018)'s hinge loss (SNGAN, BigGAN).
public enum GANLoss: String, Codable, Sendable, CaseIterable { case nonSaturating = "nonsaturating", hinge }

/// The discriminator's loss for logits on a real and a fake batch (each [N] or any shape).
/// nonSaturating: BCE(real, 1) + BCE(fake, 0), each a mean; hinge: mean(relu(1 − real)) + mean(relu(1 + fake)).
public func ganDiscriminatorLoss(real: Tensor, fake: Tensor, _ kind: GANLoss) -> Tensor {
    switch kind {
    case .nonSaturating:
        return bceWithLogitsLoss(real, Tensor.ones(real.shape, dtype: real.dtype))
            + bceWithLogitsLoss(fake, Tensor.zeros(fake.shape, dtype: fake.dtype))
    case .hinge:
        return (1 - real).relu().mean() + (1 + fake).relu().mean()
    }
}

/// The generator's loss for the discriminator's logits on its samples.
/// nonSaturating: BCE(fake, 1) = mean(softplus(−fake)); hinge: −mean(fake).
public func ganGeneratorLoss(fake: Tensor, _ kind: GANLoss) -> Tensor {
    switch kind {
    case .nonSaturating: return bceWithLogitsLoss(fake, Tensor.ones(fake.shape, dtype: fake.dtype))
    case .hinge: return -fake.mean()
    }
}
