import HTTPServer

/// Counters and histograms kept in memory and shown in Prometheus text format.
public final class Metrics: Sendable {
    private struct State {
        var tenantsTotal = 0
        var deliveries: [DeliveryKey: Int] = [:]
        var requests: [RequestKey: Int] = [:]
        var latencyBuckets = [Int](repeating: 0, count: Metrics.latencyBounds.count)
        var latencyCount = 0
        var latencySum = 0.0
        var rates: [String: DeliveryRate] = [:]
    }

    struct DeliveryKey: Hashable { let subscription: String; let outcome: String }
    struct RequestKey: Hashable { let method: String; let route: String; let status: Int }

    /// Seconds from publish to acknowledgement.
    static let latencyBounds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600]

    private let state = Locked(State())

    public init() {}

    public func setTenantsTotal(_ count: Int) { state.withLock { $0.tenantsTotal = count } }
    public func tenantCreated() { state.withLock { $0.tenantsTotal += 1 } }

    public func delivery(subscription: String, outcome: String) {
        state.withLock { s in
            s.deliveries[DeliveryKey(subscription: subscription, outcome: outcome), default: 0] += 1
            if outcome == "delivered" { s.rates[subscription, default: DeliveryRate()].count(atSecond: WallClock.nowMillis() / 1000) }
        }
    }

    /// Acknowledgements per subscription name in the last minute.
    public func deliveredLastMinute() -> [String: Int] {
        let second = WallClock.nowMillis() / 1000
        return state.withLock { $0.rates.mapValues { $0.lastMinute(atSecond: second) } }
    }

    public func acknowledged(afterSeconds seconds: Double) {
        state.withLock { s in
            s.latencyCount += 1
            s.latencySum += seconds
            for (i, bound) in Metrics.latencyBounds.enumerated() where seconds <= bound { s.latencyBuckets[i] += 1 }
        }
    }

    public func request(method: String, route: String, status: Int) {
        state.withLock { $0.requests[RequestKey(method: method, route: route, status: status), default: 0] += 1 }
    }

    /// What this process has counted since it started, for the shutdown
    /// summary: tenants accepted (answered 202) and webhook attempts by
    /// outcome (`delivered`, `retry`, `failed`).
    public func runTotals() -> (tenantsAccepted: Int, attempts: [String: Int]) {
        state.withLock { s in
            let accepted = s.requests.filter { $0.key.method == "POST" && $0.key.route == "/tenants" && $0.key.status == 202 }
            return (accepted.values.reduce(0, +), s.deliveries.reduce(into: [:]) { $0[$1.key.outcome, default: 0] += $1.value })
        }
    }

    /// Methods keep their name; anything else is "other", so clients cannot
    /// grow the metrics without bound by inventing methods.
    static func methodLabel(_ method: String) -> String {
        knownMethods.contains(method) ? method : "other"
    }

    private static let knownMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    /// The exposition text; `backlog` comes from the store at scrape time.
    public func render(backlog: [(String, Int)]) -> String {
        let s = state.withLock { $0 }
        var out = ""
        out += "# HELP provisiond_tenants_total Tenants created.\n# TYPE provisiond_tenants_total counter\n"
        out += "provisiond_tenants_total \(s.tenantsTotal)\n"
        out += "# HELP provisiond_deliveries_total Webhook attempts by outcome.\n# TYPE provisiond_deliveries_total counter\n"
        for (key, value) in s.deliveries.sorted(by: { ($0.key.subscription, $0.key.outcome) < ($1.key.subscription, $1.key.outcome) }) {
            out += "provisiond_deliveries_total{subscription=\"\(escape(key.subscription))\",outcome=\"\(key.outcome)\"} \(value)\n"
        }
        out += "# HELP provisiond_delivery_backlog Pending deliveries.\n# TYPE provisiond_delivery_backlog gauge\n"
        for (name, count) in backlog {
            out += "provisiond_delivery_backlog{subscription=\"\(escape(name))\"} \(count)\n"
        }
        out += "# HELP provisiond_delivery_seconds Time from publish to acknowledgement.\n# TYPE provisiond_delivery_seconds histogram\n"
        for (i, bound) in Metrics.latencyBounds.enumerated() {
            out += "provisiond_delivery_seconds_bucket{le=\"\(bound)\"} \(s.latencyBuckets[i])\n"
        }
        out += "provisiond_delivery_seconds_bucket{le=\"+Inf\"} \(s.latencyCount)\n"
        out += "provisiond_delivery_seconds_sum \(s.latencySum)\n"
        out += "provisiond_delivery_seconds_count \(s.latencyCount)\n"
        out += "# HELP provisiond_http_requests_total HTTP requests answered.\n# TYPE provisiond_http_requests_total counter\n"
        for (key, value) in s.requests.sorted(by: { ($0.key.route, $0.key.method, $0.key.status) < ($1.key.route, $1.key.method, $1.key.status) }) {
            out += "provisiond_http_requests_total{method=\"\(key.method)\",route=\"\(escape(key.route))\",status=\"\(key.status)\"} \(value)\n"
        }
        return out
    }

    private func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}
