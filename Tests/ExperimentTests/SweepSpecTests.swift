import Data
import Experiments
import Foundation
import TOML
import XCTest

/// Sweep files: expansion into jobs, and one-line errors naming file, line and key for
/// malformed experiment configs and sweep files.
final class SweepSpecTests: XCTestCase {
    var dir = ""
    override func setUp() {
        dir = NSTemporaryDirectory() + "sweepspec-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        FileManager.default.changeCurrentDirectoryPath(dir)
        try! "[run]\nname = \"e\"\n[train]\nimages = 64\n".write(toFile: "e.toml", atomically: true, encoding: .utf8)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func write(_ name: String, _ text: String) -> String {
        try! text.write(toFile: name, atomically: true, encoding: .utf8)
        return name
    }

    func testGridZipAndRandomAxesExpandInAFixedOrder() throws {
        let f = write("s.toml", """
        [sweep]
        name = "grid"
        base = "e.toml"
        out = "out"
        draws = 3
        seed = 7
        [set]
        train.images = 128
        [[axis]]
        key = "run.seed"
        range = [0, 2]
        [[axis]]
        key = "data.plan_model"
        values = [0, 1, 2]
        zip = "m"
        [[axis]]
        key = "run.name"
        values = ["a", "b", "c"]
        zip = "m"
        [[axis]]
        key = "train.lr"
        log_uniform = [1e-4, 1e-2]
        [[axis]]
        key = "train.batch_size"
        choice = [16, 32]
        """)
        let spec = try SweepSpec.load(file: f)
        let jobs = spec.jobs()
        XCTAssertEqual(jobs.count, 2 * 3 * 3)
        XCTAssertEqual(spec.fixed, ["train.images=128"])
        XCTAssertEqual(spec.replicates, ["run.seed", "data.plan_model", "run.name", "data.subset_seed"])
        let t = try SweepSpec.load(file: write("t.toml", "[sweep]\nname = \"t\"\nbase = \"e.toml\"\n[tables]\nreplicates = [\"run.seed\"]\nconfidence = 0.9\ntop_examples = 3\nexamples = [7]\n"))
        XCTAssertEqual(t.replicates, ["run.seed"]); XCTAssertEqual(t.confidence, 0.9); XCTAssertEqual(t.topExamples, 3); XCTAssertEqual(t.examples, [7])
        // the zipped pair moves together
        for j in jobs {
            let m = j.first { $0.key == "data.plan_model" }!.value.toml, n = j.first { $0.key == "run.name" }!.value.toml
            XCTAssertEqual(["0": "\"a\"", "1": "\"b\"", "2": "\"c\""][m], n)
        }
        // random draws: 3 points, in [1e-4, 1e-2], the same for the same seed, others for another
        let lrs = Set(jobs.map { $0.first { $0.key == "train.lr" }!.value.toml })
        XCTAssertEqual(lrs.count, 3)
        for l in lrs { let v = Double(l)!; XCTAssertTrue(v >= 1e-4 && v <= 1e-2, l) }
        XCTAssertEqual(try SweepSpec.load(file: f).jobs().map { $0.map(\.value.toml) }, jobs.map { $0.map(\.value.toml) })
        let other = try SweepSpec.load(file: f, overrides: ["sweep.seed=8"]).jobs().map { $0.first { $0.key == "train.lr" }!.value.toml }
        XCTAssertNotEqual(Set(other), lrs)
        // the first axis varies slowest
        XCTAssertEqual(jobs[0].first!.value.toml, "0"); XCTAssertEqual(jobs.last!.first!.value.toml, "1")
    }

    func testJobsGetReadableIdsAndConfigsThatDiffer() throws {
        let f = write("s.toml", "[sweep]\nname = \"ids\"\nbase = \"e.toml\"\nout = \"out\"\n[[axis]]\nkey = \"train.lr\"\nvalues = [1e-3, 2e-4]\n")
        let s = try Sweep(file: f)
        s.output = { _ in }
        let jobs = try s.plan()
        XCTAssertEqual(jobs.map(\.id.count), [jobs[0].id.count, jobs[1].id.count])
        XCTAssertTrue(jobs[0].id.hasPrefix("lr0.001-"), jobs[0].id)
        XCTAssertTrue(jobs[1].id.hasPrefix("lr0.0002-"), jobs[1].id)
        XCTAssertEqual(jobs[0].overrideList, ["train.lr=0.001"])
        // planning again keeps the jobs (and their state)
        XCTAssertEqual(try s.plan().map(\.id), jobs.map(\.id))
        XCTAssertEqual(try s.store.jobs(sweep: "ids").map(\.state), ["pending", "pending"])
    }

    /// `[scale.NAME]` tables: `--scale` merges one over the file (set keys, plan keys, an
    /// axis's values) and names the sweep after it; without scales the file runs as written.
    /// A `sweep.base` axis varies the base experiment (P3: a DDPM and a GAN on the same data);
    /// its values must be existing files, given as values.
    /// The membership plan's file is named by its settings: a sweep whose `[plan]` changes
    /// (here its model count, as between two versions of a smoke scale) builds a new plan
    /// instead of reusing the old one, whose keep matrix has the wrong number of models.
    func testThePlanFileIsKeyedByThePlanSettings() throws {
        func path(_ models: Int, pool: Int = 16, set: String = "") throws -> String {
            let f = write("p\(models)-\(pool).toml", "[sweep]\nname = \"p\"\nbase = \"e.toml\"\nout = \"out\"\n\(set)[plan]\npool = \(pool)\nmodels = \(models)\n")
            return try XCTUnwrap(try SweepSpec.load(file: f).planPath)
        }
        let four = try path(4)
        XCTAssertTrue(four.hasPrefix("out/p/plans/membership-") && four.hasSuffix(".json"), four)
        XCTAssertEqual(try path(4), four)
        XCTAssertNotEqual(try path(6), four)
        XCTAssertNotEqual(try path(4, pool: 32), four)
        XCTAssertNotEqual(try path(4, set: "[set]\ndata.file = \"other.h5\"\n"), four)
        XCTAssertEqual(try path(4, set: "[set]\ntrain.images = 32\n"), four, "training settings do not change the plan")
    }

    func testTablesFilesAreCheckedKeyByKey() throws {
        let sweep = write("sw.toml", "[sweep]\nname = \"sw\"\nbase = \"e.toml\"\n")
        XCTAssertTrue(TablesSpec.isTablesFile(write("t0.toml", "[[table]]\nname = \"a\"\nsweeps = [\"\(sweep)\"]\n")))
        XCTAssertFalse(TablesSpec.isTablesFile(sweep))
        let cases: [(String, String, String)] = [
            ("t1.toml", "[[table]]\nsweeps = [\"\(sweep)\"]\n", "t1.toml:1: table[0].name: is required"),
            ("t2.toml", "[[table]]\nname = \"a\"\nsweeps = [\"nope.toml\"]\n", "t2.toml:3: table[0].sweeps: nope.toml: no such file"),
            ("t3.toml", "[[table]]\nname = \"a\"\nsweeps = [\"\(sweep)\"]\nlabels = [\"x\", \"y\"]\n", "t3.toml:4: table[0].labels: gives 2 labels for 1 sweeps"),
            ("t4.toml", "[[table]]\nname = \"a\"\nsweeps = [\"\(sweep)\"]\nfrom = \"roc\"\n", "t4.toml:4: table[0].from: must be one of summary, runs"),
            ("t5.toml", "[[table]]\nname = \"a\"\nsweeps = [\"\(sweep)\"]\n[[table]]\nname = \"a\"\nsweeps = [\"\(sweep)\"]\n", "t5.toml:5: table[1].name: \"a\" names two tables"),
            ("t6.toml", "[[table]]\nname = \"a\"\nsweeps = [\"\(sweep)\"]\ncolour = 1\n", "t6.toml:4: table[0].colour: unknown key"),
        ]
        for c in cases {
            do { _ = try TablesSpec.load(file: write(c.0, c.1)); XCTFail("\(c.0): no error") } catch {
                XCTAssertTrue("\(error)".hasPrefix(c.2), "\(c.0): \(error)\n  expected: \(c.2)")
            }
        }
    }

    func testBaseAxisNamesExistingExperimentFiles() throws {
        _ = write("a.toml", ""); _ = write("b.toml", "")
        let f = write("bases.toml", "[sweep]\nname = \"ab\"\nbase = \"e.toml\"\n[[axis]]\nkey = \"sweep.base\"\nvalues = [\"a.toml\", \"b.toml\"]\n")
        let spec = try SweepSpec.load(file: f)
        XCTAssertEqual(spec.jobs().map { $0.map(\.value.toml) }, [["\"a.toml\""], ["\"b.toml\""]])
        func error(_ text: String) -> String {
            do { _ = try SweepSpec.load(file: write("bad.toml", text)); return "no error" } catch { return "\(error)" }
        }
        let missing = error("[sweep]\nname = \"ab\"\nbase = \"e.toml\"\n[[axis]]\nkey = \"sweep.base\"\nvalues = [\"a.toml\", \"nope.toml\"]\n")
        XCTAssertTrue(missing.contains("nope.toml: no such file"), missing)
        let range = error("[sweep]\nname = \"ab\"\nbase = \"e.toml\"\n[[axis]]\nkey = \"sweep.base\"\nrange = [0, 2]\n")
        XCTAssertTrue(range.contains("sweep.base takes values"), range)
    }

    func testScalesMergeOverTheFileAndNameTheSweep() throws {
        let f = write("scaled.toml", """
        [sweep]
        name = "p1"
        base = "e.toml"
        out = "out"
        [set]
        train.images = 20000
        train.lr = 2e-4
        [[axis]]
        key = "data.subset"
        values = [64, 128, 256, 512, 1024]
        [[axis]]
        key = "run.seed"
        range = [0, 2]
        [scale.smoke]
        set.train.images = 128
        axis."data.subset".range = [16, 48, 16]
        [scale.full]
        sweep.out = "out-full"
        """)
        let smoke = try SweepSpec.load(file: f, scale: "smoke")
        XCTAssertEqual(smoke.name, "p1-smoke"); XCTAssertEqual(smoke.scale, "smoke"); XCTAssertEqual(smoke.directory, "out/p1-smoke")
        XCTAssertEqual(Set(smoke.fixed), ["train.images=128", "train.lr=0.0002"])
        XCTAssertEqual(smoke.jobs().map { $0.map(\.value.toml) }, [["16", "0"], ["16", "1"], ["32", "0"], ["32", "1"]])
        let full = try SweepSpec.load(file: f, scale: "full")
        XCTAssertEqual(full.name, "p1-full"); XCTAssertEqual(full.out, "out-full")
        XCTAssertEqual(Set(full.fixed), ["train.images=20000", "train.lr=0.0002"])
        XCTAssertEqual(full.jobs().count, 10)
        // --set applies over the scale
        XCTAssertEqual(Set(try SweepSpec.load(file: f, overrides: ["set.train.images=256"], scale: "smoke").fixed), ["train.images=256", "train.lr=0.0002"])
        func error(_ file: String, _ scale: String?) -> String {
            do { _ = try SweepSpec.load(file: file, scale: scale); return "no error" } catch { return "\(error)" }
        }
        XCTAssertTrue(error(f, nil).contains("scaled.toml:14: this sweep runs at a scale: pass --scale (smoke, full)"), error(f, nil))
        XCTAssertTrue(error(f, "nightly").contains("--scale nightly: the file's scales are smoke, full"), error(f, "nightly"))
        let plain = write("plain.toml", "[sweep]\nname = \"p\"\nbase = \"e.toml\"\n")
        XCTAssertEqual(try SweepSpec.load(file: plain).name, "p")
        XCTAssertTrue(error(plain, "smoke").contains("--scale smoke: this sweep file has no [scale.*] tables"), error(plain, "smoke"))
        let badAxis = write("bad.toml", "[sweep]\nname = \"b\"\nbase = \"e.toml\"\n[[axis]]\nkey = \"run.seed\"\nvalues = [1]\n[scale.smoke]\naxis.\"run.sed\".values = [2]\n")
        XCTAssertTrue(error(badAxis, "smoke").contains("scale.smoke.axis.\"run.sed\": no [[axis]] has key = \"run.sed\""), error(badAxis, "smoke"))
        // a key the scale misspells is the file's unknown key, as if written there
        let badKey = write("badkey.toml", "[sweep]\nname = \"b\"\nbase = \"e.toml\"\n[scale.smoke]\nsweep.draw = 2\n")
        XCTAssertTrue(error(badKey, "smoke").contains("sweep.draw: unknown key"), error(badKey, "smoke"))
    }

    /// `sweep.extends`: a variant file is the file it extends with its own keys merged over
    /// (sweep keys, [set], axis fields, scale tables), and its hash covers both files, so a
    /// change to either ties new records to it; a cycle, a missing file and a wrong type are
    /// one line each.
    func testAFileExtendingAnotherMergesOverItAndHashesBoth() throws {
        try "[run]\nname = \"e32\"\n[model]\nimage_size = 32\n".write(toFile: "e32.toml", atomically: true, encoding: .utf8)
        let parentText = """
        [sweep]
        name = "p3"
        base = "e.toml"
        out = "out"
        [set]
        train.images = 20000
        train.lr = 2e-4
        [[axis]]
        key = "sweep.base"
        values = ["e.toml", "e.toml"]
        [[axis]]
        key = "run.seed"
        range = [0, 2]
        [scale.smoke]
        set.train.images = 128
        [scale.full]
        set.train.images = 4000
        """
        let parent = write("p3.toml", parentText)
        let child = write("p3-32.toml", """
        [sweep]
        extends = "p3.toml"
        name = "p3-32"
        [set]
        train.lr = 1e-3
        [axis."sweep.base"]
        values = ["e32.toml", "e.toml"]
        [scale.full]
        set.train.batch_size = 16
        """)
        let p = try SweepSpec.load(file: parent, scale: "full")
        let c = try SweepSpec.load(file: child, scale: "full")
        XCTAssertEqual(c.name, "p3-32-full"); XCTAssertEqual(c.out, "out"); XCTAssertEqual(c.file, child)
        XCTAssertEqual(Set(c.fixed), ["train.images=4000", "train.lr=0.001", "train.batch_size=16"])
        XCTAssertEqual(c.jobs().map { $0.map(\.value.toml) }, [["\"e32.toml\"", "0"], ["\"e32.toml\"", "1"], ["\"e.toml\"", "0"], ["\"e.toml\"", "1"]])
        XCTAssertEqual(Set(try SweepSpec.load(file: child, scale: "smoke").fixed), ["train.images=128", "train.lr=0.001"])
        // the parent alone is unchanged by its variant, and its hash is its bytes' as before
        XCTAssertEqual(p.name, "p3-full"); XCTAssertEqual(p.fileHash, SHA256.hex(Array(parentText.utf8)))
        XCTAssertNotEqual(c.fileHash, p.fileHash)
        // editing the parent changes the variant's hash (its records then name another version)
        _ = write(parent, parentText + "\n[scale.night]\nset.train.images = 8000\n")
        XCTAssertNotEqual(try SweepSpec.load(file: child, scale: "full").fileHash, c.fileHash)
        XCTAssertEqual(try SweepSpec.load(file: child, scale: "night").fixed.contains("train.images=8000"), true)
        // a variant's own [[axis]] list replaces the parent's axes
        let own = write("own.toml", "[sweep]\nextends = \"p3.toml\"\nname = \"own\"\n[[axis]]\nkey = \"run.seed\"\nvalues = [5]\n")
        XCTAssertEqual(try SweepSpec.load(file: own, scale: "smoke").jobs().map { $0.map(\.value.toml) }, [["5"]])
        func error(_ file: String) -> String {
            do { _ = try SweepSpec.load(file: file, scale: "full"); return "no error" } catch { return "\(error)" }
        }
        _ = write("a.toml", "[sweep]\nextends = \"b.toml\"\nname = \"a\"\n")
        _ = write("b.toml", "[sweep]\nname = \"b\"\nextends = \"a.toml\"\nbase = \"e.toml\"\n")
        XCTAssertTrue(error("a.toml").contains("b.toml:3: sweep.extends: a.toml extends this file in turn (a.toml → b.toml → a.toml)"), error("a.toml"))
        let missing = write("m.toml", "[sweep]\nname = \"m\"\nextends = \"nope.toml\"\n")
        XCTAssertTrue(error(missing).contains("m.toml:3: sweep.extends: nope.toml: no such file"), error(missing))
        let wrong = write("w.toml", "[sweep]\nextends = 3\n")
        XCTAssertTrue(error(wrong).contains("w.toml:2: sweep.extends: expected the path of a sweep file"), error(wrong))
        let badAxis = write("ba.toml", "[sweep]\nextends = \"p3.toml\"\n[axis.\"run.sed\"]\nvalues = [1]\n")
        XCTAssertTrue(error(badAxis).contains("ba.toml:3: ba.toml (extending p3.toml).axis.\"run.sed\": no [[axis]] has key = \"run.sed\""), error(badAxis))
    }

    /// Acceptance: ≥ 20 malformed configs and sweep files, each one line naming file, line and key.
    func testMalformedFilesAreOneLineNamingFileLineAndKey() {
        let cases: [(name: String, text: String, expect: String)] = [
            ("e1.toml", "[train]\nlrr = 1\n", "e1.toml:2: train.lrr: unknown key"),
            ("e2.toml", "[train]\nlr = \"fast\"\n", "e2.toml:2: train.lr: expected a number"),
            ("e3.toml", "[eval.extraction]\nalpha = 2\n", "e3.toml:2: eval.extraction.alpha: must be ≤ 1"),
            ("e4.toml", "[eval.membership]\nenabled = true\ntimesteps = [5000]\n", "e4.toml:3: eval.membership.timesteps: 5000 is outside the diffusion process"),
            ("e5.toml", "[eval.extraction]\nclique_tiles = 4\n", "e5.toml:2: eval.extraction.clique_tiles: applies only with eval.extraction.clique = true"),
            ("e6.toml", "[eval]\nextraction = true\n", "e6.toml:2: eval.extraction: expected a table"),
            ("e7.toml", "[eval.membership]\nnon_members = 0\n", "e7.toml:2: eval.membership.non_members: must be ≥ 1"),
            ("e8.toml", "[model]\nkind = \"dcgan\"\n[eval.membership]\ndraws = 2\n", "e8.toml:4: eval.membership.draws: applies to diffusion models only"),
            ("e9.toml", "[train]\nbatch_size = [1, 2]\n", "e9.toml:2: train.batch_size: expected an integer"),
            ("e10.toml", "[[train]]\nlr = 1\n", "e10.toml:1: train: expected a table"),
            ("e11.toml", "[data]\nsubset = -1\n", "e11.toml:2: data.subset: must be ≥ 0"),
            ("e12.toml", "[train]\nlr = 1e-3 2\n", "e12.toml:2: unexpected '2'"),
            ("e13.toml", "[eval.membership]\nenabled = yes\n", "e13.toml:2: cannot read value 'yes'"),
            ("e21.toml", "[eval.extraction]\nclique = true\nclique_calibrate = true\n", "e21.toml:3: eval.extraction.clique_calibrate: calibrates δ on the non-member twin's generations; it needs eval.baseline.enabled = true"),
            ("e22.toml", "[eval.extraction]\nclique = true\nclique_threshold = 0.1\nclique_calibrate = true\n[eval.baseline]\nenabled = true\n",
             "e22.toml:4: eval.extraction.clique_calibrate: chooses clique_threshold on the non-member twin; give one or the other"),
            ("s1.toml", "[sweep]\nbase = \"e.toml\"\n", "s1.toml:1: sweep.name: is required"),
            ("s2.toml", "[sweep]\nname = \"a b\"\nbase = \"e.toml\"\n", "s2.toml:2: sweep.name: \"a b\" may hold only"),
            ("s3.toml", "[sweep]\nname = \"s\"\nbase = \"nope.toml\"\n", "s3.toml:3: sweep.base: nope.toml: no such file"),
            ("s4.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\n[[axis]]\nkey = \"run.seed\"\n", "s4.toml:4: axis[0].values: give the axis's values"),
            ("s5.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\n[[axis]]\nkey = \"run.seed\"\nvalues = [1]\nrange = [0, 2]\n", "s5.toml:7: axis[0].range: give one of values and range"),
            ("s6.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\n[[axis]]\nkey = \"seed\"\nvalues = [1]\n", "s6.toml:5: axis[0].key: \"seed\" is not a dotted config key"),
            ("s7.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\n[[axis]]\nkey = \"train.lr\"\nlog_uniform = [1e-4, 1e-2]\n", "s7.toml:6: axis[0].log_uniform: is a random axis, but sweep.draws is 0"),
            ("s8.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\n[[axis]]\nkey = \"run.seed\"\nvalues = [1, 2]\nzip = \"z\"\n[[axis]]\nkey = \"run.name\"\nvalues = [\"a\"]\nzip = \"z\"\n",
             "s8.toml:9: axis[1].zip: \"z\" gives run.name 1 values but run.seed 2"),
            ("s9.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\n[[axis]]\nkey = \"run.seed\"\nvalues = [1]\nvalus = [2]\n", "s9.toml:7: axis[0].valus: unknown key"),
            ("s10.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\nout = \"out\"\n[set]\ntrain.lrr = 1\n", "s10.toml:6: set.train.lrr: unknown key"),
            ("s11.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\nout = \"out\"\n\n[[axis]]\nkey = \"train.lr\"\nvalues = [\"fast\"]\n", "s11.toml:7: axis[0].key \"train.lr\": expected a number"),
            ("s12.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\n[plan]\nmodels = 3\n", "s12.toml:5: plan.models: must be even"),
            ("s13.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\n[lira]\ndraws = 2\n", "s13.toml:4: lira: needs a [plan]"),
            ("s14.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\n[[axis]]\nkey = \"run.seed\"\nrange = [5, 2]\n", "s14.toml:6: axis[0].range: [5, 2] is empty"),
            ("s15.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\n[sett]\nx = 1\n", "s15.toml:4: sett: unknown key"),
            ("s16.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\ndraws = -2\n", "s16.toml:4: sweep.draws: must be ≥ 0"),
            ("s17.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\n[[axis]]\nkey = \"run.seed\"\nvalues = []\n", "s17.toml:6: axis[0].values: must be a non-empty array"),
            ("e14.toml", "[plan]\nkind = \"duplicates\"\nsize = 16\ncopies = [4, 2]\ncanaries = [2]\n", "e14.toml:5: plan.canaries: needs one count per entry of plan.copies"),
            ("e15.toml", "[data]\nsubset = 8\n[plan]\nsize = 16\n", "e15.toml:4: plan.size: chooses the images, but data.subset = 8"),
            ("e16.toml", "[plan]\nkind = \"subset\"\nsize = 16\ncopies = [2]\n", "e16.toml:4: plan.copies: applies to plan.kind = \"duplicates\" only"),
            ("e17.toml", "[plan]\nkind = \"audit\"\nsize = 16\n", "e17.toml:1: plan.canaries: is required for plan.kind = \"audit\""),
            ("e18.toml", "[plan]\nkind = \"audit\"\nsize = 16\ncanaries = 17\n", "e18.toml:4: plan.canaries: 17 canaries exceed plan.size = 16"),
            ("e19.toml", "[eval.audit]\nenabled = true\n", "e19.toml:2: eval.audit.enabled: needs an audit plan"),
            ("e20.toml", "[eval.audit]\ndraws = 2\n", "e20.toml:2: eval.audit.draws: applies only with eval.audit.enabled = true"),
            ("s19.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\n[tables]\nconfidence = 2\n", "s19.toml:5: tables.confidence: must be ≤ 0.999999"),
            ("s20.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\n[outliers]\nneighbors = 5\n", "s20.toml:4: outliers: needs a [lira]"),
            ("s21.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\n[plan]\npool = 16\n[lira]\n[outliers]\nneighbors = 16\n", "s21.toml:8: outliers.neighbors: is 16, but the plan's pool has 16"),
            ("s22.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\n[plan]\npool = 16\n[lira]\n[outliers]\nneighbors = 5\nattack = \"strong\"\n", "s22.toml:9: outliers.attack: must be one of global-threshold, online"),
            ("s23.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\n[plan]\npool = 16\nmodels = 4\n[lira]\n[outliers]\nneighbors = 5\nattack = \"online\"\n", "s23.toml:10: outliers.attack: online needs a plan of ≥ 6 models"),
            ("s24.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\n[inpainting]\ntargets = 4\n", "s24.toml:4: inpainting: needs a [plan]"),
            ("s25.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\n[plan]\npool = 16\n[inpainting]\ncount = 4\nkeep = 5\n", "s25.toml:8: inpainting.keep: is 5, more than the 4 completions"),
            ("s26.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\n[plan]\npool = 16\n[inpainting]\nhidden = \"middle\"\n", "s26.toml:7: inpainting.hidden: must be one of left, right, top, bottom"),
            ("s18.toml", "[sweep]\nname = \"s\"\nbase = \"e.toml\"\n[[axis]]\nkey = \"run.seed\"\nvalues = [1]\n[[axis]]\nkey = \"run.seed\"\nvalues = [2]\n", "s18.toml:8: axis[1].key: \"run.seed\" is swept by two axes"),
        ]
        XCTAssertGreaterThanOrEqual(cases.count, 20)
        for c in cases {
            let f = write(c.name, c.text)
            do {
                if c.name.hasPrefix("e") { _ = try Experiment.load(file: f) } else { let s = try Sweep(file: f); s.output = { _ in }; try s.plan() }
                XCTFail("\(c.name): no error")
            } catch {
                let line = "\(error)"
                XCTAssertTrue(line.hasPrefix(c.expect), "\(c.name): \(line)\n  expected: \(c.expect)")
                XCTAssertFalse(line.contains("\n"), "\(c.name): \(line)")
            }
        }
    }

    /// Several workers opening a database that does not exist yet all get it (the first
    /// creates it; the others must not fail on its tables).
    func testConcurrentFirstOpensOfANewDatabase() throws {
        for round in 0..<5 {
            let path = dir + "/fresh\(round)/sweeps.db"
            let lock = NSLock()
            var errors: [String] = []
            DispatchQueue.concurrentPerform(iterations: 6) { _ in
                do { _ = try SweepStore(path: path) } catch { lock.lock(); errors.append("\(error)"); lock.unlock() }
            }
            XCTAssertEqual(errors, [], "round \(round)")
        }
    }

    /// Many processes' worth of connections claiming from one database: each job once.
    func testConcurrentClaimsTakeEachJobOnce() throws {
        let f = write("s.toml", "[sweep]\nname = \"c\"\nbase = \"e.toml\"\nout = \"out\"\n[[axis]]\nkey = \"run.seed\"\nrange = [0, 40]\n")
        let s = try Sweep(file: f)
        s.output = { _ in }
        try s.plan()
        let lock = NSLock()
        var claimed: [String] = []
        DispatchQueue.concurrentPerform(iterations: 6) { w in
            let store = try! SweepStore(path: s.spec.database)
            while let j = try! store.claim(sweep: "c", pid: Int(getpid())) {
                lock.lock(); claimed.append(j.id); lock.unlock()
                try! store.finish(sweep: "c", id: j.id, failed: w == 0 ? "boom" : nil, seconds: 0.1)
            }
        }
        XCTAssertEqual(claimed.count, 40)
        XCTAssertEqual(Set(claimed).count, 40)
        let failed = try s.store.jobs(sweep: "c").filter { $0.state == "failed" }
        XCTAssertEqual(try s.store.retry(sweep: "c"), failed.count)
        XCTAssertEqual(try s.store.jobs(sweep: "c").filter { $0.state == "pending" }.count, failed.count)
    }
}
