import Foundation

/// Minimal SVG line charts for evaluation figures (ROC on log–log axes, extraction curves):
/// dependency-free, deterministic text, readable in any browser.
public struct SVGPlot {
    public struct Series { public var name: String; public var x: [Double]; public var y: [Double]
        public init(name: String, x: [Double], y: [Double]) { self.name = name; self.x = x; self.y = y } }
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var logX = false
    public var logY = false
    public var xRange: ClosedRange<Double>? = nil
    public var yRange: ClosedRange<Double>? = nil
    public var series: [Series] = []
    /// Draw the y = x diagonal (chance line of a ROC).
    public var diagonal = false

    public init(title: String, xLabel: String, yLabel: String) { self.title = title; self.xLabel = xLabel; self.yLabel = yLabel }

    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]

    public func render(width: Double = 480, height: Double = 360) -> String {
        let (l, r, t, b) = (64.0, 16.0, 32.0, 48.0)
        func tx(_ v: Double, _ log: Bool) -> Double { log ? Foundation.log10(max(v, 1e-12)) : v }
        let xs = series.flatMap(\.x).filter { !logX || $0 > 0 }, ys = series.flatMap(\.y).filter { !logY || $0 > 0 }
        let xr = xRange ?? ((xs.min() ?? 0)...(max(xs.max() ?? 1, (xs.min() ?? 0) + 1e-9)))
        let yr = yRange ?? ((ys.min() ?? 0)...(max(ys.max() ?? 1, (ys.min() ?? 0) + 1e-9)))
        let (x0, x1, y0, y1) = (tx(xr.lowerBound, logX), tx(xr.upperBound, logX), tx(yr.lowerBound, logY), tx(yr.upperBound, logY))
        func px(_ v: Double) -> Double { l + (tx(v, logX) - x0) / (x1 - x0) * (width - l - r) }
        func py(_ v: Double) -> Double { height - b - (tx(v, logY) - y0) / (y1 - y0) * (height - t - b) }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        func label(_ v: Double) -> String { v != 0 && (abs(v) < 0.01 || abs(v) >= 10000) ? String(format: "%.0e", v) : String(format: "%g", v) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(f(width / 2))\" y=\"18\" text-anchor=\"middle\" font-size=\"13\">\(escape(title))</text>\n"
        s += "<rect x=\"\(f(l))\" y=\"\(f(t))\" width=\"\(f(width - l - r))\" height=\"\(f(height - t - b))\" fill=\"none\" stroke=\"black\"/>\n"
        func ticks(_ lo: Double, _ hi: Double, _ log: Bool) -> [Double] {
            if log { return stride(from: Foundation.ceil(lo - 1e-9), through: Foundation.floor(hi + 1e-9), by: 1).map { Foundation.pow(10, $0) } }
            let step = niceStep((hi - lo) / 5)
            return stride(from: Foundation.ceil(lo / step) * step, through: hi + step * 1e-6, by: step).map { $0 }
        }
        for v in ticks(x0, x1, logX) {
            s += "<line x1=\"\(f(px(v)))\" y1=\"\(f(height - b))\" x2=\"\(f(px(v)))\" y2=\"\(f(height - b + 4))\" stroke=\"black\"/>"
            s += "<text x=\"\(f(px(v)))\" y=\"\(f(height - b + 16))\" text-anchor=\"middle\">\(label(v))</text>\n"
        }
        for v in ticks(y0, y1, logY) {
            s += "<line x1=\"\(f(l - 4))\" y1=\"\(f(py(v)))\" x2=\"\(f(l))\" y2=\"\(f(py(v)))\" stroke=\"black\"/>"
            s += "<text x=\"\(f(l - 6))\" y=\"\(f(py(v) + 4))\" text-anchor=\"end\">\(label(v))</text>\n"
        }
        s += "<text x=\"\(f(l + (width - l - r) / 2))\" y=\"\(f(height - 10))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        s += "<text transform=\"translate(14,\(f(t + (height - t - b) / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        if diagonal {
            let lo = max(xr.lowerBound, yr.lowerBound), hi = min(xr.upperBound, yr.upperBound)
            s += "<line x1=\"\(f(px(lo)))\" y1=\"\(f(py(lo)))\" x2=\"\(f(px(hi)))\" y2=\"\(f(py(hi)))\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>\n"
        }
        for (k, ser) in series.enumerated() {
            let pts = zip(ser.x, ser.y).filter { (!logX || $0.0 > 0) && (!logY || $0.1 > 0) }
                .map { "\(f(px(min(max($0.0, xr.lowerBound), xr.upperBound)))),\(f(py(min(max($0.1, yr.lowerBound), yr.upperBound))))" }
            let color = SVGPlot.colors[k % SVGPlot.colors.count]
            s += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"\(pts.joined(separator: " "))\"/>\n"
            s += "<text x=\"\(f(l + 8))\" y=\"\(f(t + 14 + Double(k) * 14))\" fill=\"\(color)\">\(escape(ser.name))</text>\n"
        }
        return s + "</svg>\n"
    }

    func niceStep(_ raw: Double) -> Double {
        guard raw > 0 else { return 1 }
        let p = Foundation.pow(10, Foundation.floor(Foundation.log10(raw)))
        for m in [1.0, 2, 2.5, 5, 10] where m * p >= raw { return m * p }
        return 10 * p
    }

    func escape(_ s: String) -> String { s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;") }

    public func write(to path: String) throws { try Data(render().utf8).write(to: URL(fileURLWithPath: path), options: .atomic) }
}
