import CKernels
import Data
import Foundation

/// The black-box "clique" filter (Carlini et al., 2023, §4.2; paper-spec §2.1, §2.3): a
/// model that memorized an image emits near-identical copies of it for many seeds, so among
/// the generations for one prompt (here: one class label, or all of an unconditional pool)
/// a large clique of mutually close images is evidence of memorization — found without
/// looking at the training set. Closeness is the tiled ℓ2: the image is cut into a
/// `tiles` × `tiles` grid and the distance is the largest per-tile normalized ℓ2, so two
/// images are close only when every region is.
public struct CliqueConfig: Codable, Equatable, Sendable {
    /// Tiles per side (4 → 16 tiles, as the paper's 4×4 grid of 128-pixel tiles at 512²).
    public var tiles = 4
    /// Edge threshold δ on the tiled ℓ2 (paper-spec §2.1: 0.15 in the SD reimplementation).
    public var threshold = 0.15
    /// Smallest clique flagged (paper: 10).
    public var minSize = 10
    /// true: `threshold` is chosen on a non-member model's generations
    /// (`CliqueCalibration`; paper-spec P12) rather than fixed. Optional, so that a
    /// configuration without it encodes (and hashes) as before.
    public var calibrate: Bool?
    public init() {}
}

public struct Clique: Codable, Equatable, Sendable {
    /// Group (class label, or -1 for the whole pool) and member generations (pool indices).
    public var group: Int
    public var members: [Int]
    /// The member with the smallest summed tiled distance to the others: the candidate.
    public var medoid: Int
}

public enum CliqueFilter {
    /// Generations per group `find` searches for cliques (its first ones): the
    /// all-pairs search holds the group in memory (32,768 CIFAR images: 100 MB, plus the
    /// packed copy), and the paper's pools are 500 generations per prompt.
    public static let poolLimit = 32_768

    /// Max over tiles of the per-tile normalized ℓ2 between two planar C×H×W uint8 images.
    public static func tiledL2(_ a: ArraySlice<UInt8>, _ b: ArraySlice<UInt8>, channels c: Int, height h: Int, width w: Int, tiles: Int) -> Double {
        let tileOf = tileMap(channels: c, height: h, width: w, tiles: tiles)
        var sums = [Int](repeating: 0, count: tiles * tiles), counts = [Int](repeating: 0, count: tiles * tiles)
        var i = a.startIndex, j = b.startIndex
        for p in 0..<tileOf.count {
            let d = Int(a[i]) - Int(b[j]); sums[tileOf[p]] += d * d; counts[tileOf[p]] += 1; i += 1; j += 1
        }
        return (0..<sums.count).map { counts[$0] == 0 ? 0 : (Double(sums[$0]) / Double(counts[$0])).squareRoot() / 255 }.max() ?? 0
    }

    /// Tile id of every pixel value: rows and columns split into `tiles` near-equal bands.
    static func tileMap(channels c: Int, height h: Int, width w: Int, tiles t: Int) -> [Int] {
        precondition(t >= 1 && t <= min(h, w), "clique filter: \(t) tiles per side for \(h)×\(w) images")
        var map = [Int](repeating: 0, count: c * h * w)
        for ch in 0..<c { for y in 0..<h { for x in 0..<w { map[(ch * h + y) * w + x] = (y * t / h) * t + x * t / w } } }
        return map
    }

    /// The graph on the images of `pool`: an edge where the tiled ℓ2 is ≤ threshold. The
    /// global normalized ℓ2 never exceeds the tiled one (a weighted mean of the per-tile mean
    /// squares is at most their maximum), so candidate pairs come from the exact all-pairs
    /// search at the same threshold and only those are measured tile by tile.
    static func graph(_ pool: ImageSet, config: CliqueConfig) -> [Set<Int>] {
        graph(count: pool.count, edges: tiledPairs(pool, threshold: config.threshold, tiles: config.tiles), threshold: config.threshold)
    }

    /// The pairs (a < b) of `pool` whose tiled ℓ2 is ≤ `threshold`, with that distance.
    static func tiledPairs(_ pool: ImageSet, threshold: Double, tiles: Int) -> [(Int, Int, Double)] {
        NearestNeighbors.pairsWithin(pool, threshold: threshold * (1 + 1e-9) + 1e-12).compactMap { (a, b, _) in
            let d = tiledL2(pool.image(a), pool.image(b), channels: pool.channels, height: pool.height, width: pool.width, tiles: tiles)
            return d <= threshold ? (min(a, b), max(a, b), d) : nil
        }
    }

    /// The graph of the `edges` within `threshold` (a subgraph of a wider search's pairs).
    static func graph(count: Int, edges: [(Int, Int, Double)], threshold: Double) -> [Set<Int>] {
        var adjacency = [Set<Int>](repeating: [], count: count)
        for (a, b, d) in edges where d <= threshold { adjacency[a].insert(b); adjacency[b].insert(a) }
        return adjacency
    }

    /// Peeled cliques of a group's graph, largest first, each with its medoid (the member
    /// with the smallest summed tiled distance to the others); `members` maps the group's
    /// vertices to pool indices.
    static func cliques(_ graph: [Set<Int>], pool: ImageSet, members: [Int], group: Int, config: CliqueConfig) -> [Clique] {
        peel(graph, minSize: config.minSize).sorted(by: { $0.count != $1.count ? $0.count > $1.count : $0.lexicographicallyPrecedes($1) }).map { c in
            let (ch, h, w, t) = (pool.channels, pool.height, pool.width, config.tiles)
            let total = c.map { a in c.reduce(0.0) { $0 + tiledL2(pool.image(a), pool.image($1), channels: ch, height: h, width: w, tiles: t) } }
            let medoid = c.indices.min { (total[$0], c[$0]) < (total[$1], c[$1]) }.map { c[$0] }!
            return Clique(group: group, members: c.map { members[$0] }, medoid: members[medoid])
        }
    }

