import Foundation
import HDF5
import Tensor

/// Which data a plan was made from: the dataset file, the split, and a hash of that
/// split's content (images and labels), so a plan cannot silently be applied to other data.
public struct DatasetReference: Codable, Equatable, Sendable {
    public var file: String
    public var split: String
    public var contentSHA256: String

    public init(file: String, split: String, contentSHA256: String) {
        self.file = file; self.split = split; self.contentSHA256 = contentSHA256
    }

    /// SHA-256 over an image set's shape, pixels and labels.
    public static func contentHash(_ set: ImageSet) -> String {
        var h = SHA256()
        h.update(Array("\(set.shape)".utf8))
        h.update(set.images)
        for l in set.labels { h.update([UInt8(truncatingIfNeeded: l), UInt8(truncatingIfNeeded: l >> 8)]) }
        return h.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

/// A training-set plan: everything needed to rebuild exactly which examples (and how many
/// copies) a model trains on. Written as canonical JSON (sorted keys) wrapped with the
/// SHA-256 of that JSON, so the same inputs and seed give a byte-identical file.
public protocol Plan: Codable, Equatable {
    static var kind: String { get }
}

private struct PlanKind: Codable { var kind: String }

public enum PlanFile {
    struct Envelope<P: Codable>: Codable {
        var kind: String
        var contentSHA256: String
        var plan: P
    }

    static func canonical<T: Encodable>(_ value: T) throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try e.encode(value)
    }

    /// The content hash of a plan (SHA-256 of its canonical JSON).
    public static func hash<P: Plan>(_ plan: P) throws -> String { SHA256.hex([UInt8](try canonical(plan))) }

    /// Writes atomically; returns the content hash.
    @discardableResult
    public static func write<P: Plan>(_ plan: P, to path: String) throws -> String {
        let h = try hash(plan)
        var data = try canonical(Envelope(kind: P.kind, contentSHA256: h, plan: plan))
        data.append(0x0a)
        try writeFileAtomically(data, to: path)
        return h
    }

    /// The `kind` field of a plan file (to dispatch on), or a clear error.
    public static func kind(of path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw DataError.unreadable(file: path, reason: "no such file") }
        if data.isEmpty { throw DataError.empty(file: path) }
        do { return try JSONDecoder().decode(PlanKind.self, from: data).kind } catch {
            throw DataError.badFormat(file: path, detail: "not a plan file (expected JSON with a \"kind\" key)")
        }
    }

    /// Reads and verifies kind and hash.
    public static func read<P: Plan>(_ type: P.Type, from path: String) throws -> P {
        guard let data = FileManager.default.contents(atPath: path) else { throw DataError.unreadable(file: path, reason: "no such file") }
        if data.isEmpty { throw DataError.empty(file: path) }
        let kind: String
        do { kind = try JSONDecoder().decode(PlanKind.self, from: data).kind } catch {
            throw DataError.badFormat(file: path, detail: "not a plan file (expected JSON with a \"kind\" key)")
        }
        guard kind == P.kind else { throw DataError.badFormat(file: path, detail: "plan kind is '\(kind)', expected '\(P.kind)'") }
        let env: Envelope<P>
        do { env = try JSONDecoder().decode(Envelope<P>.self, from: data) } catch {
            throw DataError.badFormat(file: path, detail: "malformed \(P.kind) plan: \(error)")
        }
        guard try hash(env.plan) == env.contentSHA256 else {
            throw DataError.badFormat(file: path, detail: "content hash mismatch (the plan was edited after it was written)")
        }
        return env.plan
    }
}

/// Writes bytes to `path` through a temporary file and rename.
public func writeFileAtomically(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    removeDeadTemporaries(of: path)
    let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    do {
        try data.write(to: tmp)
        guard rename(tmp.path, path) == 0 else { throw FileWriteError(path: path, reason: "rename: \(String(cString: strerror(errno)))") }
    } catch {
        unlink(tmp.path)
        if error is FileWriteError { throw error }
        throw FileWriteError(path: path, reason: describeIOError(error))
    }
}

