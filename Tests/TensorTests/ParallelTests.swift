import Foundation
import Dispatch
import Tensor
import XCTest

/// The fork-join pool under every batched kernel (Sources/CKernels/pool.c, `Parallel`):
/// every chunk runs exactly once, worker slots stay below the worker count, jobs inside jobs
/// and jobs from several threads at once run (inline) instead of deadlocking, and results of
/// real kernels do not depend on the thread count (see ConvolutionTests for those).
final class ParallelTests: XCTestCase {
    func testEveryChunkRunsOnceWithAValidWorkerSlot() {
        let saved = Threads.count
        defer { Threads.count = saved }
        var state: UInt64 = 12345
        for iteration in 0..<3000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let chunks = Int(state >> 58) + 1          // 1 … 64
            Threads.count = Int((state >> 40) % 4) + 1  // 1 … 4
            let slots = max(1, min(Threads.count, chunks))
            let visits = UnsafeMutablePointer<Int>.allocate(capacity: chunks)
            visits.initialize(repeating: 0, count: chunks)
            defer { visits.deallocate() }
            var badSlot = false
            Parallel.run(chunks: chunks) { chunk, worker in
                visits[chunk] += 1   // each chunk once, so no two threads share an index
                if worker < 0 || worker >= slots { badSlot = true }
                if chunk % 7 == 0 {
                    // a job inside a job runs inline on this thread
                    // (with one chunk, run() works inline on the caller, so this job is not
                    // nested and its ranges may run on several threads: sum under a lock)
                    var sum = 0
                    let lock = NSLock()
                    Parallel.forRanges(100, cost: 10_000_000) { r in lock.lock(); sum += r.count; lock.unlock() }
                    if sum != 100 { visits[chunk] += 100 }
                }
            }
            XCTAssertFalse(badSlot, "iteration \(iteration)")
            XCTAssertEqual(Array(UnsafeBufferPointer(start: visits, count: chunks)), [Int](repeating: 1, count: chunks),
                           "iteration \(iteration): \(chunks) chunks at \(Threads.count) threads")
        }
    }

    /// Two threads submitting jobs at once: one gets the pool, the other runs inline.
    func testJobsFromSeveralThreadsAtOnce() {
        let saved = Threads.count
        defer { Threads.count = saved }
        Threads.count = 2
        let totals = UnsafeMutablePointer<Int>.allocate(capacity: 4)
        totals.initialize(repeating: 0, count: 4)
        defer { totals.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            for _ in 0..<500 {
                let counts = UnsafeMutablePointer<Int>.allocate(capacity: 16)
                counts.initialize(repeating: 0, count: 16)
                Parallel.run(chunks: 16) { chunk, _ in counts[chunk] += chunk }
                totals[t] += (0..<16).reduce(0) { $0 + counts[$1] }
                counts.deallocate()
            }
        }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: totals, count: 4)), [Int](repeating: 500 * 120, count: 4))
    }
}
