/// Strict, typed reading of a TOML table: every key read is marked used, `finish()` turns
/// any key left over into an error naming it ("unknown key train.lrr"), and a wrong type
/// names the key, the expected type and what was found.
public final class ConfigReader {
    public let file: String
    public let path: String
    let table: TOMLTable
    /// Dotted keys set by `--set` (their errors name the flag, not the file).
    let overridden: Set<String>
    var used = Set<String>()
    var children: [ConfigReader] = []

    public init(_ table: TOMLTable, file: String, path: String = "", overridden: Set<String> = []) {
        self.table = table; self.file = file; self.path = path; self.overridden = overridden
    }

    func qualified(_ key: String) -> String { path.isEmpty ? key : key.isEmpty ? path : "\(path).\(key)" }

    public func error(_ key: String, _ message: String) -> TOMLError {
        let q = qualified(key)
        if overridden.contains(q) || overridden.contains(where: { q.hasPrefix($0 + ".") }) {
            return TOMLError(file: "--set \(q)", line: 0, message: message)
        }
        return TOMLError(file: file, line: key.isEmpty ? table.line : table.line(of: key), message: "\(q): \(message)")
    }

    func value(_ key: String) -> TOMLValue? { used.insert(key); return table[key] }

    /// The line of `key` in the file (of the table when the key is absent; 0 when unknown).
    public func line(of key: String) -> Int { table.line(of: key) }

    /// The keys of this table, in the order written.
    public var keys: [String] { table.keys }
    /// The value of `key` as written (marked used), for readers of free-form values.
    public func raw(_ key: String) -> TOMLValue? { value(key) }

    /// An array of tables (`[[key]]` or `key = [{…}, …]`; empty when absent).
    public func tables(_ key: String) throws -> [ConfigReader] {
        switch value(key) {
        case nil: return []
        case .array(let items)?:
            return try items.enumerated().map { i, item in
                guard case .table(let t) = item else { throw error(key, "expected an array of tables, found \(item.typeName) \(item)") }
                let r = ConfigReader(t, file: file, path: "\(qualified(key))[\(i)]", overridden: overridden)
                children.append(r)
                return r
            }
        case let v?: throw error(key, "expected an array of tables ([[\(qualified(key))]]), found \(v.typeName) \(v)")
        }
    }

    public func strings(_ key: String, _ fallback: [String]) throws -> [String] {
        switch value(key) {
        case nil: return fallback
        case .array(let a)?:
            return try a.map { item in
                guard case .string(let s) = item else { throw error(key, "expected an array of strings, found \(item.typeName) \(item)") }
                return s
            }
        case let x?: throw error(key, "expected an array of strings, found \(x.typeName) \(x)")
        }
    }

    /// A sub-table (empty when absent).
    public func section(_ key: String) throws -> ConfigReader {
        let r: ConfigReader
        switch value(key) {
        case nil: r = ConfigReader(TOMLTable(), file: file, path: qualified(key), overridden: overridden)
        case .table(let t)?: r = ConfigReader(t, file: file, path: qualified(key), overridden: overridden)
        case let v?: throw error(key, "expected a table, found \(v.typeName) \(v)")
        }
        children.append(r)
        return r
    }

    public func has(_ key: String) -> Bool { table[key] != nil }

    public func string(_ key: String, _ fallback: String) throws -> String {
        switch value(key) {
        case nil: return fallback
        case .string(let s)?: return s
        case let v?: throw error(key, "expected a string, found \(v.typeName) \(v)")
        }
    }

    public func int(_ key: String, _ fallback: Int, min: Int? = nil, max: Int? = nil) throws -> Int {
        let v: Int
        switch value(key) {
        case nil: return fallback
        case .integer(let i)?: v = i
        case .float(let d)? where d.rounded() == d && abs(d) < 1e15: v = Int(d)
        case let x?: throw error(key, "expected an integer, found \(x.typeName) \(x)")
        }
        if let min, v < min { throw error(key, "must be ≥ \(min), got \(v)") }
        if let max, v > max { throw error(key, "must be ≤ \(max), got \(v)") }
        return v
    }

