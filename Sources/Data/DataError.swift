/// Errors from reading datasets and plans. Every message names the file (and where it
/// helps, the byte offset or key) and fits on one line.
public enum DataError: Error, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    case truncated(file: String, offset: Int, detail: String)
    case badFormat(file: String, detail: String)
    case empty(file: String)
    case invalid(String)

    public var description: String {
        switch self {
        case .unreadable(let f, let r): return "\(f): cannot read: \(r)"
        case .truncated(let f, let o, let d): return "\(f): truncated at byte \(o): \(d)"
        case .badFormat(let f, let d): return "\(f): \(d)"
        case .empty(let f): return "\(f): file is empty"
        case .invalid(let m): return m
        }
    }
}
