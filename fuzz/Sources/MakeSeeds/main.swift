// Writes the seed corpora under fuzz/corpus/<target>/ with the project's own writers (and,
// for formats they do not produce, small hand-built files), plus truncated and edge variants.
// Run from the repository root:
//   swift run -c release --package-path fuzz --scratch-path .build-fuzz-seeds MakeSeeds fuzz/corpus
// The committed corpora came from this program; rerunning it rewrites them (same bytes, except
// HDF5 files, which are not bit-reproducible across HDF5 versions).
import Data
import Foundation
import HDF5
import Tensor

let out = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "fuzz/corpus"
let fm = FileManager.default
let tmp = NSTemporaryDirectory() + "eidetic-seeds-\(getpid())"
try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
defer { try? fm.removeItem(atPath: tmp) }

func save(_ target: String, _ name: String, _ bytes: [UInt8]) {
    let dir = "\(out)/\(target)"
    try! fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try! Data(bytes).write(to: URL(fileURLWithPath: "\(dir)/\(name)"))
}
func bytes(of path: String) -> [UInt8] { [UInt8](try! Data(contentsOf: URL(fileURLWithPath: path))) }
func gzip(_ b: [UInt8]) -> [UInt8] {
    let p = tmp + "/g.gz"
    try! Archive.writeGzip(b, to: p)
    return bytes(of: p)
}
/// Truncations and a flipped byte: the edge variants every format gets.
func variants(_ target: String, _ name: String, _ b: [UInt8]) {
    save(target, name, b)
    save(target, "\(name).cut-half", Array(b.prefix(b.count / 2)))
    save(target, "\(name).cut-last", Array(b.dropLast()))
    var flipped = b; flipped[b.count * 2 / 3] ^= 0x40
    save(target, "\(name).flip", flipped)
}

// MARK: CIFAR-10 archives (batches of one record each: the harness reads recordsPerBatch 1)

func record(_ label: UInt8, _ seed: Int) -> [UInt8] { [label] + (0..<3072).map { UInt8(($0 / 64 + seed * 7) % 256) } }
func tar(_ files: [(String, [UInt8])], ustarPrefix: String? = nil) -> [UInt8] {
    var out: [UInt8] = []
    for (name, data) in files {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, _ at: Int) { for (i, b) in s.utf8.enumerated() { h[at + i] = b } }
        put(name, 0); put("0000644", 100); put("0000000", 108); put("0000000", 116)
        put(String(format: "%011o", data.count), 124); put("00000000000", 136)
        put("        ", 148); h[156] = UInt8(ascii: "0"); put("ustar", 257); put("00", 263)
        if let p = ustarPrefix { put(p, 345) }
        let sum = h.reduce(0) { $0 + Int($1) }
        put(String(format: "%06o", sum), 148); h[154] = 0; h[155] = UInt8(ascii: " ")
        out += h + data + [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
    }
    return out + [UInt8](repeating: 0, count: 1024)
}
var cifar: [(String, [UInt8])] = (1...5).map { ("cifar-10-batches-bin/data_batch_\($0).bin", record(UInt8($0), $0)) }
cifar.append(("cifar-10-batches-bin/test_batch.bin", record(9, 6)))
cifar.append(("cifar-10-batches-bin/batches.meta.txt", Array("airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n".utf8)))
let cifarTar = tar(cifar)
variants("FuzzCIFAR", "valid.tar.gz", gzip(cifarTar))
save("FuzzCIFAR", "valid-plain.tar", cifarTar)
save("FuzzCIFAR", "prefix-field.tar.gz", gzip(tar(cifar.map { (($0.0 as NSString).lastPathComponent, $0.1) }, ustarPrefix: "cifar-10-batches-bin")))
save("FuzzCIFAR", "no-meta.tar.gz", gzip(tar(Array(cifar.dropLast()))))
var badLabel = cifar; badLabel[5].1[0] = 10
save("FuzzCIFAR", "label-10.tar.gz", gzip(tar(badLabel)))
var shortRecord = cifar; shortRecord[2].1.removeLast()
save("FuzzCIFAR", "short-record.tar.gz", gzip(tar(shortRecord)))
save("FuzzCIFAR", "missing-test.tar.gz", gzip(tar(Array(cifar.prefix(5)))))
save("FuzzCIFAR", "empty-tar.tar", [UInt8](repeating: 0, count: 1024))

