import Data
import Evaluation
import Foundation
import Tensor
import TOML
import Training

/// A sweep on disk: its spec, its database rows, its folder
/// (`<out>/<name>/{runs,logs,plans}/`), and the work of planning and running its jobs.
public final class Sweep {
    public let spec: SweepSpec
    public let store: SweepStore
    public var output: (String) -> Void = { print($0); fflush(stdout) }

    public init(file: String, overrides: [String] = [], scale: String? = nil) throws {
        spec = try SweepSpec.load(file: file, overrides: overrides, scale: scale)
        store = try SweepStore(path: spec.database)
    }

    public var runsFolder: String { spec.directory + "/runs" }
    public var logsFolder: String { spec.directory + "/logs" }

    // MARK: plan

    /// Builds the data plan (if any), expands the axes into jobs, checks every job's config,
    /// and records the jobs in the database (existing jobs keep their state).
    @discardableResult
    public func plan() throws -> [JobRecord] {
        let fm = FileManager.default
        for d in [runsFolder, logsFolder] { try fm.createDirectory(atPath: d, withIntermediateDirectories: true) }
        try buildPlan()
        let jobs = try expand()
        for id in try store.register(sweep: spec.name, file: spec.file, fileHash: spec.fileHash, jobs: jobs) {
            output("job \(id): done in the database, but \(runsFolder)/\(id)/experiment.json is gone; pending again")
        }
        return jobs
    }

    /// The jobs of the sweep file as it is now (ids, overrides, folders), without touching
    /// the database: what tables and reports read, so they depend on run files only.
    public func expand() throws -> [JobRecord] {
        var jobs: [JobRecord] = []
        var seen: [String: Int] = [:]
        for (i, point) in spec.jobs().enumerated() {
            let overrides = baseOverrides + point.map { "\($0.key)=\($0.value.toml)" }
            let e = try experiment(overrides)
            struct Identity: Encodable { var config: String; var eval: EvaluationSettings }
            let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
            let hash = String(SHA256.hex([UInt8](try enc.encode(Identity(config: try e.config.identityHash(), eval: e.eval)))).prefix(8))
            let slug = point.isEmpty ? "base" : point.map { p in
                p.key == SweepSpec.baseKey ? AxisValue(.string(((p.value.toml.dropFirst().dropLast() as Substring).description as NSString).lastPathComponent)).slug.replacingOccurrences(of: ".toml", with: "")
                    : "\(p.key.split(separator: ".").last!)\(p.value.slug)"
            }.joined(separator: "-")
            let id = slug + "-" + hash
            if let other = seen[id] { throw SweepError.spec("\(spec.file): jobs \(other) and \(i) have the same configuration (\(id)); an axis changes nothing") }
            seen[id] = i
            let json = String(decoding: try JSONEncoder().encode(overrides), as: UTF8.self)
            jobs.append(JobRecord(id: id, sweep: spec.name, idx: i, overrides: json, runDir: runsFolder + "/" + id, log: logsFolder + "/" + id + ".log",
                                  state: "pending", current: 1, attempts: 0))
        }
        return jobs
    }

    /// `[set]` plus the plan file. With a plan, the plan chooses the training images: the
    /// base config's `data.subset` is set to 0 unless `[set]` gives it.
    var baseOverrides: [String] {
        guard let p = spec.planPath else { return spec.fixed }
        let subset = spec.fixed.contains { $0.hasPrefix("data.subset=") } ? [] : ["data.subset=0"]
        return subset + spec.fixed + ["data.plan=" + AxisValue(.string(p)).toml]
    }

