import Data
import Diffusion
import Foundation
import Training
import XCTest

/// Long experiments, skipped unless EIDETIC_LONG_TESTS=1 (hours on 2 cores; never in CI).
final class LongTests: XCTestCase {
    var repo: String { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path }

    /// unet-s trained on 64 CIFAR-10 images reproduces them: most of 256 samples have a
    /// training image within normalized ℓ2 < 0.05. Resumable: rerunning continues the run
    /// in results/long-tests/cifar64-memorize.
    func testUNetSMemorizes64CIFARImages() throws {
        guard ProcessInfo.processInfo.environment["EIDETIC_LONG_TESTS"] == "1" else { throw XCTSkip("set EIDETIC_LONG_TESTS=1") }
        let dataset = repo + "/datasets/cifar10.h5"
        if !FileManager.default.fileExists(atPath: dataset) {
            let archive = [ProcessInfo.processInfo.environment["EIDETIC_CIFAR10"], repo + "/../shared/datasets/cifar-10-binary.tar.gz"]
                .compactMap { $0 }.first { FileManager.default.fileExists(atPath: $0) }
            guard let archive else { throw XCTSkip("no CIFAR-10 archive (set EIDETIC_CIFAR10)") }
            let (train, test) = try CIFAR10.load(archive)
            try DatasetFile.write([("train", train), ("test", test)], attributes: ["source": .string("cifar10")], to: dataset)
        }
        // paths in the config are relative to the repository (as for `eidetic train`)
        FileManager.default.changeCurrentDirectoryPath(repo)
        let config = try TrainConfig.load(file: "experiments/cifar64-memorize.toml")
        let dir = "results/long-tests/cifar64-memorize"
        let trainer = try Trainer(config: config, directory: dir)
        try trainer.run()
        let req = SampleRequest(count: 256, batchSize: 128, sampler: config.sample.sampler, useEMA: true)
        let file = try generateSamples(run: RunDirectory(dir), request: req, overwrite: true).file
        let samples = try DatasetFile(file).load("samples")
        let (train, _) = try trainingSet(config)
        let nn = NearestNeighbors.search(queries: samples, references: train, k: 1)
        let order = (0..<samples.count).sorted { nn[$0][0].distance < nn[$1][0].distance }
        try PNG.write(PNG.pairsGrid(order.prefix(64).map { (samples.image($0), train.image(nn[$0][0].index)) },
                                    channels: 3, height: 32, width: 32, pairsPerRow: 8), to: dir + "/samples/nearest-pairs.png")
        let close = nn.filter { $0[0].distance < 0.05 }.count
        print("cifar64: \(close) of 256 samples within normalized ℓ2 < 0.05 of a training image; \(Set(nn.filter { $0[0].distance < 0.05 }.map { $0[0].index }).count) distinct")
        XCTAssertGreaterThan(close, 128)
    }
}
