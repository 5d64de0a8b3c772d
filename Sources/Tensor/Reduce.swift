/// Reductions over axes, broadcasting expansion, and the broadcast-gradient reduction
/// (`summed(toShape:)`) the tape applies in one place.

enum ReduceKind { case sum, max }

func normalizeAxes(_ axes: [Int]?, rank: Int, op: String) -> [Int] {
    guard let axes else { return Array(0..<rank) }
    let n = axes.map { $0 < 0 ? $0 + rank : $0 }
    precondition(n.allSatisfy { $0 >= 0 && $0 < rank }, "\(op): axes \(axes) out of range for rank \(rank)")
    precondition(Set(n).count == n.count, "\(op): repeated axis in \(axes)")
    return n.sorted()
}

func reduceKernel<T: TensorScalar>(_ kind: ReduceKind, _ x: Tensor, _ out: Tensor, keptShape: [Int], _: T.Type) {
    // Iterate over the input; the output is read with stride 0 along reduced axes.
    let loop = StridedLoop(shape: x.shape, strides: [contiguousStrides(x.shape), broadcastStrides(keptShape, to: x.shape)])
    let px = x.pointer(T.self), py = out.pointer(T.self)
    let n = loop.innerCount, sx = loop.innerStride(0), sy = loop.innerStride(1)
    switch kind {
    case .sum:
        for i in 0..<out.count { py[i] = 0 }
        loop.forEachRow { o in
            let xr = px + o[0], yr = py + o[1]
            if sy == 0 {
                var acc: T = 0
                for i in 0..<n { acc += xr[i * sx] }
                yr[0] += acc
            } else {
                for i in 0..<n { yr[i * sy] += xr[i * sx] }
            }
        }
    case .max:
        for i in 0..<out.count { py[i] = -T.infinity }
        loop.forEachRow { o in
            let xr = px + o[0], yr = py + o[1]
            if sy == 0 {
                var m = yr[0]
                for i in 0..<n where xr[i * sx] > m { m = xr[i * sx] }
                yr[0] = m
            } else {
                for i in 0..<n where xr[i * sx] > yr[i * sy] { yr[i * sy] = xr[i * sx] }
            }
        }
    }
}

extension Tensor {
    func reduced(_ kind: ReduceKind, axes: [Int]) -> (kept: Tensor, keptShape: [Int]) {
        var kept = shape
        for a in axes { kept[a] = 1 }
        let out = Tensor(uninitialized: kept, dtype: dtype)
        dispatch(dtype, { reduceKernel(kind, self, out, keptShape: kept, Float.self) },
                        { reduceKernel(kind, self, out, keptShape: kept, Double.self) })
        return (out, kept)
    }

    static func droppingAxes(_ shape: [Int], _ axes: [Int]) -> [Int] {
        shape.enumerated().filter { !axes.contains($0.offset) }.map { $0.element }
    }

    /// Sum over `axes` (all axes when nil). Reduced axes are removed unless `keepingDims`.
    public func sum(axes: [Int]? = nil, keepingDims: Bool = false) -> Tensor {
        let ax = normalizeAxes(axes, rank: rank, op: "sum")
        let (kept, keptShape) = reduced(.sum, axes: ax)
        let outShape = keepingDims ? keptShape : Tensor.droppingAxes(shape, ax)
        let out = Tensor(shape: outShape, storage: kept.storage)
        return record(.sum(keptShape: keptShape), [self], out)
    }

    /// Mean over `axes` (all axes when nil).
    public func mean(axes: [Int]? = nil, keepingDims: Bool = false) -> Tensor {
        let ax = normalizeAxes(axes, rank: rank, op: "mean")
        let n = ax.reduce(1) { $0 * shape[$1] }
        return sum(axes: ax, keepingDims: keepingDims) * (1.0 / Double(Swift.max(n, 1)))
    }

    /// Maximum over `axes`. The gradient goes to every position equal to the maximum.
    public func max(axes: [Int]? = nil, keepingDims: Bool = false) -> Tensor {
        let ax = normalizeAxes(axes, rank: rank, op: "max")
        precondition(ax.allSatisfy { shape[$0] > 0 }, "max over an empty axis of shape \(shape)")
        let (kept, keptShape) = reduced(.max, axes: ax)
        let outShape = keepingDims ? keptShape : Tensor.droppingAxes(shape, ax)
        return record(.max(keptShape: keptShape), [self], Tensor(shape: outShape, storage: kept.storage))
    }

    /// Variance over `axes`: mean((x - mean)²), divided by n (or n - 1 when `unbiased`).
    public func variance(axes: [Int]? = nil, keepingDims: Bool = false, unbiased: Bool = false) -> Tensor {
        let ax = normalizeAxes(axes, rank: rank, op: "variance")
        let n = ax.reduce(1) { $0 * shape[$1] }
        let centered = self - mean(axes: ax, keepingDims: true)
        let ss = centered.squared().sum(axes: ax, keepingDims: keepingDims)
        return ss * (1.0 / Double(unbiased ? Swift.max(n - 1, 1) : Swift.max(n, 1)))
    }

    /// log Σ exp(x) over `axis`, stabilised by subtracting the (detached) maximum.
    public func logSumExp(axis: Int, keepingDims: Bool = false) -> Tensor {
        let m = withoutGradient { self.max(axes: [axis], keepingDims: true) }
        let s = (self - m).exp().sum(axes: [axis], keepingDims: true).log() + m
        return keepingDims ? s : s.reshaped(Tensor.droppingAxes(shape, [axis < 0 ? axis + rank : axis]))
    }

    /// Broadcast to `target` (materialised copy).
    public func expanded(to target: [Int]) -> Tensor {
        if target == shape { return self }
        let s = broadcastShapes(shape, target, op: "expand")
        precondition(s == target, "expand: shape \(shape) cannot be expanded to \(target)")
        let out = Tensor(uninitialized: target, dtype: dtype)
        dispatch(dtype, { binaryKernel(.add, self, scalarLike(0), out, Float.self) },
                        { binaryKernel(.add, self, scalarLike(0), out, Double.self) })
        return record(.expand, [self], out)
    }

    /// Sums a broadcast result back down to `target` (the shape it was broadcast from):
    /// leading extra axes and axes where `target` has 1 are summed.
    public func summed(toShape target: [Int]) -> Tensor {
        if target == shape { return self }
        precondition(target.count <= rank, "summed(toShape:): \(shape) cannot reduce to \(target)")
        let off = rank - target.count
        var axes: [Int] = Array(0..<off)
        for i in 0..<target.count where target[i] != shape[i + off] {
            precondition(target[i] == 1, "summed(toShape:): \(shape) cannot reduce to \(target)")
            axes.append(i + off)
        }
        return sum(axes: axes, keepingDims: true).reshaped(target)
    }
}