    /// The experiment of a job, with errors in an override named by where the sweep file set it.
    public func experiment(_ overrides: [String]) throws -> Experiment {
        // a `sweep.base` axis names the job's base experiment instead of sweep.base
        var base = spec.base, overrides = overrides
        let prefix = SweepSpec.baseKey + "="
        if let b = overrides.last(where: { $0.hasPrefix(prefix) }) {
            base = String(b.dropFirst(prefix.count).dropFirst().dropLast())
            overrides.removeAll { $0.hasPrefix(prefix) }
        }
        do {
            return try Experiment.load(file: base, overrides: overrides)
        } catch let e as TOMLError where e.file.hasPrefix("--set ") {
            let key = String(e.file.dropFirst(6)).split(separator: " ").first.map(String.init) ?? ""
            let origin = spec.origins[key] ?? spec.origins.first(where: { key.hasPrefix($0.key + ".") || $0.key.hasPrefix(key + ".") })?.value
            if let o = origin { throw TOMLError(file: o.file, line: o.line, message: "\(o.message): \(e.message)") }
            throw TOMLError(file: spec.file, line: 0, message: "\(key): \(e.message)")
        } catch let e as TOMLError where e.file == base {
            throw TOMLError(file: e.file, line: e.line, message: e.message + " (the base experiment of sweep \(spec.file))")
        }
    }

    /// The membership plan of `[plan]`: a class-balanced pool of the base experiment's data,
    /// split into halves per model (`eidetic data plan subset` + `membership`).
    func buildPlan() throws {
        guard let p = spec.plan, let path = spec.planPath else { return }
        if FileManager.default.fileExists(atPath: path) { return }
        let base = try experiment(spec.fixed + (spec.fixed.contains { $0.hasPrefix("data.subset=") } ? [] : ["data.subset=0"]))
        let ds = try DatasetFile(base.config.data.file)
        let set = try ds.load(base.config.data.split)
        let ref = DatasetReference(file: base.config.data.file, split: base.config.data.split, contentSHA256: DatasetReference.contentHash(set))
        let pool: [Int]
        if p.pool > 0 {
            guard p.pool <= set.count else { throw SweepError.spec("\(spec.file): plan.pool = \(p.pool) exceeds the \(set.count) images of \(ref.file) \(ref.split)") }
            pool = try SubsetPlan(dataset: ref, labels: set.labels, classes: set.classNames.count, size: p.pool, seed: p.seed).indices
        } else { pool = Array(0..<set.count) }
        let plan = try MembershipPlan(dataset: ref, pool: pool, models: p.models, seed: p.seed)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let hash = try PlanFile.write(plan, to: path)
        output("plan: membership, \(p.models) models × \(pool.count) examples of \(ref.file) \(ref.split): \(path) (sha256 \(hash.prefix(12)))")
    }

    // MARK: sweep-level evaluation

    /// The sweep-level LiRA folder for these jobs (nil without `[lira]`), keyed by its
    /// settings and the jobs' ids (which hash their configs).
    public func liraFolder(_ jobs: [JobRecord]) throws -> String? {
        guard let l = spec.lira else { return nil }
        struct Settings: Encodable { var lira: SweepSpec.LiRASpec; var runs: [String] }
        return spec.directory + "/" + (try EvalOutput.folderName("lira", "", settings: Settings(lira: l, runs: jobs.map(\.id))))
    }

    /// The sweep-level inpainting folder (nil without `[inpainting]`), keyed like LiRA's.
    public func inpaintingFolder(_ jobs: [JobRecord]) throws -> String? {
        guard let ip = spec.inpainting else { return nil }
        struct Settings: Encodable { var inpainting: SweepSpec.InpaintSpec; var runs: [String] }
        return spec.directory + "/" + (try EvalOutput.folderName("inpaint", "", settings: Settings(inpainting: ip, runs: jobs.map(\.id))))
    }

    /// Evaluations over the whole sweep, once every job is done: LiRA (Carlini et al.,
    /// 2022) over the membership plan's models (and the outlier join), and the inpainting
    /// attack. Each is skipped when current.
    public func evaluate() throws {
        let jobs = try expand()
        if let l = spec.lira, let plan = spec.planPath { try evaluateLiRA(l, plan: plan, jobs: jobs) }
        if let ip = spec.inpainting, let plan = spec.planPath { try evaluateInpainting(ip, plan: plan, jobs: jobs) }
    }

