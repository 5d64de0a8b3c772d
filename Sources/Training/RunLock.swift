import Foundation
import HDF5

/// One writer per run directory: an advisory `flock` on `<run>/.lock`. Training holds it
/// exclusively; sampling and evaluation hold it shared (they read the checkpoint and write
/// only their own, differently named outputs), so they run together but never while the
/// run is being trained. The kernel drops the lock when its holder exits for any reason,
/// kill -9 included, so a stale lock cannot exist; the file's text only names the last
/// holder (pid, host, command, start time) for the message a refused process prints.
public final class RunLock {
    public enum Mode: Sendable { case exclusive, shared }
    public let path: String
    let fd: Int32

    private init(path: String, fd: Int32) { self.path = path; self.fd = fd }
    deinit { flock(fd, LOCK_UN); close(fd) }

    /// Takes the lock without waiting, or throws naming the holder.
    public static func acquire(_ directory: String, mode: Mode, purpose: String) throws -> RunLock {
        let path = directory + "/.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw TrainingError.runDirectory("\(path): cannot open the run lock: \(String(cString: strerror(errno)))")
        }
        guard flock(fd, (mode == .exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0 else {
            let err = errno
            var holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            if err == EWOULDBLOCK {
                // the text names the last exclusive holder; if that process is gone, the
                // holders now are samplers or evaluators (shared holders leave no text)
                if let pid = holderPID(holder), !processIsAlive(pid) { holder = "" }
                let who = holder.isEmpty ? "a sampling or evaluation process reads it" : holder
                throw TrainingError.runDirectory("\(directory) is in use (\(who)); \(purpose) refused — wait for it to finish or stop it")
            }
            throw TrainingError.runDirectory("\(path): cannot lock: \(String(cString: strerror(err)))")
        }
        if mode == .exclusive {
            let text = "\(holderDescription(purpose))\n"
            _ = ftruncate(fd, 0)
            _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
        }
        return RunLock(path: path, fd: fd)
    }

    /// Whether some process holds the lock now (for `status`): probes with a shared lock.
    public static func isHeld(_ directory: String) -> Bool {
        let fd = open(directory + "/.lock", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 { flock(fd, LOCK_UN); return false }
        return true
    }

    static func holderPID(_ text: String) -> pid_t? {
        guard let r = text.range(of: "by pid ") else { return nil }
        return pid_t(text[r.upperBound...].prefix { $0.isNumber })
    }

    static func holderDescription(_ purpose: String) -> String {
        let host = ProcessInfo.processInfo.hostName
        let since = ISO8601DateFormatter().string(from: Date())
        let command = (["eidetic"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        return "\(purpose) by pid \(getpid()) on \(host) since \(since): \(command)"
    }
}

/// Removes temporary files (`.NAME.tmp-PID-RANDOM`, left by killed atomic writes) under
/// `directory`, recursively. Call only while holding the run's exclusive lock, when no
/// other writer can own one.
public func removeStaleTemporaries(in directory: String) -> [String] {
    var removed: [String] = []
    guard let e = FileManager.default.enumerator(atPath: directory) else { return [] }
    for case let rel as String in e {
        let name = (rel as NSString).lastPathComponent
        if name.hasPrefix("."), name.contains(".tmp-") {
            let p = directory + "/" + rel
            if unlink(p) == 0 { removed.append(p) }
        }
    }
    return removed
}
