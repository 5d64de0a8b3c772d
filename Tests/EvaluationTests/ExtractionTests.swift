import Data
import Evaluation
import Tensor
import XCTest

/// Known answers for extraction and the clique filter: a "generator" that copies chosen
/// training images (exactly or lightly noised) must have exactly those flagged; fresh
/// images from the same distribution must not.
final class ExtractionTests: XCTestCase {
    /// Random 3×16×16 "blocky" images: a 4×4 grid of random colours plus pixel noise — many
    /// independent directions, like small natural images, so fresh images are not near-copies.
    func images(_ n: Int, seed: UInt64) -> ImageSet {
        var s = RandomStream(key: RandomKey(seed: seed))
        var px: [UInt8] = []
        for _ in 0..<n {
            let blocks = (0..<48).map { _ in s.nextUniform() * 255 }
            for c in 0..<3 { for y in 0..<16 { for x in 0..<16 {
                let v = blocks[c * 16 + (y / 4) * 4 + x / 4] + s.nextUniform() * 30 - 15
                px.append(UInt8(max(0, min(255, v.rounded()))))
            } } }
        }
        return ImageSet(images: px, labels: (0..<n).map { $0 % 4 }, channels: 3, height: 16, width: 16, classNames: ["a", "b", "c", "d"])
    }

    /// `set`'s image i with uniform noise of ±`amount` levels.
    func noisy(_ set: ImageSet, _ i: Int, amount: Int, seed: UInt64) -> [UInt8] {
        var s = RandomStream(key: RandomKey(seed: seed))
        return set.image(i).map { UInt8(max(0, min(255, Int($0) + s.nextInt(below: 2 * amount + 1) - amount))) }
    }

    func testCopyingGeneratorIsFlaggedExactlyAndFreshImagesAreNot() {
        let training = images(300, seed: 1)
        let exact = [3, 50, 77], noised = [10, 123, 299]
        var px: [UInt8] = []
        for i in exact { px += training.image(i) }
        for (k, i) in noised.enumerated() { px += noisy(training, i, amount: 6, seed: UInt64(k)) }
        let fresh = images(200, seed: 2)
        px += fresh.images
        let gens = ImageSet(images: px, labels: [Int](repeating: 0, count: 206), channels: 3, height: 16, width: 16, classNames: ["x"])
        // dataset indices of the training images: position + 1000 (a subset of a bigger split)
        let (result, table) = Extraction.evaluate(generations: gens, training: training, datasetIndices: (0..<300).map { $0 + 1000 })
        XCTAssertEqual(table.k, 50)
        let expected = (exact + noised).map { $0 + 1000 }.sorted()
        XCTAssertEqual(result.unique(result.extractedByRelative), expected, "precision and recall 1 under the relative distance")
        XCTAssertEqual(result.unique(result.extractedByL2), expected)
        XCTAssertEqual(result.unique(result.extractedByRatio), expected)
        XCTAssertTrue(result.samples[6...].allSatisfy { !result.extractedByRelative($0) && !result.extractedByL2($0) && !result.extractedByRatio($0) })
        XCTAssertEqual(result.samples[0].l2, 0); XCTAssertEqual(result.samples[0].relative, 0)
        XCTAssertGreaterThan(result.samples[3].l2, 0.005)
        // the curve counts unique images over prefixes 1, 2, 4, … and the whole pool
        XCTAssertEqual(result.curve.map(\.samples), [1, 2, 4, 8, 16, 32, 64, 128, 206])
        XCTAssertEqual(result.curve.map(\.unique), [1, 2, 4, 6, 6, 6, 6, 6, 6])
        // two generations of one image count once
        var twice = gens; twice.images += training.image(3); twice.labels.append(0)
        XCTAssertEqual(Extraction.evaluate(generations: twice, training: training).0.unique { $0.relative < 1 }.count, 6)
    }

    func testRelativeDistanceUsesTheModelsOwnTrainingSet() {
        // a flat gray generation is close in raw ℓ2 to flat training images, but the relative
        // distance calibrates against its own neighbourhood: no extraction unless it is a copy
        let training = images(100, seed: 3)
        let gray = ImageSet(images: [UInt8](repeating: 128, count: 768), labels: [0], channels: 3, height: 16, width: 16, classNames: ["x"])
        let (r, _) = Extraction.evaluate(generations: gray, training: training)
        let s = r.samples[0]
        XCTAssertEqual(s.relative, s.l2 / (0.5 * s.meanL2), accuracy: 1e-12)
        XCTAssertFalse(r.extractedByRelative(s))
    }

