import Foundation
import Tensor

extension ImageSet {
    /// The images as a float tensor [N, C, H, W] in [−1, 1] (x/127.5 − 1). With `flipKey`,
    /// each image is mirrored left–right with probability ½ (word i of the key's stream
    /// decides image i, so the choice does not depend on batch composition elsewhere).
    public func tensor(flipKey: RandomKey? = nil) -> Tensor {
        let t = Tensor.zeros(shape)
        let p = t.pointer(Float.self)
        let (c, h, w) = (channels, height, width)
        images.withUnsafeBufferPointer { src in
            for i in 0..<count {
                let flip = flipKey.map { $0.word(i) & 1 == 1 } ?? false
                for ch in 0..<c { for y in 0..<h {
                    let row = ((i * c + ch) * h + y) * w
                    for x in 0..<w { p[row + x] = Float(src[row + (flip ? w - 1 - x : x)]) * (1 / 127.5) - 1 }
                } }
            }
        }
        return t
    }
}

extension Tensor {
    /// Inverse of `ImageSet.tensor`: [N, C, H, W] in [−1, 1] → uint8 bytes (rounded, clamped).
    public func imageBytes() -> [UInt8] {
        doubles.map { UInt8(Swift.max(0, Swift.min(255, (($0 + 1) * 127.5).rounded()))) }
    }
}
