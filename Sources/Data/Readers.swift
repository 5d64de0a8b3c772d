import Foundation

/// Images in memory: uint8, N×C×H×W, with integer labels and class names.
public struct ImageSet: Equatable {
    public var images: [UInt8]
    public var labels: [Int]
    public var channels: Int, height: Int, width: Int
    public var classNames: [String]

    public init(images: [UInt8], labels: [Int], channels: Int, height: Int, width: Int, classNames: [String]) {
        precondition(images.count == labels.count * channels * height * width,
                     "ImageSet: \(images.count) bytes for \(labels.count) images of \(channels)×\(height)×\(width)")
        self.images = images; self.labels = labels
        self.channels = channels; self.height = height; self.width = width; self.classNames = classNames
    }

    public var count: Int { labels.count }
    public var imageSize: Int { channels * height * width }
    public var shape: [Int] { [count, channels, height, width] }

    /// The bytes of image i.
    public func image(_ i: Int) -> ArraySlice<UInt8> { images[(i * imageSize)..<((i + 1) * imageSize)] }

    /// Every image shrunk by an integer `factor`: each output pixel is the mean of a
    /// factor × factor block (a box filter), rounded to the nearest integer (halves up).
    /// Height and width must be divisible by the factor. CIFAR-10 at 16×16 is `downsampled(by: 2)`.
    public func downsampled(by factor: Int) -> ImageSet {
        precondition(factor >= 1 && height % factor == 0 && width % factor == 0,
                     "downsample: \(height)×\(width) is not divisible by \(factor)")
        if factor == 1 { return self }
        let (oh, ow) = (height / factor, width / factor), area = factor * factor
        var out = [UInt8](repeating: 0, count: count * channels * oh * ow)
        images.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for plane in 0..<(count * channels) {
                    let s = src.baseAddress! + plane * height * width, d = dst.baseAddress! + plane * oh * ow
                    for i in 0..<oh { for j in 0..<ow {
                        var sum = 0
                        for a in 0..<factor { for b in 0..<factor { sum += Int(s[(i * factor + a) * width + j * factor + b]) } }
                        d[i * ow + j] = UInt8((sum + area / 2) / area)
                    } }
                }
            }
        }
        return ImageSet(images: out, labels: labels, channels: channels, height: oh, width: ow, classNames: classNames)
    }

    /// The images at `indices`, in that order (duplicates allowed).
    public func subset(_ indices: [Int]) -> ImageSet {
        let size = imageSize
        var out = [UInt8](repeating: 0, count: indices.count * size)
        images.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for (j, i) in indices.enumerated() {
                    precondition(i >= 0 && i < labels.count, "subset: index \(i) out of range 0..<\(labels.count)")
                    (dst.baseAddress! + j * size).update(from: src.baseAddress! + i * size, count: size)
                }
            }
        }
        return ImageSet(images: out, labels: indices.map { labels[$0] }, channels: channels, height: height, width: width, classNames: classNames)
    }

    /// Count of images per class label.
    public var classCounts: [Int] {
        var c = [Int](repeating: 0, count: max(classNames.count, (labels.max() ?? -1) + 1))
        for l in labels { c[l] += 1 }
        return c
    }
}

