import ArgumentParser
import Data
import Foundation

/// `eidetic data plan …`: training-set plans written as hashed JSON.
struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan", abstract: "Make a training-set plan (subset, membership, duplicates, dedup, outliers).",
        subcommands: [Subset.self, Membership.self, Duplicates.self, Dedup.self, Outliers.self])

    struct Common: ParsableArguments {
        @Argument(help: "Dataset .h5 file.") var file: String
        @Option(help: "Split.") var split: String = "train"
        @Option(help: "Output plan .json.") var out: String

        func load() throws -> (ImageSet, DatasetReference) {
            let set = try DatasetFile(file).load(split)
            return (set, DatasetReference(file: file, split: split, contentSHA256: DatasetReference.contentHash(set)))
        }
        /// Indices from a subset plan file, or the whole split.
        func pool(_ plan: String?, _ set: ImageSet) throws -> [Int] {
            guard let plan else { return Array(0..<set.count) }
            return try PlanFile.read(SubsetPlan.self, from: plan).indices
        }
    }

    struct Subset: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Class-balanced subset of N examples.")
        @OptionGroup var common: Common
        @Option(help: "Subset size.") var size: Int
        @Option(help: "Seed.") var seed: UInt64 = 0
        func run() throws {
            let (set, ref) = try common.load()
            let plan = try SubsetPlan(dataset: ref, labels: set.labels, classes: set.classNames.count, size: size, seed: seed)
            print("subset of \(plan.indices.count) (per class \(plan.perClass)); sha256 \(try PlanFile.write(plan, to: common.out))")
        }
    }

    struct Membership: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Balanced K×N keep matrix for shadow models.")
        @OptionGroup var common: Common
        @Option(help: "Number of models K (even).") var models: Int
        @Option(help: "Subset plan whose indices form the pool (default: whole split).") var pool: String?
        @Option(help: "Seed.") var seed: UInt64 = 0
        func run() throws {
            let (set, ref) = try common.load()
            let plan = try MembershipPlan(dataset: ref, pool: try common.pool(pool, set), models: models, seed: seed)
            print("membership: \(models) models × \(plan.pool.count) examples; sha256 \(try PlanFile.write(plan, to: common.out))")
        }
    }

    struct Duplicates: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Repeat chosen canaries k times (physical copies).")
        @OptionGroup var common: Common
        @Option(help: "Base subset plan (default: whole split).") var base: String?
        @Option(help: "copies:count pairs, e.g. 2:50,4:50,16:20.") var canaries: String
        @Option(help: "Seed.") var seed: UInt64 = 0
        func run() throws {
            let (set, ref) = try common.load()
            var spec: [Int: Int] = [:]
            for part in canaries.split(separator: ",") {
                let kv = part.split(separator: ":").compactMap { Int($0) }
                guard kv.count == 2 else { throw ValidationError("--canaries: '\(part)' is not copies:count") }
                spec[kv[0], default: 0] += kv[1]
            }
            let plan = try DuplicationPlan(dataset: ref, base: try common.pool(base, set), canariesPerCopies: spec, seed: seed)
            print("duplication: \(plan.canaries.count) canaries, \(plan.trainingIndices.count) training examples; sha256 \(try PlanFile.write(plan, to: common.out))")
        }
    }

    struct Dedup: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Exact and near-duplicate groups (normalized ℓ2 < threshold).")
        @OptionGroup var common: Common
        @Option(help: "Subset plan to deduplicate (default: whole split).") var pool: String?
        @Option(help: "Normalized ℓ2 threshold.") var threshold: Double = 0.05
        func run() throws {
            let (set, ref) = try common.load()
            let plan = DeduplicationPlan(dataset: ref, images: set, candidates: try common.pool(pool, set), threshold: threshold)
            print("dedup: \(plan.exactGroups.count) exact groups, \(plan.nearGroups.count) groups in all, \(plan.kept.count) kept; sha256 \(try PlanFile.write(plan, to: common.out))")
        }
    }

    struct Outliers: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Outlier score: mean normalized ℓ2 to the n nearest neighbours.")
        @OptionGroup var common: Common
        @Option(help: "Subset plan (default: whole split).") var pool: String?
        @Option(help: "Neighbours n.") var neighbors: Int = 50
        func run() throws {
            let (set, ref) = try common.load()
            let plan = OutlierScores(dataset: ref, images: set, indices: try common.pool(pool, set), neighbors: neighbors)
            print("outliers: \(plan.scores.count) scores; sha256 \(try PlanFile.write(plan, to: common.out))")
        }
    }
}
