import Foundation

/// Evaluation failures that a user can act on; each names the file, run or value at fault.
public enum EvaluationError: Error, CustomStringConvertible, Equatable {
    case mismatch(String)
    case input(String)

    public var description: String {
        switch self {
        case let .mismatch(s): return s
        case let .input(s): return s
        }
    }
}
