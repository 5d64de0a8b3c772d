import Data
import Foundation
import HDF5
import Tensor

/// `eidetic eval outliers`: are the unusual examples the vulnerable ones? (Carlini et al.,
/// 2023, §5.2/§7; paper-spec §7, P9.) Joins a per-example outlier score (mean normalized ℓ2
/// to the n nearest other examples of the pool, `OutlierScores`) with per-example attack
/// scores from an `eval mia` folder and/or extraction outcomes from an `eval extraction`
/// folder, by dataset index; reports Spearman's ρ and a decile table.
public struct OutlierReport: Codable, Sendable {
    public struct Join: Codable, Sendable {
        public var quantity: String
        public var examples: Int
        public var spearman: Double
        /// Outlier-score deciles (ascending): key range, count, mean of the quantity.
        public var deciles: [[Double]]
    }
    public var outlierScores: String
    public var neighbors: Int
    public var joins: [Join]
    public var command: String
    public var outputs: [String: String]

    /// Per-example mean attack score on member trials ("how strongly the attack flags the
    /// example when it is in training") and member − non-member mean, by dataset index.
    static func attackScores(_ miaFile: String, attack: String) throws -> (member: [Int: Double], gap: [Int: Double]) {
        let f = try HDF5File.open(miaFile)
        guard f.contains("\(attack)/scores") else {
            throw EvaluationError.input("\(miaFile): no attack '\(attack)' (has: \(f.datasetNames.filter { f.contains("\($0)/scores") }.joined(separator: ", ")))")
        }
        let ids = try f.readInt64("examples/dataset_indices").values.map(Int.init)
        let scores = try f.readTensor("\(attack)/scores", as: .float64).doubles
        let ex = try f.readInt64("\(attack)/example").values.map(Int.init)
        let mem = try f.readInt64("\(attack)/members").values.map { $0 == 1 }
        var inSum: [Int: (Double, Int)] = [:], outSum: [Int: (Double, Int)] = [:]
        for t in scores.indices {
            let id = ids[ex[t]]
            if mem[t] { inSum[id, default: (0, 0)].0 += scores[t]; inSum[id, default: (0, 0)].1 += 1 }
            else { outSum[id, default: (0, 0)].0 += scores[t]; outSum[id, default: (0, 0)].1 += 1 }
        }
        let member = inSum.mapValues { $0.0 / Double($0.1) }
        var gap: [Int: Double] = [:]
        for (id, m) in member { if let o = outSum[id] { gap[id] = m - o.0 / Double(o.1) } }
        return (member, gap)
    }

    /// Per training image (dataset index): 1 if some generation extracts it (relative rule), else 0;
    /// and the smallest relative distance of any generation to it (∞ if it is never the nearest).
    static func extractionOutcomes(_ extractionFile: String, threshold: Double) throws -> (extracted: [Int: Double], closest: [Int: Double]) {
        let f = try HDF5File.open(extractionFile)
        let training = try f.readInt64("training/dataset_indices").values.map(Int.init)
        let nearest = try f.readInt64("samples/nearest_dataset_index").values.map(Int.init)
        let rel = try f.readTensor("samples/relative", as: .float64).doubles
        var closest = Dictionary(uniqueKeysWithValues: Set(training).map { ($0, Double.infinity) })
        for (i, id) in nearest.enumerated() { closest[id] = min(closest[id] ?? .infinity, rel[i]) }
        return (closest.mapValues { $0 < threshold ? 1 : 0 }, closest)
    }

    public static func run(outliers: OutlierScores, outlierFile: String, mia: String?, attack: String, extraction: String?,
                           relativeThreshold: Double = 1, out: String) throws -> OutlierReport {
        let score = Dictionary(zip(outliers.indices, outliers.scores), uniquingKeysWith: { a, _ in a })
        var quantities: [(String, [Int: Double])] = []
        if let mia {
            let (m, g) = try attackScores(mia, attack: attack)
            quantities.append(("\(attack) score when member", m))
            if !g.isEmpty { quantities.append(("\(attack) score gap (member − non-member)", g)) }
        }
        if let extraction {
            let (e, c) = try extractionOutcomes(extraction, threshold: relativeThreshold)
            quantities.append(("extracted (relative ℓ2 < \(relativeThreshold))", e))
            // closeness 1 / (1 + closest relative ℓ2): bounded, monotone in the distance (so
            // Spearman's ρ is that of −distance), and exactly 0 in the limit for an image that
            // is no generation's nearest — no placeholder value enters the decile means
            quantities.append(("closeness 1/(1 + closest relative ℓ2)", c.mapValues { $0.isNaN ? .nan : 1 / (1 + $0) }.filter { !$0.value.isNaN }))
        }
        guard !quantities.isEmpty else { throw EvaluationError.input("eval outliers: give --mia and/or --extraction to join with") }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var joins: [Join] = []
        var plot = SVGPlot(title: "Outlier score deciles", xLabel: "outlier decile (mean ℓ2 to \(outliers.neighbors) nearest)", yLabel: "mean (normalized per quantity)")
        for (name, q) in quantities {
            let ids = q.keys.filter { score[$0] != nil }.sorted()
            guard ids.count >= 3 else {
                throw EvaluationError.mismatch("\(outlierFile): only \(ids.count) examples in common with \(name) — were the outlier scores computed on the same pool?")
            }
            let x = ids.map { score[$0]! }, y = ids.map { q[$0]! }
            let bins = RankStatistics.binMeans(key: x, value: y, bins: min(10, ids.count))
            joins.append(Join(quantity: name, examples: ids.count, spearman: RankStatistics.spearman(x, y),
                              deciles: bins.map { [$0.lowKey, $0.highKey, Double($0.count), $0.mean] }))
            let lo = bins.map(\.mean).min() ?? 0, hi = bins.map(\.mean).max() ?? 1
            plot.series.append(.init(name: name, x: bins.indices.map { Double($0 + 1) }, y: bins.map { hi > lo ? ($0.mean - lo) / (hi - lo) : 0.5 }))
        }
        try plot.write(to: out + "/deciles.svg")
        let report = OutlierReport(outlierScores: outlierFile, neighbors: outliers.neighbors, joins: joins, command: EvalOutput.command,
                                   outputs: ["summary": out + "/summary.json", "deciles": out + "/deciles.svg"])
        try EvalOutput.writeJSON(report, to: out + "/summary.json")
        return report
    }
}