/// CIFAR-10 in the official binary layout (Krizhevsky, 2009): `data_batch_1..5.bin` and
/// `test_batch.bin`, each 10,000 records of 1 label byte + 3,072 pixel bytes (1,024 red,
/// then green, then blue, row-major); class names in `batches.meta.txt`.
public enum CIFAR10 {
    public static let recordSize = 3073
    public static let recordsPerBatch = 10_000
    public static let trainFiles = (1...5).map { "data_batch_\($0).bin" }
    public static let testFile = "test_batch.bin"
    public static let defaultClassNames = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    /// Reads train and test splits from the `.tar.gz` archive or an extracted
    /// `cifar-10-batches-bin/` folder.
    /// `recordsPerBatch` is 10,000 for the real dataset (tests use tiny batches).
    public static func load(_ path: String, recordsPerBatch: Int = recordsPerBatch) throws -> (train: ImageSet, test: ImageSet) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw DataError.unreadable(file: path, reason: "no such file or folder")
        }
        var files: [String: (bytes: [UInt8], origin: String)] = [:]
        if isDir.boolValue {
            for name in trainFiles + [testFile, "batches.meta.txt"] {
                let p = (path as NSString).appendingPathComponent(name)
                if FileManager.default.fileExists(atPath: p) { files[name] = (try Archive.readPossiblyGzipped(p), p) }
            }
        } else {
            let bytes = try Archive.readPossiblyGzipped(path)
            for (name, range) in try Archive.tarEntries(bytes, file: path) {
                let base = (name as NSString).lastPathComponent
                if trainFiles.contains(base) || base == testFile || base == "batches.meta.txt" {
                    files[base] = (Array(bytes[range]), "\(path):\(name)")
                }
            }
        }
        var classNames = defaultClassNames
        if let meta = files["batches.meta.txt"] {
            let names = String(decoding: meta.bytes, as: UTF8.self).split(whereSeparator: \.isNewline)
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            if names.count == 10 { classNames = names }
        }
        func batch(_ name: String) throws -> ImageSet {
            guard let f = files[name] else { throw DataError.badFormat(file: path, detail: "missing \(name) (not a CIFAR-10 binary archive or folder?)") }
            return try parseBatch(f.bytes, file: f.origin, classNames: classNames, expectedRecords: recordsPerBatch)
        }
        var train = try batch(trainFiles[0])
        for name in trainFiles.dropFirst() {
            let b = try batch(name)
            train.images += b.images; train.labels += b.labels
        }
        return (train, try batch(testFile))
    }

    /// Parses one batch file's bytes; sizes and labels are validated.
    public static func parseBatch(_ bytes: [UInt8], file: String, classNames: [String] = defaultClassNames,
                                  expectedRecords: Int? = recordsPerBatch) throws -> ImageSet {
        if bytes.isEmpty { throw DataError.empty(file: file) }
        if bytes.count % recordSize != 0 {
            throw DataError.truncated(file: file, offset: bytes.count / recordSize * recordSize,
                                      detail: "\(bytes.count) bytes is not a whole number of \(recordSize)-byte records")
        }
        let n = bytes.count / recordSize
        if let expectedRecords, n != expectedRecords {
            throw DataError.truncated(file: file, offset: bytes.count, detail: "\(n) records, expected \(expectedRecords)")
        }
        var images = [UInt8](repeating: 0, count: n * 3072)
        var labels = [Int](repeating: 0, count: n)
        try bytes.withUnsafeBufferPointer { src in
            try images.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n {
                    let label = Int(src[i * recordSize])
                    guard label < 10 else { throw DataError.badFormat(file: file, detail: "record \(i) (byte \(i * recordSize)) has label \(label), expected 0–9") }
                    labels[i] = label
                    (dst.baseAddress! + i * 3072).update(from: src.baseAddress! + i * recordSize + 1, count: 3072)
                }
            }
        }
        return ImageSet(images: images, labels: labels, channels: 3, height: 32, width: 32, classNames: classNames)
    }
}

/// IDX files (LeCun's MNIST format; Fashion-MNIST uses it too), gzip'ed or raw:
/// big-endian magic 0x0000_08_0D (D = number of dimensions), then D big-endian uint32 sizes,
/// then uint8 data.
public enum IDX {
    public static let fashionMNISTClassNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    public static let debianFolder = "/usr/share/datasets/fashion-mnist"

