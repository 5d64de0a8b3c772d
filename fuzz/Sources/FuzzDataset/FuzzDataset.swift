// libFuzzer target: the HDF5 dataset store (`DatasetFile`): open (format attribute, class
// names), then every split's shape, whole-split load, and a row read of the first and last
// rows (the direct-chunk path). Nothing is asserted beyond "returns or throws".
import Data
import FuzzSupport
import HDF5

@_cdecl("FuzzDataset_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    HDF5File.preflightSeconds = 2   // a file that hangs HDF5 is refused after 2 s (libFuzzer's -timeout is 25)
    return runFuzzer(argc, argv, fuzzOne)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let path = FuzzFiles.write(fuzzBytes(data, size), "dataset.h5")
    guard let file = try? DatasetFile(path) else { return 0 }
    for split in file.splits {
        guard let shape = try? file.shape(split), let n = shape.first, n > 0 else { continue }
        _ = try? file.load(split)
        _ = try? file.read(split, indices: [n - 1, 0, n - 1])
    }
    return 0
}
