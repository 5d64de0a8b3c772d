// libFuzzer target: tensor files (checkpoints): `TensorFile.load` — HDF5 open, root
// attributes, every dataset read as a tensor. Nothing is asserted beyond "returns or throws".
import FuzzSupport
import HDF5

@_cdecl("FuzzTensorFile_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    HDF5File.preflightSeconds = 2   // a file that hangs HDF5 is refused after 2 s (libFuzzer's -timeout is 25)
    return runFuzzer(argc, argv, fuzzOne)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let path = FuzzFiles.write(fuzzBytes(data, size), "checkpoint.h5")
    _ = try? TensorFile.load(path)
    return 0
}
