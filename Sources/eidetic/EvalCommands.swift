import ArgumentParser
import Data
import Diffusion
import Evaluation
import Foundation
import HDF5
import Tensor
import Training

/// `eidetic eval …`: the shared evaluator. Each subcommand writes `<run>/eval/<name>/`
/// (summary.json + HDF5 arrays + PNG/SVG figures) and prints the headline numbers.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure memorization: extraction, membership inference, nearest neighbours.",
        subcommands: [EvalExtraction.self, EvalMIA.self, EvalAudit.self, EvalInpaint.self, EvalOutliers.self, EvalQuality.self, EvalQualityClassifier.self, EvalKNN.self])
}

/// The most recently written `.h5` in a run's samples folder.
func newestSampleFile(_ run: RunDirectory) -> String? {
    func mtime(_ p: String) -> Date { ((try? FileManager.default.attributesOfItem(atPath: p))?[.modificationDate] as? Date) ?? .distantPast }
    let names = (try? FileManager.default.contentsOfDirectory(atPath: run.samples)) ?? []
    return names.filter { $0.hasSuffix(".h5") }.map { run.samples + "/" + $0 }.max { (mtime($0), $0) < (mtime($1), $1) }
}

struct EvalExtraction: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extraction",
        abstract: "Extraction of training images from a run's samples (relative ℓ2, ℓ2, Gu ratio) and the black-box clique filter.")
    @Argument(help: "Run directory.") var runDirectory: String
    @Option(help: "Sample file (default: generate --count samples, or the newest file in <run>/samples).") var samples: String?
    @Option(help: "Generate this many samples first (the run's [sample] sampler; seeds 0…N−1).") var count: Int?
    @Option(help: "Sampling batch size.") var batchSize: Int = 128
    @Option(help: "Score against the training set of this run instead (a control: a model trained on other data).") var against: String?
    @Option(help: "Relative distance α.") var alpha = 0.5
    @Option(help: "Neighbours n in the relative distance's mean.") var neighbors = 50
    @Option(help: "Relative distance threshold.") var relativeThreshold = 1.0
    @Option(help: "Normalized ℓ2 threshold (reported alongside).") var l2Threshold = 0.05
    @Option(help: "Clique filter: tiled ℓ2 edge threshold.") var cliqueThreshold = 0.15
    @Option(help: "Clique filter: tiles per side.") var cliqueTiles = 4
    @Option(help: "Clique filter: smallest clique flagged.") var cliqueMin = 10
    @Flag(help: "Skip the clique filter.") var noClique = false
    @Flag(help: "Replace an existing evaluation folder with the same settings.") var force = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        try Check.atLeast(count, 1, "--count")
        try Check.atLeast(batchSize, 1, "--batch-size")
        try Check.finite(alpha, "--alpha", min: 0, max: 1)
        try Check.atLeast(neighbors, 1, "--neighbors")
        try Check.finite(relativeThreshold, "--relative-threshold", above: 0)
        try Check.finite(l2Threshold, "--l2-threshold", min: 0)
        try Check.finite(cliqueThreshold, "--clique-threshold", min: 0)
        try Check.atLeast(cliqueTiles, 1, "--clique-tiles")
        try Check.atLeast(cliqueMin, 2, "--clique-min")
        if samples != nil && count != nil { throw ValidationError("--samples and --count: give one (a file to score, or how many samples to draw)") }
    }

    func run() throws {
        threads.apply()
        let dir = RunDirectory(runDirectory)
        var file = samples
        if let f = file, !FileManager.default.fileExists(atPath: f) { throw ValidationError("--samples: \(f): no such file") }
        if file == nil, let n = count {
            let c = try dir.loadConfig()
            let req = SampleRequest(count: n, batchSize: batchSize, sampler: c.sample.sampler, useEMA: c.sample.useEMA, precision: c.sample.precision)
            let ck = try dir.loadCheckpoint()
            let existing = sampleFilePath(run: dir, request: req, step: ck.step)
            if FileManager.default.fileExists(atPath: existing) {
                file = existing
                print("using \(existing) (the same request at the same checkpoint step; sampling is deterministic)")
            } else {
                let t0 = Date()
                file = try generateSamples(run: dir, request: req) { done, total in
                    FileHandle.standardError.write(Data("\rsampled \(done)/\(total)".utf8))
                }.file
                FileHandle.standardError.write(Data("\n".utf8))
                print(String(format: "generated %d samples in %.1f s: %@", n, Date().timeIntervalSince(t0), file!))
            }
        }
        if file == nil {
            file = newestSampleFile(dir)
            guard file != nil else { throw ValidationError("\(runDirectory): no sample files in \(dir.samples); pass --count N to generate, or --samples FILE") }
        }
        var ec = ExtractionConfig()
        ec.alpha = alpha; ec.neighbors = neighbors; ec.relativeThreshold = relativeThreshold; ec.l2Threshold = l2Threshold
        var cc = CliqueConfig()
        cc.threshold = cliqueThreshold; cc.tiles = cliqueTiles; cc.minSize = cliqueMin
        let t0 = Date()
        let r = try ExtractionReport.run(run: dir, samplesFile: file!, trainingRun: against.map(RunDirectory.init), config: ec, clique: noClique ? nil : cc, force: force)
        let e = r.extraction
        print("samples \(file!) (\(e.generations)) against \(r.training)")
        print(String(format: "nearest training image (normalized ℓ2): min %.4f, median %.4f, max %.4f", e.l2Quantiles["min"]!, e.l2Quantiles["median"]!, e.l2Quantiles["max"]!))
        print("extracted (relative ℓ2 < \(relativeThreshold), α \(alpha), n \(e.neighborsUsed)): \(e.extractedGenerations["relative"]!) generations, \(e.uniqueExtracted["relative"]!) unique training images")
        print("  ℓ2 < \(l2Threshold): \(e.uniqueExtracted["l2"]!) unique;  Gu ratio < 1/3: \(e.uniqueExtracted["ratio"]!) unique")
        print("  unique vs generations: " + e.curve.map { "\($0[0]):\($0[1])" }.joined(separator: " "))
        for n in e.notes { print("  note: \(n)") }
        if let c = r.cliques {
            print(String(format: "clique filter (tiled ℓ2 ≤ %.3f, %d×%d tiles, size ≥ %d%@): %d flagged, %d verified (precision %@), %d unique images",
                         c.config.threshold, c.config.tiles, c.config.tiles, c.config.minSize, c.grouped ? ", per class" : "",
                         c.flagged, c.verified, c.precision.map { String(format: "%.3f", $0) } ?? "n/a: nothing flagged", c.uniqueVerified))
        }
        for k in r.outputs.keys.sorted() { print("\(k): \(r.outputs[k]!)") }
        print(String(format: "evaluated in %.1f s", Date().timeIntervalSince(t0)))
    }

}

