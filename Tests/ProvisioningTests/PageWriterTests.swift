import Essentials
import Foundation
import XCTest

@testable import Provisioning

/// List answers are written item by item and end once they hold about 1 MiB
/// (CONTRACT, HTTP API). Counted, never timed: items rendered, bytes written.
final class PageWriterTests: XCTestCase {
    /// Counts render calls (made on a store reader thread).
    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        var calls: Int { lock.withLock { count } }
        func bump() { lock.withLock { count += 1 } }
    }

    private static func item(_ n: Int) -> JSON {
        .object([("n", .int(n)), ("pad", .string(String(repeating: "x", count: n)))])
    }

    func testEachItemIsRenderedOnceAndCostsOnlyItsOwnBytes() throws {
        let counter = Counter()
        var writer = PageWriter<Int>(budget: .max) { n in
            counter.bump()
            return PageWriterTests.item(n)
        }
        for n in 0..<300 {
            let before = writer.body.count
            writer.add(n)
            // What an item adds is its own serialisation (and a comma), whatever came before:
            // building the answer is linear in its size.
            XCTAssertEqual(writer.body.count - before, PageWriterTests.item(n).serialized().count + (n > 0 ? 1 : 0))
        }
        XCTAssertEqual(counter.calls, 300)
        XCTAssertFalse(writer.isFull)
        let expected = JSON.object([("items", .array((0..<300).map(PageWriterTests.item))), ("next", .string("c"))])
        XCTAssertEqual(writer.finish(next: "c"), expected.serialized())
        var empty = PageWriter<Int>(budget: 10) { PageWriterTests.item($0) }
        XCTAssertFalse(empty.isFull, "never full before its first item")
        XCTAssertEqual(String(decoding: empty.finish(next: nil), as: UTF8.self), #"{"items":[],"next":null}"#)
    }

    func testFullOnceItsItemsHoldTheBudget() {
        var writer = PageWriter<String>(budget: 1000) { .string($0) }
        writer.add(String(repeating: "a", count: 5000))
        XCTAssertTrue(writer.isFull, "one item over the budget still goes in, and fills the page")
        var small = PageWriter<String>(budget: 1000) { .string($0) }
        while !small.isFull { small.add(String(repeating: "b", count: 98)) }
        XCTAssertEqual(small.count, 10)  // 10 + 10 * 100 + 9 commas >= 1000 > 10 + 9 * 100 + 8
    }

    func testLargeTenantsEndThePageNearOneMiBAndNextGoesOn() async throws {
        let (store, _) = try makeStore(self)
        let pad = String(repeating: "x", count: 400 * 1024)
        var ids: [String] = []
        for index in 0..<6 {
            ids.append(try await store.publishNew(try tenantRequest("large\(index).example", attributes: #"{"pad": "\#(pad)"}"#)).id)
        }
        var filter = TopicStore.TenantFilter()
        filter.limit = 100
        var seen: [String] = []
        var sizes: [Int] = []
        for _ in 0..<10 {
            let counter = Counter()
            let (page, next) = try await store.tenants(filter, into: PageWriter { tenant in
                counter.bump()
                return Representation.tenant(tenant)
            })
            XCTAssertEqual(counter.calls, page.count, "each tenant on the page rendered once")
            XCTAssertGreaterThan(page.count, 0)
            sizes.append(page.count)
            if next != nil { XCTAssertGreaterThanOrEqual(page.body.count, PageWriter<Tenant>.defaultBudget) }
            // At most the budget plus the one tenant that crossed it.
            XCTAssertLessThan(page.body.count, PageWriter<Tenant>.defaultBudget + 450 * 1024)
            let items = try JSON.parse(page.finish(next: next))["items"]
            guard case .array(let tenants)? = items else { return XCTFail("no items") }
            seen += tenants.compactMap { $0["id"]?.stringValue }
            guard let next else { break }
            XCTAssertEqual(next, seen.last)
            filter.after = next
        }
        XCTAssertEqual(sizes, [3, 3], "three 400 KiB tenants pass 1 MiB")
        XCTAssertEqual(seen, ids)
    }

    func testDeliveryPagesEndAtTheirBudget() async throws {
        let (store, _) = try makeStore(self)
        let subscription = try await store.subscribe("a")
        var ids: [String] = []
        for index in 0..<40 { ids.append(try await store.publishNew(try tenantRequest("d\(index).example")).id) }
        var filter = TopicStore.DeliveryFilter()
        filter.limit = 500
        var seen: [String] = []
        var pages = 0
        while pages < 100 {
            pages += 1
            let writer = PageWriter(budget: 2000, render: Representation.deliveryItem)
            let (page, next) = try await store.deliveries(subscriptionId: subscription.id, filter, into: writer)!
            XCTAssertGreaterThan(page.count, 0)
            let items = try JSON.parse(page.finish(next: next))["items"]
            guard case .array(let deliveries)? = items else { return XCTFail("no items") }
            seen += deliveries.compactMap { $0["tenantId"]?.stringValue }
            guard let next else { break }
            XCTAssertGreaterThanOrEqual(page.body.count, 2000)
            filter.after = next
        }
        XCTAssertGreaterThan(pages, 3, "the pages ended early")
        XCTAssertEqual(seen, ids)
    }
}
