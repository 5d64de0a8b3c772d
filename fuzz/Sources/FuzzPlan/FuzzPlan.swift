// libFuzzer target: plan files (`PlanFile.read`), as every plan kind: subset, membership,
// duplication, dedup, outliers. Reading checks JSON, kind and content hash. Nothing is
// asserted beyond "returns or throws".
import Data
import FuzzSupport

@_cdecl("FuzzPlan_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
    runFuzzer(argc, argv, fuzzOne)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let path = FuzzFiles.write(fuzzBytes(data, size), "plan.json")
    _ = try? PlanFile.read(SubsetPlan.self, from: path)
    _ = try? PlanFile.read(MembershipPlan.self, from: path)
    _ = try? PlanFile.read(DuplicationPlan.self, from: path)
    _ = try? PlanFile.read(DeduplicationPlan.self, from: path)
    _ = try? PlanFile.read(OutlierScores.self, from: path)
    return 0
}
