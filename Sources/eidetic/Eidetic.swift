import ArgumentParser
import Examples
import Foundation
import Tensor

@main
struct Eidetic: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eidetic",
        abstract: "Train small diffusion models and GANs and measure what they memorize.",
        subcommands: [Quickstart.self, Train.self, Sample.self, DataCommand.self, Example.self, Bench.self])
}

/// The main job on an embedded default. Until the diffusion model lands this trains the
/// tiny CNN example end to end and reports its test accuracy.
struct Quickstart: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the embedded default job (the tiny CNN example for now).")

    @Option(help: "Root random seed.") var seed: UInt64 = 0

    func run() throws {
        print("eidetic quickstart: tiny CNN on generated bar images (seed \(seed))")
        print("OpenBLAS: \(BLASThreads.configuration), threads \(BLASThreads.count)")
        let start = Date()
        let (acc, loss) = Examples.trainTinyCNN(seed: seed) { print("  " + $0) }
        print(String(format: "test accuracy %.1f%%  final loss %.4f  (%.1f s)", acc * 100, loss, Date().timeIntervalSince(start)))
        if acc < 0.95 { throw ValidationError("accuracy \(acc) below 95%") }
    }
}

struct Example: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a small training example.")
    enum Name: String, ExpressibleByArgument { case xor, cnn }
    @Argument(help: "xor or cnn") var name: Name
    @Option(help: "Root random seed.") var seed: UInt64 = 0

    func run() throws {
        switch name {
        case .xor:
            let (loss, p) = Examples.xor(seed: seed)
            print(String(format: "XOR loss %.5f  predictions %@", loss, p.map { String(format: "%.3f", $0) }.joined(separator: " ")))
        case .cnn:
            let (acc, loss) = Examples.trainTinyCNN(seed: seed) { print($0) }
            print(String(format: "test accuracy %.2f%%  final loss %.4f", acc * 100, loss))
        }
    }
}
