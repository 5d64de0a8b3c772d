import Data
import Diffusion
import Foundation
import HDF5
import Models
import NN
import Tensor

/// What to generate from a run's checkpoint.
public struct SampleRequest: Sendable {
    public var count: Int
    public var batchSize: Int
    public var sampler: SamplerConfig
    public var useEMA: Bool
    /// Sample i uses seed `firstSeed + i`.
    public var firstSeed: UInt64
    /// Class labels for conditional models: the seed picks one, labels[seed mod count]
    /// (nil: the classes 0, 1, 2, …), so a sample's label depends only on its seed.
    public var labels: [Int]?
    /// The convolutions' arithmetic while sampling (`sample.precision`); bf16 samples get
    /// their own file name and a "precision" attribute.
    public var precision: ComputePrecision

    public init(count: Int, batchSize: Int, sampler: SamplerConfig, useEMA: Bool = true, firstSeed: UInt64 = 0, labels: [Int]? = nil,
                precision: ComputePrecision = .fp32) {
        self.count = count; self.batchSize = batchSize; self.sampler = sampler; self.useEMA = useEMA
        self.firstSeed = firstSeed; self.labels = labels; self.precision = precision
    }

    /// The request a config's `[sample]` section describes.
    public init(_ s: TrainConfig.Sample) {
        self.init(count: s.count, batchSize: s.batchSize, sampler: s.sampler, useEMA: s.useEMA, precision: s.precision)
    }

    /// Names the request in sample file names: the sampler for diffusion models, "gan" for
    /// a generator (one pass, no sampler settings).
    public func tag(for kind: ModelKind) -> String {
        if kind.isGAN { return "gan-\(useEMA ? "ema" : "raw")-n\(count)-seed\(firstSeed)" }
        let s = sampler.kind == .ddpm ? "ddpm" : "ddim\(sampler.steps)-eta\(sampler.eta)-\(sampler.spacing.rawValue)"
        return "\(s)-\(useEMA ? "ema" : "raw")-n\(count)-seed\(firstSeed)" + (sampler.guidance != 1 ? "-g\(sampler.guidance)" : "")
            + (precision == .fp32 ? "" : "-\(precision.rawValue)")
    }

    /// The tag of a diffusion model's request.
    public var tag: String { tag(for: .unet) }
}

/// Sample files: the dataset layout (`samples/images`, `samples/labels`, `class_names`)
/// plus `samples/seeds`, with attributes naming the run, checkpoint step, weights and
/// sampler — so `DatasetFile(path).load("samples")` reads them like any dataset.
public enum SampleFile {
    public static func write(_ set: ImageSet, seeds: [UInt64], attributes: [String: AttributeValue], to path: String) throws {
        try writeAtomically(to: path) { tmp in
            let w = try Writer(path: tmp, count: set.count, channels: set.channels, height: set.height, width: set.width,
                               classNames: set.classNames, attributes: attributes)
            try w.append(images: set.images, labels: set.labels, seeds: seeds)
            try w.close()
        }
    }

    /// Writes a sample file block by block (one block in memory at a time): `append` in
    /// seed order, then `close`. Give it a temporary path inside `writeAtomically`.
    public final class Writer {
        let split: DatasetFile.SplitWriter
        var seeds: [Int64] = []

        public init(path: String, count: Int, channels: Int, height: Int, width: Int, classNames: [String],
                    attributes: [String: AttributeValue]) throws {
            split = try DatasetFile.SplitWriter(path: path, split: "samples", count: count, channels: channels, height: height,
                                                width: width, classNames: classNames, attributes: attributes)
        }

        public func append(images: [UInt8], labels: [Int], seeds s: [UInt64]) throws {
            precondition(s.count == labels.count, "SampleFile.Writer: \(s.count) seeds for \(labels.count) labels")
            try split.append(images: images, labels: labels)
            seeds.append(contentsOf: s.map { Int64(bitPattern: $0) })
        }

        public func close() throws {
            try split.file.write("samples/seeds", int64: seeds, shape: [seeds.count])
            try split.close()
        }
    }
}

