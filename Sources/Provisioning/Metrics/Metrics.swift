import CoreMetrics
import Essentials
import Prometheus

/// The service's metrics, counted through swift-metrics into a
/// swift-prometheus registry of its own (not the process-wide default, so
/// that several services in one test process each count their own), and
/// shown from that registry in Prometheus text format.
///
/// Series labelled with a subscription exist from the moment the
/// subscription does and go with it: each scrape reconciles them with the
/// store's subscriptions, which also give the backlog, state and oldest
/// pending delivery, read from counters the store keeps.
final class Metrics: Sendable {
    /// The series of one subscription, by its name.
    private struct SubscriptionSeries {
        let outcomes: [String: CoreMetrics.Counter]
        let deliverySeconds: CoreMetrics.Timer
        let attemptSeconds: CoreMetrics.Timer
        let backlog: CoreMetrics.Gauge
        let up: CoreMetrics.Gauge
        let oldestPendingSeconds: CoreMetrics.Gauge
        /// The scrape during which it was made, so that a scrape does not
        /// remove a subscription that appeared after it read the store.
        let generation: Int

        func destroy() {
            for counter in outcomes.values { counter.destroy() }
            deliverySeconds.destroy()
            attemptSeconds.destroy()
            backlog.destroy()
            up.destroy()
            oldestPendingSeconds.destroy()
        }
    }

    private struct State {
        var subscriptions: [String: SubscriptionSeries] = [:]
        var requests: [RequestKey: CoreMetrics.Counter] = [:]
        var generation = 0
        var tenantsCounted = 0
        var cpuSecondsCounted = 0.0
        var rates: [String: DeliveryRate] = [:]
        /// For the shutdown summary.
        var tenantsAccepted = 0
        var attempts: [String: Int] = [:]
    }

    struct RequestKey: Hashable { let method: String; let route: String; let status: Int }

    static let outcomes = ["delivered", "retry", "failed"]

