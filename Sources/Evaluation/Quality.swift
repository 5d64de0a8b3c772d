import Data
import Foundation
import HDF5
import NN
import Optim
import Tensor

/// A sample-quality proxy without Inception weights (paper-spec §11.1): distances between
/// feature distributions, with features from a small CIFAR-10 classifier trained by Eidetic
/// itself. Named for what they are — "Fréchet classifier distance" (FCD) and "kernel
/// classifier distance" (KCD) — and never "FID": the numbers are not comparable with FID.
public final class FeatureClassifier: Module {
    public let body: Sequential
    public let head: Linear
    public static let featureDimension = 128

    /// conv-BN-ReLU ×2 at 32, 64 and 128 channels with 2× average pooling between stages,
    /// global average pooling to 128 features, linear to the classes. ~0.29 M parameters.
    public init(channels: Int, classes: Int, key: RandomKey) {
        var layers: [any Layer] = []
        var cin = channels
        for (s, cout) in [32, 64, 128].enumerated() {
            for j in 0..<2 {
                layers += [Conv2d(cin, cout, kernel: 3, padding: 1, key: key.fold("c\(s)\(j)")), BatchNorm(channels: cout), Activation(.relu)]
                cin = cout
            }
            if s < 2 { layers.append(AvgPool(2)) }
        }
        body = Sequential(layers)
        head = Linear(128, classes, key: key.fold("head"))
    }

    /// [N, 128] penultimate features.
    public func features(_ x: Tensor) -> Tensor { body(x).mean(axes: [2, 3]) }
    public func callAsFunction(_ x: Tensor) -> Tensor { head(features(x)) }
}

/// What a quality number was measured with: enough to retrain the classifier and to tell
/// whether a checkpoint is the one that produced a number.
public struct ClassifierRecord: Codable, Equatable, Sendable {
    public var command: String
    public var dataset: String
    public var datasetSHA256: String
    public var trainSplit: String
    public var testSplit: String
    public var epochs: Int
    public var batchSize: Int
    public var seed: UInt64
    public var testAccuracy: Double
    public var featureDimension: Int
    /// Filled when loading: SHA-256 of the checkpoint file.
    public var checkpointSHA256: String?
}

public enum QualityClassifier {
    /// Trains the feature classifier (Adam 2e-3 with cosine decay, flips) and writes it with its record.
    public static func train(dataFile: String, trainSplit: String = "train", testSplit: String = "test", epochs: Int = 8, batchSize: Int = 128,
                             seed: UInt64 = 0, out: String, log: (String) -> Void = { print($0) }) throws -> ClassifierRecord {
        let ds = try DatasetFile(dataFile)
        let train = try ds.load(trainSplit), test = try ds.load(testSplit)
        let classes = max(ds.classNames.count, (train.labels.max() ?? 0) + 1)
        let key = RandomKey(seed: seed)
        let model = FeatureClassifier(channels: train.channels, classes: classes, key: key.fold("init"))
        let opt = Adam(learningRate: 2e-3)
        let batchesPerEpoch = train.count / batchSize
        let steps = epochs * batchesPerEpoch
        let rates = LearningRateSchedule(base: 2e-3, decay: .cosine, totalSteps: max(steps, 1))
        var batches = BatchSchedule(count: train.count, batchSize: min(batchSize, train.count), key: key.fold("epoch"))
        var step = 0
        let t0 = Date()
        for epoch in 0..<epochs {
            var total = 0.0, n = 0
            for _ in 0..<batchesPerEpoch {
                let batch = train.subset(batches.next())
                let x = batch.tensor(flipKey: key.fold("flip").fold(UInt64(step)))
                opt.learningRate = rates.rate(at: step)
                total += try descend(model, with: opt) { crossEntropyLoss(model(x), labels: batch.labels) }
                n += 1; step += 1
            }
            log(String(format: "epoch %d/%d  loss %.4f  %.0f img/s", epoch + 1, epochs, total / Double(max(n, 1)),
                       Double(step * batchSize) / Date().timeIntervalSince(t0)))
        }
        let acc = accuracy(model, test)
        log(String(format: "test accuracy %.2f%% (%@ %@, %d images)", acc * 100, dataFile, testSplit, test.count))
        let record = ClassifierRecord(command: EvalOutput.command, dataset: dataFile, datasetSHA256: DatasetReference.contentHash(train),
                                      trainSplit: trainSplit, testSplit: testSplit, epochs: epochs, batchSize: batchSize, seed: seed,
                                      testAccuracy: acc, featureDimension: FeatureClassifier.featureDimension, checkpointSHA256: nil)
        let json = String(decoding: try JSONEncoder().encode(record), as: UTF8.self)
        try TensorFile.save(model.state(), attributes: ["record": .string(json), "channels": .int(Int64(train.channels)), "classes": .int(Int64(classes))], to: out)
        var r = record
        r.checkpointSHA256 = try fileSHA256(out)
        return r
    }

