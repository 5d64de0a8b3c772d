import Data
import Foundation
import Tensor
import XCTest

final class PlanTests: TempDirTestCase {
    /// Random images with labels 0..<classes.
    func randomSet(_ n: Int, classes: Int = 4, seed: UInt64 = 1, size: Int = 6) -> ImageSet {
        let u = Tensor.uniform([n * 3 * size * size], low: 0, high: 256, key: RandomKey(seed: seed)).scalars
        return ImageSet(images: u.map { UInt8(min(255, $0)) }, labels: (0..<n).map { $0 % classes },
                        channels: 3, height: size, width: size, classNames: (0..<classes).map { "c\($0)" })
    }
    let ref = DatasetReference(file: "x.h5", split: "train", contentSHA256: "abc")

    /// The twin of a training list: same length, classes and copies, no shared example,
    /// deterministic in the seed; refused when a class has too few other examples.
    func testTwinPlanIsADisjointCopyOfTheStructure() throws {
        let labels = [0, 0, 0, 1, 1, 1, 1, 0]
        let training = [0, 3, 3, 4, 3]
        let t = try TwinPlan(dataset: ref, labels: labels, training: training, seed: 5)
        XCTAssertEqual(t.original, [0, 3, 4])
        XCTAssertEqual(t.trainingIndices.count, 5)
        XCTAssertTrue(Set(t.twins).isDisjoint(with: training))
        XCTAssertEqual(Set(t.twins).count, 3)
        XCTAssertEqual(t.trainingIndices.map { labels[$0] }, training.map { labels[$0] })
        XCTAssertEqual(t.trainingIndices[1], t.trainingIndices[2]); XCTAssertEqual(t.trainingIndices[1], t.trainingIndices[4])
        XCTAssertTrue([1, 2, 7].contains(t.twins[0])); XCTAssertTrue([5, 6].contains(t.twins[1]) && [5, 6].contains(t.twins[2]))
        XCTAssertEqual(try TwinPlan(dataset: ref, labels: labels, training: training, seed: 5), t)
        let seeds = Set((0..<16).map { try! TwinPlan(dataset: ref, labels: labels, training: training, seed: UInt64($0)).twins })
        XCTAssertGreaterThan(seeds.count, 1, "the seed chooses the twins")
        XCTAssertThrowsError(try TwinPlan(dataset: ref, labels: labels, training: [3, 4, 5], seed: 0)) {
            XCTAssertTrue("\($0)".contains("class 1 has 3 training examples but only 1 others"), "\($0)")
        }
    }

    func testSubsetIsBalancedAndByteIdenticalForSameSeed() throws {
        let labels = (0..<103).map { $0 % 4 }
        let a = try SubsetPlan(dataset: ref, labels: labels, classes: 4, size: 42, seed: 7)
        XCTAssertEqual(a.perClass, [11, 11, 10, 10])
        var counts = [0, 0, 0, 0]; for i in a.indices { counts[labels[i]] += 1 }
        XCTAssertEqual(counts, a.perClass)
        XCTAssertEqual(Set(a.indices).count, 42)
        try PlanFile.write(a, to: dir + "/a.json")
        try PlanFile.write(try SubsetPlan(dataset: ref, labels: labels, classes: 4, size: 42, seed: 7), to: dir + "/b.json")
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/a.json"), FileManager.default.contents(atPath: dir + "/b.json"))
        XCTAssertEqual(try PlanFile.read(SubsetPlan.self, from: dir + "/a.json"), a)
        XCTAssertNotEqual(try SubsetPlan(dataset: ref, labels: labels, classes: 4, size: 42, seed: 8).indices, a.indices)
        XCTAssertThrowsError(try SubsetPlan(dataset: ref, labels: labels, classes: 4, size: 200, seed: 7))
    }

