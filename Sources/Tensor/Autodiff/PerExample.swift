/// Per-example gradients in one backward pass (for DP-SGD: Abadi et al., 2016; the
/// per-layer rules of opacus's `grad_sample/`, here one generic rule beside the derivative
/// table).
///
/// The function returns Σ_i loss_i over a batch of n examples laid along axis 0 of every
/// activation. Backward runs as usual for activations (one batched vector-Jacobian product
/// per node). Where a node consumes a parameter, the parameter's gradient is taken per
/// example: the node is restricted to example i — its batch-aligned inputs, output, saved
/// values and upstream gradient sliced at row i, parameters whole — and the derivative
/// table's own rule gives example i's contribution. Tensors computed from parameters alone
/// (a reshaped bias, a normalized weight) carry per-example gradients [n] + shape back to the
/// parameters through the same table, one example at a time. Nothing here is a new
/// derivative: every per-example value is the table's rule on a batch of one, which is also
/// how the tests check it (against whole batch-size-1 backward passes).
///
/// Ops that mix the examples of a batch (batchNorm) make per-example gradients undefined and
/// are refused with `PerExampleError`. Batch data is recognized by shape: an untracked tensor
/// whose leading size is n. A constant of a parameter-only computation whose leading size
/// may equal n (spectral norm's u, v) must say so with `isBatchFree`.
public enum PerExampleError: Error, CustomStringConvertible, Equatable {
    /// `op` mixes examples or has no per-example restriction; `parameter` is the index (in
    /// `wrt`) of a parameter it touches, when known.
    case unsupported(op: String, parameter: Int?)

    public var description: String {
        switch self {
        case .unsupported(let op, let p):
            let which = p.map { " (parameter \($0))" } ?? ""
            if op == "batchNorm" {
                return "batchNorm mixes the examples of a batch, so per-example gradients are undefined\(which): use GroupNorm instead"
            }
            return "\(op) has no per-example gradient rule\(which)"
        }
    }
}

