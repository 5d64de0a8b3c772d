/// Every differentiable primitive, and — in one table below — its vector-Jacobian product.
///
/// Composite ops (mean, variance, logSumExp, logSoftmax, dropout, losses, attention)
/// are built from these and need no rules of their own. A rule receives the upstream
/// gradient `g` (shaped like the node's output) and returns one gradient per input,
/// or nil where `needs` says the input is not tracked. Gradients of broadcasting
/// binary ops are returned at the output's shape; the tape sums them back to each
/// input's shape (`Tensor.summed(toShape:)`), so no rule repeats that step.
enum Op {
    // pointwise, broadcasting
    case add, sub, mul, div, pow
    // pointwise, one input
    case neg, exp, log, sqrt, abs, tanh, sigmoid, relu, silu, gelu
    case leakyRelu(slope: Double), powScalar(Double), affine(scale: Double)
    // reductions and broadcasting (shape with the reduced axes kept as 1)
    case sum(keptShape: [Int]), max(keptShape: [Int]), expand
    // linear algebra
    case matmul(transposeA: Bool, transposeB: Bool)
    case conv2d(ConvGeometry), convTranspose2d(ConvGeometry)
    case upsample(Int), avgPool(Int)
    // shape
    case reshape, permute([Int]), concat(axis: Int), slice(axis: Int, start: Int), pad(axis: Int, before: Int, after: Int)
    // normalisation and lookup
    case softmax(axis: Int)
    case groupNorm(groups: Int, silu: Bool)   // saved: mean, rstd
    case groupNormShifted(groups: Int, silu: Bool)   // inputs x, shift [N, C], γ?, β?; saved: mean, rstd
    case batchNorm(NormActivation)  // saved: mean, rstd
    case embedding(indices: [Int])
}

