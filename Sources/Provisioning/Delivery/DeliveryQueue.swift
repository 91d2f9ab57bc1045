import Essentials

/// What the dispatcher reads and writes: the work queue kept in SQLite. The
/// dispatcher claims due deliveries in batches and never holds the backlog
/// in memory; outcomes go back through the group-committing writer.
struct SubscriptionTarget: Sendable, Equatable {
    let seq: Int64
    let id: String
    let name: String
    let url: String
    let secret: String
    let paused: Bool
    /// As last written with an outcome: a restart keeps a down subscription down.
    let breaker: Breaker
}

struct DueDelivery: Sendable {
    let seq: Int64
    let attempts: Int
    let eventSeq: Int64
    let eventId: String
    let type: String
    /// The order key; nil for an operational event.
    let domain: String?
    let tenantId: String?
    let payload: [UInt8]
    let createdAt: Int64
}

struct AttemptOutcome: Sendable {
    let subscriptionSeq: Int64
    let delivery: DueDelivery
    let delivered: Bool
    /// On failure: delivery gave up (max attempts reached).
    let failed: Bool
    let attemptedAt: Int64
    let status: Int?
    let error: String?
    let nextAttemptAt: Int64?
    let durationMs: Int64
    /// The first 1 KiB of the answer's body.
    let response: [UInt8]
}

/// `delivery.failed`, `subscription.down` or `subscription.recovered`, about one subscription.
struct OperationalEvent: Sendable {
    let type: EventType
    let subscriptionSeq: Int64
    let data: [(String, JSON)]
    /// Add the subscription's pending deliveries, counted when it is written.
    var withBacklog = false
}