/// Per-example gradients of a sum of per-example losses.
///
///     let (total, perExample) = try valueAndPerExampleGradients(wrt: params, batch: n) {
///         lossPerExample(model(x), y).sum()
///     }
///     // perExample[j] has shape [n] + params[j].shape; Σ over axis 0 is the batch gradient
///
/// - Parameters:
///   - parameters: the tensors to differentiate with respect to (used as is by `f`).
///   - n: the batch size: axis 0 of every activation.
///   - f: builds Σ_i loss_i; must return a one-element tensor.
public func valueAndPerExampleGradients(wrt parameters: [Tensor], batch n: Int, of f: () throws -> Tensor) throws
    -> (value: Tensor, gradients: [Tensor])
{
    precondition(n >= 1, "per-example gradients: batch size \(n) must be ≥ 1")
    let tape = Tape()
    let outer = parameters.map { ($0.tapeID, $0.slot) }
    for p in parameters where !tape.tracks(p) { tape.track(p) }
    let parameterSlots = Dictionary(parameters.enumerated().map { ($1.slot, $0) }, uniquingKeysWith: { a, _ in a })
    Tape.stack.append(tape)
    defer {
        Tape.stack.removeLast()
        for (p, mark) in zip(parameters, outer) { p.tapeID = mark.0; p.slot = mark.1 }
    }
    let value = try f()
    precondition(value.count == 1, "per-example gradients: the function returned shape \(value.shape); return the summed loss")

    // Which tensors are computed from parameters alone (no batch in them).
    var fromParameters = [Bool](repeating: false, count: tape.slotCount)
    for slot in parameterSlots.keys { fromParameters[slot] = true }
    for node in tape.nodes {
        if case .batchNorm(_) = node.op {
            let p = node.inputs.dropFirst().first { tape.tracks($0) && parameterSlots[$0.slot] != nil }
            throw PerExampleError.unsupported(op: "batchNorm", parameter: p.flatMap { parameterSlots[$0.slot] })
        }
        // computed from parameters alone: every tracked input is, no untracked input carries
        // the batch (leading axis n: data, noise, per-example constants), and no lookup by
        // per-example indices
        if case .embedding = node.op { continue }
        let tracked = node.inputs.filter { tape.tracks($0) }
        let batchData = node.inputs.contains { !tape.tracks($0) && !$0.isBatchFree && $0.rank > 0 && $0.shape[0] == n }
        if !tracked.isEmpty && !batchData && tracked.allSatisfy({ fromParameters[$0.slot] }) { fromParameters[node.output.slot] = true }
    }

    if n == 1 {
        // one example: its gradient is the batch gradient (and no constant of leading size 1
        // can be mistaken for a batch of one)
        var plain = [Tensor?](repeating: nil, count: tape.slotCount)
        if tape.tracks(value) {
            plain[value.slot] = Tensor.ones(value.shape, dtype: value.dtype)
            backward(tape, &plain)
        }
        let result = parameters.map { p in (plain[p.slot] ?? Tensor.zeros(p.shape, dtype: p.dtype)).reshaped([1] + p.shape) }
        return (tape.tracks(value) ? value.detached() : value, result)
    }
    var grads = [Tensor?](repeating: nil, count: tape.slotCount)        // batched, for activations
    var perExample = [Tensor?](repeating: nil, count: tape.slotCount)   // [n] + shape, for parameter-derived tensors
    if tape.tracks(value) && !fromParameters[value.slot] {
        grads[value.slot] = Tensor.ones(value.shape, dtype: value.dtype)
    }
    Tape.pauseDepth += 1
    defer { Tape.pauseDepth -= 1 }
    func accumulate(_ slot: Int, example i: Int, _ gi: Tensor, shape: [Int], op: Op) throws {
        // a gradient that does not reduce to the input's shape means the batch axis was misread
        let (a, b) = (gi.shape, shape)
        let reducible = b.count <= a.count && zip(a.suffix(b.count), b).allSatisfy { $0 == $1 || $1 == 1 }
        guard reducible else { throw PerExampleError.unsupported(op: Profiler.name(op), parameter: parameterSlots[slot]) }
        let stacked = perExample[slot] ?? Tensor.zeros([n] + shape, dtype: gi.dtype)
        perExample[slot] = stacked
        let shaped = gi.shape == shape ? gi : gi.summed(toShape: shape)
        let bytes = shaped.count * shaped.dtype.size
        let dst = stacked.rawPointer + i * bytes
        let src = shaped.rawPointer
        dispatch(shaped.dtype, {
            let d = dst.assumingMemoryBound(to: Float.self), s = src.assumingMemoryBound(to: Float.self)
            for j in 0..<shaped.count { d[j] += s[j] }
        }, {
            let d = dst.assumingMemoryBound(to: Double.self), s = src.assumingMemoryBound(to: Double.self)
            for j in 0..<shaped.count { d[j] += s[j] }
        })
    }
    func addStacked(_ slot: Int, _ stacked: Tensor) {
        if let existing = perExample[slot] { existing.addInPlace(stacked) } else { perExample[slot] = stacked }
    }
    for node in tape.nodes.reversed() {
        let out = node.output.slot
        if fromParameters[out] {
            // per-example gradients flow back to the parameters through the table, example by example
            guard let stacked = perExample[out] else { continue }
            perExample[out] = nil
            let needs = node.inputs.map { tape.tracks($0) }
            for i in 0..<n {
                let gi = stacked.sliced(axis: 0, start: i, length: 1).reshaped(node.output.shape)
                let inputGrads = vectorJacobianProducts(node, gi, needs: needs)
                for (k, input) in node.inputs.enumerated() where needs[k] {
                    if let g = inputGrads[k] { try accumulate(input.slot, example: i, g, shape: input.shape, op: node.op) }
                }
            }
            continue
        }
        guard let g = grads[out] else { continue }
        grads[out] = nil
        let tracked = node.inputs.map { tape.tracks($0) }
        let activationNeeds = node.inputs.map { tape.tracks($0) && !fromParameters[$0.slot] }
        if activationNeeds.contains(true) {
            let inputGrads = vectorJacobianProducts(node, g, needs: activationNeeds)
            for (k, input) in node.inputs.enumerated() where activationNeeds[k] {
                if let gi = inputGrads[k] { accumulateGradient(&grads, input, gi) }
            }
        }
        let parameterInputs = node.inputs.indices.filter { tracked[$0] && fromParameters[node.inputs[$0].slot] }
        guard !parameterInputs.isEmpty else { continue }
        if let fast = batchedRule(node, g, n: n, parameterInputs: parameterInputs) {
            for (k, stacked) in fast { addStacked(node.inputs[k].slot, stacked) }
            continue
        }
        let needs = node.inputs.indices.map { parameterInputs.contains($0) }
        for i in 0..<n {
            guard let restricted = restrict(node, to: i, of: n, isParameter: { tape.tracks($0) && fromParameters[$0.slot] }) else {
                let p = parameterInputs.first.flatMap { parameterSlots[node.inputs[$0].slot] }
                throw PerExampleError.unsupported(op: Profiler.name(node.op), parameter: p)
            }
            let gi = g.shape.first == n ? g.sliced(axis: 0, start: i, length: 1) : g
            let inputGrads = vectorJacobianProducts(restricted, gi, needs: needs)
            for k in parameterInputs {
                if let gk = inputGrads[k] { try accumulate(node.inputs[k].slot, example: i, gk, shape: node.inputs[k].shape, op: node.op) }
            }
        }
    }
    let result = parameters.map { p in perExample[p.slot] ?? Tensor.zeros([n] + p.shape, dtype: p.dtype) }
    return (tape.tracks(value) ? value.detached() : value, result)
}

