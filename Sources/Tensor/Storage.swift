import Foundation
import CKernels
#if canImport(Glibc)
import Glibc
#endif

/// Element type of a tensor. Training runs in `float32`; `float64` exists so that every
/// derivative rule can be checked against finite differences in Double precision.
public enum DType: String, Sendable, Codable {
    case float32, float64
    /// Bytes per element.
    public var size: Int { self == .float32 ? 4 : 8 }
}

/// Tune glibc malloc once so that freed tensor buffers are reused instead of being
/// returned to the kernel: without this, every buffer above 128 KiB is a fresh mmap and
/// its first touch page-faults (≈10× slower than reusing memory; platform-notes.md §2).
private let mallocTuned: Bool = {
    ek_tune_malloc()
    return true
}()

/// A contiguous, 64-byte aligned buffer of `count` elements. Owned by one or more tensors
/// (a reshape shares its storage); freed when the last owner goes away.
final class Storage {
    let pointer: UnsafeMutableRawPointer
    let count: Int
    let dtype: DType
    /// A view into memory owned elsewhere (not freed here); used to split kernels into pieces.
    let borrowed: Bool

    init(borrowing pointer: UnsafeMutableRawPointer, count: Int, dtype: DType) {
        self.pointer = pointer; self.count = count; self.dtype = dtype; borrowed = true
    }

    init(count: Int, dtype: DType, zeroed: Bool) {
        _ = mallocTuned
        precondition(count >= 0, "negative element count \(count)")
        let bytes = max(count * dtype.size, 64)
        if let reused = BufferPool.take(bytes) {
            pointer = reused
        } else {
            var raw: UnsafeMutableRawPointer?
            let rc = posix_memalign(&raw, 64, bytes)
            precondition(rc == 0 && raw != nil, "out of memory allocating \(bytes) bytes")
            pointer = raw!
        }
        self.count = count
        self.dtype = dtype
        borrowed = false
        if zeroed { memset(pointer, 0, bytes) }
    }

    deinit {
        guard !borrowed else { return }
        if !BufferPool.give(pointer, bytes: max(count * dtype.size, 64)) { free(pointer) }
    }
}

/// Large buffers freed by one training step are needed again, at the same sizes, by the
/// next. glibc returns allocations above its mmap threshold (32 MiB at most) to the kernel,
/// and fresh pages cost a page fault each; this pool keeps such buffers by exact size
/// (up to `limit` bytes in all) and hands them back out.
enum BufferPool {
    static let minimumBytes = 8 << 20
    nonisolated(unsafe) static var limit = 3 << 30
    nonisolated(unsafe) static var held = 0
    nonisolated(unsafe) static var free: [Int: [UnsafeMutableRawPointer]] = [:]
    static let lock = NSLock()

    static func take(_ bytes: Int) -> UnsafeMutableRawPointer? {
        guard bytes >= minimumBytes else { return nil }
        lock.lock(); defer { lock.unlock() }
        guard var list = free[bytes], let p = list.popLast() else { return nil }
        free[bytes] = list
        held -= bytes
        return p
    }

    static func give(_ p: UnsafeMutableRawPointer, bytes: Int) -> Bool {
        guard bytes >= minimumBytes else { return false }
        lock.lock(); defer { lock.unlock() }
        guard held + bytes <= limit else { return false }
        free[bytes, default: []].append(p)
        held += bytes
        return true
    }
}
