import Data
import Foundation
import HDF5
import Tensor
import Training

/// Shared plumbing of `eidetic eval …`: every evaluation writes one folder
/// `<run>/eval/<name>/` holding `summary.json` (numbers + provenance), HDF5 arrays and figures.
public enum EvalOutput {
    /// Writes `value` as pretty, key-sorted JSON, atomically.
    public static func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        var d = try e.encode(value); d.append(0x0a)
        try writeFileAtomically(d, to: path)
    }

    /// Writes named arrays to one HDF5 file, atomically.
    public static func writeArrays(_ arrays: [(String, Tensor)], int64: [(String, [Int64], [Int])] = [], attributes: [String: AttributeValue] = [:], to path: String) throws {
        try writeAtomically(to: path) { tmp in
            let f = try HDF5File.create(tmp)
            for (k, v) in attributes.sorted(by: { $0.key < $1.key }) { try f.setAttribute(k, v) }
            for (name, t) in arrays { try f.write(name, tensor: t) }
            for (name, v, shape) in int64 { try f.write(name, int64: v, shape: shape) }
            try f.close()
        }
    }

    public static var command: String { (["eidetic"] + CommandLine.arguments.dropFirst()).joined(separator: " ") }

    /// The code version that computes the reports (the `eidetic` binary sets it at start from
    /// `CodeVersion.current`, which lives above this module); nil in library callers and tests.
    nonisolated(unsafe) public static var codeVersion: String?

    /// A folder name for an evaluation: `<kind>-<what>-<hash of the settings>`, so runs with
    /// other options get other folders (like run directories) and the same options the same.
    public static func folderName<S: Encodable>(_ kind: String, _ what: String, settings: S) throws -> String {
        let e = JSONEncoder(); e.outputFormatting = [.sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let h = String(SHA256.hex([UInt8](try e.encode(settings))).prefix(8))
        return [kind, what, h].filter { !$0.isEmpty }.joined(separator: "-")
    }

    /// Checks, before any work, that `folder` may be written: refuses an existing folder
    /// unless `force`, and an unwritable parent. Returns a fresh temporary folder beside it
    /// that `publish` moves into place, so a killed evaluation never leaves half a folder.
    public static func begin(_ folder: String, force: Bool) throws -> String {
        let fm = FileManager.default
        if fm.fileExists(atPath: folder) && !force {
            throw EvaluationError.input("\(folder) exists (same evaluation, same settings); pass --force to replace it")
        }
        // a bare name ("--out lira") lies in the working directory
        let parent = (folder as NSString).deletingLastPathComponent.isEmpty ? "." : (folder as NSString).deletingLastPathComponent
        try fm.createDirectory(atPath: parent, withIntermediateDirectories: true)
        guard access(parent, W_OK) == 0 else { throw EvaluationError.input("\(parent): not writable") }
        // temporaries of killed evaluations of this folder
        for n in (try? fm.contentsOfDirectory(atPath: parent)) ?? [] where n.hasPrefix("." + (folder as NSString).lastPathComponent + ".tmp-") {
            if let pid = Int32(n.split(separator: "-").dropLast().last ?? ""), processIsAlive(pid) { continue }
            try? fm.removeItem(atPath: parent + "/" + n)
        }
        let tmp = parent + "/." + (folder as NSString).lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        return tmp
    }

    /// Moves the finished temporary folder into place (replacing an old one when forced).
    public static func publish(_ tmp: String, to folder: String) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: folder) {
            let old = folder + ".old-\(getpid())"
            try fm.moveItem(atPath: folder, toPath: old)
            try fm.moveItem(atPath: tmp, toPath: folder)
            try? fm.removeItem(atPath: old)
        } else {
            try fm.moveItem(atPath: tmp, toPath: folder)
        }
    }

    /// Rewrites paths under `tmp` in output maps to their published place.
    public static func published(_ outputs: [String: String], tmp: String, folder: String) -> [String: String] {
        outputs.mapValues { $0.replacingOccurrences(of: tmp, with: folder) }
    }
}

func absoluteEvalPath(_ p: String) -> String {
    p.hasPrefix("/") ? p : URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(p).standardized.path
}

