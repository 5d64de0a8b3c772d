import ArgumentParser
import Data
import Diffusion
import Evaluation
import Foundation
import HDF5
import Models
import NN
import Optim
import Tensor
import Training

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Benchmarks.", subcommands: [Ops.self, DataReads.self, UNetBench.self, DCGANBench.self, DPBench.self, KNNBench.self, ExtractionBench.self, LabBench.self])

    /// The U-Net training step (forward, loss, backward, Adam) and a sampling forward pass.
    struct UNetBench: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "unet", abstract: "U-Net training-step and sampling throughput.")
        @Option(help: "Threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
        @Option(help: "Configurations: name-train-bB or name-sample-bB, comma-separated.")
        var only: String = "unet-s-train-b64,unet-s-train-b128,unet-m-train-b64,unet-s-sample-b256"
        @Option(help: "Timed steps per configuration and round (the median is reported).") var steps: Int = 5
        @Option(help: "Rounds per configuration, alternating Eidetic and PyTorch (medians over rounds are reported).") var rounds: Int = 3
        @Option(help: "fp32, or bf16: Eidetic's bf16 convolutions (train.precision = \"bf16\") against PyTorch under CPU autocast bf16.")
        var precision: String = "fp32"
        @Flag(help: "Print a per-op time profile of one training step (EIDETIC_PROFILE_DETAIL=1: per conv shape).") var profile = false
        @Option(help: "Python with PyTorch for the reference (bench/bench_torch.py); \"none\" skips it.")
        var torch: String = "bench/.venv/bin/python"
        @Option(help: ArgumentHelp("Instead of timing: write one float32 forward + backward of --preset (weights, inputs, output, loss, gradients) to this HDF5 file for bench/check_unet_torch.py.", valueName: "file"))
        var exportCheck: String?
        @Option(help: "--export-check: U-Net preset (\(UNetConfig.presetNames.joined(separator: ", "))).") var preset = "unet-s"
        @Option(help: "--export-check: batch size.") var checkBatch = 4
        @Option(help: "--export-check: seed of the weights and inputs.") var checkSeed: UInt64 = 1
        @Flag(help: "--export-check: overwrite an existing file.") var force = false

        func validate() throws {
            try Check.atLeast(threads, 1, "--threads")
            try Check.atLeast(steps, 1, "--steps")
            try Check.atLeast(rounds, 1, "--rounds")
            try Check.atLeast(checkBatch, 1, "--check-batch")
            guard ComputePrecision(rawValue: precision) != nil else { throw ValidationError("--precision must be fp32 or bf16, not \(precision)") }
        }

        func run() throws {
            Threads.count = threads
            let precision = ComputePrecision(rawValue: self.precision)!
            if precision == .bf16 && !ComputePrecision.bf16Native {
                print("(this CPU has no AVX512-BF16: bf16 products are emulated, same bits, slower than fp32)")
            }
            if let path = exportCheck {
                if !force && FileManager.default.fileExists(atPath: path) {
                    throw ValidationError("--export-check: \(path) exists (pass --force to overwrite it)")
                }
                print(try UNetCheckExport.export(preset: preset, to: path, batch: checkBatch, seed: checkSeed))
                return
            }
            let reference = TorchReference(torch)
            var rows: [(String, Double, Double?, Double, (median: Double, low: Double, high: Double)?)] = []
            for name in only.split(separator: ",").map(String.init) {
                let parts = name.split(separator: "-")
                // an optional "-rN" runs the preset on N×N images (unet-xs-train-b32-r16: the lab job's shape)
                let size = parts.count == 5 && parts[4].hasPrefix("r") ? Int(parts[4].dropFirst()) : (parts.count == 4 ? 32 : nil)
                guard parts.count == 4 || parts.count == 5, var config = UNetConfig.preset("\(parts[0])-\(parts[1])"),
                      let batch = Int(parts[3].dropFirst()), batch >= 1, ["train", "sample"].contains(parts[2]), let size, size >= 4, size % 4 == 0 else {
                    throw ValidationError("unknown configuration \(name) (name-train-bB or name-sample-bB, optionally -rN for N×N images; name one of \(UNetConfig.presetNames.joined(separator: ", ")))")
                }
                config.imageSize = size
                // Rounds alternate Eidetic and PyTorch, so that slow drifts of a shared machine
                // fall on both; the row reports medians over rounds.
                var ours: [Double] = [], theirs: [Double] = [], ratios: [Double] = [], gflops = 0.0
                for round in 0..<rounds {
                    let r = try ComputePrecision.$current.withValue(precision) {
                        try UNetStepBenchmark.run(config: config, batch: batch, training: parts[2] == "train", steps: steps,
                                                  profile: profile && round == rounds - 1)
                    }
                    print(r.line(name: name, threads: threads)); fflush(stdout)
                    ours.append(Double(batch) / r.secondsPerStep)
                    gflops = r.flopsPerStep / Double(batch) / 1e9
                    if let t = try reference.imagesPerSecond(name, threads: threads, steps: steps,
                                                             extra: precision == .bf16 ? ["--autocast", "bf16"] : []) {
                        theirs.append(t)
                        ratios.append(ours.last! / t)
                    }
                }
                let oursMedian = median(ours)
                rows.append((name, oursMedian, theirs.isEmpty ? nil : median(theirs), gflops * oursMedian,
                             ratios.isEmpty ? nil : (median(ratios), ratios.min()!, ratios.max()!)))
            }
            printRatioTable(rows, threads: threads, rounds: rounds)
        }
    }

    /// Exact kNN (the evaluator's extraction step) against faiss IndexFlatL2 / PyTorch on the
    /// same data, threads and machine, in the same run, with the neighbours compared.
    struct KNNBench: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "knn", abstract: "Exact k-nearest-neighbour search vs faiss / PyTorch.")
        @Argument(help: "Image file (Eidetic HDF5).") var data = "datasets/cifar10.h5"
        @Option(help: "Query split.") var queries = "test"
        @Option(help: "Reference split.") var references = "train"
        @Option(help: "Number of queries (a prefix of the split).") var numQueries = 10_000
        @Option(help: "Number of references (a prefix of the split).") var numReferences = 50_000
        @Option(help: "Neighbours.") var k = 50
        @Option(help: "Threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
        @Option(help: "Reference backends for bench/knn_reference.py: faiss, torch or both; \"none\" skips.") var backend = "both"
        @Option(help: "Python with faiss-cpu / torch / h5py.") var python = "bench/.venv/bin/python"
        @Option(help: "Queries per GEMM tile.") var queryTile = 1024
        @Option(help: "References per GEMM tile (float32 kernel).") var referenceTile = 1024
        @Option(help: "Kernel: int8-vnni (exact integer dot products; CPUs with AVX-512 VNNI) or float32; default the fastest available.") var kernel: String?

        func run() throws {
            Threads.count = threads
            let file = try DatasetFile(data)
            let nq = min(numQueries, try file.shape(queries)[0]), nr = min(numReferences, try file.shape(references)[0])
            let q = try file.read(queries, indices: Array(0..<nq)), r = try file.read(references, indices: Array(0..<nr))
            let d = q.imageSize
            let t0 = Date()
            let chosen = try kernel.map { name -> ReferenceIndex.Kernel in
                guard let k = ReferenceIndex.Kernel(rawValue: name), k.isAvailable else {
                    throw ValidationError("--kernel \(name): choose from \(ReferenceIndex.Kernel.allCases.filter { $0.isAvailable }.map(\.rawValue).joined(separator: ", ")) on this CPU")
                }
                return k
            }
            let index = ReferenceIndex(r, kernel: chosen)
            index.queryTile = queryTile; index.referenceTile = referenceTile
            let t1 = Date()
            let table = index.search(q, k: k)
            let t2 = Date()
            let search = t2.timeIntervalSince(t1), flops = 2 * Double(nq) * Double(nr) * Double(d)
            print(String(format: "eidetic (%@ kernel): %d × %d × %d, k = %d, threads %d: search %.2f s (%.1f GFLOP/s), index build %.2f s, %d queries needed the exact scan",
                         index.kernel.rawValue, nq, nr, d, k, threads, search, flops / search / 1e9, t1.timeIntervalSince(t0), table.exactScans))
            guard backend != "none", FileManager.default.isExecutableFile(atPath: python) else {
                if backend != "none" { print("(no \(python): run `make bench-setup` for the faiss / PyTorch reference)") }
                return
            }
            let out = NSTemporaryDirectory() + "eidetic-knn-ref-\(ProcessInfo.processInfo.processIdentifier).h5"
            defer { try? FileManager.default.removeItem(atPath: out) }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: python)
            p.arguments = ["bench/knn_reference.py", "--data", data, "--queries", queries, "--references", references,
                           "--num-queries", "\(nq)", "--num-references", "\(nr)", "--k", "\(k)", "--threads", "\(threads)",
                           "--backend", backend, "--out", out]
            let pipe = Pipe(); p.standardOutput = pipe
            try p.run()
            let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { print("reference failed (exit \(p.terminationStatus))"); return }
            let ref = try HDF5File.open(out)
            for line in text.split(separator: "\n") {
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let name = o["backend"] as? String, let secs = o["seconds"] as? Double else { continue }
                let (idx, _) = try ref.readInt64("\(name)/indices")
                // same neighbour at every rank, or a different one at exactly our distance (a tie)
                var same = 0, ties = 0, wrong = 0
                for i in 0..<nq { for j in 0..<k {
                    let theirs = Int(idx[i * k + j])
                    if theirs == table.index(i, j) { same += 1; continue }
                    let dist = NearestNeighbors.normalizedL2(q.image(i), r.image(theirs))
                    if abs(dist - table.distance(i, j)) < 1e-12 { ties += 1 } else { wrong += 1 }
                } }
                let tolerant = (0..<nq).filter { i in
                    Set((0..<k).map { Int(idx[i * k + $0]) }) == Set((0..<k).map { table.index(i, $0) })
                }.count
                print(String(format: "%@ %@: search %.2f s (%.1f GFLOP/s) → Eidetic / %@ time %.2f× (goal ≤ 1.0×); neighbours: %d of %d identical, %d differ only at exact ties, %d differ (Float32 near-ties on their side); identical sets for %d of %d queries",
                             name, (o["version"] as? String) ?? "", secs, flops / secs / 1e9, name, search / secs, same, nq * k, ties, wrong, tolerant, nq))
            }
        }
    }

    /// Dataset store speed: whole-split load and random minibatch reads.
    struct DataReads: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "data", abstract: "Random batch reads from a dataset file.")
        @Argument(help: "Dataset .h5 file.") var file: String
        @Option(help: "Split.") var split: String = "train"
        @Option(help: "Batch size.") var batch: Int = 128
        @Option(help: "Batches to time.") var repeats: Int = 200

        func run() throws {
            let ds = try DatasetFile(file)
            let n = try ds.shape(split)[0]
            let t0 = Date()
            let all = try ds.load(split)
            print(String(format: "%@ %@: load %d images in %.1f ms", file, split, all.count, Date().timeIntervalSince(t0) * 1e3))
            var stream = RandomStream(key: RandomKey(seed: 1))
            var times: [Double] = []
            for _ in 0..<repeats {
                let idx = (0..<batch).map { _ in stream.nextInt(below: n) }
                let s = DispatchTime.now().uptimeNanoseconds
                _ = try ds.read(split, indices: idx)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - s) / 1e6)
            }
            times.sort()
            print(String(format: "random batch of %d from the file: median %.2f ms, p90 %.2f ms, min %.2f ms (%d batches)",
                         batch, times[times.count / 2], times[times.count * 9 / 10], times[0], repeats))
            var mem: [Double] = []
            var checksum: Float = 0
            for r in 0..<repeats {
                let idx = (0..<batch).map { _ in stream.nextInt(below: n) }
                let s = DispatchTime.now().uptimeNanoseconds
                let t = all.subset(idx).tensor(flipKey: RandomKey(seed: UInt64(r)))
                mem.append(Double(DispatchTime.now().uptimeNanoseconds - s) / 1e6)
                checksum += t.scalars[r]
            }
            mem.sort()
            print(String(format: "random batch of %d from memory to a flipped [-1, 1] float tensor: median %.2f ms (checksum %.1f)",
                         batch, mem[mem.count / 2], checksum))
        }
    }

    /// Kernel throughput: sgemm at square sizes (the machine's ceiling) and conv2d
    /// forward+backward at the reference U-Net's shapes, as achieved GFLOP/s and as a
    /// fraction of this run's sgemm figure.
    struct Ops: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "sgemm and conv2d GFLOP/s.")
        @Option(help: "OpenBLAS threads (default: all cores).") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
        @Option(help: "Seconds to spend per measurement.") var seconds: Double = 1.0
        @Option(help: "Conv shapes N:C:O:HW, comma-separated (default: the reference set).") var shapes: String?
        @Flag(help: "Skip the sgemm measurement (report conv GFLOP/s only).") var noSgemm = false

        func run() throws {
            Threads.count = threads
            print("OpenBLAS \(Threads.blasConfiguration); threads \(Threads.count); Float GEMM: \(GEMM.description)")
            var peak = 0.0
            print("\nsgemm (row-major C = A·B, square; OpenBLAS's own \(threads)-thread sgemm, and Eidetic's 1-thread one):")
            for n in noSgemm ? [] : [1024, 2048] {
                let a = Tensor.uniform([n, n], key: RandomKey(seed: 1)), b = Tensor.uniform([n, n], key: RandomKey(seed: 2))
                let c = Tensor.zeros([n, n])
                let (pa, pb, pc) = (a.pointer(Float.self), b.pointer(Float.self), c.pointer(Float.self))
                let t = Threads.withNativeBLAS(threads: threads) {
                    bestTime(seconds) {
                        GEMM.openBLAS(transA: false, transB: false, m: n, n: n, k: n, alpha: 1, a: pa, lda: n, b: pb, ldb: n, beta: 0, c: pc, ldc: n)
                    }
                }
                let gf = 2 * pow(Double(n), 3) / t / 1e9
                peak = max(peak, gf)
                var own = ""
                if GEMM.ownAvailable {
                    let to = bestTime(seconds) {
                        GEMM.own(transA: false, transB: false, m: n, n: n, k: n, alpha: 1, a: pa, lda: n, b: pb, ldb: n, beta: 0, c: pc, ldc: n)
                    }
                    let gfOwn = 2 * pow(Double(n), 3) / to / 1e9
                    peak = max(peak, gfOwn)
                    own = String(format: "   Eidetic 1 thread %7.1f GFLOP/s", gfOwn)
                }
                print(String(format: "  %5d²   %8.2f ms   %7.1f GFLOP/s", n, t * 1e3, gf) + own)
            }
            print(String(format: "  sgemm reference for this run (the better of the two): %.1f GFLOP/s\n", peak))
            print("conv2d 3×3 pad 1, forward + backward (dx, dW, db); FLOPs = 3 × 2·N·O·C·9·H·W:")
            print("  batch  C→O   H×W    fwd ms  fwd GF/s   f+b ms  f+b GF/s  of sgemm")
            var worst = Double.infinity
            let list: [(Int, Int, Int, Int)] = try shapes.map { spec in try spec.split(separator: ",").map { item in
                let v = item.split(separator: ":").compactMap { Int($0) }
                guard v.count == 4 else { throw ValidationError("--shapes: '\(item)' is not N:C:O:HW") }
                return (v[0], v[1], v[2], v[3])
            } } ?? [(64, 32, 64, 32), (64, 32, 64, 16), (128, 32, 64, 32), (128, 32, 64, 16)]
            if peak == 0 { peak = 200 }
            for (n, c, o, hw) in list {
                let x = Tensor.normal([n, c, hw, hw], key: RandomKey(seed: 3))
                let w = Tensor.normal([o, c, 3, 3], std: 0.05, key: RandomKey(seed: 4)), bias = Tensor.zeros([o])
                let gy = Tensor.normal([n, o, hw, hw], key: RandomKey(seed: 5))
                let flop = 2.0 * Double(n * o * c * 9 * hw * hw)
                let tf = bestTime(seconds) { _ = Tensor.conv2d(x, weight: w, bias: bias, padding: 1) }
                let tfb = bestTime(seconds) {
                    _ = valueAndGradients(wrt: [x, w, bias], seed: gy) { Tensor.conv2d(x, weight: w, bias: bias, padding: 1) }
                }
                let gfb = 3 * flop / tfb / 1e9
                worst = min(worst, gfb / peak)
                print(String(format: "  %5d  %2d→%-3d %2d×%-2d  %7.2f  %8.1f  %7.2f  %8.1f   %5.1f%%",
                             n, c, o, hw, hw, tf * 1e3, flop / tf / 1e9, tfb * 1e3, gfb, 100 * gfb / peak))
            }
            print(String(format: "\nconv2d forward+backward, worst shape: %.1f%% of sgemm", worst * 100))
        }

        /// Best wall time of repeated runs over about `seconds` (at least 3 runs).
        func bestTime(_ seconds: Double, _ body: () -> Void) -> Double {
            body()  // warm-up
            var best = Double.infinity, spent = 0.0, runs = 0
            while runs < 3 || spent < seconds {
                let t0 = DispatchTime.now().uptimeNanoseconds
                body()
                let t = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                best = min(best, t); spent += t; runs += 1
            }
            return best
        }
    }
}

