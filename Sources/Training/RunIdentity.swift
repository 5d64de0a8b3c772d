import Data
import Foundation
import HDF5
import Models
import NN
import Tensor

/// What a checkpoint was trained with, recorded in its attributes and checked by every
/// resume, sample and evaluation: the config's identity (everything that determines the
/// weights except the training length), the SHA-256 of the exact training examples (pixels
/// and labels, in selection order, copies included), and the absolute paths the data and
/// plan were read from (so a command run from another working directory finds the same
/// file, and a different file under the same name is refused by its hash).
public struct TrainingIdentity: Equatable, Sendable {
    public var configHash: String
    public var dataSHA256: String
    public var dataFile: String
    public var planFile: String

    public init(config: TrainConfig, trainingSet: ImageSet) throws {
        configHash = try config.trainingIdentityHash()
        dataSHA256 = DatasetReference.contentHash(trainingSet)
        dataFile = absolutePath(config.data.file)
        planFile = config.data.plan.isEmpty ? "" : absolutePath(config.data.plan)
    }

    public var attributes: [String: AttributeValue] {
        ["training_identity": .string(configHash), "data_sha256": .string(dataSHA256),
         "data_file": .string(dataFile), "plan_file": .string(planFile)]
    }

    /// Refuses a checkpoint written for another config or other training data. Checkpoints
    /// from before these attributes existed pass when `requireIdentity` is false (their run
    /// directory's config.resolved.json was checked instead).
    public func verify(checkpoint: String, attributes a: [String: AttributeValue], requireIdentity: Bool) throws {
        guard case .string(let c)? = a["training_identity"] else {
            if requireIdentity {
                throw TrainingError.runDirectory("\(checkpoint): records no training identity and the run has no config.resolved.json, so nothing shows which config and data it belongs to; refusing to resume it")
            }
            return
        }
        guard c == configHash else {
            throw TrainingError.runDirectory("\(checkpoint) was trained with another config (identity \(c), this config gives \(configHash)); choose another --run-dir")
        }
        if case .string(let d)? = a["data_sha256"], d != dataSHA256 {
            throw TrainingError.runDirectory("\(checkpoint) was trained on other data (training-set sha256 \(d.prefix(12))…, \(dataFile) now gives \(dataSHA256.prefix(12))…): the dataset or plan file changed; choose another --run-dir")
        }
    }
}

func absolutePath(_ p: String) -> String {
    p.hasPrefix("/") ? p : URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(p).standardized.path
}

/// Throws if any tensor holds NaN or ±inf.
public func checkFinite(_ tree: TensorTree, what: String, file: String) throws {
    for (name, t) in tree where !t.doubles.allSatisfy(\.isFinite) {
        throw TrainingError.runDirectory("\(file): \(what) '\(name)' hold NaN or infinite values (the run diverged or the file is damaged)")
    }
}

/// A run's verified checkpoint, for sampling and evaluation.
public struct RunCheckpoint {
    public let config: TrainConfig
    public let tree: TensorTree
    public let attributes: [String: AttributeValue]
    public var step: Int { if case .int(let s)? = attributes["step"] { return Int(s) }; return -1 }

    /// The data section with paths as they were at training time where those files still
    /// exist (commands may run from another working directory).
    public var data: TrainConfig.DataSection {
        var d = config.data
        if case .string(let f)? = attributes["data_file"], !f.isEmpty, FileManager.default.fileExists(atPath: f) { d.file = f }
        if case .string(let p)? = attributes["plan_file"], !p.isEmpty, FileManager.default.fileExists(atPath: p) { d.plan = p }
        return d
    }

    /// The model with the EMA (default) or raw weights loaded; refuses non-finite weights.
    public func model(useEMA: Bool, path: String) throws -> UNet {
        guard !config.kind.isGAN else { throw TrainingError.runDirectory("\(path): a \(config.kind.rawValue) run has no U-Net") }
        let model = try UNet(config.model, key: RandomKey(seed: 0))
        let weights = useEMA ? tree.subtree("ema") : tree.subtree("model")
        try checkFinite(weights, what: useEMA ? "EMA weights" : "model weights", file: path)
        try model.load(weights)
        return model
    }

    /// The generator of a GAN run with the EMA (default) or raw weights loaded (BatchNorm
    /// statistics are the generator's own); refuses non-finite weights.
    public func generator(useEMA: Bool, path: String) throws -> DCGANGenerator {
        let g = try DCGANGenerator(config.gan, key: RandomKey(seed: 0))
        try checkFinite(tree.subtree("generator"), what: "generator weights", file: path)
        try g.load(tree.subtree("generator"))
        if useEMA {
            let ema = tree.subtree("ema")
            try checkFinite(ema, what: "EMA weights", file: path)
            for (name, p) in g.parameters() {
                guard let t = ema[name], t.shape == p.shape else { throw TrainingError.runDirectory("\(path): EMA weights lack '\(name)'") }
                p.assign(t)
            }
        }
        return g
    }

    /// The discriminator of a GAN run (its own weights; there is no EMA of D).
    public func discriminator(path: String) throws -> DCGANDiscriminator {
        let d = try DCGANDiscriminator(config.gan, key: RandomKey(seed: 0))
        try checkFinite(tree.subtree("discriminator"), what: "discriminator weights", file: path)
        try d.load(tree.subtree("discriminator"))
        return d
    }

    /// The run's training selection, checked against the checkpoint's data hash.
    public func trainingSelection(path: String) throws -> (split: ImageSet, indices: [Int], description: String) {
        let sel = try Training.trainingSelection(data)
        if case .string(let want)? = attributes["data_sha256"] {
            let got = DatasetReference.contentHash(sel.split.subset(sel.indices))
            guard got == want else {
                throw TrainingError.runDirectory("\(data.file): these are not the images \(path) was trained on (training-set sha256 \(got.prefix(12))…, the checkpoint records \(want.prefix(12))…); the dataset or plan file changed")
            }
        }
        return sel
    }
}

extension RunDirectory {
    /// The run's config with `data.file` and `data.plan` as the checkpoint recorded them
    /// (absolute, where those files still exist), reading only the checkpoint's attributes.
    public func loadConfigResolvingData() throws -> TrainConfig {
        var c = try loadConfig()
        guard FileManager.default.fileExists(atPath: checkpoint) else { return c }
        let attrs = try HDF5File.open(checkpoint).attributes()
        c.data = RunCheckpoint(config: c, tree: TensorTree(), attributes: attrs).data
        return c
    }

    /// Loads the checkpoint and checks it belongs to this run's config. Fails clearly when
    /// there is no checkpoint yet.
    public func loadCheckpoint() throws -> RunCheckpoint {
        let c = try loadConfig()
        guard FileManager.default.fileExists(atPath: checkpoint) else {
            throw TrainingError.runDirectory("\(path): no checkpoint yet (checkpoints/latest.h5); train first")
        }
        let (tree, attrs) = try TensorFile.load(checkpoint)
        if case .string(let id)? = attrs["training_identity"], id != (try c.trainingIdentityHash()) {
            throw TrainingError.runDirectory("\(checkpoint) does not belong to \(config): it was trained with another config (identity \(id))")
        }
        return RunCheckpoint(config: c, tree: tree, attributes: attrs)
    }
}
