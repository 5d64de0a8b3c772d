/// Finite-difference gradient checking: compares the tape's gradient of a scalar
/// function with central differences (f(x + h) − f(x − h)) / 2h, in Double.

public struct GradientCheckReport: CustomStringConvertible {
    /// Largest |analytic − numeric| / (atol + rtol·|numeric|) over all elements; ≤ 1 passes.
    public var worstRatio: Double
    public var worstInput: Int
    public var worstIndex: Int
    public var analytic: Double
    public var numeric: Double
    public var passed: Bool { worstRatio <= 1 }
    public var description: String {
        String(format: "worst at input %d element %d: analytic %.10g vs numeric %.10g (ratio %.3g)",
               worstInput, worstIndex, analytic, numeric, worstRatio)
    }
}

/// Checks the gradient of `f` with respect to every element of every tensor in `inputs`
/// (which must be float64). `f` must return a one-element tensor.
public func checkGradient(_ inputs: [Tensor], step h: Double = 1e-6, rtol: Double = 1e-5, atol: Double = 1e-7,
                          _ f: ([Tensor]) -> Tensor) -> GradientCheckReport {
    precondition(inputs.allSatisfy { $0.dtype == .float64 }, "checkGradient needs float64 inputs")
    let (_, analytic) = valueAndGradients(wrt: inputs) { f(inputs) }
    var report = GradientCheckReport(worstRatio: 0, worstInput: -1, worstIndex: -1, analytic: 0, numeric: 0)
    for (k, x) in inputs.enumerated() {
        let p = x.pointer(Double.self)
        let a = analytic[k].pointer(Double.self)
        for i in 0..<x.count {
            let orig = p[i]
            p[i] = orig + h
            let fp = withoutGradient { f(inputs).item }
            p[i] = orig - h
            let fm = withoutGradient { f(inputs).item }
            p[i] = orig
            let numeric = (fp - fm) / (2 * h)
            let ratio = Swift.abs(a[i] - numeric) / (atol + rtol * Swift.abs(numeric))
            if ratio > report.worstRatio || report.worstIndex < 0 {
                report = GradientCheckReport(worstRatio: ratio, worstInput: k, worstIndex: i, analytic: a[i], numeric: numeric)
            }
        }
    }
    return report
}
