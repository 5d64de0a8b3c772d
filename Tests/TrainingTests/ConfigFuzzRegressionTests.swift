import Foundation
import TOML
import Training
import XCTest

/// Configs that crashed or stalled the TOML reader before issue 10's fixes (found alongside
/// the loader fuzzers, fuzz/; docs/FUZZING.md): each is now a one-line error with file and line.
final class ConfigFuzzRegressionTests: XCTestCase {
    func assertError(_ text: String, contains: String, line: UInt = #line) {
        XCTAssertThrowsError(try TrainConfig.load(toml: text, file: "bad.toml"), line: line) { error in
            let s = "\(error)"
            XCTAssertTrue(s.hasPrefix("bad.toml:"), s, line: line)
            XCTAssertTrue(s.contains(contains), s, line: line)
            XCTAssertFalse(s.contains("\n"), s, line: line)
        }
    }

    /// 300,000 nested '[' recursed once per level and overflowed the stack.
    func testDeeplyNestedArraysAreAnError() {
        assertError("[model]\nchannel_multipliers = " + String(repeating: "[", count: 300_000) + "\n", contains: "nested more than 32 deep")
        // ordinary nesting still reads
        XCTAssertNoThrow(try parseTOML("v = [[1, 2], [3, [4]]]"))
    }

    /// A table header or key of 100,000 dotted parts took gigabytes of nested table copies.
    func testKeysWithThousandsOfPartsAreAnError() {
        assertError("[" + String(repeating: "a.", count: 100_000) + "a]\n", contains: "more than 32 dotted parts")
        assertError("a" + String(repeating: ".a", count: 100_000) + " = 1\n", contains: "more than 32 dotted parts")
    }

    /// 20,000 keys in one table copied the table once per key (minutes); now linear. The
    /// unknown keys are then reported as usual.
    func testManyKeysInOneTableParseInLinearTime() throws {
        let text = "[train]\n" + (0..<20_000).map { "k\($0) = \($0)\n" }.joined()
        let start = Date()
        let table = try parseTOML(text, file: "many.toml")
        if case .table(let train)? = table["train"] { XCTAssertEqual(train.keys.count, 20_000) } else { XCTFail("no [train]") }
        XCTAssertLessThan(Date().timeIntervalSince(start), 30)
        assertError(text, contains: "unknown key")
    }
}