/// Times the reference DDPM training step or a sampling forward pass on random data.
enum UNetStepBenchmark {
    struct Result {
        var secondsPerStep: Double, batch: Int, flopsPerStep: Double
        func line(name: String, threads: Int) -> String {
            String(format: "{\"name\": \"%@\", \"batch\": %d, \"threads\": %d, \"seconds_per_step\": %.4f, \"images_per_second\": %.1f, \"gflops\": %.1f}",
                   name, batch, threads, secondsPerStep, Double(batch) / secondsPerStep, flopsPerStep / secondsPerStep / 1e9)
        }
    }

    static func run(config: UNetConfig, batch: Int, training: Bool, steps: Int, profile: Bool = false) throws -> Result {
        let model = try UNet(config, key: RandomKey(seed: 1))
        let diffusion = GaussianDiffusion()
        let opt = Adam(learningRate: 2e-4)
        let x0 = Tensor.uniform([batch, config.imageChannels, config.imageSize, config.imageSize], low: -1, high: 1, key: RandomKey(seed: 2))
        var times: [Double] = []
        for s in 0..<(steps + 2) {
            let key = RandomKey(seed: 3).fold(UInt64(s))
            let t0 = DispatchTime.now().uptimeNanoseconds
            if training {
                let t = diffusion.randomTimesteps(batch, key: key.fold("t"))
                let noise = Tensor.normal(x0.shape, key: key.fold("noise"))
                Profiler.enabled = profile && s == steps + 1
                if Profiler.enabled { Profiler.reset(); Profiler.detailed = ProcessInfo.processInfo.environment["EIDETIC_PROFILE_DETAIL"] != nil }
                let (_, g) = valueAndGradient(of: model) {
                    diffusion.loss({ model($0, timesteps: $1.map(Double.init)) }, x0: x0, t: t, noise: noise)
                }
                let u0 = DispatchTime.now().uptimeNanoseconds
                opt.update(model, gradients: g)
                if Profiler.enabled {
                    Profiler.enabled = false
                    printProfile(Profiler.report() + [("adam", Double(DispatchTime.now().uptimeNanoseconds - u0) / 1e9, 1)])
                }
            } else {
                _ = withoutGradient { model(x0, timesteps: [Double](repeating: 500, count: batch)) }
            }
            if s >= 2 { times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9) }
        }
        times.sort()
        return Result(secondsPerStep: times[times.count / 2], batch: batch,
                      flopsPerStep: Double(model.forwardFLOPs) * Double(batch) * (training ? 3 : 1))
    }
}

