import Essentials

extension TopicStore {
    enum ChangeResult: Sendable {
        /// Committed with its event and deliveries.
        case changed(Tenant)
        /// Nothing to change: no event.
        case unchanged(Tenant)
        case deleted(Tenant)
        case notFound
    }

    /// Applies a change and publishes its event, in one transaction.
    func change(tenantId: String, _ change: TenantChange) async throws -> ChangeResult {
        try await engine.write { db in
            guard var row = try db.queryOne(
                "SELECT \(TenantRow.columns) FROM tenants WHERE id = ?", [.text(tenantId)], map: TenantRow.init)
            else { return .notFound }
            // A deleted tenant refuses every change, even one that would change nothing.
            if row.deletedAt != nil { return .deleted(try TopicStore.loadTenant(db, seq: row.seq)!) }
            var fields = try TopicStore.fields(db, eventSeq: row.lastEventSeq)
            let now = WallClock.nowMillis()
            let type: EventType
            switch change {
            case .update(let patch):
                let changed = patch.applied(to: fields)
                if changed == fields { return .unchanged(try TopicStore.loadTenant(db, seq: row.seq)!) }
                fields = changed
                type = .tenantUpdated
            case .deactivate, .activate:
                let active = if case .activate = change { true } else { false }
                if row.active == active { return .unchanged(try TopicStore.loadTenant(db, seq: row.seq)!) }
                row.active = active
                type = active ? .tenantActivated : .tenantDeactivated
            case .delete:
                row.deletedAt = now
                type = .tenantDeleted
            }
            row.updatedAt = now
            try TopicStore.appendEvent(db, tenant: &row, type: type, fields: fields, now: now)
            return .changed(try TopicStore.tenant(db, row: row, data: row.data(fields)))
        }
    }

    /// Inside a write: stores the tenant's next event (version + 1), its row
    /// as of that event, and one delivery per subscription that wants the type.
    static func appendEvent(_ db: any SQLDatabase, tenant row: inout TenantRow, type: EventType, fields: TenantFields, now: Int64) throws {
        // A new tenant (version 0) is not in a status bucket yet; a deleted one takes no event.
        let counted = row.version > 0
        row.version += 1
        let payload = JSON.object([
            ("type", .string(type.rawValue)), ("timestamp", .string(WallClock.rfc3339(now))), ("data", row.data(fields)),
        ]).serialized()
        row.lastEventSeq = try db.insert(insertEventSQL,
            [.text(RandomToken.identifier("evt")), .text(type.rawValue), .integer(row.seq), .text(row.domain), .int(row.version),
             .blob(payload), .integer(now)])
        let added = try createDeliveries(
            db, eventSeq: row.lastEventSeq, type: type, tenantSeq: row.seq, domain: row.domain, now: now)
        // The row with its pending count; its status bucket moves if the count or deleted_at changed it.
        guard let (pending, failed) = try db.queryOne(updateTenantSQL,
            [.int(row.active ? 1 : 0), .int(row.version), .integer(row.updatedAt), .optional(row.deletedAt),
             .integer(row.lastEventSeq), .int(added), .integer(row.seq)], map: { ($0.int(0), $0.int(1)) })
        else { return }
        try Counters.moveTenant(
            db, from: counted ? Counters.status(pending: pending - Int64(added), failed: failed) : nil,
            to: row.deletedAt == nil ? Counters.status(pending: pending, failed: failed) : nil)
    }

