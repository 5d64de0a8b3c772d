import Foundation
import HDF5
import Tensor
import XCTest

/// Files written without tracked link creation order (h5py's default) load with their
/// datasets in name order instead of appearing empty.
final class ForeignFileTests: XCTestCase {
    func testFilesWithoutCreationOrderListTheirDatasetsByName() throws {
        let dir = NSTemporaryDirectory() + "eidetic-h5-foreign-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/h5py-like.h5"
        let f = try HDF5File.create(path, trackOrder: false)
        try f.setAttribute(TensorFile.formatAttribute, .string(TensorFile.formatValue))
        let b = Tensor([1, 2, 3], shape: [3]), a = Tensor([4, 5], shape: [2])
        try f.write("zeta", tensor: b)
        try f.write("alpha", tensor: a)
        try f.close()
        let (tree, _) = try TensorFile.load(path)
        XCTAssertEqual(tree.keys, ["alpha", "zeta"])
        XCTAssertEqual(tree["zeta"]!.scalars, [1, 2, 3])
        XCTAssertEqual(tree["alpha"]!.scalars, [4, 5])
        // and a file that does track it keeps creation order
        try TensorFile.save(TensorTree([("zeta", b), ("alpha", a)]), to: dir + "/ours.h5")
        XCTAssertEqual(try TensorFile.load(dir + "/ours.h5").tree.keys, ["zeta", "alpha"])
    }

    /// A killed atomic write leaves `.NAME.tmp-PID-RAND`; the next write of NAME removes it
    /// when PID is gone, and leaves a live writer's temporary alone.
    func testNextWriteRemovesTemporariesOfDeadWriters() throws {
        let dir = NSTemporaryDirectory() + "eidetic-h5-tmp-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var dead: pid_t = 4_000_000
        while kill(dead, 0) == 0 || errno != ESRCH { dead -= 1 }
        let stale = dir + "/.x.h5.tmp-\(dead)-7", live = dir + "/.x.h5.tmp-\(getpid())-8", other = dir + "/.y.h5.tmp-\(dead)-9"
        for p in [stale, live, other] { try Data([1]).write(to: URL(fileURLWithPath: p)) }
        try TensorFile.save(TensorTree([("a", Tensor([1], shape: [1]))]), to: dir + "/x.h5")
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale))
        XCTAssertTrue(FileManager.default.fileExists(atPath: live))
        XCTAssertTrue(FileManager.default.fileExists(atPath: other))
    }
}
