import CHDF5
import Foundation
import Tensor

/// Named tensor trees on disk: one HDF5 dataset per key (float32 or float64, shape kept),
/// in tree order, plus root attributes. Used for checkpoints (parameters, EMA, optimizer
/// state) and anything else made of named tensors. Writes are atomic: the file is built
/// under a temporary name in the same directory, flushed to disk, then renamed over the
/// destination, so a crash leaves either the old file or the new one, never half of one.
public enum TensorFile {
    /// Attribute recording the format, so readers can refuse other HDF5 files clearly.
    public static let formatAttribute = "eidetic.format"
    public static let formatValue = "tensor-tree/1"

    public static func save(_ tree: TensorTree, attributes: [String: AttributeValue] = [:], to path: String) throws {
        try writeAtomically(to: path) { tmp in
            let f = try HDF5File.create(tmp)
            try f.setAttribute(formatAttribute, .string(formatValue))
            for (k, v) in attributes.sorted(by: { $0.key < $1.key }) { try f.setAttribute(k, v) }
            for (k, t) in tree {
                precondition(!k.contains("/"), "tensor file key '\(k)' must not contain '/'")
                try f.write(k, tensor: t)
            }
            try f.close()
        }
    }

    /// Loads every dataset as a tensor, in stored order, with the root attributes.
    public static func load(_ path: String) throws -> (tree: TensorTree, attributes: [String: AttributeValue]) {
        let f = try HDF5File.open(path)
        var attrs = try f.attributes()
        guard attrs[formatAttribute] == .string(formatValue) else {
            throw HDF5Error.unsupportedType(file: path, name: "/", detail: "not an Eidetic tensor file (attribute \(formatAttribute) is \(attrs[formatAttribute]?.description ?? "missing"))")
        }
        attrs[formatAttribute] = nil
        var tree = TensorTree()
        for name in f.datasetNames { tree[name] = try f.readTensor(name) }
        return (tree, attrs)
    }
}

/// Runs `write` on a temporary path beside `path`, fsyncs it, and renames it into place.
/// On error the temporary file is removed and any existing file at `path` is untouched.
public func writeAtomically(to path: String, _ write: (String) throws -> Void) throws {
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent().path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    removeDeadTemporaries(of: path)
    let tmp = dir + "/.\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    do {
        try write(tmp)
        let fd = open(tmp, O_RDONLY)
        if fd >= 0 {
            let synced = fsync(fd), err = errno
            close(fd)
            guard synced == 0 else {
                throw FileWriteError(path: path, reason: "fsync: \(String(cString: strerror(err)))")
            }
        }
        guard rename(tmp, path) == 0 else {
            throw FileWriteError(path: path, reason: "rename from \(tmp): \(String(cString: strerror(errno)))")
        }
        let dfd = open(dir, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    } catch {
        unlink(tmp)
        // name the destination, not the temporary file the error saw
        if error is FileWriteError { throw error }
        throw FileWriteError(path: path, reason: describeIOError(error).replacingOccurrences(of: tmp, with: path))
    }
}

/// This process's resident memory (Linux /proc/self/status, read by the same C helper as
/// the file preflight's memory budget; 0 elsewhere).
public enum ProcessMemory {
    /// Resident bytes now (VmRSS).
    public static var current: Int { eh5__status_kb("VmRSS") * 1024 }
    /// The peak resident bytes (VmHWM) since the process started or the last `resetPeak`.
    public static var peak: Int { eh5__status_kb("VmHWM") * 1024 }
    /// Restarts the peak count at the current size (writes 5 to /proc/self/clear_refs).
    public static func resetPeak() { try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8) }
}

/// Whether process `pid` exists and is not a zombie. A killed worker whose parent died too is
/// reparented to PID 1; where PID 1 does not reap (some VM and container inits), it stays a
/// zombie that `kill(pid, 0)` still reports as present.
public func processIsAlive(_ pid: pid_t) -> Bool {
    guard pid > 0, kill(pid, 0) == 0 || errno != ESRCH else { return false }
    #if os(Linux)
    // /proc/PID/stat: "pid (comm) S …"; comm may hold spaces or parentheses, so read past the last ")"
    if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") {
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        if state == "Z" || state == "X" { return false }
    }
    #endif
    return true
}

/// Removes `.NAME.tmp-PID-RAND` files beside `path` whose writer process no longer exists
/// (a killed atomic write of the same file); those of live processes are left alone.
public func removeDeadTemporaries(of path: String) {
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent().path, prefix = ".\(url.lastPathComponent).tmp-"
    for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name.hasPrefix(prefix) {
        let fields = name.dropFirst(prefix.count).split(separator: "-")
        guard fields.count == 2, let pid = pid_t(fields[0]) else { continue }
        if !processIsAlive(pid) { unlink(dir + "/" + name) }
    }
}

/// A readable reason for any I/O error: Foundation's file errors become their POSIX reason
/// ("No space left on device") instead of an NSCocoaErrorDomain record.
public func describeIOError(_ error: Error) -> String {
    let ns = error as NSError
    guard ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain else { return "\(error)" }
    if let u = ns.userInfo[NSUnderlyingErrorKey] as? NSError, u.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(u.code))) }
    if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
    switch ns.code {
    case NSFileNoSuchFileError, NSFileReadNoSuchFileError: return "no such file or directory"
    case NSFileReadNoPermissionError, NSFileWriteNoPermissionError: return "permission denied"
    case NSFileWriteOutOfSpaceError: return "no space left on device"
    case NSFileWriteVolumeReadOnlyError: return "read-only file system"
    default: return (ns.userInfo[NSLocalizedDescriptionKey] as? String) ?? "I/O error (code \(ns.code))"
    }
}

/// A failed atomic write: the destination and why (the previous file, if any, is untouched).
public struct FileWriteError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public init(path: String, reason: String) { self.path = path; self.reason = reason }
    public var description: String {
        let r = reason.hasPrefix(path) ? String(reason.dropFirst(path.count)).drop { $0 == ":" || $0 == " " } : Substring(reason)
        return "\(path): writing failed (\(r.isEmpty ? "I/O error" : r)); any previous file there is unchanged"
    }
}
