import ArgumentParser
import Data
import Foundation

/// `eidetic data plan …`: training-set plans written as hashed JSON.
struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan", abstract: "Make a training-set plan (subset, membership, duplicates, dedup, outliers, audit).",
        subcommands: [Subset.self, Membership.self, Duplicates.self, Dedup.self, Outliers.self, Audit.self])

    struct Common: ParsableArguments {
        @Argument(help: "Dataset .h5 file.") var file: String
        @Option(help: "Split.") var split: String = "train"
        @Option(help: "Output plan .json.") var out: String
        @Flag(help: "Replace an existing --out file.") var force = false

        func load() throws -> (ImageSet, DatasetReference) {
            try OutputGuard.mayWrite(out, force: force, what: "plan file")
            let ds = try DatasetFile(file)
            guard ds.splits.contains(split) else { throw ValidationError("--split: \(file) has no split '\(split)' (it has \(ds.splits.joined(separator: ", ")))") }
            let set = try ds.load(split)
            guard set.count > 0 else { throw ValidationError("\(file) \(split): no images") }
            return (set, DatasetReference(file: file, split: split, contentSHA256: DatasetReference.contentHash(set)))
        }
        /// Indices from a subset plan file, or the whole split.
        func pool(_ plan: String?, _ set: ImageSet) throws -> [Int] {
            guard let plan else { return Array(0..<set.count) }
            let p = try PlanFile.read(SubsetPlan.self, from: plan)
            if let bad = p.indices.first(where: { $0 < 0 || $0 >= set.count }) {
                throw ValidationError("\(plan): index \(bad) is outside \(file) \(split) (\(set.count) images)")
            }
            if !p.dataset.contentSHA256.isEmpty && p.dataset.contentSHA256 != DatasetReference.contentHash(set) {
                throw ValidationError("\(plan) was made from other data than \(file) \(split) (content hashes differ)")
            }
            return p.indices
        }
    }

    struct Subset: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Class-balanced subset of N examples.")
        @OptionGroup var common: Common
        @Option(help: "Subset size.") var size: Int
        @Option(help: "Seed.") var seed: UInt64 = 0
        func validate() throws { try Check.atLeast(size, 1, "--size") }
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
        func validate() throws {
            try Check.atLeast(models, 2, "--models")
            guard models % 2 == 0 else { throw ValidationError("--models must be even (each example is in exactly K/2 models), got \(models)") }
        }
        @Option(help: "Subset plan whose indices form the pool (default: whole split).") var pool: String?
        @Option(help: "Seed.") var seed: UInt64 = 0
        func run() throws {
            let (set, ref) = try common.load()
            let plan = try MembershipPlan(dataset: ref, pool: try common.pool(pool, set), models: models, seed: seed)
            print("membership: \(models) models × \(plan.pool.count) examples; sha256 \(try PlanFile.write(plan, to: common.out))")
        }
    }

    struct Audit: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Canaries for a one-run privacy audit, each trained on by a fair coin (then `eidetic eval audit RUN`).")
        @OptionGroup var common: Common
        @Option(help: "Number of canaries m.") var canaries: Int
        @Option(help: "Subset plan always trained on, besides the included canaries (default: none).") var base: String?
        @Option(help: "Subset plan the canaries are drawn from (default: the whole split, minus the base).") var pool: String?
        @Option(help: "Seed of the canary choice and the coins.") var seed: UInt64 = 0
        func validate() throws { try Check.atLeast(canaries, 1, "--canaries") }
        func run() throws {
            let (set, ref) = try common.load()
            let baseIndices = base == nil ? [] : try common.pool(base, set)
            let plan: AuditPlan
            do {
                plan = try AuditPlan(dataset: ref, pool: try common.pool(pool, set), base: baseIndices, canaries: canaries, seed: seed)
            } catch let e as DataError { throw ValidationError("--canaries: \(e)") }
            let ins = plan.inclusion.filter { $0 }.count
            print("audit: \(plan.canaries.count) canaries (\(ins) included by their coins), base of \(plan.base.count), \(plan.trainingIndices.count) training examples; sha256 \(try PlanFile.write(plan, to: common.out))")
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
                let kv = part.split(separator: ":", omittingEmptySubsequences: false).compactMap { Int($0) }
                guard kv.count == 2 else { throw ValidationError("--canaries: '\(part)' is not copies:count") }
                guard kv[0] >= 1 && kv[0] <= 100_000, kv[1] >= 0 && kv[1] <= set.count else {
                    throw ValidationError("--canaries: '\(part)': copies must be in 1…100000 and count in 0…\(set.count)")
                }
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
        @OptionGroup var threads: ThreadOptions
        func validate() throws { try Check.finite(threshold, "--threshold", min: 0, max: 1) }
        func run() throws {
            threads.apply()
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
        @OptionGroup var threads: ThreadOptions
        func validate() throws { try Check.atLeast(neighbors, 1, "--neighbors") }
        func run() throws {
            threads.apply()
            let (set, ref) = try common.load()
            let pool = try common.pool(pool, set)
            guard neighbors < pool.count else { throw ValidationError("--neighbors \(neighbors) must be smaller than the pool of \(pool.count) examples") }
            let plan = OutlierScores(dataset: ref, images: set, indices: pool, neighbors: neighbors)
            print("outliers: \(plan.scores.count) scores; sha256 \(try PlanFile.write(plan, to: common.out))")
        }
    }
}
