import XCTest
import Tensor

final class RandomTests: XCTestCase {
    /// Known-answer vectors from Random123's kat_vectors for philox4x32-10.
    func testPhiloxKnownAnswers() {
        let k0 = RandomKey(k0: 0, k1: 0).block(0, 0, 0, 0)
        XCTAssertTrue(k0 == (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8), "\(k0)")
        let k1 = RandomKey(k0: 0xffffffff, k1: 0xffffffff).block(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff)
        XCTAssertTrue(k1 == (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd), "\(k1)")
        let k2 = RandomKey(k0: 0xa4093822, k1: 0x299f31d0).block(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344)
        XCTAssertTrue(k2 == (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1), "\(k2)")
    }

    func testDeterministicAndPrefixStable() {
        let key = RandomKey(seed: 42)
        XCTAssertEqual(Tensor.normal([1000], key: key).scalars, Tensor.normal([1000], key: key).scalars)
        // element i depends only on (key, i): a shorter draw is a prefix of a longer one
        XCTAssertEqual(Array(Tensor.uniform([1001], key: key).scalars.prefix(999)), Tensor.uniform([999], key: key).scalars)
        XCTAssertEqual(Array(Tensor.normal([1001], key: key).scalars.prefix(998)), Tensor.normal([998], key: key).scalars)
        XCTAssertNotEqual(Tensor.uniform([8], key: key).scalars, Tensor.uniform([8], key: key.fold(1)).scalars)
        XCTAssertNotEqual(Tensor.uniform([8], key: key.fold("a")).scalars, Tensor.uniform([8], key: key.fold("b")).scalars)
    }

    func testSplitGivesDistinctKeys() {
        let keys = RandomKey(seed: 7).split(1000)
        XCTAssertEqual(Set(keys).count, 1000)
        XCTAssertEqual(RandomKey(seed: 7).split(3), RandomKey(seed: 7).split(3))
    }

    func testMomentsAndRanges() {
        let n = 200_000
        let u = Tensor.uniform([n], low: -2, high: 3, key: RandomKey(seed: 1)).doubles
        XCTAssertTrue(u.allSatisfy { $0 >= -2 && $0 < 3 })
        XCTAssertEqual(u.reduce(0, +) / Double(n), 0.5, accuracy: 0.02)
        let z = Tensor.normal([n], mean: 1, std: 2, key: RandomKey(seed: 2)).doubles
        let mean = z.reduce(0, +) / Double(n)
        let variance = z.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n)
        XCTAssertEqual(mean, 1, accuracy: 0.02)
        XCTAssertEqual(variance, 4, accuracy: 0.06)
        let tail = Double(z.filter { Swift.abs($0 - 1) > 2 * 1.96 }.count) / Double(n)
        XCTAssertEqual(tail, 0.05, accuracy: 0.004)
        let b = Tensor.bernoulli([n], probability: 0.3, key: RandomKey(seed: 3)).doubles
        XCTAssertEqual(b.reduce(0, +) / Double(n), 0.3, accuracy: 0.005)
        XCTAssertTrue(b.allSatisfy { $0 == 0 || $0 == 1 })
    }

    func testPermutation() {
        let p = randomPermutation(1000, key: RandomKey(seed: 5))
        XCTAssertEqual(p.sorted(), Array(0..<1000))
        XCTAssertNotEqual(p, Array(0..<1000))
        XCTAssertEqual(p, randomPermutation(1000, key: RandomKey(seed: 5)))
        // each position roughly uniform: first element over many keys
        var counts = [Int](repeating: 0, count: 4)
        for s in 0..<4000 { counts[randomPermutation(4, key: RandomKey(seed: UInt64(s)))[0]] += 1 }
        XCTAssertTrue(counts.allSatisfy { $0 > 850 && $0 < 1150 }, "\(counts)")
    }

    func testStreamStateRoundTrips() throws {
        var s = RandomStream(key: RandomKey(seed: 9))
        _ = s.nextInt(below: 10); _ = s.nextUniform()
        let saved = try JSONEncoder().encode(s)
        var restored = try JSONDecoder().decode(RandomStream.self, from: saved)
        XCTAssertEqual(s.nextInt(below: 1000), restored.nextInt(below: 1000))
    }
}
