import Essentials
import Foundation

/// The durable topic: tenants (each with its events), subscriptions, and one
/// delivery per event per subscription that wants it. The same code runs on
/// SQLite and on PostgreSQL: it sees only its `StoreEngine`.
package final class TopicStore: Sendable {
    let engine: any StoreEngine

    static let fileName = "provisiond.sqlite3"

    /// The SQLite store in `directory`.
    convenience init(directory: String) throws {
        let path = (directory as NSString).appendingPathComponent(TopicStore.fileName)
        try TopicStore.keepPrivate(path)
        self.init(engine: try SQLiteEngine(path: path))
    }

    init(engine: any StoreEngine) {
        self.engine = engine
    }

    /// For the start line: which store, and where.
    package var description: String { engine.description }

    /// The database holds the subscriptions' secrets: owner-only, like the
    /// token file. SQLite gives its -wal and -shm files the database file's
    /// mode, so creating it 0600 (or tightening an older one) covers all three.
    static func keepPrivate(_ path: String) throws {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SQLiteError(code: errno, message: "\(path): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(fd) }
        for file in [path, path + "-wal", path + "-shm"] { chmod(file, 0o600) }
    }

    /// Commits what is queued and closes the store's connections.
    func close() { engine.close() }

    /// Groups committed so far (group commit shows as fewer commits than writes).
    var commitCount: Int { engine.commits }

    func isUsable() async -> Bool {
        (try? await engine.read { db in try db.queryOne("SELECT count(*) FROM subscriptions") { $0.int(0) } }) != nil
    }

    // MARK: Tenants

    enum PublishResult: Sendable {
        case created(Tenant)
        case existing(Tenant)
        case conflict(existingId: String)
    }

    /// Stores the tenant with its creation event and one pending delivery per
    /// subscription that wants it (paused ones included), in one transaction;
    /// returns after the commit. A deleted tenant's domain is free again.
    func publish(_ request: TenantRequest) async throws -> PublishResult {
        try await engine.write { db in
            if let (seq, id, canonical) = try db.queryOne(
                "SELECT seq, id, request FROM tenants WHERE domain = ? AND deleted_at IS NULL", [.text(request.domain)],
                map: { ($0.int(0), $0.text(1), $0.text(2)) })
            {
                if canonical == request.canonical { return .existing(try TopicStore.loadTenant(db, seq: seq)!) }
                return .conflict(existingId: id)
            }
            let now = WallClock.nowMillis()
            let id = RandomToken.identifier("ten")
            let seq = try db.insert(TopicStore.insertTenantSQL,
                [.text(id), .text(request.domain), .text(request.canonical), .integer(now), .integer(now)])
            var row = TenantRow(seq: seq, id: id, domain: request.domain, createdAt: now)
            let fields = TenantFields(admin: request.admin, plan: request.plan, attributes: request.attributes)
            try TopicStore.appendEvent(db, tenant: &row, type: .tenantCreated, fields: fields, now: now)
            return .created(try TopicStore.tenant(db, row: row, data: row.data(fields)))
        }
    }

    static let insertTenantSQL = SQL("""
        INSERT INTO tenants (id, domain, request, active, version, last_event_seq, created_at, updated_at)
        VALUES (?, ?, ?, 1, 0, 0, ?, ?)
        """)

    func tenant(id: String) async throws -> Tenant? {
        try await engine.read { db in
            guard let seq = try db.queryOne("SELECT seq FROM tenants WHERE id = ?", [.text(id)], map: { $0.int(0) }) else { return nil }
            return try TopicStore.loadTenant(db, seq: seq)
        }
    }

    struct TenantFilter: Sendable {
        var domain: String?
        var status: TenantStatus?
        /// Live tenants (false) or only deleted ones (true).
        var deleted = false
        var limit = 100
        /// A tenant id from an earlier page's `next`.
        var after: String?
        init() {}
    }

    func tenants(_ filter: TenantFilter) async throws -> Page<Tenant> {
        let (list, next) = try await tenants(filter, into: ItemList())
        return Page(items: list.items, next: next)
    }

    /// The page's tenants go to `page` one by one, each loaded only once the
    /// one before is in: a page that fills up early loads no more (memory
    /// stays bounded whatever `limit` and the tenants' size). Gives the
    /// collector back with the cursor of the next page.
    func tenants<Collector: PageCollector>(
        _ filter: TenantFilter, into page: Collector
    ) async throws -> (Collector, next: String?) where Collector.Item == Tenant {
        try await engine.read { db in
            var afterSeq: Int64 = 0
            if let after = filter.after {
                guard let seq = try db.queryOne("SELECT seq FROM tenants WHERE id = ?", [.text(after)], map: { $0.int(0) }) else {
                    throw InvalidRequest(field: "after", message: "is not a cursor this server issued")
                }
                afterSeq = seq
            }
            var sql = "SELECT seq FROM tenants t WHERE seq > ? AND deleted_at IS \(filter.deleted ? "NOT NULL" : "NULL")"
            var bindings: [SQLValue] = [.integer(afterSeq)]
            if let domain = filter.domain {
                sql += " AND domain = ?"
                // The same ASCII-only lowercasing as the stored domains.
                bindings.append(.text(DomainName.lowercased(domain)))
            }
            let failed = "EXISTS (SELECT 1 FROM deliveries WHERE tenant_seq = t.seq AND state = 2)"
            let pending = "EXISTS (SELECT 1 FROM deliveries WHERE tenant_seq = t.seq AND state = 0)"
            switch filter.status {
            case .failed: sql += " AND \(failed)"
            case .pending: sql += " AND NOT \(failed) AND \(pending)"
            case .provisioned: sql += " AND NOT \(failed) AND NOT \(pending)"
            case nil: break
            }
            sql += " ORDER BY seq LIMIT ?"
            bindings.append(.int(filter.limit + 1))
            let seqs = try db.query(sql, bindings) { $0.int(0) }
            var page = page
            var last: String?
            for seq in seqs.prefix(filter.limit) {
                if page.isFull { return (page, last) }
                guard let tenant = try TopicStore.loadTenant(db, seq: seq) else { continue }
                page.add(tenant)
                last = tenant.id
            }
            return (page, seqs.count > filter.limit ? last : nil)
        }
    }

    static func loadTenant(_ db: any SQLDatabase, seq: Int64) throws -> Tenant? {
        guard let row = try db.queryOne(
            "SELECT \(TenantRow.columns) FROM tenants WHERE seq = ?", [.integer(seq)], map: TenantRow.init)
        else { return nil }
        return try tenant(db, row: row, data: row.data(try fields(db, eventSeq: row.lastEventSeq)))
    }

    /// The tenant with its deliveries, when its row and data are at hand
    /// (just written): its payload is not read back and parsed again.
    static func tenant(_ db: any SQLDatabase, row: TenantRow, data: JSON) throws -> Tenant {
        let deliveries = try db.query(tenantDeliveriesSQL, [.integer(row.seq)], map: delivery)
        return Tenant(id: row.id, data: data, deletedAt: row.deletedAt, deliveries: deliveries)
    }

    static let tenantDeliveriesSQL = SQL("\(deliverySelect) WHERE d.tenant_seq = ? ORDER BY d.event_seq, d.subscription_seq")

    /// A delivery with its subscription, event and tenant. `blockedBy`: the
    /// head of its (subscription, domain) line while it waits behind it. While
    /// its subscription is down only the next probe has a next attempt time
    /// (the due one the dispatcher takes first, not before the breaker
    /// allows); the rest wait behind it, and its success makes them due.
    static let deliverySelect = """
        SELECT s.id, s.name, t.id, e.domain, e.id, e.type,
            d.state, d.attempts, d.last_attempt_at, d.last_status, d.last_error,
            CASE WHEN s.down_since IS NULL THEN d.next_attempt_at
                 WHEN d.seq = (SELECT seq FROM deliveries WHERE subscription_seq = d.subscription_seq AND state = 0
                               AND next_attempt_at IS NOT NULL ORDER BY next_attempt_at LIMIT 1)
                 THEN CASE WHEN d.next_attempt_at > s.probe_not_before THEN d.next_attempt_at ELSE s.probe_not_before END END,
            d.delivered_at,
            CASE WHEN d.state = 0 AND d.next_attempt_at IS NULL THEN (
                SELECT e2.id FROM deliveries d2 JOIN events e2 ON e2.seq = d2.event_seq
                WHERE d2.subscription_seq = d.subscription_seq AND d2.domain = d.domain AND d2.state != 1 AND d2.event_seq < d.event_seq
                ORDER BY d2.event_seq LIMIT 1) END
        FROM deliveries d JOIN subscriptions s ON s.seq = d.subscription_seq JOIN events e ON e.seq = d.event_seq
        LEFT JOIN tenants t ON t.seq = d.tenant_seq
        """

    static func delivery(_ row: SQLRow) -> Delivery {
        let state = DeliveryState(rawValue: Int(row.int(6))) ?? .pending
        return Delivery(
            subscriptionId: row.text(0), subscriptionName: row.text(1), tenantId: row.optionalText(2), domain: row.optionalText(3),
            eventId: row.text(4), type: row.text(5), state: state, attempts: Int(row.int(7)), lastAttemptAt: row.optionalInt(8),
            lastStatus: row.optionalInt(9).map(Int.init), lastError: row.optionalText(10),
            nextAttemptAt: state == .pending ? row.optionalInt(11) : nil, deliveredAt: row.optionalInt(12),
            blockedBy: row.optionalText(13))
    }

    func tenantCount() async throws -> Int {
        try await engine.read(TopicStore.countTenants)
    }

    static func countTenants(_ db: any SQLDatabase) throws -> Int {
        Int(try db.queryOne("SELECT count(*) FROM tenants") { $0.int(0) } ?? 0)
    }

    // MARK: Subscriptions

    enum CreateSubscriptionResult: Sendable {
        case created(Subscription, secret: String)
        case nameTaken
    }

    func createSubscription(_ request: SubscriptionRequest) async throws -> CreateSubscriptionResult {
        try await engine.write { db in
            if try db.queryOne("SELECT 1 FROM subscriptions WHERE name = ?", [.text(request.name)], map: { _ in true }) != nil {
                return .nameTaken
            }
            let id = RandomToken.identifier("sub")
            let secret = request.secret ?? SubscriptionRules.generateSecret()
            let lastEvent = try db.queryOne("SELECT max(seq) FROM events") { $0.optionalInt(0) } ?? nil
            let backfill = request.deliverAll && lastEvent != nil
            let seq = try db.queryOne(
                """
                INSERT INTO subscriptions (id, name, url, secret, deliver, paused, created_at, backfill_next, backfill_until, events)
                VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?) RETURNING seq
                """,
                [.text(id), .text(request.name), .text(request.url), .text(secret), .text(request.deliverAll ? "all" : "new"),
                 .integer(WallClock.nowMillis()), backfill ? .integer(1) : .null, backfill ? .optional(lastEvent) : .null,
                 .text(EventType.stored(request.events))], map: { $0.int(0) })!
            return .created(try TopicStore.loadSubscription(db, seq: seq)!, secret: secret)
        }
    }

    /// Creates the next batch of catch-up deliveries for a `deliver: all`
    /// subscription; true while more remain. Batches keep the writer's
    /// transactions short however many tenants exist.
    func backfillStep(batchSize: Int = 2000) async throws -> Bool {
        try await engine.write { db in
            guard let (subscriptionSeq, next, until, events) = try db.queryOne(
                "SELECT seq, backfill_next, backfill_until, events FROM subscriptions WHERE backfill_next IS NOT NULL LIMIT 1",
                map: { ($0.int(0), $0.int(1), $0.int(2), $0.text(3)) })
            else { return false }
            let now = WallClock.nowMillis()
            let last = try db.queryOne(
                "SELECT max(seq) FROM (SELECT seq FROM events WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?) AS batch",
                [.integer(next), .integer(until), .int(batchSize)], map: { $0.optionalInt(0) }) ?? nil
            if let last {
                // The events of live tenants, in order: in each domain only the
                // first is due, and only if nothing earlier of it is unacknowledged.
                let added = try db.query(
                    """
                    INSERT INTO deliveries (subscription_seq, event_seq, tenant_seq, domain, state, created_at, next_attempt_at)
                    SELECT CAST(?1 AS BIGINT), e.seq, e.tenant_seq, e.domain, 0, CAST(?2 AS BIGINT),
                        CASE WHEN row_number() OVER (PARTITION BY e.domain ORDER BY e.seq) = 1 AND NOT EXISTS (
                            SELECT 1 FROM deliveries d
                            WHERE d.subscription_seq = ?1 AND d.domain = e.domain AND d.state != 1 AND d.event_seq < e.seq)
                        THEN CAST(?2 AS BIGINT) END
                    FROM events e JOIN tenants t ON t.seq = e.tenant_seq
                    WHERE e.seq >= ?3 AND e.seq <= ?4 AND t.deleted_at IS NULL AND instr(?5, ',' || e.type || ',') > 0
                    ORDER BY e.seq
                    ON CONFLICT DO NOTHING
                    RETURNING tenant_seq
                    """,
                    [.integer(subscriptionSeq), .integer(now), .integer(next), .integer(last), .text(events)],
                    map: { $0.optionalInt(0) })
                if !added.isEmpty {
                    try db.run("UPDATE subscriptions SET pending_n = pending_n + ? WHERE seq = ?", [.int(added.count), .integer(subscriptionSeq)])
                    var tenants = Counters.Tenants()
                    for tenant in added { tenants.add(tenant, pending: 1) }
                    try tenants.apply(db)
                }
            }
            if let last, last < until {
                try db.run("UPDATE subscriptions SET backfill_next = ? WHERE seq = ?", [.integer(last + 1), .integer(subscriptionSeq)])
            } else {
                try db.run("UPDATE subscriptions SET backfill_next = NULL, backfill_until = NULL WHERE seq = ?", [.integer(subscriptionSeq)])
                // Events published while it caught up waited (see createDeliveries): those that
                // now head their line go.
                try TopicStore.releaseHeads(db, subscription: subscriptionSeq, now: now)
            }
            return true
        }
    }

    func subscriptions() async throws -> [Subscription] {
        try await engine.read { db in
            try db.query("\(TopicStore.subscriptionSelect) ORDER BY seq", map: TopicStore.subscription)
        }
    }

    /// `key`: a subscription's id or its name (an id wins where both match).
    func subscription(id key: String) async throws -> Subscription? {
        try await engine.read { db in try TopicStore.loadSubscription(db, key: key) }
    }

    func secret(subscriptionId key: String) async throws -> String? {
        try await engine.read { db in
            guard let seq = try TopicStore.subscriptionSeq(db, key: key) else { return nil }
            return try db.queryOne("SELECT secret FROM subscriptions WHERE seq = ?", [.integer(seq)]) { $0.text(0) }
        }
    }

    func updateSubscription(id key: String, _ patch: SubscriptionPatch) async throws -> Subscription? {
        try await engine.write { db in
            guard let seq = try TopicStore.subscriptionSeq(db, key: key) else { return nil }
            if let url = patch.url {
                // A new URL, or an unpause below: a down subscription is probed now (see `Breaker.probeNow`).
                try db.run("UPDATE subscriptions SET url = ?, probe_not_before = 0 WHERE seq = ?", [.text(url), .integer(seq)])
            }
            if let paused = patch.paused {
                try db.run("UPDATE subscriptions SET paused = ?, probe_not_before = 0 WHERE seq = ?", [.int(paused ? 1 : 0), .integer(seq)])
            }
            if let events = patch.events {
                try db.run("UPDATE subscriptions SET events = ? WHERE seq = ?", [.text(EventType.stored(events)), .integer(seq)])
            }
            return try TopicStore.loadSubscription(db, seq: seq)
        }
    }

    /// Deletes the subscription and, by cascade, all its deliveries; its id, or nil if there was none.
    func deleteSubscription(id key: String) async throws -> String? {
        try await engine.write { db in
            guard let seq = try TopicStore.subscriptionSeq(db, key: key) else { return nil }
            let id = try db.queryOne("SELECT id FROM subscriptions WHERE seq = ?", [.integer(seq)]) { $0.text(0) }
            // Its deliveries leave their tenants' counts (its own go with its row).
            var tenants = Counters.Tenants()
            for (tenant, pending, failed) in try db.query(
                """
                SELECT tenant_seq, sum(CASE WHEN state = 0 THEN 1 ELSE 0 END), sum(CASE WHEN state = 2 THEN 1 ELSE 0 END) FROM deliveries
                WHERE subscription_seq = ? AND state != 1 AND tenant_seq IS NOT NULL GROUP BY tenant_seq
                """, [.integer(seq)], map: { ($0.int(0), Int($0.int(1)), Int($0.int(2))) })
            {
                tenants.add(tenant, pending: -pending, failed: -failed)
            }
            try db.run("DELETE FROM subscriptions WHERE seq = ?", [.integer(seq)])
            try tenants.apply(db)
            return id
        }
    }

    struct RetryResult: Sendable {
        var id: String
        var requeued: Int
        /// It counts as down: the operator's retry probes it now.
        var probing: Bool
    }

    /// Failed deliveries become pending and due now, with a fresh round of attempts.
    func retryFailed(subscriptionId key: String) async throws -> RetryResult? {
        try await engine.write { db in
            guard let seq = try TopicStore.subscriptionSeq(db, key: key),
                  let (id, down) = try db.queryOne(
                    "SELECT id, down_since IS NOT NULL FROM subscriptions WHERE seq = ?", [.integer(seq)],
                    map: { ($0.text(0), $0.int(1) != 0) })
            else { return nil }
            let requeued = try db.query(
                "UPDATE deliveries SET state = 0, attempts = 0, next_attempt_at = ? WHERE subscription_seq = ? AND state = 2 RETURNING tenant_seq",
                [.integer(WallClock.nowMillis()), .integer(seq)], map: { $0.optionalInt(0) })
            // The operator's retry probes a down subscription now (see `Breaker.probeNow`).
            try db.run("UPDATE subscriptions SET probe_not_before = 0 WHERE seq = ?", [.integer(seq)])
            if !requeued.isEmpty {
                try db.run(
                    "UPDATE subscriptions SET pending_n = pending_n + ?1, failed_n = failed_n - ?1 WHERE seq = ?2",
                    [.int(requeued.count), .integer(seq)])
                var tenants = Counters.Tenants()
                for tenant in requeued { tenants.add(tenant, pending: 1, failed: -1) }
                try tenants.apply(db)
            }
            return RetryResult(id: id, requeued: requeued.count, probing: down)
        }
    }

    /// A subscription's seq by its id, else by its name.
    static func subscriptionSeq(_ db: any SQLDatabase, key: String) throws -> Int64? {
        if let seq = try db.queryOne("SELECT seq FROM subscriptions WHERE id = ?", [.text(key)], map: { $0.int(0) }) { return seq }
        return try db.queryOne("SELECT seq FROM subscriptions WHERE name = ?", [.text(key)], map: { $0.int(0) })
    }

    struct DeliveryFilter: Sendable {
        var state: DeliveryState?
        var limit = 100
        /// A tenant id from an earlier page's `next`.
        var after: String?
        init() {}
    }

    /// A subscription's deliveries in event order; nil if it does not exist.
    func deliveries(subscriptionId: String, _ filter: DeliveryFilter) async throws -> Page<Delivery>? {
        guard let (list, next) = try await deliveries(subscriptionId: subscriptionId, filter, into: ItemList()) else { return nil }
        return Page(items: list.items, next: next)
    }

    /// The same into a collector that may end the page early (see `tenants(_:into:)`).
    func deliveries<Collector: PageCollector>(
        subscriptionId: String, _ filter: DeliveryFilter, into page: Collector
    ) async throws -> (Collector, next: String?)? where Collector.Item == Delivery {
        try await engine.read { db in
            guard let seq = try TopicStore.subscriptionSeq(db, key: subscriptionId) else { return nil }
            var afterSeq: Int64 = 0
            if let after = filter.after {
                guard let eventSeq = try db.queryOne(
                    "SELECT e.seq FROM events e JOIN deliveries d ON d.event_seq = e.seq AND d.subscription_seq = ? WHERE e.id = ?",
                    [.integer(seq), .text(after)], map: { $0.int(0) })
                else { throw InvalidRequest(field: "after", message: "is not a cursor this server issued") }
                afterSeq = eventSeq
            }
            var sql = "\(TopicStore.deliverySelect) WHERE d.subscription_seq = ? AND d.event_seq > ?"
            var bindings: [SQLValue] = [.integer(seq), .integer(afterSeq)]
            if let state = filter.state {
                sql += " AND d.state = ?"
                bindings.append(.int(state.rawValue))
            }
            sql += " ORDER BY d.event_seq LIMIT ?"
            bindings.append(.int(filter.limit + 1))
            let rows = try db.query(sql, bindings, map: TopicStore.delivery)
            var page = page
            var last: String?
            for delivery in rows.prefix(filter.limit) {
                if page.isFull { return (page, last) }
                page.add(delivery)
                last = delivery.eventId
            }
            return (page, rows.count > filter.limit ? last : nil)
        }
    }

    static func loadSubscription(_ db: any SQLDatabase, key: String) throws -> Subscription? {
        guard let seq = try subscriptionSeq(db, key: key) else { return nil }
        return try loadSubscription(db, seq: seq)
    }

    static func loadSubscription(_ db: any SQLDatabase, seq: Int64) throws -> Subscription? {
        try db.queryOne("\(subscriptionSelect) WHERE seq = ?", [.integer(seq)], map: subscription)
    }

    /// A subscription with its counts and health, from its own row: the same
    /// time whatever its backlog. Its oldest pending delivery is one seek in
    /// deliveries_by_state (the first pending one in event order).
    static let subscriptionSelect = """
        SELECT seq, id, name, url, deliver, paused, created_at, events, pending_n, delivered_n, failed_n,
            down_since, last_attempt_at, last_success_at, last_status, last_error,
            (SELECT coalesce(d.created_at, e.created_at) FROM deliveries d JOIN events e ON e.seq = d.event_seq
             WHERE d.subscription_seq = subscriptions.seq AND d.state = 0 ORDER BY d.event_seq LIMIT 1)
        FROM subscriptions
        """

    static func subscription(_ row: SQLRow) -> Subscription {
        Subscription(
            seq: row.int(0), id: row.text(1), name: row.text(2), url: row.text(3), deliver: row.text(4),
            paused: row.int(5) != 0, createdAt: row.int(6), events: EventType.parseStored(row.text(7)),
            counts: DeliveryCounts(pending: Int(row.int(8)), delivered: Int(row.int(9)), failed: Int(row.int(10))),
            downSince: row.optionalInt(11), lastAttemptAt: row.optionalInt(12), lastSuccessAt: row.optionalInt(13),
            lastStatus: row.optionalInt(14).map(Int.init), lastError: row.optionalText(15), oldestPendingAt: row.optionalInt(16))
    }

    /// Live tenants by status, kept by the writer as deliveries change (see `Counters`).
    func tenantStats() async throws -> TenantStats {
        try await engine.read { db in
            var stats = TenantStats()
            for (status, n) in try db.query("SELECT status, n FROM tenant_stats", map: { ($0.text(0), Int($0.int(1))) }) {
                switch TenantStatus(rawValue: status) {
                case .pending: stats.pending = n
                case .provisioned: stats.provisioned = n
                case .failed: stats.failed = n
                case nil: break
                }
            }
            return stats
        }
    }
}
