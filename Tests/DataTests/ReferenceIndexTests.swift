import XCTest
import Tensor
import Data

/// The exact kNN must equal brute force in integers, ties included, for any tiling and
/// whether or not the GEMM candidates were certified, with every kernel this CPU runs
/// (the int8 kernel needs AVX-512 VNNI; elsewhere only the Float32 one is tested).
final class ReferenceIndexTests: XCTestCase {
    let kernels = ReferenceIndex.Kernel.allCases.filter { $0.isAvailable }

    func images(_ n: Int, seed: UInt64, levels: Int = 256, size: Int = 4) -> ImageSet {
        var s = RandomStream(key: RandomKey(seed: seed))
        let d = 3 * size * size
        let px = (0..<(n * d)).map { _ in UInt8(s.nextInt(below: levels) * (255 / max(levels - 1, 1))) }
        return ImageSet(images: px, labels: [Int](repeating: 0, count: n), channels: 3, height: size, width: size, classNames: ["x"])
    }

    func brute(_ q: ImageSet, _ r: ImageSet, k: Int, skipSelf: Bool = false) -> [[(Int, Int)]] {
        (0..<q.count).map { i in
            (0..<r.count).filter { !(skipSelf && $0 == i) }.map { j -> (Int, Int) in
                (zip(q.image(i), r.image(j)).reduce(0) { $0 + (Int($1.0) - Int($1.1)) * (Int($1.0) - Int($1.1)) }, j)
            }.sorted { $0 < $1 }.prefix(k).map { $0 }
        }
    }

    func check(_ table: NeighborTable, _ expected: [[(Int, Int)]], d: Int, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(table.queries, expected.count, file: file, line: line)
        for q in 0..<expected.count {
            XCTAssertEqual((0..<table.k).map { table.index(q, $0) }, expected[q].map { $0.1 }, "query \(q)", file: file, line: line)
            for (r, e) in expected[q].enumerated() {
                XCTAssertEqual(table.distance(q, r), (Double(e.0) / Double(d)).squareRoot() / 255, accuracy: 1e-6, file: file, line: line)
            }
        }
    }

    func testMatchesBruteForceAcrossTiles() {
        // 1,500 references span two reference tiles, 300 queries three query tiles
        let refs = images(1500, seed: 1), queries = images(300, seed: 2)
        let expected = brute(queries, refs, k: 7)
        for kernel in kernels {
            let table = ReferenceIndex(refs, kernel: kernel).search(queries, k: 7)
            check(table, expected, d: refs.imageSize)
            XCTAssertEqual(table.exactScans, 0, "random data should certify from the GEMM candidates")
        }
    }

    func testTiesAndDuplicatesAreBrokenByIndex() {
        // 4 gray levels: many exact ties and duplicate images; the certificate often fails
        // with no margin, so the exact scan path is exercised and must agree too
        let refs = images(400, seed: 3, levels: 2, size: 2), queries = images(50, seed: 4, levels: 2, size: 2)
        let expected = brute(queries, refs, k: 10)
        for kernel in kernels { check(ReferenceIndex(refs, kernel: kernel).search(queries, k: 10), expected, d: refs.imageSize) }
        for margin in [0, 16] {
            let index = ReferenceIndex(refs, kernel: .float32)
            index.margin = margin
            let table = index.search(queries, k: 10)
            check(table, expected, d: refs.imageSize)
            if margin == 0 { XCTAssertGreaterThan(table.exactScans, 0, "tied data with no margin must fall back to the exact scan") }
        }
    }

    func testSelfExclusionAndBlocks() {
        let refs = images(200, seed: 5)
        for kernel in kernels {
        let index = ReferenceIndex(refs, kernel: kernel)
        check(index.search(refs, k: 3, selfOffset: 0), brute(refs, refs, k: 3, skipSelf: true), d: refs.imageSize)
        // two query blocks appended equal one search
        var blocks = index.search(refs.subset(Array(0..<130)), k: 3)
        blocks.append(index.search(refs.subset(Array(130..<200)), k: 3))
        XCTAssertEqual(blocks, index.search(refs, k: 3))
        XCTAssertEqual(blocks.index(17, 0), 17)
        XCTAssertEqual(blocks.distance(17, 0), 0)
        }
    }

