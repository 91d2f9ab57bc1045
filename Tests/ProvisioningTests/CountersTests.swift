import Foundation
import XCTest

@testable import Provisioning

/// The counts a subscription and GET /status show are kept by the writer as
/// deliveries change (`Counters`). After every kind of change, they must equal what
/// counting the rows gives.
final class CountersTests: XCTestCase {
    private func assertCountsMatchRows(_ store: TopicStore, _ step: String, file: StaticString = #filePath, line: UInt = #line) async throws {
        let (kept, counted, stats, derived) = try await store.engine.read { db in
            let kept = try db.query("SELECT seq, pending_n, delivered_n, failed_n FROM subscriptions ORDER BY seq") {
                [$0.int(0), $0.int(1), $0.int(2), $0.int(3)]
            }
            let counted = try db.query(
                """
                SELECT s.seq, (SELECT count(*) FROM deliveries WHERE subscription_seq = s.seq AND state = 0),
                    (SELECT count(*) FROM deliveries WHERE subscription_seq = s.seq AND state = 1),
                    (SELECT count(*) FROM deliveries WHERE subscription_seq = s.seq AND state = 2)
                FROM subscriptions s ORDER BY s.seq
                """) { [$0.int(0), $0.int(1), $0.int(2), $0.int(3)] }
            let stats = Dictionary(uniqueKeysWithValues: try db.query("SELECT status, n FROM tenant_stats") { ($0.text(0), $0.int(1)) })
            let derived = Dictionary(uniqueKeysWithValues: try db.query(
                """
                SELECT status, count(*) FROM (SELECT CASE
                    WHEN EXISTS (SELECT 1 FROM deliveries WHERE tenant_seq = t.seq AND state = 2) THEN 'failed'
                    WHEN EXISTS (SELECT 1 FROM deliveries WHERE tenant_seq = t.seq AND state = 0) THEN 'pending'
                    ELSE 'provisioned' END AS status FROM tenants t WHERE deleted_at IS NULL) AS live GROUP BY status
                """) { ($0.text(0), $0.int(1)) })
            let tenantsKept = try db.query("SELECT seq, pending_n, failed_n FROM tenants ORDER BY seq") { [$0.int(0), $0.int(1), $0.int(2)] }
            let tenantsCounted = try db.query(
                """
                SELECT t.seq, (SELECT count(*) FROM deliveries WHERE tenant_seq = t.seq AND state = 0),
                    (SELECT count(*) FROM deliveries WHERE tenant_seq = t.seq AND state = 2)
                FROM tenants t ORDER BY t.seq
                """) { [$0.int(0), $0.int(1), $0.int(2)] }
            XCTAssertEqual(tenantsKept, tenantsCounted, "tenant counts after \(step)", file: file, line: line)
            return (kept, counted, stats, derived)
        }
        XCTAssertEqual(kept, counted, "subscription counts after \(step)", file: file, line: line)
        for status in ["pending", "provisioned", "failed"] {
            XCTAssertEqual(stats[status] ?? 0, derived[status] ?? 0, "\(status) tenants after \(step)", file: file, line: line)
        }
    }

    /// Outcomes as the dispatcher writes them, for every pending due delivery of a subscription.
    private func recordAll(_ store: TopicStore, subscription: Subscription, delivered: Bool, failed: Bool = false) async throws {
        let queue = store.makeDeliveryQueue(
            policy: RetryPolicy(initial: .seconds(1), maximum: .seconds(10), maxAttempts: 0), maxInFlight: 1000, claimLease: .seconds(30))
        try queue.open()
        defer { queue.close() }
        let due = try queue.due(subscription: subscription.seq, now: Int64.max / 2, limit: 1000, excluding: [])
        let now = WallClock.nowMillis()
        let reports = due.map {
            AttemptReport(outcome: AttemptOutcome(
                subscriptionSeq: subscription.seq, delivery: $0, delivered: delivered, failed: failed, attemptedAt: now,
                status: delivered ? 204 : 500, error: delivered ? nil : "HTTP 500", nextAttemptAt: failed || delivered ? nil : now,
                durationMs: 3, response: []), isProbe: false, retryAfter: nil)
        }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            queue.record(reports, now: now) { continuation.resume(with: $0.map { _ in }) }
        }
    }

    func testCountersFollowEveryKindOfChange() async throws {
        let (store, _) = try makeStore(self)
        let a = try await store.subscribe("a")
        let b = try await store.subscribe("b")
        try await assertCountsMatchRows(store, "subscribing")
        var tenants: [Tenant] = []
        for index in 0..<6 { tenants.append(try await store.publishNew(try tenantRequest("c\(index).example.com"))) }
        try await assertCountsMatchRows(store, "publishing")
        _ = try await store.change(tenantId: tenants[0].id, .deactivate)
        _ = try await store.change(tenantId: tenants[1].id, .delete)
        try await assertCountsMatchRows(store, "changes and a delete")
        _ = try await store.subscribe("c", deliver: "all")
        while try await store.backfillStep(batchSize: 2) {}
        try await assertCountsMatchRows(store, "a catch-up in batches")
        try await recordAll(store, subscription: a, delivered: true)
        try await assertCountsMatchRows(store, "acknowledgements")
        try await recordAll(store, subscription: a, delivered: true)  // the released second events
        try await recordAll(store, subscription: b, delivered: false, failed: true)
        try await assertCountsMatchRows(store, "give-ups")
        _ = try await store.retryFailed(subscriptionId: b.id)
        try await assertCountsMatchRows(store, "retry")
        try await recordAll(store, subscription: b, delivered: true)
        _ = try await store.replay(subscriptionId: a.id, since: 0)
        try await assertCountsMatchRows(store, "replay")
        _ = try await store.deleteSubscription(id: b.id)
        try await assertCountsMatchRows(store, "deleting a subscription")
        let stats = try await store.tenantStats()
        XCTAssertEqual(stats.total, 5, "the deleted tenant is not counted")
        XCTAssertEqual(stats.pending, 5, "a's replayed deliveries are pending again")
        let counts = try await store.subscription(id: "a")?.counts
        XCTAssertEqual(counts?.pending, 8, "6 creations, a deactivation and a deletion, by name")
    }
}
