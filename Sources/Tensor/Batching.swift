import Foundation
import Tensor

/// Shuffled fixed-size batches over `count` examples: epoch e visits the examples in the
/// order randomPermutation(count, key.fold(e)); the last incomplete batch of an epoch is
/// dropped. The cursor (epoch, position) is the whole state, so a resumed run continues
/// exactly where it stopped (S4TF's TrainingEpochs, with an injected key).
public struct BatchSchedule: Codable, Equatable, Sendable {
    public let count: Int
    public let batchSize: Int
    public let key: RandomKey
    public private(set) var epoch = 0
    public private(set) var position = 0

    /// A schedule at cursor (epoch, position): a fresh one starts at (0, 0); a resumed run
    /// passes the cursor from its checkpoint.
    public init(count: Int, batchSize: Int, key: RandomKey, epoch: Int = 0, position: Int = 0) {
        precondition(batchSize >= 1 && batchSize <= count, "BatchSchedule: batch size \(batchSize) must be in 1...\(count)")
        self.count = count; self.batchSize = batchSize; self.key = key
        self.epoch = epoch; self.position = position
    }

    /// The next batch of example indices.
    public mutating func next() -> [Int] {
        if position + batchSize > count { epoch += 1; position = 0 }
        let order = randomPermutation(count, key: key.fold(UInt64(epoch)))
        defer { position += batchSize }
        return Array(order[position..<(position + batchSize)])
    }
}

/// Poisson sampling for DP-SGD (Abadi et al., 2016; Mironov et al., 2019): at step s each
/// example is included independently with probability `rate`. Batches vary in size and
/// may be empty; the expected size is rate·count.
public struct PoissonSampler: Codable, Equatable, Sendable {
    public let count: Int
    public let rate: Double
    public let key: RandomKey
    public private(set) var step = 0

    public init(count: Int, rate: Double, key: RandomKey) {
        precondition(rate > 0 && rate <= 1, "PoissonSampler: rate \(rate) must be in (0, 1]")
        self.count = count; self.rate = rate; self.key = key
    }

    public var expectedBatchSize: Double { rate * Double(count) }

    public mutating func next() -> [Int] {
        let k = key.fold(UInt64(step))
        step += 1
        let threshold = rate * 4_294_967_296.0
        return (0..<count).filter { Double(k.word($0)) < threshold }
    }
}