/// The summary table of `bench unet` and `bench dcgan`: per configuration, Eidetic's median
/// images/s and GFLOP/s, PyTorch's median images/s, the median ratio and its round range.
func printRatioTable(_ rows: [(String, Double, Double?, Double, (median: Double, low: Double, high: Double)?)], threads: Int, rounds: Int) {
    print("\nconfiguration          Eidetic img/s  GFLOP/s   PyTorch img/s   ratio (threads \(threads); medians over \(rounds) round\(rounds == 1 ? "" : "s"))")
    for (name, ours, theirs, gf, ratio) in rows {
        var r = "            –       –"
        if let theirs, let ratio {
            r = String(format: "%13.1f   %5.2f×", theirs, ratio.median)
            if rounds > 1 { r += String(format: " (rounds %.2f–%.2f×)", ratio.low, ratio.high) }
        }
        print(name.padding(toLength: 22, withPad: " ", startingAt: 0) + String(format: "%13.1f  %7.1f   ", ours, gf) + r)
    }
}

/// Prints a per-op profile (`Profiler.report()` rows), largest first.
func printProfile(_ rows: [(String, Double, Int)]) {
    let total = rows.reduce(0) { $0 + $1.1 }
    print("per-op profile of one step (\(String(format: "%.3f", total)) s):")
    for (n, sec, c) in rows.sorted(by: { $0.1 > $1.1 }).prefix(40) {
        print(String(format: "  %-26@ %8.2f ms  %5.1f%%  %4d calls", n as NSString, sec * 1e3, 100 * sec / total, c))
    }
}

