import CZlib
import Data
import Foundation
import HDF5
import XCTest

/// Shared temp-folder helper.
class TempDirTestCase: XCTestCase {
    var dir: String!
    override func setUp() {
        dir = NSTemporaryDirectory() + "eidetic-data-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let p = dir + "/" + name
        try FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        return p
    }

    /// Asserts the error is one line and names `file`.
    func assertOneLineError(_ body: @autoclosure () throws -> Any, names file: String, contains: String? = nil,
                            line: UInt = #line) {
        XCTAssertThrowsError(try body(), line: line) { error in
            let s = "\(error)"
            XCTAssertTrue(s.contains(file), "error does not name \(file): \(s)", line: line)
            XCTAssertFalse(s.contains("\n"), "error is not one line: \(s)", line: line)
            if let c = contains { XCTAssertTrue(s.contains(c), "error lacks '\(c)': \(s)", line: line) }
        }
    }
}

final class SHA256Tests: XCTestCase {
    func testKnownVectors() {
        XCTAssertEqual(SHA256.hex([UInt8]()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}

final class CIFARTests: TempDirTestCase {
    func record(label: UInt8, fill: (Int) -> UInt8) -> [UInt8] { [label] + (0..<3072).map(fill) }

    func testParseBatchAndErrors() throws {
        let bytes = record(label: 3) { UInt8($0 % 256) } + record(label: 9) { UInt8(255 - $0 % 256) }
        let set = try CIFAR10.parseBatch(bytes, file: "b.bin", expectedRecords: 2)
        XCTAssertEqual(set.labels, [3, 9])
        XCTAssertEqual(Array(set.image(1).prefix(3)), [255, 254, 253])
        XCTAssertEqual(set.image(0)[1024], 0)   // green plane starts at byte 1024 of the record
        assertOneLineError(try CIFAR10.parseBatch(Array(bytes.dropLast(10)), file: "b.bin", expectedRecords: 2),
                           names: "b.bin", contains: "truncated at byte 3073")
        assertOneLineError(try CIFAR10.parseBatch([], file: "e.bin"), names: "e.bin", contains: "empty")
        assertOneLineError(try CIFAR10.parseBatch(record(label: 200) { _ in 0 }, file: "w.bin", expectedRecords: 1),
                           names: "w.bin", contains: "label 200")
        assertOneLineError(try CIFAR10.parseBatch(bytes, file: "n.bin"), names: "n.bin", contains: "expected 10000")
    }

    /// A ustar archive of (name, bytes) entries, as `tar` writes them.
    func tar(_ files: [(String, [UInt8])]) -> [UInt8] {
        var out: [UInt8] = []
        for (name, data) in files {
            var h = [UInt8](repeating: 0, count: 512)
            func put(_ s: String, _ at: Int) { for (i, b) in s.utf8.enumerated() { h[at + i] = b } }
            put(name, 0); put("0000644", 100); put("0000000", 108); put("0000000", 116)
            put(String(format: "%011o", data.count), 124); put("00000000000", 136)
            put("        ", 148); h[156] = UInt8(ascii: "0"); put("ustar", 257); put("00", 263)
            let sum = h.reduce(0) { $0 + Int($1) }
            put(String(format: "%06o", sum), 148); h[154] = 0; h[155] = UInt8(ascii: " ")
            out += h + data + [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
        }
        return out + [UInt8](repeating: 0, count: 1024)
    }

    func tinyBatches() -> [(String, [UInt8])] {
        var files: [(String, [UInt8])] = []
        for b in 1...5 {
            files.append(("cifar-10-batches-bin/data_batch_\(b).bin",
                          record(label: UInt8(b)) { UInt8(($0 + b) % 256) } + record(label: UInt8(b + 4)) { _ in UInt8(b) }))
        }
        files.append(("cifar-10-batches-bin/test_batch.bin", record(label: 0) { _ in 9 } + record(label: 1) { _ in 8 }))
        files.append(("cifar-10-batches-bin/batches.meta.txt", Array("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n".utf8)))
        return files
    }

    func testReadsTarGzAndExtractedFolderAlike() throws {
        let files = tinyBatches()
        let archive = dir + "/tiny.tar.gz"
        try Archive.writeGzip(tar(files), to: archive)
        for (name, bytes) in files { _ = try write(bytes, name) }
        let fromArchive = try CIFAR10.load(archive, recordsPerBatch: 2)
        let fromFolder = try CIFAR10.load(dir + "/cifar-10-batches-bin", recordsPerBatch: 2)
        XCTAssertEqual(fromArchive.train, fromFolder.train)
        XCTAssertEqual(fromArchive.test, fromFolder.test)
        XCTAssertEqual(fromArchive.train.labels, [1, 5, 2, 6, 3, 7, 4, 8, 5, 9])
        XCTAssertEqual(fromArchive.train.classNames, ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"])
        XCTAssertEqual(Array(fromArchive.train.image(4).prefix(2)), [3, 4])
        // a batch with a missing record inside the archive
        var short = files; short[2].1.removeLast(3073)
        let bad = dir + "/short.tar.gz"
        try Archive.writeGzip(tar(short), to: bad)
        assertOneLineError(try CIFAR10.load(bad, recordsPerBatch: 2), names: "short.tar.gz", contains: "data_batch_3.bin")
    }

    func testArchiveErrors() throws {
        let empty = try write([], "empty.tar.gz")
        assertOneLineError(try CIFAR10.load(empty), names: "empty.tar.gz", contains: "empty")
        let text = try write(Array(String(repeating: "not a tar file\n", count: 100).utf8), "text.tar.gz")
        assertOneLineError(try CIFAR10.load(text), names: "text.tar.gz", contains: "not a tar archive")
        let cut = dir + "/cut.tar.gz"
        try Archive.writeGzip([UInt8](repeating: 7, count: 100_000), to: cut)
        let full = try Data(contentsOf: URL(fileURLWithPath: cut))
        try full.prefix(full.count / 2).write(to: URL(fileURLWithPath: cut))
        assertOneLineError(try CIFAR10.load(cut), names: "cut.tar.gz", contains: "truncated")
        assertOneLineError(try CIFAR10.load(dir + "/missing.tar.gz"), names: "missing.tar.gz")
        assertOneLineError(try CIFAR10.load(dir), names: dir, contains: "missing data_batch_1.bin")
    }

    /// The real archive (../shared/datasets, present on the project's machines): counts per
    /// class, and pixel values of records checked against the raw bytes of the batch files.
    func testImportRealCIFAR10() throws {
        let repoParent = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
        let candidates = [ProcessInfo.processInfo.environment["EIDETIC_CIFAR10"], "../shared/datasets/cifar-10-binary.tar.gz",
                          repoParent + "/shared/datasets/cifar-10-binary.tar.gz"].compactMap { $0 }
        guard let path = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw XCTSkip("CIFAR-10 archive not found (set EIDETIC_CIFAR10)")
        }
        let (train, test) = try CIFAR10.load(path)
        XCTAssertEqual(train.count, 50_000); XCTAssertEqual(test.count, 10_000)
        XCTAssertEqual(train.classCounts, [Int](repeating: 5000, count: 10))
        XCTAssertEqual(test.classCounts, [Int](repeating: 1000, count: 10))
        XCTAssertEqual(train.classNames, CIFAR10.defaultClassNames)
        let out = dir + "/cifar.h5"
        try DatasetFile.write([("train", train), ("test", test)], attributes: [:], to: out)
        let ds = try DatasetFile(out)
        let raw = try Archive.readPossiblyGzipped(path)
        let entries = try Archive.tarEntries(raw, file: path)
        func rawRecord(_ file: String, _ r: Int) -> ArraySlice<UInt8> {
            let range = entries.first { $0.name.hasSuffix(file) }!.range
            return raw[(range.lowerBound + r * 3073)..<(range.lowerBound + (r + 1) * 3073)]
        }
        for (split, file, r, globalIndex) in [("train", "data_batch_1.bin", 0, 0), ("train", "data_batch_1.bin", 9999, 9999),
                                              ("train", "data_batch_3.bin", 1234, 21234), ("train", "data_batch_5.bin", 9999, 49999),
                                              ("test", "test_batch.bin", 42, 42)] {
            let rec = rawRecord(file, r)
            let got = try ds.read(split, indices: [globalIndex])
            XCTAssertEqual(got.labels, [Int(rec.first!)], "\(file) record \(r)")
            XCTAssertEqual(Array(got.image(0)), Array(rec.dropFirst()), "\(file) record \(r) pixels")
        }
    }
}

final class IDXTests: TempDirTestCase {
    func idx(_ dims: [Int], _ data: [UInt8]) -> [UInt8] {
        var b: [UInt8] = [0, 0, 8, UInt8(dims.count)]
        for d in dims { b += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
        return b + data
    }

    func testLoadPadAndReplicate() throws {
        let pixels = (0..<(3 * 28 * 28)).map { UInt8($0 % 251) }
        let images = dir + "/img.gz", labels = try write(idx([3], [2, 0, 9]), "lab")
        try Archive.writeGzip(idx([3, 28, 28], pixels), to: images)
        let set = try IDX.load(images: images, labels: labels, padTo: 32, channels: 3)
        XCTAssertEqual(set.shape, [3, 3, 32, 32]); XCTAssertEqual(set.labels, [2, 0, 9])
        // image 1, channel 2, row 2 (first real row), column 2 (first real column) = pixel (1, 0, 0)
        func at(_ i: Int, _ c: Int, _ y: Int, _ x: Int) -> UInt8 { set.images[((i * 3 + c) * 32 + y) * 32 + x] }
        XCTAssertEqual(at(1, 2, 2, 2), pixels[784])
        XCTAssertEqual(at(1, 2, 0, 0), 0)   // padding
        let last: Int = 2 * 784 + 27 * 28 + 27
        XCTAssertEqual(at(2, 0, 29, 29), pixels[last])
    }

    func testErrors() throws {
        let good = try write(idx([2], [1, 2]), "good")
        let trunc = try write(Array(idx([5, 28, 28], [UInt8](repeating: 1, count: 100))), "trunc-images")
        assertOneLineError(try IDX.read(trunc), names: "trunc-images", contains: "truncated")
        let wrong = try write(Array("hello world, not idx".utf8), "wrong")
        assertOneLineError(try IDX.read(wrong), names: "wrong", contains: "not an IDX file")
        let empty = try write([], "empty")
        assertOneLineError(try IDX.read(empty), names: "empty", contains: "empty")
        let cut = dir + "/cut.gz"
        try Archive.writeGzip(idx([100, 28, 28], [UInt8](repeating: 3, count: 78400)).map { $0 &+ UInt8($0 % 7) }, to: cut)
        let d = try Data(contentsOf: URL(fileURLWithPath: cut))
        try d.prefix(d.count / 2).write(to: URL(fileURLWithPath: cut))
        assertOneLineError(try IDX.read(cut), names: "cut.gz", contains: "truncated")
        let img = try write(idx([3, 2, 2], [UInt8](repeating: 0, count: 12)), "img3")
        assertOneLineError(try IDX.load(images: img, labels: good), names: "good", contains: "does not match")
    }

    /// The Debian package's real files, when installed.
    func testRealFashionMNISTWhenInstalled() throws {
        let f = IDX.debianFolder + "/train-labels-idx1-ubyte.gz"
        guard FileManager.default.fileExists(atPath: f) else { throw XCTSkip("dataset-fashion-mnist not installed") }
        let (labels, shape) = try IDX.read(f)
        XCTAssertEqual(shape, [60000])
        XCTAssertEqual(Array(labels.prefix(10)), [9, 0, 0, 3, 0, 2, 7, 2, 5, 5])
    }
}

final class PNGFolderTests: TempDirTestCase {
    func testFolderImportAndPNGRoundTrip() throws {
        let gray = PNG.Image(width: 4, height: 3, channels: 1, pixels: (0..<12).map { UInt8($0 * 20) })
        let rgb = PNG.Image(width: 4, height: 3, channels: 3, pixels: (0..<36).map { UInt8($0 * 7) })
        let rgba = PNG.Image(width: 4, height: 3, channels: 4, pixels: (0..<48).map { $0 % 4 == 3 ? 255 : UInt8($0 * 5) })
        try FileManager.default.createDirectory(atPath: dir + "/set/b_cats", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/set/a_dogs", withIntermediateDirectories: true)
        try PNG.write(gray, to: dir + "/set/a_dogs/1.png")
        try PNG.write(rgb, to: dir + "/set/b_cats/1.png")
        try PNG.write(rgba, to: dir + "/set/b_cats/2.png")
        XCTAssertEqual(try PNG.read(dir + "/set/b_cats/1.png"), rgb)
        XCTAssertEqual(try PNG.read(dir + "/set/a_dogs/1.png"), gray)
        let set = try ImageSet.loadFolder(dir + "/set")
        XCTAssertEqual(set.classNames, ["a_dogs", "b_cats"])
        XCTAssertEqual(set.labels, [0, 1, 1])
        XCTAssertEqual(set.shape, [3, 3, 3, 4])
        XCTAssertEqual(Array(set.image(0).prefix(12)), gray.pixels)          // gray replicated into R
        XCTAssertEqual(Array(set.image(1))[12], rgb.pixels[1])                        // G plane, pixel 0
        XCTAssertEqual(Array(set.image(2))[0], rgba.pixels[0])                        // opaque alpha: unchanged
    }

    /// A minimal PNG encoder for formats our writer does not produce.
    func rawPNG(width: Int, height: Int, bitDepth: UInt8, colorType: UInt8, rowBytes: Int, extra: [(String, [UInt8])] = []) -> [UInt8] {
        func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 255), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }
        func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
            let td = Array(type.utf8) + data
            let crc = td.withUnsafeBufferPointer { crc32(0, $0.baseAddress, uInt($0.count)) }
            return be32(data.count) + td + be32(Int(crc))
        }
        var raw: [UInt8] = []
        for _ in 0..<height { raw += [0] + [UInt8](repeating: 1, count: rowBytes) }
        var len = compressBound(uLong(raw.count))
        var z = [UInt8](repeating: 0, count: Int(len))
        _ = compress2(&z, &len, raw, uLong(raw.count), 6)
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        out += chunk("IHDR", be32(width) + be32(height) + [bitDepth, colorType, 0, 0, 0])
        for (t, d) in extra { out += chunk(t, d) }
        return out + chunk("IDAT", Array(z.prefix(Int(len)))) + chunk("IEND", [])
    }

    func testUnsupportedPNGFormatsAreRejected() throws {
        let ok = try write(rawPNG(width: 2, height: 2, bitDepth: 8, colorType: 0, rowBytes: 2), "ok.png")
        XCTAssertEqual(try PNG.read(ok).pixels, [1, 1, 1, 1])
        let deep = try write(rawPNG(width: 2, height: 2, bitDepth: 16, colorType: 0, rowBytes: 4), "deep.png")
        assertOneLineError(try PNG.read(deep), names: "deep.png", contains: "16-bit")
        let palette = try write(rawPNG(width: 2, height: 2, bitDepth: 8, colorType: 3, rowBytes: 2, extra: [("PLTE", [0, 0, 0, 9, 9, 9])]), "pal.png")
        assertOneLineError(try PNG.read(palette), names: "pal.png", contains: "palette")
        let ga = try write(rawPNG(width: 2, height: 2, bitDepth: 8, colorType: 4, rowBytes: 4), "ga.png")
        assertOneLineError(try PNG.read(ga), names: "ga.png", contains: "gray+alpha")
    }

    func testBadPNGsGiveClearErrors() throws {
        let fake = try write(Array("definitely not a png".utf8), "set/x/fake.png")
        assertOneLineError(try PNG.read(fake), names: "fake.png", contains: "not a readable PNG")
        assertOneLineError(try ImageSet.loadFolder(dir + "/set"), names: "fake.png")
        let deep = dir + "/deep.png"
        var img = PNG.Image(width: 2, height: 2, channels: 3, pixels: [UInt8](repeating: 9, count: 12))
        try PNG.write(img, to: deep)
        img.pixels[0] = 1
        XCTAssertNotEqual(try PNG.read(deep), img)
        let mixed = dir + "/mixed"
        try FileManager.default.createDirectory(atPath: mixed + "/c", withIntermediateDirectories: true)
        try PNG.write(PNG.Image(width: 2, height: 2, channels: 1, pixels: [0, 0, 0, 0]), to: mixed + "/c/a.png")
        try PNG.write(PNG.Image(width: 3, height: 2, channels: 1, pixels: [0, 0, 0, 0, 0, 0]), to: mixed + "/c/b.png")
        assertOneLineError(try ImageSet.loadFolder(mixed), names: "b.png", contains: "differs")
        assertOneLineError(try ImageSet.loadFolder(dir + "/nothing"), names: "nothing")
    }
}

final class DatasetFileTests: TempDirTestCase {
    func testRoundTripAndBatchReads() throws {
        let n = 37
        let set = ImageSet(images: (0..<(n * 3 * 4 * 4)).map { UInt8(($0 * 31) % 256) }, labels: (0..<n).map { $0 % 5 },
                           channels: 3, height: 4, width: 4, classNames: ["a", "b", "c", "d", "e"])
        let path = dir + "/d.h5"
        try DatasetFile.write([("train", set), ("test", set.subset([1, 2]))], attributes: ["source": .string("unit")], to: path)
        let ds = try DatasetFile(path)
        XCTAssertEqual(ds.splits.sorted(), ["test", "train"])
        XCTAssertEqual(try ds.load("train"), set)
        XCTAssertEqual(ds.classNames, set.classNames)
        XCTAssertEqual(ds.attributes["source"], .string("unit"))
        let idx = [30, 2, 2, 17, 0, 36, 5]
        XCTAssertEqual(try ds.read("train", indices: idx), set.subset(idx))
        assertOneLineError(try ds.load("valid"), names: path, contains: "no split 'valid'")
        let junk = try write([UInt8](repeating: 1, count: 64), "junk.h5")
        assertOneLineError(try DatasetFile(junk), names: "junk.h5")
        // a truncated dataset file
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let cut = try write([UInt8](bytes.prefix(bytes.count / 2)), "cut.h5")
        XCTAssertThrowsError(try { let d = try DatasetFile(cut); _ = try d.load("train") }()) { XCTAssertTrue("\($0)".contains("cut.h5"), "\($0)") }
    }

    /// The committed embedded dataset is present, balanced, and provenance-stamped.
    func testEmbeddedFashionMNIST() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("datasets/fashion-mnist-2k.h5").path
        let ds = try DatasetFile(path)
        let train = try ds.load("train")
        XCTAssertEqual(train.shape, [2000, 1, 32, 32])
        XCTAssertEqual(train.classCounts, [Int](repeating: 200, count: 10))
        XCTAssertEqual(try ds.load("test").count, 500)
        XCTAssertEqual(ds.attributes["source"], .string("fashion-mnist"))
        XCTAssertLessThan(try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int, 2 << 20)
    }
}
