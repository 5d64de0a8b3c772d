// libFuzzer target: the CIFAR-10 binary archive reader (gzip via zlib, the tar reader, batch
// parsing). The input is written to a file and read as the official `.tar.gz` would be
// (plain tar is read too: zlib's gzread passes non-gzip bytes through). Batches are one
// record each so a small input can reach the parser. Nothing is asserted beyond "returns
// or throws": a crash, a hang or a huge allocation is a finding.
import Data
import FuzzSupport

@_cdecl("FuzzCIFAR_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runFuzzer(argc, argv, fuzzOne)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let path = FuzzFiles.write(fuzzBytes(data, size), "cifar-10-binary.tar.gz")
    if let (train, test) = try? CIFAR10.load(path, recordsPerBatch: 1) {
        precondition(train.count == 5 && test.count == 1 && train.images.count == 5 * 3072, "CIFAR-10: wrong counts")
    }
    return 0
}
