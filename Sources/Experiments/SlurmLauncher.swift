import Foundation

/// The Slurm launcher: one job array per submission (`sbatch --array=…%throttle`) whose
/// tasks call `eidetic sweep run-task SWEEP INDEX` from the submitting directory (a shared
/// filesystem), plus a job that waits for the array (`afterany`) and writes the tables and
/// report. Tasks are `--requeue`able: a requeued or preempted task claims its own job again
/// and resumes from its checkpoints. What was submitted is recorded in
/// `<sweep>/slurm/submissions.jsonl`; `status` asks `squeue` (and `sacct` where accounting
/// runs) about those ids.
public struct SlurmLauncher {
    public var throttle: Int
    public var cpusPerTask: Int
    public var memory: String?
    public var partition: String?
    public var timeLimit: String?
    public var extra: [String]
    /// `--set` overrides of the sweep file, passed on to every task.
    public var sweepOverrides: [String] = []
    /// The sweep's `--scale`, passed on to every task.
    public var sweepScale: String?
    var sweepArguments: String {
        sweepOverrides.map { " --set " + Self.shellQuote($0) }.joined() + (sweepScale.map { " --scale " + Self.shellQuote($0) } ?? "")
    }

    public init(throttle: Int = 0, cpusPerTask: Int = 1, memory: String? = nil, partition: String? = nil, timeLimit: String? = nil, extra: [String] = []) {
        self.throttle = throttle; self.cpusPerTask = cpusPerTask; self.memory = memory; self.partition = partition; self.timeLimit = timeLimit; self.extra = extra
    }

    public struct Submission: Codable, Equatable, Sendable {
        public var arrayJob: String
        public var reportJob: String?
        public var indices: [Int]
        public var submitted: Double
    }

    static func shellQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// "0-3,5,7-9" for sbatch --array.
    static func ranges(_ xs: [Int]) -> String {
        var parts: [String] = []
        var i = 0
        let s = xs.sorted()
        while i < s.count {
            var j = i
            while j + 1 < s.count && s[j + 1] == s[j] + 1 { j += 1 }
            parts.append(i == j ? "\(s[i])" : "\(s[i])-\(s[j])")
            i = j + 1
        }
        return parts.joined(separator: ",")
    }

