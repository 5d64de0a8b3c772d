import Foundation

/// A TOML value (TOML 1.0: tables, arrays of tables, inline tables, dotted/bare/quoted keys,
/// basic/literal/multi-line strings, integers in any base, floats, booleans, arrays over
/// several lines, and dates/times, which are kept as their text).
///
/// Why not LebJe/TOMLKit (measured, 2026-12-03): it parses TOML 1.0 and builds here (toml++
/// underneath), but it reports a source position only for a *syntax* error. Our configs'
/// errors are mostly *semantic* (an unknown key, a wrong type, a value out of range), and
/// those must name the line of the offending key, which needs positions on every key.
/// TOMLKit 0.6.0's C bridge does not expose toml++'s node regions, so this reader keeps
/// its own parser and records the line of every key and table.
public indirect enum TOMLValue: Equatable, CustomStringConvertible {
    case string(String), integer(Int), float(Double), bool(Bool), array([TOMLValue]), table(TOMLTable)
    /// An offset date-time, local date-time, local date or local time, as written.
    case datetime(String)

    public var description: String {
        switch self {
        case .string(let s): return "\"\(s)\""
        case .integer(let i): return String(i)
        case .float(let d): return String(d)
        case .bool(let b): return String(b)
        case .array(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .table(let t): return "{" + t.keys.map { "\($0) = \(t[$0]!)" }.joined(separator: ", ") + "}"
        case .datetime(let s): return s
        }
    }

    public var typeName: String {
        switch self {
        case .string: return "string"; case .integer: return "integer"; case .float: return "float"
        case .bool: return "boolean"; case .array: return "array"; case .table: return "table"
        case .datetime: return "date-time"
        }
    }
}

/// An ordered TOML table that remembers the line of every key (for error messages).
public struct TOMLTable: Equatable {
    public private(set) var keys: [String] = []
    public private(set) var values: [String: TOMLValue] = [:]
    /// 1-based line where each key was written (absent for keys set by `--set`).
    public private(set) var lines: [String: Int] = [:]
    /// The line where this table begins (its header, or its inline `{`); 0 when unknown.
    public var line = 0
    public init(line: Int = 0) { self.line = line }
    public subscript(key: String) -> TOMLValue? {
        get { values[key] }
        set {
            if values[key] == nil, newValue != nil { keys.append(key) }
            if newValue == nil { keys.removeAll { $0 == key }; lines[key] = nil }
            values[key] = newValue
        }
    }
    /// The line of `key`, or of the table when the key has none.
    public func line(of key: String) -> Int { lines[key] ?? line }
    mutating func setLine(_ key: String, _ line: Int) { if lines[key] == nil { lines[key] = line } }
    /// Equal keys and values, wherever they were written.
    public static func == (a: TOMLTable, b: TOMLTable) -> Bool { a.keys == b.keys && a.values == b.values }
}

public struct TOMLError: Error, CustomStringConvertible {
    public var file: String, line: Int, message: String
    public init(file: String, line: Int, message: String) { self.file = file; self.line = line; self.message = message }
    /// "file:line: message", or "file: message" when no line applies.
    public var description: String { line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)" }
}

/// Parses TOML text. Errors name the file and line.
public func parseTOML(_ text: String, file: String = "<config>") throws -> TOMLTable {
    try TOMLParser(Array(text.utf8), file: file).document()
}

/// A recursive-descent TOML 1.0 reader over UTF-8 bytes.
private final class TOMLParser {
    let b: [UInt8]
    let file: String
    var pos = 0
    var line = 1
    var depth = 0
    var root = TOMLTable(line: 0)
    /// Concrete paths (array elements as `#n`) of tables opened by a header, of tables made
    /// implicitly by a header or a dotted key, of inline tables and static arrays (both
    /// closed once written), and of arrays of tables.
    var headerTables = Set<String>(), dottedTables = Set<String>(), closed = Set<String>(), tableArrays = Set<String>()
    /// The concrete path of the table that keys are being added to.
    var current: [String] = []
    /// Limits on nesting and dotted-key length (configs need 2 or 3 of either; without a
    /// limit, 10⁵ levels overflowed the stack or took gigabytes of nested table copies).
    static let maxDepth = 32

    init(_ b: [UInt8], file: String) { self.b = b; self.file = file }

    func fail(_ m: String) -> TOMLError { TOMLError(file: file, line: line, message: m) }
    var peek: UInt8? { pos < b.count ? b[pos] : nil }
    func peek(_ k: Int) -> UInt8? { pos + k < b.count ? b[pos + k] : nil }
    func starts(_ s: String) -> Bool {
        let u = Array(s.utf8)
        return pos + u.count <= b.count && Array(b[pos..<pos + u.count]) == u
    }

    func skipSpace() { while let c = peek, c == 0x20 || c == 0x09 { pos += 1 } }
    func skipComment() {
        guard peek == UInt8(ascii: "#") else { return }
        while let c = peek, c != 0x0A { pos += 1 }
    }
    /// Spaces, comments and newlines (between array items, and between lines).
    func skipBlank() {
        while true {
            skipSpace(); skipComment()
            if peek == 0x0D, peek(1) == 0x0A { pos += 1 }
            if peek == 0x0A { pos += 1; line += 1 } else { return }
        }
    }
    func endOfLine() throws {
        skipSpace(); skipComment()
        if peek == 0x0D, peek(1) == 0x0A { pos += 1 }
        guard let c = peek else { return }
        guard c == 0x0A else { throw fail("unexpected '\(restOfLine())' at end of line") }
        pos += 1; line += 1
    }
    func restOfLine() -> String {
        var e = pos
        while e < b.count, b[e] != 0x0A, b[e] != 0x0D { e += 1 }
        return String(decoding: b[pos..<e], as: UTF8.self)
    }

    func document() throws -> TOMLTable {
        while true {
            skipBlank()
            guard let c = peek else { return root }
            if c == UInt8(ascii: "[") {
                let isArray = peek(1) == UInt8(ascii: "[")
                pos += isArray ? 2 : 1
                let path = try key()
                skipSpace()
                guard starts(isArray ? "]]" : "]") else { throw fail("expected '\(isArray ? "]]" : "]")' after table name") }
                pos += isArray ? 2 : 1
                try header(path, array: isArray)
                try endOfLine()
            } else {
                let k = try key()
                skipSpace()
                guard peek == UInt8(ascii: "=") else { throw fail("expected '=' after key '\(k.joined(separator: "."))'") }
                pos += 1
                let keyLine = line
                let v = try value()
                try insert(k, v, line: keyLine)
                try endOfLine()
            }
        }
    }

    // MARK: structure

    static func join(_ p: [String]) -> String { p.joined(separator: "\u{1F}") }

    /// Walks `path` from the root, creating implicit tables, entering the last element of
    /// arrays of tables; returns the concrete path. `body` edits the table at the end.
    func withTable(_ path: [String], implicitSet: Bool, _ body: (inout TOMLTable, [String]) throws -> Void) throws {
        var concrete: [String] = []
        let p = self
        func descend(_ t: inout TOMLTable, _ i: Int) throws {
            if i == path.count { try body(&t, concrete); return }
            let k = path[i]
            concrete.append(k)
            let here = TOMLParser.join(concrete)
            if p.closed.contains(here) { throw p.fail("'\(path[...i].joined(separator: "."))' was written inline and cannot be extended") }
            switch t[k] {
            case nil:
                var sub = TOMLTable(line: p.line)
                if implicitSet { p.dottedTables.insert(here) }
                try descend(&sub, i + 1)
                t[k] = .table(sub); t.setLine(k, p.line)
            case .table(var sub)?:
                t[k] = .table(TOMLTable())   // keeps `sub` uniquely referenced: no copy per key
                defer { t[k] = .table(sub) }
                try descend(&sub, i + 1)
            case .array(var items)? where p.tableArrays.contains(here):
                t[k] = .array([])
                defer { t[k] = .array(items) }
                guard case .table(var last)? = items.last else { throw p.fail("'\(k)' is not a table") }
                concrete.append("#\(items.count - 1)")
                try descend(&last, i + 1)
                items[items.count - 1] = .table(last)
            default:
                throw p.fail("key '\(path[...i].joined(separator: "."))' is a value, not a table")
            }
        }
        var r = root
        root = TOMLTable()
        defer { root = r }
        try descend(&r, 0)
    }

    /// `[a.b]` or `[[a.b]]`.
    func header(_ path: [String], array: Bool) throws {
        let name = path.joined(separator: ".")
        let headerLine = line
        if array {
            let parent = Array(path.dropLast()), last = path.last!
            try withTable(parent, implicitSet: false) { t, concrete in
                let here = TOMLParser.join(concrete + [last])
                switch t[last] {
                case nil:
                    t[last] = .array([.table(TOMLTable(line: headerLine))]); t.setLine(last, headerLine)
                    tableArrays.insert(here)
                case .array(var items)? where tableArrays.contains(here):
                    t[last] = .array([])
                    items.append(.table(TOMLTable(line: headerLine)))
                    t[last] = .array(items)
                default:
                    throw fail("[[\(name)]]: '\(name)' is already a \(t[last]!.typeName) and cannot become an array of tables")
                }
            }
            current = try concretePath(path)
        } else {
            try withTable(path.dropLast().map { $0 }, implicitSet: false) { t, concrete in
                let last = path.last!
                let here = TOMLParser.join(concrete + [last])
                if closed.contains(here) { throw fail("table [\(name)] was written inline and cannot be extended") }
                switch t[last] {
                case nil:
                    t[last] = .table(TOMLTable(line: headerLine)); t.setLine(last, headerLine)
                case .table(var sub)? where !headerTables.contains(here) && !dottedTables.contains(here):
                    // made implicitly by an earlier [a.b.c]: now defined here
                    sub.line = headerLine
                    t[last] = .table(sub); t.setLine(last, headerLine)
                case .table?:
                    throw fail("table [\(name)] is defined twice")
                default:
                    throw fail("table [\(name)]: '\(name)' is already a \(t[last]!.typeName)")
                }
                headerTables.insert(here)
            }
            current = try concretePath(path)
        }
    }

    /// The concrete path of `path` now (the last element of each array of tables).
    func concretePath(_ path: [String]) throws -> [String] {
        var out: [String] = []
        try withTable(path, implicitSet: false) { _, c in out = c }
        return out
    }

    /// `a.b.c = v` under the current table.
    func insert(_ key: [String], _ value: TOMLValue, line keyLine: Int) throws {
        let logical = logicalPath(current)
        try withTable(logical + key.dropLast(), implicitSet: true) { t, concrete in
            let last = key.last!
            // a dotted key may not add to a table that a header defined elsewhere
            if key.count > 1 {
                let prefix = TOMLParser.join(concrete)
                if headerTables.contains(prefix) && !TOMLParser.join(self.current).hasPrefix(prefix) {
                    throw fail("key '\(key.joined(separator: "."))' adds to table [\(key.dropLast().joined(separator: "."))], defined by a header elsewhere")
                }
            }
            guard t[last] == nil else { throw fail("key '\(key.joined(separator: "."))' is defined twice") }
            t[last] = value; t.setLine(last, keyLine)
            let here = TOMLParser.join(concrete + [last])
            if case .table = value { closed.insert(here) }
            if case .array = value { closed.insert(here) }
        }
    }

    /// A concrete path without its array indices (what `withTable` walks).
    func logicalPath(_ concrete: [String]) -> [String] { concrete.filter { !$0.hasPrefix("#") } }

    // MARK: keys and values

    func key() throws -> [String] {
        var parts: [String] = []
        while true {
            skipSpace()
            if peek == UInt8(ascii: "\"") { parts.append(try basicString(multiline: false)) }
            else if peek == UInt8(ascii: "'") { parts.append(try literalString(multiline: false)) }
            else {
                let start = pos
                while let c = peek, isBareKey(c) { pos += 1 }
                guard pos > start else { throw fail(peek == nil || peek == 0x0A ? "expected a key" : "expected a key, found '\(restOfLine())'") }
                parts.append(String(decoding: b[start..<pos], as: UTF8.self))
            }
            guard parts.count <= TOMLParser.maxDepth else { throw fail("key has more than \(TOMLParser.maxDepth) dotted parts") }
            skipSpace()
            if peek == UInt8(ascii: ".") { pos += 1 } else { return parts }
        }
    }

    func isBareKey(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F || c == 0x2D
    }

    func value() throws -> TOMLValue {
        skipSpace()
        guard let c = peek, c != 0x0A, c != 0x0D else { throw fail("missing value") }
        switch c {
        case UInt8(ascii: "\""):
            return .string(try basicString(multiline: starts("\"\"\"")))
        case UInt8(ascii: "'"):
            return .string(try literalString(multiline: starts("'''")))
        case UInt8(ascii: "["):
            return try nested { try array() }
        case UInt8(ascii: "{"):
            return try nested { try inlineTable() }
        default:
            return try scalar()
        }
    }

    func nested(_ f: () throws -> TOMLValue) throws -> TOMLValue {
        // nesting is recursion: a line of 300,000 '[' overflowed the stack
        guard depth < TOMLParser.maxDepth else { throw fail("arrays or inline tables nested more than \(TOMLParser.maxDepth) deep") }
        depth += 1
        defer { depth -= 1 }
        return try f()
    }

    func array() throws -> TOMLValue {
        pos += 1
        var items: [TOMLValue] = []
        while true {
            skipBlank()
            if peek == UInt8(ascii: "]") { pos += 1; return .array(items) }
            guard peek != nil else { throw fail("unterminated array (expected ']')") }
            items.append(try value())
            skipBlank()
            if peek == UInt8(ascii: ",") { pos += 1; continue }
            guard peek != nil else { throw fail("unterminated array (expected ']')") }
            guard peek == UInt8(ascii: "]") else { throw fail("expected ',' or ']' in array, found '\(restOfLine())'") }
        }
    }

    func inlineTable() throws -> TOMLValue {
        let startLine = line
        pos += 1
        var t = TOMLTable(line: startLine)
        let inner = TOMLParser([], file: file)   // keys of the inline table, built by a sub-parser's rules
        inner.line = line
        skipSpace()
        if peek == UInt8(ascii: "}") { pos += 1; return .table(t) }
        while true {
            skipSpace()
            let k = try key()
            skipSpace()
            guard peek == UInt8(ascii: "=") else { throw fail("expected '=' after key '\(k.joined(separator: "."))' in inline table") }
            pos += 1
            let v = try value()
            inner.line = line
            inner.root = t
            try inner.insert(k, v, line: line)
            t = inner.root
            skipSpace()
            if peek == UInt8(ascii: ",") { pos += 1; continue }
            if peek == UInt8(ascii: "}") { pos += 1; return .table(t) }
            throw fail("expected ',' or '}' in inline table (inline tables stay on one line), found '\(restOfLine())'")
        }
    }

    func basicString(multiline: Bool) throws -> String {
        pos += multiline ? 3 : 1
        if multiline { trimFirstNewline() }
        var out: [UInt8] = []
        while let c = peek {
            if multiline ? starts("\"\"\"") : c == UInt8(ascii: "\"") {
                pos += multiline ? 3 : 1
                // up to two more quotes belong to the string ("""a""""" is a"")
                while multiline, peek == UInt8(ascii: "\""), out.count < Int.max { out.append(c); pos += 1 }
                return String(decoding: out, as: UTF8.self)
            }
            if c == 0x0A {
                guard multiline else { break }
                line += 1
            }
            pos += 1
            if c == UInt8(ascii: "\\") {
                guard let e = peek else { break }
                pos += 1
                switch e {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "e"): out.append(0x1B)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "u"), UInt8(ascii: "U"):
                    let n = e == UInt8(ascii: "u") ? 4 : 8
                    guard pos + n <= b.count, let v = UInt32(String(decoding: b[pos..<pos + n], as: UTF8.self), radix: 16),
                          let s = Unicode.Scalar(v) else { throw fail("invalid unicode escape in string") }
                    pos += n
                    out.append(contentsOf: Array(String(Character(s)).utf8))
                case 0x20, 0x09, 0x0A, 0x0D:
                    // line-ending backslash: drop whitespace up to the next non-blank
                    guard multiline else { throw fail("a backslash before a line break belongs in a multi-line string") }
                    pos -= 1
                    while let w = peek, w == 0x20 || w == 0x09 || w == 0x0A || w == 0x0D { if w == 0x0A { line += 1 }; pos += 1 }
                default: throw fail("unsupported escape '\\\(Character(Unicode.Scalar(e)))' in string")
                }
            } else { out.append(c) }
        }
        throw fail("unterminated string")
    }

    func literalString(multiline: Bool) throws -> String {
        pos += multiline ? 3 : 1
        if multiline { trimFirstNewline() }
        let start = pos
        while let c = peek {
            if multiline ? starts("'''") : c == UInt8(ascii: "'") {
                var end = pos
                pos += multiline ? 3 : 1
                while multiline, peek == UInt8(ascii: "'"), pos - end < 5 { pos += 1; end += 1 }
                return String(decoding: b[start..<end], as: UTF8.self)
            }
            if c == 0x0A { guard multiline else { break }; line += 1 }
            pos += 1
        }
        throw fail("unterminated string")
    }

    func trimFirstNewline() {
        if peek == 0x0D, peek(1) == 0x0A { pos += 2; line += 1 } else if peek == 0x0A { pos += 1; line += 1 }
    }

    func scalar() throws -> TOMLValue {
        let start = pos
        while let c = peek, !(c == UInt8(ascii: ",") || c == UInt8(ascii: "]") || c == UInt8(ascii: "}") || c == 0x0A || c == 0x0D
                                || c == UInt8(ascii: "#") || c == 0x09) {
            // a space belongs to a date-time only between a date and a time ("1979-05-27 07:32:00")
            if c == 0x20 {
                let sofar = String(decoding: b[start..<pos], as: UTF8.self)
                guard TOMLParser.isDate(sofar), let n = peek(1), n >= 0x30, n <= 0x39 else { break }
            }
            pos += 1
        }
        let tok = String(decoding: b[start..<pos], as: UTF8.self)
        if tok == "true" { return .bool(true) }
        if tok == "false" { return .bool(false) }
        switch tok { case "inf", "+inf": return .float(.infinity); case "-inf": return .float(-.infinity)
        case "nan", "+nan", "-nan": return .float(.nan); default: break }
        if TOMLParser.isDateTime(tok) { return .datetime(tok) }
        let underscoresOK = !tok.hasPrefix("_") && !tok.hasSuffix("_") && !tok.contains("__")
        let clean = tok.replacingOccurrences(of: "_", with: "")
        if underscoresOK {
            for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where clean.hasPrefix(prefix) {
                if let i = Int(clean.dropFirst(2), radix: radix) { return .integer(i) }
            }
            let digits = clean.hasPrefix("+") || clean.hasPrefix("-") ? String(clean.dropFirst()) : clean
            let leadingZero = digits.count > 1 && digits.hasPrefix("0") && digits.dropFirst().first?.isNumber == true
            if !leadingZero, let i = Int(clean) { return .integer(i) }
            if !leadingZero, let d = Double(clean), clean.rangeOfCharacter(from: CharacterSet(charactersIn: "0123456789")) != nil,
               clean.allSatisfy({ "0123456789+-.eE".contains($0) }) { return .float(d) }
        }
        if tok.isEmpty { throw fail("missing value") }
        throw fail("cannot read value '\(tok)' (strings need quotes)")
    }

    static func isDate(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard u.count == 10, u[4] == UInt8(ascii: "-"), u[7] == UInt8(ascii: "-") else { return false }
        return [0, 1, 2, 3, 5, 6, 8, 9].allSatisfy { u[$0] >= 0x30 && u[$0] <= 0x39 }
    }
    static func isDateTime(_ s: String) -> Bool {
        if isDate(String(s.prefix(10))) && (s.count == 10 || "Tt ".contains(s[s.index(s.startIndex, offsetBy: 10)])) { return true }
        let u = Array(s.utf8)   // a local time, 07:32:00
        return u.count >= 8 && u[2] == UInt8(ascii: ":") && u[5] == UInt8(ascii: ":")
    }
}
