public struct DeliveryCounts: Sendable {
    public var pending = 0
    public var delivered = 0
    public var failed = 0
}

public struct Subscription: Sendable {
    public var seq: Int64
    public var id: String
    public var name: String
    public var url: String
    public var deliver: String
    public var paused: Bool
    public var createdAt: Int64
    public var events: [EventType]
    public var counts: DeliveryCounts
    /// Set while it counts as down (failing in a row): since when.
    public var downSince: Int64?
    public var lastAttemptAt: Int64?
    public var lastSuccessAt: Int64?
    public var lastStatus: Int?
    /// Of the last attempt; nil when it succeeded.
    public var lastError: String?
    /// When its oldest pending delivery was created.
    public var oldestPendingAt: Int64?

    /// `paused` wins over `down`.
    public var state: String { paused ? "paused" : (downSince != nil ? "down" : "up") }
}
