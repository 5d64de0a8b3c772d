import ArgumentParser
import Foundation
import Privacy

/// `eidetic privacy`: the RDP accountant of DP-SGD (Poisson-subsampled Gaussian mechanism).
struct PrivacyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "privacy", abstract: "DP-SGD accounting: ε for a noise multiplier, or σ for a target ε (RDP, Poisson sampling).",
        subcommands: [PrivacyEpsilon.self, PrivacySigma.self])
}

/// The options both subcommands share, checked the same way.
struct AccountingOptions: ParsableArguments {
    @Option(help: "Poisson sampling rate q (expected batch size / training-set size), in (0, 1].") var sampleRate: Double
    @Option(help: "Training steps (each one Poisson-sampled batch).") var steps: Int
    @Option(help: "δ of (ε, δ)-DP, in (0, 1) (usually below 1/N).") var delta: Double
    @Option(help: "RDP orders α > 1, comma-separated (default: Opacus's grid, 1 + x/10 for x = 1…99, then 12…63).") var orders: String?
    @Flag(help: "Print one JSON object instead of text.") var json = false

    /// The orders to minimize over.
    var grid: [Double] { orders.map { $0.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) } } ?? RDP.defaultOrders }

    func validate() throws {
        if let orders {
            let parts = orders.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            for p in parts {
                guard let a = Double(p), a.isFinite, a > 1 else { throw ValidationError("--orders: \"\(p)\" is not an order > 1 (comma-separated numbers)") }
            }
        }
        try Check.finite(sampleRate, "--sample-rate", max: 1, above: 0)
        try Check.atLeast(steps, 1, "--steps")
        try Check.finite(delta, "--delta", above: 0)
        guard delta < 1 else { throw ValidationError("--delta must be < 1, got \(delta)") }
    }

    /// The accounting of `steps` steps at (q, σ) over the chosen orders.
    func spent(sigma: Double) -> PrivacySpent {
        PrivacySpent(phases: [(sampleRate, sigma, steps)], delta: delta, orders: grid)
    }

    /// The JSON fields every report carries, after `leading` ones.
    func fields(_ p: PrivacySpent, leading: [(String, Double)] = []) -> [(String, Double)] {
        leading + [("epsilon_improved", p.epsilonImproved), ("epsilon_classic", p.epsilonClassic), ("best_order", p.bestOrder), ("delta", delta)]
    }

    func emit(_ fields: [(String, Double)], text: String) {
        if json {
            let body = fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ")   // shortest round-trip digits
            print("{\(body)}")
        } else {
            print(text)
        }
    }
}

struct PrivacyEpsilon: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "epsilon",
        abstract: "ε after --steps steps at --sample-rate with --noise-multiplier, by both RDP conversions (Balle et al. 2020 'improved', Mironov 2017 'classic'), minimized over the orders.")
    @OptionGroup var options: AccountingOptions
    @Option(help: "Noise multiplier σ (noise std σ·C for clipping norm C), > 0.") var noiseMultiplier: Double

    func validate() throws { try Check.finite(noiseMultiplier, "--noise-multiplier", above: 0) }

    func run() throws {
        let o = options, p = o.spent(sigma: noiseMultiplier)
        o.emit(o.fields(p), text: String(format: "ε = %.4f (improved conversion, Balle et al. 2020; order %g)\nε = %.4f (classic conversion, Mironov 2017; order %g)\nat δ = %g after %d steps, q = %g, σ = %g",
                            p.epsilonImproved, p.bestOrder, p.epsilonClassic, p.bestOrderClassic, o.delta, o.steps, o.sampleRate, noiseMultiplier))
    }
}

struct PrivacySigma: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sigma",
        abstract: "The smallest noise multiplier σ whose ε (improved conversion) is at most --epsilon, by bisection (never above the target).")
    @OptionGroup var options: AccountingOptions
    @Option(help: "Target ε, > 0.") var epsilon: Double

    func validate() throws { try Check.finite(epsilon, "--epsilon", above: 0) }

    func run() throws {
        let o = options
        guard let s = PrivacySpent.sigma(forEpsilon: epsilon, q: o.sampleRate, steps: o.steps, delta: o.delta, orders: o.grid) else {
            throw ValidationError("--epsilon \(epsilon): no noise multiplier up to 1e6 reaches it at q = \(o.sampleRate), \(o.steps) steps, δ = \(o.delta)")
        }
        let p = o.spent(sigma: s)
        o.emit(o.fields(p, leading: [("sigma", s)]), text: String(format: "σ = %.4f gives ε = %.4f ≤ %g (improved conversion; classic %.4f) at δ = %g after %d steps, q = %g",
                            s, p.epsilonImproved, epsilon, p.epsilonClassic, o.delta, o.steps, o.sampleRate))
    }
}
