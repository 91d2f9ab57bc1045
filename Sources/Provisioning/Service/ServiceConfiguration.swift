/// Everything `provisiond serve` can be told, already validated.
public struct ServiceConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var dataDirectory = "./data"
    /// nil: read or generate `<data-dir>/api-token`.
    public var apiToken: String?
    public var deliveryTimeout: Duration = .seconds(10)
    public var retryInitial: Duration = .seconds(1)
    public var retryMax: Duration = .seconds(600)
    /// 0: retry until it succeeds.
    public var maxAttempts = 0
    public var maxInFlight = 32
    /// Webhook attempts at once across all subscriptions (lowered to what the
    /// descriptor limit leaves room for).
    public var maxOutgoing = 1024
    /// 0: one event loop per core.
    public var eventLoops = 0
    /// Open HTTP connections at most; more are answered 503 and closed.
    public var maxConnections = 10_000
    /// A keep-alive connection with nothing to do is closed after this.
    public var idleTimeout: Duration = .seconds(60)
    /// A request's head must arrive within this, and then its body within
    /// three times this (slow clients are answered 408).
    public var requestTimeout: Duration = .seconds(10)
    /// PEM bundle of the CAs trusted for https webhooks; nil: the system's.
    public var webhookCAFile: String?

    public init() {}
}

/// Parses `250ms`, `2s`, `10m`, `1h` (and a plain number of seconds).
public enum DurationParser {
    public static func parse(_ text: String) -> Duration? {
        let units: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        // "ms" is tried before "m" and "s"; a bare number means seconds.
        let (number, millisPerUnit) = units.first { text.hasSuffix($0.0) }
            .map { (text.dropLast($0.0.count), $0.1) } ?? (Substring(text), 1000)
        // Plain decimals only: no sign, exponent, hex or infinity.
        guard !number.isEmpty, number.first != ".", number.last != ".",
              number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              number.filter({ $0 == "." }).count <= 1,
              let value = Double(number)
        else { return nil }
        let millis = value * millisPerUnit
        // A year is more than any timeout or retry delay needs, and keeps the arithmetic far from overflow.
        guard millis <= 365 * 86_400_000 else { return nil }
        return .milliseconds(Int64(millis))
    }

    public static func format(_ duration: Duration) -> String {
        let ms = duration.milliseconds
        if ms % 3_600_000 == 0 && ms > 0 { return "\(ms / 3_600_000)h" }
        if ms % 60_000 == 0 && ms > 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }
}

extension Duration {
    /// Whole milliseconds, the unit of every stored time and delay.
    public var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