    func testPlanFilesRejectTamperingAndWrongKinds() throws {
        let a = try SubsetPlan(dataset: ref, labels: [0, 1, 0, 1], classes: 2, size: 2, seed: 1)
        let path = dir + "/p.json"
        try PlanFile.write(a, to: path)
        var text = String(decoding: FileManager.default.contents(atPath: path)!, as: UTF8.self)
        assertOneLineError(try PlanFile.read(MembershipPlan.self, from: path), names: "p.json", contains: "expected 'membership'")
        text = text.replacingOccurrences(of: "\"seed\":1", with: "\"seed\":2")
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        assertOneLineError(try PlanFile.read(SubsetPlan.self, from: path), names: "p.json", contains: "hash mismatch")
        let bad = try write(Array("{not json".utf8), "bad.json")
        assertOneLineError(try PlanFile.read(SubsetPlan.self, from: bad), names: "bad.json")
        let empty = try write([], "empty.json")
        assertOneLineError(try PlanFile.read(SubsetPlan.self, from: empty), names: "empty.json", contains: "empty")
    }

    func testMembershipKeepMatrixIsBalanced() throws {
        let pool = Array(stride(from: 0, to: 500, by: 2))
        let plan = try MembershipPlan(dataset: ref, pool: pool, models: 16, seed: 3)
        XCTAssertEqual(plan.balance, MembershipPlan.balancedBothWays)
        for i in 0..<pool.count { XCTAssertEqual((0..<16).filter { plan.isMember(model: $0, poolIndex: i) }.count, 8) }
        for m in 0..<16 { XCTAssertEqual(plan.members(model: m).count, 125) }
        XCTAssertTrue(plan.members(model: 0).allSatisfy { $0 % 2 == 0 })
        try PlanFile.write(plan, to: dir + "/m1.json")
        try PlanFile.write(try MembershipPlan(dataset: ref, pool: pool, models: 16, seed: 3), to: dir + "/m2.json")
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/m1.json"), FileManager.default.contents(atPath: dir + "/m2.json"))
        XCTAssertThrowsError(try MembershipPlan(dataset: ref, pool: pool, models: 3, seed: 3))
    }

    /// Both marginals for many (K, N, seed): every example in exactly K/2 models; every model
    /// on N/2 examples (N odd: K/2 models on ⌈N/2⌉, K/2 on ⌊N/2⌋). Same seed, same matrix.
    func testBalancedKeepHasBothMarginalsForManySizes() throws {
        for k in [2, 4, 6, 8, 10, 16, 64] {
            for n in [0, 1, 2, 3, 5, 7, 16, 31, 64, 101, 250] {
                for seed in UInt64(0)..<6 {
                    let keep = try MembershipPlan.balancedKeep(models: k, examples: n, seed: seed)
                    XCTAssertEqual(keep.count, k)
                    for i in 0..<n { XCTAssertEqual(keep.reduce(0) { $0 + ($1[i] ? 1 : 0) }, k / 2, "K \(k) N \(n) seed \(seed) example \(i)") }
                    let rows = keep.map { $0.reduce(0) { $0 + ($1 ? 1 : 0) } }
                    if n % 2 == 0 {
                        XCTAssertEqual(rows, [Int](repeating: n / 2, count: k), "K \(k) N \(n) seed \(seed)")
                    } else {
                        XCTAssertEqual(rows.filter { $0 == n / 2 + 1 }.count, k / 2, "K \(k) N \(n) seed \(seed): \(rows)")
                        XCTAssertEqual(rows.filter { $0 == n / 2 }.count, k / 2, "K \(k) N \(n) seed \(seed): \(rows)")
                    }
                }
            }
        }
        XCTAssertEqual(try MembershipPlan.balancedKeep(models: 8, examples: 64, seed: 5), try MembershipPlan.balancedKeep(models: 8, examples: 64, seed: 5))
        XCTAssertNotEqual(try MembershipPlan.balancedKeep(models: 8, examples: 64, seed: 5), try MembershipPlan.balancedKeep(models: 8, examples: 64, seed: 6))
        XCTAssertThrowsError(try MembershipPlan.balancedKeep(models: 5, examples: 10, seed: 0))
        XCTAssertThrowsError(try MembershipPlan.balancedKeep(models: 0, examples: 10, seed: 0))
    }