    public static func load(_ path: String) throws -> (FeatureClassifier, ClassifierRecord) {
        let (tree, attrs) = try TensorFile.load(path)
        guard case .string(let json)? = attrs["record"], case .int(let c)? = attrs["channels"], case .int(let k)? = attrs["classes"],
              var record = try? JSONDecoder().decode(ClassifierRecord.self, from: Data(json.utf8)) else {
            throw EvaluationError.input("\(path): not an Eidetic feature classifier (train one with `eidetic eval quality-classifier`)")
        }
        let model = FeatureClassifier(channels: Int(c), classes: Int(k), key: RandomKey(seed: 0))
        try model.load(tree)
        model.eval()
        record.checkpointSHA256 = try fileSHA256(path)
        return (model, record)
    }

    public static func fileSHA256(_ path: String) throws -> String {
        guard let d = FileManager.default.contents(atPath: path) else { throw EvaluationError.input("\(path): unreadable") }
        return SHA256.hex([UInt8](d))
    }

    public static func accuracy(_ model: FeatureClassifier, _ set: ImageSet) -> Double {
        let wasTraining = model.isTraining
        model.eval(); defer { model.train(wasTraining) }
        var correct = 0
        for start in stride(from: 0, to: set.count, by: 256) {
            let b = set.subset(Array(start..<min(set.count, start + 256)))
            let logits = withoutGradient { model(b.tensor()) }.doubles
            let k = logits.count / b.count
            for i in 0..<b.count {
                let row = logits[(i * k)..<((i + 1) * k)]
                if row.firstIndex(of: row.max()!)! - i * k == b.labels[i] { correct += 1 }
            }
        }
        return Double(correct) / Double(max(set.count, 1))
    }

    /// Features [N × 128] (row-major Doubles).
    public static func features(_ model: FeatureClassifier, _ set: ImageSet) -> [Double] {
        model.eval()
        var out: [Double] = []
        for start in stride(from: 0, to: set.count, by: 256) {
            let b = set.subset(Array(start..<min(set.count, start + 256)))
            out += withoutGradient { model.features(b.tensor()) }.doubles
        }
        return out
    }
}

