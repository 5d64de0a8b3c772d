/// An ordered collection of named tensors: a model's parameters (`"down.0.conv.weight"`),
/// their gradients, optimizer state, or anything saved to a tensor file. Keys keep their
/// insertion order, so iteration and files are deterministic.
public struct TensorTree: Sequence {
    public private(set) var keys: [String] = []
    private var index: [String: Int] = [:]
    public private(set) var values: [Tensor] = []

    public init() {}

    public init(_ pairs: [(String, Tensor)]) {
        for (k, v) in pairs { self[k] = v }
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    public subscript(key: String) -> Tensor? {
        get { index[key].map { values[$0] } }
        set {
            if let i = index[key] {
                if let v = newValue { values[i] = v } else {
                    keys.remove(at: i); values.remove(at: i)
                    index = Dictionary(uniqueKeysWithValues: keys.enumerated().map { ($1, $0) })
                }
            } else if let v = newValue {
                index[key] = keys.count; keys.append(key); values.append(v)
            }
        }
    }

    public func contains(_ key: String) -> Bool { index[key] != nil }

    public func makeIterator() -> AnyIterator<(key: String, value: Tensor)> {
        var i = 0
        return AnyIterator {
            guard i < keys.count else { return nil }
            defer { i += 1 }
            return (keys[i], values[i])
        }
    }

    /// Keys prefixed with `prefix + "."` (for nesting one tree in another).
    public func prefixed(_ prefix: String) -> TensorTree {
        TensorTree(zip(keys, values).map { ("\(prefix).\($0)", $1) })
    }

    /// The entries under `prefix.` with the prefix removed.
    public func subtree(_ prefix: String) -> TensorTree {
        let p = prefix + "."
        return TensorTree(zip(keys, values).compactMap { $0.hasPrefix(p) ? (String($0.dropFirst(p.count)), $1) : nil })
    }

    public mutating func merge(_ other: TensorTree) {
        for (k, v) in other { self[k] = v }
    }

    /// Total number of elements.
    public var elementCount: Int { values.reduce(0) { $0 + $1.count } }

    /// Adds `other` into this tree's tensors in place (gradient accumulation over
    /// micro-batches); keys must match.
    public func accumulate(_ other: TensorTree) {
        precondition(other.keys == keys, "accumulate: keys differ (\(other.keys.prefix(3)) vs \(keys.prefix(3)))")
        for (a, b) in zip(values, other.values) { a.addInPlace(b) }
    }

    /// Deep copy (new storage for every tensor).
    public func copied() -> TensorTree { TensorTree(zip(keys, values).map { ($0, $1.copy()) }) }
}
