// libFuzzer target: PNG decoding (libpng's simplified API) through the PNG-folder dataset
// reader: the input becomes `set/c/a.png` and `ImageSet.loadFolder(set)` reads it (which
// calls `PNG.read`). Nothing is asserted beyond "returns or throws".
import Data
import FuzzSupport

@_cdecl("FuzzPNG_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runFuzzer(argc, argv, fuzzOne)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    FuzzFiles.write(fuzzBytes(data, size), "set/c/a.png")
    if let set = try? ImageSet.loadFolder(FuzzFiles.folder + "/set") {
        precondition(set.count == 1 && set.images.count == set.imageSize, "PNG folder: wrong sizes")
    }
    return 0
}