    /// Submits the sweep's jobs that are not done; returns the submission (nil: nothing to do).
    public func submit(_ sweep: Sweep, executable: String) throws -> Submission? {
        let jobs = try sweep.plan()
        let state = Dictionary(uniqueKeysWithValues: try sweep.store.jobs(sweep: sweep.spec.name).map { ($0.id, $0) })
        let todo = jobs.filter { state[$0.id]?.state != "done" && !(state[$0.id].map { $0.state == "running" && !SweepStore.isStale($0) } ?? false) }.map(\.idx)
        guard !todo.isEmpty else { return nil }
        let fm = FileManager.default
        let dir = sweep.spec.directory + "/slurm"
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let cwd = fm.currentDirectoryPath
        let abs = { (p: String) in p.hasPrefix("/") ? p : cwd + "/" + p }
        let script = dir + "/array.sh"
        var lines = ["#!/bin/bash", "# eidetic sweep \(sweep.spec.name): one array task per job (written by eidetic sweep run --launcher slurm)",
                     "#SBATCH --job-name=eidetic-\(sweep.spec.name)", "#SBATCH --cpus-per-task=\(cpusPerTask)", "#SBATCH --requeue",
                     "#SBATCH --output=\(abs(sweep.logsFolder))/slurm-%A_%a.out"]
        if let m = memory { lines.append("#SBATCH --mem=\(m)") }
        if let p = partition { lines.append("#SBATCH --partition=\(p)") }
        if let t = timeLimit { lines.append("#SBATCH --time=\(t)") }
        let sets = sweepArguments
        lines += ["cd \(Self.shellQuote(cwd))", "exec \(Self.shellQuote(executable)) sweep run-task \(Self.shellQuote(sweep.spec.file))\(sets) \"$SLURM_ARRAY_TASK_ID\"", ""]
        try Data(lines.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: script), options: .atomic)
        chmod(script, 0o755)
        let array = Self.ranges(todo) + (throttle > 0 ? "%\(throttle)" : "")
        let arrayJob = try Self.sbatch(["--parsable", "--array=\(array)"] + extra + [script])
        // the tables and report once every task has ended, however it ended
        let finish = dir + "/report.sh"
        try Data(["#!/bin/bash", "#SBATCH --job-name=eidetic-\(sweep.spec.name)-report", "#SBATCH --cpus-per-task=\(cpusPerTask)",
                  "#SBATCH --output=\(abs(sweep.logsFolder))/slurm-report-%j.out",
                  "cd \(Self.shellQuote(cwd))", "exec \(Self.shellQuote(executable)) sweep report \(Self.shellQuote(sweep.spec.file))\(sweepArguments)", ""].joined(separator: "\n").utf8)
            .write(to: URL(fileURLWithPath: finish), options: .atomic)
        chmod(finish, 0o755)
        let reportJob = try? Self.sbatch(["--parsable", "--dependency=afterany:\(arrayJob)", "--kill-on-invalid-dep=yes"] + extra + [finish])
        let sub = Submission(arrayJob: arrayJob, reportJob: reportJob, indices: todo, submitted: Date().timeIntervalSince1970)
        let e = JSONEncoder(); e.outputFormatting = [.sortedKeys]
        let line = String(decoding: try e.encode(sub), as: UTF8.self) + "\n"
        let log = dir + "/submissions.jsonl"
        if !fm.fileExists(atPath: log) { fm.createFile(atPath: log, contents: nil) }
        if let h = FileHandle(forWritingAtPath: log) { h.seekToEndOfFile(); h.write(Data(line.utf8)); try? h.close() }
        return sub
    }

    /// Runs a Slurm client command; its stdout, or an error naming the command and its stderr.
    static func run(_ tool: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [tool] + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        do { try p.run() } catch { throw SweepError.job("\(tool): cannot run it (\(error)); is Slurm installed and SLURM_CONF set?") }
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let msg = String(decoding: e, as: UTF8.self).split(whereSeparator: \.isNewline).last.map(String.init) ?? "exit status \(p.terminationStatus)"
            throw SweepError.job("\(tool) \(args.joined(separator: " ")): \(msg)")
        }
        return String(decoding: o, as: UTF8.self)
    }

    static func sbatch(_ args: [String]) throws -> String {
        let out = try run("sbatch", args).trimmingCharacters(in: .whitespacesAndNewlines)
        // --parsable prints "jobid" or "jobid;cluster"
        guard let id = out.split(separator: ";").first, !id.isEmpty else { throw SweepError.job("sbatch printed no job id: \(out)") }
        return String(id)
    }

    /// The submissions recorded for a sweep.
    public static func submissions(_ sweep: Sweep) -> [Submission] {
        guard let text = try? String(contentsOfFile: sweep.spec.directory + "/slurm/submissions.jsonl", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(Submission.self, from: Data($0.utf8)) }
    }

    /// Slurm's state of every array task still known to it: index → state (PENDING,
    /// RUNNING, …), from `squeue`, and from `sacct` for ended tasks where accounting runs.
    public static func taskStates(_ sweep: Sweep) -> [Int: String] {
        var out: [Int: String] = [:]
        for s in submissions(sweep) {
            if let acct = try? run("sacct", ["-n", "-P", "-X", "-j", s.arrayJob, "--format=JobID,State"]) {
                for l in acct.split(separator: "\n") {
                    let f = l.split(separator: "|")
                    guard f.count == 2, let us = f[0].split(separator: "_").last, let i = Int(us) else { continue }
                    out[i] = String(f[1])
                }
            }
            if let q = try? run("squeue", ["-h", "-r", "-j", s.arrayJob, "-o", "%K %T"]) {
                for l in q.split(separator: "\n") {
                    let f = l.split(separator: " ")
                    if f.count == 2, let i = Int(f[0]) { out[i] = String(f[1]) }
                }
            }
        }
        return out
    }
}
