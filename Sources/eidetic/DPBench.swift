import ArgumentParser
import Diffusion
import Foundation
import Models
import NN
import Optim
import Tensor

extension Bench {
    /// The DP-SGD step against the ordinary one on the same U-Net, batch and threads, in one
    /// run, then PyTorch's ordinary, Opacus and torch.func (vmap) steps (bench/bench_dp_torch.py):
    /// ordinary = the summed per-example loss's gradient and Adam; private = per-example
    /// gradients, flat clipping, noise and Adam (`descendPrivately`), on a full batch.
    struct DPBench: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "dp", abstract: "DP-SGD step vs the ordinary step (unet-s, batch 32).")
        @Option(help: "Threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
        @Option(help: "U-Net preset.") var preset: String = "unet-s"
        @Option(help: "Batch size.") var batch: Int = 32
        @Option(help: "Timed steps of each kind (the median is reported).") var steps: Int = 5
        @Option(help: "Python with PyTorch and Opacus for the references (bench/bench_dp_torch.py); \"none\" skips them.")
        var torch: String = "bench/.venv/bin/python"

        func validate() throws {
            try Check.atLeast(threads, 1, "--threads")
            try Check.atLeast(steps, 1, "--steps")
            try Check.atLeast(batch, 1, "--batch")
            guard UNetConfig.preset(preset) != nil else { throw ValidationError("--preset: unknown U-Net preset '\(preset)'") }
        }

        func run() throws {
            Threads.count = threads
            let config = UNetConfig.preset(preset)!
            let model = try UNet(config, key: RandomKey(seed: 1))
            let diffusion = GaussianDiffusion()
            let x0 = Tensor.uniform([batch, config.imageChannels, config.imageSize, config.imageSize], low: -1, high: 1, key: RandomKey(seed: 2))
            let plain = Adam(learningRate: 1e-5), dp = DPOptimizer(Adam(learningRate: 1e-5), clipNorm: 1, noiseMultiplier: 1, expectedBatchSize: Double(batch))
            func loss(_ key: RandomKey) -> Tensor {
                let t = diffusion.randomTimesteps(batch, key: key.fold("t"))
                let noise = Tensor.normal(x0.shape, key: key.fold("noise"))
                return diffusion.perExampleLoss({ model($0, timesteps: $1.map(Double.init)) }, x0: x0, t: t, noise: noise).sum()
            }
            var ordinary: [Double] = [], privateTimes: [Double] = []
            // interleaved, so both see the same machine
            for s in 0..<(steps + 1) {
                let key = RandomKey(seed: 3).fold(UInt64(s))
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = try descend(model, with: plain) { loss(key) * (1 / Double(batch)) }
                let t1 = DispatchTime.now().uptimeNanoseconds
                _ = try descendPrivately(model, with: dp, batch: batch, noiseKey: key.fold("dp")) { loss(key) }
                let t2 = DispatchTime.now().uptimeNanoseconds
                if s > 0 { ordinary.append(Double(t1 - t0) / 1e9); privateTimes.append(Double(t2 - t1) / 1e9) }
            }
            let a = ordinary.sorted()[ordinary.count / 2], b = privateTimes.sorted()[privateTimes.count / 2]
            print(String(format: "{\"name\": \"%@-train-b%d\", \"threads\": %d, \"ordinary_seconds_per_step\": %.4f, \"dp_seconds_per_step\": %.4f, \"dp_over_ordinary\": %.3f}",
                         preset, batch, threads, a, b, b / a))
            print(String(format: "%@ batch %d, %d threads: ordinary step %.1f ms (%.1f img/s), DP-SGD step %.1f ms (%.1f img/s): %.2f× (goal ≤ 1.3×)",
                         preset, batch, threads, a * 1e3, Double(batch) / a, b * 1e3, Double(batch) / b, b / a))
            fflush(stdout)
            // the same model, batch and threads in PyTorch: ordinary, Opacus and torch.func (vmap) steps
            let reference = try TorchReference(torch).run(["bench_dp_torch.py", "--preset", preset, "--batch", String(batch),
                                                           "--threads", String(threads), "--steps", String(steps)], in: "bench")
            guard let o = reference, let ordinaryTorch = o["ordinary_seconds_per_step"] as? Double else { return }
            var parts = [String(format: "PyTorch ordinary %.1f ms", ordinaryTorch * 1e3)]
            for k in ["opacus", "vmap"] {
                if let t = o["\(k)_seconds_per_step"] as? Double {
                    parts.append(String(format: "%@ %.1f ms (%.2f× its ordinary; Eidetic's DP step is %.2f× faster)", k, t * 1e3, t / ordinaryTorch, t / b))
                } else if let e = o["\(k)_error"] as? String {
                    parts.append("\(k): \(e)")
                }
            }
            print(parts.joined(separator: "; "))
        }
    }
}
