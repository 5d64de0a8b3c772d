import Data
import Foundation
import HDF5
import Tensor
import Training

/// Choosing the clique filter's edge threshold δ on a **non-member model** (paper-spec §11.2,
/// P12: "δ calibrated on a non-member model"), instead of fixing it (0.15 in the Stable
/// Diffusion reimplementation, whose images and tiles are another size).
///
/// The filter is meant to flag a clique only where a model memorized an image. A second model
/// trained like the target on a disjoint set (the extraction baseline's twin) tells how often
/// it flags something else: each clique among the twin's generations whose medoid does **not**
/// extract one of the twin's *own* training images (relative rule, the oracle's) is a false
/// flag — near-identical generations that copy nothing, such as a collapsed mode or a plain
/// background. δ is the largest value of `grid` below the first one at which the twin's
/// generations flag any such clique. The target's generations then never influence their own
/// threshold, so the precision measured on them (cliques verified against the target's
/// training set) is an honest held-out number.
public struct CliqueCalibration: Codable, Equatable, Sendable {
    /// The twin's generations at one δ: cliques flagged, and those whose medoid extracts one of
    /// the twin's own training images (the rest are false flags).
    public struct Point: Codable, Equatable, Sendable {
        public var threshold: Double
        public var flagged: Int
        public var explained: Int
        public var falseFlags: Int { flagged - explained }
        public init(threshold: Double, flagged: Int, explained: Int) { self.threshold = threshold; self.flagged = flagged; self.explained = explained }
    }
    /// The δ values tried: 0.02, 0.03, …, 0.30 (tiled normalized ℓ2; at 0.02 two images
    /// differ by ~5 of 255 levels per pixel in every tile).
    public static let grid: [Double] = (2...30).map { Double($0) / 100 }

    public var samplesFile: String
    /// The non-member model whose generations and own training set calibrate δ.
    public var trainingRun: String
    /// Its own extraction (the oracle for "explained"): unique training images it extracts.
    public var ownExtracted: Int
    public var tiles: Int
    public var minSize: Int
    public var points: [Point]
    /// The chosen δ.
    public var threshold: Double
    /// false when even the smallest δ of the grid flags a false clique (δ is then that smallest
    /// value, and the filter's precision on the target is not protected by the calibration).
    public var calibrated: Bool
    public var command: String

    /// δ from points in ascending δ: the largest before the first with a false flag.
    public static func choose(_ points: [Point]) -> (threshold: Double, calibrated: Bool) {
        let sorted = points.sorted { $0.threshold < $1.threshold }
        precondition(!sorted.isEmpty, "clique calibration: no thresholds")
        guard let first = sorted.firstIndex(where: { $0.falseFlags > 0 }) else { return (sorted.last!.threshold, true) }
        return first == 0 ? (sorted[0].threshold, false) : (sorted[first - 1].threshold, true)
    }

    /// The clique filter at every δ of `grid` over a pool of `count` generations read group by
    /// group through `images` (each group's first `CliqueFilter.poolLimit`, as the filter
    /// searches), a clique counting as explained when its medoid's `relative` distance to the
    /// generating model's own training set is below `relativeThreshold`. One tiled-distance
    /// search per group at the largest δ; each smaller δ is a subgraph of it.
    public static func points(count: Int, groups: [Int], relative: [Double], relativeThreshold: Double, config: CliqueConfig, grid: [Double],
                              images: ([Int]) throws -> ImageSet) throws -> [Point] {
        precondition(groups.count == count && relative.count == count, "clique calibration: \(groups.count) labels and \(relative.count) distances for \(count) generations")
        let thresholds = grid.sorted()
        var flagged = [Int](repeating: 0, count: thresholds.count), explained = flagged
        for label in Set(groups).sorted() {
            let members = Array((0..<count).lazy.filter { groups[$0] == label }.prefix(CliqueFilter.poolLimit))
            let pool = try images(members)
            let edges = CliqueFilter.tiledPairs(pool, threshold: thresholds.last!, tiles: config.tiles)
            for (i, t) in thresholds.enumerated() {
                var c = config; c.threshold = t
                let found = CliqueFilter.cliques(CliqueFilter.graph(count: pool.count, edges: edges, threshold: t), pool: pool, members: members, group: label, config: c)
                flagged[i] += found.count
                explained[i] += found.filter { relative[$0.medoid] < relativeThreshold }.count
            }
        }
        return thresholds.indices.map { Point(threshold: thresholds[$0], flagged: flagged[$0], explained: explained[$0]) }
    }

    /// The twin's generations (`samplesFile`, of `run`) scored against `run`'s own training set
    /// (an extraction folder under `run/eval/`), then the clique filter at every δ of `grid`
    /// (one tiled-distance search at the largest, each δ a subgraph of it). Writes
    /// `<run>/eval/<name>/summary.json`.
    public static func run(run: RunDirectory, samplesFile: String, config: CliqueConfig, extraction: ExtractionConfig = ExtractionConfig(),
                           grid: [Double] = grid, name: String, force: Bool = true) throws -> CliqueCalibration {
        guard !grid.isEmpty, grid.allSatisfy({ $0 > 0 && $0.isFinite }) else { throw EvaluationError.input("clique calibration: the δ grid must be positive numbers") }
        let own = try ExtractionReport.run(run: run, samplesFile: samplesFile, config: extraction, clique: nil, force: true)
        let lock = try RunLock.acquire(run.path, mode: .shared, purpose: "evaluation")
        defer { withExtendedLifetime(lock) {} }
        let arrays = try HDF5File.open(own.outputs["arrays"]!)
        let relative = try arrays.readTensor("samples/relative", as: .float64).doubles
        try arrays.close()
        let samples = try DatasetFile(samplesFile)
        let count = try samples.shape("samples")[0]
        guard relative.count == count else { throw EvaluationError.input("\(own.outputs["arrays"]!): \(relative.count) generations scored, \(samplesFile) holds \(count)") }
        let groups = samples.attributes["conditional"] == .int(1) ? try samples.labels("samples") : [Int](repeating: -1, count: count)
        let points = try Self.points(count: count, groups: groups, relative: relative, relativeThreshold: extraction.relativeThreshold,
                                     config: config, grid: grid) { try samples.read("samples", indices: $0) }
        let (threshold, calibrated) = choose(points)
        let report = CliqueCalibration(samplesFile: samplesFile, trainingRun: run.path, ownExtracted: own.extraction.uniqueExtracted["relative"] ?? 0,
                                       tiles: config.tiles, minSize: config.minSize, points: points, threshold: threshold, calibrated: calibrated,
                                       command: EvalOutput.command)
        let final = run.path + "/eval/" + name
        let out = try EvalOutput.begin(final, force: force)
        try EvalOutput.writeJSON(report, to: out + "/summary.json")
        try EvalOutput.publish(out, to: final)
        return report
    }
}