// MARK: IDX (first byte: harness mode; see FuzzIDX.swift)

func idx(_ shape: [Int], _ data: [UInt8]) -> [UInt8] {
    var b: [UInt8] = [0, 0, 8, UInt8(shape.count)]
    for s in shape { b += [UInt8(s >> 24 & 255), UInt8(s >> 16 & 255), UInt8(s >> 8 & 255), UInt8(s & 255)] }
    return b + data
}
let images = idx([3, 4, 5], (0..<60).map { UInt8($0 * 4) })
let labels = idx([3], [0, 9, 4])
variants("FuzzIDX", "read-images", [0] + images)
save("FuzzIDX", "read-images-gz", [0] + gzip(images))
save("FuzzIDX", "read-labels", [0] + labels)
save("FuzzIDX", "read-4d", [0] + idx([2, 1, 2, 2], [UInt8](repeating: 7, count: 8)))
save("FuzzIDX", "read-empty-dim", [0] + idx([0, 28, 28], []))
save("FuzzIDX", "read-huge-claim", [0] + idx([0x7fff_ffff, 28, 28], [1, 2, 3]))
save("FuzzIDX", "read-int-type", [0, 0, 0, 0x0c, 1, 0, 0, 0, 1, 0, 0, 0, 5])
let sep = Array("%%".utf8)
variants("FuzzIDX", "load", [1] + images + sep + labels)
save("FuzzIDX", "load-gz", [1] + gzip(images) + sep + gzip(labels))
save("FuzzIDX", "load-pad32", [3] + images + sep + labels)
save("FuzzIDX", "load-rgb", [5] + images + sep + labels)
save("FuzzIDX", "load-pad32-rgb", [7] + images + sep + labels)
save("FuzzIDX", "load-bad-label", [1] + images + sep + idx([3], [0, 10, 4]))
save("FuzzIDX", "load-count-mismatch", [1] + images + sep + idx([2], [0, 1]))

// MARK: PNG

