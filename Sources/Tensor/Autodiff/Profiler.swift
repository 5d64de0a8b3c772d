import Dispatch

/// Wall time per op kind, for finding where a training step goes (`eidetic bench unet
/// --profile`). Off by default; when on, the time between consecutive recorded ops is
/// charged to the later op (its forward kernel), and each backward rule's time to "∂op".
public enum Profiler {
    nonisolated(unsafe) public static var enabled = false
    nonisolated(unsafe) static var seconds: [String: Double] = [:]
    nonisolated(unsafe) static var counts: [String: Int] = [:]
    nonisolated(unsafe) static var last: UInt64 = 0

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    public static func reset() { seconds = [:]; counts = [:]; last = now() }

    nonisolated(unsafe) public static var detailed = false

    static func name(_ op: Op) -> String {
        if detailed, case .conv2d(let g) = op {
            return "conv2d \(g.channels)@\(g.height) k\(g.kernelH)s\(g.stride)"
        }
        if detailed, case .convTranspose2d(let g) = op {
            return "convT →\(g.channels)@\(g.height) k\(g.kernelH)s\(g.stride)"
        }
        return String("\(op)".prefix { $0 != "(" })
    }

    static func charge(_ key: String, since start: UInt64) {
        let t = now()
        seconds[key, default: 0] += Double(t - start) / 1e9
        counts[key, default: 0] += 1
        last = t
    }

    /// Marks the start of a measured region (e.g. just before the forward pass).
    public static func mark() { last = now() }

    /// Op kinds sorted by total time: (name, seconds, calls).
    public static func report() -> [(String, Double, Int)] {
        seconds.map { ($0.key, $0.value, counts[$0.key] ?? 0) }.sorted { $0.1 > $1.1 }
    }
}