    /// The balanced matrix is still random, not a block design: every pair of models shares
    /// about as many examples as in a random half per example (N·(K/2)(K/2−1)/(K(K−1)) = 116.7
    /// for K = 16, N = 500; sd ≈ 9), and a model's examples are not a fixed pattern.
    func testBalancedKeepIsNotABlockDesign() throws {
        let k = 16, n = 500
        let keep = try MembershipPlan.balancedKeep(models: k, examples: n, seed: 9)
        let expected = Double(n) * Double(k / 2 * (k / 2 - 1)) / Double(k * (k - 1))
        for a in 0..<k {
            for b in (a + 1)..<k {
                let both = (0..<n).filter { keep[a][$0] && keep[b][$0] }.count
                XCTAssertEqual(Double(both), expected, accuracy: 45, "models \(a) and \(b) share \(both) examples")
            }
        }
    }

    /// Plans written before the rows were balanced (no "balance" key, unequal model sizes)
    /// still load, verify their hash, and are written back byte for byte.
    func testMembershipPlansWithoutBalanceKeyStillLoad() throws {
        let old = #"{"contentSHA256":"f32ce5a53f6448cdacd2f9e2dfd776745b6b8ddf2e3b3efb6dbfe620364e9621","kind":"membership","plan":{"dataset":{"contentSHA256":"abc","file":"x.h5","split":"train"},"keep":["111010","011001","100100","000111"],"models":4,"pool":[10,12,14,16,18,20],"seed":7}}"#
        let path = try write(Array((old + "\n").utf8), "old.json")
        let plan = try PlanFile.read(MembershipPlan.self, from: path)
        XCTAssertNil(plan.balance)
        XCTAssertEqual((0..<4).map { plan.members(model: $0).count }, [4, 3, 2, 3])
        XCTAssertEqual(plan.members(model: 2), [10, 16])
        try PlanFile.write(plan, to: dir + "/again.json")
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/again.json"), FileManager.default.contents(atPath: path))
        // a new plan records its balance in the file
        try PlanFile.write(try MembershipPlan(dataset: ref, pool: [10, 12, 14, 16, 18, 20], models: 4, seed: 7), to: dir + "/new.json")
        XCTAssertTrue(String(decoding: FileManager.default.contents(atPath: dir + "/new.json")!, as: UTF8.self).contains(#""balance":"examples-and-models""#))
    }

    func testDuplicationPlanHasPhysicalCopies() throws {
        let base = Array(0..<100)
        let plan = try DuplicationPlan(dataset: ref, base: base, canariesPerCopies: [2: 5, 8: 3], seed: 4)
        XCTAssertEqual(plan.canaries.count, 8)
        XCTAssertEqual(plan.trainingIndices.count, 100 + 5 * 1 + 3 * 7)
        for c in plan.canaries { XCTAssertEqual(plan.trainingIndices.filter { $0 == c.index }.count, c.copies) }
        XCTAssertEqual(Set(plan.canaries.map(\.index)).count, 8)
    }

    /// Audit plan: m canaries from the pool outside the base, one fair coin each, the base
    /// always trained on; deterministic in the seed, and refusing more canaries than the pool holds.
    func testAuditPlanDrawsCanariesOutsideTheBaseWithFairCoins() throws {
        let base = Array(0..<50), pool = Array(0..<2050)
        let plan = try AuditPlan(dataset: ref, pool: pool, base: base, canaries: 1000, seed: 3)
        XCTAssertEqual(plan.canaries.count, 1000); XCTAssertEqual(Set(plan.canaries).count, 1000)
        XCTAssertEqual(plan.canaries, plan.canaries.sorted())
        XCTAssertTrue(Set(plan.canaries).isDisjoint(with: base), "canaries never come from the base")
        let ins = plan.inclusion.filter { $0 }.count
        XCTAssertEqual(Double(ins), 500, accuracy: 3 * sqrt(250), "fair coins: \(ins) of 1000 IN")
        XCTAssertEqual(plan.trainingIndices, (base + zip(plan.canaries, plan.inclusion).compactMap { $1 ? $0 : nil }).sorted())
        // neighbouring canaries' coins are independent: about half the pairs agree
        let agree = zip(plan.inclusion, plan.inclusion.dropFirst()).filter { $0 == $1 }.count
        XCTAssertEqual(Double(agree), 499.5, accuracy: 3 * sqrt(250))
        try PlanFile.write(plan, to: dir + "/a.json")
        try PlanFile.write(try AuditPlan(dataset: ref, pool: pool, base: base, canaries: 1000, seed: 3), to: dir + "/b.json")
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/a.json"), FileManager.default.contents(atPath: dir + "/b.json"))
        XCTAssertEqual(try PlanFile.read(AuditPlan.self, from: dir + "/a.json"), plan)
        let other = try AuditPlan(dataset: ref, pool: pool, base: base, canaries: 1000, seed: 4)
        XCTAssertNotEqual(other.included, plan.included)
        XCTAssertThrowsError(try AuditPlan(dataset: ref, pool: Array(0..<60), base: base, canaries: 11, seed: 3)) { e in
            XCTAssertTrue("\(e)".contains("only 10 pool examples lie outside the base set"), "\(e)")
        }
        XCTAssertThrowsError(try AuditPlan(dataset: ref, pool: pool, base: [], canaries: 0, seed: 3))
    }

    func testDeduplicationFindsPlantedNearCopies() {
        var set = randomSet(60)
        let d = set.imageSize
        // plant: 10 is an exact copy of 3; 20 is 5 plus small noise; 30 and 31 are near-copies of 7
        func plant(_ target: Int, from src: Int, noise: Int) {
            for k in 0..<d {
                let v = Int(set.images[src * d + k]) + ((k * 7 + target) % (2 * noise + 1)) - noise
                set.images[target * d + k] = UInt8(max(0, min(255, v)))
            }
        }
        plant(10, from: 3, noise: 0); plant(20, from: 5, noise: 4); plant(30, from: 7, noise: 3); plant(31, from: 7, noise: 5)
        XCTAssertLessThan(NearestNeighbors.normalizedL2(set.image(20), set.image(5)), 0.05)
        let plan = DeduplicationPlan(dataset: ref, images: set, candidates: Array(0..<60), threshold: 0.05)
        XCTAssertEqual(plan.exactGroups, [[3, 10]])
        XCTAssertEqual(plan.nearGroups, [[3, 10], [5, 20], [7, 30, 31]])
        XCTAssertEqual(plan.kept.count, 60 - 4)
        XCTAssertFalse(plan.kept.contains(31))
        // random images are far apart: nothing flagged at a strict threshold
        XCTAssertEqual(DeduplicationPlan(dataset: ref, images: randomSet(40, seed: 9), candidates: Array(0..<40), threshold: 0.05).nearGroups, [])
    }

    func testNearestNeighborsMatchBruteForce() {
        let refs = randomSet(300, seed: 2), queries = randomSet(17, seed: 3)
        let nn = NearestNeighbors.search(queries: queries, references: refs, k: 5)
        for q in 0..<queries.count {
            let brute = (0..<refs.count).map { (NearestNeighbors.normalizedL2(queries.image(q), refs.image($0)), $0) }.sorted { $0 < $1 }.prefix(5)
            XCTAssertEqual(nn[q].map(\.index), brute.map { $0.1 })
            for (a, b) in zip(nn[q], brute) { XCTAssertEqual(a.distance, b.0, accuracy: 1e-12) }
        }
        // a query that is a training image is found at distance 0; excludeSelf skips it
        let selfNN = NearestNeighbors.search(queries: refs, references: refs, k: 1, excludeSelf: true)
        XCTAssertTrue(selfNN.enumerated().allSatisfy { $0.element[0].index != $0.offset && $0.element[0].distance > 0 })
        let exact = NearestNeighbors.search(queries: refs.subset([42]), references: refs, k: 1)
        XCTAssertEqual(exact[0][0].index, 42); XCTAssertEqual(exact[0][0].distance, 0)
    }

    func testOutlierScoreFlagsThePlantedOutlier() {
        // a tight cluster of near-identical gray images and one white image
        var imgs: [UInt8] = []
        for i in 0..<30 { imgs += (0..<12).map { UInt8(100 + ($0 + i) % 5) } }
        imgs += [UInt8](repeating: 255, count: 12)
        let set = ImageSet(images: imgs, labels: [Int](repeating: 0, count: 31), channels: 3, height: 2, width: 2, classNames: ["x"])
        let s = OutlierScores(dataset: ref, images: set, indices: Array(0..<31), neighbors: 5)
        XCTAssertEqual(s.scores.firstIndex(of: s.scores.max()!), 30)
        XCTAssertEqual(s.scores[30], Double(255 - 102) / 255, accuracy: 0.02)
    }
}

final class GridTests: TempDirTestCase {
    func testGridsRoundTripThroughPNG() throws {
        let set = ImageSet(images: (0..<(5 * 3 * 4 * 4)).map { UInt8($0 % 256) }, labels: [0, 0, 0, 0, 0],
                           channels: 3, height: 4, width: 4, classNames: ["x"])
        let g = PNG.grid((0..<5).map { set.image($0) }, channels: 3, height: 4, width: 4, columns: 3)
        XCTAssertEqual([g.width, g.height], [3 * 6 + 2, 2 * 6 + 2])
        // image 4 sits in row 1, column 1: top-left pixel at (2 + 6, 2 + 6), red = its first byte
        XCTAssertEqual(g.pixels[((8) * g.width + 8) * 3], Array(set.image(4))[0])
        XCTAssertEqual(g.pixels[((8) * g.width + 8) * 3 + 1], Array(set.image(4))[16])
        try PNG.write(g, to: dir + "/g.png")
        XCTAssertEqual(try PNG.read(dir + "/g.png"), g)
        let p = PNG.pairsGrid([(set.image(0), set.image(1)), (set.image(2), set.image(3))], channels: 3, height: 4, width: 4, pairsPerRow: 2)
        XCTAssertEqual(p.height, 4 + 4)
        XCTAssertEqual(p.pixels[(2 * p.width + 2 + 4 + 2) * 3], Array(set.image(1))[0])   // partner right of image 0
    }
}

final class BatchingTests: XCTestCase {
    func testScheduleCoversEachEpochAndResumes() throws {
        var s = BatchSchedule(count: 10, batchSize: 3, key: RandomKey(seed: 5))
        let epoch0 = (0..<3).flatMap { _ in s.next() }
        XCTAssertEqual(Set(epoch0).count, 9)
        let saved = try JSONEncoder().encode(s)
        let a = (0..<5).map { _ in s.next() }
        var r = try JSONDecoder().decode(BatchSchedule.self, from: saved)
        XCTAssertEqual((0..<5).map { _ in r.next() }, a)
        XCTAssertEqual(r.epoch, 2)
    }

    func testPoissonSampler() {
        var p = PoissonSampler(count: 1000, rate: 0.05, key: RandomKey(seed: 6))
        let sizes = (0..<200).map { _ in p.next().count }
        XCTAssertEqual(Double(sizes.reduce(0, +)) / 200, 50, accuracy: 2)
        var q = PoissonSampler(count: 1000, rate: 0.05, key: RandomKey(seed: 6))
        XCTAssertEqual(q.next().count, sizes[0])
        var tiny = PoissonSampler(count: 3, rate: 0.01, key: RandomKey(seed: 1))
        XCTAssertTrue((0..<50).contains { _ in tiny.next().isEmpty })   // empty batches happen and are allowed
    }

    func testTensorViewAndFlips() {
        let set = ImageSet(images: [0, 255, 128, 1, 2, 3], labels: [0, 1], channels: 1, height: 1, width: 3, classNames: ["a", "b"])
        let t = set.tensor()
        XCTAssertEqual(t.shape, [2, 1, 1, 3])
        XCTAssertEqual(t.scalars[0], -1); XCTAssertEqual(t.scalars[1], 1)
        XCTAssertEqual(t.imageBytes(), set.images)
        let key = RandomKey(seed: 11)
        let f = set.tensor(flipKey: key).imageBytes()
        for i in 0..<2 {
            let row = Array(set.images[(i * 3)..<(i * 3 + 3)]), got = Array(f[(i * 3)..<(i * 3 + 3)])
            XCTAssertEqual(got, key.word(i) & 1 == 1 ? row.reversed() : row)
        }
        let many = ImageSet(images: [UInt8](repeating: 0, count: 400 * 2).enumerated().map { UInt8($0.offset % 2) }, labels: [Int](repeating: 0, count: 400),
                            channels: 1, height: 1, width: 2, classNames: ["a"])
        let flipped = many.tensor(flipKey: key).imageBytes()
        let n = (0..<400).filter { flipped[$0 * 2] == 1 }.count
        XCTAssertEqual(Double(n), 200, accuracy: 40)
    }
}