/// The PyTorch reference of the model benchmarks (bench/bench_torch.py run by the given
/// Python, `make bench-setup`'s venv by default; "none" skips it).
struct TorchReference {
    let python: String?

    init(_ path: String) {
        let usable = path != "none" && FileManager.default.isExecutableFile(atPath: path)
        if !usable && path != "none" { print("(no PyTorch at \(path): run `make bench-setup` for the reference ratios)") }
        python = usable ? path : nil
    }

    /// Runs one configuration, prints its JSON line, returns its images per second (nil
    /// without PyTorch).
    func imagesPerSecond(_ name: String, threads: Int, steps: Int, extra: [String] = []) throws -> Double? {
        let o = try run(["bench/bench_torch.py", "--threads", String(threads), "--only", name, "--steps", String(steps)] + extra)
        return o?["images_per_second"] as? Double
    }

    /// Runs a script of bench/ with this Python, prints its last stdout line (one JSON object)
    /// and returns it parsed (nil without PyTorch or when the line is not JSON).
    func run(_ arguments: [String], in directory: String? = nil) throws -> [String: Any]? {
        guard let python else { return nil }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? "{}"
        print("pytorch: " + line); fflush(stdout)
        return try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
    }
}

extension Bench {
    /// The DCGAN training step exactly as `eidetic train` runs it (`GANTask.step`: one G pass,
    /// the D update on real and detached fake, the G update through the updated D; Adam(2e-4,
    /// 0.5, 0.999)) and a generator sampling pass, against the PyTorch DCGAN example's step on
    /// the same model (bench/bench_torch.py). FLOPs per real image: 3 × (G + 3·D) forward for
    /// a step (G once, D three times, backward ≈ 2 × forward), G forward for sampling.
    struct DCGANBench: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "dcgan", abstract: "DCGAN training-step and sampling throughput.")
        @Option(help: "Threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
        @Option(help: "Configurations: dcgan-train-bB, dcgan-nobn-train-bB, dcgan-sample-bB, comma-separated.")
        var only: String = "dcgan-train-b64,dcgan-nobn-train-b64,dcgan-sample-b256"
        @Option(help: "Timed steps per configuration and round (the median is reported).") var steps: Int = 20
        @Option(help: "Rounds per configuration, alternating Eidetic and PyTorch (medians over rounds are reported).") var rounds: Int = 3
        @Option(help: "Python with PyTorch for the reference (bench/bench_torch.py); \"none\" skips it.")
        var torch: String = "bench/.venv/bin/python"
        @Flag(help: "Print a per-op time profile of the last timed step (EIDETIC_PROFILE_DETAIL=1: per conv shape).") var profile = false
        @Option(help: ArgumentHelp("Instead of timing: write one train-mode forward + backward of --preset (weights, inputs, outputs, loss, gradients, updated buffers) to this HDF5 file for bench/check_dcgan_torch.py.", valueName: "file"))
        var exportCheck: String?
        @Option(help: "--export-check: GAN preset (\(GANConfig.presetNames.joined(separator: ", "))).") var preset = "dcgan-32"
        @Option(help: "--export-check: float64 or float32.") var dtype = "float64"
        @Option(help: "--export-check: nonsaturating or hinge.") var loss = "nonsaturating"
        @Option(help: "--export-check: batch size.") var checkBatch = 8
        @Option(help: "--export-check: seed of the weights and inputs.") var checkSeed: UInt64 = 1
        @Flag(help: "--export-check: overwrite an existing file.") var force = false

        func validate() throws {
            try Check.atLeast(threads, 1, "--threads")
            try Check.atLeast(steps, 1, "--steps")
            try Check.atLeast(rounds, 1, "--rounds")
            if let path = exportCheck {
                try Check.atLeast(checkBatch, 2, "--check-batch")   // BatchNorm needs more than one value per channel
                guard GANConfig.preset(preset) != nil else {
                    throw ValidationError("--preset: unknown GAN preset \"\(preset)\" (\(GANConfig.presetNames.joined(separator: ", ")))")
                }
                guard DType(rawValue: dtype) != nil else { throw ValidationError("--dtype must be float64 or float32, got \"\(dtype)\"") }
                guard GANLoss(rawValue: loss) != nil else { throw ValidationError("--loss must be nonsaturating or hinge, got \"\(loss)\"") }
                guard force || !FileManager.default.fileExists(atPath: path) else {
                    throw ValidationError("--export-check: \(path) exists (pass --force to overwrite it)")
                }
            }
        }

        func run() throws {
            Threads.count = threads
            if let path = exportCheck {
                print(try DCGANCheckExport.export(preset: preset, to: path, batch: checkBatch, dtype: DType(rawValue: dtype)!,
                                                  loss: GANLoss(rawValue: loss)!, seed: checkSeed))
                return
            }
            Profiler.detailed = ProcessInfo.processInfo.environment["EIDETIC_PROFILE_DETAIL"] != nil
            let reference = TorchReference(torch)
            var rows: [(String, Double, Double?, Double, (median: Double, low: Double, high: Double)?)] = []
            for name in only.split(separator: ",").map(String.init) {
                let parts = name.split(separator: "-")
                guard parts.count >= 3, let batch = Int(parts.last!.dropFirst()), batch >= 1,
                      ["dcgan-train", "dcgan-nobn-train", "dcgan-sample"].contains(parts.dropLast().joined(separator: "-")) else {
                    throw ValidationError("unknown configuration \(name) (dcgan-train-bB, dcgan-nobn-train-bB, dcgan-sample-bB)")
                }
                var config = TrainConfig()
                config.kind = .dcgan
                config.gan = parts[1] == "nobn" ? .dcgan32NoBN : .dcgan32
                config.ganTraining.beta1 = 0.5
                let task = try GANTask(config, key: RandomKey(seed: 1))
                let real = Tensor.uniform([batch, 3, 32, 32], low: -1, high: 1, key: RandomKey(seed: 2))
                let sampling = parts.contains("sample")
                var stepIndex = 0
                /// Median seconds per step over `steps` timed steps (after two untimed ones).
                func timeSteps(profileLast: Bool) throws -> Double {
                    var times: [Double] = []
                    for s in 0..<(steps + 2) {
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        Profiler.enabled = profileLast && s == steps + 1
                        if Profiler.enabled { Profiler.reset() }
                        defer { if Profiler.enabled { Profiler.enabled = false; printProfile(Profiler.report()) } }
                        let k = stepIndex
                        stepIndex += 1
                        if sampling {
                            _ = task.generator.sample(seeds: (0..<batch).map { UInt64(k * batch + $0) }, batchSize: batch)
                        } else {
                            let context = StepContext(step: k, key: RandomKey(seed: 3).fold(UInt64(k)), learningRate: 2e-4, rateFactor: 1, gradClip: 0)
                            _ = try task.step([TrainingBatch(images: real, labels: [Int](repeating: 0, count: batch), indices: Array(0..<batch))], context)
                        }
                        if s >= 2 { times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9) }
                    }
                    times.sort()
                    return times[times.count / 2]
                }
                let g = Double(task.generator.forwardFLOPs), d = Double(task.discriminator.forwardFLOPs)
                let flops = Double(batch) * (sampling ? g : 3 * (g + 3 * d))
                // Rounds alternate Eidetic and PyTorch, so that slow drifts of a shared machine
                // fall on both; the row reports medians over rounds.
                var ours: [Double] = [], theirs: [Double] = [], ratios: [Double] = []
                for round in 0..<rounds {
                    let t = try timeSteps(profileLast: profile && round == rounds - 1)
                    ours.append(Double(batch) / t)
                    print(String(format: "{\"name\": \"%@\", \"batch\": %d, \"threads\": %d, \"round\": %d, \"seconds_per_step\": %.4f, \"images_per_second\": %.1f, \"gflops\": %.1f}",
                                 name, batch, threads, round + 1, t, Double(batch) / t, flops / t / 1e9)); fflush(stdout)
                    if let r = try reference.imagesPerSecond(name, threads: threads, steps: steps) {
                        theirs.append(r)
                        ratios.append(ours.last! / r)
                    }
                }
                let oursMedian = median(ours)
                rows.append((name, oursMedian, theirs.isEmpty ? nil : median(theirs), flops * oursMedian / Double(batch) / 1e9,
                             ratios.isEmpty ? nil : (median(ratios), ratios.min()!, ratios.max()!)))
            }
            printRatioTable(rows, threads: threads, rounds: rounds)
        }
    }
}
