import Foundation
import TOML
import XCTest

/// TOML 1.0 structures the experiment and sweep files use, and the line numbers that every
/// config error carries.
final class TOMLTests: XCTestCase {
    func table(_ v: TOMLValue?) -> TOMLTable? { if case .table(let t)? = v { return t }; return nil }
    func array(_ v: TOMLValue?) -> [TOMLValue]? { if case .array(let a)? = v { return a }; return nil }

    func testArraysOfTablesInlineTablesAndDottedKeys() throws {
        let text = """
        title = "sweep"   # a comment
        base.config = "experiments/tiny.toml"

        [[axis]]
        key = "run.seed"
        values = [
          0, 1,   # two seeds
          2,
        ]

        [[axis]]
        key = "train.lr"
        values = [1e-3, 2e-4]
        zip = { with = "data.plan_model", values = [0x10, 0o7, 0b11] }

        [axis.extra]
        note = '''
        raw \\n text'''
        [report]
        columns = [{ name = "auc", digits = 3 }, { name = "tpr" }]
        when = 1979-05-27T07:32:00Z
        """
        let t = try parseTOML(text, file: "s.toml")
        XCTAssertEqual(t["title"], .string("sweep"))
        XCTAssertEqual(table(t["base"])?["config"], .string("experiments/tiny.toml"))
        let axes = try XCTUnwrap(array(t["axis"]))
        XCTAssertEqual(axes.count, 2)
        let a0 = try XCTUnwrap(table(axes[0])), a1 = try XCTUnwrap(table(axes[1]))
        XCTAssertEqual(a0["values"], .array([.integer(0), .integer(1), .integer(2)]))
        XCTAssertEqual(a0.line, 4)
        XCTAssertEqual(a0.line(of: "values"), 6)
        XCTAssertEqual(a1.line(of: "key"), 12)
        XCTAssertEqual(table(a1["zip"])?["values"], .array([.integer(16), .integer(7), .integer(3)]))
        // [axis.extra] adds to the last [[axis]]
        XCTAssertEqual(table(a1["extra"])?["note"], .string("raw \\n text"))
        let report = try XCTUnwrap(table(t["report"]))
        XCTAssertEqual(report.line(of: "columns"), 20)
        XCTAssertEqual(array(report["columns"])?.count, 2)
        XCTAssertEqual(report["when"], .datetime("1979-05-27T07:32:00Z"))
        XCTAssertEqual(try parseTOML("s = \"\"\"\none\\\n   two \\u00e9\"\"\"")["s"], .string("onetwo é"))
    }

    func assertError(_ text: String, line: Int, contains: String, file: StaticString = #filePath, at: UInt = #line) {
        XCTAssertThrowsError(try parseTOML(text, file: "f.toml"), file: file, line: at) { e in
            guard let e = e as? TOMLError else { return XCTFail("\(e)", file: file, line: at) }
            XCTAssertEqual(e.line, line, "\(e)", file: file, line: at)
            XCTAssertTrue(e.description.contains(contains), "\(e)", file: file, line: at)
        }
    }

    func testStructuralErrorsNameTheLine() {
        assertError("a = {x = 1}\n[a]\n", line: 2, contains: "inline")
        assertError("a = {x = 1}\na.y = 2\n", line: 2, contains: "inline")
        assertError("[a]\nx = 1\n[a]\n", line: 3, contains: "defined twice")
        assertError("a = [1]\n[[a]]\n", line: 2, contains: "cannot become an array of tables")
        assertError("[t]\nv = [\n 1,\n 2\n", line: 5, contains: "unterminated array")
        assertError("\n\nv = {a = 1\n", line: 3, contains: "inline table")
        assertError("[x]\ny.z = 1\n[x.y]\n", line: 3, contains: "defined twice")
        assertError("v = 007\n", line: 1, contains: "cannot read value")
        assertError("v = 1 2\n", line: 1, contains: "unexpected")
        assertError("v = \"abc\n", line: 1, contains: "unterminated string")
    }
}
