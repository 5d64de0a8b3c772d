import ArgumentParser
import Experiments
import Data
import Foundation
import Tensor
import Training

/// `eidetic run CONFIG`: a whole experiment, every stage in order, skipping the current ones.
struct RunExperiment: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a whole experiment: train → sample → evaluate → summary (stages whose outputs exist for the same settings are skipped; an interrupted stage resumes).")
    @Argument(help: "Experiment config (TOML): a training config plus [eval].") var config: String
    @Option(name: .customLong("set"), help: "Override a config key: --set train.lr=1e-4 (repeatable).") var overrides: [String] = []
    @Option(help: "Run directory (default: <run.out>/<run.name>-<config hash>).") var runDir: String?
    @OptionGroup var threads: ThreadOptions

    func run() throws {
        let e = try Experiment.load(file: config, overrides: overrides)
        threads.apply(configured: e.config.train.threads)
        let p = try ExperimentPipeline(e, runDirectory: runDir)
        p.threads = threads.threads
        let s = try p.execute()
        if let x = s.extraction {
            print("extraction: \(x.extractedGenerations) of \(x.generations) generations within the relative threshold; \(x.uniqueExtracted) distinct training images of \(x.trainingImages)")
        }
        if let m = s.membership {
            print(String(format: "membership (%@): AUC %.3f [%.3f, %.3f] over %d members and %d non-members", m.attack, m.auc.value, m.auc.low, m.auc.high, m.members, m.nonMembers))
        }
        print("run directory: \(p.run.path)")
    }
}

/// `eidetic sweep …`: many experiments from one file, on this machine or a Slurm cluster.
struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Plan, run and follow a sweep of experiments (state in <out>/sweeps.db, SQLite).",
        subcommands: [SweepPlan.self, SweepRun.self, SweepStatus.self, SweepRetry.self, SweepReportCommand.self, SweepExport.self, SweepRunJob.self, SweepRunTask.self])

    struct Common: ParsableArguments {
        @Argument(help: "Sweep file (TOML), or a tables file whose [[table]]s stack several sweeps' tables (needs --records).") var sweep: String
        @Option(name: .customLong("set"), help: "Override a sweep-file key: --set sweep.draws=4 (repeatable).") var overrides: [String] = []
        @Option(help: "The sweep file's [scale.NAME] to run at (required when it has scales; e.g. smoke or full).") var scale: String?
        func load() throws -> Sweep { try Sweep(file: sweep, overrides: overrides, scale: scale) }
        /// The sweep file with its --scale, as a command names it.
        var named: String { sweep + (scale.map { " --scale \($0)" } ?? "") }
        /// What child processes (workers, Slurm tasks) get to load the same sweep.
        var arguments: [String] { overrides.flatMap { ["--set", $0] } + (scale.map { ["--scale", $0] } ?? []) }
    }
}

struct SweepPlan: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "plan", abstract: "Expand the sweep into jobs, check every job's config, and record them (nothing is trained).")
    @OptionGroup var common: SweepCommand.Common
    func run() throws {
        let s = try common.load()
        let jobs = try s.plan()
        let byId = Dictionary(uniqueKeysWithValues: try s.store.jobs(sweep: s.spec.name).map { ($0.id, $0) })
        for j in jobs { print(String(format: "%4d  %-8@ %@", j.idx, byId[j.id]?.state ?? "pending", j.id)) }
        print("\(jobs.count) jobs; runs in \(s.runsFolder), logs in \(s.logsFolder), state in \(s.spec.database)")
    }
}

/// Workers × threads for a local sweep: measured on the tiny presets (docs/EXPERIMENTS.md),
/// one thread per worker and a worker per core is fastest for models this small.
struct LocalWorkers: ParsableArguments {
    @Option(help: "Jobs at once (default: cores ÷ --threads).") var workers: Int?
    @Option(help: "Compute threads per job (default 1; workers × threads ≤ cores).") var threads: Int = 1
    @Flag(help: "Allow workers × threads to exceed the cores.") var oversubscribe = false

