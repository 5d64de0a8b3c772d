import ArgumentParser
import Data
import Evaluation
import Foundation
import HDF5
import Tensor
import Training

extension Bench {
    /// Extraction at scale, in bounded memory: writes a synthetic sample file of `--samples`
    /// images block by block (uniform noise, plus `--planted` near-copies of training images
    /// at known positions), then runs the evaluator's streamed extraction against
    /// `--training` synthetic training images and the clique search on the first
    /// `CliqueFilter.poolLimit` generations. It checks the known answer (every planted copy
    /// extracted from its source, nothing else) and prints the time and the extraction
    /// phase's peak resident memory beside the references' own size.
    struct ExtractionBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "extraction",
            abstract: "Streamed extraction of a synthetic 2^20-image sample file against 50,000 training images: time and peak memory.")
        @Option(help: "Generations in the sample file.") var samples = 1 << 20
        @Option(help: "Training images (the references).") var training = 50_000
        @Option(help: "Generations that are near-copies (±2 per value) of training images.") var planted = 64
        @Option(help: "Image side (square images).") var size = 32
        @Option(help: "Channels.") var channels = 3
        @Option(help: "Sample rows read per block.") var block = Extraction.blockRows
        @Option(help: "Seed of the synthetic images.") var seed: UInt64 = 1
        @Option(help: "Threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
        @Option(help: "A new folder for the sample file and arrays (default: one under results/bench-extraction/); removed afterwards unless --keep.")
        var dir: String?
        @Flag(help: "Keep the sample file and the arrays.") var keep = false
        @Flag(help: "Skip the clique search.") var noClique = false
        @Flag(help: "Print one JSON object as well.") var json = false

        func validate() throws {
            try Check.atLeast(samples, 1, "--samples")
            try Check.atLeast(training, 2, "--training")
            try Check.atLeast(planted, 0, "--planted")
            guard planted <= samples && planted <= training else { throw ValidationError("--planted \(planted): at most --samples and --training") }
            try Check.atLeast(size, 1, "--size")
            // the int8 kernel's limit (and the references' memory): at most 65,536 values an image
            guard channels * size * size <= 65_536 else { throw ValidationError("--size \(size): \(channels)×\(size)×\(size) images exceed 65,536 values") }
            guard channels == 1 || channels == 3 else { throw ValidationError("--channels must be 1 or 3, got \(channels)") }
            try Check.atLeast(block, 1, "--block")
            try Check.atLeast(threads, 1, "--threads")
        }

        /// Position of planted copy k among the generations, and its source training image.
        func plantedAt(_ k: Int) -> (sample: Int, source: Int) {
            (k * (samples / max(planted, 1)) + (k * 7) % max(samples / max(planted, 1), 1), (k * 7919) % training)
        }

        func run() throws {
            Threads.count = threads
            let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
            let root = dir ?? "results/bench-extraction/\(stamp)"
            // a folder of its own: it is removed afterwards, so never one that exists
            if FileManager.default.fileExists(atPath: root) { throw ValidationError("--dir: \(root) exists; choose a new folder (the bench removes it afterwards unless --keep)") }
            try OutputGuard.checkWritableParent(root)
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            defer { if !keep { try? FileManager.default.removeItem(atPath: root) } }
            let d = channels * size * size
            var rng = SplitMix(seed: seed)
            // the references: synthetic training images, in memory as an evaluation holds them
            var trainPixels = [UInt8](repeating: 0, count: training * d)
            rng.fill(&trainPixels)
            let trainSet = ImageSet(images: trainPixels, labels: [Int](repeating: 0, count: training), channels: channels, height: size, width: size, classNames: ["synthetic"])
            trainPixels = []
            let plantedSamples = Dictionary(uniqueKeysWithValues: (0..<planted).map { plantedAt($0) })
            print("extraction bench: \(samples) generations vs \(training) training images of \(channels)×\(size)×\(size), \(planted) planted copies, blocks of \(block), \(threads) thread(s); files in \(root)")

            // 1. the sample file, written block by block
            let t0 = Date()
            let file = root + "/samples.h5"
            try writeAtomically(to: file) { tmp in
                let w = try SampleFile.Writer(path: tmp, count: samples, channels: channels, height: size, width: size, classNames: ["synthetic"],
                                              attributes: ["sampler": .string("synthetic: uniform noise + planted copies (eidetic bench extraction, seed \(seed))")])
                var buf = [UInt8](repeating: 0, count: min(block, samples) * d)
                for start in stride(from: 0, to: samples, by: block) {
                    let n = min(block, samples - start)
                    if buf.count != n * d { buf = [UInt8](repeating: 0, count: n * d) }
                    rng.fill(&buf)
                    for i in 0..<n {
                        guard let src = plantedSamples[start + i] else { continue }
                        for t in 0..<d { buf[i * d + t] = UInt8(clamping: Int(trainSet.images[src * d + t]) + Int(rng.next() % 5) - 2) }
                    }
                    try w.append(images: buf, labels: [Int](repeating: 0, count: n), seeds: (start..<start + n).map { UInt64($0) })
                }
                try w.close()
            }
            let writeSeconds = Date().timeIntervalSince(t0)
            let writePeak = ProcessMemory.peak
            let fileBytes = ((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? nil) ?? 0

            // 2. the streamed extraction (and the clique search), its peak memory on its own
            ProcessMemory.resetPeak()
            let before = ProcessMemory.current
            let t1 = Date()
            let ds = try DatasetFile(file)
            let arrays = try HDF5File.create(root + "/extraction.h5")
            let result = try Extraction.streamed(samples: ds, training: trainSet, datasetIndices: Array(0..<training), arrays: arrays, blockRows: block) { done, total in
                if isatty(STDOUT_FILENO) != 0 { print("\r  \(done)/\(total)", terminator: ""); fflush(stdout) }
            }
            try arrays.close()
            if isatty(STDOUT_FILENO) != 0 { print("") }
            let searchSeconds = Date().timeIntervalSince(t1)
            var cliqueSeconds = 0.0, flagged = 0
            if !noClique {
                let t2 = Date()
                flagged = try CliqueFilter.find(count: samples, groups: nil) { try ds.read("samples", indices: $0) }.cliques.count
                cliqueSeconds = Date().timeIntervalSince(t2)
            }
            let peak = ProcessMemory.peak
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            let processPeak = Int(usage.ru_maxrss) * 1024   // kB on Linux; never reset
            // the references as an evaluation holds them: the images and the packed int8 copy
            let referenceBytes = 2 * training * d

            // the known answer
            let extracted = result.samples.indices.filter { result.extractedByRelative(result.samples[$0]) }
            let expected = plantedSamples.keys.sorted()
            let sourcesRight = expected.allSatisfy { result.samples[$0].nearest == plantedSamples[$0]! }
            let ok = extracted == expected && sourcesRight && flagged == 0
            let ops = 2.0 * Double(samples) * Double(training) * Double(d)
            let mb = { (b: Int) in String(format: "%.0f MB", Double(b) / 1e6) }
            print(String(format: "sample file: %@ written in %.1f s (peak memory while writing %@)", mb(fileBytes), writeSeconds, mb(writePeak)))
            print(String(format: "extraction: %.1f s (%.0f generations/s, %.0f GOP/s of int8 dot products)%@", searchSeconds,
                         Double(samples) / searchSeconds, ops / searchSeconds / 1e9,
                         noClique ? "" : String(format: "; clique search on %d generations: %.1f s", min(samples, CliqueFilter.poolLimit), cliqueSeconds)))
            print("peak memory of the extraction phase: \(mb(peak)); references \(mb(referenceBytes)); besides the references \(mb(peak - referenceBytes)) (resident before it: \(mb(before)); the whole process's peak \(mb(processPeak)))")
            print("known answer: \(extracted.count) extracted of \(expected.count) planted" + (ok ? ", each from its source: ok" : ": WRONG (sources right: \(sourcesRight), cliques flagged: \(flagged))"))
            if json {
                let o: [String: Any] = ["samples": samples, "training": training, "dimension": d, "block": block, "threads": threads,
                                        "file_bytes": fileBytes, "write_s": writeSeconds, "extraction_s": searchSeconds, "clique_s": cliqueSeconds,
                                        "peak_rss_bytes": peak, "write_peak_rss_bytes": writePeak, "reference_bytes": referenceBytes, "rss_before_bytes": before,
                                        "extracted": extracted.count, "planted": expected.count, "ok": ok]
                print(String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self))
            }
            if !ok { throw ExitCode(1) }
        }
    }
}

/// SplitMix64: a fast seeded stream for synthetic benchmark bytes.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func fill(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { p in
            var i = 0
            while i + 8 <= p.count { p.storeBytes(of: next(), toByteOffset: i, as: UInt64.self); i += 8 }
            var last = next()
            while i < p.count { p[i] = UInt8(truncatingIfNeeded: last); last >>= 8; i += 1 }
        }
    }
}
