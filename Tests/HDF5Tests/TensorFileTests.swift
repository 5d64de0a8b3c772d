import Foundation
import HDF5
import NN
import Optim
import Tensor
import XCTest

final class TensorFileTests: XCTestCase {
    var dir: String!

    override func setUp() {
        dir = NSTemporaryDirectory() + "eidetic-h5-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func bytes(_ t: Tensor) -> Data { Data(bytes: t.rawPointer, count: t.count * t.dtype.size) }

    func sampleTree() -> TensorTree {
        let weird = Tensor([Float.nan, .infinity, -.infinity, -0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude], shape: [2, 3])
        return TensorTree([
            ("z.last.weight", Tensor.normal([4, 3, 3, 3], key: RandomKey(seed: 1))),
            ("a.first.bias", Tensor.normal([7], key: RandomKey(seed: 2))),
            ("step", Tensor(scalar: 1234, dtype: .float64)),
            ("special", weird),
            ("double", Tensor.normal([3, 2], key: RandomKey(seed: 3), dtype: .float64)),
            ("empty", Tensor.zeros([0, 5])),
        ])
    }

    func testRoundTripIsBitExactAndOrdered() throws {
        let path = dir + "/ckpt.h5"
        let tree = sampleTree()
        try TensorFile.save(tree, attributes: ["step": .int(1234), "config": .string("{\"lr\": 2e-4}"), "loss": .double(0.125)], to: path)
        let (back, attrs) = try TensorFile.load(path)
        XCTAssertEqual(back.keys, tree.keys)   // stored order, not alphabetical
        for (k, t) in tree {
            XCTAssertEqual(back[k]!.shape, t.shape, k)
            XCTAssertEqual(back[k]!.dtype, t.dtype, k)
            XCTAssertEqual(bytes(back[k]!), bytes(t), "\(k) not bit-exact")
        }
        XCTAssertEqual(attrs["step"], .int(1234))
        XCTAssertEqual(attrs["config"], .string("{\"lr\": 2e-4}"))
        XCTAssertEqual(attrs["loss"], .double(0.125))
    }

    /// The file is plain HDF5: the reference tools read it (h5dump from hdf5-tools, which
    /// `make test` installs; h5py too when present).
    func testStandardToolsReadTheFile() throws {
        let path = dir + "/std.h5"
        try TensorFile.save(sampleTree(), attributes: ["step": .int(7)], to: path)
        let h5dump = ["/usr/bin/h5dump", "/usr/local/bin/h5dump"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let h5dump else { throw XCTSkip("h5dump not installed (apt-get install hdf5-tools)") }
        let out = try run(h5dump, ["-H", path])
        for name in ["z.last.weight", "a.first.bias", "special", "double"] { XCTAssertTrue(out.contains("DATASET \"\(name)\""), "h5dump lacks \(name):\n\(out)") }
        XCTAssertTrue(out.contains("H5T_IEEE_F32LE") && out.contains("H5T_IEEE_F64LE"))
        XCTAssertTrue(out.contains("( 4, 3, 3, 3 )"))
        let values = try run(h5dump, ["-d", "a.first.bias", "-m", "%.9g", path])
        let first = Tensor.normal([7], key: RandomKey(seed: 2)).scalars[0]
        XCTAssertTrue(values.contains(String(format: "%.9g", first)), values)

        if let py = ["/usr/bin/python3", "/usr/local/bin/python3"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }),
           (try? run(py, ["-c", "import h5py"])) != nil {
            let s = try run(py, ["-c", "import h5py,sys; f=h5py.File(sys.argv[1]); print(list(f.keys()), f['z.last.weight'].shape, f.attrs['step'])", path])
            XCTAssertTrue(s.contains("(4, 3, 3, 3)") && s.contains("7"), s)
        }
    }

    func testAtomicWriteKeepsOldFileOnFailure() throws {
        let path = dir + "/ckpt.h5"
        try TensorFile.save(TensorTree([("w", Tensor([1, 2], shape: [2]))]), to: path)
        struct Boom: Error {}
        XCTAssertThrowsError(try writeAtomically(to: path) { tmp in
            try Data("partial".utf8).write(to: URL(fileURLWithPath: tmp))
            throw Boom()
        })
        XCTAssertEqual(try TensorFile.load(path).tree["w"]!.scalars, [1, 2])
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }
        XCTAssertEqual(leftovers, [])
    }

