
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
    /// Unix ms of an RFC 3339 `date-time` (`2026-11-29T16:00:00Z`): `T`/`Z`
    /// in either case, optional fractional seconds (cut to ms), `Z` or a
    /// `±hh:mm` offset, a leap second at 23:59:60 UTC (read as the next
    /// second). Nil for anything else, a day that does not exist included:
    /// Foundation's ISO 8601 parser refused lowercase and leap seconds and
    /// rolled `02-30` or `24:00` over into another time.
    static func parse(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        var i = 0
        func number(_ width: Int) -> Int? {
            guard i + width <= b.count else { return nil }
            var n = 0
            for c in b[i..<(i + width)] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) else { return nil }
                n = n * 10 + Int(c - UInt8(ascii: "0"))
            }
            i += width
            return n
        }
        func expect(_ chars: String) -> Bool {
            guard i < b.count, chars.utf8.contains(b[i]) else { return false }
            i += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2),
              expect("Tt"), let hour = number(2), expect(":"), let minute = number(2), expect(":"), let second = number(2),
              (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day),
              hour <= 23, minute <= 59, second <= 60
        else { return nil }
        var millis = 0
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            let start = i
            var scale = 100
            while i < b.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[i]) {
                millis += Int(b[i] - UInt8(ascii: "0")) * scale
                scale /= 10
                i += 1
            }
            guard i > start else { return nil }
        }
        var offsetMinutes = 0
        if expect("Zz") {
        } else if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
            i += 1
            guard let oh = number(2), expect(":"), let om = number(2), oh <= 23, om <= 59 else { return nil }
            offsetMinutes = sign * (oh * 60 + om)
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        let localMinutes = daysFromCivil(year: year, month: month, day: day) * 1440 + hour * 60 + minute
        let utcMinutes = localMinutes - offsetMinutes
        // A leap second is only ever the last second of a UTC day.
        if second == 60, ((utcMinutes % 1440) + 1440) % 1440 != 1439 { return nil }
        return Int64(utcMinutes) * 60_000 + Int64(second) * 1000 + Int64(millis)
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
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