    public static func read(_ path: String) throws -> (values: [UInt8], shape: [Int]) {
        let bytes = try Archive.readPossiblyGzipped(path)
        guard bytes.count >= 4, bytes[0] == 0, bytes[1] == 0 else {
            throw DataError.badFormat(file: path, detail: "not an IDX file (bad magic number)")
        }
        guard bytes[2] == 0x08 else { throw DataError.badFormat(file: path, detail: "IDX element type 0x\(String(bytes[2], radix: 16)) is not unsigned byte (0x08)") }
        let dims = Int(bytes[3])
        guard dims >= 1, bytes.count >= 4 + 4 * dims else { throw DataError.truncated(file: path, offset: bytes.count, detail: "IDX header needs \(4 + 4 * dims) bytes") }
        var shape: [Int] = []
        for d in 0..<dims {
            let o = 4 + 4 * d
            shape.append(Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3]))
        }
        let start = 4 + 4 * dims
        // the product of the sizes, checked against the bytes present as it grows (sizes up
        // to 2^32 − 1 each would overflow Int)
        var need = shape.contains(0) ? 0 : 1
        for s in shape where need > 0 {
            let (p, overflow) = need.multipliedReportingOverflow(by: s)
            guard !overflow, p <= bytes.count - start else {
                throw DataError.truncated(file: path, offset: bytes.count, detail: "IDX data of shape \(shape) needs more bytes than the \(bytes.count - start) after the header")
            }
            need = p
        }
        guard bytes.count - start >= need else {
            throw DataError.truncated(file: path, offset: bytes.count, detail: "IDX data of shape \(shape) needs \(need) bytes after the header, found \(bytes.count - start)")
        }
        guard bytes.count - start == need else { throw DataError.badFormat(file: path, detail: "\(bytes.count - start - need) trailing bytes after IDX data of shape \(shape)") }
        return (Array(bytes[start...]), shape)
    }

    /// Images + labels from a pair of IDX files. `padTo` zero-pads each side to a square of
    /// that size (28 → 32 adds 2 pixels each side); `channels` replicates gray to e.g. 3.
    public static func load(images: String, labels: String, classNames: [String] = fashionMNISTClassNames,
                            padTo: Int? = nil, channels: Int = 1) throws -> ImageSet {
        let (pix, ishape) = try read(images)
        let (lab, lshape) = try read(labels)
        guard ishape.count == 3 else { throw DataError.badFormat(file: images, detail: "expected a 3-d image array, got shape \(ishape)") }
        guard lshape.count == 1, lshape[0] == ishape[0] else {
            throw DataError.badFormat(file: labels, detail: "labels shape \(lshape) does not match \(ishape[0]) images in \(images)")
        }
        if let bad = lab.first(where: { Int($0) >= classNames.count }) {
            throw DataError.badFormat(file: labels, detail: "label \(bad) outside 0..<\(classNames.count)")
        }
        let (n, h, w) = (ishape[0], ishape[1], ishape[2])
        guard h >= 1 && w >= 1 else { throw DataError.badFormat(file: images, detail: "images of \(h)×\(w) pixels") }
        let side = padTo ?? max(h, w)
        guard side >= h && side >= w else { throw DataError.invalid("padTo \(side) is smaller than the images (\(h)×\(w))") }
        // the output is channels × side² bytes per h × w input bytes: refuse what would blow
        // a small file up by orders of magnitude (a 1 × 10⁶ "image" squared, a huge pad)
        guard channels >= 1 && channels <= 4 else { throw DataError.invalid("channels must be 1–4, got \(channels)") }
        guard side <= 1 << 16, side * side <= 16 * h * w else {
            throw DataError.badFormat(file: images, detail: "\(h)×\(w) images padded to \(side)×\(side) would be more than 16× the pixels")
        }
        let (top, left) = ((side - h) / 2, (side - w) / 2)
        var out = [UInt8](repeating: 0, count: n * channels * side * side)
        for i in 0..<n { for c in 0..<channels { for r in 0..<h { for col in 0..<w {
            out[((i * channels + c) * side + r + top) * side + col + left] = pix[(i * h + r) * w + col]
        } } } }
        return ImageSet(images: out, labels: lab.map(Int.init), channels: channels, height: side, width: side, classNames: classNames)
    }
}
