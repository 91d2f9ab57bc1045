import Essentials
import Foundation

extension TopicStore {
    /// The dispatcher's queue on this store (see `DeliveryQueue`).
    func makeDeliveryQueue(policy: RetryPolicy, maxInFlight: Int, claimLease: Duration) -> any DeliveryQueue {
        StoreDeliveryQueue(engine: engine, policy: policy, maxInFlight: maxInFlight, claimLease: claimLease.milliseconds)
    }
}

/// The dispatcher's queue kept in the store. It reads (and on PostgreSQL
/// claims) on a connection of its own, and writes outcomes through the
/// engine's write transactions.
///
/// On SQLite this process is the only dispatcher: what is in flight is
/// known from its memory (`busy`). On PostgreSQL several instances share the
/// deliveries, so a delivery is claimed in the database with a lease before
/// it is attempted, and the rules that span instances are kept there: at
/// most --max-in-flight claims per subscription, one probe at a time while it
/// is down, and order per domain (only a line's head is ever due).
final class StoreDeliveryQueue: DeliveryQueue {
    private let engine: any StoreEngine
    private let policy: RetryPolicy
    private let maxInFlight: Int
    /// How long a claim holds (ms): another instance takes the delivery over after it.
    private let claimLease: Int64
    /// Whose claims these are (for handing them back at shutdown).
    private let instance = RandomToken.identifier("ins")
    /// Opened by `open`, then used by the dispatcher's thread alone until `close`.
    private var connection: (any SQLDatabase)?

    init(engine: any StoreEngine, policy: RetryPolicy, maxInFlight: Int, claimLease: Int64) {
        self.engine = engine
        self.policy = policy
        self.maxInFlight = maxInFlight
        self.claimLease = claimLease
    }

    func open() throws { connection = try engine.openDispatcherConnection() }

    func close() {
        // Claims of attempts that were abandoned: due again at once for the other instances.
        if engine.dialect == .postgres, let connection {
            _ = try? connection.run(
                "UPDATE deliveries SET claimed_until = NULL, claimed_by = NULL WHERE claimed_by = ? AND state = 0", [.text(instance)])
        }
        connection = nil
    }

    /// The queue's connection; a new one when PostgreSQL's was lost (the
    /// scan that lost it failed; the next one reconnects, or fails again
    /// until the database is back).
    private func db() throws -> any SQLDatabase {
        if let pg = connection as? PostgresConnection, pg.isBroken { connection = nil }
        if connection == nil { connection = try engine.openDispatcherConnection() }
        return connection!
    }

    /// A socket that becomes readable when another instance published (PostgreSQL's LISTEN); nil on SQLite.
    var wakeSocket: Int32? { (connection as? NotificationSource)?.notificationSocket }

    /// Whether another instance published since the last call (and consumes the notifications).
    func takeNotifications() -> Bool { (connection as? NotificationSource)?.takeNotifications() ?? false }

    func targets() throws -> [SubscriptionTarget] {
        try db().query(
            """
            SELECT seq, id, name, url, secret, paused, failures, failed_probes, probe_not_before, down_since
            FROM subscriptions ORDER BY seq
            """, map: StoreDeliveryQueue.target)
    }

    /// Due deliveries of one subscription, oldest first (index deliveries_due).
    static let dueSQL = SQL(
        "SELECT seq FROM deliveries WHERE subscription_seq = ? AND state = 0 AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?")
    /// One delivery with its event and tenant (primary keys).
    private static let dueDeliverySelect = """
        SELECT d.seq, d.attempts, e.seq, e.id, e.type, e.domain, t.id, e.payload, e.created_at
        FROM deliveries d JOIN events e ON e.seq = d.event_seq LEFT JOIN tenants t ON t.seq = d.tenant_seq
        """
    static let deliverySQL = SQL(dueDeliverySelect + " WHERE d.seq = ?")
    /// The same for the deliveries just claimed (PostgreSQL: seqs as one comma-separated text), oldest first.
    static let deliveriesSQL = SQL(
        dueDeliverySelect + " WHERE d.seq = ANY(string_to_array(?, ',')::bigint[]) ORDER BY d.next_attempt_at, d.seq")

