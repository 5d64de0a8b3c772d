// libFuzzer target: IDX files (Fashion-MNIST), raw or gzip. The first input byte picks the
// entry point: even → `IDX.read` of the rest; odd → `IDX.load(images:labels:)` with the rest
// split at the first "%%" into the images file and the labels file, bit 1 choosing
// `padTo: 32` and bit 2 `channels: 3`. Nothing is asserted beyond "returns or throws".
import Data
import FuzzSupport

@_cdecl("FuzzIDX_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runFuzzer(argc, argv, fuzzOne)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = fuzzBytes(data, size)
    guard let mode = bytes.first else { return 0 }
    let rest = UnsafeRawBufferPointer(rebasing: bytes.dropFirst())
    if mode & 1 == 0 {
        let path = FuzzFiles.write(rest, "train-images-idx3-ubyte.gz")
        if let (values, shape) = try? IDX.read(path) {
            let count = shape.contains(0) ? 0 : shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue }
            precondition(values.count == count, "IDX.read: \(values.count) values for shape \(shape)")
        }
    } else {
        let (images, labels) = splitOnce(rest, separator: Array("%%".utf8))
        let ip = FuzzFiles.write(images, "train-images-idx3-ubyte.gz")
        let lp = FuzzFiles.write(labels, "train-labels-idx1-ubyte.gz")
        _ = try? IDX.load(images: ip, labels: lp, padTo: mode & 2 != 0 ? 32 : nil, channels: mode & 4 != 0 ? 3 : 1)
    }
    return 0
}
