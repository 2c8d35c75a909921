import Foundation

/// A metric family: name, `counter`/`gauge`/`histogram`, help text.
public struct MetricFamily: Sendable {
    public var name: String
    public var type: String
    public var help: String

    public init(name: String, type: String, help: String) {
        self.name = name
        self.type = type
        self.help = help
    }
}

/// Counters and histograms that events move, kept in memory until a metrics file is written (SPEC §9).
///
/// Why a small hand-written registry rather than swift-metrics with swift-prometheus: most of sitroomd's series
/// are gauges sampled from state at write time (a collector), which swift-metrics' push-style handles do not
/// model; the few counters have fixed names and labels; and the text format for them is a page of code, where
/// the two packages (with swift-atomics) add build time to every clean build. Counters start at zero with each
/// process, which Prometheus' `rate()` and `increase()` expect.
open class MetricsRegistry: @unchecked Sendable {
    // Why @unchecked Sendable is sound: `counters` and `histograms` are only touched with `lock` held.
    private let lock = NSLock()
    private var counters: [String: [Labels: Double]] = [:]
    private var histograms: [String: [Labels: Histogram]] = [:]

    public init() {}

    /// Label names and values of one series, in a fixed order.
    public struct Labels: Hashable, Sendable {
        public var pairs: [(String, String)]
        public init(_ pairs: [(String, String)]) { self.pairs = pairs }
        public static func == (lhs: Labels, rhs: Labels) -> Bool {
            lhs.pairs.count == rhs.pairs.count && zip(lhs.pairs, rhs.pairs).allSatisfy { $0 == $1 }
        }
        public func hash(into hasher: inout Hasher) {
            for (name, value) in pairs {
                hasher.combine(name)
                hasher.combine(value)
            }
        }
    }

    /// Cumulative bucket counts, sum and count of observations.
    public struct Histogram: Sendable, Hashable {
        /// Upper bounds (`le`), ascending; `+Inf` is implied.
        public var bounds: [Double]
        /// Observations `<=` each bound (cumulative).
        public var buckets: [Int]
        public var sum = 0.0
        public var count = 0

        public init(bounds: [Double]) {
            self.bounds = bounds
            self.buckets = Array(repeating: 0, count: bounds.count)
        }

        mutating func observe(_ value: Double) {
            for index in bounds.indices where value <= bounds[index] { buckets[index] += 1 }
            sum += value
            count += 1
        }
    }

    /// Adds `amount` to a counter series (0 makes the series exist, so `increase()` sees its first event).
    /// - Parameters:
    ///   - name: the family's name (ending in `_total`).
    ///   - labels: its labels, in the family's order.
    public func increment(_ name: String, _ labels: [(String, String)] = [], by amount: Double = 1) {
        lock.lock()
        counters[name, default: [:]][Labels(labels), default: 0] += amount
        lock.unlock()
    }

    /// Records one observation in a histogram series.
    public func observe(_ name: String, _ value: Double, bounds: [Double], _ labels: [(String, String)] = []) {
        lock.lock()
        histograms[name, default: [:]][Labels(labels), default: Histogram(bounds: bounds)].observe(value)
        lock.unlock()
    }

    /// A copy of the counters and histograms.
    public func snapshot() -> (counters: [String: [Labels: Double]], histograms: [String: [Labels: Histogram]]) {
        lock.lock()
        defer { lock.unlock() }
        return (counters, histograms)
    }
}

/// Renders the Prometheus text exposition format, version 0.0.4 (prometheus.io "Exposition formats"): `# HELP`
/// and `# TYPE` once per family, then its samples `name{label="value"} value`, label values escaped (`\\`,
/// `\"`, `\n`), help text escaped (`\\`, `\n`).
public struct PrometheusText {
    private var text = ""

    public init() {}

    /// Starts a family.
    public mutating func family(_ family: MetricFamily) {
        text += "# HELP \(family.name) \(Self.escapeHelp(family.help))\n# TYPE \(family.name) \(family.type)\n"
    }

    /// One sample line.
    public mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.map { "\($0.0)=\"\(Self.escapeLabel($0.1))\"" }.joined(separator: ",") + "}"
        }
        text += " \(Self.number(value))\n"
    }

    /// The samples of one histogram series: `_bucket` per bound and `+Inf`, `_sum`, `_count`.
    /// - Parameters:
    ///   - labels: the series' labels (before `le`).
    public mutating func histogram(_ name: String, _ labels: [(String, String)] = [], _ histogram: MetricsRegistry.Histogram) {
        for (bound, count) in zip(histogram.bounds, histogram.buckets) {
            sample(name + "_bucket", labels + [("le", Self.number(bound))], Double(count))
        }
        sample(name + "_bucket", labels + [("le", "+Inf")], Double(histogram.count))
        sample(name + "_sum", labels, histogram.sum)
        sample(name + "_count", labels, Double(histogram.count))
    }

    /// The text so far.
    public var output: String { text }

    /// A sample value as Prometheus writes it: integers without a fraction, `+Inf`, `-Inf`, `NaN`.
    public static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    static func escapeLabel(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    static func escapeHelp(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }
}