    func testCliqueFilterFindsPlantedCliqueAndNothingInRandomData() throws {
        let pool = images(120, seed: 4)
        var config = CliqueConfig()
        config.tiles = 4; config.threshold = 0.05; config.minSize = 8
        XCTAssertEqual(try CliqueFilter.find(pool, config: config), [], "random images form no clique")
        // plant 12 noisy copies of one image (the "memorized" one) among the 120
        var planted = pool
        var positions: [Int] = []
        for k in 0..<12 {
            let at = 7 + k * 9
            positions.append(at)
            planted.images.replaceSubrange((at * 768)..<((at + 1) * 768), with: noisy(pool, 0, amount: 5, seed: 100 + UInt64(k)))
        }
        let cliques = try CliqueFilter.find(planted, config: config)
        XCTAssertEqual(cliques.count, 1)
        // the original image 0 is in the pool too and belongs to its copies' clique
        XCTAssertEqual(cliques.first?.members, [0] + positions)
        XCTAssertTrue(([0] + positions).contains(cliques.first!.medoid))
        // per group: split the pool into two classes; the clique lives in class 0 only if all members are there
        let groups = (0..<120).map { $0 == 0 || positions.contains($0) ? 0 : 1 }
        XCTAssertEqual(try CliqueFilter.find(planted, groups: groups, config: config).map(\.group), [0])
        // on prefixes of the pool: the clique (members 0, 7, 16, …, 106) reaches 8 members
        // (config.minSize) within the first 62 generations, not within the first 55
        let prefixed = try CliqueFilter.find(count: 120, groups: nil, config: config, prefixes: [55, 62, 120]) { planted.subset($0) }
        XCTAssertEqual(prefixed.cliques, cliques)
        XCTAssertEqual(prefixed.byPrefix.map(\.count), [0, 1, 1])
        XCTAssertEqual(prefixed.byPrefix[1].first?.members, [0] + positions.filter { $0 < 62 })
        XCTAssertEqual(prefixed.byPrefix[2], cliques, "the whole pool as a prefix gives the same cliques")
        // grouped: each group's prefix is its generations among the first n
        let byGroup = try CliqueFilter.find(count: 120, groups: groups, config: config, prefixes: [62]) { planted.subset($0) }
        XCTAssertEqual(byGroup.byPrefix[0].map(\.group), [0])
        // tiled ℓ2 is the worst tile: damage one corner tile of a copy
        var a = Array(pool.image(0)); let b = a
        for y in 0..<4 { for x in 0..<4 { a[y * 16 + x] = 255 &- a[y * 16 + x] } }
        let tiled = CliqueFilter.tiledL2(a[...], b[...], channels: 3, height: 16, width: 16, tiles: 4)
        let global = NearestNeighbors.normalizedL2(a[...], b[...])
        XCTAssertGreaterThan(tiled, 3 * global)
    }
    /// δ calibrated on a non-member model (P12): a pool with a tight clique of copies of an
    /// image the generating model trained on (explained) and a looser clique of copies of one it
    /// never saw (a false flag). δ is the largest grid value below the one where the loose
    /// clique appears; with a false flag at every δ the choice says it is uncalibrated.
    func testCliqueCalibrationStopsBelowTheFirstFalseFlag() throws {
        var pool = images(120, seed: 4)
        let tight = (0..<12).map { 10 + $0 * 9 }, loose = (0..<12).map { 11 + $0 * 9 }
        for (k, at) in tight.enumerated() { pool.images.replaceSubrange((at * 768)..<((at + 1) * 768), with: noisy(pool, 0, amount: 2, seed: 200 + UInt64(k))) }
        for (k, at) in loose.enumerated() { pool.images.replaceSubrange((at * 768)..<((at + 1) * 768), with: noisy(pool, 1, amount: 14, seed: 300 + UInt64(k))) }
        func distances(_ ids: [Int]) -> [Double] {
            ids.flatMap { a in ids.filter { $0 > a }.map { CliqueFilter.tiledL2(pool.image(a), pool.image($0), channels: 3, height: 16, width: 16, tiles: 2) } }
        }
        let (a, b) = (distances([0] + tight), distances([1] + loose))
        XCTAssertLessThan(a.max()! * 1.01, b.min()!, "the tight clique closes before the loose one starts")
        var relative = [Double](repeating: 1.5, count: 120)
        for i in [0] + tight { relative[i] = 0.3 }       // copies of a training image: the oracle extracts them
        var config = CliqueConfig(); config.tiles = 2; config.minSize = 8
        let grid = [a.min()! * 0.5, a.max()! * 1.01, b.max()! * 1.01]
        let points = try CliqueCalibration.points(count: 120, groups: [Int](repeating: -1, count: 120), relative: relative, relativeThreshold: 1,
                                                  config: config, grid: [grid[2], grid[0], grid[1]]) { pool.subset($0) }
        XCTAssertEqual(points.map(\.threshold), grid, "ascending δ")
        XCTAssertEqual(points.map(\.flagged), [0, 1, 2])
        XCTAssertEqual(points.map(\.falseFlags), [0, 0, 1])
        XCTAssertEqual(points[2].explained, 1)
        let chosen = CliqueCalibration.choose(points)
        XCTAssertEqual(chosen.threshold, grid[1]); XCTAssertTrue(chosen.calibrated)
        // no false flag anywhere: the largest δ; a false flag at the smallest: uncalibrated
        XCTAssertEqual(CliqueCalibration.choose(Array(points.prefix(2))).threshold, grid[1])
        let bad = CliqueCalibration.choose([.init(threshold: 0.02, flagged: 1, explained: 0), .init(threshold: 0.03, flagged: 1, explained: 1)])
        XCTAssertEqual(bad.threshold, 0.02); XCTAssertFalse(bad.calibrated)
        // grouped: the loose clique's class calibrates the same way
        let groups = (0..<120).map { loose.contains($0) || $0 == 1 ? 1 : 0 }
        let byGroup = try CliqueCalibration.points(count: 120, groups: groups, relative: relative, relativeThreshold: 1, config: config, grid: grid) { pool.subset($0) }
        XCTAssertEqual(byGroup.map(\.falseFlags), [0, 0, 1])
    }