    func testBadFilesGiveClearErrors() throws {
        let junk = dir + "/junk.h5"
        try Data(repeating: 7, count: 100).write(to: URL(fileURLWithPath: junk))
        XCTAssertThrowsError(try TensorFile.load(junk)) { XCTAssertTrue("\($0)".contains(junk), "\($0)") }
        XCTAssertThrowsError(try TensorFile.load(dir + "/missing.h5")) { XCTAssertTrue("\($0)".contains("missing.h5")) }
        // truncated file
        let good = dir + "/good.h5"
        try TensorFile.save(sampleTree(), to: good)
        let data = try Data(contentsOf: URL(fileURLWithPath: good))
        let cut = dir + "/cut.h5"
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: cut))
        XCTAssertThrowsError(try TensorFile.load(cut)) { XCTAssertTrue("\($0)".contains("cut.h5"), "\($0)") }
        // an HDF5 file that is not a tensor file
        let other = dir + "/other.h5"
        let f = try HDF5File.create(other)
        try f.write("x", int64: [1, 2], shape: [2])
        f.flush()
        XCTAssertThrowsError(try TensorFile.load(other)) { XCTAssertTrue("\($0)".contains("not an Eidetic tensor file"), "\($0)") }
    }

    /// A checkpoint of model + optimizer through a file resumes training bit-exactly.
    func testCheckpointThroughFileResumesExactly() throws {
        let x = Tensor.normal([6, 3], key: RandomKey(seed: 5)), y = Tensor.normal([6, 2], key: RandomKey(seed: 6))
        func step(_ m: Linear, _ o: Adam) { let (_, g) = valueAndGradient(of: m) { mseLoss(m(x), y) }; o.update(m, gradients: g) }
        let m1 = Linear(3, 2, key: RandomKey(seed: 4)), o1 = Adam(learningRate: 0.01)
        for _ in 0..<3 { step(m1, o1) }
        let path = dir + "/resume.h5"
        var tree = m1.state().prefixed("model"); tree.merge(o1.stateTree().prefixed("optimizer"))
        try TensorFile.save(tree, to: path)
        for _ in 0..<3 { step(m1, o1) }

        let (loaded, _) = try TensorFile.load(path)
        let m2 = Linear(3, 2, key: RandomKey(seed: 99)), o2 = Adam(learningRate: 0.01)
        try m2.load(loaded.subtree("model")); try o2.load(stateTree: loaded.subtree("optimizer"))
        for _ in 0..<3 { step(m2, o2) }
        XCTAssertEqual(bytes(m1.weight), bytes(m2.weight))
        XCTAssertEqual(bytes(m1.bias!), bytes(m2.bias!))
    }

    @discardableResult
    func run(_ exe: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe; p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let s = String(decoding: data, as: UTF8.self)
        guard p.terminationStatus == 0 else { throw NSError(domain: "run", code: Int(p.terminationStatus), userInfo: [NSLocalizedDescriptionKey: s]) }
        return s
    }
}

/// `processIsAlive` treats a zombie as dead: a killed sweep worker whose runner died too is
/// reparented to PID 1, and where PID 1 does not reap, `kill(pid, 0)` still finds it.
final class ProcessLivenessTests: XCTestCase {
    func testZombieIsNotAlive() throws {
        var pid: pid_t = 0
        let args: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
        defer { for a in args { free(a) } }
        XCTAssertEqual(posix_spawn(&pid, "/bin/true", nil, nil, args, environ), 0)
        XCTAssertTrue(processIsAlive(getpid()))
        // not reaped yet: a zombie once it has exited
        let deadline = Date().addingTimeInterval(10)
        while processIsAlive(pid) && Date() < deadline { usleep(10_000) }
        XCTAssertEqual(kill(pid, 0), 0, "the zombie is still there for kill(pid, 0)")
        XCTAssertFalse(processIsAlive(pid))
        var status: Int32 = 0
        XCTAssertEqual(waitpid(pid, &status, 0), pid)
        XCTAssertFalse(processIsAlive(pid))
    }
}
