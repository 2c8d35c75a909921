import CoreMetrics
import Prometheus
import Synchronization

/// A metric family: name, `counter`/`gauge`/`histogram`, help text, and for a histogram its bucket bounds.
public struct MetricFamily: Sendable {
    /// The family's name (`sitroom_...`; a counter's ends in `_total`).
    public var name: String
    /// `counter`, `gauge` or `histogram` (the `# TYPE` line).
    public var type: String
    /// The `# HELP` line's text.
    public var help: String
    /// A histogram's upper bounds (`le`), ascending, `+Inf` implied; empty for other types.
    public var buckets: [Double]

    /// A family as the catalog lists it; `buckets` only for a histogram.
    public init(name: String, type: String, help: String, buckets: [Double] = []) {
        self.name = name
        self.type = type
        self.help = help
        self.buckets = buckets
    }
}

/// The metrics of one process (SPEC §9), recorded through swift-metrics (`Counter`, `Recorder`, `Meter`) into a
/// swift-prometheus `PrometheusCollectorRegistry` of its own, whose text (Prometheus exposition format 0.0.4) the
/// process writes as a file for node_exporter's textfile collector.
///
/// Each instance has its own registry and hands swift-metrics its handlers explicitly (`factory:`), so nothing is
/// global: unit tests make as many registries as they like in one process, and `MetricsSystem` is never
/// bootstrapped. The handlers are made through the registry with the family's help text (swift-prometheus'
/// `PrometheusMetricsFactory` registers every family with an empty one, and the two must agree), and destroyed
/// through that factory, which unregisters them.
///
/// Counters and histograms are moved by events; a counter series exists from its first event, or from
/// ``increment(_:_:by:)`` with 0 for label values known in advance, so `increase()` sees the first event.
/// Counters start at zero with each process, as Prometheus' `rate()` and `increase()` expect. Gauges read from
/// state are set with ``setGauges(_:_:)`` just before the text is made. Swift-prometheus emits families in its
/// registry's order, not the catalog's; each family's `# HELP` and `# TYPE` come once, before its samples.
open class MetricsRegistry: @unchecked Sendable {
    // Why @unchecked Sendable is sound: every stored property is Sendable (the handles sit in a Mutex); the class
    // is open only so that sitroomd's and sitroom-intake's registries add their event methods.
    /// The swift-prometheus registry holding every series.
    public let prometheus: PrometheusCollectorRegistry
    /// Destroys this registry's swift-metrics handlers (unregistering their series from ``prometheus``).
    public let factory: PrometheusMetricsFactory
    private let families: [String: MetricFamily]
    private let handles = Mutex(Handles())

    private struct Series: Hashable {
        var name: String
        /// Label names and values, alternating, in the family's order.
        var labels: [String]

        init(_ name: String, _ labels: [(String, String)]) {
            self.name = name
            self.labels = labels.flatMap { [$0.0, $0.1] }
        }
    }

    private struct Handles {
        var counters: [Series: CoreMetrics.Counter] = [:]
        var recorders: [Series: Recorder] = [:]
        /// Gauge series by family name, then by label names and values.
        var meters: [String: [[String]: Meter]] = [:]
    }

    /// - Parameter families: every family the process writes. Histograms exist (empty) from here on, counters from
    ///   their first ``increment(_:_:by:)``, gauges from their first ``setGauges(_:_:)``.
    public init(families: [MetricFamily]) {
        let prometheus = PrometheusCollectorRegistry()
        self.prometheus = prometheus
        self.factory = PrometheusMetricsFactory(registry: prometheus)
        self.families = Dictionary(families.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for family in families where family.type == "histogram" { _ = recorder(family.name) }
    }

    private func descriptor(_ name: String, _ type: String) -> MetricNameDescriptor {
        let family = families[name]
        assert(family?.type == type, "\(name) is not a \(type) of the catalog")
        // An empty unit: the descriptor's name is then exactly `name`.
        return MetricNameDescriptor(metricName: name, unitName: "", helpText: family?.help ?? "")
    }

    private func counter(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Counter {
        let series = Series(name, labels)
        return handles.withLock { handles in
            if let counter = handles.counters[series] { return counter }
            let handler = prometheus.makeCounter(descriptor: descriptor(name, "counter"), labels: labels)
            let counter = CoreMetrics.Counter(label: name, dimensions: labels, handler: handler, factory: factory)
            handles.counters[series] = counter
            return counter
        }
    }

    private func recorder(_ name: String) -> Recorder {
        let series = Series(name, [])
        return handles.withLock { handles in
            if let recorder = handles.recorders[series] { return recorder }
            let handler = prometheus.makeValueHistogram(
                descriptor: descriptor(name, "histogram"),
                labels: [],
                buckets: families[name]?.buckets ?? []
            )
            let recorder = Recorder(label: name, dimensions: [], aggregate: true, handler: handler, factory: factory)
            handles.recorders[series] = recorder
            return recorder
        }
    }

    /// Adds `amount` to a counter series; 0 makes the series exist, so `increase()` sees its first event.
    /// - Parameters:
    ///   - name: the family's name (ending in `_total`), a counter of the catalog.
    ///   - labels: its labels, in the family's order.
    ///   - amount: at least 0.
    public func increment(_ name: String, _ labels: [(String, String)] = [], by amount: Int = 1) {
        counter(name, labels).increment(by: amount)
    }

    /// Records one observation in a histogram of the catalog (unlabeled), into the catalog's buckets.
    public func observe(_ name: String, _ value: Double) {
        recorder(name).record(value)
    }

    /// Sets the series of a gauge family to exactly `series`: each given one to its value, and the family's other
    /// series (a removed host, say) are unregistered, so they leave the file.
    /// - Parameters:
    ///   - name: a gauge of the catalog.
    ///   - series: label pairs (in the family's order) and value of each series.
    public func setGauges(_ name: String, _ series: [(labels: [(String, String)], value: Double)]) {
        handles.withLock { handles in
            let old = handles.meters[name] ?? [:]
            var new: [[String]: Meter] = [:]
            new.reserveCapacity(series.count)
            for (labels, value) in series {
                let key = Series(name, labels).labels
                let meter =
                    new[key] ?? old[key]
                    ?? Meter(
                        label: name,
                        dimensions: labels,
                        handler: prometheus.makeGauge(descriptor: descriptor(name, "gauge"), labels: labels),
                        factory: factory
                    )
                meter.set(value)
                new[key] = meter
            }
            for (key, meter) in old where new[key] == nil { meter.destroy() }
            handles.meters[name] = new
        }
    }

    /// Sets the only series of a gauge family, with labels.
    public func setGauge(_ name: String, _ labels: [(String, String)], _ value: Double) {
        setGauges(name, [(labels, value)])
    }

    /// Sets the only series of an unlabeled gauge family.
    public func setGauge(_ name: String, _ value: Double) {
        setGauges(name, [([], value)])
    }

    /// The registry's text: Prometheus exposition format 0.0.4, UTF-8, from swift-prometheus' `emit(into:)`.
    public func emit() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 << 10)
        prometheus.emit(into: &buffer)
        return buffer
    }
}
