import CoreMetrics
import Prometheus

/// A swift-metrics factory over a swift-prometheus registry that registers
/// each family with its HELP text and its buckets. swift-prometheus's own
/// `PrometheusMetricsFactory` registers every family with an empty HELP,
/// which `promtool check metrics` reports ("no help text"), so this one goes
/// through the registry's descriptor API instead.
struct DescribedPrometheusFactory: MetricsFactory {
    struct Family: Sendable {
        let help: String
        /// For a timer (a histogram of durations); empty for other kinds.
        var buckets: [Duration] = []
    }

    let registry: PrometheusCollectorRegistry
    let families: [String: Family]

    private func descriptor(_ label: String) -> MetricNameDescriptor {
        guard let family = families[label] else {
            preconditionFailure("metric \(label) has no description")
        }
        return MetricNameDescriptor(metricName: label, unitName: "", helpText: family.help)
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    /// Gauges only: no family here is a histogram of plain values.
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        precondition(!aggregate, "metric \(label): value histograms are not described here")
        return registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(descriptor: descriptor(label), labels: dimensions, buckets: families[label]!.buckets)
    }

    func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }
}
