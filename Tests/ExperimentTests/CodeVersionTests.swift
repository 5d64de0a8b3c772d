import Experiments
import Foundation
import XCTest

/// Every result names the commit its binary was built from: the `<binary>.version` stamp
/// that `make` writes after each build, used only when it is not older than the binary.
final class CodeVersionTests: XCTestCase {
    func testStampBesideTheBinaryNamesTheCommitUnlessItIsOlderThanTheBinary() throws {
        let fm = FileManager.default
        let dir = NSTemporaryDirectory() + "codeversion-\(UUID().uuidString)"
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: dir) }
        let exe = dir + "/eidetic"
        XCTAssertTrue(fm.createFile(atPath: exe, contents: Data("binary".utf8)))
        XCTAssertTrue(CodeVersion.describe(executable: exe).contains("commit unknown"), "no stamp, no checkout")
        try "abc123def456-dirty\n".write(toFile: exe + ".version", atomically: true, encoding: .utf8)
        let now = Date()
        try fm.setAttributes([.modificationDate: now], ofItemAtPath: exe + ".version")
        try fm.setAttributes([.modificationDate: now.addingTimeInterval(-60)], ofItemAtPath: exe)
        XCTAssertEqual(CodeVersion.describe(executable: exe), "\(CodeVersion.package) (git abc123def456-dirty)")
        // rebuilt after the stamp (a plain `swift build`): the stamp no longer describes it
        try fm.setAttributes([.modificationDate: now.addingTimeInterval(60)], ofItemAtPath: exe)
        XCTAssertTrue(CodeVersion.describe(executable: exe).contains("commit unknown"), CodeVersion.describe(executable: exe))
    }
}
