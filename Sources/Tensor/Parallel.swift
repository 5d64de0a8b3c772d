import CBLAS
import CKernels

/// Eidetic's one level of parallelism for batched kernels (convolutions): the batch is cut
/// into fixed chunks of images, the threads of a spinning fork-join pool (Sources/CKernels/
/// pool.c) take chunks, and BLAS runs single-threaded inside
/// each worker — two single-threaded GEMMs on two cores run a clean 2× where one
/// two-threaded GEMM on small conv shapes does not (platform-notes §3). Chunks are fixed
/// by the batch, not by the worker count, and partial results are combined in chunk
/// order, so convolution results are identical for any thread count.
public enum Parallel {
    /// Images per chunk in batched kernels.
    static let imagesPerChunk = 4

    /// Cores this process may use (`Threads.count`).
    static var budget: Int { max(1, Threads.count) }

    /// Number of workers `run(chunks:)` will use.
    static func workers(for chunks: Int) -> Int { max(1, min(budget, chunks)) }

    /// Runs `body(chunk, worker)` for every chunk in 0..<chunks on up to `workers(for:)`
    /// threads (the caller is worker 0; `worker` < that count names a scratch slot); BLAS is
    /// single-threaded. Chunks go to whichever thread is free (pool.c), so callers must
    /// make every chunk's result independent of where it runs, as all of them do.
    public static func run(chunks: Int, _ body: (_ chunk: Int, _ worker: Int) -> Void) {
        Threads.pinBLAS()
        let w = workers(for: chunks)
        if w == 1 {
            for c in 0..<chunks { body(c, 0) }
            return
        }
        pool(workers: w, chunks: chunks, body)
    }

    /// `ek_pool_run` with a Swift closure as its context.
    private static func pool(workers: Int, chunks: Int, _ body: (Int, Int) -> Void) {
        withoutActuallyEscaping(body) { escaping in
            var job = escaping
            withUnsafeMutablePointer(to: &job) { context in
                ek_pool_run(workers, chunks, { context, chunk, worker in
                    context!.assumingMemoryBound(to: ((Int, Int) -> Void).self).pointee(Int(chunk), Int(worker))
                }, context)
            }
        }
    }

    static func chunkRange(_ chunk: Int, of n: Int) -> Range<Int> {
        let lo = chunk * imagesPerChunk
        return lo..<min(n, lo + imagesPerChunk)
    }

    static func chunkCount(_ n: Int) -> Int { (n + imagesPerChunk - 1) / imagesPerChunk }

    /// Splits 0..<n into about `Threads.count` contiguous ranges when the work (`cost`,
    /// in rough element-operations) is worth a thread wake-up (~10 µs), and runs `body`
    /// on each. Results must not depend on the split (each index written by one range).
    public static func forRanges(_ n: Int, cost: Int, _ body: (Range<Int>) -> Void) {
        Threads.pinBLAS()
        let w = min(budget, n, max(1, cost / 400_000))
        if w <= 1 { body(0..<n); return }
        pool(workers: w, chunks: w) { i, _ in body((i * n / w)..<((i + 1) * n / w)) }
    }
}

/// Per-worker scratch buffers, freed together.
final class ScratchBuffers<T> {
    let buffers: [UnsafeMutablePointer<T>]
    init(count: Int, elements: Int) {
        buffers = (0..<count).map { _ in UnsafeMutablePointer<T>.allocate(capacity: max(elements, 1)) }
    }
    subscript(i: Int) -> UnsafeMutablePointer<T> { buffers[i] }
    deinit { for b in buffers { b.deallocate() } }
}