    func unfinished(_ jobs: [JobRecord], for what: String) throws {
        let missing = jobs.filter { !FileManager.default.fileExists(atPath: ExperimentSummary.path(run: $0.runDir)) }
        guard missing.isEmpty else {
            throw SweepError.job("\(spec.name): \(what) needs every job finished; \(missing.count) of \(jobs.count) are not (eidetic sweep status \(spec.file))")
        }
    }

    /// The inpainting attack over the plan's models (paper §5.3, P10): IN vs OUT completions
    /// of the first `targets` pool examples (`InpaintReport.planCases`).
    func evaluateInpainting(_ ip: SweepSpec.InpaintSpec, plan: String, jobs: [JobRecord]) throws {
        guard let folder = try inpaintingFolder(jobs) else { return }
        if FileManager.default.fileExists(atPath: folder + "/summary.json") { output("inpainting: current (\(folder))"); return }
        try unfinished(jobs, for: "inpainting")
        let runs = jobs.map { RunDirectory($0.runDir) }
        let T = try runs[0].loadConfig().diffusion.timesteps
        if ip.steps > T { throw SweepError.spec("\(spec.file): inpainting.steps = \(ip.steps) exceeds the model's diffusion.timesteps = \(T)") }
        if ip.rankTimestep >= T { throw SweepError.spec("\(spec.file): inpainting.rank_timestep = \(ip.rankTimestep) must be below diffusion.timesteps = \(T)") }
        guard let hidden = InpaintConfig.Half(rawValue: ip.hidden) else { throw SweepError.spec("\(spec.file): inpainting.hidden = \"\(ip.hidden)\" is not left, right, top or bottom") }
        let c = InpaintConfig(hidden: hidden, count: ip.count, keep: ip.keep, steps: ip.steps, jumps: ip.jumps,
                              rankTimestep: ip.rankTimestep, rankDraws: ip.rankDraws, seed: ip.seed)
        let t0 = Date()
        let r = try InpaintReport.run(cases: try InpaintReport.planCases(plan, runs: runs, targets: ip.targets), mode: "plan", config: c,
                                      out: folder, force: true, log: output)
        output(String(format: "inpainting: %d cases in %.1f s, AUC of −ℓ2 %.3f: %@", r.cases.count, Date().timeIntervalSince(t0), r.auc, folder))
    }

    func evaluateLiRA(_ l: SweepSpec.LiRASpec, plan: String, jobs: [JobRecord]) throws {
        guard let folder = try liraFolder(jobs) else { return }
        if FileManager.default.fileExists(atPath: folder + "/summary.json") {
            output("lira: current (\(folder))")
            if let o = l.outliers { try evaluateOutliers(o, lira: folder, plan: plan) }
            return
        }
        try unfinished(jobs, for: "LiRA")
        let kind = try ExperimentSummary.load(run: jobs[0].runDir).kind
        var signal: LossSignalConfig
        if kind == ModelKind.unet.rawValue {
            signal = LossSignalConfig()
            signal.timesteps = l.signal.timesteps; signal.draws = l.signal.draws; signal.flip = l.signal.flip
        } else {
            signal = .discriminatorScore(flip: l.signal.flip)
        }
        signal.seed = l.signal.seed
        let t0 = Date()
        _ = try MembershipReport.withPlan(plan, runs: jobs.map { RunDirectory($0.runDir) }, signal: signal, out: folder,
                                          bootstrap: l.bootstrap, force: true, log: output)
        output(String(format: "lira: %d models in %.1f s: %@", jobs.count, Date().timeIntervalSince(t0), folder))
        if let o = l.outliers { try evaluateOutliers(o, lira: folder, plan: plan) }
    }