/// A class-balanced subset of `size` examples: ⌊size/K⌋ per class, the remainder going to
/// the lowest-numbered classes; within a class, chosen by a seeded permutation.
public struct SubsetPlan: Plan {
    public static let kind = "subset"
    public var dataset: DatasetReference
    public var seed: UInt64
    public var size: Int
    public var perClass: [Int]
    /// Indices into the split, ascending.
    public var indices: [Int]

    public init(dataset: DatasetReference, labels: [Int], classes: Int, size: Int, seed: UInt64) throws {
        guard size >= 1 else { throw DataError.invalid("subset size must be ≥ 1, got \(size)") }
        guard classes >= 1 else { throw DataError.invalid("\(dataset.file): no class names, so no class-balanced subset") }
        guard size <= labels.count else { throw DataError.invalid("subset of \(size) from only \(labels.count) examples") }
        var byClass = [[Int]](repeating: [], count: classes)
        for (i, l) in labels.enumerated() {
            guard l >= 0 && l < classes else {
                throw DataError.invalid("\(dataset.file): example \(i) has label \(l) but the dataset names only \(classes) classes (0…\(classes - 1))")
            }
            byClass[l].append(i)
        }
        let want = (0..<classes).map { size / classes + ($0 < size % classes ? 1 : 0) }
        for c in 0..<classes where byClass[c].count < want[c] {
            throw DataError.invalid("subset of \(size): class \(c) has only \(byClass[c].count) examples, needs \(want[c])")
        }
        let key = RandomKey(seed: seed).fold("subset")
        var chosen: [Int] = []
        for c in 0..<classes {
            let p = randomPermutation(byClass[c].count, key: key.fold(UInt64(c)))
            chosen += p.prefix(want[c]).map { byClass[c][$0] }
        }
        self.dataset = dataset; self.seed = seed; self.size = size; self.perClass = want; self.indices = chosen.sorted()
    }
}

/// Membership plan for shadow-model attacks (LiRA; Carlini et al., 2022): K models (K even)
/// over a pool of N examples, balanced both ways: every example is a member of exactly K/2
/// models and every model trains on exactly N/2 examples (N odd: K/2 models get ⌈N/2⌉ and
/// K/2 get ⌊N/2⌋). See `balancedKeep(models:examples:seed:)`.
///
/// Plans written before the rows were balanced have no `balance` key (each example in K/2
/// models, model sizes only about N/2); they still load, verify and train as before.
public struct MembershipPlan: Plan {
    public static let kind = "membership"
    /// `balance` of plans balanced over examples and models.
    public static let balancedBothWays = "examples-and-models"
    public var dataset: DatasetReference
    public var seed: UInt64
    public var models: Int
    /// Pool indices into the split.
    public var pool: [Int]
    /// keep[m] is a string of N '0'/'1' characters: pool example i is in model m's set.
    public var keep: [String]
    /// How the keep matrix is balanced: `balancedBothWays`, or nil for older plans (examples only).
    public var balance: String?

    public init(dataset: DatasetReference, pool: [Int], models: Int, seed: UInt64) throws {
        let matrix = try MembershipPlan.balancedKeep(models: models, examples: pool.count, seed: seed)
        self.dataset = dataset; self.seed = seed; self.models = models; self.pool = pool
        keep = matrix.map { row in String(decoding: row.map { $0 ? UInt8(ascii: "1") : UInt8(ascii: "0") }, as: UTF8.self) }
        balance = MembershipPlan.balancedBothWays
    }