    /// One pending delivery of the event per subscription that wants its type
    /// (paused ones included). Due now if it heads its (subscription, domain)
    /// line, else it waits, unsent, behind the earlier event (next_attempt_at
    /// null); so does every event for a subscription still catching up
    /// (`deliver: all`), whose older events are not all queued yet. Counts
    /// them in each subscription's pending_n; gives their number, for the
    /// caller to count in the tenant's.
    @discardableResult
    static func createDeliveries(
        _ db: any SQLDatabase, eventSeq: Int64, type: EventType, tenantSeq: Int64?, domain: String?, now: Int64,
        except subscriptionSeq: Int64? = nil
    ) throws -> Int {
        let wanted = "," + type.rawValue + ","
        let added = try db.run(
            createDeliveriesSQL,
            [.integer(eventSeq), .optional(tenantSeq), .optional(domain), .integer(now), .text(wanted), .optional(subscriptionSeq)])
        // The same subscriptions as the INSERT's (a new event has no delivery yet: one each).
        if added > 0 {
            try db.run(countCreatedSQL,
                [.text(wanted), .optional(subscriptionSeq)])
            // Wakes every instance's dispatcher at commit (PostgreSQL folds repeats within a transaction).
            if db.dialect == .postgres { try db.run(notifySQL) }
        }
        return added
    }

    /// The channel on which an instance tells the others' dispatchers that deliveries were created.
    static let deliveriesChannel = "provisiond_deliveries"
    static let notifySQL = SQL("SELECT pg_notify('\(deliveriesChannel)', '')")

    static let createDeliveriesSQL = SQL("""
        INSERT INTO deliveries (subscription_seq, event_seq, tenant_seq, domain, state, created_at, next_attempt_at)
        SELECT s.seq, CAST(?1 AS BIGINT), CAST(?2 AS BIGINT), CAST(?3 AS TEXT), 0, CAST(?4 AS BIGINT),
            CASE WHEN s.backfill_next IS NOT NULL AND ?3 IS NOT NULL THEN NULL
                 WHEN EXISTS (SELECT 1 FROM deliveries d WHERE d.subscription_seq = s.seq AND d.domain = ?3 AND d.state != 1)
                 THEN NULL ELSE CAST(?4 AS BIGINT) END
        FROM subscriptions s WHERE instr(s.events, ?5) > 0 AND s.seq IS DISTINCT FROM CAST(?6 AS BIGINT)
        """)
    static let countCreatedSQL = SQL("UPDATE subscriptions SET pending_n = pending_n + 1 WHERE instr(events, ?1) > 0 AND seq IS DISTINCT FROM CAST(?2 AS BIGINT)")
    static let insertEventSQL = SQL(
        "INSERT INTO events (id, type, tenant_seq, domain, version, payload, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
    static let updateTenantSQL = SQL("""
        UPDATE tenants SET active = ?, version = ?, updated_at = ?, deleted_at = ?, last_event_seq = ?, pending_n = pending_n + ?
        WHERE seq = ? RETURNING pending_n, failed_n
        """)

    /// The admin, plan and attributes as of an event.
    static func fields(_ db: any SQLDatabase, eventSeq: Int64) throws -> TenantFields {
        let payload = try db.queryOne("SELECT payload FROM events WHERE seq = ?", [.integer(eventSeq)]) { $0.blob(0) } ?? []
        return TenantFields(data: (try? JSON.parse(payload))?["data"] ?? .null)
    }

    /// A tenant's events, oldest first; nil if the tenant does not exist.
    func events(tenantId: String, limit: Int, after: String?) async throws -> Page<TenantEvent>? {
        try await engine.read { db in
            guard let tenantSeq = try db.queryOne("SELECT seq FROM tenants WHERE id = ?", [.text(tenantId)], map: { $0.int(0) }) else {
                return nil
            }
            var afterSeq: Int64 = 0
            if let after {
                guard let seq = try db.queryOne(
                    "SELECT seq FROM events WHERE id = ? AND tenant_seq = ?", [.text(after), .integer(tenantSeq)], map: { $0.int(0) })
                else { throw InvalidRequest(field: "after", message: "is not a cursor this server issued") }
                afterSeq = seq
            }
            let events = try db.query(
                "SELECT id, type, version, created_at FROM events WHERE tenant_seq = ? AND seq > ? ORDER BY seq LIMIT ?",
                [.integer(tenantSeq), .integer(afterSeq), .int(limit + 1)]
            ) { TenantEvent(id: $0.text(0), type: $0.text(1), version: Int($0.int(2)), createdAt: $0.int(3)) }
            let items = Array(events.prefix(limit))
            return Page(items: items, next: events.count > limit ? items.last?.id : nil)
        }
    }
}