/// The derivative table.
func vectorJacobianProducts(_ node: Node, _ g: Tensor, needs: [Bool]) -> [Tensor?] {
    let x = node.inputs, y = node.output
    switch node.op {
    case .add: return [g, g]
    case .sub: return [g, needs[1] ? -g : nil]
    case .mul: return [needs[0] ? g * x[1] : nil, needs[1] ? g * x[0] : nil]
    case .div: return [needs[0] ? g / x[1] : nil, needs[1] ? -(g * y / x[1]) : nil]
    case .pow: return [needs[0] ? g * x[1] * x[0].pow(x[1] - 1) : nil, needs[1] ? g * y * x[0].log() : nil]

    case .neg: return [-g]
    case .exp: return [g * y]
    case .log: return [g / x[0]]
    case .sqrt: return [g / y * 0.5]
    case .abs: return [g * x[0].sign()]
    case .tanh: return [g * (1 - y.squared())]
    case .sigmoid: return [g * y * (1 - y)]
    case .relu: return [Tensor.applyBinary(.reluGrad, x[0], g, name: "relu'")]
    case .silu: return [Tensor.applyBinary(.siluGrad, x[0], g, name: "silu'")]
    case .gelu: return [Tensor.applyBinary(.geluGrad, x[0], g, name: "gelu'")]
    case .leakyRelu(let s): return [Tensor.applyBinary(.leakyReluGrad(s), x[0], g, name: "leakyRelu'")]
    case .powScalar(let p): return [g * x[0].pow(p - 1) * p]
    case .affine(let scale): return [g * scale]

    case .sum(let kept): return [g.reshaped(kept).expanded(to: x[0].shape)]
    case .max(let kept):
        let mask = Tensor.applyBinary(.equalMask, x[0], y.reshaped(kept), name: "max'")
        return [mask * g.reshaped(kept)]
    case .expand: return [g]   // the tape sums it back to the input's shape

    case .matmul(let ta, let tb):
        let (a, b) = (x[0], x[1])
        let da: Tensor? = !needs[0] ? nil :
            (ta ? Tensor.matmul(b, g, transposeA: tb, transposeB: true)      // (op(B) Gᵀ)… = B Gᵀ or Bᵀ Gᵀ
                : Tensor.matmul(g, b, transposeA: false, transposeB: !tb))   // G op(B)ᵀ
        let db: Tensor? = !needs[1] ? nil :
            (tb ? Tensor.matmul(g, a, transposeA: true, transposeB: ta)      // Gᵀ op(A)
                : Tensor.matmul(a, g, transposeA: !ta, transposeB: false))   // op(A)ᵀ G
        return [da, db]

    case .conv2d(let geo):
        return layerGradients(x, g, needs) { dx, dw, db in
            dispatch(g.dtype, { ConvKernels.backward(x[0], x[1], g, geo, dx: dx, dw: dw, db: db, Float.self) },
                              { ConvKernels.backward(x[0], x[1], g, geo, dx: dx, dw: dw, db: db, Double.self) })
        }
    case .convTranspose2d(let geo):
        return layerGradients(x, g, needs) { dx, dw, db in
            dispatch(g.dtype, { ConvKernels.transposeBackward(x[0], x[1], g, geo, dx: dx, dw: dw, db: db, Float.self) },
                              { ConvKernels.transposeBackward(x[0], x[1], g, geo, dx: dx, dw: dw, db: db, Double.self) })
        }
    case .upsample(let f): return [g.avgPooled(kernel: f) * Double(f * f)]
    case .avgPool(let k): return [g.upsampledNearest(factor: k) * (1 / Double(k * k))]

    case .reshape: return [g.reshaped(x[0].shape)]
    case .permute(let p):
        var inverse = p
        for (i, a) in p.enumerated() { inverse[a] = i }
        return [g.permuted(inverse)]
    case .concat(let axis):
        var start = 0
        return x.enumerated().map { i, t in
            defer { start += t.shape[axis] }
            return needs[i] ? g.sliced(axis: axis, start: start, length: t.shape[axis]) : nil
        }
    case .slice(let axis, let start):
        return [g.padded(axis: axis, before: start, after: x[0].shape[axis] - start - y.shape[axis])]
    case .pad(let axis, let before, _): return [g.sliced(axis: axis, start: before, length: x[0].shape[axis])]

    case .softmax(let axis): return [y * (g - (g * y).sum(axes: [axis], keepingDims: true))]
    case .groupNorm(let groups, let silu):
        let (gamma, beta) = x.count > 1 ? (x[1], x[2]) : (nil, nil)
        return layerGradients(x, g, needs) { dx, dgam, dbet in
            dispatch(g.dtype, { NormKernels.groupBackward(x[0], gamma, beta, g, groups: groups, silu: silu, node.saved[0], node.saved[1], dx: dx, dgamma: dgam, dbeta: dbet, Float.self) },
                              { NormKernels.groupBackward(x[0], gamma, beta, g, groups: groups, silu: silu, node.saved[0], node.saved[1], dx: dx, dgamma: dgam, dbeta: dbet, Double.self) })
        }
    case .groupNormShifted(let groups, let silu):
        // the GroupNorm of pre = x + shift: its backward on pre (rebuilt), then dshift = Σ over
        // each image's channel plane of dpre
        let pre = NormKernels.shifted(x[0], x[1])
        let (gamma, beta) = x.count > 2 ? (x[2], x[3]) : (nil, nil)
        let inner = layerGradients([pre] + x.dropFirst(2), g, [needs[0] || needs[1]] + needs.dropFirst(2)) { dx, dgam, dbet in
            dispatch(g.dtype, { NormKernels.groupBackward(pre, gamma, beta, g, groups: groups, silu: silu, node.saved[0], node.saved[1], dx: dx, dgamma: dgam, dbeta: dbet, Float.self) },
                              { NormKernels.groupBackward(pre, gamma, beta, g, groups: groups, silu: silu, node.saved[0], node.saved[1], dx: dx, dgamma: dgam, dbeta: dbet, Double.self) })
        }
        let dpre = inner[0]
        let dshift = needs[1] ? dpre!.summed(toShape: [x[1].shape[0], x[1].shape[1]] + [Int](repeating: 1, count: x[0].rank - 2)).reshaped(x[1].shape) : nil
        return [needs[0] ? dpre : nil, dshift] + inner.dropFirst()
    case .batchNorm(let act):
        let (gamma, beta) = x.count > 1 ? (x[1], x[2]) : (nil, nil)
        return layerGradients(x, g, needs) { dx, dgam, dbet in
            dispatch(g.dtype, { NormKernels.batchBackward(x[0], gamma, beta, activation: act, g, node.saved[0], node.saved[1], dx: dx, dgamma: dgam, dbeta: dbet, Float.self) },
                              { NormKernels.batchBackward(x[0], gamma, beta, activation: act, g, node.saved[0], node.saved[1], dx: dx, dgamma: dgam, dbeta: dbet, Double.self) })
        }
    case .embedding(let indices): return [Tensor.embeddingBackward(g, indices: indices, vocabulary: x[0].shape[0])]
    }
}

/// For ops with inputs (x, weight?, bias?) whose backward kernel fills gradient buffers:
/// allocates the buffers the tape needs (the weight/bias pair is computed together, so
/// both are allocated when either is tracked) and returns them in input order.
private func layerGradients(_ x: [Tensor], _ g: Tensor, _ needs: [Bool],
                            _ kernel: (_ dx: Tensor?, _ dw: Tensor?, _ db: Tensor?) -> Void) -> [Tensor?] {
    func buffer(_ i: Int, _ wanted: Bool) -> Tensor? {
        i < x.count && wanted ? Tensor(uninitialized: x[i].shape, dtype: g.dtype) : nil
    }
    let affine = needs.dropFirst().contains(true)
    let dx = buffer(0, needs[0]), dw = buffer(1, x.count > 1 && (needs[1] || affine)), db = buffer(2, x.count > 2 && (needs[2] || affine))
    kernel(dx, dw, db)
    return Array([dx, dw, db].prefix(x.count))
}