    /// A seeded K × N keep matrix (`[model][example]`) balanced both ways: every column
    /// (example) holds exactly K/2 ones and every row (model) ⌊N/2⌋ or ⌈N/2⌉ — N/2 when N is
    /// even; when N is odd the K/2 rows that drew the most ones (ties: lower model) get ⌈N/2⌉.
    ///
    /// Construction: each example draws a uniformly random half of the models (a seeded
    /// permutation per example, as older plans did); then rows are repaired without touching
    /// the column sums: an over-full row a and an under-full row b trade examples that a has
    /// and b lacks, chosen by a seeded permutation, until every row has its size. Each trade
    /// keeps a column's count, so the result is balanced both ways, and the repair moves only
    /// the O(√N)-per-row excess of the random start. Deterministic in (K, N, seed).
    public static func balancedKeep(models: Int, examples n: Int, seed: UInt64) throws -> [[Bool]] {
        guard models >= 2 && models % 2 == 0 else { throw DataError.invalid("membership plan: models must be even and ≥ 2, got \(models)") }
        guard n >= 0 else { throw DataError.invalid("membership plan: \(n) examples") }
        var keep = [[Bool]](repeating: [Bool](repeating: false, count: n), count: models)
        let key = RandomKey(seed: seed).fold("membership")
        for i in 0..<n {
            for m in randomPermutation(models, key: key.fold(UInt64(i))).prefix(models / 2) { keep[m][i] = true }
        }
        // row targets: n/2 each; for odd n the K/2 fullest rows take the extra one
        let counts = keep.map { $0.reduce(0) { $0 + ($1 ? 1 : 0) } }
        var target = [Int](repeating: n / 2, count: models)
        if n % 2 == 1 {
            for m in (0..<models).sorted(by: { (-counts[$0], $0) < (-counts[$1], $1) }).prefix(models / 2) { target[m] += 1 }
        }
        var excess = (0..<models).map { counts[$0] - target[$0] }
        let repair = RandomKey(seed: seed).fold("membership-balance")
        var trade: UInt64 = 0
        while let a = excess.firstIndex(where: { $0 > 0 }), let b = excess.firstIndex(where: { $0 < 0 }) {
            let moves = min(excess[a], -excess[b])
            // a has ≥ moves more ones than b's target allows, so at least `moves` columns have a = 1, b = 0
            let candidates = (0..<n).filter { keep[a][$0] && !keep[b][$0] }
            for j in randomPermutation(candidates.count, key: repair.fold(trade)).prefix(moves) {
                keep[a][candidates[j]] = false; keep[b][candidates[j]] = true
            }
            trade += 1
            excess[a] -= moves; excess[b] += moves
        }
        return keep
    }

    /// Whether pool example i is in model m's training set.
    public func isMember(model m: Int, poolIndex i: Int) -> Bool {
        keep[m].utf8[keep[m].utf8.index(keep[m].utf8.startIndex, offsetBy: i)] == UInt8(ascii: "1")
    }

    /// Split indices of model m's training set (ascending pool order).
    public func members(model m: Int) -> [Int] {
        zip(keep[m].utf8, pool).compactMap { $0 == UInt8(ascii: "1") ? $1 : nil }
    }
}

/// Duplication plan: from a base training set, choose canaries and repeat each one k times
/// (physical copies: the canary occurs k times in `trainingIndices`).
public struct DuplicationPlan: Plan {
    public static let kind = "duplication"
    public struct Canary: Codable, Equatable, Sendable { public var index: Int; public var copies: Int }
    public var dataset: DatasetReference
    public var seed: UInt64
    public var base: [Int]
    /// copies → how many canaries get that many copies.
    public var canariesPerCopies: [String: Int]
    public var canaries: [Canary]
    /// The physical training list: the base set with each canary appearing `copies` times.
    public var trainingIndices: [Int]

    public init(dataset: DatasetReference, base: [Int], canariesPerCopies spec: [Int: Int], seed: UInt64) throws {
        let total = spec.values.reduce(0, +)
        guard spec.keys.allSatisfy({ $0 >= 1 }) else { throw DataError.invalid("duplication plan: copies must be ≥ 1") }
        guard total <= base.count else { throw DataError.invalid("duplication plan: \(total) canaries from a base of \(base.count)") }
        let order = randomPermutation(base.count, key: RandomKey(seed: seed).fold("canaries"))
        var canaries: [Canary] = []
        var next = 0
        for copies in spec.keys.sorted() {
            for _ in 0..<spec[copies]! { canaries.append(Canary(index: base[order[next]], copies: copies)); next += 1 }
        }
        var training = base
        for c in canaries { training += [Int](repeating: c.index, count: c.copies - 1) }
        self.dataset = dataset; self.seed = seed; self.base = base
        canariesPerCopies = Dictionary(uniqueKeysWithValues: spec.map { (String($0.key), $0.value) })
        self.canaries = canaries.sorted { ($0.copies, $0.index) < ($1.copies, $1.index) }
        trainingIndices = training
    }
}