    public func double(_ key: String, _ fallback: Double, min: Double? = nil, max: Double? = nil) throws -> Double {
        let v: Double
        switch value(key) {
        case nil: return fallback
        case .integer(let i)?: v = Double(i)
        case .float(let d)?: v = d
        case let x?: throw error(key, "expected a number, found \(x.typeName) \(x)")
        }
        guard v.isFinite else { throw error(key, "must be finite, got \(v)") }
        if let min, v < min { throw error(key, "must be ≥ \(min), got \(v)") }
        if let max, v > max { throw error(key, "must be ≤ \(max), got \(v)") }
        return v
    }

    public func bool(_ key: String, _ fallback: Bool) throws -> Bool {
        switch value(key) {
        case nil: return fallback
        case .bool(let b)?: return b
        case let x?: throw error(key, "expected true or false, found \(x.typeName) \(x)")
        }
    }

    public func ints(_ key: String, _ fallback: [Int], min: Int? = nil, max: Int? = nil, maxCount: Int? = nil) throws -> [Int] {
        switch value(key) {
        case nil: return fallback
        case .array(let a)?:
            if let maxCount, a.count > maxCount { throw error(key, "at most \(maxCount) entries, got \(a.count)") }
            return try a.map { item in
                guard case .integer(let i) = item else { throw error(key, "expected an array of integers, found \(item.typeName) \(item)") }
                if let min, i < min { throw error(key, "entries must be ≥ \(min), got \(i)") }
                if let max, i > max { throw error(key, "entries must be ≤ \(max), got \(i)") }
                return i
            }
        case let x?: throw error(key, "expected an array of integers, found \(x.typeName) \(x)")
        }
    }

    /// One of `choices`.
    public func choice(_ key: String, _ fallback: String, _ choices: [String]) throws -> String {
        let s = try string(key, fallback)
        guard choices.contains(s) else { throw error(key, "must be one of \(choices.joined(separator: ", ")), got \"\(s)\"") }
        return s
    }

    /// Throws for the first key that nothing read, here or in any section read from here.
    public func finish() throws {
        for k in table.keys where !used.contains(k) {
            throw error(k, "unknown key (check the spelling; known keys are listed in the docs)")
        }
        for c in children { try c.finish() }
    }
}

extension TOMLTable {
    /// Sets a dotted key (`train.lr`) to a value parsed as TOML (`2e-4`, `"ddim"`, `[1, 2]`),
    /// creating tables as needed: the `--set key=value` override. Returns the dotted key.
    @discardableResult
    public mutating func set(override: String, file: String = "--set") throws -> String {
        guard let eq = override.firstIndex(of: "=") else { throw TOMLError(file: file, line: 0, message: "'\(override)' is not key=value") }
        let key = override[..<eq].trimmingCharacters(in: .whitespaces)
        let parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !key.isEmpty, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" } }) else {
            throw TOMLError(file: file, line: 0, message: "'\(key)' is not a dotted key like train.lr")
        }
        let text = String(override[override.index(after: eq)...]).trimmingCharacters(in: .whitespaces)
        let parsed: TOMLTable
        do { parsed = try parseTOML("v = \(text)", file: "\(file) \(key)") } catch {
            throw TOMLError(file: "\(file) \(key)", line: 0, message: "'\(text)' is not a TOML value (strings need quotes: \(key)=\"ddim\")")
        }
        guard let value = parsed["v"] else { throw TOMLError(file: file, line: 0, message: "no value in '\(override)'") }
        try setValue(parts, value, file: "\(file) \(key)")
        return key
    }

    mutating func setValue(_ path: [String], _ value: TOMLValue, file: String) throws {
        guard let first = path.first else { return }
        if path.count == 1 { self[first] = value; return }
        var sub: TOMLTable
        switch self[first] {
        case nil: sub = TOMLTable()
        case .table(let t)?: sub = t
        default: throw TOMLError(file: file, line: 0, message: "'\(first)' is a value, not a table")
        }
        try sub.setValue(Array(path.dropFirst()), value, file: file)
        self[first] = .table(sub)
    }
}