    func validate() throws {
        try Check.atLeast(workers, 1, "--workers")
        try Check.atLeast(threads, 1, "--threads")
        let cores = ProcessInfo.processInfo.activeProcessorCount
        if let w = workers, w * threads > cores, !oversubscribe {
            throw ValidationError("--workers \(w) × --threads \(threads) exceeds the \(cores) cores; pass --oversubscribe to allow it")
        }
    }

    var count: Int { workers ?? max(1, ProcessInfo.processInfo.activeProcessorCount / threads) }

    /// Runs the sweep's pending jobs here, prints the summary, and writes the sweep-level
    /// results once every job is done; exits non-zero when a job failed or on a signal.
    func run(_ s: Sweep, arguments: [String]) throws {
        Interruption.handled = true
        try s.runLocal(workers: count, threads: threads, executable: executablePath(), extraArguments: arguments)
        for l in try s.summaryLines() { print(l) }
        if Interruption.requested { throw ExitCode(128 + Interruption.signalNumber) }
        let c = try s.counts()
        if c.done == c.total { try finishSweep(s) }
        if c.failed > 0 { throw ExitCode(1) }
    }
}

struct SweepRun: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the sweep's pending jobs with local workers (re-running skips finished jobs and resumes interrupted ones).")
    @OptionGroup var common: SweepCommand.Common
    @OptionGroup var local: LocalWorkers
    @Option(help: "local (workers on this machine) or slurm (one job array; see docs/EXPERIMENTS.md).") var launcher = "local"
    @Option(help: "slurm: at most this many tasks at once (sbatch --array=…%N; 0: no limit).") var throttle = 0
    @Option(help: "slurm: CPUs per task (each task uses them all).") var cpusPerTask = 1
    @Option(help: "slurm: memory per task (sbatch --mem).") var mem: String?
    @Option(help: "slurm: partition.") var partition: String?
    @Option(help: "slurm: time limit per task (sbatch --time).") var time: String?
    @Option(help: "slurm: a further sbatch argument (repeatable), e.g. --sbatch-arg=--account=lab.") var sbatchArg: [String] = []

    func validate() throws {
        guard ["local", "slurm"].contains(launcher) else { throw ValidationError("--launcher must be local or slurm, got \(launcher)") }
        try Check.atLeast(throttle, 0, "--throttle")
        try Check.atLeast(cpusPerTask, 1, "--cpus-per-task")
    }

    func run() throws {
        let s = try common.load()
        if launcher == "slurm" {
            var l = SlurmLauncher(throttle: throttle, cpusPerTask: cpusPerTask, memory: mem, partition: partition, timeLimit: time, extra: sbatchArg)
            l.sweepOverrides = common.overrides
            l.sweepScale = common.scale
            guard let sub = try l.submit(s, executable: executablePath()) else { print("\(s.spec.name): every job is done or running; nothing submitted"); return }
            print("\(s.spec.name): submitted \(sub.indices.count) task(s) as Slurm array job \(sub.arrayJob)" + (sub.reportJob.map { "; tables and report after it as job \($0)" } ?? ""))
            print("follow it with: eidetic sweep status \(common.named)")
            return
        }
        let jobs = try s.plan()
        print("\(s.spec.name): \(jobs.count) jobs, \(local.count) worker(s) × \(local.threads) thread(s); state in \(s.spec.database)")
        try local.run(s, arguments: common.arguments)
    }
}

struct SweepStatus: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Jobs done / failed (with log and last error line) / running / pending, with an ETA.")
    @OptionGroup var common: SweepCommand.Common
    @Flag(help: "Print every job's database row as JSON instead.") var json = false
    func run() throws {
        let s = try common.load()
        if json {
            let e = JSONEncoder(); e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            print(String(decoding: try e.encode(try s.store.jobs(sweep: s.spec.name)), as: UTF8.self))
            return
        }
        guard !(try s.store.jobs(sweep: s.spec.name)).isEmpty else {
            print("\(s.spec.name): not planned yet (eidetic sweep plan \(common.named))"); return
        }
        for l in try s.summaryLines(slurm: SlurmLauncher.taskStates(s)) { print(l) }
    }
}

