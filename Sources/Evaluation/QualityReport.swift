import Data
import Foundation
import HDF5
import Models
import Tensor
import Training

/// `eidetic eval quality`: FCD and KCD of a run's samples against real images of the run's
/// dataset (default: its test split), in the features of an Eidetic-trained classifier,
/// with the real-vs-real floor (training images against the same reference) alongside, and
/// the same distances for baselines a trained model must beat: per-pixel Gaussian noise
/// matched to the training images, and for GAN runs the untrained generator (the run's
/// weights at step 0, rebuilt from its config and seed) drawn with the same seeds.
public struct QualityReport: Codable, Sendable {
    /// FCD/KCD of a reference point measured the same way as the samples.
    public struct Baseline: Codable, Sendable {
        public var name: String
        public var description: String
        public var fcd: Double
        public var kcd: Double
        public var kcdStd: Double
    }
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
    /// "gaussian-noise" always; "untrained-generator" for GAN runs.
    public var baselines: [Baseline]?
    public var command: String
    public var outputs: [String: String]

    /// `<run>/eval/quality-<samples>-<hash of the settings>`: where `run` writes by default.
    public static func defaultFolder(run: RunDirectory, samplesFile: String, classifierPath: String, referenceSplit: String = "test",
                                     maxReference: Int = 10_000) throws -> String {
        let stem = ((samplesFile as NSString).lastPathComponent as NSString).deletingPathExtension
        struct Settings: Encodable { var samples: String; var classifier: String; var reference: String; var maxReference: Int }
        return try run.path + "/eval/" + EvalOutput.folderName("quality", stem, settings: Settings(
            samples: absoluteEvalPath(samplesFile), classifier: absoluteEvalPath(classifierPath), reference: referenceSplit, maxReference: maxReference))
    }

    public static func run(run: RunDirectory, samplesFile: String, classifierPath: String, referenceSplit: String = "test",
                           maxReference: Int = 10_000, out: String? = nil, force: Bool = true) throws -> QualityReport {
        let lock = try RunLock.acquire(run.path, mode: .shared, purpose: "evaluation")
        defer { withExtendedLifetime(lock) {} }
        let final = try out ?? defaultFolder(run: run, samplesFile: samplesFile, classifierPath: classifierPath, referenceSplit: referenceSplit, maxReference: maxReference)
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
        func baseline(_ name: String, _ description: String, _ set: ImageSet) -> Baseline {
            let f = QualityClassifier.features(model, set)
            let k = FeatureDistance.kernel(f, fr, dimension: d)
            return Baseline(name: name, description: description, fcd: FeatureDistance.frechet(f, fr, dimension: d), kcd: k.mean, kcdStd: k.std)
        }
        var baselines = [baseline("gaussian-noise", "per-pixel N(mean, std) of the \(c.data.split) split, rounded and clipped to 0…255, \(gens.count) images",
                                  gaussianNoiseImages(like: trainSplit, count: gens.count, key: RandomKey(seed: 0).fold("quality-noise")))]
        if c.kind.isGAN {
            let f = try HDF5File.open(samplesFile)
            guard f.contains("samples/seeds") else { throw EvaluationError.input("\(samplesFile): no samples/seeds; the untrained-generator baseline needs the seeds the samples were drawn with") }
            let seeds = try f.readInt64("samples/seeds").values.map { UInt64(bitPattern: $0) }
            guard seeds.count == gens.count else { throw EvaluationError.input("\(samplesFile): \(seeds.count) seeds for \(gens.count) samples") }
            let g = try untrainedGenerator(c)
            let labels = c.classes > 0 ? gens.labels : nil
            let x = g.sample(seeds: seeds, labels: labels, batchSize: 250)
            let set = ImageSet(images: x.imageBytes(), labels: gens.labels, channels: gens.channels, height: gens.height, width: gens.width, classNames: gens.classNames)
            baselines.append(baseline("untrained-generator", "the run's generator at step 0 (config seed \(c.run.seed)), the sample file's seeds and labels", set))
        }
        let folder = try EvalOutput.begin(final, force: force)
        let report = QualityReport(samplesFile: samplesFile, samples: gens.count, reference: "\(c.data.file) \(referenceSplit)", referenceImages: ref.count,
                                   classifier: record, classifierPath: classifierPath,
                                   fcd: FeatureDistance.frechet(fg, fr, dimension: d), fcdRealFloor: FeatureDistance.frechet(ft, fr, dimension: d),
                                   kcd: kg.mean, kcdStd: kg.std, kcdRealFloor: kt.mean, baselines: baselines, command: EvalOutput.command,
                                   outputs: ["summary": final + "/summary.json"])
        try EvalOutput.writeJSON(report, to: folder + "/summary.json")
        try EvalOutput.publish(folder, to: final)
        return report
    }
}

/// `count` images whose pixels are independent Gaussians with each pixel's mean and standard
/// deviation over `set`, rounded and clipped to 0…255: the quality a model reaches by learning
/// first and second moments per pixel and nothing else.
public func gaussianNoiseImages(like set: ImageSet, count: Int, key: RandomKey) -> ImageSet {
    let p = set.imageSize
    var mean = [Double](repeating: 0, count: p), sq = [Double](repeating: 0, count: p)
    for i in 0..<set.count {
        let img = set.image(i)
        var j = 0
        for v in img { let x = Double(v); mean[j] += x; sq[j] += x * x; j += 1 }
    }
    let n = Double(max(set.count, 1))
    let std = (0..<p).map { (max(sq[$0] / n - (mean[$0] / n) * (mean[$0] / n), 0)).squareRoot() }
    for j in 0..<p { mean[j] /= n }
    let z = Tensor.normal([count, p], key: key, dtype: .float64).doubles
    var bytes = [UInt8](repeating: 0, count: count * p)
    for i in 0..<count {
        for j in 0..<p { bytes[i * p + j] = UInt8(min(max((mean[j] + std[j] * z[i * p + j]).rounded(), 0), 255)) }
    }
    return ImageSet(images: bytes, labels: [Int](repeating: 0, count: count), channels: set.channels, height: set.height, width: set.width, classNames: set.classNames)
}
