import XCTest

@testable import Provisioning

final class PendingBacklogTests: XCTestCase {
    func testCountsPendingDeliveriesOfAllSubscriptions() async throws {
        let (store, _) = try makeStore(self)
        XCTAssertEqual(try store.pendingBacklog(), 0)
        let dev = try await store.subscribe("dev")
        _ = try await store.subscribe("prod")
        _ = try await store.publishNew(try tenantRequest("a.example.com"))
        _ = try await store.publishNew(try tenantRequest("b.example.com"))
        XCTAssertEqual(try store.pendingBacklog(), 4)
        _ = try await store.deleteSubscription(id: dev.id)  // its pending deliveries go with it
        XCTAssertEqual(try store.pendingBacklog(), 2)
    }
}
