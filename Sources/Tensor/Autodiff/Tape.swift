/// Reverse-mode automatic differentiation with a tape (Wengert list).
///
/// `valueAndGradient(of:wrt:)` opens a fresh tape, marks the given tensors as tracked and
/// runs the function. Every op whose inputs include a tracked tensor appends a `Node`
/// (op, inputs, output, saved values); its output becomes tracked. The backward pass walks
/// the nodes in reverse, asks the single derivative table (`Derivatives.swift`) for each
/// node's vector-Jacobian products, reduces broadcast gradients back to each input's shape,
/// and accumulates (never assigns) them. A tape lives for one call: nothing leaks into the
/// next step (the pitfall micrograd users hit when calling backward twice).
///
/// Recording is single-threaded: build the graph on one thread; kernels may use threads.

/// One recorded op application.
struct Node {
    let op: Op
    let inputs: [Tensor]
    let output: Tensor
    /// Values the rule needs besides inputs and output (e.g. normalization statistics).
    let saved: [Tensor]
}

/// Whether operations are being recorded for differentiation now (inside `valueAndGradient`
/// and not under `withoutGradient`): layers with a faster non-differentiable path use it only
/// when this is false.
public var isRecordingGradients: Bool { Tape.current != nil }

final class Tape {
    nonisolated(unsafe) static var stack: [Tape] = []
    nonisolated(unsafe) static var nextID = 1
    /// Depth of `withoutGradient` scopes; recording is off while > 0.
    nonisolated(unsafe) static var pauseDepth = 0

    static var current: Tape? { pauseDepth == 0 ? stack.last : nil }

    let id: Int
    var nodes: [Node] = []
    var slotCount = 0

    init() { id = Tape.nextID; Tape.nextID += 1 }

    @inline(__always) func tracks(_ t: Tensor) -> Bool { t.tapeID == id }

    func track(_ t: Tensor) {
        t.tapeID = id
        t.slot = slotCount
        slotCount += 1
    }
}

/// Records `output = op(inputs)` on the current tape when any input is tracked.
@inline(__always)
func record(_ op: @autoclosure () -> Op, _ inputs: [Tensor], _ output: Tensor, saved: [Tensor] = []) -> Tensor {
    guard let tape = Tape.current else { return output }
    var any = false
    for t in inputs where tape.tracks(t) { any = true; break }
    guard any else { return output }
    tape.track(output)
    let node = Node(op: op(), inputs: inputs, output: output, saved: saved)
    if Profiler.enabled { Profiler.charge(Profiler.name(node.op), since: Profiler.last) }
    tape.nodes.append(node)
    return output
}

/// The gradient of a scalar function with respect to each tensor in `parameters`,
/// keyed like the parameters (an unused parameter gets zeros).
///
///     let (loss, grads) = valueAndGradient(wrt: model.parameters()) { mse(model(x), y) }
///
/// - Parameters:
///   - parameters: the tensors to differentiate with respect to (not copied: the function
///     must use these very tensor objects).
///   - f: builds the value from the parameters; must return a one-element tensor.
public func valueAndGradient(wrt parameters: TensorTree, of f: () throws -> Tensor) rethrows
    -> (value: Tensor, gradient: TensorTree)
{
    let (value, grads) = try valueAndGradients(wrt: parameters.values, of: f)
    return (value, TensorTree(zip(parameters.keys, grads).map { ($0, $1) }))
}

/// The same, with the function first: `valueAndGradient(of: { loss(…) }, wrt: params)`.
public func valueAndGradient(of f: () throws -> Tensor, wrt parameters: TensorTree) rethrows
    -> (value: Tensor, gradient: TensorTree)
{
    try valueAndGradient(wrt: parameters, of: f)
}

/// Positional form of `valueAndGradient(wrt:of:)`.
public func valueAndGradients(wrt parameters: [Tensor], seed: Tensor? = nil, of f: () throws -> Tensor) rethrows
    -> (value: Tensor, gradients: [Tensor])
{
    let tape = Tape()
    // An enclosing tape may track these tensors too: remember and restore its marks.
    let outer = parameters.map { ($0.tapeID, $0.slot) }
    // A tensor may be passed twice; it is tracked once and both entries get its gradient.
    for p in parameters where !tape.tracks(p) { tape.track(p) }
    Tape.stack.append(tape)
    defer {
        Tape.stack.removeLast()
        for (p, mark) in zip(parameters, outer) { p.tapeID = mark.0; p.slot = mark.1 }
    }
    let value = try f()
    precondition(seed != nil || value.count == 1,
                 "valueAndGradient: the function returned shape \(value.shape); pass a seed for non-scalar outputs")
    if let seed { precondition(seed.shape == value.shape, "seed shape \(seed.shape) does not match value \(value.shape)") }
    var grads = [Tensor?](repeating: nil, count: tape.slotCount)
    if tape.tracks(value) {
        grads[value.slot] = seed ?? Tensor.ones(value.shape, dtype: value.dtype)
        backward(tape, &grads)
    }
    let result = parameters.map { p in grads[p.slot] ?? Tensor.zeros(p.shape, dtype: p.dtype) }
    // The value is returned as a plain tensor, cut from this (finished) tape.
    return (tape.tracks(value) ? value.detached() : value, result)
}

func backward(_ tape: Tape, _ grads: inout [Tensor?]) {
    Tape.pauseDepth += 1
    defer { Tape.pauseDepth -= 1 }
    for node in tape.nodes.reversed() {
        guard let g = grads[node.output.slot] else { continue }
        grads[node.output.slot] = nil
        let start = Profiler.enabled ? Profiler.now() : 0
        defer { if Profiler.enabled { Profiler.charge("∂" + Profiler.name(node.op), since: start) } }
        let needs = node.inputs.map { tape.tracks($0) }
        let inputGrads = vectorJacobianProducts(node, g, needs: needs)
        for (i, input) in node.inputs.enumerated() where needs[i] {
            if let gi = inputGrads[i] { accumulateGradient(&grads, input, gi) }
        }
    }
}

/// Adds `gi` (at the op's output shape for broadcasting ops) to `input`'s gradient slot,
/// summed back to the input's shape.
func accumulateGradient(_ grads: inout [Tensor?], _ input: Tensor, _ gi: Tensor) {
    let shaped = gi.shape == input.shape ? gi : gi.summed(toShape: input.shape)
    grads[input.slot] = grads[input.slot].map { $0 + shaped } ?? shaped
}

/// Runs `body` without recording any op (evaluation, EMA updates, sampling).
public func withoutGradient<R>(_ body: () throws -> R) rethrows -> R {
    Tape.pauseDepth += 1
    defer { Tape.pauseDepth -= 1 }
    return try body()
}

extension Tensor {
    /// The same values (shared storage) cut off from the tape: gradients do not flow back
    /// through the result (e.g. the generator output in the discriminator step).
    public func detached() -> Tensor { Tensor(shape: shape, storage: storage) }

    /// Whether this tensor is being tracked by the current tape.
    public var isTracked: Bool { Tape.current?.tracks(self) ?? false }
}
