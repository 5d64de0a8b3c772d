import Data
import Evaluation
import Foundation
import HDF5
import Tensor
import XCTest

/// Leave-one-model-out LiRA must not leak the answer: with each example in exactly K/2 of
/// K models, the shadows of a target hold K/2 − 1 IN copies when the target trained on the
/// example and K/2 when it did not, and fitting those sets untrimmed gave AUC ≈ 0.42 (K = 4)
/// and 0.48 (K = 16) on signals with no membership effect at all. Every test here goes through
/// `eval mia --signals` (`MembershipReport.fromSignalsFile`, what the CLI calls), on HDF5
/// files written like any other tool would.
final class LiRAFairnessTests: XCTestCase {
    var dir: String!
    override func setUp() { dir = NSTemporaryDirectory() + "eidetic-lira-\(UUID().uuidString)"; try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func gaussian(_ s: inout RandomStream) -> Double {
        let u1 = max(s.nextUniform(), 1e-300), u2 = s.nextUniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }

    /// Signals of a world where examples differ in difficulty (mean ~ N(0, 1)) and in noise
    /// (σ_i = 0.2·e^(0.4 z)), models differ by an offset (sd `offsets`: seeds shift a model's
    /// overall loss), each (model, example) has its own noise and each query a little more;
    /// training on an example adds `effect`.
    func world(keep: [[Bool]], queries: Int, seed: UInt64, effect: Double = 0, offsets: Double = 0.3) -> MembershipSignals {
        let k = keep.count, n = keep[0].count
        var s = RandomStream(key: RandomKey(seed: seed).fold("lira-world"))
        let difficulty = (0..<n).map { _ in gaussian(&s) }
        let noise = (0..<n).map { _ in 0.2 * exp(0.4 * gaussian(&s)) }
        let offset = (0..<k).map { _ in offsets * gaussian(&s) }
        var values: [Double] = []
        for m in 0..<k {
            for i in 0..<n {
                let base = difficulty[i] + offset[m] + noise[i] * gaussian(&s) + (keep[m][i] ? effect : 0)
                for _ in 0..<queries { values.append(base + 0.5 * noise[i] * gaussian(&s)) }
            }
        }
        return MembershipSignals(models: k, examples: n, queries: queries, values: values, keep: keep)
    }

    struct Outcome { var auc: Double; var low: Double; var high: Double }

    /// AUCs of every attack on `repeats` null worlds with balanced keep matrices, through signal files.
    func nullOutcomes(models k: Int, examples n: Int, repeats: Int, perQuery: Bool = false, offsets: Double, bootstrap: Int) throws
        -> (outcomes: [MembershipAttack: [Outcome]], skipped: Set<String>) {
        var outcomes: [MembershipAttack: [Outcome]] = [:]
        var skipped = Set<String>()
        for r in 0..<repeats {
            let keep = try MembershipPlan.balancedKeep(models: k, examples: n, seed: UInt64(100 * k + r))
            let file = dir + "/null-k\(k)-r\(r)\(perQuery ? "-pq" : "")-o\(offsets).h5"
            try MembershipReport.writeSignalsFile(world(keep: keep, queries: 2, seed: UInt64(1000 * k + r), offsets: offsets), to: file)
            let report = try MembershipReport.fromSignalsFile(file, perQuery: perQuery, bootstrap: bootstrap)
            for result in report.results {
                outcomes[result.attack, default: []].append(Outcome(auc: result.metrics.auc.value, low: result.metrics.auc.low, high: result.metrics.auc.high))
            }
            skipped.formUnion(report.skipped.keys)
        }
        return (outcomes, skipped)
    }

    /// Runs every (K, per-query) case on null worlds and checks each attack's mean AUC over the
    /// repeats against 0.5 (within 3.5 standard errors) and, with `coverage`, that 0.5 lies in
    /// the bootstrap interval in all but at most 2 of the 16 repeats (for exact 95 % intervals,
    /// 3 or more misses of 16 happen by chance 4 % of the time).
    func checkNull(offsets: Double, coverage: Bool) throws {
        let repeats = 16
        var table: [String] = []
        for (k, perQuery) in [(4, false), (8, false), (16, false), (8, true)] {
            let (outcomes, skipped) = try nullOutcomes(models: k, examples: 256, repeats: repeats, perQuery: perQuery, offsets: offsets, bootstrap: coverage ? 100 : 0)
            if k == 4 {
                XCTAssertEqual(skipped, ["online", "offline"])
                XCTAssertEqual(Set(outcomes.keys), [.globalThreshold, .onlineFixedVariance, .offlineFixedVariance])
            } else {
                XCTAssertEqual(skipped, [])
                XCTAssertEqual(Set(outcomes.keys), Set(MembershipAttack.allCases))
            }
            for attack in MembershipAttack.allCases {
                guard let list = outcomes[attack] else { continue }
                XCTAssertEqual(list.count, repeats)
                let aucs = list.map(\.auc)
                let mean = aucs.reduce(0, +) / Double(repeats)
                let sd = (aucs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(repeats - 1)).squareRoot()
                let covered = list.filter { $0.low <= 0.5 && 0.5 <= $0.high }.count
                let label = "K = \(k)\(perQuery ? " per-query" : "") \(attack.rawValue)"
                table.append(String(format: "%@: AUC %.4f ± %.4f (sd over %d, z = %+.1f)", label, mean, sd, repeats, (mean - 0.5) / (sd / Double(repeats).squareRoot()))
                             + (coverage ? ", 0.5 in the interval \(covered)/\(repeats)" : ""))
                XCTAssertLessThanOrEqual(abs(mean - 0.5), 3.5 * sd / Double(repeats).squareRoot(), "\(label): mean AUC \(mean) ± \(sd) is not chance")
                if coverage {
                    XCTAssertGreaterThanOrEqual(covered, repeats - 2, "\(label): 0.5 outside the bootstrap interval in \(repeats - covered) of \(repeats) repeats")
                }
            }
        }
        print("null signals, model offsets sd \(offsets), balanced keep, 256 examples, 2 queries:\n  " + table.joined(separator: "\n  "))
    }

    /// On null signals (per-example difficulty and noise, nothing depending on the keep
    /// matrix) with a balanced keep matrix, every attack that can run has AUC 0.5 at K = 4, 8
    /// and 16, queries averaged or fitted one by one: the mean over 16 repeats is within 3.5
    /// standard errors of 0.5 and 0.5 lies in the bootstrap interval in at least 14 of 16
    /// repeats. At K = 4 the trimmed sets hold one IN and one OUT shadow, so the
    /// per-example-variance variants are skipped (a variance of one value) and the
    /// fixed-variance ones run.
    func testNullSignalsGiveChanceForEveryAttackAndModelCount() throws {
        try checkNull(offsets: 0, coverage: true)
    }

    /// The same when models differ by an overall offset (sd 0.3, more than the per-example
    /// noise): still chance on average. Only the mean is checked: the bootstrap resamples
    /// examples, not models, so its interval leaves out model-to-model variation and is too
    /// narrow here (K = 8 online: 0.5 inside in 12 of 16 repeats).
    func testNullSignalsWithModelOffsetsGiveChanceOnAverage() throws {
        try checkNull(offsets: 0.3, coverage: false)
    }

    /// A planted separation (members +0.5, per-model noise ≈ 0.2, difficulty spread 1) is
    /// recovered: the calibrated attacks come near the ideal Φ(0.5 / (0.2·√2)) ≈ 0.96 (0.92 to
    /// 0.94 at K = 16, 0.81 at K = 4) while the global threshold drowns in the difficulty spread; a loss file (lower = member,
    /// said by its `direction` attribute) gives the same numbers; per-query fits agree.
    func testPlantedSeparationIsRecovered() throws {
        let keep = try MembershipPlan.balancedKeep(models: 16, examples: 300, seed: 4)
        let s = world(keep: keep, queries: 2, seed: 77, effect: 0.5, offsets: 0)
        let file = dir + "/planted.h5"
        try MembershipReport.writeSignalsFile(s, to: file)
        let r = try MembershipReport.fromSignalsFile(file, bootstrap: 50)
        var auc: [MembershipAttack: Double] = [:]
        for result in r.results { auc[result.attack] = result.metrics.auc.value }
        XCTAssertEqual(Set(auc.keys), Set(MembershipAttack.allCases))
        print("planted, K = 16: " + MembershipAttack.allCases.map { String(format: "%@ %.3f", $0.rawValue, auc[$0]!) }.joined(separator: ", "))
        XCTAssertGreaterThan(auc[.online]!, 0.88)
        XCTAssertGreaterThan(auc[.onlineFixedVariance]!, 0.9)
        XCTAssertGreaterThan(auc[.offline]!, 0.85)
        XCTAssertGreaterThan(auc[.offlineFixedVariance]!, 0.85)
        XCTAssertLessThan(auc[.globalThreshold]!, 0.75)
        XCTAssertGreaterThan(auc[.globalThreshold]!, 0.55)
        for result in r.results where result.attack.usesShadows {
            XCTAssertEqual(result.shadows, ShadowSets(inShadows: result.attack.usesInShadows ? 7 : 0, outShadows: 7))
            XCTAssertGreaterThan(result.metrics.auc.low, 0.8)
        }
        XCTAssertEqual(r.signalsFile?.membersPerExample, [8, 8])
        XCTAssertEqual(r.signalsFile?.examplesPerModel, [150, 150])
        XCTAssertEqual(r.results[0].metrics.trials, 16 * 300)

        // losses: the same matrix negated, marked lower-is-member
        let losses = MembershipSignals(models: s.models, examples: s.examples, queries: s.queries, values: s.values.map { -$0 }, keep: s.keep)
        let lossFile = dir + "/losses.h5"
        try MembershipReport.writeSignalsFile(losses, direction: .lowerIsMember, to: lossFile)
        let l = try MembershipReport.fromSignalsFile(lossFile, bootstrap: 50)
        XCTAssertEqual(l.signalsFile?.direction, .lowerIsMember)
        XCTAssertEqual(l.signalsFile?.directionSource, "file attribute")
        for (a, b) in zip(r.results, l.results) { XCTAssertEqual(a.metrics.auc.value, b.metrics.auc.value, accuracy: 1e-12, a.attack.rawValue) }

        // per-query fits (the reference code's way)
        let p = try MembershipReport.fromSignalsFile(file, perQuery: true, bootstrap: 0)
        XCTAssertFalse(p.averageQueries)
        XCTAssertGreaterThan(p.results.first { $0.attack == .onlineFixedVariance }!.metrics.auc.value, 0.88)

        // K = 4: the fixed-variance variants still work with one IN and one OUT shadow
        let small = try MembershipPlan.balancedKeep(models: 4, examples: 300, seed: 4)
        try MembershipReport.writeSignalsFile(world(keep: small, queries: 1, seed: 78, effect: 0.5, offsets: 0), to: dir + "/k4.h5")
        let k4 = try MembershipReport.fromSignalsFile(dir + "/k4.h5", bootstrap: 0)
        XCTAssertEqual(Set(k4.skipped.keys), ["online", "offline"])
        XCTAssertTrue(k4.skipped["online"]!.contains("online-fixed-variance"), k4.skipped["online"]!)
        print("planted, K = 4: " + k4.results.map { String(format: "%@ %.3f", $0.attack.rawValue, $0.metrics.auc.value) }.joined(separator: ", "))
        XCTAssertGreaterThan(k4.results.first { $0.attack == .onlineFixedVariance }!.metrics.auc.value, 0.8)
        XCTAssertGreaterThan(k4.results.first { $0.attack == .offlineFixedVariance }!.metrics.auc.value, 0.75)
    }

    /// Trimming: every (target, example) gets the same IN and OUT counts, the minimum over
    /// examples of c_i − 1 and K − c_i − 1, whether or not the target trained on the example;
    /// offline uses no IN shadows; the global threshold none at all.
    func testShadowSetsAreTrimmedToCommonSizes() throws {
        // K = 6; example 0 in 2 models, example 1 in 4, example 2 in 3
        let keep = [[true, true, true], [true, true, false], [false, true, true], [false, true, false], [false, false, true], [false, false, false]]
        var st = RandomStream(key: RandomKey(seed: 3))
        let s = MembershipSignals(models: 6, examples: 3, queries: 1, values: (0..<18).map { _ in gaussian(&st) }, keep: keep)
        XCTAssertEqual(s.memberCounts, [2, 4, 3])
        XCTAssertEqual(try MembershipAttack.onlineFixedVariance.shadowSets(s), ShadowSets(inShadows: 1, outShadows: 1))
        XCTAssertEqual(try MembershipAttack.offlineFixedVariance.shadowSets(s), ShadowSets(inShadows: 0, outShadows: 1))
        XCTAssertEqual(try MembershipAttack.globalThreshold.shadowSets(s), ShadowSets(inShadows: 0, outShadows: 0))
        XCTAssertThrowsError(try MembershipAttack.online.shadowSets(s)) { XCTAssertTrue("\($0)".contains("example 1 is left out by only 2 of 6 models"), "\($0)") }
        XCTAssertThrowsError(try MembershipAttack.online.shadowSets(MembershipSignals(models: 6, examples: 2, queries: 1, values: [Double](repeating: 0, count: 12),
                                                                                      keep: keep.map { Array($0.prefix(1)) + [$0[0]] }))) {
            XCTAssertTrue("\($0)".contains("example 0 is in only 2 of 6 models") && "\($0)".contains("1 IN shadow(s)"), "\($0)")
        }
        XCTAssertThrowsError(try MembershipAttack.offline.shadowSets(s)) { XCTAssertTrue("\($0)".contains("example 1 is left out by only 2 of 6 models"), "\($0)") }
        // online-fixed-variance with 1 IN / 1 OUT: μ_in and μ_out are the first IN and OUT shadow in model order
        let scores = try MembershipAttack.onlineFixedVariance.score(s, target: 0)
        XCTAssertEqual(scores.count, 3)
        // offline-fixed-variance, target 5 (trained on nothing): example 2's kept OUT shadow is model 1
        let off = try MembershipAttack.offlineFixedVariance.leaveOneModelOut(s, targets: [5])
        XCTAssertEqual(off.shadows, ShadowSets(inShadows: 0, outShadows: 1))
        XCTAssertEqual(off.scores.count, 3)
        // balanced K = 16: 7 and 7 for every target
        let b = MembershipSignals(models: 16, examples: 10, queries: 1, values: [Double](repeating: 0, count: 160),
                                  keep: try MembershipPlan.balancedKeep(models: 16, examples: 10, seed: 1))
        for a in MembershipAttack.allCases where a.usesShadows {
            XCTAssertEqual(try a.shadowSets(b), ShadowSets(inShadows: a.usesInShadows ? 7 : 0, outShadows: 7))
        }
    }

    /// Equal signal settings give the same cache tag whatever the JSON key order they came in.
    func testSignalCacheTagIsCanonical() throws {
        var a = LossSignalConfig()
        a.timesteps = [50, 200]; a.draws = 2; a.flip = true; a.seed = 3; a.batchSize = 64
        let b = try JSONDecoder().decode(LossSignalConfig.self, from: Data(#"{"seed":3,"flip":true,"batchSize":64,"draws":2,"timesteps":[50,200]}"#.utf8))
        XCTAssertEqual(a, b)
        let tag = try MembershipReport.signalCacheTag(signal: a, ids: [1, 5, 9], checkpointStep: 100, weights: "ema")
        XCTAssertEqual(try MembershipReport.signalCacheTag(signal: b, ids: [1, 5, 9], checkpointStep: 100, weights: "ema"), tag)
        XCTAssertEqual(Set(try (0..<32).map { _ in try MembershipReport.signalCacheTag(signal: a, ids: [1, 5, 9], checkpointStep: 100, weights: "ema") }), [tag])
        var c = a; c.seed = 4
        XCTAssertNotEqual(try MembershipReport.signalCacheTag(signal: c, ids: [1, 5, 9], checkpointStep: 100, weights: "ema"), tag)
        XCTAssertNotEqual(try MembershipReport.signalCacheTag(signal: a, ids: [1, 5, 8], checkpointStep: 100, weights: "ema"), tag)
        XCTAssertNotEqual(try MembershipReport.signalCacheTag(signal: a, ids: [1, 5, 9], checkpointStep: 101, weights: "ema"), tag)
        XCTAssertEqual(tag.count, 12)
    }

    /// Output folders: named by the settings beside the file; an existing result is not
    /// overwritten unless forced; explicitly requested attacks that cannot run are errors.
    func testSignalsOutputFoldersAndRequestedAttacks() throws {
        let keep = try MembershipPlan.balancedKeep(models: 4, examples: 20, seed: 2)
        let file = dir + "/sig.h5"
        try MembershipReport.writeSignalsFile(world(keep: keep, queries: 1, seed: 5, effect: 1), to: file)
        let first = try MembershipReport.fromSignalsFile(file, bootstrap: 10)
        let folder = dir + "/eval/mia-sig-all-mean-b10"
        XCTAssertEqual(first.outputs["summary"], folder + "/summary.json")
        for f in ["summary.json", "mia.h5", "roc.svg"] { XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/" + f), f) }
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/summary.json"))) as! [String: Any]
        XCTAssertEqual(json["mode"] as? String, "signals")
        XCTAssertEqual((json["signalsFile"] as? [String: Any])?["sha256"] as? String, first.signalsFile?.sha256)
        XCTAssertNotNil((json["skipped"] as? [String: Any])?["online"])
        XCTAssertEqual(first.signalsFile?.sha256.count, 64)

        XCTAssertThrowsError(try MembershipReport.fromSignalsFile(file, bootstrap: 10)) {
            XCTAssertTrue("\($0)".contains(folder + " exists") && "\($0)".contains("--force"), "\($0)")
        }
        XCTAssertNoThrow(try MembershipReport.fromSignalsFile(file, bootstrap: 10, force: true))
        let other = try MembershipReport.fromSignalsFile(file, attacks: [.offlineFixedVariance], bootstrap: 10)
        XCTAssertEqual(other.outputs["summary"], dir + "/eval/mia-sig-offline-fixed-variance-mean-b10/summary.json")
        XCTAssertEqual(other.results.map(\.attack), [.offlineFixedVariance])
        XCTAssertNotEqual(MembershipReport.signalsOutputFolder(file: file, attacks: nil, direction: .higherIsMember, perQuery: true, bootstrap: 10), folder)
        XCTAssertNotEqual(MembershipReport.signalsOutputFolder(file: file, attacks: nil, direction: .lowerIsMember, perQuery: false, bootstrap: 10), folder)
        let custom = try MembershipReport.fromSignalsFile(file, bootstrap: 10, out: dir + "/custom")
        XCTAssertEqual(custom.outputs["roc"], dir + "/custom/roc.svg")

        // K = 4: online needs per-example variance from 1 IN shadow — asked for explicitly, it is an error naming the file
        XCTAssertThrowsError(try MembershipReport.fromSignalsFile(file, attacks: [.online], bootstrap: 10, out: dir + "/x")) {
            XCTAssertTrue("\($0)".hasPrefix(file + ": online: ") && "\($0)".contains("online-fixed-variance"), "\($0)")
        }
    }

    /// Every malformed input is one error line naming the file (and the dataset), never a crash.
    func testMalformedSignalFilesAreClearErrors() throws {
        func make(_ name: String, _ body: (HDF5File) throws -> Void) throws -> String {
            let path = dir + "/" + name + ".h5"
            let f = try HDF5File.create(path)
            try body(f)
            f.flush()
            return path
        }
        func signals(_ shape: [Int], _ v: Double = 0) -> Tensor { Tensor([Double](repeating: v, count: shape.reduce(1, *)), shape: shape, dtype: .float64) }
        func keep(_ k: Int, _ n: Int) -> [UInt8] { (0..<(k * n)).map { UInt8(($0 / n + $0 % n) % 2) } }
        func expectError(_ path: String, _ fragments: [String], direction: SignalDirection? = nil, line: UInt = #line) {
            XCTAssertThrowsError(try MembershipReport.fromSignalsFile(path, direction: direction, bootstrap: 0, out: dir + "/never"), line: line) { error in
                let s = "\(error)"
                XCTAssertFalse(s.contains("\n"), "not one line: \(s)", line: line)
                XCTAssertTrue(s.contains(path), "does not name the file: \(s)", line: line)
                for f in fragments { XCTAssertTrue(s.contains(f), "'\(f)' not in: \(s)", line: line) }
            }
        }
        expectError(dir + "/absent.h5", ["no such file"])
        let text = dir + "/text.h5"
        try Data("not hdf5".utf8).write(to: URL(fileURLWithPath: text))
        expectError(text, ["HDF5"])
        expectError(try make("nosignals") { try $0.write("keep", uint8: keep(4, 6), shape: [4, 6]) }, ["'signals'", "'keep'"])
        expectError(try make("nokeep") { try $0.write("signals", tensor: signals([4, 6, 1])) }, ["no dataset 'keep'"])
        expectError(try make("rank1") { f in
            try f.write("signals", tensor: signals([24])); try f.write("keep", uint8: keep(4, 6), shape: [4, 6])
        }, ["'signals'", "shape [24]"])
        expectError(try make("oneModel") { f in
            try f.write("signals", tensor: signals([1, 6, 1])); try f.write("keep", uint8: keep(1, 6), shape: [1, 6])
        }, ["'signals'", "1 model(s)"])
        expectError(try make("keepShape") { f in
            try f.write("signals", tensor: signals([4, 6, 2])); try f.write("keep", uint8: keep(6, 4), shape: [6, 4])
        }, ["'keep'", "[6, 4]", "[4, 6]"])
        expectError(try make("nan") { f in
            var v = [Double](repeating: 1, count: 4 * 6 * 2); v[2 * 12 + 3 * 2 + 1] = .nan
            try f.write("signals", tensor: Tensor(v, shape: [4, 6, 2], dtype: .float64)); try f.write("keep", uint8: keep(4, 6), shape: [4, 6])
        }, ["'signals'", "nan", "model 2, example 3, query 1"])
        expectError(try make("inf") { f in
            var v = [Double](repeating: 1, count: 4 * 6); v[5] = -.infinity
            try f.write("signals", tensor: Tensor(v, shape: [4, 6], dtype: .float64)); try f.write("keep", uint8: keep(4, 6), shape: [4, 6])
        }, ["'signals'", "-inf"])
        expectError(try make("keepTwo") { f in
            var k = keep(4, 6); k[7] = 2
            try f.write("signals", tensor: signals([4, 6])); try f.write("keep", uint8: k, shape: [4, 6])
        }, ["'keep'", "model 1, example 1", "0 or 1"])
        expectError(try make("keepNegative") { f in
            var k = keep(4, 6).map(Int64.init); k[0] = -1
            try f.write("signals", tensor: signals([4, 6])); try f.write("keep", int64: k, shape: [4, 6])
        }, ["'keep'", "-1"])
        expectError(try make("keepAllOnes") { f in
            try f.write("signals", tensor: signals([4, 6])); try f.write("keep", uint8: [UInt8](repeating: 1, count: 24), shape: [4, 6])
        }, ["'keep'", "all ones"])
        expectError(try make("keepStrings") { f in
            try f.write("signals", tensor: signals([2, 2])); try f.write("keep", strings: ["a", "b", "c", "d"])
        }, ["'keep'"])
        expectError(try make("badDirection") { f in
            try f.write("signals", tensor: signals([4, 6])); try f.write("keep", uint8: keep(4, 6), shape: [4, 6])
            try f.setAttribute("direction", .string("up"))
        }, ["'direction'", "'up'"])
        let lower = try make("lower") { f in
            try f.write("signals", tensor: signals([4, 6])); try f.write("keep", uint8: keep(4, 6), shape: [4, 6])
            try f.setAttribute("direction", .string("lower-is-member"), on: "signals")
        }
        expectError(lower, ["lower-is-member", "higher-is-member"], direction: .higherIsMember)
        // every example in one model of four: no online attack can run (no IN shadow); offline and the threshold can
        let sparse = try make("sparse") { f in
            try f.write("signals", tensor: Tensor((0..<24).map(Double.init), shape: [4, 6], dtype: .float64))
            try f.write("keep", uint8: (0..<24).map { UInt8($0 / 6 == $0 % 6 % 4 ? 1 : 0) }, shape: [4, 6])
        }
        let r = try MembershipReport.fromSignalsFile(sparse, bootstrap: 0, out: dir + "/sparse-out")
        XCTAssertEqual(r.results.map(\.attack), [.globalThreshold, .offline, .offlineFixedVariance])
        XCTAssertEqual(Set(r.skipped.keys), ["online", "online-fixed-variance"])
        XCTAssertEqual(r.results[1].shadows, ShadowSets(inShadows: 0, outShadows: 2))
        // extreme magnitudes give an error, not a NaN score in the ROC
        let huge = try make("huge") { f in
            try f.write("signals", tensor: Tensor((0..<24).map { $0 / 6 == 0 ? 1e300 : -1e300 }, shape: [4, 6], dtype: .float64))
            try f.write("keep", uint8: keep(4, 6), shape: [4, 6])
        }
        XCTAssertThrowsError(try MembershipReport.fromSignalsFile(huge, attacks: [.onlineFixedVariance], bootstrap: 0, out: dir + "/huge-out")) {
            XCTAssertTrue("\($0)".contains("not a number"), "\($0)")
        }
        // failures leave no folder and no temporary behind
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains("huge-out") || $0.contains("never") }, [])
    }
}