/// The node restricted to example i of n: batch-aligned inputs (leading axis n, not
/// computed from parameters), the output and saved values sliced at row i; parameters and
/// parameter-derived inputs kept whole. nil when the output is not batch-aligned.
private func restrict(_ node: Node, to i: Int, of n: Int, isParameter: (Tensor) -> Bool) -> Node? {
    guard node.output.rank > 0, node.output.shape[0] == n else { return nil }
    func row(_ t: Tensor) -> Tensor { t.sliced(axis: 0, start: i, length: 1) }
    if case .embedding(let indices) = node.op {
        guard indices.count == n else { return nil }
        return Node(op: .embedding(indices: [indices[i]]), inputs: node.inputs, output: row(node.output), saved: [])
    }
    let inputs = node.inputs.map { t in !isParameter(t) && !t.isBatchFree && t.rank > 0 && t.shape[0] == n ? row(t) : t }
    let saved = node.saved.map { $0.rank > 0 && $0.shape[0] == n ? row($0) : $0 }
    return Node(op: node.op, inputs: inputs, output: row(node.output), saved: saved)
}

/// Batched per-example rules for the parameter-consuming layers that dominate private models
/// (convolutions and GroupNorm's affine): each image's gradient from the batch-of-one
/// backward's own product, all images in one call split across threads, no slicing. nil:
/// use the restriction above. Keyed by input index, each [n] + the input's shape.
private func batchedRule(_ node: Node, _ g: Tensor, n: Int, parameterInputs: [Int]) -> [Int: Tensor]? {
    let x = node.inputs
    guard !parameterInputs.contains(0), x[0].rank > 0, x[0].shape[0] == n else { return nil }
    func stacked(_ k: Int, _ shape: [Int]) -> Tensor? {
        parameterInputs.contains(k) ? Tensor(uninitialized: [n] + shape, dtype: g.dtype) : nil
    }
    switch node.op {
    case .conv2d(let geo):
        let o = x[1].shape[0]
        let dw = stacked(1, x[1].shape), db = x.count > 2 ? stacked(2, [o]) : nil
        dispatch(g.dtype, { ConvKernels.perExampleGradients(x[0], g, geo, outChannels: o, dw: dw, db: db, Float.self) },
                          { ConvKernels.perExampleGradients(x[0], g, geo, outChannels: o, dw: dw, db: db, Double.self) })
        return [1: dw, 2: db].compactMapValues { $0 }
    case .convTranspose2d(let geo):
        let dw = stacked(1, x[1].shape), db = x.count > 2 ? stacked(2, [geo.channels]) : nil
        dispatch(g.dtype, { ConvKernels.perExampleTransposeGradients(x[0], g, geo, dw: dw, db: db, Float.self) },
                          { ConvKernels.perExampleTransposeGradients(x[0], g, geo, dw: dw, db: db, Double.self) })
        return [1: dw, 2: db].compactMapValues { $0 }
    case .groupNormShifted(let groups, let silu):
        guard x.count == 4 else { return nil }
        let c = x[0].shape[1], pre = NormKernels.shifted(x[0], x[1])
        let dg = stacked(2, [c]), dbeta = stacked(3, [c])
        dispatch(g.dtype, { NormKernels.groupBackward(pre, x[2], x[3], g, groups: groups, silu: silu, node.saved[0], node.saved[1],
                                                      dx: nil, dgamma: nil, dbeta: nil, perExampleGamma: dg, perExampleBeta: dbeta, Float.self) },
                          { NormKernels.groupBackward(pre, x[2], x[3], g, groups: groups, silu: silu, node.saved[0], node.saved[1],
                                                      dx: nil, dgamma: nil, dbeta: nil, perExampleGamma: dg, perExampleBeta: dbeta, Double.self) })
        return [2: dg, 3: dbeta].compactMapValues { $0 }
    case .groupNorm(let groups, let silu):
        guard x.count == 3 else { return nil }
        let c = x[0].shape[1]
        let dg = stacked(1, [c]), dbeta = stacked(2, [c])
        dispatch(g.dtype, { NormKernels.groupBackward(x[0], x[1], x[2], g, groups: groups, silu: silu, node.saved[0], node.saved[1],
                                                      dx: nil, dgamma: nil, dbeta: nil, perExampleGamma: dg, perExampleBeta: dbeta, Float.self) },
                          { NormKernels.groupBackward(x[0], x[1], x[2], g, groups: groups, silu: silu, node.saved[0], node.saved[1],
                                                      dx: nil, dgamma: nil, dbeta: nil, perExampleGamma: dg, perExampleBeta: dbeta, Double.self) })
        return [1: dg, 2: dbeta].compactMapValues { $0 }
    default:
        return nil
    }
}
