import Foundation
import HDF5

/// The HDF5 dataset store. One file holds one or more splits:
///
///     /train/images   uint8 [N, C, H, W]   chunked one image per chunk, deflate 4
///     /train/labels   int64 [N]
///     /test/…         the same for other splits
///     /class_names    strings [K]
///     attributes: format, source, source_sha256, import_command, eidetic_version
///
/// One-image chunks make a random minibatch one HDF5 read of the chosen rows.
public final class DatasetFile {
    public static let format = "eidetic.images/1"
    public let path: String
    let file: HDF5File
    public let classNames: [String]
    public let attributes: [String: AttributeValue]

    /// Writes `splits` (name → images) and provenance attributes atomically; `extra` may add
    /// datasets to the file before it is renamed into place.
    public static func write(_ splits: [(String, ImageSet)], attributes: [String: AttributeValue], to path: String,
                             extra: ((HDF5File) throws -> Void)? = nil) throws {
        precondition(!splits.isEmpty, "DatasetFile.write: no splits")
        try writeAtomically(to: path) { tmp in
            let f = try HDF5File.create(tmp)
            try f.setAttribute("format", .string(format))
            for (k, v) in attributes.sorted(by: { $0.key < $1.key }) { try f.setAttribute(k, v) }
            try f.write("class_names", strings: splits[0].1.classNames)
            for (name, set) in splits {
                try f.write("\(name)/images", uint8: set.images, shape: set.shape, compression: 4, chunkRows: 1)
                try f.write("\(name)/labels", int64: set.labels.map(Int64.init), shape: [set.count])
            }
            try extra?(f)
            try f.close()
        }
    }

    /// Writes one split block by block, in the layout of `write`, so a file of 2^20 images
    /// never sits in memory: `append` blocks in order, then `close` (which checks that all
    /// `count` rows came and writes the labels). Write to a temporary path and rename
    /// (`writeAtomically`); `file` takes extra datasets before `close`.
    public final class SplitWriter {
        public let file: HDF5File
        public let split: String
        public let count: Int
        public private(set) var written = 0
        let rowBytes: Int
        var labels: [Int64] = []

        public init(path: String, split: String, count: Int, channels: Int, height: Int, width: Int,
                    classNames: [String], attributes: [String: AttributeValue]) throws {
            precondition(count >= 1 && channels >= 1 && height >= 1 && width >= 1, "SplitWriter: empty shape")
            file = try HDF5File.create(path)
            self.split = split; self.count = count; rowBytes = channels * height * width
            try file.setAttribute("format", .string(DatasetFile.format))
            for (k, v) in attributes.sorted(by: { $0.key < $1.key }) { try file.setAttribute(k, v) }
            try file.write("class_names", strings: classNames)
            try file.create("\(split)/images", shape: [count, channels, height, width], element: .uint8, compression: 4, chunkRows: 1)
            labels.reserveCapacity(count)
        }

        /// The next rows: whole images, one label each.
        public func append(images: [UInt8], labels l: [Int]) throws {
            precondition(images.count == l.count * rowBytes && written + l.count <= count,
                         "SplitWriter: \(images.count) bytes and \(l.count) labels after \(written) of \(count) rows")
            try file.writeRows("\(split)/images", start: written, uint8: images)
            labels.append(contentsOf: l.map(Int64.init))
            written += l.count
        }

        public func close() throws {
            precondition(written == count, "SplitWriter: \(written) of \(count) rows written")
            try file.write("\(split)/labels", int64: labels, shape: [count])
            try file.close()
        }
    }

    public init(_ path: String) throws {
        self.path = path
        do { file = try HDF5File.open(path) }
        catch let e as HDF5Error { if case .corrupt = e { throw e }; throw DataError.badFormat(file: path, detail: "not an HDF5 file (missing, truncated or another format)") }
        let attrs = try file.attributes()
        guard attrs["format"] == .string(DatasetFile.format) else {
            throw DataError.badFormat(file: path, detail: "not an Eidetic image dataset (format attribute is \(attrs["format"]?.description ?? "missing"))")
        }
        attributes = attrs
        classNames = try file.readStrings("class_names")
    }

    /// Split names in the file ("train", "test", …).
    public var splits: [String] { file.datasetNames.filter { file.contains("\($0)/images") } }

    public func shape(_ split: String) throws -> [Int] {
        guard file.contains("\(split)/images") else { throw DataError.badFormat(file: path, detail: "no split '\(split)' (has: \(splits.joined(separator: ", ")))") }
        let s = try file.info("\(split)/images").shape
        guard s.count == 4, s.dropFirst().allSatisfy({ $0 >= 1 }) else {
            throw DataError.badFormat(file: path, detail: "\(split)/images has shape \(s), expected [N, C, H, W] with C, H, W ≥ 1")
        }
        return s
    }

    /// The split's labels, checked to be class indices: 0 ≤ label < the number of class
    /// names (or < 65,536 when there are more labels than names, as in sample files of a
    /// run whose dataset was not found), one per image.
    func checkedLabels(_ split: String, count: Int) throws -> [Int] {
        let (raw, shape) = try file.readInt64("\(split)/labels")
        guard shape == [count] else { throw DataError.badFormat(file: path, detail: "\(split)/labels has shape \(shape), expected [\(count)]") }
        let limit = max(classNames.count, 1 << 16)
        if let i = raw.firstIndex(where: { $0 < 0 || $0 >= limit }) {
            throw DataError.badFormat(file: path, detail: "\(split)/labels[\(i)] is \(raw[i]), not a class index (\(classNames.count) class names)")
        }
        return raw.map { Int($0) }
    }

    /// The whole split in memory.
    public func load(_ split: String) throws -> ImageSet {
        let s = try shape(split)
        guard s.count == 4 else { throw DataError.badFormat(file: path, detail: "\(split)/images has shape \(s), expected [N, C, H, W]") }
        let (images, _) = try file.readUInt8(("\(split)/images"))
        let labels = try checkedLabels(split, count: s[0])
        return ImageSet(images: images, labels: labels, channels: s[1], height: s[2], width: s[3], classNames: classNames)
    }

    /// The split's labels (checked class indices), without its images.
    public func labels(_ split: String) throws -> [Int] { try checkedLabels(split, count: try shape(split)[0]) }

    /// Rows `range` of a split given its `labels` (from `labels(_:)`, read once): the block
    /// reads of streamed evaluations.
    public func block(_ split: String, _ range: Range<Int>, labels: [Int]) throws -> ImageSet {
        let s = try shape(split)
        precondition(range.lowerBound >= 0 && range.upperBound <= s[0] && labels.count == s[0], "DatasetFile.block: rows \(range) of \(s[0])")
        let images = try file.readUInt8Rows("\(split)/images", indices: Array(range))
        return ImageSet(images: images, labels: Array(labels[range]), channels: s[1], height: s[2], width: s[3], classNames: classNames)
    }

    /// Rows `indices` of a split, read without loading the rest.
    public func read(_ split: String, indices: [Int]) throws -> ImageSet {
        let s = try shape(split)
        let images = try file.readUInt8Rows("\(split)/images", indices: indices)
        let labels = try checkedLabels(split, count: s[0])
        return ImageSet(images: images, labels: indices.map { labels[$0] }, channels: s[1], height: s[2], width: s[3], classNames: classNames)
    }
}
