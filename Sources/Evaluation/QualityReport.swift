import Data
import Foundation
import Tensor
import Training

/// `eidetic eval quality`: FCD and KCD of a run's samples against real images of the run's
/// dataset (default: its test split), in the features of an Eidetic-trained classifier,
/// with the real-vs-real floor (training images against the same reference) alongside.
public struct QualityReport: Codable, Sendable {
    public var samplesFile: String
    public var samples: Int
    public var reference: String
    public var referenceImages: Int
    public var classifier: ClassifierRecord
    public var classifierPath: String
    /// Fréchet classifier distance (not FID) of samples vs reference, and of as many real
    /// training images vs reference (the floor a perfect generator would reach).
    public var fcd: Double
    public var fcdRealFloor: Double
    /// Kernel classifier distance (KID-style, ×1000 is customary for display), mean and std over subsets.
    public var kcd: Double
    public var kcdStd: Double
    public var kcdRealFloor: Double
    public var command: String
    public var outputs: [String: String]

    public static func run(run: RunDirectory, samplesFile: String, classifierPath: String, referenceSplit: String = "test",
                           maxReference: Int = 10_000, out: String? = nil, force: Bool = true) throws -> QualityReport {
        let lock = try RunLock.acquire(run.path, mode: .shared, purpose: "evaluation")
        defer { withExtendedLifetime(lock) {} }
        let stem = ((samplesFile as NSString).lastPathComponent as NSString).deletingPathExtension
        struct Settings: Encodable { var samples: String; var classifier: String; var reference: String; var maxReference: Int }
        let final = try out ?? run.path + "/eval/" + EvalOutput.folderName("quality", stem, settings: Settings(
            samples: absoluteEvalPath(samplesFile), classifier: absoluteEvalPath(classifierPath), reference: referenceSplit, maxReference: maxReference))
        if !force && FileManager.default.fileExists(atPath: final) {
            throw EvaluationError.input("\(final) exists (same evaluation, same settings); pass --force to replace it")
        }
        let (model, record) = try QualityClassifier.load(classifierPath)
        let gens = try DatasetFile(samplesFile).load("samples")
        guard gens.count >= 2 else { throw EvaluationError.input("\(samplesFile): \(gens.count) samples; Fréchet and kernel distances need at least 2") }
        let ck = try run.loadCheckpoint()
        let c = ck.config
        let ds = try DatasetFile(ck.data.file)
        guard ds.splits.contains(referenceSplit) else { throw EvaluationError.input("--reference-split: \(ck.data.file) has no split '\(referenceSplit)' (it has \(ds.splits.joined(separator: ", ")))") }
        let refAll = try ds.load(referenceSplit)
        guard refAll.channels == gens.channels && refAll.height == gens.height && refAll.width == gens.width else {
            throw EvaluationError.input("\(samplesFile): samples \(gens.channels)×\(gens.height)×\(gens.width) vs reference \(c.data.file) \(referenceSplit) \(refAll.channels)×\(refAll.height)×\(refAll.width)")
        }
        let trainSplit = try ds.load(c.data.split)
        if DatasetReference.contentHash(trainSplit) != record.datasetSHA256 {
            throw EvaluationError.mismatch("\(classifierPath) was trained on \(record.dataset) \(record.trainSplit), not on \(c.data.file) (content hashes differ)")
        }
        let ref = refAll.subset(Array(0..<min(maxReference, refAll.count)))
        let real = trainSplit.subset(Array(randomPermutation(trainSplit.count, key: RandomKey(seed: 0).fold("quality-floor")).prefix(gens.count)))
        let d = FeatureClassifier.featureDimension
        let fg = QualityClassifier.features(model, gens), fr = QualityClassifier.features(model, ref), ft = QualityClassifier.features(model, real)
        let kg = FeatureDistance.kernel(fg, fr, dimension: d), kt = FeatureDistance.kernel(ft, fr, dimension: d)
        let folder = try EvalOutput.begin(final, force: force)
        let report = QualityReport(samplesFile: samplesFile, samples: gens.count, reference: "\(c.data.file) \(referenceSplit)", referenceImages: ref.count,
                                   classifier: record, classifierPath: classifierPath,
                                   fcd: FeatureDistance.frechet(fg, fr, dimension: d), fcdRealFloor: FeatureDistance.frechet(ft, fr, dimension: d),
                                   kcd: kg.mean, kcdStd: kg.std, kcdRealFloor: kt.mean, command: EvalOutput.command,
                                   outputs: ["summary": final + "/summary.json"])
        try EvalOutput.writeJSON(report, to: folder + "/summary.json")
        try EvalOutput.publish(folder, to: final)
        return report
    }
}
