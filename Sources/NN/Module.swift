import Tensor

/// A layer or model: a tree of named parameters, buffers and child modules, with an
/// explicit training/evaluation mode.
///
/// Parameters are discovered from stored properties, in declaration order (superclass
/// properties first): a `Tensor` (or non-nil `Tensor?`) property is a parameter — or a
/// buffer if its name is in `bufferNames` — a `Module` property is a child, and a
/// `[Module]` property is a numbered list of children. Names are dotted paths such as
/// `"blocks.0.conv.weight"` (the layout tinygrad's `get_state_dict` and MLX's
/// `ModuleParameters` use). Optimizers update these tensors in place, so holding a
/// parameter tree and the model at once is safe.
open class Module {
    /// Training mode (batch statistics, dropout active) vs evaluation mode.
    public private(set) var isTraining = true

    public init() {}

    /// Names of `Tensor` properties that are state but not trained (e.g. running means).
    open var bufferNames: Set<String> { [] }

    private enum Entry { case parameter(String, Tensor), buffer(String, Tensor), child(String, Module) }

    private func entries() -> [Entry] {
        var mirrors: [Mirror] = []
        var m: Mirror? = Mirror(reflecting: self)
        while let cur = m { mirrors.insert(cur, at: 0); m = cur.superclassMirror }
        var out: [Entry] = []
        let buffers = bufferNames
        for mirror in mirrors {
            for child in mirror.children {
                guard let label = child.label else { continue }
                let name = label.hasPrefix("_") ? String(label.dropFirst()) : label
                switch child.value {
                case let t as Tensor: out.append(buffers.contains(name) ? .buffer(name, t) : .parameter(name, t))
                case let t as Tensor?: if let t { out.append(buffers.contains(name) ? .buffer(name, t) : .parameter(name, t)) }
                case let mod as Module: out.append(.child(name, mod))
                case let mods as [Module]: for (i, mod) in mods.enumerated() { out.append(.child("\(name).\(i)", mod)) }
                default: break
                }
            }
        }
        return out
    }

    /// Direct children, in order.
    public var children: [(name: String, module: Module)] {
        entries().compactMap { if case .child(let n, let m) = $0 { return (n, m) } else { return nil } }
    }

    /// Every trainable tensor of this module and its descendants, by dotted name.
    public func parameters() -> TensorTree {
        var tree = TensorTree()
        for e in entries() {
            switch e {
            case .parameter(let n, let t): tree[n] = t
            case .child(let n, let m): tree.merge(m.parameters().prefixed(n))
            case .buffer: break
            }
        }
        return tree
    }

    /// Every non-trainable state tensor (running statistics), by dotted name.
    public func buffers() -> TensorTree {
        var tree = TensorTree()
        for e in entries() {
            switch e {
            case .buffer(let n, let t): tree[n] = t
            case .child(let n, let m): tree.merge(m.buffers().prefixed(n))
            case .parameter: break
            }
        }
        return tree
    }

    /// Parameters and buffers together: what a checkpoint stores.
    public func state() -> TensorTree {
        var t = parameters(); t.merge(buffers()); return t
    }

    /// Copies values from `tree` into this module's tensors (shapes must match; every
    /// parameter and buffer must be present unless `strict` is false).
    public func load(_ tree: TensorTree, strict: Bool = true) throws {
        let mine = state()
        for (name, t) in mine {
            guard let src = tree[name] else {
                if strict { throw ModuleError.missingKey(name) }
                continue
            }
            guard src.shape == t.shape else { throw ModuleError.shapeMismatch(name, expected: t.shape, found: src.shape) }
            t.assign(src)
        }
        if strict, let extra = tree.keys.first(where: { !mine.contains($0) }) { throw ModuleError.unexpectedKey(extra) }
    }

    /// Sets training mode on this module and all descendants.
    public func train(_ on: Bool = true) {
        isTraining = on
        for (_, c) in children { c.train(on) }
    }

    /// Evaluation mode (`train(false)`).
    public func eval() { train(false) }

    public var parameterCount: Int { parameters().elementCount }
}

public enum ModuleError: Error, CustomStringConvertible {
    case missingKey(String)
    case unexpectedKey(String)
    case shapeMismatch(String, expected: [Int], found: [Int])
    public var description: String {
        switch self {
        case .missingKey(let k): return "state is missing tensor '\(k)'"
        case .unexpectedKey(let k): return "state has unexpected tensor '\(k)'"
        case .shapeMismatch(let k, let e, let f): return "tensor '\(k)' has shape \(f), model expects \(e)"
        }
    }
}

/// A module mapping one tensor to one tensor.
public protocol Layer: Module {
    func callAsFunction(_ x: Tensor) -> Tensor
}

/// The gradient of `f` with respect to `model`'s parameters, keyed like them.
///
///     let (loss, grads) = valueAndGradient(of: model) { crossEntropy(model(x), labels: y) }
///     optimizer.update(model, gradients: grads)
public func valueAndGradient(of model: Module, _ f: () throws -> Tensor) rethrows -> (value: Tensor, gradient: TensorTree) {
    try valueAndGradient(wrt: model.parameters(), of: f)
}