/// Exact kNN of one image file against another, streamed in blocks of queries, saved whole.
struct EvalKNN: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "knn", abstract: "Exact k nearest neighbours (normalized ℓ2) of every query image, saved to HDF5.")
    @Argument(help: "Query images: an Eidetic image/sample file.") var queries: String
    @Argument(help: "Reference images: an Eidetic image file.") var references: String
    @Option(help: "Query split.") var querySplit = "samples"
    @Option(help: "Reference split.") var referenceSplit = "train"
    @Option(help: "Neighbours per query.") var k = 50
    @Option(help: "Queries per block (memory: block × D floats).") var block = 8192
    @Option(help: "Output HDF5 file.") var out: String
    @Flag(help: "Replace an existing output file.") var force = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        try Check.atLeast(k, 1, "--k")
        try Check.atLeast(block, 1, "--block")
    }

    func run() throws {
        threads.apply()
        try OutputGuard.mayWrite(out, force: force)
        let refs = try DatasetFile(references).load(referenceSplit)
        let qf = try DatasetFile(queries)
        guard qf.splits.contains(querySplit) else { throw ValidationError("--query-split: \(queries) has no split '\(querySplit)' (it has \(qf.splits.joined(separator: ", ")))") }
        let qshape = try qf.shape(querySplit)
        let n = qshape[0]
        guard refs.count >= 1 else { throw ValidationError("\(references) \(referenceSplit): no reference images") }
        guard n >= 1 else { throw ValidationError("\(queries) \(querySplit): no query images") }
        guard Array(qshape.dropFirst()) == [refs.channels, refs.height, refs.width] else {
            throw ValidationError("\(queries) \(querySplit) images are \(qshape.dropFirst().map(String.init).joined(separator: "×")) but \(references) \(referenceSplit) images are \(refs.channels)×\(refs.height)×\(refs.width)")
        }
        guard k <= refs.count else { throw ValidationError("--k \(k) is larger than the \(refs.count) reference images") }
        let t0 = Date()
        let index = ReferenceIndex(refs)
        var table = NeighborTable(k: k)
        for start in stride(from: 0, to: n, by: block) {
            table.append(index.search(try qf.read(querySplit, indices: Array(start..<min(n, start + block))), k: k))
            FileHandle.standardError.write(Data("\r\(table.queries)/\(n) queries".utf8))
        }
        FileHandle.standardError.write(Data("\n".utf8))
        try EvalOutput.writeArrays([("distances", Tensor(table.distances, shape: [n, k], dtype: .float64))],
                                   int64: [("indices", table.indices.map(Int64.init), [n, k])],
                                   attributes: ["queries": .string("\(queries):\(querySplit)"), "references": .string("\(references):\(referenceSplit)"),
                                                "metric": .string("normalized l2 (RMS over [0,1] pixels)"), "kernel": .string(index.kernel.rawValue),
                                                "command": .string(EvalOutput.command)], to: out)
        print(String(format: "%d × %d (k = %d, %@ kernel) in %.1f s (%d queries needed the exact scan); wrote %@", n, refs.count, k, index.kernel.rawValue,
                     Date().timeIntervalSince(t0), table.exactScans, out))
    }
}

