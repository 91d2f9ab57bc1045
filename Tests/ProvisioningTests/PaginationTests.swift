import Foundation
import XCTest

@testable import Provisioning

final class PaginationTests: XCTestCase {
    /// 60 tenants, two subscriptions, and delivery states set so that every
    /// tenant status and delivery state occurs.
    private struct Fixture {
        let store: TopicStore
        let a: Subscription
        let b: Subscription
        /// Tenant ids in creation order.
        let ids: [String]
        let domains: [String]
        let status: [String: TenantStatus]
        /// Delivery state per tenant id, for subscription a.
        let stateA: [String: DeliveryState]
    }

    private func makeFixture(count: Int = 60) async throws -> Fixture {
        let (store, _) = try makeStore(self)
        let a = try await store.subscribe("a")
        let b = try await store.subscribe("b")
        var ids: [String] = []
        var domains: [String] = []
        for index in 0..<count {
            let domain = "p\(index).example.com"
            ids.append(try await store.publishNew(try tenantRequest(domain)).id)
            domains.append(domain)
        }
        var status: [String: TenantStatus] = [:]
        var stateA: [String: DeliveryState] = [:]
        var updates: [(Int64, Int, DeliveryState)] = []  // subscription seq, tenant index, state
        for (index, id) in ids.enumerated() {
            if index % 7 == 0 {
                updates.append((a.seq, index, .failed))
                (status[id], stateA[id]) = (.failed, .failed)
            } else if index % 3 == 0 {
                updates += [(a.seq, index, .delivered), (b.seq, index, .delivered)]
                (status[id], stateA[id]) = (.provisioned, .delivered)
            } else if index % 5 == 0 {
                updates.append((a.seq, index, .delivered))
                (status[id], stateA[id]) = (.pending, .delivered)
            } else {
                (status[id], stateA[id]) = (.pending, .pending)
            }
        }
        let rows = updates.map { ($0.0, ids[$0.1], $0.2.rawValue) }
        try await store.engine.write { db in
            for (subscription, tenant, state) in rows {
                try db.run(
                    "UPDATE deliveries SET state = ? WHERE subscription_seq = ? AND tenant_seq = (SELECT seq FROM tenants WHERE id = ?)",
                    [.int(state), .integer(subscription), .text(tenant)])
            }
        }
        try await store.recountDeliveries()
        return Fixture(store: store, a: a, b: b, ids: ids, domains: domains, status: status, stateA: stateA)
    }

    /// Follows `next` from `start` (nil: the first page) to the last page;
    /// checks every page's shape: full until the last, `next` naming its last item.
    /// `id`: the cursor an item gives; `key`: what is collected of it (its id unless told).
    private func walk<Item>(
        from start: String?, limit: Int, id: (Item) -> String, key: ((Item) -> String)? = nil, file: StaticString, line: UInt,
        page fetch: (_ after: String?) async throws -> Page<Item>?
    ) async throws -> (ids: [String], pages: Int) {
        var ids: [String] = []
        var pages = 0
        var after = start
        while pages < 1000 {
            guard let page = try await fetch(after) else {
                XCTFail("the listing vanished", file: file, line: line)
                break
            }
            pages += 1
            ids += page.items.map { key?($0) ?? id($0) }
            guard let next = page.next else {
                XCTAssertLessThanOrEqual(page.items.count, limit, file: file, line: line)
                break
            }
            XCTAssertEqual(page.items.count, limit, "only the last page may be short", file: file, line: line)
            XCTAssertEqual(next, page.items.last.map(id), file: file, line: line)
            after = next
        }
        return (ids, pages)
    }

    private func walkTenants(
        _ store: TopicStore, _ base: TopicStore.TenantFilter, limit: Int,
        file: StaticString = #filePath, line: UInt = #line
    ) async throws -> (ids: [String], pages: Int) {
        try await walk(from: base.after, limit: limit, id: \Tenant.id, file: file, line: line) { after in
            var filter = base
            filter.limit = limit
            filter.after = after
            return try await store.tenants(filter)
        }
    }

    private func walkDeliveries(
        _ store: TopicStore, subscription: String, _ base: TopicStore.DeliveryFilter, limit: Int,
        file: StaticString = #filePath, line: UInt = #line
    ) async throws -> (ids: [String], pages: Int) {
        try await walk(from: base.after, limit: limit, id: \Delivery.eventId, key: { $0.tenantId ?? "" }, file: file, line: line) { after in
            var filter = base
            filter.limit = limit
            filter.after = after
            let page = try await store.deliveries(subscriptionId: subscription, filter)
            if let state = base.state, let page {
                XCTAssertTrue(page.items.allSatisfy { $0.state == state }, file: file, line: line)
            }
            return page
        }
    }