    /// Up to `limit` due deliveries of one subscription, oldest first, not
    /// counting those in `busy` (in flight: still due in the database until
    /// their outcome commits). Only the ones taken are loaded with their
    /// payload; the in-flight ones are skipped by seq alone.
    func due(subscription: Int64, now: Int64, limit: Int, excluding busy: Set<Int64>) throws -> [DueDelivery] {
        let db = try db()
        if db.dialect == .postgres {
            let seqs = try claim(db, subscription: subscription, now: now, limit: limit).filter { !busy.contains($0) }
            guard !seqs.isEmpty else { return [] }
            // All in one round trip: each one costs the dispatcher's thread a wait on the server.
            return try db.query(StoreDeliveryQueue.deliveriesSQL, [.text(seqs.map(String.init).joined(separator: ","))],
                                map: StoreDeliveryQueue.dueDelivery)
        }
        let seqs = try db.query(StoreDeliveryQueue.dueSQL, [.integer(subscription), .integer(now), .int(limit + busy.count)]) { $0.int(0) }
            .filter { !busy.contains($0) }
            .prefix(limit)
        return try seqs.compactMap { seq in
            try db.queryOne(StoreDeliveryQueue.deliverySQL, [.integer(seq)], map: StoreDeliveryQueue.dueDelivery)
        }
    }

    static func dueDelivery(_ row: SQLRow) -> DueDelivery {
        DueDelivery(
            seq: row.int(0), attempts: Int(row.int(1)), eventSeq: row.int(2), eventId: row.text(3), type: row.text(4),
            domain: row.optionalText(5), tenantId: row.optionalText(6), payload: row.blob(7), createdAt: row.int(8))
    }

    /// Claims up to `limit` due heads of one subscription for this instance,
    /// within what the subscription's breaker and --max-in-flight leave
    /// across all instances. The subscription's row lock serialises the
    /// instances claiming for it, so the count of live claims is exact; rows
    /// an outcome write holds are skipped, not waited for.
    private func claim(_ db: any SQLDatabase, subscription: Int64, now: Int64, limit: Int) throws -> [Int64] {
        try db.run("BEGIN")
        do {
            // The lock first, in a statement of its own: read committed gives the
            // next statement a snapshot taken after it, so the count below sees
            // the claims of the instance that held the lock before.
            try db.run(StoreDeliveryQueue.lockSubscriptionSQL, [.integer(subscription)])
            guard let (breaker, live) = try db.queryOne(StoreDeliveryQueue.claimStateSQL,
                [.integer(subscription), .integer(now), .integer(subscription)], map: { row in
                    (Breaker(consecutiveFailures: Int(row.int(0)), failedProbes: Int(row.int(1)), probeNotBefore: row.int(2),
                             downSince: row.optionalInt(3), answering: true), Int(row.int(4)))
                })
            else {
                try db.run("COMMIT")
                return []
            }
            let room = min(limit, breaker.room(policy, maxInFlight: maxInFlight, now: now) - live)
            var claimed: [Int64] = []
            if room > 0 {
                claimed = try db.query(StoreDeliveryQueue.claimSQL,
                    [.integer(now + claimLease), .text(instance), .integer(subscription), .integer(now), .integer(now), .int(room)],
                    map: { $0.int(0) })
            }
            try db.run("COMMIT")
            return claimed
        } catch {
            _ = try? db.run("ROLLBACK")
            throw error
        }
    }

    var leasesClaims: Bool { engine.dialect == .postgres }

    func renewClaims(_ deliveries: [Int64], now: Int64) throws {
        guard leasesClaims, !deliveries.isEmpty else { return }
        try db().run(StoreDeliveryQueue.renewSQL,
            [.integer(now + claimLease), .text(instance), .text(deliveries.map(String.init).joined(separator: ","))])
    }

    /// PostgreSQL only (renewing is a no-op on SQLite): the seqs go as one
    /// comma-separated text. Rows an outcome write holds are skipped, not
    /// waited for: that write ends the claim anyway, and waiting on rows
    /// locked in another order deadlocked.
    static let renewSQL = SQL("""
        UPDATE deliveries SET claimed_until = ?
        WHERE seq IN (
            SELECT seq FROM deliveries
            WHERE claimed_by = ? AND state = 0 AND seq = ANY(string_to_array(?, ',')::bigint[])
            FOR UPDATE SKIP LOCKED)
        """)

    static let lockSubscriptionSQL = SQL("SELECT 1 FROM subscriptions WHERE seq = ? FOR UPDATE")

