import Data
import Foundation
import HDF5

/// Untargeted extraction from a pool of generations (Carlini et al., 2023, §5.1; paper-spec
/// §1.4–1.7, §2.3, §11.3): every generation is compared with the training set of the model
/// under attack, by three rules computed from one exact kNN table.
///
/// - normalized ℓ2 (RMS over [0, 1] pixels) to the nearest training image below `l2Threshold`;
/// - the paper's relative distance ℓ2(x̂, x) / (α · mean ℓ2 to x̂'s n nearest training images)
///   below `relativeThreshold` — the mean includes the nearest image itself, and the reference
///   set is the model's own training set, so flat images do not count as copies of everything;
/// - Gu et al.'s ratio ℓ2(nearest) / ℓ2(second nearest) below `ratioThreshold`.
///
/// Generations are uint8 images (quantized exactly as saved), so distances are the ones a
/// reader of the sample file would compute.
public struct ExtractionConfig: Codable, Equatable, Sendable {
    public var alpha = 0.5
    public var neighbors = 50
    public var relativeThreshold = 1.0
    public var l2Threshold = 0.05
    public var ratioThreshold = 1.0 / 3.0
    public init() {}
}

/// Per-generation outcome and the counts over the pool.
public struct ExtractionResult: Codable, Sendable {
    public struct Sample: Codable, Equatable, Sendable {
        /// Nearest training image: position in the training set and its dataset index.
        public var nearest: Int
        public var nearestDatasetIndex: Int
        public var l2: Double
        public var secondL2: Double
        public var meanL2: Double
        public var relative: Double
        public var ratio: Double
        /// Training images (physical copies included) within `l2Threshold` of the generation:
        /// the k of (k, ℓ, δ)-eidetic memorization for an extracted image.
        public var copiesWithin: Int
    }
    public var config: ExtractionConfig
    public var samples: [Sample]
    /// Neighbours actually used for the mean (n, or fewer for tiny training sets).
    public var neighborsUsed: Int

    public func extractedByRelative(_ s: Sample) -> Bool { s.relative < config.relativeThreshold }
    public func extractedByL2(_ s: Sample) -> Bool { s.l2 < config.l2Threshold }
    public func extractedByRatio(_ s: Sample) -> Bool { s.ratio < config.ratioThreshold }

    /// Distinct training images (dataset indices, ascending) hit by the first `prefix`
    /// generations under `rule`.
    public func unique(_ rule: (Sample) -> Bool, prefix: Int? = nil) -> [Int] {
        Array(Set(samples.prefix(prefix ?? samples.count).filter(rule).map(\.nearestDatasetIndex))).sorted()
    }

    /// Unique extractions (relative rule) against the number of generations: prefixes
    /// 1, 2, 4, …, and the whole pool.
    public var curve: [(samples: Int, unique: Int)] {
        var sizes: [Int] = []
        var p = 1
        while p < samples.count { sizes.append(p); p *= 2 }
        sizes.append(samples.count)
        return sizes.map { ($0, unique(extractedByRelative, prefix: $0).count) }
    }

    public struct Summary: Codable, Sendable {
        public var generations: Int
        public var trainingImages: Int
        public var neighborsUsed: Int
        public var config: ExtractionConfig
        public var extractedGenerations: [String: Int]
        public var uniqueExtracted: [String: Int]
        public var uniqueIndices: [String: [Int]]
        public var curve: [[Int]]
        public var l2Quantiles: [String: Double]
        /// Caveats about this measurement (e.g. a training set too small for the relative rule).
        public var notes: [String]
    }

    public func summary(trainingImages: Int) -> Summary {
        let rules: [(String, (Sample) -> Bool)] = [("relative", extractedByRelative), ("l2", extractedByL2), ("ratio", extractedByRatio)]
        let sorted = samples.map(\.l2).sorted()
        func q(_ f: Double) -> Double { sorted.isEmpty ? .nan : sorted[min(sorted.count - 1, Int(f * Double(sorted.count - 1)))] }
        return Summary(
            generations: samples.count, trainingImages: trainingImages, neighborsUsed: neighborsUsed, config: config,
            extractedGenerations: Dictionary(uniqueKeysWithValues: rules.map { ($0.0, samples.filter($0.1).count) }),
            uniqueExtracted: Dictionary(uniqueKeysWithValues: rules.map { ($0.0, unique($0.1).count) }),
            uniqueIndices: Dictionary(uniqueKeysWithValues: rules.map { ($0.0, unique($0.1)) }),
            curve: curve.map { [$0.samples, $0.unique] },
            l2Quantiles: ["min": q(0), "p10": q(0.1), "median": q(0.5), "p90": q(0.9), "max": q(1)],
            notes: smallSetNote(trainingImages: trainingImages).map { [$0] } ?? [])
    }

    /// The relative distance calibrates a generation against its n nearest training images —
    /// a local scale when n ≪ N (the paper: n = 50, N = 25,000–50,000). When n is a large part
    /// of the training set the denominator becomes the mean distance to almost everything and
    /// the rule also accepts look-alikes (measured: 0.5 % of random real CIFAR-10 images pass
    /// it against a 64-image set; a model trained as long on 64 *other* images had 1 of 256
    /// generations pass, at ℓ2 0.122, while ℓ2 and the Gu ratio flagged none).
    func smallSetNote(trainingImages: Int) -> String? {
        guard neighborsUsed * 10 > trainingImages else { return nil }
        return "relative ℓ2 uses n = \(neighborsUsed) of \(trainingImages) training images: its denominator is close to the mean distance to the whole set, so it also accepts look-alikes; read the ℓ2 and Gu-ratio counts for training sets this small"
    }
}

