import Essentials
import Foundation

extension TopicStore {
    /// The dispatcher's queue on this store (see `DeliveryQueue`).
    func makeDeliveryQueue() -> any DeliveryQueue { SQLiteDeliveryQueue(engine: engine as! SQLiteEngine) }
}

/// The dispatcher's queue kept in SQLite: it reads on a read-only connection
/// of its own and writes outcomes through the store's group-committing writer.
final class SQLiteDeliveryQueue: DeliveryQueue {
    private let engine: SQLiteEngine
    /// Opened by `open`, then used by the dispatcher's thread alone until `close`.
    private var reader: SQLiteConnection?

    init(engine: SQLiteEngine) {
        self.engine = engine
    }

    func open() throws { reader = try ReaderPool.openReadOnly(path: engine.path) }

    func close() { reader = nil }

    /// The read connection; an error before `open` or after `close`.
    private func connection() throws -> SQLiteConnection {
        guard let reader else { throw SQLiteError(code: 21, message: "the delivery queue is not open") }
        return reader
    }

    func targets() throws -> [SubscriptionTarget] {
        try connection().query(
            """
            SELECT seq, id, name, url, secret, paused, failures, failed_probes, probe_not_before, down_since
            FROM subscriptions ORDER BY seq
            """
        ) { row in
            SubscriptionTarget(
                seq: row.int(0), id: row.text(1), name: row.text(2), url: row.text(3), secret: row.text(4),
                paused: row.int(5) != 0,
                breaker: Breaker(
                    consecutiveFailures: Int(row.int(6)), failedProbes: Int(row.int(7)), probeNotBefore: row.int(8),
                    downSince: row.optionalInt(9)))
        }
    }

    /// Due deliveries of one subscription, oldest first (index deliveries_due).
    static let dueSQL = SQL(
        "SELECT seq FROM deliveries WHERE subscription_seq = ? AND state = 0 AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?")
    /// One delivery with its event and tenant (primary keys).
    static let deliverySQL = SQL("""
        SELECT d.seq, d.attempts, e.seq, e.id, e.type, e.domain, t.id, e.payload, e.created_at
        FROM deliveries d JOIN events e ON e.seq = d.event_seq LEFT JOIN tenants t ON t.seq = d.tenant_seq WHERE d.seq = ?
        """)

    /// Up to `limit` due deliveries of one subscription, oldest first, not
    /// counting those in `busy` (in flight: still due in the database until
    /// their outcome commits). Only the ones taken are loaded with their
    /// payload; the in-flight ones are skipped by seq alone.
    func due(subscription: Int64, now: Int64, limit: Int, excluding busy: Set<Int64>) throws -> [DueDelivery] {
        let db = try connection()
        let seqs = try db.query(SQLiteDeliveryQueue.dueSQL, [.integer(subscription), .integer(now), .int(limit + busy.count)]) { $0.int(0) }
            .filter { !busy.contains($0) }
            .prefix(limit)
        return try seqs.compactMap { seq in
            try db.queryOne(SQLiteDeliveryQueue.deliverySQL, [.integer(seq)]) { row in
                DueDelivery(
                    seq: row.int(0), attempts: Int(row.int(1)), eventSeq: row.int(2), eventId: row.text(3), type: row.text(4),
                    domain: row.optionalText(5), tenantId: row.optionalText(6), payload: row.blob(7), createdAt: row.int(8))
            }
        }
    }

    /// When the subscription's next pending delivery falls due after `now`.
    func nextDue(subscription: Int64, after now: Int64) throws -> Int64? {
        try connection().queryOne(
            "SELECT min(next_attempt_at) FROM deliveries WHERE subscription_seq = ? AND state = 0 AND next_attempt_at > ?",
            [.integer(subscription), .integer(now)], map: { $0.optionalInt(0) }) ?? nil
    }