func png(_ img: PNG.Image) -> [UInt8] {
    let p = tmp + "/i.png"
    try! PNG.write(img, to: p)
    return bytes(of: p)
}
func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 255), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }
/// CRC-32 (PNG chunks) and a zlib stream of stored (uncompressed) deflate blocks, so the
/// hand-built PNGs need no zlib binding.
func crc32(_ bytes: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xffff_ffff
    for b in bytes {
        c ^= UInt32(b)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xedb8_8320 ^ (c >> 1) : c >> 1 }
    }
    return ~c
}
func zlibStored(_ data: [UInt8]) -> [UInt8] {
    var out: [UInt8] = [0x78, 0x01]
    var i = 0
    repeat {
        let n = min(65_535, data.count - i), last: UInt8 = i + n == data.count ? 1 : 0
        out += [last, UInt8(n & 255), UInt8(n >> 8), UInt8(~n & 255), UInt8((~n >> 8) & 255)] + data[i..<(i + n)]
        i += n
    } while i < data.count
    var a: UInt32 = 1, b: UInt32 = 0
    for x in data { a = (a + UInt32(x)) % 65_521; b = (b + a) % 65_521 }
    return out + be32(Int(b << 16 | a))
}
func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
    let td = Array(type.utf8) + data
    return be32(data.count) + td + be32(Int(crc32(td)))
}
/// A PNG from raw (already filtered) scanlines, for formats `PNG.write` does not produce.
func rawPNG(width: Int, height: Int, bitDepth: UInt8, colorType: UInt8, interlace: UInt8 = 0, raw: [UInt8],
            extra: [(String, [UInt8])] = []) -> [UInt8] {
    var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    out += chunk("IHDR", be32(width) + be32(height) + [bitDepth, colorType, 0, 0, interlace])
    for (t, d) in extra { out += chunk(t, d) }
    return out + chunk("IDAT", zlibStored(raw)) + chunk("IEND", [])
}
func rows(_ h: Int, _ rowBytes: Int) -> [UInt8] {
    var out: [UInt8] = []
    for r in 0..<h {
        out.append(UInt8(r % 5))   // the row's filter type (0–4)
        for i in 0..<rowBytes { out.append(UInt8((i * 13 + r) % 256)) }
    }
    return out
}
variants("FuzzPNG", "gray.png", png(PNG.Image(width: 5, height: 3, channels: 1, pixels: (0..<15).map { UInt8($0 * 17) })))
variants("FuzzPNG", "rgb.png", png(PNG.Image(width: 4, height: 2, channels: 3, pixels: (0..<24).map { UInt8($0 * 10) })))
save("FuzzPNG", "rgba.png", png(PNG.Image(width: 2, height: 2, channels: 4, pixels: [255, 0, 0, 255, 0, 255, 0, 128, 0, 0, 255, 0, 9, 9, 9, 9])))
save("FuzzPNG", "gray-1bit.png", rawPNG(width: 9, height: 3, bitDepth: 1, colorType: 0, raw: rows(3, 2)))
save("FuzzPNG", "gray-16bit.png", rawPNG(width: 2, height: 2, bitDepth: 16, colorType: 0, raw: rows(2, 4)))
save("FuzzPNG", "palette.png", rawPNG(width: 3, height: 2, bitDepth: 8, colorType: 3, raw: [0, 0, 1, 0, 0, 1, 1, 0], extra: [("PLTE", [0, 0, 0, 9, 9, 9])]))
save("FuzzPNG", "gray-alpha.png", rawPNG(width: 2, height: 2, bitDepth: 8, colorType: 4, raw: rows(2, 4)))
save("FuzzPNG", "rgb-trns.png", rawPNG(width: 2, height: 2, bitDepth: 8, colorType: 2, raw: rows(2, 6), extra: [("tRNS", [0, 1, 0, 2, 0, 3])]))
save("FuzzPNG", "rgb-gamma.png", rawPNG(width: 2, height: 2, bitDepth: 8, colorType: 2, raw: rows(2, 6), extra: [("gAMA", be32(100_000))]))
// Adam7-interlaced 8×8 gray: passes of 1,1,2,4,4,8,8 rows (widths 1,1,2,2,4,4,8)
let adam7: [UInt8] = [(1, 1), (1, 1), (1, 2), (2, 2), (2, 4), (4, 4), (4, 8)].flatMap { h, w in rows(h, w) }
save("FuzzPNG", "interlaced.png", rawPNG(width: 8, height: 8, bitDepth: 8, colorType: 0, interlace: 1, raw: adam7))
save("FuzzPNG", "huge-claim.png", rawPNG(width: 100_000, height: 100_000, bitDepth: 8, colorType: 2, raw: rows(2, 6)))

// MARK: HDF5 dataset files

let small = ImageSet(images: (0..<(3 * 1 * 2 * 2)).map { UInt8($0 * 20) }, labels: [0, 1, 1], channels: 1, height: 2, width: 2, classNames: ["a", "b"])
let rgb = ImageSet(images: (0..<(2 * 3 * 2 * 2)).map { UInt8($0 * 9) }, labels: [1, 0], channels: 3, height: 2, width: 2, classNames: ["x", "y"])
func dataset(_ splits: [(String, ImageSet)], attributes: [String: AttributeValue] = ["source": .string("fuzz seed")]) -> [UInt8] {
    let p = tmp + "/d.h5"
    try! DatasetFile.write(splits, attributes: attributes, to: p)
    return bytes(of: p)
}
variants("FuzzDataset", "train-test.h5", dataset([("train", small), ("test", small.subset([2]))]))
save("FuzzDataset", "rgb.h5", dataset([("train", rgb)], attributes: ["source": .string("x"), "count": .int(2), "scale": .double(0.5)]))
save("FuzzDataset", "empty-split.h5", dataset([("train", small.subset([]))]))

// MARK: tensor files (checkpoints)