/// `eidetic eval extraction`: oracle extraction (relative ℓ2, ℓ2, Gu ratio) of a run's
/// samples against the training set of a run (its own, or another's as a control), plus the
/// black-box clique filter verified against that training set.
public struct ExtractionReport: Codable, Sendable {
    public struct CliqueSummary: Codable, Sendable {
        public var config: CliqueConfig
        public var grouped: Bool
        public var flagged: Int
        /// Flagged cliques whose medoid is an extraction (relative rule) of a training image.
        public var verified: Int
        /// verified / flagged; nil (JSON null) when nothing was flagged.
        public var precision: Double?
        public var uniqueVerified: Int
        /// Unique verified images / unique images the oracle extracts from the same pool;
        /// nil when the oracle extracts nothing.
        public var recallOfOracle: Double?
        public var cliques: [Clique]
        public var verifiedTrainingIndices: [Int?]
        /// Set when a group held more than `CliqueFilter.poolLimit` generations: how many
        /// (the first of each group) the clique search covered.
        public var searchedGenerations: Int?
        /// [generations, flagged, verified, unique verified] at the oracle curve's prefixes
        /// (the filter rerun on the first n generations); nil in older reports.
        public var curve: [[Int]]?
    }
    public var samplesFile: String
    public var samplesAttributes: [String: String]
    public var trainingRun: String
    public var training: String
    public var extraction: ExtractionResult.Summary
    public var cliques: CliqueSummary?
    public var command: String
    public var outputs: [String: String]

