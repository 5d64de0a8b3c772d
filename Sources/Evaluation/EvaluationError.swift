import Foundation

/// Evaluation failures that a user can act on; each names the file, run or value at fault.
public enum EvaluationError: Error, CustomStringConvertible, Equatable {
    case tooManyCliques(group: Int, limit: Int)
    case mismatch(String)
    case input(String)

    public var description: String {
        switch self {
        case let .tooManyCliques(g, limit):
            return "clique filter: more than \(limit) maximal cliques in group \(g); the threshold is too loose for this pool (lower clique.threshold or raise clique.max_cliques)"
        case let .mismatch(s): return s
        case let .input(s): return s
        }
    }
}
