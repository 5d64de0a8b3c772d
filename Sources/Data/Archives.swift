import CZlib
import Foundation

/// Whole-file reads that see through gzip, and a ustar (tar) reader — enough to read the
/// official dataset archives directly, without shelling out.
public enum Archive {
    /// The bytes of `path`, decompressed if it is gzip (zlib's gzread reads plain files
    /// unchanged). A gzip stream that ends early is an error naming the file and offset.
    public static func readPossiblyGzipped(_ path: String) throws -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else { throw DataError.unreadable(file: path, reason: "no such file") }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        if size == 0 { throw DataError.empty(file: path) }
        guard let gz = gzopen(path, "rb") else { throw DataError.unreadable(file: path, reason: String(cString: strerror(errno))) }
        defer { gzclose(gz) }
        gzbuffer(gz, 1 << 20)
        var out: [UInt8] = []
        out.reserveCapacity(size)
        var chunk = [UInt8](repeating: 0, count: min(1 << 22, max(size, 1 << 16)))
        while true {
            let n = chunk.withUnsafeMutableBytes { gzread(gz, $0.baseAddress, UInt32($0.count)) }
            if n < 0 || (n == 0 && gzeof(gz) == 0) {
                var errnum: Int32 = 0
                let msg = String(cString: gzerror(gz, &errnum))
                throw DataError.truncated(file: path, offset: Int(gzoffset(gz)), detail: "gzip stream: \(msg)")
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<Int(n)])
        }
        var errnum: Int32 = 0
        let msg = String(cString: gzerror(gz, &errnum))
        if errnum != Z_OK && errnum != Z_STREAM_END {
            throw DataError.truncated(file: path, offset: Int(gzoffset(gz)), detail: "gzip stream: \(msg)")
        }
        return out
    }

    /// Writes `bytes` gzip-compressed (used by tests and tools that make IDX/tar fixtures).
    public static func writeGzip(_ bytes: [UInt8], to path: String) throws {
        guard let gz = gzopen(path, "wb6") else { throw DataError.unreadable(file: path, reason: "cannot create") }
        let n = bytes.withUnsafeBytes { gzwrite(gz, $0.baseAddress, UInt32($0.count)) }
        guard gzclose(gz) == Z_OK, n == bytes.count else { throw DataError.unreadable(file: path, reason: "gzip write failed") }
    }

    /// Whether the file starts with the gzip magic bytes.
    public static func isGzip(_ path: String) -> Bool {
        guard let fh = FileHandle(forReadingAtPath: path), let head = try? fh.read(upToCount: 2) else { return false }
        return head.count == 2 && head[head.startIndex] == 0x1f && head[head.startIndex + 1] == 0x8b
    }

    /// Regular-file entries of a tar archive held in memory: name → byte range.
    public static func tarEntries(_ bytes: [UInt8], file: String) throws -> [(name: String, range: Range<Int>)] {
        var entries: [(String, Range<Int>)] = []
        var offset = 0
        while offset + 512 <= bytes.count {
            let header = bytes[offset..<(offset + 512)]
            if header.allSatisfy({ $0 == 0 }) { return entries }   // end-of-archive block
            func field(_ start: Int, _ len: Int) -> String {
                let raw = bytes[(offset + start)..<(offset + start + len)].prefix { $0 != 0 }
                return String(decoding: raw, as: UTF8.self)
            }
            // checksum: sum of header bytes with the checksum field read as spaces
            var sum = 0
            for (i, b) in header.enumerated() { sum += (148..<156).contains(i) ? 32 : Int(b) }
            let stored = Int(field(148, 8).trimmingCharacters(in: .whitespaces), radix: 8)
            guard stored == sum else { throw DataError.badFormat(file: file, detail: "not a tar archive (bad header checksum at byte \(offset))") }
            guard let size = Int(field(124, 12).trimmingCharacters(in: .whitespaces), radix: 8), size >= 0 else {
                throw DataError.badFormat(file: file, detail: "bad tar size field at byte \(offset)")
            }
            let type = bytes[offset + 156]
            var name = field(0, 100)
            let prefix = field(345, 155)
            if !prefix.isEmpty && field(257, 5) == "ustar" { name = prefix + "/" + name }
            let start = offset + 512
            guard start + size <= bytes.count else {
                throw DataError.truncated(file: file, offset: bytes.count, detail: "tar entry \(name) needs \(size) bytes from byte \(start)")
            }
            if type == UInt8(ascii: "0") || type == 0 { entries.append((name, start..<(start + size))) }
            offset = start + (size + 511) / 512 * 512
        }
        if offset < bytes.count || entries.isEmpty {
            throw DataError.truncated(file: file, offset: bytes.count, detail: "tar archive ends inside a header")
        }
        return entries
    }
}