/// Checks a request against the run before any work: counts, sampler steps against the
/// process's timesteps, guidance only for class-conditional models.
public func validate(_ r: SampleRequest, config: TrainConfig) throws {
    func bad(_ m: String) -> TrainingError { .runDirectory(m) }
    guard r.count >= 1 else { throw bad("sample count must be ≥ 1, got \(r.count)") }
    guard r.batchSize >= 1 else { throw bad("sample batch size must be ≥ 1, got \(r.batchSize)") }
    let s = r.sampler, T = config.diffusion.timesteps
    if config.kind.isGAN {
        if r.precision != .fp32 { throw bad("bf16 sampling applies to U-Net runs; the GAN layers have no bf16 kernels") }
        if let l = r.labels, let bad = l.first(where: { $0 < 0 || $0 >= max(config.classes, 1) }) {
            throw TrainingError.runDirectory("label \(bad) is outside 0…\(config.classes - 1)")
        }
        return
    }
    if s.kind == .ddim {
        guard s.steps >= 1 && s.steps <= T else { throw bad("sampler steps must be in 1…\(T) (the run's diffusion.timesteps), got \(s.steps)") }
        guard s.eta.isFinite && s.eta >= 0 else { throw bad("eta must be a finite number ≥ 0, got \(s.eta)") }
    }
    guard s.guidance.isFinite && s.guidance >= 0 else { throw bad("guidance must be a finite number ≥ 0, got \(s.guidance)") }
    if s.guidance != 1 && config.model.classes == 0 {
        throw bad("guidance \(s.guidance) needs a class-conditional model; this run's model is unconditional (model.classes = 0)")
    }
    if let l = r.labels, let bad = l.first(where: { $0 < 0 || $0 >= max(config.model.classes, 1) }) {
        throw TrainingError.runDirectory("label \(bad) is outside 0…\(config.model.classes - 1)")
    }
}

/// Where `generateSamples` writes for this request and checkpoint step.
public func sampleFilePath(run: RunDirectory, request r: SampleRequest, step: Int) -> String {
    "\(run.samples)/step\(step)-\(r.tag(for: (try? run.loadConfig().kind) ?? .unet)).h5"
}

/// Loads a run's checkpoint (checked against its config) and draws samples; writes
/// `samples/step<S>-<tag>.h5` and `.png`. An existing file for the same request and step is
/// the same samples (sampling is deterministic), so it is refused unless `overwrite`.
/// Batches go to the file as they are drawn (one batch in memory, whatever the count); the
/// file appears, complete, only at the end. Returns the file, the grid of its first 64
/// samples, and the count.
@discardableResult
public func generateSamples(run: RunDirectory, request r: SampleRequest, overwrite: Bool = false, progress: ((Int, Int) -> Void)? = nil) throws
    -> (file: String, grid: String, count: Int)
{
    let lock = try RunLock.acquire(run.path, mode: .shared, purpose: "sampling")
    defer { withExtendedLifetime(lock) {} }
    let ckpt = try run.loadCheckpoint()
    let config = ckpt.config
    try validate(r, config: config)
    let file = sampleFilePath(run: run, request: r, step: ckpt.step)
    let grid = file.replacingOccurrences(of: ".h5", with: ".png", options: .anchored.union(.backwards))
    if !overwrite && FileManager.default.fileExists(atPath: file) {
        throw TrainingError.runDirectory("\(file) exists (same request, same checkpoint step); pass --force to draw it again, or use it")
    }
    try FileManager.default.createDirectory(atPath: run.samples, withIntermediateDirectories: true)
    guard access(run.samples, W_OK) == 0 else { throw TrainingError.runDirectory("\(run.samples): not writable") }
    // the samples do not depend on the data, but a run whose data file now holds other
    // images is not the run it claims to be: refuse (skipped when the data is not here)
    if FileManager.default.fileExists(atPath: ckpt.data.file) { _ = try ckpt.trainingSelection(path: run.checkpoint) }
    let seeds = (0..<r.count).map { r.firstSeed &+ UInt64($0) }
    var labels: [Int]? = nil
    if config.classes > 0 {
        // by seed, not by position, so sample i is the same in any request that draws seed i
        let cycle = r.labels ?? Array(0..<config.classes)
        labels = seeds.map { cycle[Int($0 % UInt64(cycle.count))] }
    }
    let modelJSON: String
    let samplerDescription: String
    var generator: DCGANGenerator? = nil
    var model: UNet? = nil
    if config.kind.isGAN {
        generator = try ckpt.generator(useEMA: r.useEMA, path: run.checkpoint)
        modelJSON = String(decoding: try JSONEncoder().encode(config.gan), as: UTF8.self)
        samplerDescription = "generator(z_i ~ N(0, I) from seed i, eval-mode BatchNorm)"
    } else {
        model = try ckpt.model(useEMA: r.useEMA, path: run.checkpoint)
        modelJSON = String(decoding: try JSONEncoder().encode(config.model), as: UTF8.self)
        samplerDescription = r.sampler.description
    }
    let classNames = (try? DatasetFile(ckpt.data.file).classNames) ?? []
    let (c, h, w) = (config.imageChannels, config.imageSize, config.imageSize)
    let shown = min(r.count, 64), row = c * h * w
    var firstImages: [UInt8] = []
    try writeAtomically(to: file) { tmp in
        let writer = try SampleFile.Writer(path: tmp, count: r.count, channels: c, height: h, width: w, classNames: classNames, attributes: [
            "run": .string(run.path), "checkpoint": .string(run.checkpoint), "checkpoint_step": .int(Int64(ckpt.step)),
            "weights": .string(r.useEMA ? "ema" : "raw"), "sampler": .string(samplerDescription), "model_kind": .string(config.kind.rawValue),
            "model": .string(modelJSON), "conditional": .int(labels == nil ? 0 : 1), "precision": .string(r.precision.rawValue),
            "command": .string((["eidetic"] + CommandLine.arguments.dropFirst()).joined(separator: " ")),
        ])
        func emit(_ start: Int, _ x: Tensor) throws {
            guard x.doubles.allSatisfy(\.isFinite) else {
                throw TrainingError.runDirectory("\(run.checkpoint): sampling produced NaN or infinite values; nothing written")
            }
            let n = x.shape[0], bytes = x.imageBytes()
            if start < shown { firstImages += bytes.prefix((shown - start) * row) }
            try writer.append(images: bytes, labels: labels.map { Array($0[start ..< start + n]) } ?? [Int](repeating: 0, count: n),
                              seeds: Array(seeds[start ..< start + n]))
        }
        if let generator {
            try generator.sample(seeds: seeds, labels: labels, batchSize: r.batchSize, progress: progress, each: emit)
        } else if let model {
            try ComputePrecision.$current.withValue(r.precision) {
                try config.diffusion.process.sample(model: model, seeds: seeds, labels: labels, sampler: r.sampler, batchSize: r.batchSize,
                                                    progress: progress, each: emit)
            }
        }
        try writer.close()
    }
    let firstImagesList = (0..<shown).map { firstImages[$0 * row ..< ($0 + 1) * row] }
    try PNG.write(PNG.grid(firstImagesList, channels: c, height: h, width: w, columns: 8), to: grid)
    return (file, grid, r.count)
}

