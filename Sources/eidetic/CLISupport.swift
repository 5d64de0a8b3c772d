import ArgumentParser
import Evaluation
import Experiments
import Foundation
import Tensor
import Training

/// How the CLI ends on bad input: one line on stderr, `eidetic: error: <what>`, naming the
/// file, key or flag, and a non-zero exit (64 for command-line usage, 1 otherwise). Never a
/// usage dump, a raw `NSCocoaErrorDomain` record or a backtrace.
enum CLI {
    /// Parses, validates and runs the command; turns every error into one line.
    static func main() {
        installSignalHandlers()
        EvalOutput.codeVersion = CodeVersion.current
        var command: ParsableCommand
        do {
            command = try Eidetic.parseAsRoot()
        } catch {
            let code = Eidetic.exitCode(for: error)
            if code == .success {   // --help, --version
                print(Eidetic.fullMessage(for: error))
                finish(0)
            }
            fail(Eidetic.message(for: error), code: code == .validationFailure ? 64 : code.rawValue)
        }
        do {
            try command.run()
        } catch let e as ExitCode {
            finish(e.rawValue)
        } catch let e as ValidationError {
            fail(e.message, code: 64)
        } catch TrainingError.interrupted(let step, let sig) {
            fail(TrainingError.interrupted(step: step, signal: sig).description, code: 128 + sig)
        } catch {
            if String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") {   // `eidetic help …`, CleanExit
                let code = Eidetic.exitCode(for: error)
                if code == .success { print(Eidetic.fullMessage(for: error)); finish(0) }
                fail(Eidetic.message(for: error), code: code.rawValue)
            }
            fail(describe(error), code: 1)
        }
        finish(0)
    }

    static func fail(_ message: String, code: Int32) -> Never {
        let line = oneLine(message)
        FileHandle.standardError.write(Data("eidetic: error: \(line)\n".utf8))
        finish(code == 0 ? 1 : code)
    }

    /// Flushes output and ends the process without running atexit handlers: libhdf5's
    /// termination handler dereferences freed state after a write failed on a full disk
    /// (a segfault after the right error message). Every file Eidetic writes is closed and
    /// renamed into place before this point, so nothing is lost by skipping it.
    static func finish(_ code: Int32) -> Never {
        fflush(nil)
        _exit(code)
    }

    /// Joins a multi-line message into one line.
    static func oneLine(_ s: String) -> String {
        s.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("Usage:") && !$0.hasPrefix("See '") && !$0.hasPrefix("Help:") }
            .joined(separator: "; ")
    }

    /// A readable description of any error: our errors describe themselves; Foundation's
    /// file errors become "PATH: reason" (the POSIX reason, e.g. "No space left on device").
    static func describe(_ error: Error) -> String {
        let ns = error as NSError
        if ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain {
            let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
            var reason = ns.userInfo[NSLocalizedDescriptionKey] as? String
            if let u = ns.userInfo[NSUnderlyingErrorKey] as? NSError, u.domain == NSPOSIXErrorDomain {
                reason = String(cString: strerror(Int32(u.code)))
            } else if ns.domain == NSPOSIXErrorDomain {
                reason = String(cString: strerror(Int32(ns.code)))
            }
            let r = reason ?? cocoaReason(ns.code)
            return path.map { "\($0): \(r)" } ?? r
        }
        return "\(error)"
    }

    static func cocoaReason(_ code: Int) -> String {
        switch code {
        case NSFileNoSuchFileError, NSFileReadNoSuchFileError: return "no such file or directory"
        case NSFileReadNoPermissionError, NSFileWriteNoPermissionError: return "permission denied"
        case NSFileWriteOutOfSpaceError: return "no space left on device"
        case NSFileWriteVolumeReadOnlyError: return "read-only file system"
        case NSFileWriteFileExistsError: return "file exists"
        case NSFileReadCorruptFileError: return "unreadable (corrupt or wrong format)"
        default: return "file operation failed (code \(code))"
        }
    }

    /// SIGINT / SIGTERM: the first one asks long jobs to stop at the next safe point
    /// (training checkpoints and exits with status "interrupted"); a second one exits now.
    static func installSignalHandlers() {
        for s in [SIGINT, SIGTERM] {
            signal(s) { sig in
                if Interruption.requested { _exit(128 + sig) }
                Interruption.request(signal: sig)
            }
        }
    }
}

/// Checks for command-line numbers; each failure names the flag.
enum Check {
    static func atLeast(_ v: Int, _ min: Int, _ flag: String) throws {
        guard v >= min else { throw ValidationError("\(flag) must be ≥ \(min), got \(v)") }
    }
    static func atLeast(_ v: Int?, _ min: Int, _ flag: String) throws {
        if let v { try atLeast(v, min, flag) }
    }
    static func finite(_ v: Double?, _ flag: String, min: Double? = nil, max: Double? = nil, above: Double? = nil) throws {
        guard let v else { return }
        guard v.isFinite else { throw ValidationError("\(flag) must be a finite number, got \(v)") }
        if let min, v < min { throw ValidationError("\(flag) must be ≥ \(min), got \(v)") }
        if let max, v > max { throw ValidationError("\(flag) must be ≤ \(max), got \(v)") }
        if let above, v <= above { throw ValidationError("\(flag) must be > \(above), got \(v)") }
    }
}

/// `--threads N` for every command that computes.
struct ThreadOptions: ParsableArguments {
    @Option(help: "Threads for Eidetic's kernels (default: all cores, or SLURM_CPUS_PER_TASK).") var threads: Int?

    func validate() throws { try Check.atLeast(threads, 1, "--threads") }

    /// Sets the kernel thread count: the flag, else `configured` (> 0), else the default.
    func apply(configured: Int = 0) { Threads.count = Trainer.threads(threads ?? configured) }
}

/// `--force`: the one way to replace an existing output.
struct OutputGuard {
    /// Throws when `path` exists and overwriting was not asked for.
    static func mayWrite(_ path: String, force: Bool, what: String = "output") throws {
        if !force && FileManager.default.fileExists(atPath: path) {
            throw ValidationError("\(path): \(what) exists; pass --force to replace it (or choose another path)")
        }
        try checkWritableParent(path)
    }

    /// The nearest existing ancestor of `path` must be a writable directory.
    static func checkWritableParent(_ path: String) throws {
        var dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let fm = FileManager.default
        var isDir: ObjCBool = false
        while !fm.fileExists(atPath: dir, isDirectory: &isDir) {
            let up = URL(fileURLWithPath: dir).deletingLastPathComponent().path
            if up == dir { break }
            dir = up
        }
        guard isDir.boolValue else { throw ValidationError("\(dir): not a directory (needed for \(path))") }
        guard access(dir, W_OK) == 0 else { throw ValidationError("\(dir): not writable (needed for \(path))") }
    }
}
