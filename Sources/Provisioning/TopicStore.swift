import Foundation
import HTTPServer

/// The durable topic on SQLite: tenants (each with its published event),
/// subscriptions, and one delivery per event per subscription. All writes go
/// through the group-committing writer; reads use their own connections.
public final class TopicStore: Sendable {
    public let path: String
    let writer: StoreWriter
    let readers: ReaderPool

    public static let fileName = "provisiond.sqlite3"

    public init(directory: String) throws {
        path = (directory as NSString).appendingPathComponent(TopicStore.fileName)
        try TopicStore.keepPrivate(path)
        writer = try StoreWriter(path: path)
        readers = ReaderPool(path: path)
    }

    /// The database holds the subscriptions' secrets: owner-only, like the
    /// token file. SQLite gives its -wal and -shm files the database file's
    /// mode, so creating it 0600 (or tightening an older one) covers all three.
    static func keepPrivate(_ path: String) throws {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SQLiteError(code: errno, message: "\(path): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(fd) }
        for file in [path, path + "-wal", path + "-shm"] { chmod(file, 0o600) }
    }

    /// Commits what is queued and closes the writer.
    public func close() { writer.close() }

    /// Groups committed so far (group commit shows as fewer commits than writes).
    public var commitCount: Int { writer.commits }

    public func isUsable() async -> Bool {
        (try? await readers.read { db in try db.queryOne("SELECT count(*) FROM subscriptions") { $0.int(0) } }) != nil
    }

    // MARK: Tenants

    public enum PublishResult: Sendable {
        case created(Tenant)
        case existing(Tenant)
        case conflict(existingId: String)
    }

    /// Stores the tenant, its event and one pending delivery per subscription
    /// (paused ones included), in one transaction; returns after the commit.
    public func publish(_ request: TenantRequest) async throws -> PublishResult {
        try await writer.write { db in
            if let (seq, id, canonical) = try db.queryOne(
                "SELECT seq, id, request FROM tenants WHERE domain = ?", [.text(request.domain)],
                map: { ($0.int(0), $0.text(1), $0.text(2)) })
            {
                if canonical == request.canonical { return .existing(try TopicStore.loadTenant(db, seq: seq)!) }
                return .conflict(existingId: id)
            }
            let now = WallClock.nowMillis()
            let id = RandomToken.identifier("ten")
            let eventId = RandomToken.identifier("evt")
            let data = JSON.object([
                ("id", .string(id)), ("domain", .string(request.domain)), ("admin", request.admin),
                ("plan", .optional(request.plan)), ("attributes", request.attributes),
                ("createdAt", .string(WallClock.rfc3339(now))),
            ])
            let payload = JSON.object([
                ("type", .string("tenant.created")), ("timestamp", .string(WallClock.rfc3339(now))), ("data", data),
            ]).serialized()
            try db.run(
                "INSERT INTO tenants (id, domain, request, event_id, payload, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [.text(id), .text(request.domain), .text(request.canonical), .text(eventId), .blob(payload), .integer(now)])
            let seq = db.lastInsertRowID
            try db.run(
                "INSERT INTO deliveries (subscription_seq, tenant_seq, state, next_attempt_at) SELECT seq, ?, 0, ? FROM subscriptions",
                [.integer(seq), .integer(now)])
            return .created(try TopicStore.loadTenant(db, seq: seq)!)
        }
    }

    public func tenant(id: String) async throws -> Tenant? {
        try await readers.read { db in
            guard let seq = try db.queryOne("SELECT seq FROM tenants WHERE id = ?", [.text(id)], map: { $0.int(0) }) else { return nil }
            return try TopicStore.loadTenant(db, seq: seq)
        }
    }

    public struct TenantFilter: Sendable {
        public var domain: String?
        public var status: TenantStatus?
        public var limit = 100
        /// A tenant id from an earlier page's `next`.
        public var after: String?
        public init() {}
    }

    public func tenants(_ filter: TenantFilter) async throws -> Page<Tenant> {
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
        try await readers.read { db in
            var afterSeq: Int64 = 0
            if let after = filter.after {
                guard let seq = try db.queryOne("SELECT seq FROM tenants WHERE id = ?", [.text(after)], map: { $0.int(0) }) else {
                    throw InvalidRequest(field: "after", message: "is not a cursor this server issued")
                }
                afterSeq = seq
            }
            var sql = "SELECT seq FROM tenants t WHERE seq > ?"
            var bindings: [SQLiteValue] = [.integer(afterSeq)]
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

    static func loadTenant(_ db: SQLiteConnection, seq: Int64) throws -> Tenant? {
        guard let (id, eventId, payload) = try db.queryOne(
            "SELECT id, event_id, payload FROM tenants WHERE seq = ?", [.integer(seq)],
            map: { ($0.text(0), $0.text(1), $0.blob(2)) })
        else { return nil }
        let data = (try? JSON.parse(payload))?["data"] ?? .null
        let domain = data["domain"]?.stringValue ?? ""
        let deliveries = try db.query(
            """
            SELECT s.id, s.name, \(TopicStore.deliveryColumns) FROM deliveries d JOIN subscriptions s ON s.seq = d.subscription_seq
            WHERE d.tenant_seq = ? ORDER BY s.seq
            """, [.integer(seq)]
        ) { row in
            delivery(row, offset: 2, subscriptionId: row.text(0), subscriptionName: row.text(1), tenantId: id, domain: domain, eventId: eventId)
        }
        return Tenant(id: id, data: data, deliveries: deliveries)
    }

    static let deliveryColumns = "d.state, d.attempts, d.last_attempt_at, d.last_status, d.last_error, d.next_attempt_at, d.delivered_at"

    static func delivery(
        _ row: SQLiteRow, offset o: Int32, subscriptionId: String, subscriptionName: String,
        tenantId: String, domain: String, eventId: String
    ) -> Delivery {
        let state = DeliveryState(rawValue: Int(row.int(o))) ?? .pending
        return Delivery(
            subscriptionId: subscriptionId, subscriptionName: subscriptionName, tenantId: tenantId, domain: domain,
            eventId: eventId, state: state, attempts: Int(row.int(o + 1)), lastAttemptAt: row.optionalInt(o + 2),
            lastStatus: row.optionalInt(o + 3).map(Int.init), lastError: row.optionalText(o + 4),
            nextAttemptAt: state == .pending ? row.optionalInt(o + 5) : nil, deliveredAt: row.optionalInt(o + 6))
    }

    public func tenantCount() async throws -> Int {
        try await readers.read(TopicStore.countTenants)
    }

    static func countTenants(_ db: SQLiteConnection) throws -> Int {
        Int(try db.queryOne("SELECT count(*) FROM tenants") { $0.int(0) } ?? 0)
    }

    // MARK: Subscriptions

    public enum CreateSubscriptionResult: Sendable {
        case created(Subscription, secret: String)
        case nameTaken
    }

    public func createSubscription(_ request: SubscriptionRequest) async throws -> CreateSubscriptionResult {
        try await writer.write { db in
            if try db.queryOne("SELECT 1 FROM subscriptions WHERE name = ?", [.text(request.name)], map: { _ in true }) != nil {
                return .nameTaken
            }
            let id = RandomToken.identifier("sub")
            let secret = request.secret ?? SubscriptionRules.generateSecret()
            let lastTenant = try db.queryOne("SELECT max(seq) FROM tenants") { $0.optionalInt(0) } ?? nil
            let backfill = request.deliverAll && lastTenant != nil
            try db.run(
                """
                INSERT INTO subscriptions (id, name, url, secret, deliver, paused, created_at, backfill_next, backfill_until)
                VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)
                """,
                [.text(id), .text(request.name), .text(request.url), .text(secret), .text(request.deliverAll ? "all" : "new"),
                 .integer(WallClock.nowMillis()), backfill ? .integer(1) : .null, backfill ? .optional(lastTenant) : .null])
            return .created(try TopicStore.loadSubscription(db, id: id)!, secret: secret)
        }
    }

    /// Creates the next batch of catch-up deliveries for a `deliver: all`
    /// subscription; true while more remain. Batches keep the writer's
    /// transactions short however many tenants exist.
    public func backfillStep(batchSize: Int = 2000) async throws -> Bool {
        try await writer.write { db in
            guard let (subscriptionSeq, next, until) = try db.queryOne(
                "SELECT seq, backfill_next, backfill_until FROM subscriptions WHERE backfill_next IS NOT NULL LIMIT 1",
                map: { ($0.int(0), $0.int(1), $0.int(2)) })
            else { return false }
            let last = try db.queryOne(
                "SELECT max(seq) FROM (SELECT seq FROM tenants WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?)",
                [.integer(next), .integer(until), .int(batchSize)], map: { $0.optionalInt(0) }) ?? nil
            if let last {
                try db.run(
                    """
                    INSERT OR IGNORE INTO deliveries (subscription_seq, tenant_seq, state, next_attempt_at)
                    SELECT ?, seq, 0, ? FROM tenants WHERE seq >= ? AND seq <= ?
                    """,
                    [.integer(subscriptionSeq), .integer(WallClock.nowMillis()), .integer(next), .integer(last)])
            }
            if let last, last < until {
                try db.run("UPDATE subscriptions SET backfill_next = ? WHERE seq = ?", [.integer(last + 1), .integer(subscriptionSeq)])
            } else {
                try db.run("UPDATE subscriptions SET backfill_next = NULL, backfill_until = NULL WHERE seq = ?", [.integer(subscriptionSeq)])
            }
            return true
        }
    }

    public func subscriptions() async throws -> [Subscription] {
        try await readers.read { db in
            let ids = try db.query("SELECT id FROM subscriptions ORDER BY seq") { $0.text(0) }
            return try ids.compactMap { try TopicStore.loadSubscription(db, id: $0) }
        }
    }

    public func subscription(id: String) async throws -> Subscription? {
        try await readers.read { db in try TopicStore.loadSubscription(db, id: id) }
    }

    public func secret(subscriptionId: String) async throws -> String? {
        try await readers.read { db in
            try db.queryOne("SELECT secret FROM subscriptions WHERE id = ?", [.text(subscriptionId)]) { $0.text(0) }
        }
    }

    public func updateSubscription(id: String, _ patch: SubscriptionPatch) async throws -> Subscription? {
        try await writer.write { db in
            if let url = patch.url {
                try db.run("UPDATE subscriptions SET url = ? WHERE id = ?", [.text(url), .text(id)])
            }
            if let paused = patch.paused {
                try db.run("UPDATE subscriptions SET paused = ? WHERE id = ?", [.int(paused ? 1 : 0), .text(id)])
            }
            return try TopicStore.loadSubscription(db, id: id)
        }
    }

    /// Deletes the subscription and, by cascade, all its deliveries.
    public func deleteSubscription(id: String) async throws -> Bool {
        try await writer.write { db in
            try db.run("DELETE FROM subscriptions WHERE id = ?", [.text(id)]) > 0
        }
    }

    /// Failed deliveries become pending and due now, with a fresh round of attempts.
    public func retryFailed(subscriptionId: String) async throws -> Int? {
        try await writer.write { db in
            guard let seq = try db.queryOne("SELECT seq FROM subscriptions WHERE id = ?", [.text(subscriptionId)], map: { $0.int(0) }) else {
                return nil
            }
            return try db.run(
                "UPDATE deliveries SET state = 0, attempts = 0, next_attempt_at = ? WHERE subscription_seq = ? AND state = 2",
                [.integer(WallClock.nowMillis()), .integer(seq)])
        }
    }

    public struct DeliveryFilter: Sendable {
        public var state: DeliveryState?
        public var limit = 100
        /// A tenant id from an earlier page's `next`.
        public var after: String?
        public init() {}
    }

    /// A subscription's deliveries in tenant order; nil if it does not exist.
    public func deliveries(subscriptionId: String, _ filter: DeliveryFilter) async throws -> Page<Delivery>? {
        guard let (list, next) = try await deliveries(subscriptionId: subscriptionId, filter, into: ItemList()) else { return nil }
        return Page(items: list.items, next: next)
    }

    /// The same into a collector that may end the page early (see `tenants(_:into:)`).
    func deliveries<Collector: PageCollector>(
        subscriptionId: String, _ filter: DeliveryFilter, into page: Collector
    ) async throws -> (Collector, next: String?)? where Collector.Item == Delivery {
        try await readers.read { db in
            guard let (seq, name) = try db.queryOne(
                "SELECT seq, name FROM subscriptions WHERE id = ?", [.text(subscriptionId)], map: { ($0.int(0), $0.text(1)) })
            else { return nil }
            var afterSeq: Int64 = 0
            if let after = filter.after {
                guard let tenantSeq = try db.queryOne(
                    "SELECT t.seq FROM tenants t JOIN deliveries d ON d.tenant_seq = t.seq AND d.subscription_seq = ? WHERE t.id = ?",
                    [.integer(seq), .text(after)], map: { $0.int(0) })
                else { throw InvalidRequest(field: "after", message: "is not a cursor this server issued") }
                afterSeq = tenantSeq
            }
            var sql = """
                SELECT t.id, t.domain, t.event_id, \(TopicStore.deliveryColumns) FROM deliveries d JOIN tenants t ON t.seq = d.tenant_seq
                WHERE d.subscription_seq = ? AND d.tenant_seq > ?
                """
            var bindings: [SQLiteValue] = [.integer(seq), .integer(afterSeq)]
            if let state = filter.state {
                sql += " AND d.state = ?"
                bindings.append(.int(state.rawValue))
            }
            sql += " ORDER BY d.tenant_seq LIMIT ?"
            bindings.append(.int(filter.limit + 1))
            let rows = try db.query(sql, bindings) { row in
                TopicStore.delivery(
                    row, offset: 3, subscriptionId: subscriptionId, subscriptionName: name, tenantId: row.text(0),
                    domain: row.text(1), eventId: row.text(2))
            }
            var page = page
            var last: String?
            for delivery in rows.prefix(filter.limit) {
                if page.isFull { return (page, last) }
                page.add(delivery)
                last = delivery.tenantId
            }
            return (page, rows.count > filter.limit ? last : nil)
        }
    }

    static func loadSubscription(_ db: SQLiteConnection, id: String) throws -> Subscription? {
        guard var subscription = try db.queryOne(
            "SELECT seq, id, name, url, deliver, paused, created_at FROM subscriptions WHERE id = ?", [.text(id)],
            map: { row in
                Subscription(
                    seq: row.int(0), id: row.text(1), name: row.text(2), url: row.text(3), deliver: row.text(4),
                    paused: row.int(5) != 0, createdAt: row.int(6), counts: DeliveryCounts())
            })
        else { return nil }
        for (state, count) in try db.query(
            "SELECT state, count(*) FROM deliveries WHERE subscription_seq = ? GROUP BY state", [.integer(subscription.seq)],
            map: { ($0.int(0), Int($0.int(1))) })
        {
            switch DeliveryState(rawValue: Int(state)) {
            case .pending: subscription.counts.pending = count
            case .delivered: subscription.counts.delivered = count
            case .failed: subscription.counts.failed = count
            case nil: break
            }
        }
        return subscription
    }

    /// Pending deliveries per subscription name, for the backlog metric.
    public func backlog() async throws -> [(String, Int)] {
        try await readers.read { db in
            try db.query(
                """
                SELECT s.name, (SELECT count(*) FROM deliveries d WHERE d.subscription_seq = s.seq AND d.state = 0)
                FROM subscriptions s ORDER BY s.seq
                """, map: { ($0.text(0), Int($0.int(1))) })
        }
    }
}