/// The generator a GAN run starts from (its weights at step 0), rebuilt from the config and
/// seed exactly as `GANTask` builds it: the untrained baseline of `eval quality`.
public func untrainedGenerator(_ config: TrainConfig) throws -> DCGANGenerator {
    try DCGANGenerator(config.gan, key: GANTask.initKey(RandomKey(seed: config.run.seed)).fold("generator"))
}

extension DCGANGenerator {
    /// Draws one image per seed: z_i ~ N(0, I) from `RandomKey(seed: seeds[i])` alone, the
    /// generator in evaluation mode (BatchNorm's running statistics), so image i depends only
    /// on the weights, seeds[i] and labels[i], for any batch size.
    /// - Returns: [N, C, H, W] in [−1, 1].
    public func sample(seeds: [UInt64], labels: [Int]? = nil, batchSize: Int = 128, progress: ((Int, Int) -> Void)? = nil) -> Tensor {
        var parts: [Tensor] = []
        sample(seeds: seeds, labels: labels, batchSize: batchSize, progress: progress) { _, x in parts.append(x) }
        return Tensor.concat(parts, axis: 0)
    }

    /// The same images handed over batch by batch (`each(first index, [B, C, H, W])`).
    public func sample(seeds: [UInt64], labels: [Int]? = nil, batchSize: Int = 128, progress: ((Int, Int) -> Void)? = nil,
                       each: (Int, Tensor) throws -> Void) rethrows {
        precondition(labels == nil || labels!.count == seeds.count, "sample: \(labels!.count) labels for \(seeds.count) seeds")
        let wasTraining = isTraining
        eval()
        defer { train(wasTraining) }
        for start in stride(from: 0, to: seeds.count, by: max(batchSize, 1)) {
            let idx = Array(start..<min(seeds.count, start + max(batchSize, 1)))
            let z = Tensor.concat(idx.map { sampleLatents(1, key: RandomKey(seed: seeds[$0])) }, axis: 0)
            try each(start, withoutGradient { self(z, labels: labels.map { l in idx.map { l[$0] } }) })
            progress?(idx.last! + 1, seeds.count)
        }
    }
}