    func testAllReferencesWhenKIsLarge() {
        let refs = images(20, seed: 6), queries = images(5, seed: 7)
        for kernel in kernels { check(ReferenceIndex(refs, kernel: kernel).search(queries, k: 20), brute(queries, refs, k: 20), d: refs.imageSize) }
    }

    func testOddSizesAndExtremePixels() {
        // D not a multiple of 4, counts not multiples of the panels, pixels at 0 and 255
        // (the int8 kernel's signed/unsigned corner cases)
        func img(_ n: Int, seed: UInt64) -> ImageSet {
            var s = RandomStream(key: RandomKey(seed: seed))
            let px = (0..<(n * 3 * 5 * 7)).map { _ in [UInt8(0), 255, 1, 254, 128, 127][s.nextInt(below: 6)] }
            return ImageSet(images: px, labels: [Int](repeating: 0, count: n), channels: 3, height: 5, width: 7, classNames: ["x"])
        }
        let refs = img(77, seed: 8), queries = img(25, seed: 9)
        for kernel in kernels { check(ReferenceIndex(refs, kernel: kernel).search(queries, k: 9), brute(queries, refs, k: 9), d: refs.imageSize) }
    }

    /// The all-pairs threshold search (dedup plans, clique candidates) equals brute force
    /// with every kernel: across the int8 search's 240-row tasks and 128-reference blocks,
    /// with a threshold exactly at a pair's distance (strictly below counts), and with a set
    /// so full of copies that a task overflows its first output buffer.
    func testPairsWithinMatchesBruteForce() {
        func brutePairs(_ set: ImageSet, _ t: Double) -> [(Int, Int)] {
            var out: [(Int, Int)] = []
            for i in 0..<set.count { for j in (i + 1)..<set.count where NearestNeighbors.normalizedL2(set.image(i), set.image(j)) < t { out.append((i, j)) } }
            return out
        }
        // 700 images: 40 are a planted image plus ±2 noise at scattered positions
        var set = images(700, seed: 5, size: 8)
        var s = RandomStream(key: RandomKey(seed: 6))
        let d = set.imageSize
        var px = set.images
        for k in 0..<40 {
            let i = (k * 173 + 11) % 700
            for t in 0..<d { px[i * d + t] = UInt8(clamping: Int(px[3 * d + t]) + s.nextInt(below: 5) - 2) }
        }
        set = ImageSet(images: px, labels: set.labels, channels: 3, height: 8, width: 8, classNames: ["x"])
        let atPair = NearestNeighbors.normalizedL2(set.image(11), set.image(184))
        for t in [0.005, 0.012, atPair, 0.3] {
            let expected = brutePairs(set, t)
            if t == 0.012 { XCTAssertGreaterThan(expected.count, 100) }
            for kernel in kernels {
                let got = NearestNeighbors.pairsWithin(set, threshold: t, kernel: kernel)
                XCTAssertEqual(got.map { $0.0 }, expected.map { $0.0 }, "\(kernel) t=\(t)")
                XCTAssertEqual(got.map { $0.1 }, expected.map { $0.1 }, "\(kernel) t=\(t)")
                for p in got { XCTAssertEqual(p.2, NearestNeighbors.normalizedL2(set.image(p.0), set.image(p.1))) }
            }
        }
        XCTAssertFalse(NearestNeighbors.pairsWithin(set, threshold: atPair).contains { $0.0 == 11 && $0.1 == 184 }, "strictly below")
        // 300 copies of one image: 44,850 pairs, far more than one task's first buffer
        let copies = ImageSet(images: Array(repeating: Array(set.image(0)), count: 300).flatMap { $0 }, labels: [Int](repeating: 0, count: 300),
                              channels: 3, height: 8, width: 8, classNames: ["x"])
        for kernel in kernels { XCTAssertEqual(NearestNeighbors.pairsWithin(copies, threshold: 1e-3, kernel: kernel).count, 300 * 299 / 2, "\(kernel)") }
    }
}