    /// The subscription's breaker as stored, and its live claims.
    static let claimStateSQL = SQL("""
        SELECT failures, failed_probes, probe_not_before, down_since,
            (SELECT count(*) FROM deliveries
             WHERE subscription_seq = ? AND state = 0 AND claimed_until IS NOT NULL AND claimed_until > ?)
        FROM subscriptions WHERE seq = ?
        """)

    /// Due heads, unclaimed or with a lapsed lease (a dead instance's), oldest first.
    static let claimSQL = SQL("""
        UPDATE deliveries SET claimed_until = ?, claimed_by = ?
        WHERE seq IN (
            SELECT seq FROM deliveries
            WHERE subscription_seq = ? AND state = 0 AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until <= ?)
            ORDER BY next_attempt_at LIMIT ? FOR UPDATE SKIP LOCKED)
        RETURNING seq
        """)

    /// When the subscription's next pending delivery falls due after `now`.
    func nextDue(subscription: Int64, after now: Int64) throws -> Int64? {
        try db().queryOne(
            "SELECT min(next_attempt_at) FROM deliveries WHERE subscription_seq = ? AND state = 0 AND next_attempt_at > ?",
            [.integer(subscription), .integer(now)], map: { $0.optionalInt(0) }) ?? nil
    }

    /// Writes attempt outcomes in one transaction. A delivery no longer
    /// pending (its subscription deleted, or requeued meanwhile) is left
    /// alone. An acknowledgement makes the next event of its (subscription,
    /// domain) line due, in the same transaction.
    ///
    /// The breakers are worked out here, from the stored ones, not in the
    /// dispatcher's memory: with several instances each sees only its own
    /// attempts, and the database is where they add up. A transition (down,
    /// recovered) thus happens once, with the operational events it causes;
    /// a subscription that comes back has its backed-off deliveries due at
    /// once rather than after a backoff as long as --retry-max.
    func record(_ reports: [AttemptReport], now: Int64, completion: @escaping @Sendable (Result<Recorded, Error>) -> Void) {
        let policy = policy
        engine.write({ db in
            // State changes, added up per subscription and per tenant (see `Counters`).
            var moved: [Int64: (delivered: Int, failed: Int)] = [:]
            var tenants = Counters.Tenants()
            var operational: [OperationalEvent] = []
            for report in reports {
                let outcome = report.outcome
                let state: DeliveryState = outcome.delivered ? .delivered : (outcome.failed ? .failed : .pending)
                // Nil when no longer pending: nothing changed. Else its tenant (nil for an operational event).
                guard let tenantSeq = try db.queryOne(StoreDeliveryQueue.outcomeSQL,
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
                    try db.run(StoreDeliveryQueue.releaseNextSQL, [.integer(now), .integer(outcome.subscriptionSeq), .text(domain),
                                                           .integer(outcome.delivery.eventSeq)])
                }
                try StoreDeliveryQueue.keepAttempt(db, outcome)
            }
            var recorded = Recorded()
            // Per subscription, in the order its attempts finished: the breaker, the
            // last attempt for its health, and its counts.
            var order: [Int64] = []
            var bySubscription: [Int64: [AttemptReport]] = [:]
            for report in reports {
                if bySubscription[report.outcome.subscriptionSeq] == nil { order.append(report.outcome.subscriptionSeq) }
                bySubscription[report.outcome.subscriptionSeq, default: []].append(report)
            }
            for subscription in order {
                let reports = bySubscription[subscription]!
                guard var target = try db.queryOne(StoreDeliveryQueue.breakerSQL.on(db.dialect), [.integer(subscription)],
                    map: StoreDeliveryQueue.target)
                else { continue }  // deleted meanwhile
                let stored = target.breaker
                var breaker = stored
                var transitions: [Breaker.Transition] = []
                for report in reports {
                    let outcome = report.outcome
                    let transition = outcome.delivered
                        ? breaker.succeeded(policy, now: now)
                        : breaker.failed(policy, isProbe: report.isProbe, retryAfter: report.retryAfter, now: now)
                    if let transition { transitions.append(transition) }
                    operational += StoreDeliveryQueue.operationalEvents(outcome, transition: transition, target: target, now: now)
                }
                breaker.answering = false
                if breaker != stored {
                    try db.run(
                        "UPDATE subscriptions SET failures = ?, failed_probes = ?, probe_not_before = ?, down_since = ? WHERE seq = ?",
                        [.int(breaker.consecutiveFailures), .int(breaker.failedProbes), .integer(breaker.probeNotBefore),
                         .optional(breaker.downSince), .integer(subscription)])
                }
                if transitions.contains(where: { if case .recovered = $0 { return true } else { return false } }) {
                    // Few rows: only attempted ones wait in the future (index deliveries_due).
                    try db.run(
                        "UPDATE deliveries SET next_attempt_at = ? WHERE subscription_seq = ? AND state = 0 AND next_attempt_at > ?",
                        [.integer(now), .integer(subscription), .integer(now)])
                }
                let last = reports.last!.outcome
                let (delivered, failed) = moved[subscription] ?? (0, 0)
                try db.run(StoreDeliveryQueue.lastAttemptSQL,
                    [.integer(last.attemptedAt), .optional(last.status.map(Int64.init)), .optional(last.error),
                     .int(last.delivered ? 1 : 0), .integer(last.attemptedAt), .int(delivered + failed), .int(delivered),
                     .int(failed), .integer(subscription)])
                target.breaker = breaker
                recorded.subscriptions.append(.init(target: target, breaker: breaker, transitions: transitions, lastStatus: last.status, lastError: last.error))
            }
            try tenants.apply(db)
            for event in operational { try StoreDeliveryQueue.publish(db, event, now: now) }
            recorded.operational = operational.map(\.type)
            return recorded
        }, completion: completion)
    }