struct SweepRetry: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "retry", abstract: "Put failed jobs back to pending (all, or --job ID/INDEX) and run them.")
    @OptionGroup var common: SweepCommand.Common
    @Option(help: "Only this job (id or index; repeatable).") var job: [String] = []
    @OptionGroup var local: LocalWorkers
    func run() throws {
        let s = try common.load()
        try s.plan()
        let n = try s.store.retry(sweep: s.spec.name, ids: job)
        print("\(n) failed job(s) back to pending")
        try local.run(s, arguments: common.arguments)
    }
}

/// One job in this process (what local workers start; not usually typed by hand).
struct SweepRunJob: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run-job", abstract: "Run one claimed job of a sweep in this process (started by `sweep run`).", shouldDisplay: false)
    @OptionGroup var common: SweepCommand.Common
    @Option(help: "Job id.") var job: String
    @Option(help: "Compute threads.") var threads: Int = 1
    func validate() throws { try Check.atLeast(threads, 1, "--threads") }
    func run() throws {
        let s = try common.load()
        guard let j = try s.store.jobs(sweep: s.spec.name).first(where: { $0.id == job }) else {
            throw ValidationError("--job: \(job) is not a job of sweep \(s.spec.name) (eidetic sweep plan \(common.named))")
        }
        Threads.count = threads
        switch s.execute(j, threads: threads, watchParent: true) {
        case .done: return
        case .failed: throw ExitCode(1)
        case .interrupted(let sig): throw ExitCode(128 + sig)
        }
    }
}

/// A Slurm array task: job INDEX of the sweep (`sbatch --array`), resumable on requeue.
struct SweepRunTask: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run-task", abstract: "Run job INDEX of a sweep in this process (a Slurm array task).")
    @OptionGroup var common: SweepCommand.Common
    @Argument(help: "Job index (default: $SLURM_ARRAY_TASK_ID).") var index: Int?
    @Option(help: "Compute threads (default: $SLURM_CPUS_PER_TASK, else all cores).") var threads: Int?
    func validate() throws { try Check.atLeast(threads, 1, "--threads") }
    func run() throws {
        let s = try common.load()
        let env = ProcessInfo.processInfo.environment
        guard let i = index ?? env["SLURM_ARRAY_TASK_ID"].flatMap(Int.init) else {
            throw ValidationError("INDEX: give the job index, or run inside a Slurm array task (SLURM_ARRAY_TASK_ID)")
        }
        let jobs = try s.store.jobs(sweep: s.spec.name)
        guard let j = jobs.first(where: { $0.idx == i }) else {
            throw ValidationError("INDEX: sweep \(s.spec.name) has jobs 0…\(jobs.count - 1) (eidetic sweep plan \(common.named)), not \(i)")
        }
        if j.state == "done" { print("job \(j.id) is done"); return }
        let slurm = env["SLURM_ARRAY_JOB_ID"].map { "\($0)_\(i)" } ?? env["SLURM_JOB_ID"]
        guard let claimed = try s.store.claim(sweep: s.spec.name, pid: Int(getpid()), index: i, slurmJob: slurm) else {
            print("job \(j.id) is \(j.state) elsewhere (\(j.host ?? "?") pid \(j.pid.map(String.init) ?? "?")); nothing to do"); return
        }
        let t = Trainer.threads(threads ?? 0)
        Threads.count = t
        switch s.execute(claimed, threads: t) {
        case .done: return
        case .failed: throw ExitCode(1)
        case .interrupted(let sig): throw ExitCode(128 + sig)
        }
    }
}

