import Foundation
import XCTest

@testable import Provisioning

/// EXPLAIN QUERY PLAN for the queries that must stay fast with a large
/// backlog: each uses its index and never scans or sorts the deliveries.
final class QueryPlanTests: XCTestCase {
    private var store: TopicStore!

    override func setUp() async throws {
        // SQLite's plans (EXPLAIN QUERY PLAN): the PostgreSQL pass skips them.
        try requireSQLite()
        (store, _) = try makeStore(self)
        // Some rows, so the plan is not that of empty tables.
        _ = try await store.subscribe("a")
        _ = try await store.subscribe("b")
        for index in 0..<20 { _ = try await store.publishNew(try tenantRequest("q\(index).example.com")) }
    }

    override func tearDown() async throws {
        store = nil
    }

    /// The `detail` column of each plan row.
    private func plan(_ sql: String) async throws -> [String] {
        let details = try await store.writer.write { db in
            try db.query("EXPLAIN QUERY PLAN " + sql) { $0.text(3) }
        }
        XCTAssertFalse(details.isEmpty, "no plan for \(sql)")
        return details
    }

    private func assertPlan(
        _ sql: String, uses index: String, orderedByIndex: Bool = true,
        file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        let details = try await plan(sql)
        let text = details.joined(separator: "\n")
        XCTAssertTrue(details.contains { $0.contains("USING INDEX \(index) ") || $0.contains("USING COVERING INDEX \(index) ") },
                      "expected index \(index) in:\n\(text)", file: file, line: line)
        XCTAssertFalse(details.contains { $0.hasPrefix("SCAN deliveries") || $0.hasPrefix("SCAN d") || $0.hasPrefix("SCAN tenants") || $0.hasPrefix("SCAN t") },
                       "full scan in:\n\(text)", file: file, line: line)
        if orderedByIndex {
            XCTAssertFalse(text.contains("USE TEMP B-TREE"), "sorts instead of reading in index order:\n\(text)", file: file, line: line)
        }
    }

    // MARK: The dispatcher

    func testDueDeliveriesUseDeliveriesDue() async throws {
        try await assertPlan(StoreDeliveryQueue.dueSQL.text, uses: "deliveries_due")
    }

    /// The dispatcher loads each delivery it takes with its event by primary keys.
    func testDispatcherLoadsADeliveryWithItsEventByPrimaryKeys() async throws {
        let details = try await plan(StoreDeliveryQueue.deliverySQL.text)
        XCTAssertTrue(details.contains { $0.contains("SEARCH d USING INTEGER PRIMARY KEY") }, details.joined(separator: "\n"))
        XCTAssertTrue(details.contains { $0.contains("SEARCH e USING INTEGER PRIMARY KEY") }, details.joined(separator: "\n"))
        XCTAssertTrue(details.contains { $0.contains("SEARCH t USING INTEGER PRIMARY KEY") }, details.joined(separator: "\n"))
    }

    // MARK: Order per (subscription, domain)

    /// An acknowledgement releases the next event of its line: one index seek, whatever is blocked.
    func testReleasingTheNextEventUsesDeliveriesLine() async throws {
        try await assertPlan(StoreDeliveryQueue.releaseNextSQL.text, uses: "deliveries_line")
    }

    /// A new event looks for an unacknowledged one of its line per subscription.
    func testPublishingLooksUpTheLineByIndex() async throws {
        let details = try await plan(TopicStore.createDeliveriesSQL.text)
        let text = details.joined(separator: "\n")
        XCTAssertTrue(details.contains { $0.contains("deliveries_line (subscription_seq=? AND domain=?)") }, text)
        XCTAssertFalse(details.contains { $0.hasPrefix("SCAN d") }, text)
    }

    /// `blockedBy` of a waiting delivery: the head of its line, by index.
    func testBlockedByUsesDeliveriesLine() async throws {
        let details = try await plan("\(TopicStore.deliverySelect) WHERE d.subscription_seq = ? AND d.event_seq > ? ORDER BY d.event_seq LIMIT ?")
        let text = details.joined(separator: "\n")
        XCTAssertTrue(details.contains { $0.contains("deliveries_line (subscription_seq=? AND domain=? AND event_seq<?)") }, text)
        XCTAssertFalse(text.contains("TEMP B-TREE"), text)
    }

    func testNextDueUsesDeliveriesDue() async throws {
        try await assertPlan(
            "SELECT min(next_attempt_at) FROM deliveries WHERE subscription_seq = ? AND state = 0 AND next_attempt_at > ?",
            uses: "deliveries_due")
    }

    /// A subscription back up: its backed-off deliveries are made due (DeliveryQueue.record).
    func testBacklogDueNowUsesDeliveriesDue() async throws {
        try await assertPlan(
            "UPDATE deliveries SET next_attempt_at = ? WHERE subscription_seq = ? AND state = 0 AND next_attempt_at > ?",
            uses: "deliveries_due")
    }

    // MARK: A tenant's deliveries and status

