import Foundation

/// Where harnesses put the fuzz input when the loader under test takes a path: one private
/// folder per process (in /dev/shm when there is one, so no disk I/O), removed at exit.
public enum FuzzFiles {
    public static let folder: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let dir = "\(base)/eidetic-fuzz-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        removeAtExit = dir
        atexit { if let d = FuzzFiles.removeAtExit { try? FileManager.default.removeItem(atPath: d) } }
        return dir
    }()
    nonisolated(unsafe) static var removeAtExit: String?

    /// Writes `bytes` to `name` inside the folder (creating subfolders) and returns the path.
    @discardableResult
    public static func write(_ bytes: UnsafeRawBufferPointer, _ name: String) -> String {
        let path = folder + "/" + name
        let parent = (path as NSString).deletingLastPathComponent
        if parent != folder { try? FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true) }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        precondition(fd >= 0, "fuzz harness: cannot create \(path)")
        var done = 0
        while done < bytes.count {
            let n = Foundation.write(fd, bytes.baseAddress! + done, bytes.count - done)
            precondition(n > 0, "fuzz harness: cannot write \(path)")
            done += n
        }
        close(fd)
        return path
    }

    @discardableResult
    public static func write(_ bytes: [UInt8], _ name: String) -> String {
        bytes.withUnsafeBytes { write($0, name) }
    }

    /// Empties the folder (between inputs that write several files).
    public static func clear() {
        for f in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] {
            try? FileManager.default.removeItem(atPath: folder + "/" + f)
        }
    }
}

/// The fuzz input as a buffer (libFuzzer passes nil with size 0 for the empty input).
public func fuzzBytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> UnsafeRawBufferPointer {
    guard let data, size > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
    return UnsafeRawBufferPointer(start: data, count: size)
}

/// Splits the input at the first occurrence of `separator` (bytes after it, or empty).
public func splitOnce(_ bytes: UnsafeRawBufferPointer, separator: [UInt8]) -> ([UInt8], [UInt8]) {
    let a = Array(bytes)
    guard separator.count <= a.count else { return (a, []) }
    var i = 0
    while i + separator.count <= a.count {
        if a[i..<(i + separator.count)].elementsEqual(separator) {
            return (Array(a[..<i]), Array(a[(i + separator.count)...]))
        }
        i += 1
    }
    return (a, [])
}

/// libFuzzer's driver (compiler-rt, LLVM ≥ 12): parses the usual flags and runs `callback`.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// The process entry: SwiftPM links an executable's `main` to the symbol `<Target>_main`, so
/// each harness defines that (with `@_cdecl`) as a call to this, which hands the command line
/// to libFuzzer.
public func runFuzzer(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>,
                      _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32 {
    var argc = argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return LLVMFuzzerRunDriver(&argc, &argv, callback)
}