    /// Runs the evaluation and writes `<run>/eval/extraction-<samples>[-vs-<run>]-<settings hash>/`
    /// (refusing an existing one unless `force`). The training set is the run's own, checked
    /// against its checkpoint's data hash.
    public static func run(run: RunDirectory, samplesFile: String, trainingRun: RunDirectory? = nil, config: ExtractionConfig = ExtractionConfig(),
                           clique: CliqueConfig? = CliqueConfig(), name: String? = nil, force: Bool = true) throws -> ExtractionReport {
        let lock = try RunLock.acquire(run.path, mode: .shared, purpose: "evaluation")
        defer { withExtendedLifetime(lock) {} }
        let trainRun = trainingRun ?? run
        struct Settings: Encodable { var samples: String; var against: String?; var config: ExtractionConfig; var clique: CliqueConfig? }
        let stem = ((samplesFile as NSString).lastPathComponent as NSString).deletingPathExtension
        let folder = try name ?? EvalOutput.folderName("extraction", stem + (trainingRun.map { "-vs-" + ($0.path as NSString).lastPathComponent } ?? ""),
                                                       settings: Settings(samples: absoluteEvalPath(samplesFile), against: trainingRun.map { absoluteEvalPath($0.path) }, config: config, clique: clique))
        let final = run.path + "/eval/" + folder
        let samplesDS = try DatasetFile(samplesFile)
        let shape = try samplesDS.shape("samples")
        guard shape[0] > 0 else { throw EvaluationError.input("\(samplesFile): holds no samples") }
        let ckpt = try trainRun.loadCheckpoint()
        let (split, ids, description) = try ckpt.trainingSelection(path: trainRun.checkpoint)
        let training = split.subset(ids)
        guard training.channels == shape[1] && training.height == shape[2] && training.width == shape[3] else {
            throw EvaluationError.input("\(samplesFile): samples are \(shape[1])×\(shape[2])×\(shape[3]) but \(trainRun.path) trains on \(training.channels)×\(training.height)×\(training.width) images")
        }
        let out = try EvalOutput.begin(final, force: force)
        // streamed: blocks of the sample file against one index; the kNN arrays go to disk
        // block by block (at 2^20 generations they are 1.2 GB)
        let arrays = try HDF5File.create(out + "/extraction.h5")
        let result = try Extraction.streamed(samples: samplesDS, training: training, datasetIndices: ids, config: config, arrays: arrays)
        let summary = result.summary(trainingImages: Set(ids).count)
        let per = result.samples
        let g = per.count

        var cliqueSummary: CliqueSummary? = nil
        if let cc = clique {
            let conditional = samplesDS.attributes["conditional"] == .int(1)
            // each group's first `CliqueFilter.poolLimit` generations, read from the file one group at a time
            let prefixes = summary.curve.map { $0[0] }.filter { $0 >= cc.minSize && $0 < g }
            let (cl, searched, byPrefix) = try CliqueFilter.find(count: g, groups: conditional ? try samplesDS.labels("samples") : nil, config: cc,
                                                                 prefixes: prefixes) {
                try samplesDS.read("samples", indices: $0)
            }
            func verify(_ cs: [Clique]) -> [Int?] {
                cs.map { c in
                    let s = per[c.medoid]
                    return result.extractedByRelative(s) ? s.nearestDatasetIndex : nil
                }
            }
            let verified = verify(cl)
            let curve = zip(prefixes, byPrefix).map { n, cs in
                let v = verify(cs).compactMap { $0 }
                return [n, cs.count, v.count, Set(v).count]
            } + [[g, cl.count, verified.compactMap { $0 }.count, Set(verified.compactMap { $0 }).count]]
            let uniq = Set(verified.compactMap { $0 }).count
            let oracle = summary.uniqueExtracted["relative"] ?? 0
            cliqueSummary = CliqueSummary(config: cc, grouped: conditional, flagged: cl.count, verified: verified.compactMap { $0 }.count,
                                          precision: cl.isEmpty ? nil : Double(verified.compactMap { $0 }.count) / Double(cl.count),
                                          uniqueVerified: uniq, recallOfOracle: oracle == 0 ? nil : Double(uniq) / Double(oracle),
                                          cliques: cl, verifiedTrainingIndices: verified,
                                          searchedGenerations: searched < g ? searched : nil, curve: curve)
        }

        // per-generation arrays (the kNN ones are written already)
        try arrays.setAttribute("command", .string(EvalOutput.command))
        try arrays.setAttribute("samples_file", .string(samplesFile))
        try arrays.setAttribute("training_run", .string(trainRun.path))
        for (name, v) in [("samples/l2", per.map(\.l2)), ("samples/relative", per.map(\.relative)),
                          ("samples/ratio", per.map(\.ratio)), ("samples/mean_l2", per.map(\.meanL2))] {
            try arrays.write(name, tensor: Tensor(v, shape: [g], dtype: .float64))
        }
        try arrays.write("samples/nearest_dataset_index", int64: per.map { Int64($0.nearestDatasetIndex) }, shape: [g])
        try arrays.write("training/dataset_indices", int64: ids.map(Int64.init), shape: [ids.count])
        try arrays.close()

        // pairs grid: the best generation of every extracted image, closest first (or the closest pairs if none)
        var best: [Int: Int] = [:]
        for (i, s) in per.enumerated() where result.extractedByRelative(s) {
            if let j = best[s.nearestDatasetIndex], per[j].relative <= s.relative { continue }
            best[s.nearestDatasetIndex] = i
        }
        var shown = best.values.sorted { (per[$0].relative, $0) < (per[$1].relative, $1) }
        let none = shown.isEmpty
        if none { shown = Array(per.indices.sorted { (per[$0].l2, $0) < (per[$1].l2, $1) }.prefix(32)) }
        shown = Array(shown.prefix(128))
        let shownImages = try samplesDS.read("samples", indices: shown)
        let pairs = shown.indices.map { (shownImages.image($0), training.image(per[shown[$0]].nearest)) }
        try PNG.write(PNG.pairsGrid(pairs, channels: training.channels, height: training.height, width: training.width, pairsPerRow: 8), to: out + "/pairs.png")

        var plot = SVGPlot(title: "Unique training images extracted", xLabel: "generations", yLabel: "unique extracted (relative ℓ2 < \(config.relativeThreshold))")
        plot.logX = true
        plot.series = [.init(name: "\(trainRun.path)", x: summary.curve.map { Double($0[0]) }, y: summary.curve.map { Double($0[1]) })]
        try plot.write(to: out + "/curve.svg")

        let report = ExtractionReport(
            samplesFile: samplesFile, samplesAttributes: samplesDS.attributes.mapValues { $0.description },
            trainingRun: trainRun.path, training: description, extraction: summary, cliques: cliqueSummary, command: EvalOutput.command,
            outputs: ["arrays": final + "/extraction.h5", "pairs": final + "/pairs.png" + (none ? " (nothing extracted: the closest pairs)" : ""),
                      "curve": final + "/curve.svg", "summary": final + "/summary.json"])
        try EvalOutput.writeJSON(report, to: out + "/summary.json")
        try EvalOutput.publish(out, to: final)
        return report
    }
}
