/// Everything `provisiond serve` can be told, already validated.
package struct ServiceConfiguration: Sendable {
    package var host = "127.0.0.1"
    package var port = 8080
    package var dataDirectory = "./data"
    /// nil: read or generate `<data-dir>/api-token`.
    package var apiToken: String?
    package var deliveryTimeout: Duration = .seconds(10)
    package var retryInitial: Duration = .seconds(1)
    package var retryMax: Duration = .seconds(600)
    /// 0: retry until it succeeds.
    package var maxAttempts = 0
    package var maxInFlight = 32
    /// Webhook attempts at once across all subscriptions (lowered to what the
    /// descriptor limit leaves room for).
    package var maxOutgoing = 1024
    /// 0: one event loop per core.
    package var eventLoops = 0
    /// Open HTTP connections at most; more are answered 503 and closed.
    package var maxConnections = 10_000
    /// A keep-alive connection with nothing to do is closed after this.
    package var idleTimeout: Duration = .seconds(60)
    /// A request's head must arrive within this, and then its body within
    /// three times this (slow clients are answered 408).
    package var requestTimeout: Duration = .seconds(10)
    /// PEM bundle of the CAs trusted for https webhooks; nil: the system's.
    package var webhookCAFile: String?
    /// nil: SQLite in the data dir; else a PostgreSQL URL shared by several instances.
    package var postgresURL: String?
    /// On PostgreSQL: how long a claimed delivery stays with the instance that
    /// claimed it; after that (the instance died) another takes it over.
    package var claimLease: Duration = .seconds(30)

    package init() {}
}