/// Deduplication: exact duplicates (identical bytes, by SHA-256) and near-duplicates
/// (normalized ℓ2 below `threshold`), merged into groups by union–find; `kept` holds the
/// lowest index of every group plus all ungrouped examples.
public struct DeduplicationPlan: Plan {
    public static let kind = "dedup"
    public var dataset: DatasetReference
    public var candidates: [Int]
    public var threshold: Double
    public var exactGroups: [[Int]]
    public var nearGroups: [[Int]]
    public var kept: [Int]

    public init(dataset: DatasetReference, images: ImageSet, candidates: [Int], threshold: Double) {
        let sub = images.subset(candidates)
        var parent = Array(0..<candidates.count)
        func find(_ i: Int) -> Int { var i = i; while parent[i] != i { parent[i] = parent[parent[i]]; i = parent[i] }; return i }
        func union(_ a: Int, _ b: Int) { let (ra, rb) = (find(a), find(b)); if ra != rb { parent[max(ra, rb)] = min(ra, rb) } }
        var byHash: [String: [Int]] = [:]
        for i in 0..<sub.count { byHash[SHA256.hex(sub.image(i)), default: []].append(i) }
        let exact = byHash.values.filter { $0.count > 1 }.map { $0.map { candidates[$0] }.sorted() }.sorted { $0[0] < $1[0] }
        for g in byHash.values where g.count > 1 { for j in g.dropFirst() { union(g[0], j) } }
        for (i, j, _) in NearestNeighbors.pairsWithin(sub, threshold: threshold) { union(i, j) }
        var groups: [Int: [Int]] = [:]
        for i in 0..<sub.count { groups[find(i), default: []].append(candidates[i]) }
        let all = groups.values.filter { $0.count > 1 }.map { $0.sorted() }.sorted { $0[0] < $1[0] }
        self.dataset = dataset; self.candidates = candidates; self.threshold = threshold
        exactGroups = exact
        nearGroups = all
        kept = groups.values.map { $0.min()! }.sorted()
    }
}

/// Outlier score per example: the mean normalized ℓ2 to its `neighbors` nearest other
/// examples in the pool (paper-spec §7; large = unusual).
public struct OutlierScores: Plan {
    public static let kind = "outliers"
    public var dataset: DatasetReference
    public var neighbors: Int
    public var indices: [Int]
    public var scores: [Double]

    public init(dataset: DatasetReference, images: ImageSet, indices: [Int], neighbors: Int) {
        let sub = images.subset(indices)
        let nn = NearestNeighbors.search(queries: sub, references: sub, k: neighbors, excludeSelf: true)
        self.dataset = dataset; self.neighbors = neighbors; self.indices = indices
        scores = nn.map { list in list.isEmpty ? 0 : list.map(\.distance).reduce(0, +) / Double(list.count) }
    }
}

/// Audit plan for the one-run privacy audit (Steinke, Nasr and Jagielski 2023): `m`
/// canaries drawn from the pool (outside the base set), each included in training by an
/// independent fair coin; the base set is always trained on. `eval audit` later scores every
/// canary and turns correct IN/OUT guesses into a lower bound on ε.
public struct AuditPlan: Plan {
    public static let kind = "audit"
    public var dataset: DatasetReference
    public var seed: UInt64
    /// Examples every run of the plan trains on (may be empty).
    public var base: [Int]
    /// The canaries' split indices, ascending.
    public var canaries: [Int]
    /// included[i] is '1' when canary i is trained on (its coin), else '0'.
    public var included: String
    /// The physical training list: base plus the included canaries, ascending.
    public var trainingIndices: [Int]