    /// Are the unusual examples the vulnerable ones? (paper-spec §7, P9.) Each pool example's
    /// outlier score (mean normalized ℓ2 to its n nearest other pool images) against its
    /// per-example LiRA score: Spearman's ρ and deciles, in `<lira folder>/outliers/`.
    /// Skipped when current.
    func evaluateOutliers(_ o: SweepSpec.OutlierSpec, lira folder: String, plan path: String) throws {
        let out = folder + "/outliers"
        if FileManager.default.fileExists(atPath: out + "/summary.json") { output("outliers: current (\(out))"); return }
        let plan = try PlanFile.read(MembershipPlan.self, from: path)
        guard o.neighbors < plan.pool.count else {
            throw SweepError.spec("\(spec.file): outliers.neighbors = \(o.neighbors) must be smaller than the plan's pool of \(plan.pool.count) examples")
        }
        let set = try DatasetFile(plan.dataset.file).load(plan.dataset.split)
        guard DatasetReference.contentHash(set) == plan.dataset.contentSHA256 else {
            throw SweepError.spec("\(plan.dataset.file) \(plan.dataset.split): its images changed since \(path) was made (content hash differs)")
        }
        let scores = OutlierScores(dataset: plan.dataset, images: set, indices: plan.pool, neighbors: o.neighbors)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        _ = try PlanFile.write(scores, to: out + "/scores.json")
        let r = try OutlierReport.run(outliers: scores, outlierFile: out + "/scores.json", mia: folder + "/mia.h5", attack: o.attack, extraction: nil, out: out)
        for j in r.joins { output(String(format: "outliers: Spearman ρ = %.3f over %d examples (%@)", j.spearman, j.examples, j.quantity)) }
    }

    // MARK: one job

    public enum Outcome: Equatable, Sendable { case done, failed, interrupted(signal: Int32) }

    /// Runs one claimed job in this process, heartbeating, and records how it ended: done,
    /// failed (with one line of why), or back to pending when a signal stopped it (training
    /// checkpoints first; the next run resumes it).
    @discardableResult
    /// `watchParent`: a local worker stops (as on SIGTERM: checkpoint, back to pending) when
    /// the runner that started it is gone, rather than run on unobserved.
    public func execute(_ job: JobRecord, threads: Int?, watchParent: Bool = false) -> Outcome {
        let t0 = Date()
        let pid = Int(getpid())
        let parent = getppid()
        try? store.heartbeat(sweep: spec.name, id: job.id, pid: pid)
        let beat = Heartbeat(every: watchParent ? 2 : SweepStore.heartbeatSeconds) { [store, spec] in
            try? store.heartbeat(sweep: spec.name, id: job.id, pid: pid)
            if watchParent && getppid() != parent && !Interruption.requested { Interruption.request(signal: SIGTERM) }
        }
        defer { beat.stop() }
        output("job \(job.id) (index \(job.idx), attempt \(job.attempts)): \(job.overrideList.joined(separator: " "))")
        do {
            let e = try experiment(job.overrideList)
            let p = try ExperimentPipeline(e, runDirectory: job.runDir)
            p.threads = threads
            p.output = output
            try p.execute()
            try store.finish(sweep: spec.name, id: job.id, failed: nil, seconds: Date().timeIntervalSince(t0))
            output(String(format: "job %@ done in %.1f s", job.id, Date().timeIntervalSince(t0)))
            return .done
        } catch TrainingError.interrupted(let step, let sig) {
            output("interrupted at step \(step) by signal \(sig): checkpointed; the job is pending again")
            try? store.release(sweep: spec.name, id: job.id)
            return .interrupted(signal: sig)
        } catch {
            let line = Sweep.oneLine("\(error)")
            output("error: \(line)")
            try? store.finish(sweep: spec.name, id: job.id, failed: line, seconds: Date().timeIntervalSince(t0))
            return .failed
        }
    }

