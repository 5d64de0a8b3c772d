import ArgumentParser
import Data
import Foundation
import HDF5

/// `eidetic data …`: import datasets into HDF5, inspect them, draw grids, make plans.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Datasets: import, info, grid, plan.",
        subcommands: [Import.self, Info.self, Grid.self, PlanCommand.self])

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Import a dataset into an Eidetic HDF5 file.")
        enum Source: String, ExpressibleByArgument, CaseIterable { case cifar10, fashionMNIST = "fashion-mnist", folder }
        @Argument(help: "cifar10 | fashion-mnist | folder") var source: Source
        @Option(help: "cifar-10-binary.tar.gz or cifar-10-batches-bin/; the IDX folder; or a folder of class subfolders of PNGs.")
        var from: String?
        @Option(help: "Output .h5 file.") var out: String
        @Option(help: "Fashion-MNIST: zero-pad to this square size (e.g. 32).") var pad: Int?
        @Option(help: "Fashion-MNIST: replicate gray to this many channels (1 or 3).") var channels: Int = 1
        @Option(help: "Keep only a class-balanced subset of this many training images.") var subset: Int?
        @Option(help: "With --subset: also keep this many class-balanced test images (0 drops the test split).") var testSubset: Int?
        @Option(help: "Seed for --subset.") var seed: UInt64 = 0
        @Option(help: "Shrink every image by this integer factor (box average of factor × factor pixels; 2 makes CIFAR-10 16×16, for fast sweeps). Recorded in the file's attributes.")
        var downsample: Int = 1
        @Flag(help: "Replace an existing --out file.") var force = false

        func validate() throws {
            if downsample < 1 || downsample > 16 { throw ValidationError("--downsample must be in 1…16, got \(downsample)") }
            try Check.atLeast(subset, 1, "--subset")
            try Check.atLeast(testSubset, 0, "--test-subset")
            if let p = pad, p < 1 || p > 1024 { throw ValidationError("--pad must be in 1…1024, got \(p)") }
            guard channels == 1 || channels == 3 else { throw ValidationError("--channels must be 1 or 3, got \(channels)") }
            if source != .fashionMNIST && (pad != nil || channels != 1) { throw ValidationError("--pad and --channels apply to fashion-mnist only") }
            if testSubset != nil && subset == nil { throw ValidationError("--test-subset needs --subset") }
        }

        func run() throws {
            try OutputGuard.mayWrite(out, force: force, what: "dataset file")
            let t0 = Date()
            var splits: [(String, ImageSet)]
            let path: String
            switch source {
            case .cifar10:
                guard let f = from else { throw ValidationError("--from PATH (cifar-10-binary.tar.gz or cifar-10-batches-bin/) is required") }
                path = f
                let (train, test) = try CIFAR10.load(f)
                splits = [("train", train), ("test", test)]
            case .fashionMNIST:
                path = from ?? IDX.debianFolder
                if from == nil && !FileManager.default.fileExists(atPath: path) {
                    throw ValidationError("\(path): no Fashion-MNIST files; install Debian's package with `apt-get install dataset-fashion-mnist`, or pass --from FOLDER holding the four IDX files")
                }
                func file(_ stem: String) -> String {
                    let gz = "\(path)/\(stem).gz"
                    return FileManager.default.fileExists(atPath: gz) ? gz : "\(path)/\(stem)"
                }
                let train = try IDX.load(images: file("train-images-idx3-ubyte"), labels: file("train-labels-idx1-ubyte"), padTo: pad, channels: channels)
                let test = try IDX.load(images: file("t10k-images-idx3-ubyte"), labels: file("t10k-labels-idx1-ubyte"), padTo: pad, channels: channels)
                splits = [("train", train), ("test", test)]
            case .folder:
                guard let f = from else { throw ValidationError("--from FOLDER is required") }
                path = f
                splits = [("train", try ImageSet.loadFolder(f))]
            }
            if let n = subset {
                func balanced(_ set: ImageSet, _ n: Int, _ purpose: UInt64) throws -> ImageSet {
                    let ref = DatasetReference(file: path, split: "", contentSHA256: "")
                    return set.subset(try SubsetPlan(dataset: ref, labels: set.labels, classes: set.classNames.count, size: n, seed: seed &+ purpose).indices)
                }
                var kept: [(String, ImageSet)] = [("train", try balanced(splits[0].1, n, 0))]
                if let t = testSubset, t > 0, splits.count > 1 { kept.append(("test", try balanced(splits[1].1, t, 1))) }
                splits = kept
            }
            if downsample > 1 {
                for (name, set) in splits where set.height % downsample != 0 || set.width % downsample != 0 {
                    throw ValidationError("--downsample: the \(name) images are \(set.height)×\(set.width), not divisible by \(downsample)")
                }
                splits = splits.map { ($0.0, $0.1.downsampled(by: downsample)) }
            }
            var isDir: ObjCBool = false
            FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
            let sha = isDir.boolValue ? try SHA256.hex(directory: path) : try SHA256.hex(file: path)
            let command = (["eidetic"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
            try DatasetFile.write(splits, attributes: [
                "source": .string(source.rawValue), "source_path": .string(path), "source_sha256": .string(sha),
                "import_command": .string(command),
            ].merging(downsample > 1 ? [
                "downsample": .string("\(downsample)× box average: every pixel the rounded mean of a \(downsample)×\(downsample) block of the source (not the source's resolution)"),
            ] : [:]) { a, _ in a }, to: out)
            for (name, s) in splits { print("\(name): \(s.count) images \(s.channels)×\(s.height)×\(s.width)") }
            print(String(format: "wrote %@ in %.1f s", out, Date().timeIntervalSince(t0)))
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Counts per class and provenance of a dataset file.")
        @Argument(help: "Dataset .h5 file.") var file: String

        func run() throws {
            let ds = try DatasetFile(file)
            print("\(file)")
            for (k, v) in ds.attributes.sorted(by: { $0.key < $1.key }) { print("  \(k): \(v)") }
            for split in ds.splits {
                let set = try ds.load(split)
                print("\n\(split): \(set.count) images, \(set.channels)×\(set.height)×\(set.width)")
                for (c, n) in set.classCounts.enumerated() {
                    let name = c < ds.classNames.count ? ds.classNames[c] : "?"
                    print("  " + String(format: "%2d ", c) + name.padding(toLength: 16, withPad: " ", startingAt: 0) + String(format: "%6d", n))
                }
            }
        }
    }

    struct Grid: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a PNG grid of images from a dataset file.")
        @Argument(help: "Dataset .h5 file.") var file: String
        @Option(help: "Split.") var split: String = "train"
        @Option(help: "Comma-separated indices (default: the first --count).") var indices: String?
        @Option(help: "How many images when no --indices.") var count: Int = 64
        @Option(help: "Images per row.") var columns: Int = 8
        @Option(help: "Output .png.") var out: String
        @Flag(help: "Replace an existing --out file.") var force = false

        func validate() throws {
            try Check.atLeast(count, 1, "--count")
            try Check.atLeast(columns, 1, "--columns")
        }

        func run() throws {
            try OutputGuard.mayWrite(out, force: force)
            let ds = try DatasetFile(file)
            guard ds.splits.contains(split) else { throw ValidationError("--split: \(file) has no split '\(split)' (it has \(ds.splits.joined(separator: ", ")))") }
            let n = try ds.shape(split)[0]
            guard n > 0 else { throw ValidationError("\(file) \(split): no images") }
            let idx = try indices.map { s in try s.split(separator: ",").map { t -> Int in
                guard let i = Int(t.trimmingCharacters(in: .whitespaces)), i >= 0, i < n else { throw ValidationError("--indices: '\(t)' is not an index in 0..<\(n)") }
                return i
            } } ?? Array(0..<min(count, n))
            let set = try ds.read(split, indices: idx)
            try PNG.write(PNG.grid((0..<set.count).map { set.image($0) }, channels: set.channels, height: set.height, width: set.width, columns: columns), to: out)
            print("wrote \(out) (\(set.count) images)")
        }
    }
}
