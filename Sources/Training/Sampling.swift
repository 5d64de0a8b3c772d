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
    /// Class labels for conditional models (cycled over the samples); nil: 0, 1, 2, … cycled.
    public var labels: [Int]?

    public init(count: Int, batchSize: Int, sampler: SamplerConfig, useEMA: Bool = true, firstSeed: UInt64 = 0, labels: [Int]? = nil) {
        self.count = count; self.batchSize = batchSize; self.sampler = sampler; self.useEMA = useEMA
        self.firstSeed = firstSeed; self.labels = labels
    }

    public var tag: String {
        let s = sampler.kind == .ddpm ? "ddpm" : "ddim\(sampler.steps)-eta\(sampler.eta)-\(sampler.spacing.rawValue)"
        return "\(s)-\(useEMA ? "ema" : "raw")-n\(count)-seed\(firstSeed)" + (sampler.guidance != 1 ? "-g\(sampler.guidance)" : "")
    }
}

/// Sample files: the dataset layout (`samples/images`, `samples/labels`, `class_names`)
/// plus `samples/seeds`, with attributes naming the run, checkpoint step, weights and
/// sampler — so `DatasetFile(path).load("samples")` reads them like any dataset.
public enum SampleFile {
    public static func write(_ set: ImageSet, seeds: [UInt64], attributes: [String: AttributeValue], to path: String) throws {
        try DatasetFile.write([("samples", set)], attributes: attributes, to: path)
        let f = try HDF5File.open(path, writable: true)
        try f.write("samples/seeds", int64: seeds.map { Int64(bitPattern: $0) }, shape: [seeds.count])
        f.flush()
    }
}

/// Loads a run's checkpoint and draws samples; writes `samples/<tag>.h5` and `.png`.
public func generateSamples(run: RunDirectory, request r: SampleRequest, progress: ((Int, Int) -> Void)? = nil) throws
    -> (file: String, grid: String, samples: ImageSet)
{
    let config = try run.loadConfig()
    guard FileManager.default.fileExists(atPath: run.checkpoint) else {
        throw TrainingError.runDirectory("\(run.path): no checkpoint yet (checkpoints/latest.h5); train first")
    }
    let (tree, attrs) = try TensorFile.load(run.checkpoint)
    let model = try UNet(config.model, key: RandomKey(seed: 0))
    try model.load(r.useEMA ? tree.subtree("ema") : tree.subtree("model"))
    let diffusion = config.diffusion.process
    let seeds = (0..<r.count).map { r.firstSeed + UInt64($0) }
    var labels: [Int]? = nil
    if config.model.classes > 0 {
        let cycle = r.labels ?? Array(0..<config.model.classes)
        labels = (0..<r.count).map { cycle[$0 % cycle.count] }
    }
    let x = diffusion.sample(model: model, seeds: seeds, labels: labels, sampler: r.sampler, batchSize: r.batchSize, progress: progress)
    let classNames = (try? DatasetFile(config.data.file).classNames) ?? []
    let set = ImageSet(images: x.imageBytes(), labels: labels ?? [Int](repeating: -1, count: r.count).map { max($0, 0) },
                       channels: config.model.imageChannels, height: config.model.imageSize, width: config.model.imageSize,
                       classNames: classNames)
    try FileManager.default.createDirectory(atPath: run.samples, withIntermediateDirectories: true)
    let file = "\(run.samples)/\(r.tag).h5"
    let modelJSON = String(decoding: try JSONEncoder().encode(config.model), as: UTF8.self)
    try SampleFile.write(set, seeds: seeds, attributes: [
        "run": .string(run.path), "checkpoint": .string(run.checkpoint), "checkpoint_step": attrs["step"] ?? .int(-1),
        "weights": .string(r.useEMA ? "ema" : "raw"), "sampler": .string(r.sampler.description),
        "model": .string(modelJSON), "conditional": .int(labels == nil ? 0 : 1),
        "command": .string((["eidetic"] + CommandLine.arguments.dropFirst()).joined(separator: " ")),
    ], to: file)
    let grid = "\(run.samples)/\(r.tag).png"
    let shown = min(set.count, 64)
    try PNG.write(PNG.grid((0..<shown).map { set.image($0) }, channels: set.channels, height: set.height, width: set.width, columns: 8), to: grid)
    return (file, grid, set)
}
