struct DeliveryCounts: Sendable {
    var pending = 0
    var delivered = 0
    var failed = 0
}

struct Subscription: Sendable {
    var seq: Int64
    var id: String
    var name: String
    var url: String
    var deliver: String
    var paused: Bool
    var createdAt: Int64
    var events: [EventType]
    var counts: DeliveryCounts
    /// Set while it counts as down (failing in a row): since when.
    var downSince: Int64?
    var lastAttemptAt: Int64?
    var lastSuccessAt: Int64?
    var lastStatus: Int?
    /// Of the last attempt; nil when it succeeded.
    var lastError: String?
    /// When its oldest pending delivery was created.
    var oldestPendingAt: Int64?

    /// `paused` wins over `down`.
    var state: String { paused ? "paused" : (downSince != nil ? "down" : "up") }
}
