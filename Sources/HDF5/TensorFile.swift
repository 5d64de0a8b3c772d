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
    let tmp = dir + "/.\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    do {
        try write(tmp)
        let fd = open(tmp, O_RDONLY)
        if fd >= 0 {
            let synced = fsync(fd), err = errno
            close(fd)
            guard synced == 0 else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path, NSUnderlyingErrorKey: NSError(domain: NSPOSIXErrorDomain, code: Int(err))])
            }
        }
        guard rename(tmp, path) == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path, NSLocalizedDescriptionKey: "rename \(tmp) → \(path) failed: \(String(cString: strerror(errno)))"])
        }
        let dfd = open(dir, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    } catch {
        unlink(tmp)
        throw error
    }
}
