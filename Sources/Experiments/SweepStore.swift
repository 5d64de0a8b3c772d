import Foundation
import GRDB
import HDF5

/// One job of a sweep, as the database holds it.
public struct JobRecord: Codable, Equatable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "job"
    /// A readable slug of the swept values plus a hash of the job's whole configuration.
    public var id: String
    public var sweep: String
    /// Position in the sweep's expansion (the Slurm array index).
    public var idx: Int
    /// `key=value` overrides on top of the base experiment, as a JSON array.
    public var overrides: String
    public var runDir: String
    public var log: String
    /// pending, running, done or failed.
    public var state: String
    /// 1 while the job belongs to the sweep file's current expansion.
    public var current: Int
    public var attempts: Int
    public var host: String?
    public var pid: Int?
    public var heartbeat: Double?
    public var started: Double?
    public var finished: Double?
    /// Wall seconds of the attempt that finished it.
    public var seconds: Double?
    /// One line: why it failed.
    public var error: String?
    public var slurmJob: String?

    public var overrideList: [String] { (try? JSONDecoder().decode([String].self, from: Data(overrides.utf8))) ?? [] }
}

/// The sweeps' state in SQLite (GRDB): one database per results folder, shared by every
/// sweep there and every worker process (local or Slurm tasks on a shared filesystem).
/// Every change is one IMMEDIATE transaction, so two workers never claim the same job.
/// The rollback journal (not WAL) is used because WAL needs shared memory, which network
/// filesystems do not give.
public final class SweepStore {
    public let path: String
    let db: DatabaseQueue
    /// A running job whose heartbeat is older than this is taken to be dead (its process
    /// on another host, or a reused pid on this one).
    public static let staleSeconds = 600.0
    public static let heartbeatSeconds = 15.0