    /// Draws `count` canaries uniformly from `pool` minus `base` (a seeded permutation) and one
    /// fair coin per canary from the seed's "audit-coins" stream.
    public init(dataset: DatasetReference, pool: [Int], base: [Int], canaries count: Int, seed: UInt64) throws {
        guard count >= 1 else { throw DataError.invalid("audit plan: canaries must be ≥ 1, got \(count)") }
        let baseSet = Set(base)
        let candidates = Array(Set(pool).subtracting(baseSet)).sorted()
        guard count <= candidates.count else {
            throw DataError.invalid("audit plan: \(count) canaries asked for, but only \(candidates.count) pool examples lie outside the base set")
        }
        let order = randomPermutation(candidates.count, key: RandomKey(seed: seed).fold("audit-canaries"))
        let chosen = order.prefix(count).map { candidates[$0] }.sorted()
        let coins = RandomKey(seed: seed).fold("audit-coins")
        let bits = (0..<count).map { coins.word($0) & 1 == 1 }
        self.dataset = dataset; self.seed = seed; self.base = base.sorted(); canaries = chosen
        included = String(decoding: bits.map { $0 ? UInt8(ascii: "1") : UInt8(ascii: "0") }, as: UTF8.self)
        trainingIndices = (base + zip(chosen, bits).compactMap { $1 ? $0 : nil }).sorted()
    }

    /// The coins as booleans, in canary order.
    public var inclusion: [Bool] { included.utf8.map { $0 == UInt8(ascii: "1") } }
}

/// The non-member twin of a training selection, for extraction baselines: every distinct
/// training example is replaced by a distinct example of the same class that the selection
/// does not use (a seeded permutation per class), so the twin set has the same size, class
/// counts and duplicate structure as the original and shares no example with it. A model
/// trained on it as long as the original is "a model trained on a disjoint set of the same
/// size": its generations, scored against the original training set by the same rule, say
/// how often the rule flags an image the model never saw (Carlini et al. 2023 call such
/// counts false positives; the relative rule flags ~0.5–1 % at small N).
public struct TwinPlan: Plan {
    public static let kind = "twin"
    public var dataset: DatasetReference
    public var seed: UInt64
    /// The original selection's distinct indices, ascending, and each one's twin.
    public var original: [Int]
    public var twins: [Int]
    /// The physical training list: the original list with every index replaced by its twin.
    public var trainingIndices: [Int]

    /// `training` is the original physical list (repeats are copies); `labels` the split's.
    public init(dataset: DatasetReference, labels: [Int], training: [Int], seed: UInt64) throws {
        let distinct = Array(Set(training)).sorted()
        let used = Set(distinct)
        var free: [Int: [Int]] = [:], need: [Int: [Int]] = [:]
        for (i, l) in labels.enumerated() where !used.contains(i) { free[l, default: []].append(i) }
        for i in distinct {
            guard i >= 0 && i < labels.count else { throw DataError.invalid("twin plan: training index \(i) is outside the split (\(labels.count) examples)") }
            need[labels[i], default: []].append(i)
        }
        var twinOf: [Int: Int] = [:]
        let key = RandomKey(seed: seed).fold("twin")
        for c in need.keys.sorted() {
            let want = need[c]!, pool = free[c] ?? []
            guard pool.count >= want.count else {
                throw DataError.invalid("twin plan: class \(c) has \(want.count) training examples but only \(pool.count) others in the split; a disjoint set of the same size needs as many (train on at most half of each class)")
            }
            let p = randomPermutation(pool.count, key: key.fold(UInt64(c)))
            for (j, i) in want.enumerated() { twinOf[i] = pool[p[j]] }
        }
        self.dataset = dataset; self.seed = seed; original = distinct
        twins = distinct.map { twinOf[$0]! }
        trainingIndices = training.map { twinOf[$0]! }
    }
}
