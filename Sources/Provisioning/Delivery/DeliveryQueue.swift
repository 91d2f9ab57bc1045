import Essentials

/// What the dispatcher reads and writes: the work queue, kept by the store
/// (`SQLiteDeliveryQueue`). The dispatcher claims due deliveries in batches
/// and never holds the backlog in memory; outcomes go back to be written.
/// Its thread calls these synchronously: each is a short query or a handoff
/// to the store's writer, and awaiting here would only slow the loop down.
protocol DeliveryQueue: AnyObject {
    /// Takes what the queue reads through; `Dispatcher.start` calls it before the dispatcher's thread runs.
    func open() throws
    /// Every subscription, by seq, with its breaker as last written.
    func targets() throws -> [SubscriptionTarget]
    /// Up to `limit` due deliveries of one subscription, oldest first, not
    /// counting those in `busy` (in flight: still due until their outcome is written).
    func due(subscription: Int64, now: Int64, limit: Int, excluding busy: Set<Int64>) throws -> [DueDelivery]
    /// When the subscription's next pending delivery falls due after `now`.
    func nextDue(subscription: Int64, after now: Int64) throws -> Int64?
    /// Writes attempt outcomes in one transaction, with the breakers they
    /// change (worked out from the stored ones) and the operational events
    /// those cause. `completion` runs once they are committed (or could not be).
    func record(_ reports: [AttemptReport], now: Int64, completion: @escaping @Sendable (Result<Recorded, Error>) -> Void)
    /// Whether claims have leases to renew (PostgreSQL; SQLite has one dispatcher).
    var leasesClaims: Bool { get }
    /// Extends this instance's claims on `deliveries` (attempts in flight, or
    /// whose outcome is not written yet), so that a live instance keeps them
    /// however long an attempt takes, and only a dead one's lapse. No-op on SQLite.
    func renewClaims(_ deliveries: [Int64], now: Int64) throws
    /// A socket that becomes readable when another instance published; nil when there is none.
    var wakeSocket: Int32? { get }
    /// Whether another instance published since the last call.
    func takeNotifications() -> Bool
    /// Lets go of what `open` took; the dispatcher's thread calls it as it ends.
    func close()
}

/// One finished attempt, with what the breaker needs to know of it.
struct AttemptReport: Sendable {
    let outcome: AttemptOutcome
    /// Claimed while the subscription was down.
    let isProbe: Bool
    /// The receiver's Retry-After (ms), if it sent one.
    let retryAfter: Int64?
}

/// What an outcome write changed: each subscription's breaker as stored
/// now, with its transitions, and the operational events raised.
struct Recorded: Sendable {
    struct Subscription: Sendable {
        let target: SubscriptionTarget
        let breaker: Breaker
        let transitions: [Breaker.Transition]
        /// The last attempt's answer, for the log line of a transition.
        let lastStatus: Int?
        let lastError: String?
    }
    var subscriptions: [Subscription] = []
    var operational: [EventType] = []
}

/// A subscription as the dispatcher needs it.
struct SubscriptionTarget: Sendable, Equatable {
    let seq: Int64
    let id: String
    let name: String
    let url: String
    let secret: String
    let paused: Bool
    /// As last written with an outcome: a restart keeps a down subscription down.
    var breaker: Breaker
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
