import Data
import Foundation
import HDF5
import Tensor
import Training
import XCTest

/// Bad input and faults, through the real binary, as a user meets them: malformed and
/// impossible configs, `--set` overrides, every loader, checkpoints, plans, sample files,
/// every numeric flag, a full disk (a file-size limit makes writes fail with EFBIG) and
/// a read-only tree. Each case must end with a non-zero exit status (not a signal), exactly
/// one line on stderr, `eidetic: error: …`, naming the file, key or flag it expects, no
/// backtrace, and no file that existed before changed.
final class BadInputTests: XCTestCase {
    struct Case {
        var name: String
        var args: [String]
        /// Text the error line must contain (the file, key or flag).
        var names: String
        var fileSizeLimitKB: Int? = nil
    }

    nonisolated(unsafe) static var root = ""
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static let tinyConfig = """
    [run]
    name = "tiny"
    [data]
    file = "data.h5"
    subset = 8
    flip = false
    \(tinyUNetModelTOML)
    [train]
    batch_size = 4
    images = 200
    checkpoint_every = 10
    log_every = 10
    [sample]
    count = 4
    batch_size = 4
    sampler = "ddim"
    steps = 3
    """

    static func write(_ text: String, _ name: String) { try! text.write(toFile: root + "/" + name, atomically: true, encoding: .utf8) }
    static func config(replacing a: String, with b: String) -> String {
        precondition(tinyConfig.contains(a), "fixture: '\(a)' not in the tiny config")
        return tinyConfig.replacingOccurrences(of: a, with: b)
    }

