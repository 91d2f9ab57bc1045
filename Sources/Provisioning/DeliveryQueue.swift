import Foundation

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
    let eventId: String
    let domain: String
    let payload: [UInt8]
    let createdAt: Int64
}

struct AttemptOutcome: Sendable {
    let deliverySeq: Int64
    let delivered: Bool
    /// On failure: delivery gave up (max attempts reached).
    let failed: Bool
    let attemptedAt: Int64
    let status: Int?
    let error: String?
    let nextAttemptAt: Int64?
}

extension TopicStore {
    /// A read-only connection for the dispatcher's own thread.
    func openQueueReader() throws -> SQLiteConnection { try ReaderPool.openReadOnly(path: path) }

    static func targets(_ db: SQLiteConnection) throws -> [SubscriptionTarget] {
        try db.query(
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
    static let dueSQL =
        "SELECT seq FROM deliveries WHERE subscription_seq = ? AND state = 0 AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?"
    /// One delivery with its event (both primary keys).
    static let deliverySQL = """
        SELECT d.seq, d.attempts, t.event_id, t.domain, t.payload, t.created_at
        FROM deliveries d JOIN tenants t ON t.seq = d.tenant_seq WHERE d.seq = ?
        """

    /// Up to `limit` due deliveries of one subscription, oldest first, not
    /// counting those in `busy` (in flight: still due in the database until
    /// their outcome commits). Only the ones taken are loaded with their
    /// payload; the in-flight ones are skipped by seq alone.
    static func due(_ db: SQLiteConnection, subscription: Int64, now: Int64, limit: Int, excluding busy: Set<Int64>) throws -> [DueDelivery] {
        let seqs = try db.query(dueSQL, [.integer(subscription), .integer(now), .int(limit + busy.count)]) { $0.int(0) }
            .filter { !busy.contains($0) }
            .prefix(limit)
        return try seqs.compactMap { seq in
            try db.queryOne(deliverySQL, [.integer(seq)]) { row in
                DueDelivery(
                    seq: row.int(0), attempts: Int(row.int(1)), eventId: row.text(2), domain: row.text(3), payload: row.blob(4),
                    createdAt: row.int(5))
            }
        }
    }

    /// When the subscription's next pending delivery falls due after `now`.
    static func nextDue(_ db: SQLiteConnection, subscription: Int64, after now: Int64) throws -> Int64? {
        try db.queryOne(
            "SELECT min(next_attempt_at) FROM deliveries WHERE subscription_seq = ? AND state = 0 AND next_attempt_at > ?",
            [.integer(subscription), .integer(now)], map: { $0.optionalInt(0) }) ?? nil
    }

    /// Writes attempt outcomes in one group, with the breakers they changed.
    /// A delivery no longer pending
    /// (its subscription deleted, or requeued meanwhile) is left alone.
    /// `backlogDueNow`: subscriptions that just came back up. Their pending
    /// deliveries that were backed off during the outage are due at once
    /// rather than after a backoff that may be as long as --retry-max.
    func record(_ outcomes: [AttemptOutcome], breakers: [(Int64, Breaker)], backlogDueNow: [Int64], now: Int64,
                completion: @escaping @Sendable (Result<Void, Error>) -> Void) {
        writer.write({ db in
            for outcome in outcomes {
                let state: DeliveryState = outcome.delivered ? .delivered : (outcome.failed ? .failed : .pending)
                try db.run(
                    """
                    UPDATE deliveries SET state = ?, attempts = attempts + 1, last_attempt_at = ?, last_status = ?,
                        last_error = ?, next_attempt_at = ?, delivered_at = ?
                    WHERE seq = ? AND state = 0
                    """,
                    [.int(state.rawValue), .integer(outcome.attemptedAt), .optional(outcome.status.map(Int64.init)),
                     .optional(outcome.error), .optional(outcome.nextAttemptAt),
                     outcome.delivered ? .integer(outcome.attemptedAt) : .null, .integer(outcome.deliverySeq)])
            }
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
        }, completion: completion)
    }
}
