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