    /// Builds the fixture once: a dataset, a trained tiny run, its samples, and bad files.
    override class func setUp() {
        super.setUp()
        root = NSTemporaryDirectory() + "eidetic-cli-\(UUID().uuidString)"
        let fm = FileManager.default
        try! fm.createDirectory(atPath: root, withIntermediateDirectories: true)
        try! fm.copyItem(atPath: repo + "/datasets/fashion-mnist-2k.h5", toPath: root + "/data.h5")
        write(tinyConfig, "tiny.toml")
        func must(_ args: [String]) {
            let r = Binary.run(args, cwd: root)
            precondition(r.status == 0, "fixture command \(args) failed: \(r.stderr)")
        }
        must(["train", "tiny.toml", "--run-dir", "run", "--stop-at", "20"])
        must(["sample", "run", "--count", "4", "--batch-size", "4", "--steps", "3"])
        must(["train", "tiny.toml", "--run-dir", "fresh", "--dry-run"])
        must(["data", "plan", "subset", "data.h5", "--size", "8", "--out", "subset.json"])
        must(["data", "plan", "membership", "data.h5", "--models", "4", "--pool", "subset.json", "--out", "member.json"])
        must(["eval", "knn", "run/samples/" + (try! fm.contentsOfDirectory(atPath: root + "/run/samples")).first { $0.hasSuffix(".h5") }!,
              "data.h5", "--k", "2", "--out", "knn.h5"])
        // an empty run directory (config, no checkpoint)
        try! fm.createDirectory(atPath: root + "/untrained", withIntermediateDirectories: true)
        try! fm.copyItem(atPath: root + "/run/config.resolved.json", toPath: root + "/untrained/config.resolved.json")
        // loaders' bad files
        write("", "empty.h5")
        try! Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 7) }).write(to: URL(fileURLWithPath: root + "/garbage.h5"))
        let d = fm.contents(atPath: root + "/data.h5")!
        try! d.prefix(d.count / 3).write(to: URL(fileURLWithPath: root + "/truncated.h5"))
        try! Data([0x1f, 0x8b, 0x08, 0, 1, 2, 3]).write(to: URL(fileURLWithPath: root + "/bad.tar.gz"))
        try! fm.createDirectory(atPath: root + "/emptydir", withIntermediateDirectories: true)
        // a run whose checkpoint is cut short, one whose weights are NaN, one whose data changed
        for name in ["run-trunc", "run-nan", "run-swapped"] { try! fm.copyItem(atPath: root + "/run", toPath: root + "/" + name) }
        let ck = fm.contents(atPath: root + "/run/checkpoints/latest.h5")!
        try! ck.prefix(ck.count / 2).write(to: URL(fileURLWithPath: root + "/run-trunc/checkpoints/latest.h5"))
        var (tree, attrs) = try! TensorFile.load(root + "/run-nan/checkpoints/latest.h5")
        let k = tree.keys.first { $0.hasPrefix("ema.") }!
        tree[k] = Tensor([Float](repeating: .nan, count: tree[k]!.count), shape: tree[k]!.shape)
        try! TensorFile.save(tree, attributes: attrs, to: root + "/run-nan/checkpoints/latest.h5")
        // run-swapped trained on swapped.h5, which is then replaced by other images
        let swappedRun = RunDirectory(root + "/run-swapped")
        var sc = try! swappedRun.loadConfig()
        sc.data.file = "swapped.h5"
        try! sc.canonicalJSON().write(to: URL(fileURLWithPath: swappedRun.config))
        write(config(replacing: "file = \"data.h5\"", with: "file = \"swapped.h5\""), "swapped.toml")
        attrs["data_file"] = .string(root + "/swapped.h5")
        attrs["training_identity"] = .string(try! sc.trainingIdentityHash())
        (tree, _) = try! TensorFile.load(root + "/run/checkpoints/latest.h5")
        try! TensorFile.save(tree, attributes: attrs, to: root + "/run-swapped/checkpoints/latest.h5")
        let all = try! DatasetFile(root + "/data.h5").load("train")
        let other = all.subset(Array((0..<all.count).reversed()))
        try! DatasetFile.write([("train", other)], attributes: [:], to: root + "/swapped.h5")
        // datasets: labels beyond the class names; 16×16 "samples"
        let bad = ImageSet(images: [UInt8](repeating: 7, count: 4 * 1024), labels: [0, 1, 5, 1], channels: 1, height: 32, width: 32, classNames: ["a", "b"])
        try! DatasetFile.write([("train", bad)], attributes: [:], to: root + "/badlabels.h5")
        let small = ImageSet(images: [UInt8](repeating: 9, count: 3 * 256), labels: [0, 0, 0], channels: 1, height: 16, width: 16, classNames: ["a"])
        try! DatasetFile.write([("samples", small), ("train", small)], attributes: [:], to: root + "/small.h5")
        // a folder of PNGs to import (one class)
        try! fm.createDirectory(atPath: root + "/pngs/shirt", withIntermediateDirectories: true)
        for i in 0..<40 {
            try! PNG.write(PNG.image(planar: all.image(i), channels: 1, height: 32, width: 32), to: root + "/pngs/shirt/\(i).png")
        }
        // configs
        write(config(replacing: "subset = 8", with: "subset = 8\nsubsett = 3"), "unknown-key.toml")
        write(config(replacing: "batch_size = 4\nimages", with: "batch_size = \"four\"\nimages"), "wrong-type.toml")
        write(config(replacing: "[train]", with: "[train]\nlr = -1e-3"), "negative-lr.toml")
        write(config(replacing: "groups = 4", with: "groups = 4\nattention_resolutions = [3]"), "attention.toml")
        write(config(replacing: "[train]", with: "[diffusion]\nbeta_start = 0.1\nbeta_end = 0.01\n[train]"), "betas.toml")
        write(config(replacing: "[train]", with: "[diffusion]\nbeta_end = 1.5\n[train]"), "beta-end.toml")
        write(config(replacing: "steps = 3", with: "steps = 5000"), "sampler-steps.toml")
        write(config(replacing: "steps = 3", with: "steps = 3\nguidance = 3.0"), "guidance.toml")
        write(config(replacing: "preset = \"\"", with: "preset = \"unet-xl\""), "preset.toml")
        write(config(replacing: "groups = 4", with: "groups = 3"), "groups.toml")
        write(config(replacing: "image_size = 32", with: "image_size = 16"), "image-size.toml")
        write(config(replacing: "file = \"data.h5\"", with: "file = \"missing.h5\""), "missing-data.toml")
        write(config(replacing: "subset = 8", with: "subset = 8\nsplit = \"validation\""), "split.toml")
        write(config(replacing: "subset = 8", with: "subset = 5000"), "subset-large.toml")
        write(config(replacing: "subset = 8", with: "plan = \"missing-plan.json\""), "missing-plan.toml")
        write(config(replacing: "subset = 8", with: "plan = \"tiny.toml\""), "not-a-plan.toml")
        write(config(replacing: "subset = 8", with: "plan = \"edited.json\""), "edited-plan.toml")
        write(config(replacing: "subset = 8", with: "plan = \"member.json\"\nplan_model = 7"), "plan-model.toml")
        write(config(replacing: "subset = 8", with: "subset = 8\nplan_model = 1"), "plan-model-alone.toml")
        write(config(replacing: "batch_size = 4\nimages", with: "batch_size = 64\nimages"), "batch-too-large.toml")
        write(config(replacing: "channel_multipliers = [1, 2]", with: "channel_multipliers = [1, 100000]"), "huge.toml")
        write(config(replacing: "[train]", with: "[diffusion]\ntimesteps = 0\n[train]"), "timesteps.toml")
        write(config(replacing: "groups = 4", with: "groups = 4\ndropout = 1.0"), "dropout.toml")
        write(config(replacing: "file = \"data.h5\"", with: "file = \"badlabels.h5\"\nsplit = \"train\""), "badlabels.toml")
        write(config(replacing: "[run]", with: "[run\nname = 3"), "syntax.toml")
        write(config(replacing: "name = \"tiny\"", with: "name = \"tiny\"\nseed = 1"), "other-seed.toml")
        write(config(replacing: "file = \"data.h5\"", with: "file = \"garbage.h5\""), "garbage-data.toml")
        var plan = try! String(contentsOfFile: root + "/subset.json", encoding: .utf8)
        plan = plan.replacingOccurrences(of: "\"seed\":0", with: "\"seed\":1")
        write(plan, "edited.json")
        write("{\"kind\": \"subset\", \"plan\": 3", "malformed.json")
        write("{\"kind\": \"subset\", \"contentSHA256\": \"x\", \"plan\": {\"dataset\": {\"file\": \"data.h5\", \"split\": \"train\", \"contentSHA256\": \"\"}, \"seed\": 0, \"size\": 2, \"perClass\": [1], \"indices\": [-4, 99999999]}}", "bad-indices.json")
        // an existing evaluation to refuse overwriting: run it once
        must(["eval", "extraction", "run", "--no-clique"])
    }

    override class func tearDown() {
        try? FileManager.default.removeItem(atPath: root)
        super.tearDown()
    }

    var sampleFile: String { "run/samples/" + (try! FileManager.default.contentsOfDirectory(atPath: Self.root + "/run/samples")).first { $0.hasSuffix(".h5") }! }

    /// Cases as a table; each line is one way to get it wrong.
    var cases: [Case] {
        let s = sampleFile
        return [
            // configs and --set
            Case(name: "missing config", args: ["train", "nope.toml"], names: "nope.toml"),
            Case(name: "TOML syntax", args: ["train", "syntax.toml"], names: "syntax.toml"),
            Case(name: "unknown key", args: ["train", "unknown-key.toml"], names: "data.subsett"),
            Case(name: "wrong type", args: ["train", "wrong-type.toml"], names: "train.batch_size"),
            Case(name: "negative lr", args: ["train", "negative-lr.toml"], names: "train.lr"),
            Case(name: "attention resolution", args: ["train", "attention.toml"], names: "attention_resolutions"),
            Case(name: "beta_start > beta_end", args: ["train", "betas.toml"], names: "beta_start"),
            Case(name: "beta_end ≥ 1", args: ["train", "beta-end.toml"], names: "beta_end"),
            Case(name: "sampler steps > T", args: ["train", "sampler-steps.toml"], names: "sample.steps"),
            Case(name: "guidance, unconditional", args: ["train", "guidance.toml"], names: "sample.guidance"),
            Case(name: "unknown preset", args: ["train", "preset.toml"], names: "model.preset"),
            Case(name: "groups", args: ["train", "groups.toml"], names: "groups"),
            Case(name: "image size vs data", args: ["train", "image-size.toml", "--run-dir", "new-imagesize"], names: "image_size"),
            Case(name: "missing dataset", args: ["train", "missing-data.toml", "--run-dir", "new-missing"], names: "missing.h5"),
            Case(name: "garbage dataset", args: ["train", "garbage-data.toml", "--run-dir", "new-garbage"], names: "garbage.h5"),
            Case(name: "unknown split", args: ["train", "split.toml", "--run-dir", "new-split"], names: "validation"),
            Case(name: "subset too large", args: ["train", "subset-large.toml", "--run-dir", "new-subset"], names: "subset"),
            Case(name: "missing plan", args: ["train", "missing-plan.toml", "--run-dir", "new-mplan"], names: "missing-plan.json"),
            Case(name: "not a plan", args: ["train", "not-a-plan.toml", "--run-dir", "new-nplan"], names: "tiny.toml"),
            Case(name: "edited plan", args: ["train", "edited-plan.toml", "--run-dir", "new-eplan"], names: "edited.json"),
            Case(name: "plan_model out of range", args: ["train", "plan-model.toml", "--run-dir", "new-pm"], names: "plan_model"),
            Case(name: "plan_model without plan", args: ["train", "plan-model-alone.toml"], names: "plan_model"),
            Case(name: "batch larger than data", args: ["train", "batch-too-large.toml", "--run-dir", "new-batch"], names: "batch_size"),
            Case(name: "huge model", args: ["train", "huge.toml"], names: "channel_multipliers"),
            Case(name: "timesteps 0", args: ["train", "timesteps.toml"], names: "diffusion.timesteps"),
            Case(name: "dropout 1", args: ["train", "dropout.toml"], names: "model.dropout"),
            Case(name: "labels beyond classes", args: ["train", "badlabels.toml", "--run-dir", "new-labels"], names: "badlabels.h5"),
            Case(name: "--set without =", args: ["train", "tiny.toml", "--set", "train.lr"], names: "--set"),
            Case(name: "--set bad value", args: ["train", "tiny.toml", "--set", "train.lr=fast"], names: "--set train.lr"),
            Case(name: "--set unknown key", args: ["train", "tiny.toml", "--set", "train.lrr=1"], names: "--set train.lrr"),
            Case(name: "--set out of range", args: ["train", "tiny.toml", "--set", "train.ema_decay=2"], names: "--set train.ema_decay"),
            Case(name: "--set value as table", args: ["train", "tiny.toml", "--set", "train=3"], names: "--set train"),
            Case(name: "--set empty key", args: ["train", "tiny.toml", "--set", "=3"], names: "--set"),
            Case(name: "--set attention", args: ["train", "tiny.toml", "--set", "model.attention_resolutions=[5]"], names: "--set model.attention_resolutions"),
            // run directories and checkpoints
            Case(name: "other config, same run dir", args: ["train", "other-seed.toml", "--run-dir", "run"], names: "run"),
            Case(name: "truncated checkpoint", args: ["train", "tiny.toml", "--run-dir", "run-trunc"], names: "latest.h5"),
            Case(name: "NaN weights: sample", args: ["sample", "run-nan", "--count", "2"], names: "run-nan"),
            Case(name: "NaN weights: resume", args: ["train", "tiny.toml", "--run-dir", "run-nan"], names: "run-nan"),
            Case(name: "data swapped: sample-free eval", args: ["eval", "extraction", "run-swapped", "--samples", s, "--no-clique"], names: "swapped.h5"),
            Case(name: "data swapped: resume", args: ["train", "swapped.toml", "--run-dir", "run-swapped"], names: "swapped.h5"),
            Case(name: "data swapped: sample", args: ["sample", "run-swapped", "--count", "2"], names: "run-swapped"),
            Case(name: "--stop-after 0", args: ["train", "tiny.toml", "--run-dir", "run", "--stop-after", "0"], names: "--stop-after"),
            Case(name: "--stop-at -1", args: ["train", "tiny.toml", "--run-dir", "run", "--stop-at", "-1"], names: "--stop-at"),
            Case(name: "--threads 0", args: ["train", "tiny.toml", "--run-dir", "run", "--threads", "0"], names: "--threads"),
            Case(name: "--stop-after not a number", args: ["train", "tiny.toml", "--stop-after", "ten"], names: "--stop-after"),
            // sampling
            Case(name: "sample --count 0", args: ["sample", "run", "--count", "0"], names: "--count"),
            Case(name: "sample --count -5", args: ["sample", "run", "--count", "-5"], names: "--count"),
            Case(name: "sample --batch-size 0", args: ["sample", "run", "--batch-size", "0"], names: "--batch-size"),
            Case(name: "sample --steps 0", args: ["sample", "run", "--steps", "0"], names: "--steps"),
            Case(name: "sample --steps > T", args: ["sample", "run", "--steps", "5000"], names: "--steps"),
            Case(name: "sample --eta nan", args: ["sample", "run", "--eta", "nan"], names: "--eta"),
            Case(name: "sample --eta -1", args: ["sample", "run", "--eta", "-1"], names: "--eta"),
            Case(name: "sample guidance, unconditional", args: ["sample", "run", "--guidance", "3"], names: "--guidance"),
            Case(name: "sample --sampler", args: ["sample", "run", "--sampler", "euler"], names: "--sampler"),
            Case(name: "sample --spacing", args: ["sample", "run", "--spacing", "random"], names: "--spacing"),
            Case(name: "sample not a run", args: ["sample", "emptydir"], names: "emptydir"),
            Case(name: "sample untrained", args: ["sample", "untrained"], names: "untrained"),
            Case(name: "sample exists", args: ["sample", "run", "--count", "4", "--batch-size", "4", "--steps", "3"], names: ".h5"),
            Case(name: "sample --threads 0", args: ["sample", "run", "--threads", "0"], names: "--threads"),
            Case(name: "sample --first-seed overflow", args: ["sample", "run", "--first-seed", "18446744073709551615"], names: "--first-seed"),
            // evaluation
            Case(name: "extraction --count 0", args: ["eval", "extraction", "run", "--count", "0"], names: "--count"),
            Case(name: "extraction missing samples", args: ["eval", "extraction", "run", "--samples", "none.h5"], names: "none.h5"),
            Case(name: "extraction garbage samples", args: ["eval", "extraction", "run", "--samples", "garbage.h5"], names: "garbage.h5"),
            Case(name: "extraction truncated samples", args: ["eval", "extraction", "run", "--samples", "truncated.h5"], names: "truncated.h5"),
            Case(name: "extraction --alpha 2", args: ["eval", "extraction", "run", "--alpha", "2"], names: "--alpha"),
            Case(name: "extraction --neighbors 0", args: ["eval", "extraction", "run", "--neighbors", "0"], names: "--neighbors"),
            Case(name: "extraction --clique-tiles 0", args: ["eval", "extraction", "run", "--clique-tiles", "0"], names: "--clique-tiles"),
            Case(name: "extraction --relative-threshold inf", args: ["eval", "extraction", "run", "--relative-threshold", "inf"], names: "--relative-threshold"),
            Case(name: "extraction --samples and --count", args: ["eval", "extraction", "run", "--samples", s, "--count", "4"], names: "--count"),
            Case(name: "extraction wrong image size", args: ["eval", "extraction", "run", "--samples", "small.h5"], names: "small.h5"),
            Case(name: "extraction exists", args: ["eval", "extraction", "run", "--no-clique"], names: "--force"),
            Case(name: "extraction --against not a run", args: ["eval", "extraction", "run", "--samples", s, "--against", "emptydir"], names: "emptydir"),
            Case(name: "knn --k 0", args: ["eval", "knn", s, "data.h5", "--k", "0", "--out", "k.h5"], names: "--k"),
            Case(name: "knn --k > N", args: ["eval", "knn", "small.h5", "small.h5", "--k", "50", "--out", "k.h5"], names: "--k"),
            Case(name: "knn --block 0", args: ["eval", "knn", s, "data.h5", "--block", "0", "--out", "k.h5"], names: "--block"),
            Case(name: "knn image sizes differ", args: ["eval", "knn", "small.h5", "data.h5", "--out", "k.h5"], names: "small.h5"),
            Case(name: "knn missing queries", args: ["eval", "knn", "none.h5", "data.h5", "--out", "k.h5"], names: "none.h5"),
            Case(name: "knn --out exists", args: ["eval", "knn", s, "data.h5", "--k", "2", "--out", "knn.h5"], names: "knn.h5"),
            Case(name: "knn unknown split", args: ["eval", "knn", s, "data.h5", "--reference-split", "dev", "--out", "k.h5"], names: "dev"),
            Case(name: "mia --timesteps 5000", args: ["eval", "mia", "run", "--timesteps", "5000"], names: "--timesteps"),
            Case(name: "mia --timesteps text", args: ["eval", "mia", "run", "--timesteps", "abc"], names: "--timesteps"),
            Case(name: "mia --draws 0", args: ["eval", "mia", "run", "--draws", "0"], names: "--draws"),
            Case(name: "mia --non-members too many", args: ["eval", "mia", "run", "--non-members", "999999"], names: "999999"),
            Case(name: "mia NaN weights", args: ["eval", "mia", "run-nan"], names: "run-nan"),
            Case(name: "mia --signals missing", args: ["eval", "mia", "--signals", "none.h5"], names: "none.h5"),
            Case(name: "mia --signals garbage", args: ["eval", "mia", "--signals", "garbage.h5"], names: "garbage.h5"),
            Case(name: "mia --signals without signals dataset", args: ["eval", "mia", "--signals", "knn.h5"], names: "knn.h5"),
            Case(name: "mia plan, run not on the plan", args: ["eval", "mia", "--plan", "member.json", "run"], names: "run"),
            Case(name: "inpaint --count 0", args: ["eval", "inpaint", "run", "--count", "0"], names: "--count"),
            Case(name: "inpaint --keep > --count", args: ["eval", "inpaint", "run", "--count", "2", "--keep", "5"], names: "--keep"),
            Case(name: "inpaint --steps 0", args: ["eval", "inpaint", "run", "--steps", "0"], names: "--steps"),
            Case(name: "inpaint --rank-timestep", args: ["eval", "inpaint", "run", "--rank-timestep", "5000"], names: "--rank-timestep"),
            Case(name: "inpaint --hidden", args: ["eval", "inpaint", "run", "--hidden", "diagonal"], names: "--hidden"),
            Case(name: "inpaint --targets 0", args: ["eval", "inpaint", "run", "--targets", "0"], names: "--targets"),
            Case(name: "quality, no classifier", args: ["eval", "quality", "run", "--classifier", "none.h5"], names: "none.h5"),
            Case(name: "quality, garbage classifier", args: ["eval", "quality", "run", "--classifier", "garbage.h5"], names: "garbage.h5"),
            Case(name: "outliers, nothing to join", args: ["eval", "outliers", "--scores", "subset.json", "--out", "o"], names: "--mia"),
            Case(name: "outliers, wrong plan kind", args: ["eval", "outliers", "--scores", "subset.json", "--extraction", "x", "--out", "o"], names: "subset.json"),
            Case(name: "quality-classifier --epochs 0", args: ["eval", "quality-classifier", "--epochs", "0"], names: "--epochs"),
            // data import, info, grid and plans
            Case(name: "import --out exists", args: ["data", "import", "cifar10", "--from", "bad.tar.gz", "--out", "data.h5"], names: "data.h5"),
            Case(name: "import --subset 0", args: ["data", "import", "folder", "--from", "emptydir", "--subset", "0", "--out", "n.h5"], names: "--subset"),
            Case(name: "import cifar10 without --from", args: ["data", "import", "cifar10", "--out", "n.h5"], names: "--from"),
            Case(name: "import broken archive", args: ["data", "import", "cifar10", "--from", "bad.tar.gz", "--out", "n.h5"], names: "bad.tar.gz"),
            Case(name: "import --channels 2", args: ["data", "import", "fashion-mnist", "--channels", "2", "--out", "n.h5"], names: "--channels"),
            Case(name: "import fashion-mnist, empty folder", args: ["data", "import", "fashion-mnist", "--from", "emptydir", "--out", "n.h5"], names: "emptydir"),
            Case(name: "import empty image folder", args: ["data", "import", "folder", "--from", "emptydir", "--out", "n.h5"], names: "emptydir"),
            Case(name: "info garbage", args: ["data", "info", "garbage.h5"], names: "garbage.h5"),
            Case(name: "info empty file", args: ["data", "info", "empty.h5"], names: "empty.h5"),
            Case(name: "info truncated", args: ["data", "info", "truncated.h5"], names: "truncated.h5"),
            Case(name: "grid --count 0", args: ["data", "grid", "data.h5", "--count", "0", "--out", "g.png"], names: "--count"),
            Case(name: "grid --indices", args: ["data", "grid", "data.h5", "--indices", "1,99999", "--out", "g.png"], names: "--indices"),
            Case(name: "grid --out exists", args: ["data", "grid", "data.h5", "--out", "tiny.toml"], names: "tiny.toml"),
            Case(name: "plan membership --models 3", args: ["data", "plan", "membership", "data.h5", "--models", "3", "--out", "p.json"], names: "--models"),
            Case(name: "plan audit --canaries 0", args: ["data", "plan", "audit", "data.h5", "--canaries", "0", "--out", "p.json"], names: "--canaries"),
            Case(name: "plan audit too many canaries", args: ["data", "plan", "audit", "data.h5", "--canaries", "99999", "--out", "p.json"], names: "--canaries"),
            Case(name: "eval audit, no audit plan", args: ["eval", "audit", "run"], names: "not trained on an audit plan"),
            Case(name: "eval audit --guesses", args: ["eval", "audit", "run", "--guesses", "10"], names: "--guesses"),
            Case(name: "eval audit --confidence 1", args: ["eval", "audit", "run", "--confidence", "1"], names: "--confidence"),
            Case(name: "eval audit --delta -1", args: ["eval", "audit", "run", "--delta", "-1"], names: "--delta"),
            Case(name: "plan subset --size 0", args: ["data", "plan", "subset", "data.h5", "--size", "0", "--out", "p.json"], names: "--size"),
            Case(name: "plan subset too large", args: ["data", "plan", "subset", "data.h5", "--size", "99999", "--out", "p.json"], names: "99999"),
            Case(name: "plan duplicates --canaries", args: ["data", "plan", "duplicates", "data.h5", "--canaries", "2:x", "--out", "p.json"], names: "--canaries"),
            Case(name: "plan outliers --neighbors 0", args: ["data", "plan", "outliers", "data.h5", "--neighbors", "0", "--out", "p.json"], names: "--neighbors"),
            Case(name: "plan dedup --threshold nan", args: ["data", "plan", "dedup", "data.h5", "--threshold", "nan", "--out", "p.json"], names: "--threshold"),
            Case(name: "plan --out exists", args: ["data", "plan", "subset", "data.h5", "--size", "8", "--out", "subset.json"], names: "subset.json"),
            Case(name: "plan unknown split", args: ["data", "plan", "subset", "data.h5", "--split", "dev", "--size", "8", "--out", "p.json"], names: "dev"),
            Case(name: "plan on labels beyond classes", args: ["data", "plan", "subset", "badlabels.h5", "--size", "2", "--out", "p.json"], names: "badlabels.h5"),
            Case(name: "plan pool malformed", args: ["data", "plan", "membership", "data.h5", "--models", "2", "--pool", "malformed.json", "--out", "p.json"], names: "malformed.json"),
            Case(name: "plan pool bad indices", args: ["data", "plan", "membership", "data.h5", "--models", "2", "--pool", "bad-indices.json", "--out", "p.json"], names: "bad-indices.json"),
            // other commands
            Case(name: "describe unknown", args: ["describe", "unet-xl"], names: "unet-xl"),
            Case(name: "status not a run", args: ["status", "emptydir"], names: "emptydir"),
            Case(name: "unknown option", args: ["sample", "run", "--colour"], names: "--colour"),
            // full disk: writes fail past a 256 KB file-size limit
            Case(name: "full disk: import", args: ["data", "import", "folder", "--from", "pngs", "--out", "n.h5"], names: "n.h5", fileSizeLimitKB: 16),
            Case(name: "full disk: plan", args: ["data", "plan", "outliers", "data.h5", "--neighbors", "5", "--out", "p.json"], names: "p.json", fileSizeLimitKB: 16),
            Case(name: "full disk: eval knn", args: ["eval", "knn", "data.h5", "data.h5", "--query-split", "test", "--k", "50", "--out", "k.h5"], names: "k.h5", fileSizeLimitKB: 64),
        ]
    }

    func check(_ c: Case, file: StaticString = #filePath, line: UInt = #line) {
        let before = FolderSnapshot(Self.root)
        let r = Binary.run(c.args, cwd: Self.root, fileSizeLimitKB: c.fileSizeLimitKB)
        let what = "[\(c.name)] eidetic \(c.args.joined(separator: " "))"
        XCTAssertFalse(r.timedOut, "\(what): timed out", file: file, line: line)
        XCTAssertFalse(r.signaled, "\(what): killed by a signal (crash): \(r.stderr)", file: file, line: line)
        XCTAssertNotEqual(r.status, 0, "\(what): exit status 0; stdout: \(r.stdout.suffix(300))", file: file, line: line)
        // progress lines (\r-updated counters) are not messages
        let lines = r.stderr.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).map(String.init)
            .filter { !$0.isEmpty && $0.range(of: #"^(sampled \d+/\d+|\d+/\d+ queries|.*: losses \d+/\d+)$"#, options: .regularExpression) == nil }
        XCTAssertEqual(lines.count, 1, "\(what): stderr should be one line, got: \(r.stderr)", file: file, line: line)
        let message = lines.last ?? ""
        XCTAssertTrue(message.hasPrefix("eidetic: error: "), "\(what): \(message)", file: file, line: line)
        XCTAssertTrue(message.contains(c.names), "\(what): the message does not name '\(c.names)': \(message)", file: file, line: line)
        for bad in ["Fatal error", "Stack dump", "backtrace", "Current stack trace", "NSCocoaErrorDomain", "Error Domain=", "Usage:"] {
            XCTAssertFalse(r.stderr.contains(bad) || r.stdout.contains(bad), "\(what): output contains '\(bad)'", file: file, line: line)
        }
        let changed = FolderSnapshot(Self.root).changed(since: before)
        XCTAssertEqual(changed, [], "\(what): modified existing files", file: file, line: line)
    }

    func testEveryBadInputGetsOneClearLineAndChangesNothing() {
        let all = cases
        XCTAssertGreaterThanOrEqual(all.count, 80)
        for c in all { check(c) }
    }

    /// A full disk while writing a checkpoint: the error names the file, and the previous
    /// checkpoint is intact and still resumes.
    func testFullDiskKeepsTheLastCheckpoint() throws {
        let ck = Self.root + "/run/checkpoints/latest.h5"
        let before = FileManager.default.contents(atPath: ck)
        let r = Binary.run(["train", "tiny.toml", "--run-dir", "run", "--stop-at", "30"], cwd: Self.root, fileSizeLimitKB: 256)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertFalse(r.signaled, r.stderr)
        XCTAssertEqual(FileManager.default.contents(atPath: ck), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: Self.root + "/run/checkpoints"), ["latest.h5"], "temporary files left behind")
    }
}