    /// Disjoint cliques of at least `minSize` generations, per group (`peel`). `groups` maps
    /// each generation to its prompt/class; nil: one group.
    public static func find(_ generations: ImageSet, groups: [Int]? = nil, config: CliqueConfig = CliqueConfig()) throws -> [Clique] {
        try find(count: generations.count, groups: groups, config: config) { generations.subset($0) }.cliques
    }

    /// The same for a pool read group by group through `images` (pool indices → images, as
    /// from a sample file): each group's first `poolLimit` generations, one group in memory
    /// at a time. Returns the cliques (members as pool indices) and how many generations were
    /// searched.
    public static func find(count: Int, groups: [Int]?, config: CliqueConfig = CliqueConfig(),
                            images: ([Int]) throws -> ImageSet) throws -> (cliques: [Clique], searched: Int) {
        let r = try find(count: count, groups: groups, config: config, prefixes: [], images: images)
        return (r.cliques, r.searched)
    }

    /// The same, and for each of `prefixes` the cliques the filter flags among the pool's first
    /// n generations alone (the graph restricted to them, peeled afresh): the clique count
    /// against the number of generations, beside the oracle's curve (paper Figure 4's x axis).
    public static func find(count: Int, groups: [Int]?, config: CliqueConfig = CliqueConfig(), prefixes: [Int],
                            images: ([Int]) throws -> ImageSet) throws -> (cliques: [Clique], searched: Int, byPrefix: [[Clique]]) {
        let g = groups ?? [Int](repeating: -1, count: count)
        precondition(g.count == count, "clique filter: \(g.count) group labels for \(count) generations")
        var out: [Clique] = []
        var byPrefix = [[Clique]](repeating: [], count: prefixes.count)
        var searched = 0
        for label in Set(g).sorted() {
            let members = Array((0..<count).lazy.filter { g[$0] == label }.prefix(poolLimit))
            searched += members.count
            let pool = try images(members)
            let full = graph(pool, config: config)
            out += cliques(full, pool: pool, members: members, group: label, config: config)
            for (i, n) in prefixes.enumerated() {
                // members ascend, so the group's generations among the first n are a prefix of it
                let k = members.prefix { $0 < n }.count
                let sub = full.prefix(k).map { $0.filter { $0 < k } }
                byPrefix[i] += cliques(Array(sub), pool: pool, members: members, group: label, config: config)
            }
        }
        return (out, searched, byPrefix)
    }

    /// Disjoint cliques of at least `minSize` vertices by greedy peeling: take the vertex with
    /// the most neighbours still unassigned, grow a clique from it by adding, each time, the
    /// candidate adjacent to the most other candidates (ties: the lowest index), flag it when
    /// it reaches `minSize`, remove it, and repeat until no vertex has `minSize − 1`
    /// neighbours left. Each flagged clique is one candidate memorized image, so the count is
    /// not inflated by the many overlapping maximal cliques of a dense cluster, and the time
    /// is polynomial (a 16,384-generation pool whose near-copies form clusters of hundreds
    /// has more than 10^5 maximal cliques; enumerating them is what this replaces). A greedy
    /// clique may stop short of the largest one through its seed, so a group is flagged when
    /// the greedy clique is large enough: the paper's "a clique of ≥ 10" is then a lower
    /// bound, exact for clusters of mutual near-copies (every member adjacent to every other).
    public static func peel(_ graph: [Set<Int>], minSize: Int) -> [[Int]] {
        let n = graph.count
        let adjacency = graph.map { $0.sorted() }
        var alive = [Bool](repeating: true, count: n), degree = adjacency.map(\.count)
        var isCandidate = [Bool](repeating: false, count: n), keep = [Bool](repeating: false, count: n)
        var within = [Int](repeating: 0, count: n)   // a candidate's neighbours among the candidates
        var out: [[Int]] = []
        while true {
            var v = -1
            for i in 0..<n where alive[i] && (v < 0 || degree[i] > degree[v]) { v = i }
            guard v >= 0, degree[v] + 1 >= minSize else { break }
            var candidates = adjacency[v].filter { alive[$0] }
            for c in candidates { isCandidate[c] = true }
            for c in candidates { within[c] = adjacency[c].reduce(0) { $0 + (isCandidate[$1] ? 1 : 0) } }
            var clique = [v]
            while !candidates.isEmpty {
                var u = candidates[0]
                for c in candidates where within[c] > within[u] || (within[c] == within[u] && c < u) { u = c }
                clique.append(u)
                // keep u's neighbours; the others leave, and the counts of those kept drop
                for w in adjacency[u] where isCandidate[w] { keep[w] = true }
                let leaving = candidates.filter { !keep[$0] }
                for c in leaving { isCandidate[c] = false }
                for c in leaving { for w in adjacency[c] where isCandidate[w] { within[w] -= 1 } }
                candidates = candidates.filter { keep[$0] }
                for w in adjacency[u] { keep[w] = false }
            }
            let flagged = clique.count >= minSize
            if flagged { out.append(clique.sorted()) }
            for t in flagged ? clique : [v] {
                alive[t] = false
                for w in adjacency[t] { degree[w] -= 1 }
            }
        }
        return out
    }
}
