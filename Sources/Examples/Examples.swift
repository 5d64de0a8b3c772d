import NN
import Optim
import Tensor

/// Small end-to-end examples that double as tests (tinygrad's habit): each trains from a
/// fixed seed and reports a number a test can assert on.
public enum Examples {
    /// XOR with a 2-8-1 MLP (tanh hidden layer, BCE on logits), full-batch Adam.
    /// Returns the final loss and the predictions for (0,0), (0,1), (1,0), (1,1).
    public static func xor(seed: UInt64 = 0, steps: Int = 500) throws -> (loss: Double, predictions: [Double]) {
        let key = RandomKey(seed: seed)
        let model = Sequential([Linear(2, 8, key: key.fold("l1")), Activation(.tanh), Linear(8, 1, key: key.fold("l2"))])
        let x = Tensor([0, 0, 0, 1, 1, 0, 1, 1], shape: [4, 2])
        let y = Tensor([0, 1, 1, 0], shape: [4, 1])
        let opt = Adam(learningRate: 0.05)
        var loss = 0.0
        for _ in 0..<steps {
            loss = try descend(model, with: opt) { bceWithLogitsLoss(model(x), y) }
        }
        let p = withoutGradient { model(x).sigmoid() }
        return (loss, p.doubles)
    }

    /// A generated two-class image task: 1×12×12 images holding a noisy horizontal
    /// (class 0) or vertical (class 1) bar of length 6 at a random place.
    public static func barImages(count: Int, key: RandomKey) -> (images: Tensor, labels: [Int]) {
        let s = 12
        var stream = RandomStream(key: key)
        let noise = Tensor.normal([count, 1, s, s], std: 0.3, key: key.fold("noise"))
        let px = noise.pointer(Float.self)
        var labels: [Int] = []
        for i in 0..<count {
            let label = stream.nextInt(below: 2)
            labels.append(label)
            let a = stream.nextInt(below: s), b = stream.nextInt(below: s - 6)
            for j in 0..<6 {
                let (r, c) = label == 0 ? (a, b + j) : (b + j, a)
                px[i * s * s + r * s + c] += 1
            }
        }
        return (noise, labels)
    }

    /// A tiny CNN: conv3×3(1→8) ReLU avgpool2, conv3×3(8→16) ReLU avgpool2, linear(144→2).
    public static func tinyCNN(key: RandomKey) -> Sequential {
        Sequential([
            Conv2d(1, 8, kernel: 3, padding: 1, key: key.fold("c1")), Activation(.relu), AvgPool(2),
            Conv2d(8, 16, kernel: 3, padding: 1, key: key.fold("c2")), Activation(.relu), AvgPool(2),
            Flatten(), Linear(16 * 3 * 3, 2, key: key.fold("fc")),
        ])
    }

    /// Trains `tinyCNN` on 512 bar images (batches of 32, Adam 3e-3) and measures accuracy
    /// on 512 fresh ones. `log` receives a line per epoch.
    public static func trainTinyCNN(seed: UInt64 = 0, epochs: Int = 12, log: (String) -> Void = { _ in }) throws
        -> (testAccuracy: Double, finalLoss: Double)
    {
        let root = RandomKey(seed: seed)
        let (train, trainLabels) = barImages(count: 512, key: root.fold("train"))
        let (test, testLabels) = barImages(count: 512, key: root.fold("test"))
        let model = tinyCNN(key: root.fold("model"))
        let opt = Adam(learningRate: 3e-3)
        let batch = 32
        var batches = BatchSchedule(count: 512, batchSize: batch, key: root.fold("epoch"))
        var lastLoss = 0.0
        for epoch in 0..<epochs {
            var total = 0.0
            for _ in 0..<(512 / batch) {
                let idx = batches.next()
                let x = gatherRows(train, idx)
                let y = idx.map { trainLabels[$0] }
                total += try descend(model, with: opt) { crossEntropyLoss(model(x), labels: y) }
            }
            lastLoss = total / Double(512 / batch)
            log("epoch \(epoch + 1)/\(epochs)  loss \(String(format: "%.4f", lastLoss))")
        }
        model.eval()
        let logits = withoutGradient { model(test) }
        let acc = accuracy(logits, testLabels)
        return (acc, lastLoss)
    }

    /// Fraction of rows whose arg-max matches the label.
    public static func accuracy(_ logits: Tensor, _ labels: [Int]) -> Double {
        let k = logits.shape[1], v = logits.doubles
        var correct = 0
        for (i, l) in labels.enumerated() {
            let row = v[(i * k)..<((i + 1) * k)]
            if row.firstIndex(of: row.max()!)! - i * k == l { correct += 1 }
        }
        return Double(correct) / Double(labels.count)
    }

    /// Rows `indices` of x along axis 0.
    public static func gatherRows(_ x: Tensor, _ indices: [Int]) -> Tensor {
        let row = x.count / x.shape[0]
        let src = x.pointer(Float.self)
        var out = [Float](repeating: 0, count: indices.count * row)
        for (j, i) in indices.enumerated() { for k in 0..<row { out[j * row + k] = src[i * row + k] } }
        return Tensor(out, shape: [indices.count] + Array(x.shape.dropFirst()))
    }
}
