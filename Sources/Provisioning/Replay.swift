import Foundation
import HTTPServer

/// A validated `POST /subscriptions/{id}/replay` body.
public struct ReplayRequest: Sendable {
    /// Unix ms.
    public var since: Int64

    public static func parse(_ body: [UInt8]) throws(InvalidRequest) -> ReplayRequest {
        let reader = try ObjectReader.body(body)
        try reader.rejectUnknown(allowed: ["since"])
        let text = try reader.string("since", required: true)!
        guard let since = RFC3339.parse(text) else {
            throw InvalidRequest(field: "since", message: "must be an RFC 3339 time, like 2026-11-29T16:00:00Z")
        }
        return ReplayRequest(since: since)
    }
}

enum RFC3339 {
    /// Unix ms of `2026-11-29T16:00:00Z`, with optional fractional seconds and any offset.
    static func parse(_ text: String) -> Int64? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return Int64(date.timeIntervalSince1970 * 1000) }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text).map { Int64($0.timeIntervalSince1970 * 1000) }
    }
}

/// One webhook attempt, as kept for an operator.
public struct Attempt: Sendable {
    public var at: Int64
    public var durationMs: Int64
    public var status: Int?
    public var error: String?
    public var response: [UInt8]?
}

extension TopicStore {
    /// Delivers again, to one subscription, every event of a type it wants
    /// accepted since `since`, with its original webhook-id, in order: each
    /// becomes pending with a fresh round of attempts, waiting behind the
    /// earlier ones of its domain. Nil if the subscription does not exist.
    public func replay(subscriptionId key: String, since: Int64) async throws -> Int? {
        try await writer.write { db in
            guard let seq = try TopicStore.subscriptionSeq(db, key: key),
                  let events = try db.queryOne("SELECT events FROM subscriptions WHERE seq = ?", [.integer(seq)], map: { $0.text(0) })
            else { return nil }
            let now = WallClock.nowMillis()
            // Events it never had a delivery for (accepted before it subscribed, or then unwanted).
            let added = try db.run(
                """
                INSERT OR IGNORE INTO deliveries (subscription_seq, event_seq, tenant_seq, domain, state, created_at, next_attempt_at)
                SELECT ?1, e.seq, e.tenant_seq, e.domain, 0, ?2, NULL FROM events e
                WHERE e.created_at >= ?3 AND instr(?4, ',' || e.type || ',') > 0 ORDER BY e.seq
                """, [.integer(seq), .integer(now), .integer(since), .text(events)])
            // The ones it had: again, from the start.
            let again = try db.run(
                """
                UPDATE deliveries SET state = 0, attempts = 0, next_attempt_at = NULL, created_at = ?2
                WHERE subscription_seq = ?1 AND state != 0
                  AND event_seq IN (SELECT seq FROM events WHERE created_at >= ?3 AND instr(?4, ',' || type || ',') > 0)
                """, [.integer(seq), .integer(now), .integer(since), .text(events)])
            try TopicStore.releaseHeads(db, subscription: seq, now: now)
            return added + again
        }
    }

    /// Every waiting delivery of the subscription that now heads its line
    /// (or has no line: an operational event) becomes due. One pass over its
    /// waiting deliveries: for operator actions and the end of a catch-up.
    static func releaseHeads(_ db: SQLiteConnection, subscription: Int64, now: Int64) throws {
        try db.run(
            """
            UPDATE deliveries SET next_attempt_at = ?1
            WHERE subscription_seq = ?2 AND state = 0 AND next_attempt_at IS NULL AND NOT EXISTS (
                SELECT 1 FROM deliveries d WHERE d.subscription_seq = ?2 AND d.domain = deliveries.domain
                AND d.state != 1 AND d.event_seq < deliveries.event_seq)
            """,
            [.integer(now), .integer(subscription)])
    }

    public enum AttemptsResult: Sendable {
        case noSubscription
        case noDelivery
        case found([Attempt])
    }

    /// The last 10 attempts of one delivery, newest first.
    public func attempts(subscriptionId key: String, eventId: String) async throws -> AttemptsResult {
        try await readers.read { db in
            guard let seq = try TopicStore.subscriptionSeq(db, key: key) else { return .noSubscription }
            guard let delivery = try db.queryOne(
                "SELECT d.seq FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.subscription_seq = ? AND e.id = ?",
                [.integer(seq), .text(eventId)], map: { $0.int(0) })
            else { return .noDelivery }
            return .found(try db.query(
                "SELECT at, duration_ms, status, error, response FROM attempts WHERE delivery_seq = ? ORDER BY seq DESC LIMIT 10",
                [.integer(delivery)]
            ) { row in
                Attempt(at: row.int(0), durationMs: row.int(1), status: row.optionalInt(2).map(Int.init), error: row.optionalText(3),
                        response: row.isNull(4) ? nil : row.blob(4))
            })
        }
    }
}