public enum Extraction {
    /// Scores `generations` against `training` (the model's own training set; physical
    /// duplicates included). `datasetIndices[i]` names training image i in its dataset, so
    /// copies of one image count once.
    public static func evaluate(generations: ImageSet, training: ImageSet, datasetIndices: [Int]? = nil,
                                config: ExtractionConfig = ExtractionConfig(), index: ReferenceIndex? = nil) -> (ExtractionResult, NeighborTable) {
        precondition(training.count >= 2, "extraction: the training set needs at least 2 images (got \(training.count))")
        let ids = datasetIndices ?? Array(0..<training.count)
        precondition(ids.count == training.count, "extraction: \(ids.count) dataset indices for \(training.count) training images")
        let n = neighborsUsed(config, trainingCount: training.count)
        let table = (index ?? ReferenceIndex(training)).search(generations, k: searchK(config, trainingCount: training.count))
        return (ExtractionResult(config: config, samples: score(table, datasetIndices: ids, config: config, neighborsUsed: n), neighborsUsed: n), table)
    }

    /// Neighbours in the relative rule's mean: n, or all of a smaller training set.
    static func neighborsUsed(_ config: ExtractionConfig, trainingCount: Int) -> Int { min(max(config.neighbors, 1), trainingCount) }

    /// Neighbours searched: n, and at least 2 for the Gu ratio.
    static func searchK(_ config: ExtractionConfig, trainingCount: Int) -> Int { max(neighborsUsed(config, trainingCount: trainingCount), 2) }

    /// The three rules' numbers for every query of a kNN table (nearest first).
    static func score(_ table: NeighborTable, datasetIndices ids: [Int], config: ExtractionConfig, neighborsUsed n: Int) -> [ExtractionResult.Sample] {
        (0..<table.queries).map { g -> ExtractionResult.Sample in
            let d = (0..<table.k).map { table.distance(g, $0) }
            let mean = d.prefix(n).reduce(0, +) / Double(n)
            let nearest = table.index(g, 0)
            return ExtractionResult.Sample(
                nearest: nearest, nearestDatasetIndex: ids[nearest], l2: d[0], secondL2: d[1], meanL2: mean,
                relative: mean > 0 ? d[0] / (config.alpha * mean) : (d[0] == 0 ? 0 : .infinity),
                ratio: d[1] > 0 ? d[0] / d[1] : (d[0] == 0 ? 1 : .infinity),
                copiesWithin: d.prefix(n).filter { $0 < config.l2Threshold }.count)
        }
    }

    /// Rows of a sample file read at a time by `streamed` (≈ 50 MB of CIFAR-sized images).
    public static let blockRows = 16_384

    /// Extraction of every generation in a sample file, streamed: blocks of `blockRows` rows
    /// are read, searched against one `ReferenceIndex` of the training set and scored, and
    /// their kNN rows written to `arrays` (`nearest/distances`, `nearest/positions`,
    /// `nearest/dataset_indices`, [g, k]) before the next block is read. Memory is one block
    /// and its table plus ~64 bytes per generation for the result, whatever the pool's size;
    /// the outcome is the one `evaluate` gives on the whole pool (rows are independent).
    public static func streamed(samples: DatasetFile, split: String = "samples", training: ImageSet, datasetIndices ids: [Int],
                                config: ExtractionConfig = ExtractionConfig(), arrays: HDF5File? = nil, blockRows: Int = blockRows,
                                progress: ((Int, Int) -> Void)? = nil) throws -> ExtractionResult {
        precondition(training.count >= 2, "extraction: the training set needs at least 2 images (got \(training.count))")
        precondition(ids.count == training.count, "extraction: \(ids.count) dataset indices for \(training.count) training images")
        let labels = try samples.labels(split)
        let g = labels.count
        let n = neighborsUsed(config, trainingCount: training.count), k = searchK(config, trainingCount: training.count)
        if let arrays {
            try arrays.create("nearest/distances", shape: [g, k], element: .float64, chunkRows: 4096)
            try arrays.create("nearest/positions", shape: [g, k], element: .int64, chunkRows: 4096)
            try arrays.create("nearest/dataset_indices", shape: [g, k], element: .int64, chunkRows: 4096)
        }
        let index = ReferenceIndex(training)
        var result: [ExtractionResult.Sample] = []
        result.reserveCapacity(g)
        for start in stride(from: 0, to: g, by: max(blockRows, 1)) {
            let block = try samples.block(split, start ..< min(g, start + max(blockRows, 1)), labels: labels)
            guard block.imageSize == training.imageSize else {
                throw EvaluationError.input("\(samples.path): samples are \(block.channels)×\(block.height)×\(block.width) but the training images are \(training.channels)×\(training.height)×\(training.width)")
            }
            let table = index.search(block, k: k)
            result += score(table, datasetIndices: ids, config: config, neighborsUsed: n)
            if let arrays {
                try arrays.writeRows("nearest/distances", start: start, float64: table.distances)
                try arrays.writeRows("nearest/positions", start: start, int64: table.indices.map(Int64.init))
                try arrays.writeRows("nearest/dataset_indices", start: start, int64: table.indices.map { Int64(ids[Int($0)]) })
            }
            progress?(start + block.count, g)
        }
        return ExtractionResult(config: config, samples: result, neighborsUsed: n)
    }
}
