import CPNG
import Foundation
import HDF5

/// PNG files through libpng's simplified API, and image grids.
public enum PNG {
    /// An 8-bit image, interleaved rows (HWC), 1 (gray), 3 (RGB) or 4 (RGBA) channels.
    public struct Image: Equatable {
        public var width: Int, height: Int, channels: Int
        public var pixels: [UInt8]
        public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
            precondition([1, 3, 4].contains(channels) && pixels.count == width * height * channels,
                         "PNG.Image: \(pixels.count) bytes for \(width)×\(height)×\(channels)")
            self.width = width; self.height = height; self.channels = channels; self.pixels = pixels
        }
    }

    private static func format(channels: Int) -> UInt32 {
        switch channels { case 1: return UInt32(PNG_FORMAT_GRAY); case 3: return UInt32(PNG_FORMAT_RGB); default: return UInt32(PNG_FORMAT_RGB) | UInt32(PNG_FORMAT_FLAG_ALPHA) }
    }

    /// Reads an 8-bit gray, RGB or RGBA PNG; anything else (16-bit, palette, gray+alpha,
    /// not a PNG) is an error naming the file.
    public static func read(_ path: String) throws -> Image {
        try checkChunkLengths(path)
        var img = png_image()
        img.version = UInt32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_file(&img, path) != 0 else {
            let msg = withUnsafeBytes(of: img.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            png_image_free(&img)
            if !FileManager.default.fileExists(atPath: path) { throw DataError.unreadable(file: path, reason: "no such file") }
            throw DataError.badFormat(file: path, detail: "not a readable PNG (\(msg))")
        }
        defer { png_image_free(&img) }
        let f = img.format
        let linear = f & UInt32(PNG_FORMAT_FLAG_LINEAR) != 0, colormap = f & UInt32(PNG_FORMAT_FLAG_COLORMAP) != 0
        let color = f & UInt32(PNG_FORMAT_FLAG_COLOR) != 0, alpha = f & UInt32(PNG_FORMAT_FLAG_ALPHA) != 0
        guard !linear else { throw DataError.badFormat(file: path, detail: "16-bit PNG is not supported (8-bit gray, RGB or RGBA only)") }
        guard !colormap else { throw DataError.badFormat(file: path, detail: "palette PNG is not supported (8-bit gray, RGB or RGBA only)") }
        guard color || !alpha else { throw DataError.badFormat(file: path, detail: "gray+alpha PNG is not supported (8-bit gray, RGB or RGBA only)") }
        let channels = color ? (alpha ? 4 : 3) : 1
        img.format = format(channels: channels)
        let (w, h) = (Int(img.width), Int(img.height))
        // Deflate expands at most 1032:1 and 1-bit gray becomes 8 bits, so a file of n bytes
        // holds at most 8 × 1032 × n pixel bytes: a header claiming more is refused before
        // the buffer is allocated (a few bytes must not ask for gigabytes).
        let fileSize = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        guard w * h * channels <= 8 * 1032 * fileSize, let stride = Int32(exactly: w * channels) else {
            throw DataError.badFormat(file: path, detail: "PNG header claims \(w)×\(h) pixels, more than a \(fileSize)-byte file can hold")
        }
        var pixels = [UInt8](repeating: 0, count: w * h * channels)
        let ok = pixels.withUnsafeMutableBytes { png_image_finish_read(&img, nil, $0.baseAddress, stride, nil) }
        guard ok != 0 else { throw DataError.badFormat(file: path, detail: "corrupt PNG data") }
        return Image(width: w, height: h, channels: channels, pixels: pixels)
    }

    /// Every chunk's declared length must fit in the bytes that follow it: libpng allocates a
    /// chunk's buffer from that length before reading it (fuzzing: a 41-byte file whose sPLT
    /// chunk declared 805 MB got 805 MB). Files that are not PNG are left to libpng to refuse.
    static func checkChunkLengths(_ path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { return }
        let b = [UInt8](data)
        guard b.count >= 8, b.prefix(8).elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) else { return }
        var o = 8
        while o + 8 <= b.count {
            let length = Int(b[o]) << 24 | Int(b[o + 1]) << 16 | Int(b[o + 2]) << 8 | Int(b[o + 3])
            let type = String(decoding: b[(o + 4)..<(o + 8)].map { (0x20..<0x7f).contains($0) ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
            guard length <= b.count - o - 12 else {
                throw DataError.truncated(file: path, offset: b.count, detail: "PNG chunk \(type) at byte \(o) declares \(length) bytes, more than the file holds")
            }
            if type == "IEND" { return }
            o += 12 + length
        }
    }

    /// Writes atomically (temporary file + rename).
    public static func write(_ image: Image, to path: String) throws {
        try writeAtomically(to: path) { tmp in
            var img = png_image()
            img.version = UInt32(PNG_IMAGE_VERSION)
            img.width = UInt32(image.width); img.height = UInt32(image.height)
            img.format = format(channels: image.channels)
            let ok = image.pixels.withUnsafeBytes {
                png_image_write_to_file(&img, tmp, 0, $0.baseAddress, Int32(image.width * image.channels), nil)
            }
            png_image_free(&img)
            guard ok != 0 else { throw DataError.unreadable(file: path, reason: "PNG write failed") }
        }
    }

    /// Converts planar C×H×W bytes (C = 1 or 3) to an interleaved image.
    public static func image(planar bytes: ArraySlice<UInt8>, channels c: Int, height h: Int, width w: Int) -> Image {
        var px = [UInt8](repeating: 0, count: h * w * c)
        let base = bytes.startIndex
        for ch in 0..<c { for i in 0..<(h * w) { px[i * c + ch] = bytes[base + ch * h * w + i] } }
        return Image(width: w, height: h, channels: c, pixels: px)
    }

    /// Tiles images (planar C×H×W, C = 1 or 3) into an RGB grid with `columns` per row and
    /// a `gap`-pixel border of `background`.
    public static func grid(_ images: [ArraySlice<UInt8>], channels c: Int, height h: Int, width w: Int,
                            columns: Int, gap: Int = 2, background: UInt8 = 255) -> Image {
        precondition(c == 1 || c == 3, "grid: images must have 1 or 3 channels, got \(c)")
        let cols = max(1, min(columns, max(images.count, 1)))
        let rows = max(1, (images.count + cols - 1) / cols)
        let gw = cols * (w + gap) + gap, gh = rows * (h + gap) + gap
        var px = [UInt8](repeating: background, count: gw * gh * 3)
        for (k, img) in images.enumerated() {
            let (r, col) = (k / cols, k % cols)
            let (oy, ox) = (gap + r * (h + gap), gap + col * (w + gap))
            let base = img.startIndex
            for y in 0..<h { for x in 0..<w { for ch in 0..<3 {
                px[((oy + y) * gw + ox + x) * 3 + ch] = img[base + (c == 3 ? ch : 0) * h * w + y * w + x]
            } } }
        }
        return Image(width: gw, height: gh, channels: 3, pixels: px)
    }

    /// Pairs side by side — (a₀ b₀) (a₁ b₁) … — `pairsPerRow` pairs per row, with a wider
    /// gap between pairs: for "generated image beside its nearest training image".
    public static func pairsGrid(_ pairs: [(ArraySlice<UInt8>, ArraySlice<UInt8>)], channels c: Int, height h: Int, width w: Int,
                                 pairsPerRow: Int = 8) -> Image {
        let gap = 2, pairGap = 8
        let per = max(1, min(pairsPerRow, max(pairs.count, 1)))
        let rows = max(1, (pairs.count + per - 1) / per)
        let pw = 2 * w + gap
        let gw = per * (pw + pairGap) - pairGap + 2 * gap, gh = rows * (h + gap) + gap
        var px = [UInt8](repeating: 255, count: gw * gh * 3)
        for (k, pair) in pairs.enumerated() {
            let (r, col) = (k / per, k % per)
            for (j, img) in [pair.0, pair.1].enumerated() {
                let (oy, ox) = (gap + r * (h + gap), gap + col * (pw + pairGap) + j * (w + gap))
                let base = img.startIndex
                for y in 0..<h { for x in 0..<w { for ch in 0..<3 {
                    px[((oy + y) * gw + ox + x) * 3 + ch] = img[base + (c == 3 ? ch : 0) * h * w + y * w + x]
                } } }
            }
        }
        return Image(width: gw, height: gh, channels: 3, pixels: px)
    }
}

extension ImageSet {
    /// A folder with one subfolder per class (sorted by name = label order) of PNG files.
    /// All images must share a size; gray images are replicated to RGB when any is colour;
    /// RGBA is composited onto black.
    public static func loadFolder(_ path: String) throws -> ImageSet {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else {
            throw DataError.unreadable(file: path, reason: "not a folder")
        }
        let classes = try fm.contentsOfDirectory(atPath: path).filter {
            var d: ObjCBool = false
            return !$0.hasPrefix(".") && fm.fileExists(atPath: path + "/" + $0, isDirectory: &d) && d.boolValue
        }.sorted()
        guard !classes.isEmpty else { throw DataError.badFormat(file: path, detail: "no class subfolders") }
        var decoded: [(PNG.Image, Int, String)] = []
        for (label, cls) in classes.enumerated() {
            let dir = path + "/" + cls
            for f in try fm.contentsOfDirectory(atPath: dir).filter({ $0.lowercased().hasSuffix(".png") }).sorted() {
                decoded.append((try PNG.read(dir + "/" + f), label, dir + "/" + f))
            }
        }
        guard let first = decoded.first else { throw DataError.badFormat(file: path, detail: "no .png files in the class subfolders") }
        let channels = decoded.contains { $0.0.channels > 1 } ? 3 : 1
        let (h, w) = (first.0.height, first.0.width)
        var images: [UInt8] = []
        images.reserveCapacity(decoded.count * channels * h * w)
        for (img, _, file) in decoded {
            guard img.height == h && img.width == w else {
                throw DataError.badFormat(file: file, detail: "size \(img.width)×\(img.height) differs from \(w)×\(h) of \(first.2)")
            }
            for ch in 0..<channels {
                let src = img.channels == 1 ? 0 : ch
                for i in 0..<(h * w) {
                    var v = Int(img.pixels[i * img.channels + src])
                    if img.channels == 4 { v = v * Int(img.pixels[i * 4 + 3]) / 255 }
                    images.append(UInt8(v))
                }
            }
        }
        return ImageSet(images: images, labels: decoded.map { $0.1 }, channels: channels, height: h, width: w, classNames: classes)
    }
}
