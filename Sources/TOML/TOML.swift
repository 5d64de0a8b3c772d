import Foundation

/// A TOML value (the subset Eidetic's configs use: tables, dotted/bare/quoted keys,
/// strings, integers, floats, booleans and arrays; no dates or inline tables of arrays).
public indirect enum TOMLValue: Equatable, CustomStringConvertible {
    case string(String), integer(Int), float(Double), bool(Bool), array([TOMLValue]), table(TOMLTable)

    public var description: String {
        switch self {
        case .string(let s): return "\"\(s)\""
        case .integer(let i): return String(i)
        case .float(let d): return String(d)
        case .bool(let b): return String(b)
        case .array(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .table: return "{table}"
        }
    }

    public var typeName: String {
        switch self {
        case .string: return "string"; case .integer: return "integer"; case .float: return "float"
        case .bool: return "boolean"; case .array: return "array"; case .table: return "table"
        }
    }
}

/// An ordered TOML table.
public struct TOMLTable: Equatable {
    public private(set) var keys: [String] = []
    public private(set) var values: [String: TOMLValue] = [:]
    public init() {}
    public subscript(key: String) -> TOMLValue? {
        get { values[key] }
        set {
            if values[key] == nil, newValue != nil { keys.append(key) }
            if newValue == nil { keys.removeAll { $0 == key } }
            values[key] = newValue
        }
    }
}

public struct TOMLError: Error, CustomStringConvertible {
    public var file: String, line: Int, message: String
    public init(file: String, line: Int, message: String) { self.file = file; self.line = line; self.message = message }
    /// "file:line: message", or "file: message" when no line applies.
    public var description: String { line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)" }
}

/// Parses TOML text. Errors name the file and line.
public func parseTOML(_ text: String, file: String = "<config>") throws -> TOMLTable {
    var root = TOMLTable()
    var current: [String] = []
    var definedTables = Set<String>()
    let lines = text.components(separatedBy: "\n")
    var lineNo = 0
    func fail(_ m: String) -> TOMLError { TOMLError(file: file, line: lineNo, message: m) }

    func insert(_ path: [String], _ value: TOMLValue, into table: inout TOMLTable) throws {
        if path.count == 1 {
            guard table[path[0]] == nil else { throw fail("key '\(path[0])' is defined twice") }
            table[path[0]] = value
            return
        }
        var sub: TOMLTable
        switch table[path[0]] {
        case nil: sub = TOMLTable()
        // (the placeholder leaves `sub` the only reference, so adding to it copies nothing:
        // copying the table per key made 20,000 keys take minutes)
        case .table(let t)?: sub = t; table[path[0]] = .table(TOMLTable())
        default: throw fail("key '\(path[0])' is not a table")
        }
        try insert(Array(path.dropFirst()), value, into: &sub)
        table[path[0]] = .table(sub)
    }

    func ensureTable(_ path: [String], in table: inout TOMLTable) throws {
        guard let first = path.first else { return }
        var sub: TOMLTable
        switch table[first] {
        case nil: sub = TOMLTable()
        case .table(let t)?: sub = t; table[first] = .table(TOMLTable())
        default: throw fail("key '\(first)' is not a table")
        }
        try ensureTable(Array(path.dropFirst()), in: &sub)
        table[first] = .table(sub)
    }

    for raw in lines {
        lineNo += 1
        var s = Substring(raw)
        s = s.drop { $0 == " " || $0 == "\t" }
        if s.isEmpty || s.hasPrefix("#") { continue }
        var scanner = Scanner(Array(s), fail: fail)
        if s.hasPrefix("[") {
            guard !s.hasPrefix("[[") else { throw fail("arrays of tables ([[…]]) are not supported") }
            scanner.pos = 1
            let path = try scanner.key()
            scanner.skipSpace()
            guard scanner.peek == "]" else { throw fail("expected ']' after table name") }
            scanner.pos += 1
            try scanner.expectEnd()
            let name = path.joined(separator: ".")
            guard !definedTables.contains(name) else { throw fail("table [\(name)] is defined twice") }
            definedTables.insert(name)
            try ensureTable(path, in: &root)
            current = path
            continue
        }
        let key = try scanner.key()
        scanner.skipSpace()
        guard scanner.peek == "=" else { throw fail("expected '=' after key '\(key.joined(separator: "."))'") }
        scanner.pos += 1
        let value = try scanner.value()
        try scanner.expectEnd()
        try insert(current + key, value, into: &root)
    }
    return root
}

private struct Scanner {
    let c: [Character]
    var pos = 0
    var depth = 0
    /// Limits on array nesting and dotted-key length (configs need 2 or 3 of either; without
    /// a limit, 10⁵ levels overflowed the stack or took gigabytes of nested table copies).
    static let maxDepth = 32
    let fail: (String) -> TOMLError
    init(_ c: [Character], fail: @escaping (String) -> TOMLError) { self.c = c; self.fail = fail }

    var peek: Character? { pos < c.count ? c[pos] : nil }
    mutating func skipSpace() { while let p = peek, p == " " || p == "\t" { pos += 1 } }
    mutating func expectEnd() throws {
        skipSpace()
        if let p = peek, p != "#", p != "\r" { throw fail("unexpected '\(String(c[pos...]))' at end of line") }
    }

    mutating func key() throws -> [String] {
        var parts: [String] = []
        while true {
            skipSpace()
            if peek == "\"" { parts.append(try basicString()) }
            else {
                var k = ""
                while let p = peek, p.isLetter || p.isNumber || p == "_" || p == "-" { k.append(p); pos += 1 }
                guard !k.isEmpty else { throw fail("expected a key") }
                parts.append(k)
            }
            guard parts.count <= Scanner.maxDepth else { throw fail("key has more than \(Scanner.maxDepth) dotted parts") }
            skipSpace()
            if peek == "." { pos += 1 } else { return parts }
        }
    }

    mutating func basicString() throws -> String {
        pos += 1
        var s = ""
        while let p = peek {
            pos += 1
            if p == "\"" { return s }
            if p == "\\" {
                guard let e = peek else { break }
                pos += 1
                switch e {
                case "n": s.append("\n"); case "t": s.append("\t"); case "\\": s.append("\\"); case "\"": s.append("\"")
                case "r": s.append("\r")
                default: throw fail("unsupported escape '\\\(e)' in string")
                }
            } else { s.append(p) }
        }
        throw fail("unterminated string")
    }

    mutating func value() throws -> TOMLValue {
        skipSpace()
        guard let p = peek else { throw fail("missing value") }
        if p == "\"" { return .string(try basicString()) }
        if p == "'" {
            pos += 1
            var s = ""
            while let q = peek { pos += 1; if q == "'" { return .string(s) }; s.append(q) }
            throw fail("unterminated string")
        }
        if p == "[" {
            // nesting is recursion: a line of 300,000 '[' overflowed the stack
            guard depth < Scanner.maxDepth else { throw fail("arrays nested more than \(Scanner.maxDepth) deep") }
            depth += 1
            defer { depth -= 1 }
            pos += 1
            var items: [TOMLValue] = []
            while true {
                skipSpace()
                if peek == "]" { pos += 1; return .array(items) }
                items.append(try value())
                skipSpace()
                if peek == "," { pos += 1; continue }
                skipSpace()
                guard peek == "]" else { throw fail("expected ',' or ']' in array (arrays must fit on one line)") }
            }
        }
        var tok = ""
        while let q = peek, !(q == "," || q == "]" || q == " " || q == "\t" || q == "#" || q == "\r") { tok.append(q); pos += 1 }
        if tok == "true" { return .bool(true) }
        if tok == "false" { return .bool(false) }
        let clean = tok.replacingOccurrences(of: "_", with: "")
        if let i = Int(clean) { return .integer(i) }
        if let d = Double(clean), clean.rangeOfCharacter(from: CharacterSet(charactersIn: "0123456789")) != nil { return .float(d) }
        if clean == "inf" || clean == "+inf" { return .float(.infinity) }
        if clean == "nan" { return .float(.nan) }
        throw fail("cannot read value '\(tok)' (strings need quotes)")
    }
}
