import Foundation

/// A request to stop, set by the CLI's SIGINT/SIGTERM handler. Jobs that can stop cleanly
/// (training: checkpoint, status "interrupted") declare it with `handled = true` and poll
/// `requested` at safe points; for every other command the first signal exits at once
/// (atomic writes leave nothing half-written; stray `.tmp-*` files are removed by the next
/// writer of that folder).
public enum Interruption {
    nonisolated(unsafe) public private(set) static var requested = false
    nonisolated(unsafe) public private(set) static var signalNumber: Int32 = 0
    /// Set by a job that polls `requested`.
    nonisolated(unsafe) public static var handled = false

    /// Called from the signal handler: only plain stores and `_exit` (async-signal-safe).
    public static func request(signal: Int32) {
        if !handled { _exit(128 + signal) }
        signalNumber = signal
        requested = true
    }

    /// The signal's name for messages.
    public static var signalName: String { signalNumber == SIGINT ? "SIGINT" : signalNumber == SIGTERM ? "SIGTERM" : "signal \(signalNumber)" }
}