/// Distances between two feature samples (rows of `dimension` values).
public enum FeatureDistance {
    public static func meanAndCovariance(_ x: [Double], dimension d: Int) -> ([Double], [Double]) {
        let n = x.count / d
        precondition(n >= 2, "covariance needs at least 2 samples, got \(n)")
        var mu = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mu[j] += x[i * d + j] } }
        for j in 0..<d { mu[j] /= Double(n) }
        var cov = [Double](repeating: 0, count: d * d)
        for i in 0..<n {
            for a in 0..<d {
                let xa = x[i * d + a] - mu[a]
                for b in a..<d { cov[a * d + b] += xa * (x[i * d + b] - mu[b]) }
            }
        }
        for a in 0..<d { for b in a..<d { cov[a * d + b] /= Double(n - 1); cov[b * d + a] = cov[a * d + b] } }
        return (mu, cov)
    }

    /// Fréchet distance between Gaussians: ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½)
    /// (Dowson & Landau, 1982), with the symmetric square roots by Jacobi eigendecomposition.
    public static func frechet(mu1: [Double], cov1: [Double], mu2: [Double], cov2: [Double]) -> Double {
        let d = mu1.count
        let s1 = symmetricFunction(cov1, d) { max($0, 0).squareRoot() }
        let m = multiply(multiply(s1, cov2, d), s1, d)
        let (values, _) = jacobiEigen(m, d)
        let trSqrt = values.reduce(0) { $0 + max($1, 0).squareRoot() }
        var diff = 0.0
        for j in 0..<d { diff += (mu1[j] - mu2[j]) * (mu1[j] - mu2[j]) }
        let tr = (0..<d).reduce(0) { $0 + cov1[$1 * d + $1] + cov2[$1 * d + $1] }
        return diff + tr - 2 * trSqrt
    }

    public static func frechet(_ a: [Double], _ b: [Double], dimension d: Int) -> Double {
        let (m1, c1) = meanAndCovariance(a, dimension: d), (m2, c2) = meanAndCovariance(b, dimension: d)
        return frechet(mu1: m1, cov1: c1, mu2: m2, cov2: c2)
    }

    /// Kernel distance (KID-style; Bińkowski et al., 2018): unbiased MMD² with the cubic
    /// polynomial kernel k(x, y) = (x·y / d + 1)³, averaged over `subsets` random subsets of
    /// `subsetSize` from each side; returns mean and standard deviation over subsets.
    public static func kernel(_ a: [Double], _ b: [Double], dimension d: Int, subsets: Int = 20, subsetSize: Int = 1000,
                              key: RandomKey = RandomKey(seed: 0)) -> (mean: Double, std: Double) {
        let na = a.count / d, nb = b.count / d
        let m = min(subsetSize, na, nb)
        precondition(m >= 2, "kernel distance needs at least 2 samples per side")
        func k(_ x: [Double], _ i: Int, _ y: [Double], _ j: Int) -> Double {
            var s = 0.0
            for t in 0..<d { s += x[i * d + t] * y[j * d + t] }
            let v = s / Double(d) + 1
            return v * v * v
        }
        var values: [Double] = []
        for s in 0..<subsets {
            let ia = Array(randomPermutation(na, key: key.fold("a").fold(UInt64(s))).prefix(m))
            let ib = Array(randomPermutation(nb, key: key.fold("b").fold(UInt64(s))).prefix(m))
            var kxx = 0.0, kyy = 0.0, kxy = 0.0
            for p in 0..<m {
                for q in 0..<m {
                    if p != q { kxx += k(a, ia[p], a, ia[q]); kyy += k(b, ib[p], b, ib[q]) }
                    kxy += k(a, ia[p], b, ib[q])
                }
            }
            let mm = Double(m)
            values.append(kxx / (mm * (mm - 1)) + kyy / (mm * (mm - 1)) - 2 * kxy / (mm * mm))
        }
        let mean = values.reduce(0, +) / Double(values.count)
        let std = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(values.count - 1, 1))).squareRoot()
        return (mean, std)
    }

    public static func multiply(_ a: [Double], _ b: [Double], _ d: Int) -> [Double] {
        var c = [Double](repeating: 0, count: d * d)
        for i in 0..<d { for k in 0..<d { let v = a[i * d + k]; if v == 0 { continue }; for j in 0..<d { c[i * d + j] += v * b[k * d + j] } } }
        return c
    }

    /// f(S) for symmetric S = V diag(λ) Vᵀ: V diag(f(λ)) Vᵀ.
    public static func symmetricFunction(_ s: [Double], _ d: Int, _ f: (Double) -> Double) -> [Double] {
        let (values, vectors) = jacobiEigen(s, d)
        var out = [Double](repeating: 0, count: d * d)
        for k in 0..<d {
            let fk = f(values[k])
            for i in 0..<d { let v = vectors[i * d + k] * fk; for j in 0..<d { out[i * d + j] += v * vectors[j * d + k] } }
        }
        return out
    }

    /// Eigenvalues and eigenvectors (columns) of a symmetric matrix, cyclic Jacobi rotations
    /// until the off-diagonal mass is negligible.
    public static func jacobiEigen(_ s: [Double], _ d: Int) -> ([Double], [Double]) {
        var a = s
        var v = [Double](repeating: 0, count: d * d)
        for i in 0..<d { v[i * d + i] = 1 }
        let scale = max(a.reduce(0) { $0 + $1 * $1 }, 1e-300)
        for _ in 0..<100 {
            var off = 0.0
            for i in 0..<d { for j in (i + 1)..<max(d, i + 1) { off += a[i * d + j] * a[i * d + j] } }
            if off <= 1e-26 * scale { break }
            for p in 0..<d {
                for q in (p + 1)..<max(d, p + 1) {
                    let apq = a[p * d + q]
                    if abs(apq) < 1e-300 { continue }
                    let theta = (a[q * d + q] - a[p * d + p]) / (2 * apq)
                    let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), sn = t * c
                    for k in 0..<d {
                        let akp = a[k * d + p], akq = a[k * d + q]
                        a[k * d + p] = c * akp - sn * akq; a[k * d + q] = sn * akp + c * akq
                    }
                    for k in 0..<d {
                        let apk = a[p * d + k], aqk = a[q * d + k]
                        a[p * d + k] = c * apk - sn * aqk; a[q * d + k] = sn * apk + c * aqk
                    }
                    for k in 0..<d {
                        let vkp = v[k * d + p], vkq = v[k * d + q]
                        v[k * d + p] = c * vkp - sn * vkq; v[k * d + q] = sn * vkp + c * vkq
                    }
                }
            }
        }
        return ((0..<d).map { a[$0 * d + $0] }, v)
    }
}
