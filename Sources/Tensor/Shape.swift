/// Shape ops: reshape (shares storage), permute, concat, slice and zero padding (copies).

func copyStrided<T: TensorScalar>(from src: UnsafePointer<T>, srcStrides: [Int], to dst: UnsafeMutablePointer<T>, shape: [Int]) {
    let loop = StridedLoop(shape: shape, strides: [srcStrides, contiguousStrides(shape)])
    let n = loop.innerCount, ss = loop.innerStride(0)
    loop.forEachRow { o in
        let s = src + o[0], d = dst + o[1]
        if ss == 1 { d.update(from: s, count: n) } else { for i in 0..<n { d[i] = s[i * ss] } }
    }
}

/// Copies `rows` blocks of `srcBlock` elements into a destination whose blocks are
/// `dstBlock` long, starting `dstOffset` into each destination block.
func copyBlocks(_ src: Tensor, _ dst: Tensor, rows: Int, srcBlock: Int, srcOffset: Int, dstBlock: Int, dstOffset: Int, length: Int) {
    let bytes = src.dtype.size
    let s = src.rawPointer, d = dst.rawPointer
    for r in 0..<rows {
        (d + (r * dstBlock + dstOffset) * bytes).copyMemory(from: s + (r * srcBlock + srcOffset) * bytes, byteCount: length * bytes)
    }
}

extension Tensor {
    /// Same values, new shape (shares storage). One dimension may be -1.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var target = newShape
        if let i = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().filter { $0.offset != i }.reduce(1) { $0 * $1.element }
            precondition(known > 0 && count % known == 0, "reshape: cannot reshape \(shape) to \(newShape)")
            target[i] = count / known
        }
        precondition(Tensor.elementCount(target) == count, "reshape: cannot reshape \(shape) (\(count) elements) to \(newShape)")
        if target == shape { return self }
        return record(.reshape, [self], Tensor(shape: target, storage: storage))
    }

    /// Flattens all axes from `axis` on: [N, C, H, W].flattened(from: 1) is [N, C*H*W].
    public func flattened(from axis: Int = 1) -> Tensor {
        reshaped(Array(shape[..<axis]) + [shape[axis...].reduce(1, *)])
    }

    /// Reorders axes: result axis i is input axis `permutation[i]`.
    public func permuted(_ permutation: [Int]) -> Tensor {
        precondition(permutation.sorted() == Array(0..<rank), "permute: \(permutation) is not a permutation of 0..<\(rank) (shape \(shape))")
        if permutation == Array(0..<rank) { return self }
        let outShape = permutation.map { shape[$0] }
        let st = contiguousStrides(shape)
        let srcStrides = permutation.map { st[$0] }
        let out = Tensor(uninitialized: outShape, dtype: dtype)
        dispatch(dtype, { copyStrided(from: pointer(Float.self), srcStrides: srcStrides, to: out.pointer(Float.self), shape: outShape) },
                        { copyStrided(from: pointer(Double.self), srcStrides: srcStrides, to: out.pointer(Double.self), shape: outShape) })
        return record(.permute(permutation), [self], out)
    }

    /// Swaps the last two axes.
    public func transposed() -> Tensor {
        precondition(rank >= 2, "transposed needs rank ≥ 2, shape is \(shape)")
        var p = Array(0..<rank); p.swapAt(rank - 1, rank - 2)
        return permuted(p)
    }

    func outerInner(_ axis: Int) -> (outer: Int, inner: Int) {
        (shape[..<axis].reduce(1, *), shape[(axis + 1)...].reduce(1, *))
    }

    /// Concatenates along `axis`; all other dimensions must agree.
    public static func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
        precondition(!tensors.isEmpty, "concat of no tensors")
        let first = tensors[0]
        let ax = axis < 0 ? axis + first.rank : axis
        for t in tensors {
            checkSameDType(first, t, "concat")
            precondition(t.rank == first.rank && (0..<t.rank).allSatisfy { $0 == ax || t.shape[$0] == first.shape[$0] },
                         "concat along axis \(axis): shapes \(tensors.map { $0.shape }) do not agree off that axis")
        }
        var outShape = first.shape
        outShape[ax] = tensors.reduce(0) { $0 + $1.shape[ax] }
        let out = Tensor(uninitialized: outShape, dtype: first.dtype)
        let (outer, inner) = out.outerInner(ax)
        var offset = 0
        for t in tensors {
            let len = t.shape[ax] * inner
            copyBlocks(t, out, rows: outer, srcBlock: len, srcOffset: 0, dstBlock: outShape[ax] * inner, dstOffset: offset, length: len)
            offset += len
        }
        return record(.concat(axis: ax), tensors, out)
    }

    /// Elements `start ..< start + length` along `axis`.
    public func sliced(axis: Int, start: Int, length: Int) -> Tensor {
        let ax = axis < 0 ? axis + rank : axis
        precondition(ax >= 0 && ax < rank && start >= 0 && length >= 0 && start + length <= shape[ax],
                     "slice: \(start)..<\(start + length) on axis \(axis) out of range for shape \(shape)")
        var outShape = shape; outShape[ax] = length
        let out = Tensor(uninitialized: outShape, dtype: dtype)
        let (outer, inner) = outerInner(ax)
        copyBlocks(self, out, rows: outer, srcBlock: shape[ax] * inner, srcOffset: start * inner,
                   dstBlock: length * inner, dstOffset: 0, length: length * inner)
        return record(.slice(axis: ax, start: start), [self], out)
    }

    /// Zero padding along one axis.
    public func padded(axis: Int, before: Int, after: Int) -> Tensor {
        let ax = axis < 0 ? axis + rank : axis
        precondition(ax >= 0 && ax < rank && before >= 0 && after >= 0, "pad: bad axis \(axis) or amounts (\(before), \(after)) for shape \(shape)")
        var outShape = shape; outShape[ax] += before + after
        let out = Tensor.zeros(outShape, dtype: dtype)
        let (outer, inner) = outerInner(ax)
        copyBlocks(self, out, rows: outer, srcBlock: shape[ax] * inner, srcOffset: 0,
                   dstBlock: outShape[ax] * inner, dstOffset: before * inner, length: shape[ax] * inner)
        return record(.pad(axis: ax, before: before, after: after), [self], out)
    }

    /// Zero padding on several axes: `amounts[i]` = (before, after) for axis i.
    public func padded(_ amounts: [(Int, Int)]) -> Tensor {
        precondition(amounts.count == rank, "pad: \(amounts.count) (before, after) pairs for rank \(rank) (shape \(shape))")
        var t = self
        for (i, (b, a)) in amounts.enumerated() where b != 0 || a != 0 { t = t.padded(axis: i, before: b, after: a) }
        return t
    }
}