    /// A subscription with its stored breaker, for the outcome write (locked on PostgreSQL).
    static let breakerSQL = LockingSQL("""
        SELECT seq, id, name, url, secret, paused, failures, failed_probes, probe_not_before, down_since
        FROM subscriptions WHERE seq = ?
        """)

    static func target(_ row: SQLRow) -> SubscriptionTarget {
        SubscriptionTarget(
            seq: row.int(0), id: row.text(1), name: row.text(2), url: row.text(3), secret: row.text(4),
            paused: row.int(5) != 0,
            breaker: Breaker(
                consecutiveFailures: Int(row.int(6)), failedProbes: Int(row.int(7)), probeNotBefore: row.int(8),
                downSince: row.optionalInt(9)))
    }

    /// What an outcome tells operators who subscribed to operational events:
    /// a delivery that gave up, a subscription that went down or came back.
    static func operationalEvents(
        _ outcome: AttemptOutcome, transition: Breaker.Transition?, target: SubscriptionTarget, now: Int64
    ) -> [OperationalEvent] {
        let subject: [(String, JSON)] = [("subscriptionId", .string(target.id)), ("subscription", .string(target.name))]
        var events: [OperationalEvent] = []
        // Not for an operational event's own delivery: two alerting hooks that are
        // both down would otherwise report each other's failures without end.
        if outcome.failed, outcome.delivery.domain != nil {
            events.append(OperationalEvent(type: .deliveryFailed, subscriptionSeq: target.seq, data: subject + [
                ("tenantId", .optional(outcome.delivery.tenantId)), ("domain", .optional(outcome.delivery.domain)),
                ("eventId", .string(outcome.delivery.eventId)), ("type", .string(outcome.delivery.type)),
                ("attempts", .int(outcome.delivery.attempts + 1)), ("lastStatus", .optional(outcome.status)),
                ("lastError", .optional(outcome.error)),
            ]))
        }
        switch transition {
        case .wentDown?:
            events.append(OperationalEvent(type: .subscriptionDown, subscriptionSeq: target.seq, data: subject + [
                ("url", .string(SubscriptionRules.maskingPassword(target.url))), ("since", .string(WallClock.rfc3339(now))),
                ("lastStatus", .optional(outcome.status)), ("lastError", .optional(outcome.error)),
            ], withBacklog: true))
        case .recovered(let downMillis)?:
            events.append(OperationalEvent(type: .subscriptionRecovered, subscriptionSeq: target.seq, data: subject + [
                ("downSeconds", .int(Int(downMillis / 1000))),
            ], withBacklog: true))
        case nil:
            break
        }
        return events
    }

    /// An outcome on a delivery still pending; returns its tenant.
    static let outcomeSQL = SQL("""
        UPDATE deliveries SET state = ?, attempts = attempts + 1, last_attempt_at = ?, last_status = ?,
            last_error = ?, next_attempt_at = ?, delivered_at = ?, claimed_until = NULL, claimed_by = NULL
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