    private func expectedPages(_ count: Int, limit: Int) -> Int { max(1, (count + limit - 1) / limit) }

    // MARK: Tenants

    func testTenantPagesWithoutFilter() async throws {
        let fixture = try await makeFixture()
        for limit in [1, 7, 10, 59, 60, 61, 500] {
            let (ids, pages) = try await walkTenants(fixture.store, .init(), limit: limit)
            XCTAssertEqual(ids, fixture.ids, "limit \(limit): every tenant once, in creation order")
            XCTAssertEqual(pages, expectedPages(fixture.ids.count, limit: limit), "limit \(limit): no empty last page")
        }
    }

    func testTenantPagesByStatus() async throws {
        let fixture = try await makeFixture()
        var total = 0
        for status in TenantStatus.allCases {
            var filter = TopicStore.TenantFilter()
            filter.status = status
            let expected = fixture.ids.filter { fixture.status[$0] == status }
            XCTAssertFalse(expected.isEmpty, "the fixture has \(status) tenants")
            total += expected.count
            for limit in [1, 4, expected.count, 100] {
                let (ids, pages) = try await walkTenants(fixture.store, filter, limit: limit)
                XCTAssertEqual(ids, expected, "\(status), limit \(limit)")
                XCTAssertEqual(pages, expectedPages(expected.count, limit: limit), "\(status), limit \(limit)")
            }
            // The status shown on each tenant agrees with the filter.
            let page = try await fixture.store.tenants(filter)
            XCTAssertTrue(page.items.allSatisfy { $0.status == status }, "\(status)")
        }
        XCTAssertEqual(total, fixture.ids.count, "the statuses partition the tenants")
    }

    func testTenantPagesByDomain() async throws {
        let fixture = try await makeFixture(count: 12)
        var filter = TopicStore.TenantFilter()
        filter.domain = "P5.Example.COM"  // matched case-insensitively
        let (ids, pages) = try await walkTenants(fixture.store, filter, limit: 1)
        XCTAssertEqual(ids, [fixture.ids[5]])
        XCTAssertEqual(pages, 1)

        filter.status = fixture.status[fixture.ids[5]]
        let sameStatus = try await walkTenants(fixture.store, filter, limit: 10).ids
        XCTAssertEqual(sameStatus, [fixture.ids[5]])
        filter.status = TenantStatus.allCases.first { $0 != fixture.status[fixture.ids[5]] }
        let otherStatus = try await walkTenants(fixture.store, filter, limit: 10).ids
        XCTAssertEqual(otherStatus, [], "domain and status both apply")

        // Lowercasing is ASCII only, as for stored domains: KELVIN SIGN is not "k".
        let kelvin = try await fixture.store.publishNew(try tenantRequest("kelvin.example.com"))
        filter = .init()
        filter.domain = "KELVIN.example.com"
        let asciiUpper = try await walkTenants(fixture.store, filter, limit: 10).ids
        XCTAssertEqual(asciiUpper, [kelvin.id])
        filter.domain = "\u{212A}elvin.example.com"
        let kelvinSign = try await walkTenants(fixture.store, filter, limit: 10).ids
        XCTAssertEqual(kelvinSign, [])

        filter = .init()
        filter.domain = "nobody.example.com"
        let empty = try await fixture.store.tenants(filter)
        XCTAssertTrue(empty.items.isEmpty)
        XCTAssertNil(empty.next)
    }

    func testTenantPagesStayStableWhileTenantsArriveAndChange() async throws {
        let fixture = try await makeFixture(count: 20)
        var filter = TopicStore.TenantFilter()
        filter.status = .pending
        filter.limit = 3
        let expectedPending = fixture.ids.filter { fixture.status[$0] == .pending }

        let first = try await fixture.store.tenants(filter)
        XCTAssertEqual(first.items.map(\.id), Array(expectedPending.prefix(3)))
        // Meanwhile: the cursor's own tenant gets provisioned, and a new tenant arrives.
        try await fixture.store.execute(
            "UPDATE deliveries SET state = 1 WHERE tenant_seq = (SELECT seq FROM tenants WHERE id = ?)", [.text(first.next!)])
        try await fixture.store.recountDeliveries()
        let late = try await fixture.store.publishNew(try tenantRequest("late.example.com"))

        filter.after = first.next
        let rest = try await walkTenants(fixture.store, filter, limit: 3).ids
        XCTAssertEqual(first.items.map(\.id) + rest, expectedPending + [late.id], "no repeats, no gaps; newcomers at the end")
    }