    /// Greedy peeling: exact on disjoint cliques, nothing in a star (no two leaves adjacent),
    /// and on a dense random cluster (p = 0.9, far too many maximal cliques to enumerate) fast,
    /// disjoint, every flagged set a true clique of at least the minimum size.
    func testCliquePeelingIsExactOnPlantedCliquesAndTerminatesOnDenseClusters() throws {
        func graph(_ n: Int, _ edges: [(Int, Int)]) -> [Set<Int>] {
            var g = [Set<Int>](repeating: [], count: n)
            for (a, b) in edges where a != b { g[a].insert(b); g[b].insert(a) }
            return g
        }
        func clique(_ vs: Range<Int>) -> [(Int, Int)] { vs.flatMap { a in vs.filter { $0 > a }.map { (a, $0) } } }
        // two cliques (12 and 10 vertices) joined by one edge, plus a path
        let two = graph(40, clique(0..<12) + clique(20..<30) + [(11, 20)] + (30..<39).map { ($0, $0 + 1) })
        XCTAssertEqual(CliqueFilter.peel(two, minSize: 10), [Array(0..<12), Array(20..<30)])
        XCTAssertEqual(CliqueFilter.peel(two, minSize: 11), [Array(0..<12)])
        XCTAssertEqual(CliqueFilter.peel(graph(21, (1..<21).map { (0, $0) }), minSize: 3), [], "a star has no triangle")
        // a dense random cluster of 300
        var state: UInt64 = 9
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
        var edges: [(Int, Int)] = []
        for a in 0..<300 { for b in (a + 1)..<300 where next() % 10 != 0 { edges.append((a, b)) } }
        let dense = graph(300, edges)
        let t0 = Date()
        let found = CliqueFilter.peel(dense, minSize: 10)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 10)
        XCTAssertFalse(found.isEmpty)
        var seen = Set<Int>()
        for c in found {
            XCTAssertGreaterThanOrEqual(c.count, 10)
            for a in c { XCTAssertTrue(seen.insert(a).inserted, "cliques are disjoint"); for b in c where b != a { XCTAssertTrue(dense[a].contains(b)) } }
        }
    }
}