    static func oneLine(_ s: String) -> String {
        s.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: " ")
    }

    /// The last non-empty line of a log that starts with "error" (else the last line).
    public static func lastErrorLine(_ log: String) -> String? {
        guard let text = try? String(contentsOfFile: log, encoding: .utf8) else { return nil }
        let lines = text.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        return lines.last(where: { $0.lowercased().hasPrefix("error") }) ?? lines.last
    }

    // MARK: local workers

    /// Runs the sweep on this machine: up to `workers` jobs at once, each a child process
    /// (`eidetic sweep run-job`) with `threads` compute threads and its own log. Other
    /// `sweep run` processes (here or on other hosts sharing the folder) take other jobs.
    /// Returns when no job is pending or stale.
    public func runLocal(workers: Int, threads: Int, executable: String, extraArguments: [String] = []) throws {
        var children: [(Child, JobRecord)] = []
        var lastProgress = Date.distantPast
        var forwarded = false
        while true {
            if Interruption.requested && !forwarded {
                // stop starting jobs; the children checkpoint and go back to pending
                output("\(Interruption.signalName): stopping \(children.count) running job(s) at their next checkpoint")
                for (c, _) in children { kill(c.pid, Interruption.signalNumber) }
                forwarded = true
            }
            // reap
            var still: [(Child, JobRecord)] = []
            for (c, j) in children {
                guard let end = c.poll() else { still.append((c, j)); continue }
                let now = try store.jobs(sweep: spec.name).first { $0.id == j.id }
                if now?.state == "running" && now?.pid == Int(c.pid) {
                    // the child died without recording an outcome (a signal, a crash)
                    let last = Sweep.lastErrorLine(j.log).map { ": \($0)" } ?? ""
                    try store.finish(sweep: spec.name, id: j.id, failed: Sweep.oneLine(end + last), seconds: 0)
                }
            }
            children = still
            // start
            var claimedAny = false
            while !Interruption.requested, children.count < workers, let j = try store.claim(sweep: spec.name, pid: Int(getpid())) {
                claimedAny = true
                try FileManager.default.createDirectory(atPath: logsFolder, withIntermediateDirectories: true)
                let header = "=== \(ISO8601DateFormatter().string(from: Date())) attempt \(j.attempts) on \(SweepStore.hostName)\n"
                if let h = FileHandle(forWritingAtPath: j.log) ?? (FileManager.default.createFile(atPath: j.log, contents: nil) ? FileHandle(forWritingAtPath: j.log) : nil) {
                    h.seekToEndOfFile(); h.write(Data(header.utf8)); try? h.close()
                } else { throw SweepError.job("\(j.log): cannot open the job's log for writing") }
                let args = ["sweep", "run-job", spec.file, "--job", j.id, "--threads", String(threads)] + extraArguments
                let child: Child
                do { child = try Child.spawn(executable, args, log: j.log) } catch {
                    try store.finish(sweep: spec.name, id: j.id, failed: "cannot start \(executable): \(error)", seconds: 0)
                    continue
                }
                try store.heartbeat(sweep: spec.name, id: j.id, pid: Int(child.pid))
                output("started \(j.id) (pid \(child.pid)), log \(j.log)")
                children.append((child, j))
            }
            if children.isEmpty && (!claimedAny || Interruption.requested) { break }
            if Date().timeIntervalSince(lastProgress) > 30 {
                output(try progressLine(workers: workers)); lastProgress = Date()
            }
            usleep(200_000)
        }
    }

    // MARK: status

    public struct Counts: Equatable, Sendable {
        public var done = 0, failed = 0, pending = 0, running = 0, stale = 0
        public var total: Int { done + failed + pending + running + stale }
    }

    public func counts() throws -> Counts {
        var c = Counts()
        for j in try store.jobs(sweep: spec.name) {
            switch j.state {
            case "done": c.done += 1
            case "failed": c.failed += 1
            case "running": if SweepStore.isStale(j) { c.stale += 1 } else { c.running += 1 }
            default: c.pending += 1
            }
        }
        return c
    }

    /// "12/16 done, 1 failed, 2 running, 1 pending; ETA 4 min (mean job 61 s)".
    public func progressLine(workers: Int) throws -> String {
        let jobs = try store.jobs(sweep: spec.name)
        let c = try counts()
        let secs = jobs.compactMap { $0.state == "done" ? $0.seconds : nil }.filter { $0 > 0 }
        var eta = ""
        if !secs.isEmpty && c.pending + c.running + c.stale > 0 {
            let mean = secs.reduce(0, +) / Double(secs.count)
            let left = mean * Double(c.pending + c.stale + c.running) / Double(max(workers, 1))
            eta = String(format: "; ETA %@ (mean job %.0f s)", Sweep.duration(left), mean)
        }
        return "\(spec.name): \(c.done)/\(c.total) done, \(c.failed) failed, \(c.running) running, \(c.pending + c.stale) pending\(eta)"
    }

    static func duration(_ s: Double) -> String {
        s < 90 ? String(format: "%.0f s", s) : s < 5400 ? String(format: "%.0f min", s / 60) : String(format: "%.1f h", s / 3600)
    }

    /// The end-of-run summary: counts, each failed job with its log and last error line,
    /// pending jobs, and jobs running elsewhere.
    public func summaryLines(slurm: [Int: String] = [:]) throws -> [String] {
        var lines = [try progressLine(workers: 1)]
        for j in try store.jobs(sweep: spec.name) {
            if let st = slurm[j.idx], j.state != "done" && j.state != "failed" {
                lines.append("  \(j.state == "running" ? "running " : "pending ") \(j.id) (Slurm task \(j.idx): \(st))")
                continue
            }
            switch j.state {
            case "failed": lines.append("  failed   \(j.id): \(j.error ?? "?")  (log \(j.log))")
            case "running" where SweepStore.isStale(j): lines.append("  pending  \(j.id) (its process \(j.pid.map(String.init) ?? "?") on \(j.host ?? "?") is gone; it resumes on the next run)")
            case "running": lines.append("  running  \(j.id) on \(j.host ?? "?") pid \(j.pid.map(String.init) ?? "?")\(j.slurmJob.map { " (Slurm \($0))" } ?? "")")
            case "pending": lines.append("  pending  \(j.id)")
            default: break
            }
        }
        return lines
    }
}