    func testUnknownTenantCursorIsInvalid() async throws {
        let fixture = try await makeFixture(count: 3)
        var filter = TopicStore.TenantFilter()
        filter.after = "ten_never_issued"
        await assertInvalid("after") { _ = try await fixture.store.tenants(filter) }
        filter.after = fixture.a.id  // an id, but not a tenant's
        await assertInvalid("after") { _ = try await fixture.store.tenants(filter) }
        filter.after = ""
        await assertInvalid("after") { _ = try await fixture.store.tenants(filter) }
    }

    // MARK: A subscription's deliveries

    func testDeliveryPagesWithAndWithoutStateFilter() async throws {
        let fixture = try await makeFixture()
        for limit in [1, 9, 60, 100] {
            let (ids, pages) = try await walkDeliveries(fixture.store, subscription: fixture.a.id, .init(), limit: limit)
            XCTAssertEqual(ids, fixture.ids, "limit \(limit)")
            XCTAssertEqual(pages, expectedPages(fixture.ids.count, limit: limit))
        }
        var total = 0
        for state in DeliveryState.allCases {
            var filter = TopicStore.DeliveryFilter()
            filter.state = state
            let expected = fixture.ids.filter { fixture.stateA[$0] == state }
            XCTAssertFalse(expected.isEmpty, "the fixture has \(state) deliveries")
            total += expected.count
            for limit in [1, 5, expected.count, 100] {
                let (ids, pages) = try await walkDeliveries(fixture.store, subscription: fixture.a.id, filter, limit: limit)
                XCTAssertEqual(ids, expected, "\(state), limit \(limit)")
                XCTAssertEqual(pages, expectedPages(expected.count, limit: limit), "\(state), limit \(limit)")
            }
        }
        XCTAssertEqual(total, fixture.ids.count)

        // Subscription b sees its own deliveries, not a's states.
        var failedOfB = TopicStore.DeliveryFilter()
        failedOfB.state = .failed
        let failedIds = try await walkDeliveries(fixture.store, subscription: fixture.b.id, failedOfB, limit: 10).ids
        XCTAssertEqual(failedIds, [])
    }

    func testDeliveryItemsDescribeTheirTenant() async throws {
        let fixture = try await makeFixture(count: 8)
        var filter = TopicStore.DeliveryFilter()
        filter.limit = 100
        let page = try await fixture.store.deliveries(subscriptionId: fixture.a.id, filter)!
        XCTAssertNil(page.next)
        for (index, delivery) in page.items.enumerated() {
            XCTAssertEqual(delivery.tenantId, fixture.ids[index])
            XCTAssertEqual(delivery.domain, fixture.domains[index])
            XCTAssertEqual(delivery.subscriptionId, fixture.a.id)
            XCTAssertEqual(delivery.subscriptionName, "a")
            XCTAssertTrue(delivery.eventId.hasPrefix("evt_"))
            XCTAssertEqual(delivery.state, fixture.stateA[delivery.tenantId!])
            XCTAssertEqual(delivery.nextAttemptAt != nil, delivery.state == .pending, "only pending deliveries have a next attempt")
        }
        let tenant = try await fixture.store.tenant(id: fixture.ids[3])
        XCTAssertEqual(tenant?.deliveries.first { $0.subscriptionId == fixture.a.id }?.eventId, page.items[3].eventId)
    }

    func testUnknownDeliveryCursorIsInvalid() async throws {
        let (store, _) = try makeStore(self)
        let before = try await store.publishNew(try tenantRequest("before.example.com"))
        let subscription = try await store.subscribe("late")
        _ = try await store.publishNew(try tenantRequest("after.example.com"))

        var filter = TopicStore.DeliveryFilter()
        filter.after = "ten_never_issued"
        await assertInvalid("after") { _ = try await store.deliveries(subscriptionId: subscription.id, filter) }
        // A real tenant, but not one this subscription's pages can have issued.
        filter.after = before.id
        await assertInvalid("after") { _ = try await store.deliveries(subscriptionId: subscription.id, filter) }

        let unknown = try await store.deliveries(subscriptionId: "sub_unknown", .init())
        XCTAssertNil(unknown, "an unknown subscription is nil (404), not an empty page")
    }
}