    func testTenantDeliveriesUseDeliveriesByTenant() async throws {
        try await assertPlan("SELECT seq, state FROM deliveries WHERE tenant_seq = ?", uses: "deliveries_by_tenant")
        // As loadTenant joins it: a sort of one tenant's few deliveries is fine, a scan is not.
        try await assertPlan(
            "\(TopicStore.deliverySelect) WHERE d.tenant_seq = ? ORDER BY d.event_seq, d.subscription_seq",
            uses: "deliveries_by_tenant", orderedByIndex: false)
    }

    func testTenantStatusFilterUsesDeliveriesByTenant() async throws {
        let details = try await plan(
            """
            SELECT seq FROM tenants t WHERE seq > ?
            AND NOT EXISTS (SELECT 1 FROM deliveries WHERE tenant_seq = t.seq AND state = 2)
            AND EXISTS (SELECT 1 FROM deliveries WHERE tenant_seq = t.seq AND state = 0)
            ORDER BY seq LIMIT ?
            """)
        let text = details.joined(separator: "\n")
        XCTAssertTrue(details.contains { $0.contains("SEARCH t USING INTEGER PRIMARY KEY") }, text)
        XCTAssertEqual(details.filter { $0.contains("COVERING INDEX deliveries_by_tenant (tenant_seq=? AND state=?)") }.count, 2, text)
        XCTAssertFalse(text.contains("TEMP B-TREE"), text)
    }

    // MARK: A subscription's deliveries

    func testSubscriptionDeliveriesByStateUseDeliveriesByState() async throws {
        try await assertPlan(
            "\(TopicStore.deliverySelect) WHERE d.subscription_seq = ? AND d.event_seq > ? AND d.state = ? ORDER BY d.event_seq LIMIT ?",
            uses: "deliveries_by_state")
    }

    func testSubscriptionDeliveriesWithoutStateReadInEventOrder() async throws {
        // UNIQUE (subscription_seq, event_seq) serves the unfiltered page.
        try await assertPlan(
            "\(TopicStore.deliverySelect) WHERE d.subscription_seq = ? AND d.event_seq > ? ORDER BY d.event_seq LIMIT ?",
            uses: "sqlite_autoindex_deliveries_1")
    }

    func testCountsRetryAndBacklogUseAnIndex() async throws {
        try await assertPlan(
            "SELECT state, count(*) FROM deliveries WHERE subscription_seq = ? GROUP BY state", uses: "deliveries_by_state")
        try await assertPlan(
            "UPDATE deliveries SET state = 0, attempts = 0, next_attempt_at = ? WHERE subscription_seq = ? AND state = 2",
            uses: "deliveries_by_state")
        // The cascade of DELETE FROM subscriptions.
        try await assertPlan("DELETE FROM deliveries WHERE subscription_seq = ?", uses: "deliveries_by_state")
        let backlog = try await plan(
            "SELECT s.name, (SELECT count(*) FROM deliveries d WHERE d.subscription_seq = s.seq AND d.state = 0) FROM subscriptions s ORDER BY s.seq")
        XCTAssertTrue(backlog.contains { $0.contains("SEARCH d USING COVERING INDEX") }, backlog.joined(separator: "\n"))
    }

    // MARK: Health and attempts

    /// A subscription with its counts and health: its own row, and one seek for its oldest pending delivery.
    func testSubscriptionHealthReadsItsRowAndOneIndexSeek() async throws {
        let details = try await plan("\(TopicStore.subscriptionSelect) WHERE seq = ?")
        let text = details.joined(separator: "\n")
        XCTAssertTrue(details.contains { $0.contains("deliveries_by_state (subscription_seq=? AND state=?)") }, text)
        XCTAssertFalse(details.contains { $0.hasPrefix("SCAN") }, text)
        XCTAssertFalse(text.contains("TEMP B-TREE"), text)
    }

    func testAttemptsOfADeliveryUseTheirIndex() async throws {
        try await assertPlan(
            "SELECT at, duration_ms, status, error, response FROM attempts WHERE delivery_seq = ? ORDER BY seq DESC LIMIT 10",
            uses: "attempts_by_delivery")
    }

    // MARK: Tenant lookups

    func testLiveTenantLookupByDomainUsesItsUniqueIndex() async throws {
        try await assertPlan("SELECT seq, id, request FROM tenants WHERE domain = ? AND deleted_at IS NULL", uses: "tenants_live_domain")
    }

    func testTenantLookupByIdAndCursor() async throws {
        let details = try await plan("SELECT seq FROM tenants WHERE id = ?")
        XCTAssertTrue(details.contains { $0.contains("sqlite_autoindex_tenants") && $0.contains("(id=?)") }, details.joined(separator: "\n"))
        let cursor = try await plan(
            "SELECT e.seq FROM events e JOIN deliveries d ON d.event_seq = e.seq AND d.subscription_seq = ? WHERE e.id = ?")
        let text = cursor.joined(separator: "\n")
        XCTAssertTrue(cursor.contains { $0.contains("(id=?)") }, text)
        XCTAssertTrue(cursor.contains { $0.contains("sqlite_autoindex_deliveries_1 (subscription_seq=? AND event_seq=?)") }, text)
    }
}