/// Calls `body` every `every` seconds on a background thread until stopped.
final class Heartbeat: @unchecked Sendable {
    final class State: @unchecked Sendable { let cond = NSCondition(); var stopped = false }
    let state = State()
    init(every: Double, _ body: @escaping @Sendable () -> Void) {
        let s = state
        Thread {
            while true {
                s.cond.lock()
                if !s.stopped { _ = s.cond.wait(until: Date().addingTimeInterval(every)) }
                let stop = s.stopped
                s.cond.unlock()
                if stop { return }
                body()
            }
        }.start()
    }
    func stop() { state.cond.lock(); state.stopped = true; state.cond.signal(); state.cond.unlock() }
}

/// A worker process started with posix_spawn in the runner's own process group (so a
/// SIGKILL to the group ends the runner and its workers together; Foundation's Process
/// would give each child a group of its own), stdout and stderr appended to its log.
struct Child {
    let pid: pid_t

    static func spawn(_ executable: String, _ args: [String], log: String) throws -> Child {
        var fa = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fa)
        defer { posix_spawn_file_actions_destroy(&fa) }
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        posix_spawn_file_actions_adddup2(&fa, 1, 2)
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + args).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &fa, nil, argv, environ)
        guard rc == 0 else { throw SweepError.job("cannot start \(executable): \(String(cString: strerror(rc)))") }
        return Child(pid: pid)
    }

    /// nil while running; else how it ended ("exited with status 1", "killed by signal 9").
    func poll() -> String? {
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == 0 { return nil }
        if r < 0 { return "lost (waitpid: \(String(cString: strerror(errno))))" }
        let sig = status & 0x7f
        return sig == 0 ? "exited with status \((status >> 8) & 0xff)" : "killed by signal \(sig)"
    }
}