func tensorFile(_ tree: TensorTree, _ attributes: [String: AttributeValue]) -> [UInt8] {
    let p = tmp + "/t.h5"
    try! TensorFile.save(tree, attributes: attributes, to: p)
    return bytes(of: p)
}
var tree = TensorTree()
tree["w"] = Tensor((0..<6).map { Float($0) / 3 }, shape: [2, 3])
tree["b"] = Tensor([0.5, -1], shape: [2], dtype: .float64)
tree["step"] = Tensor([Float(7)], shape: [])
variants("FuzzTensorFile", "checkpoint.h5", tensorFile(tree, ["step": .int(7), "lr": .double(1e-3), "config": .string("{\"a\":1}")]))
var one = TensorTree(); one["x"] = Tensor([Float(1), 2, 3, 4], shape: [1, 1, 2, 2])
save("FuzzTensorFile", "one.h5", tensorFile(one, [:]))
save("FuzzTensorFile", "empty.h5", tensorFile(TensorTree(), ["note": .string("no tensors")]))

// MARK: plans (every kind; one invalid hash)

let ref = DatasetReference(file: "datasets/fashion-mnist-2k.h5", split: "train", contentSHA256: DatasetReference.contentHash(small))
func plan<P: Plan>(_ p: P) -> [UInt8] {
    let path = tmp + "/p.json"
    try! PlanFile.write(p, to: path)
    return bytes(of: path)
}
let subset = try SubsetPlan(dataset: ref, labels: [0, 1, 1, 0, 1], classes: 2, size: 2, seed: 1)
variants("FuzzPlan", "subset.json", plan(subset))
save("FuzzPlan", "membership.json", plan(try MembershipPlan(dataset: ref, pool: [0, 2, 4], models: 2, seed: 3)))
save("FuzzPlan", "duplication.json", plan(try DuplicationPlan(dataset: ref, base: [0, 1, 2, 3], canariesPerCopies: [2: 1, 4: 1], seed: 5)))
save("FuzzPlan", "dedup.json", plan(DeduplicationPlan(dataset: ref, images: small, candidates: [0, 1, 2], threshold: 0.1)))
save("FuzzPlan", "outliers.json", plan(OutlierScores(dataset: ref, images: small, indices: [0, 1, 2], neighbors: 1)))
var edited = String(decoding: plan(subset), as: UTF8.self)
edited = edited.replacingOccurrences(of: "\"seed\":1", with: "\"seed\":2")
save("FuzzPlan", "edited-hash-mismatch.json", Array(edited.utf8))
save("FuzzPlan", "not-a-plan.json", Array("{\"kind\": 5}".utf8))

// MARK: TOML configs (the experiments, plus every syntax form and `--set` overrides after a NUL)

for f in ((try? fm.contentsOfDirectory(atPath: "experiments")) ?? []).sorted() where f.hasSuffix(".toml") {
    save("FuzzTOML", f, bytes(of: "experiments/\(f)"))
}
let syntax = #"""
# every form the reader accepts
[run]
name = "syntax"          # a comment
"seed" = 1_000
out = 'results/literal'

[data]
file = "datasets/a \\ \"b\"\t.h5"
subset = 16
flip = false

[model]
preset = "unet-s"
channel_multipliers = [1, 2, 2, 2]
attention_resolutions = [16]
dropout = 0.1

[diffusion]
schedule = "cosine"
timesteps = 100
cosine_offset = 8e-3

[train]
batch_size = 8
images = 1_024
lr = 2E-4
grad_clip = +1.0
ema_decay = 0.999

[sample]
sampler = "ddpm"
guidance = 1
ema = true
"""#
save("FuzzTOML", "syntax.toml", Array(syntax.utf8))
save("FuzzTOML", "dotted.toml", Array("run.name = \"d\"\ntrain.batch_size = 4\ntrain.images = 40\nmodel.classes = 10\n".utf8))
save("FuzzTOML", "overrides.toml", Array("[train]\nlr = 1e-3\n".utf8) + [0] + Array("train.lr=2e-4\nsample.sampler=\"ddpm\"\nmodel.channel_multipliers=[1, 2]\nrun.seed=3".utf8))
save("FuzzTOML", "errors.toml", Array("[train]\nlr = \"fast\"\nunknown = 1\n[train]\n".utf8))
save("FuzzTOML", "empty.toml", [])
save("FuzzTOML", "specials.toml", Array("[diffusion]\nbeta_start = nan\nbeta_end = inf\n[train]\nimages = 9223372036854775807\nbatch_size = 1\n".utf8))

print("seeds written to \(out)")