/// Once every job is done: the sweep-level evaluations, the tables and the report.
func finishSweep(_ s: Sweep, chosen: [Int] = [], top: Int? = nil) throws {
    Threads.count = ProcessInfo.processInfo.activeProcessorCount
    try s.evaluate()
    let r = try SweepResults.collect(s)
    let tables = s.spec.directory + "/tables"
    let written = try SweepTables.write(r, to: tables, replicates: s.spec.replicates, confidence: s.spec.confidence)
    print("tables: \(written.filter { $0.hasSuffix(".md") }.joined(separator: ", "))")
    var rep = SweepReport(sweep: s, results: r)
    rep.chosen = s.spec.examples + chosen.filter { !s.spec.examples.contains($0) }
    rep.topK = top ?? s.spec.topExamples
    rep.replicates = s.spec.replicates
    let index = try rep.write()
    print("report: \(index)   (open it in a browser: file://\(URL(fileURLWithPath: index).standardizedFileURL.path))")
}

/// `eidetic sweep export SWEEP --to DIR`: the compact records a sweep's tables come from
/// (each job's experiment.json, the LiRA summary and its per-example scores and ROC arrays),
/// copied to `DIR/<name>/` in the sweep folder's layout, then the tables regenerated there from
/// those copies alone — so `eidetic tables SWEEP --set sweep.out="DIR"` rebuilds them byte for
/// byte from committed files (results/paper/). No checkpoints or sample files are copied.
struct SweepExport: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export", abstract: "Copy a sweep's compact records (experiment.json per job, LiRA summary and scores) to --to DIR and regenerate its tables there from them alone.")
    @OptionGroup var common: SweepCommand.Common
    @Option(help: "The records folder (e.g. results/paper); the sweep's records go to DIR/<sweep name>/.") var to: String
    @Flag(help: "Replace the sweep's existing records in DIR (they are removed first, so none go stale).") var force = false
    func run() throws {
        let s = try common.load()
        let r = try SweepResults.collect(s)
        let missing = r.runs.filter { $0.summary == nil }
        guard missing.isEmpty else {
            throw ValidationError("\(s.spec.name): \(missing.count) of \(r.runs.count) jobs have no results (eidetic sweep status \(common.named)); export a finished sweep")
        }
        let fm = FileManager.default
        let dest = to + "/" + s.spec.name
        if fm.fileExists(atPath: dest) {
            guard force else { throw ValidationError("\(dest) exists (records of this sweep); pass --force to replace it") }
            try fm.removeItem(atPath: dest)
        }
        func copy(_ from: String, _ into: String) throws {
            try fm.createDirectory(atPath: (into as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try writeFileAtomically(try Data(contentsOf: URL(fileURLWithPath: from)), to: into)
        }
        for run in r.runs {
            try copy(ExperimentSummary.path(run: run.job.runDir), dest + "/runs/\(run.job.id)/experiment.json")
        }
        var liraName: String?
        if let (folder, _) = r.lira {
            liraName = (folder as NSString).lastPathComponent
            for f in ["summary.json", "mia.h5"] { try copy(folder + "/" + f, dest + "/\(liraName!)/" + f) }
            if r.outliers != nil {   // [outliers]: the join and the per-example outlier scores
                for f in ["summary.json", "scores.json"] { try copy(folder + "/outliers/" + f, dest + "/\(liraName!)/outliers/" + f) }
            }
        }
        var inpaintingName: String?
        if let (folder, _) = r.inpainting {   // the summary holds every case's distances and losses
            inpaintingName = (folder as NSString).lastPathComponent
            try copy(folder + "/summary.json", dest + "/\(inpaintingName!)/summary.json")
        }
        let index = SweepResults.RecordIndex(sweep: s.spec.name, file: s.spec.file, fileSHA256: s.spec.fileHash,
                                             jobs: r.runs.map { .init(idx: $0.job.idx, id: $0.job.id, overrides: $0.job.overrides) }, lira: liraName,
                                             inpainting: inpaintingName)
        let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try writeFileAtomically(try enc.encode(index) + Data("\n".utf8), to: dest + "/records.json")
        let again = try SweepResults.collect(s, records: to)
        for p in try SweepTables.write(again, to: dest + "/tables", replicates: s.spec.replicates, confidence: s.spec.confidence) { print(p) }
        print("records of \(r.runs.count) jobs in \(dest) (regenerate: eidetic tables \(common.named) --records \(to))")
    }
}

/// `eidetic sweep report SWEEP`: sweep-level evaluations, tables and the HTML report.
struct SweepReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "report", abstract: "Evaluate the whole sweep (LiRA over its plan), write its tables and one static HTML page with a dossier per most-memorized training example.")
    @OptionGroup var common: SweepCommand.Common
    @Option(help: "A training example (dataset index) that gets a dossier (repeatable).") var example: [Int] = []
    @Option(help: "Dossiers for the k most memorized examples (default: tables.top_examples, 8).") var top: Int?
    func validate() throws { try Check.atLeast(top, 0, "--top") }
    func run() throws {
        let s = try common.load()
        try finishSweep(s, chosen: example, top: top)
    }
}