    /// Writes attempt outcomes in one group, with the breakers they changed
    /// and the operational events they caused. A delivery no longer pending
    /// (its subscription deleted, or requeued meanwhile) is left alone. An
    /// acknowledgement makes the next event of its (subscription, domain)
    /// line due, in the same transaction. `backlogDueNow`: subscriptions that
    /// just came back up. Their pending deliveries that were backed off during
    /// the outage are due at once rather than after a backoff that may be as
    /// long as --retry-max.
    func record(_ outcomes: [AttemptOutcome], breakers: [(Int64, Breaker)], operational: [OperationalEvent],
                backlogDueNow: [Int64], now: Int64, completion: @escaping @Sendable (Result<Void, Error>) -> Void) {
        engine.write({ db in
            // State changes, added up per subscription and per tenant (see `Counters`).
            var moved: [Int64: (delivered: Int, failed: Int)] = [:]
            var tenants = Counters.Tenants()
            for outcome in outcomes {
                let state: DeliveryState = outcome.delivered ? .delivered : (outcome.failed ? .failed : .pending)
                // Nil when no longer pending: nothing changed. Else its tenant (nil for an operational event).
                guard let tenantSeq = try db.queryOne(SQLiteDeliveryQueue.outcomeSQL,
                    [.int(state.rawValue), .integer(outcome.attemptedAt), .optional(outcome.status.map(Int64.init)),
                     .optional(outcome.error), .optional(outcome.nextAttemptAt),
                     outcome.delivered ? .integer(outcome.attemptedAt) : .null, .integer(outcome.delivery.seq)],
                    map: { $0.optionalInt(0) })
                else { continue }
                if state != .pending {
                    let delivered = state == .delivered ? 1 : 0
                    let current = moved[outcome.subscriptionSeq] ?? (0, 0)
                    moved[outcome.subscriptionSeq] = (current.delivered + delivered, current.failed + 1 - delivered)
                    tenants.add(tenantSeq, pending: -1, failed: 1 - delivered)
                }
                if outcome.delivered, let domain = outcome.delivery.domain {
                    try db.run(SQLiteDeliveryQueue.releaseNextSQL, [.integer(now), .integer(outcome.subscriptionSeq), .text(domain),
                                                           .integer(outcome.delivery.eventSeq)])
                }
                try SQLiteDeliveryQueue.keepAttempt(db, outcome)
            }
            // The subscription's last attempt, for its health (outcomes come in
            // the order they finished), with its counts.
            var last: [Int64: AttemptOutcome] = [:]
            for outcome in outcomes { last[outcome.subscriptionSeq] = outcome }
            for (subscription, outcome) in last {
                let (delivered, failed) = moved[subscription] ?? (0, 0)
                try db.run(SQLiteDeliveryQueue.lastAttemptSQL,
                    [.integer(outcome.attemptedAt), .optional(outcome.status.map(Int64.init)), .optional(outcome.error),
                     .int(outcome.delivered ? 1 : 0), .integer(outcome.attemptedAt), .int(delivered + failed), .int(delivered),
                     .int(failed), .integer(subscription)])
            }
            try tenants.apply(db)
            for (subscription, breaker) in breakers {
                try db.run(
                    "UPDATE subscriptions SET failures = ?, failed_probes = ?, probe_not_before = ?, down_since = ? WHERE seq = ?",
                    [.int(breaker.consecutiveFailures), .int(breaker.failedProbes), .integer(breaker.probeNotBefore),
                     .optional(breaker.downSince), .integer(subscription)])
            }
            for subscription in backlogDueNow {
                // Few rows: only attempted ones wait in the future (index deliveries_due).
                try db.run(
                    "UPDATE deliveries SET next_attempt_at = ? WHERE subscription_seq = ? AND state = 0 AND next_attempt_at > ?",
                    [.integer(now), .integer(subscription), .integer(now)])
            }
            for event in operational { try SQLiteDeliveryQueue.publish(db, event, now: now) }
        }, completion: completion)
    }

    /// An outcome on a delivery still pending; returns its tenant.
    static let outcomeSQL = SQL("""
        UPDATE deliveries SET state = ?, attempts = attempts + 1, last_attempt_at = ?, last_status = ?,
            last_error = ?, next_attempt_at = ?, delivered_at = ?
        WHERE seq = ? AND state = 0 RETURNING tenant_seq
        """)

    /// A subscription's last attempt and its counts.
    static let lastAttemptSQL = SQL("""
        UPDATE subscriptions SET last_attempt_at = ?, last_status = ?, last_error = ?,
            last_success_at = CASE WHEN ? THEN ? ELSE last_success_at END,
            pending_n = pending_n - ?, delivered_n = delivered_n + ?, failed_n = failed_n + ?
        WHERE seq = ?
        """)

    static let insertAttemptSQL = SQL(
        "INSERT INTO attempts (delivery_seq, at, duration_ms, status, error, response) VALUES (?, ?, ?, ?, ?, ?)")

    /// Records one attempt and keeps the delivery's last 10.
    static func keepAttempt(_ db: any SQLDatabase, _ outcome: AttemptOutcome) throws {
        try db.run(insertAttemptSQL,
            [.integer(outcome.delivery.seq), .integer(outcome.attemptedAt), .integer(outcome.durationMs),
             .optional(outcome.status.map(Int64.init)), .optional(outcome.error),
             outcome.response.isEmpty ? .null : .blob(outcome.response)])
        if outcome.delivery.attempts >= 10 {
            try db.run(
                """
                DELETE FROM attempts WHERE delivery_seq = ?1 AND seq <= (
                    SELECT seq FROM attempts WHERE delivery_seq = ?1 ORDER BY seq DESC LIMIT 1 OFFSET 10)
                """, [.integer(outcome.delivery.seq)])
        }
    }

    /// The next unacknowledged event of a (subscription, domain) line after
    /// the one just acknowledged becomes due, if it was waiting (index deliveries_line).
    static let releaseNextSQL = SQL("""
        UPDATE deliveries SET next_attempt_at = ?1
        WHERE seq = (SELECT seq FROM deliveries WHERE subscription_seq = ?2 AND domain = ?3 AND state != 1 AND event_seq > ?4
                     ORDER BY event_seq LIMIT 1)
          AND state = 0 AND next_attempt_at IS NULL
        """)

    /// An operational event: stored, then delivered to every subscription
    /// that lists its type except the one it is about.
    static func publish(_ db: any SQLDatabase, _ event: OperationalEvent, now: Int64) throws {
        var data = event.data
        if event.withBacklog {
            let backlog = try db.queryOne(
                "SELECT count(*) FROM deliveries WHERE subscription_seq = ? AND state = 0", [.integer(event.subscriptionSeq)],
                map: { $0.int(0) }) ?? 0
            data.append(("backlog", .int(Int(backlog))))
        }
        let payload = JSON.object([
            ("type", .string(event.type.rawValue)), ("timestamp", .string(WallClock.rfc3339(now))), ("data", .object(data)),
        ]).serialized()
        let eventSeq = try db.queryOne(
            "INSERT INTO events (id, type, payload, created_at) VALUES (?, ?, ?, ?) RETURNING seq",
            [.text(RandomToken.identifier("evt")), .text(event.type.rawValue), .blob(payload), .integer(now)], map: { $0.int(0) })!
        try TopicStore.createDeliveries(
            db, eventSeq: eventSeq, type: event.type, tenantSeq: nil, domain: nil, now: now, except: event.subscriptionSeq)
    }
}
