extension TopicStore {
    /// Delivers again, to one subscription, every event of a type it wants
    /// accepted since `since`, with its original webhook-id, in order: each
    /// becomes pending with a fresh round of attempts, waiting behind the
    /// earlier ones of its domain. Nil if the subscription does not exist.
    func replay(subscriptionId key: String, since: Int64) async throws -> Int? {
        try await engine.write { db in
            guard let seq = try TopicStore.subscriptionSeq(db, key: key),
                  let events = try db.queryOne("SELECT events FROM subscriptions WHERE seq = ?", [.integer(seq)], map: { $0.text(0) })
            else { return nil }
            let now = WallClock.nowMillis()
            // Events it never had a delivery for (accepted before it subscribed, or then unwanted).
            let added = try db.query(
                """
                INSERT INTO deliveries (subscription_seq, event_seq, tenant_seq, domain, state, created_at, next_attempt_at)
                SELECT CAST(?1 AS BIGINT), e.seq, e.tenant_seq, e.domain, 0, CAST(?2 AS BIGINT), NULL FROM events e
                WHERE e.created_at >= ?3 AND instr(?4, ',' || e.type || ',') > 0 ORDER BY e.seq
                ON CONFLICT DO NOTHING
                RETURNING tenant_seq
                """, [.integer(seq), .integer(now), .integer(since), .text(events)], map: { $0.optionalInt(0) })
            // The ones it had: again, from the start. Delivered and failed
            // ones apart, to move each out of its own count.
            var again: [DeliveryState: [Int64?]] = [:]
            for state in [DeliveryState.delivered, .failed] {
                again[state] = try db.query(
                    """
                    UPDATE deliveries SET state = 0, attempts = 0, next_attempt_at = NULL, created_at = ?2
                    WHERE subscription_seq = ?1 AND state = ?5
                      AND event_seq IN (SELECT seq FROM events WHERE created_at >= ?3 AND instr(?4, ',' || type || ',') > 0)
                    RETURNING tenant_seq
                    """, [.integer(seq), .integer(now), .integer(since), .text(events), .int(state.rawValue)],
                    map: { $0.optionalInt(0) })
            }
            let delivered = again[.delivered] ?? [], failed = again[.failed] ?? []
            let requeued = added.count + delivered.count + failed.count
            if requeued > 0 {
                try db.run(
                    "UPDATE subscriptions SET pending_n = pending_n + ?, delivered_n = delivered_n - ?, failed_n = failed_n - ? WHERE seq = ?",
                    [.int(requeued), .int(delivered.count), .int(failed.count), .integer(seq)])
                var tenants = Counters.Tenants()
                for tenant in added + delivered { tenants.add(tenant, pending: 1) }
                for tenant in failed { tenants.add(tenant, pending: 1, failed: -1) }
                try tenants.apply(db)
            }
            try TopicStore.releaseHeads(db, subscription: seq, now: now)
            return requeued
        }
    }

    /// Every waiting delivery of the subscription that now heads its line
    /// (or has no line: an operational event) becomes due. One pass over its
    /// waiting deliveries: for operator actions and the end of a catch-up.
    static func releaseHeads(_ db: any SQLDatabase, subscription: Int64, now: Int64) throws {
        try db.run(
            """
            UPDATE deliveries SET next_attempt_at = ?1
            WHERE subscription_seq = ?2 AND state = 0 AND next_attempt_at IS NULL AND NOT EXISTS (
                SELECT 1 FROM deliveries d WHERE d.subscription_seq = ?2 AND d.domain = deliveries.domain
                AND d.state != 1 AND d.event_seq < deliveries.event_seq)
            """,
            [.integer(now), .integer(subscription)])
    }
}
