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

    init(count: Int, dtype: DType, zeroed: Bool) {
        _ = mallocTuned
        precondition(count >= 0, "negative element count \(count)")
        let bytes = max(count * dtype.size, 64)
        var raw: UnsafeMutableRawPointer?
        let rc = posix_memalign(&raw, 64, bytes)
        precondition(rc == 0 && raw != nil, "out of memory allocating \(bytes) bytes")
        pointer = raw!
        self.count = count
        self.dtype = dtype
        if zeroed { memset(pointer, 0, bytes) }
    }

    deinit { free(pointer) }
}