    /// Seconds from publish to acknowledgement.
    static let latencyBounds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600]
    /// Seconds of one webhook attempt (at most --delivery-timeout).
    static let attemptBounds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    static let families: [String: DescribedPrometheusFactory.Family] = [
        "provisiond_tenants_total": .init(help: "Tenants created."),
        "provisiond_deliveries_total": .init(help: "Webhook attempts by subscription and outcome."),
        "provisiond_delivery_backlog": .init(help: "Pending deliveries by subscription."),
        "provisiond_delivery_seconds": .init(
            help: "Time from publish to acknowledgement, by subscription.", buckets: latencyBounds.map(duration)),
        "provisiond_http_requests_total": .init(help: "HTTP requests answered, by method, route and status."),
        "provisiond_subscription_up": .init(help: "1 if the subscription is up, 0 if it is down or paused."),
        "provisiond_delivery_oldest_pending_seconds": .init(
            help: "Age of the subscription's oldest pending delivery; 0 when none is pending."),
        "provisiond_delivery_attempt_seconds": .init(
            help: "Duration of one webhook attempt, by subscription.", buckets: attemptBounds.map(duration)),
        "provisiond_events_total": .init(help: "Events accepted, by type."),
        "provisiond_build_info": .init(help: "Always 1; the version of this build is in the label."),
        "process_resident_memory_bytes": .init(help: "Resident memory size in bytes."),
        "process_cpu_seconds_total": .init(help: "Total user and system CPU time spent in seconds."),
        "process_open_fds": .init(help: "Number of open file descriptors."),
        "process_start_time_seconds": .init(help: "Start time of the process since unix epoch in seconds."),
    ]

    private static func duration(_ seconds: Double) -> Duration { .microseconds(Int64((seconds * 1_000_000).rounded())) }

    let registry = PrometheusCollectorRegistry()
    private let factory: DescribedPrometheusFactory
    private let state = Locked(State())
    private let tenantsTotal: CoreMetrics.Counter
    private let events: [String: CoreMetrics.Counter]
    private let residentMemory: CoreMetrics.Gauge
    private let cpuSeconds: CoreMetrics.FloatingPointCounter
    private let openFileDescriptors: CoreMetrics.Gauge

    init() {
        let factory = DescribedPrometheusFactory(registry: registry, families: Metrics.families)
        self.factory = factory
        tenantsTotal = CoreMetrics.Counter(label: "provisiond_tenants_total", factory: factory)
        events = Dictionary(uniqueKeysWithValues: EventType.allCases.map {
            ($0.rawValue, CoreMetrics.Counter(label: "provisiond_events_total", dimensions: [("type", $0.rawValue)], factory: factory))
        })
        CoreMetrics.Gauge(label: "provisiond_build_info", dimensions: [("version", ProvisiondVersion.current)], factory: factory).record(1)
        residentMemory = CoreMetrics.Gauge(label: "process_resident_memory_bytes", factory: factory)
        cpuSeconds = CoreMetrics.FloatingPointCounter(label: "process_cpu_seconds_total", factory: factory)
        openFileDescriptors = CoreMetrics.Gauge(label: "process_open_fds", factory: factory)
        CoreMetrics.Gauge(label: "process_start_time_seconds", factory: factory).record(ProcessStats.read()?.startTime ?? 0)
    }

    /// The tenants there are when the service starts; counted on from there.
    func setTenantsTotal(_ count: Int) {
        let more = state.withLock { s in
            defer { s.tenantsCounted = max(s.tenantsCounted, count) }
            return max(0, count - s.tenantsCounted)
        }
        tenantsTotal.increment(by: more)
    }

    /// A tenant created (answered 202): its `tenant.created` event too.
    func tenantCreated() {
        state.withLock { $0.tenantsCounted += 1 }
        tenantsTotal.increment()
        event(.tenantCreated)
    }

    /// An event accepted: committed, to be delivered.
    func event(_ type: EventType) {
        events[type.rawValue]?.increment()
    }

    /// One webhook attempt to the subscription named `subscription`, its
    /// outcome (`delivered`, `retry` or `failed`) and how long it took.
    func delivery(subscription: String, outcome: String, attemptMillis: Int64) {
        let series = state.withLock { s in
            s.attempts[outcome, default: 0] += 1
            if outcome == "delivered" { s.rates[subscription, default: DeliveryRate()].count(atSecond: WallClock.nowMillis() / 1000) }
            return subscriptionSeries(&s, subscription)
        }
        series.outcomes[outcome]?.increment()
        series.attemptSeconds.recordMilliseconds(max(0, attemptMillis))
    }

    /// Acknowledgements per subscription name in the last minute.
    func deliveredLastMinute() -> [String: Int] {
        let second = WallClock.nowMillis() / 1000
        return state.withLock { $0.rates.mapValues { $0.lastMinute(atSecond: second) } }
    }

    /// A delivery acknowledged by the subscription named `subscription`,
    /// `seconds` after its event was published.
    func acknowledged(subscription: String, afterSeconds seconds: Double) {
        let series = state.withLock { subscriptionSeries(&$0, subscription) }
        series.deliverySeconds.recordSeconds(max(0, seconds))
    }

    func request(method: String, route: String, status: Int) {
        let key = RequestKey(method: method, route: route, status: status)
        let counter = state.withLock { s in
            if method == "POST", route == "/tenants", status == 202 { s.tenantsAccepted += 1 }
            if let counter = s.requests[key] { return counter }
            let counter = Counter(
                label: "provisiond_http_requests_total",
                dimensions: [("method", method), ("route", route), ("status", String(status))], factory: factory)
            s.requests[key] = counter
            return counter
        }
        counter.increment()
    }

    /// What this process has counted since it started, for the shutdown
    /// summary: tenants accepted (answered 202) and webhook attempts by
    /// outcome (`delivered`, `retry`, `failed`).
    func runTotals() -> (tenantsAccepted: Int, attempts: [String: Int]) {
        state.withLock { ($0.tenantsAccepted, $0.attempts) }
    }

    /// Methods keep their name; anything else is "other", so clients cannot
    /// grow the metrics without bound by inventing methods.
    static func methodLabel(_ method: String) -> String {
        knownMethods.contains(method) ? method : "other"
    }

    private static let knownMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    /// The subscription's series, made (at 0) if it has none yet.
    private func subscriptionSeries(_ s: inout State, _ name: String) -> SubscriptionSeries {
        if let series = s.subscriptions[name] { return series }
        let labels = [("subscription", name)]
        let series = SubscriptionSeries(
            outcomes: Dictionary(uniqueKeysWithValues: Metrics.outcomes.map {
                ($0, CoreMetrics.Counter(label: "provisiond_deliveries_total", dimensions: labels + [("outcome", $0)], factory: factory))
            }),
            deliverySeconds: CoreMetrics.Timer(label: "provisiond_delivery_seconds", dimensions: labels, factory: factory),
            attemptSeconds: CoreMetrics.Timer(label: "provisiond_delivery_attempt_seconds", dimensions: labels, factory: factory),
            backlog: CoreMetrics.Gauge(label: "provisiond_delivery_backlog", dimensions: labels, factory: factory),
            up: CoreMetrics.Gauge(label: "provisiond_subscription_up", dimensions: labels, factory: factory),
            oldestPendingSeconds: CoreMetrics.Gauge(label: "provisiond_delivery_oldest_pending_seconds", dimensions: labels, factory: factory),
            generation: s.generation)
        s.subscriptions[name] = series
        return series
    }

    /// Call before reading the subscriptions for `render(subscriptions:scrape:)`.
    func beginScrape() -> Int {
        state.withLock { s in
            s.generation += 1
            return s.generation
        }
    }

    /// The exposition text. `subscriptions` are the store's, read after
    /// `beginScrape()` returned `scrape`: the per-subscription series are
    /// made for those that have none and removed for those that are gone.
    /// nil when the store could not be read: the series stay as they were.
    func render(subscriptions: [Subscription]?, scrape: Int, now: Int64 = WallClock.nowMillis()) -> String {
        if let subscriptions { reconcile(subscriptions, scrape: scrape, now: now) }
        if let process = ProcessStats.read() {
            residentMemory.record(process.residentMemoryBytes)
            openFileDescriptors.record(process.openFileDescriptors)
            let more = state.withLock { s in
                defer { s.cpuSecondsCounted = max(s.cpuSecondsCounted, process.cpuSeconds) }
                return max(0, process.cpuSeconds - s.cpuSecondsCounted)
            }
            if more > 0 { cpuSeconds.increment(by: more) }
        }
        return registry.emitToString()
    }

    private func reconcile(_ subscriptions: [Subscription], scrape: Int, now: Int64) {
        state.withLock { s in
            let current = Set(subscriptions.map(\.name))
            for (name, series) in s.subscriptions where !current.contains(name) && series.generation < scrape {
                series.destroy()
                s.subscriptions[name] = nil
                s.rates[name] = nil
            }
            for subscription in subscriptions {
                let series = subscriptionSeries(&s, subscription.name)
                series.backlog.record(subscription.counts.pending)
                series.up.record(subscription.state == "up" ? 1 : 0)
                let oldest = subscription.oldestPendingAt.map { Double(max(0, now - $0)) / 1000 } ?? 0
                series.oldestPendingSeconds.record(oldest)
            }
        }
    }
}