struct EvalOutliers: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outliers",
        abstract: "Correlate per-example outlier scores with membership-attack scores and extraction outcomes (Spearman ρ, decile table).")
    @Option(help: "Outlier scores (`eidetic data plan outliers` output).") var scores: String
    @Option(help: "An `eval mia` folder (its mia.h5).") var mia: String?
    @Option(help: "Attack whose scores to use.") var attack = "online-fixed-variance"
    @Option(help: "An `eval extraction` folder (its extraction.h5).") var extraction: String?
    @Option(help: "Output folder.") var out: String
    @Flag(help: "Replace an existing output folder.") var force = false

    func run() throws {
        if mia == nil && extraction == nil { throw ValidationError("give --mia and/or --extraction to join the outlier scores with") }
        try OutputGuard.mayWrite(out, force: force)
        let plan = try PlanFile.read(OutlierScores.self, from: scores)
        let m = mia.map { $0.hasSuffix(".h5") ? $0 : $0 + "/mia.h5" }
        let e = extraction.map { $0.hasSuffix(".h5") ? $0 : $0 + "/extraction.h5" }
        let r = try OutlierReport.run(outliers: plan, outlierFile: scores, mia: m, attack: attack, extraction: e, out: out)
        for j in r.joins {
            print(String(format: "%@: Spearman ρ = %.3f over %d examples; decile means %@", j.quantity, j.spearman, j.examples,
                         j.deciles.map { String(format: "%.3g", $0[3]) }.joined(separator: " ")))
        }
        for k in r.outputs.keys.sorted() { print("\(k): \(r.outputs[k]!)") }
    }
}

struct EvalInpaint: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inpaint",
        abstract: "Inpainting attack: hide half of each target, complete it many times, keep the lowest-loss completions, and compare members with non-members.")
    @Argument(help: "Run directories: one run, or the runs of --plan.") var runs: [String]
    @Option(help: "Membership plan (IN vs OUT models per target).") var plan: String?
    @Option(help: "Targets per group (single run: members and as many non-members; plan: pool examples).") var targets = 16
    @Option(help: "Completions per target.") var count = 64
    @Option(help: "Completions kept by the model's own loss.") var keep = 10
    @Option(help: "Hidden half: left, right, top, bottom.") var hidden = "right"
    @Option(help: "Sampler steps (stochastic DDIM, eta 1).") var steps = 50
    @Option(help: "RePaint resampling jumps per step.") var jumps = 0
    @Option(help: "Timestep of the ranking loss.") var rankTimestep = 100
    @Option(help: "Noise draws of the ranking loss.") var rankDraws = 4
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Output folder (default: <first run>/eval/inpaint-…-<settings hash>).") var out: String?
    @Flag(help: "Replace an existing output folder with the same settings.") var force = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        try Check.atLeast(targets, 1, "--targets")
        try Check.atLeast(count, 1, "--count")
        try Check.atLeast(keep, 1, "--keep")
        try Check.atLeast(steps, 1, "--steps")
        try Check.atLeast(jumps, 0, "--jumps")
        try Check.atLeast(rankTimestep, 0, "--rank-timestep")
        try Check.atLeast(rankDraws, 1, "--rank-draws")
        if keep > count { throw ValidationError("--keep \(keep) is larger than --count \(count)") }
    }

    func run() throws {
        threads.apply()
        guard let h = InpaintConfig.Half(rawValue: hidden) else { throw ValidationError("--hidden must be left, right, top or bottom") }
        let c = InpaintConfig(hidden: h, count: count, keep: keep, steps: steps, jumps: jumps, rankTimestep: rankTimestep, rankDraws: rankDraws, seed: seed)
        let dirs = runs.map(RunDirectory.init)
        for d in dirs {
            let T = try d.loadConfig().diffusion.timesteps
            if steps > T { throw ValidationError("--steps \(steps) exceeds \(d.path)'s diffusion.timesteps = \(T)") }
            if rankTimestep >= T { throw ValidationError("--rank-timestep \(rankTimestep) must be below \(d.path)'s diffusion.timesteps = \(T)") }
        }
        let cases: [(Int, RunDirectory, Bool)]
        let mode: String
        if let plan { cases = try InpaintReport.planCases(plan, runs: dirs, targets: targets); mode = "plan" }
        else {
            guard dirs.count == 1 else { throw ValidationError("without --plan, give exactly one run directory") }
            cases = try InpaintReport.singleRunCases(dirs[0], targets: targets, seed: seed); mode = "single-run"
        }
        struct Settings: Encodable { var config: InpaintConfig; var runs: [String]; var plan: String?; var targets: Int }
        let folder = try out ?? "\(dirs[0].path)/eval/" + EvalOutput.folderName("inpaint", "\(mode)-\(hidden)-n\(targets)-c\(count)-s\(steps)",
                                                                               settings: Settings(config: c, runs: runs, plan: plan, targets: targets))
        let r = try InpaintReport.run(cases: cases, mode: mode, config: c, out: folder, force: force)
        print(String(format: "hidden-half ℓ2 of the %d kept completions: members mean %.4f (median %.4f), non-members mean %.4f (median %.4f); AUC of −distance %.3f",
                     c.keep, r.memberKeptMean["mean"] ?? .nan, r.memberKeptMean["median"] ?? .nan,
                     r.nonMemberKeptMean["mean"] ?? .nan, r.nonMemberKeptMean["median"] ?? .nan, r.auc))
        for k in r.outputs.keys.sorted() { print("\(k): \(r.outputs[k]!)") }
    }
}