    public init(path: String) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var config = Configuration()
        config.busyMode = .timeout(120)
        config.label = "eidetic-sweeps"
        do {
            db = try DatabaseQueue(path: path, configuration: config)
        } catch {
            throw SweepError.database("\(path): cannot open the sweep database: \(SweepStore.describe(error))")
        }
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.create(table: "sweep") { t in
                t.primaryKey("name", .text)
                t.column("file", .text).notNull()
                t.column("fileHash", .text).notNull()
                t.column("registered", .double).notNull()
            }
            try db.create(table: "job") { t in
                t.primaryKey(["sweep", "id"])
                t.column("id", .text).notNull()
                t.column("sweep", .text).notNull().references("sweep", onDelete: .cascade)
                t.column("idx", .integer).notNull()
                t.column("overrides", .text).notNull()
                t.column("runDir", .text).notNull()
                t.column("log", .text).notNull()
                t.column("state", .text).notNull().defaults(to: "pending")
                t.column("current", .integer).notNull().defaults(to: 1)
                t.column("attempts", .integer).notNull().defaults(to: 0)
                t.column("host", .text)
                t.column("pid", .integer)
                t.column("heartbeat", .double)
                t.column("started", .double)
                t.column("finished", .double)
                t.column("seconds", .double)
                t.column("error", .text)
                t.column("slurmJob", .text)
            }
            try db.create(index: "job_by_state", on: "job", columns: ["sweep", "state", "idx"])
        }
        // Two processes opening a new database at once both find it unmigrated; the second
        // one's CREATE then fails. Its retry finds the migration recorded and does nothing.
        var failure: Error?
        for attempt in 0..<20 {
            do { try m.migrate(db); failure = nil; break } catch {
                failure = error
                usleep(useconds_t(50_000 * (attempt + 1)))
            }
        }
        if let failure { throw SweepError.database("\(path): \(SweepStore.describe(failure))") }
    }

    static func describe(_ e: Error) -> String {
        if let d = e as? DatabaseError { return "SQLite: \(d.message ?? "\(d.resultCode)")" }
        return "\(e)"
    }

    func transaction<T>(_ body: (Database) throws -> T) throws -> T {
        var out: T?
        do {
            try db.inTransaction(.immediate) { d in out = try body(d); return .commit }
        } catch let e as SweepError { throw e } catch {
            throw SweepError.database("\(path): \(SweepStore.describe(error))")
        }
        return out!
    }

    public static var hostName: String { ProcessInfo.processInfo.hostName }
    public static var now: Double { Date().timeIntervalSince1970 }

    /// Records the sweep and its expansion: new jobs are added as pending, existing ones
    /// keep their state, and jobs no longer in the expansion stop being current. A job the
    /// database calls done whose run folder has no `experiment.json` (deleted, or the disk
    /// was replaced) is pending again; its id is returned, so the run is redone, not trusted.
    @discardableResult
    public func register(sweep: String, file: String, fileHash: String, jobs: [JobRecord]) throws -> [String] {
        var reset: [String] = []
        try transaction { d in
            try d.execute(sql: "INSERT INTO sweep (name, file, fileHash, registered) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET file = excluded.file, fileHash = excluded.fileHash",
                          arguments: [sweep, file, fileHash, SweepStore.now])
            try d.execute(sql: "UPDATE job SET current = 0 WHERE sweep = ?", arguments: [sweep])
            for j in jobs {
                if let old = try JobRecord.fetchOne(d, sql: "SELECT * FROM job WHERE sweep = ? AND id = ?", arguments: [sweep, j.id]) {
                    try d.execute(sql: "UPDATE job SET current = 1, idx = ? WHERE sweep = ? AND id = ?", arguments: [j.idx, sweep, j.id])
                    if old.state == "done" && !FileManager.default.fileExists(atPath: ExperimentSummary.path(run: old.runDir)) {
                        try d.execute(sql: "UPDATE job SET state = 'pending' WHERE sweep = ? AND id = ?", arguments: [sweep, j.id])
                        reset.append(j.id)
                    }
                } else {
                    try j.insert(d)
                }
            }
        }
        return reset
    }

    /// The sweep's current jobs, in expansion order.
    public func jobs(sweep: String) throws -> [JobRecord] {
        try db.read { d in try JobRecord.fetchAll(d, sql: "SELECT * FROM job WHERE sweep = ? AND current = 1 ORDER BY idx", arguments: [sweep]) }
    }

    /// Whether a running job's process is gone: on this host its pid is dead (or a zombie); anywhere,
    /// its heartbeat is older than `staleSeconds`.
    public static func isStale(_ j: JobRecord, now: Double = SweepStore.now) -> Bool {
        guard j.state == "running" else { return false }
        if let hb = j.heartbeat, now - hb > staleSeconds { return true }
        if j.host == hostName, let pid = j.pid { return !processIsAlive(pid_t(pid)) }
        return false
    }

    /// Takes the first pending job (or one whose process died) and marks it running for
    /// `pid` on this host; `index` restricts it to one array index (a Slurm task).
    public func claim(sweep: String, pid: Int, index: Int? = nil, slurmJob: String? = nil) throws -> JobRecord? {
        try transaction { d in
            let now = SweepStore.now
            var candidates = try JobRecord.fetchAll(d, sql: "SELECT * FROM job WHERE sweep = ? AND current = 1 AND state IN ('pending', 'running')" + (index != nil ? " AND idx = ?" : "") + " ORDER BY idx",
                                                    arguments: index.map { [sweep, $0] } ?? [sweep])
            // a requeued Slurm task finds its own earlier attempt still marked running
            candidates = candidates.filter { $0.state == "pending" || SweepStore.isStale($0, now: now) || (slurmJob != nil && $0.slurmJob == slurmJob) }
            guard var j = candidates.first else { return nil }
            j.state = "running"; j.host = SweepStore.hostName; j.pid = pid; j.heartbeat = now; j.started = now
            j.attempts += 1; j.slurmJob = slurmJob ?? j.slurmJob; j.error = nil
            try j.update(d)
            return j
        }
    }

    /// The job's process: its pid and a fresh heartbeat (only while it is still running for us).
    public func heartbeat(sweep: String, id: String, pid: Int) throws {
        try transaction { d in
            try d.execute(sql: "UPDATE job SET heartbeat = ?, pid = ?, host = ? WHERE sweep = ? AND id = ? AND state = 'running'",
                          arguments: [SweepStore.now, pid, SweepStore.hostName, sweep, id])
        }
    }

    /// Ends an attempt: done, or failed with one line of why.
    public func finish(sweep: String, id: String, failed error: String?, seconds: Double) throws {
        try transaction { d in
            try d.execute(sql: "UPDATE job SET state = ?, error = ?, finished = ?, seconds = ? WHERE sweep = ? AND id = ?",
                          arguments: [error == nil ? "done" : "failed", error, SweepStore.now, seconds, sweep, id])
        }
    }

    /// A running job back to pending (its process was asked to stop and checkpointed).
    public func release(sweep: String, id: String) throws {
        try transaction { d in
            try d.execute(sql: "UPDATE job SET state = 'pending', pid = NULL, heartbeat = NULL WHERE sweep = ? AND id = ? AND state = 'running'", arguments: [sweep, id])
        }
    }

    /// Failed jobs (all, or those named) go back to pending; returns how many.
    @discardableResult
    public func retry(sweep: String, ids: [String] = []) throws -> Int {
        try transaction { d in
            let failed = try JobRecord.fetchAll(d, sql: "SELECT * FROM job WHERE sweep = ? AND current = 1 AND state = 'failed'", arguments: [sweep])
            var n = 0
            for var j in failed where ids.isEmpty || ids.contains(j.id) || ids.contains(String(j.idx)) {
                j.state = "pending"; j.error = nil
                try j.update(d); n += 1
            }
            return n
        }
    }
}

public enum SweepError: Error, CustomStringConvertible {
    case database(String), spec(String), job(String)
    public var description: String {
        switch self { case .database(let m), .spec(let m), .job(let m): return m }
    }
}
