import ArgumentParser
import Foundation

extension Bench {
    /// The figure users feel: complete jobs per hour. One standard job (experiments/lab-xs.toml:
    /// train unet-xs to its budget on 256 CIFAR-10 images at 16×16, 1,024 DDIM samples,
    /// extraction, the loss membership attack) run end to end by `eidetic run` processes,
    /// `--jobs` of them (seeds 0, 1, …) per layout of workers × threads; prints the wall time,
    /// jobs per hour and where a job's time goes, stage by stage.
    struct LabBench: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "lab",
            abstract: "Jobs per hour of the lab's standard job (unet-xs on 256 CIFAR-10 images at 16×16, sampling, extraction, loss MIA) for each workers × threads layout.")
        @Option(help: "The job: an experiment config.") var config = "experiments/lab-xs.toml"
        @Option(help: "Layouts WxT (W workers at a time, T threads each), comma-separated.") var layouts = "1x2,2x1"
        @Option(help: "Jobs per layout (seeds 0 …), each a separate model.") var jobs = 2
        @Option(help: "Folder for the runs (default: a new one under results/bench-lab/).") var out: String?
        @Option(help: "The eidetic binary that runs the jobs (default: this one; another build gives a before/after).")
        var binary: String?
        @Option(name: .customLong("set"), help: ArgumentHelp("An override of the config, key=value, passed to every job (repeatable).", valueName: "key=value"))
        var overrides: [String] = []
        @Flag(help: "Print one JSON object per layout as well.") var json = false

        func validate() throws {
            try Check.atLeast(jobs, 1, "--jobs")
            _ = try parsedLayouts()
            guard FileManager.default.fileExists(atPath: config) else { throw ValidationError("--config: \(config): no such file") }
            if let binary, !FileManager.default.isExecutableFile(atPath: binary) { throw ValidationError("--binary: \(binary) is not an executable file") }
        }

        func parsedLayouts() throws -> [(workers: Int, threads: Int)] {
            try layouts.split(separator: ",").map { item in
                let p = item.split(separator: "x").compactMap { Int($0) }
                guard p.count == 2, p[0] >= 1, p[1] >= 1 else { throw ValidationError("--layouts: '\(item)' is not WxT (e.g. 2x1)") }
                return (p[0], p[1])
            }
        }

        func run() throws {
            let exe = binary ?? URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
            let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
            let root = out ?? "results/bench-lab/\(stamp)"
            if FileManager.default.fileExists(atPath: root) { throw ValidationError("--out: \(root) exists; choose a new folder") }
            try OutputGuard.checkWritableParent(root)
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            print("lab job: \(config) \(overrides.joined(separator: " ")); \(jobs) job(s) per layout; binary \(exe); runs in \(root)")
            var lines: [String] = []
            for (w, t) in try parsedLayouts() {
                let dir = "\(root)/\(w)x\(t)"
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                let t0 = Date()
                var stages: [String: [Double]] = [:], order: [String] = []
                var next = 0, running: [(Process, Int)] = []
                var started: [Int: Date] = [:]
                let ended = Ended()
                func start(_ seed: Int) throws {
                    let log = "\(dir)/job\(seed).log"
                    FileManager.default.createFile(atPath: log, contents: nil)
                    let p = Process()
                    p.executableURL = URL(fileURLWithPath: exe)
                    p.arguments = ["run", config, "--set", "run.seed=\(seed)", "--set", "run.out=\"\(dir)\"", "--set", "train.threads=\(t)"]
                        + overrides.flatMap { ["--set", $0] }
                    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
                    p.standardOutput = handle
                    p.standardError = handle
                    var env = ProcessInfo.processInfo.environment
                    if w > 1 { env["EIDETIC_SPIN_US"] = "0" }   // several processes share the cores
                    p.environment = env
                    p.terminationHandler = { _ in ended.mark(seed) }
                    started[seed] = Date()
                    try p.run()
                    running.append((p, seed))
                }
                while next < jobs || !running.isEmpty {
                    while running.count < w && next < jobs { try start(next); next += 1 }
                    let (p, seed) = running.removeFirst()
                    p.waitUntilExit()
                    let log = (try? String(contentsOfFile: "\(dir)/job\(seed).log", encoding: .utf8)) ?? ""
                    guard p.terminationStatus == 0 else {
                        for (q, _) in running { q.terminate() }
                        var last = log.split(separator: "\n").last.map(String.init) ?? "(no output)"
                        if last.hasPrefix("eidetic: error: ") { last = String(last.dropFirst("eidetic: error: ".count)) }
                        throw ValidationError("job \(seed) (\(w)x\(t)) failed: \(last)  [log \(dir)/job\(seed).log]")
                    }
                    // "stage train: ran (22.4 s) …"
                    for line in log.split(separator: "\n") where line.hasPrefix("stage ") {
                        let parts = line.dropFirst(6).split(separator: ":", maxSplits: 1)
                        guard parts.count == 2, let open = parts[1].firstIndex(of: "("),
                              let close = parts[1].range(of: " s)", range: open..<parts[1].endIndex),
                              let sec = Double(parts[1][parts[1].index(after: open)..<close.lowerBound]) else { continue }
                        let name = String(parts[0])
                        if stages[name] == nil { order.append(name) }
                        stages[name, default: []].append(sec)
                    }
                }
                let wall = Date().timeIntervalSince(t0)
                let perHour = Double(jobs) / wall * 3600
                // a job's own wall time; what its stages do not cover (start-up, data, plan) is "other"
                var jobSeconds = 0.0
                for seed in 0..<jobs { if let e = ended.at(seed), let s = started[seed] { jobSeconds += e.timeIntervalSince(s) } }
                let jobWall = jobSeconds / Double(jobs)
                let staged = order.reduce(0.0) { $0 + (stages[$1]!.reduce(0, +) / Double(stages[$1]!.count)) }
                if jobWall > staged { order.append("other"); stages["other"] = [jobWall - staged] }
                let total = max(jobWall, staged)
                var split = ""
                for name in order {
                    let v = stages[name]!, mean = v.reduce(0, +) / Double(v.count)
                    split += String(format: "  %@ %.1f s (%.0f%%)", name, mean, 100 * mean / max(total, 1e-9))
                }
                print(String(format: "%d worker(s) × %d thread(s): %d jobs in %.1f s → %.1f jobs/hour; a job takes %.1f s:", w, t, jobs, wall, perHour, jobWall) + split)
                fflush(stdout)
                let stageJSON = order.map { name -> String in
                    let v = stages[name]!
                    return String(format: "\"%@\": %.2f", name, v.reduce(0, +) / Double(v.count))
                }.joined(separator: ", ")
                lines.append(String(format: "{\"layout\": \"%dx%d\", \"jobs\": %d, \"wall_seconds\": %.1f, \"jobs_per_hour\": %.2f, \"stage_seconds\": {%@}}",
                                    w, t, jobs, wall, perHour, stageJSON))
            }
            if json { for l in lines { print(l) } }
        }
    }
}

/// Exit times of a layout's jobs, written by Process termination handlers.
private final class Ended: @unchecked Sendable {
    private let lock = NSLock()
    private var times: [Int: Date] = [:]
    func mark(_ seed: Int) { lock.lock(); times[seed] = Date(); lock.unlock() }
    func at(_ seed: Int) -> Date? { lock.lock(); defer { lock.unlock() }; return times[seed] }
}