struct EvalQuality: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quality",
        abstract: "Sample quality proxy: Fréchet and kernel classifier distances (FCD, KCD — not FID) in the features of an Eidetic-trained classifier.")
    @Argument(help: "Run directory.") var runDirectory: String
    @Option(help: "Sample file (default: the newest in <run>/samples).") var samples: String?
    @Option(help: "Feature classifier (`eidetic eval quality-classifier`).") var classifier = "results/quality/cifar10-classifier.h5"
    @Option(help: "Reference split of the run's dataset.") var referenceSplit = "test"
    @Flag(help: "Replace an existing evaluation folder with the same settings.") var force = false
    @OptionGroup var threads: ThreadOptions

    func run() throws {
        threads.apply()
        let dir = RunDirectory(runDirectory)
        var file = samples
        if file == nil {
            file = newestSampleFile(dir)
            guard file != nil else { throw ValidationError("\(runDirectory): no sample files; run `eidetic sample` or pass --samples") }
        }
        guard FileManager.default.fileExists(atPath: classifier) else {
            throw ValidationError("no classifier at \(classifier): train one with `eidetic eval quality-classifier --data DATASET --out \(classifier)`")
        }
        let r = try QualityReport.run(run: dir, samplesFile: file!, classifierPath: classifier, referenceSplit: referenceSplit, force: force)
        print(String(format: "%@ (%d samples) vs %@ (%d images), classifier test accuracy %.2f%%:", file!, r.samples, r.reference, r.referenceImages, r.classifier.testAccuracy * 100))
        print(String(format: "  FCD %.3f (real-vs-real floor %.3f);  KCD×1000 %.3f ± %.3f (floor %.3f)", r.fcd, r.fcdRealFloor, r.kcd * 1000, r.kcdStd * 1000, r.kcdRealFloor * 1000))
        for b in r.baselines ?? [] {
            print(String(format: "  baseline %@: FCD %.3f;  KCD×1000 %.3f ± %.3f", b.name, b.fcd, b.kcd * 1000, b.kcdStd * 1000))
        }
        print("summary: \(r.outputs["summary"]!)")
    }
}

struct EvalQualityClassifier: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "quality-classifier", abstract: "Train the feature classifier that FCD/KCD use.")
    @Option(help: "Dataset file.") var data = "datasets/cifar10.h5"
    @Option(help: "Training split.") var trainSplit = "train"
    @Option(help: "Test split (accuracy is recorded).") var testSplit = "test"
    @Option(help: "Epochs.") var epochs = 8
    @Option(help: "Batch size.") var batchSize = 128
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Output checkpoint.") var out = "results/quality/cifar10-classifier.h5"
    @Flag(help: "Replace an existing classifier file.") var force = false

    func validate() throws {
        try Check.atLeast(epochs, 1, "--epochs")
        try Check.atLeast(batchSize, 1, "--batch-size")
        try Check.atLeast(threads, 1, "--threads")
    }

    func run() throws {
        Threads.count = threads
        try OutputGuard.mayWrite(out, force: force)
        let folder = (out as NSString).deletingLastPathComponent
        if !folder.isEmpty { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        let r = try QualityClassifier.train(dataFile: data, trainSplit: trainSplit, testSplit: testSplit, epochs: epochs, batchSize: batchSize,
                                            seed: seed, out: out, log: { print($0); fflush(stdout) })
        print(String(format: "wrote %@ (sha256 %@); test accuracy %.2f%%", out, r.checkpointSHA256 ?? "?", r.testAccuracy * 100))
    }
}