/// `eidetic tables SWEEP`: Markdown, LaTeX and CSV tables and SVG/PNG figures from a sweep's run files.
struct TablesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tables", abstract: "Tables (Markdown, LaTeX, CSV) and figures (SVG, PNG) of a sweep, from its run files only (re-running gives byte-identical files).")
    @Argument(help: "Sweep file (TOML), or a tables file whose [[table]]s stack several sweeps' tables (needs --records).") var sweep: String
    @Option(name: .customLong("set"), help: "Override a sweep-file key (repeatable).") var overrides: [String] = []
    @Option(help: "The sweep file's [scale.NAME] (as given to sweep run).") var scale: String?
    @Option(help: "Output folder (default: <sweep folder>/tables, or <records>/<name>/tables).") var out: String?
    @Option(help: "Read the runs from a records folder written by `eidetic sweep export` (e.g. results/paper) instead of the sweep folder.") var records: String?
    @Option(help: "Keys averaged over, comma-separated (default: the sweep's tables.replicates, else run.seed,data.plan_model,run.name,data.subset_seed).") var replicates: String?
    @Option(help: "Confidence of the binomial intervals (default: tables.confidence, 0.95).") var confidence: Double?
    func validate() throws { try Check.finite(confidence, "--confidence", max: 0.999999, above: 0) }
    func run() throws {
        if TablesSpec.isTablesFile(sweep) {
            // a tables file: tables stacked from several sweeps' records
            guard let records else { throw ValidationError("\(sweep) is a tables file (its [[table]]s join several sweeps' records): give --records DIR") }
            if !overrides.isEmpty || replicates != nil || confidence != nil { throw ValidationError("--set, --replicates and --confidence apply to sweep files; \(sweep) is a tables file") }
            let spec = try TablesSpec.load(file: sweep)
            for p in try spec.write(records: records, to: out ?? records + "/tables", scale: scale) where p.hasSuffix(".md") { print(p) }
            return
        }
        let s = try Sweep(file: sweep, overrides: overrides, scale: scale)
        let r = try records.map { try SweepResults.collect(s, records: $0) } ?? SweepResults.collect(s)
        let missing = r.runs.filter { $0.summary == nil }.count
        if missing > 0 { print("note: \(missing) of \(r.runs.count) jobs have no results yet; their rows say so") }
        let reps = replicates.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? s.spec.replicates
        let folder = out ?? (records.map { $0 + "/" + s.spec.name } ?? s.spec.directory) + "/tables"
        for p in try SweepTables.write(r, to: folder, replicates: reps, confidence: confidence ?? s.spec.confidence) { print(p) }
    }
}

/// This binary's path (children run the same build).
func executablePath() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
}
