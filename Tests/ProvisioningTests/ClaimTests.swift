import Foundation
import XCTest

@testable import Provisioning

/// Several instances on one PostgreSQL database: each dispatcher's queue
/// claims deliveries in the database, and the rules that span instances hold
/// there. Two queues on one store stand for two instances (each has its own
/// connection and instance id); `now` is passed in, so leases are tested
/// without waiting for them. PostgreSQL only: SQLite has one dispatcher.
final class ClaimTests: XCTestCase {
    private let policy = RetryPolicy(initial: .seconds(1), maximum: .seconds(10), maxAttempts: 0)
    private let lease: Int64 = 30_000

    override func setUpWithError() throws {
        if !testStoreIsPostgres { throw XCTSkip("claims are kept in the database on PostgreSQL only") }
    }

    private func queue(_ store: TopicStore, maxInFlight: Int = 3) throws -> any DeliveryQueue {
        let queue = store.makeDeliveryQueue(policy: policy, maxInFlight: maxInFlight, claimLease: .milliseconds(lease))
        try queue.open()
        addTeardownBlock { queue.close() }
        return queue
    }

    /// A store with one subscription and `tenants` published (each a due head).
    private func fixture(tenants: Int) async throws -> (TopicStore, Subscription) {
        let (store, _) = try makeStore(self)
        let subscription = try await store.subscribe("env")
        for index in 0..<tenants { _ = try await store.publishNew(try tenantRequest("c\(index).example.com")) }
        return (store, subscription)
    }

    private func deliver(_ queue: any DeliveryQueue, _ subscription: Subscription, _ delivery: DueDelivery, now: Int64) async throws {
        let report = AttemptReport(outcome: AttemptOutcome(
            subscriptionSeq: subscription.seq, delivery: delivery, delivered: true, failed: false, attemptedAt: now, status: 204,
            error: nil, nextAttemptAt: nil, durationMs: 1, response: []), isProbe: false, retryAfter: nil)
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            queue.record([report], now: now) { continuation.resume(with: $0.map { _ in }) }
        }
    }

    func testInFlightLimitHoldsAcrossInstances() async throws {
        let (store, subscription) = try await fixture(tenants: 8)
        let a = try queue(store), b = try queue(store)
        let now = WallClock.nowMillis()
        let first = try a.due(subscription: subscription.seq, now: now, limit: 10, excluding: [])
        XCTAssertEqual(first.count, 3, "--max-in-flight 3")
        XCTAssertEqual(try b.due(subscription: subscription.seq, now: now, limit: 10, excluding: []).count, 0,
                       "the other instance sees the first one's claims")
        try await deliver(a, subscription, first[0], now: now)
        let second = try b.due(subscription: subscription.seq, now: now, limit: 10, excluding: [])
        XCTAssertEqual(second.count, 1, "one slot freed by the outcome")
        XCTAssertTrue(Set(second.map(\.seq)).isDisjoint(with: first.map(\.seq)), "never a delivery another instance holds")
    }

    func testADeadInstancesClaimsAreTakenOverAfterTheLease() async throws {
        let (store, subscription) = try await fixture(tenants: 3)
        let a = try queue(store), b = try queue(store)
        let now = WallClock.nowMillis()
        let held = try a.due(subscription: subscription.seq, now: now, limit: 10, excluding: [])
        XCTAssertEqual(held.count, 3)
        XCTAssertEqual(try b.due(subscription: subscription.seq, now: now + lease - 1, limit: 10, excluding: []).count, 0,
                       "still leased")
        let taken = try b.due(subscription: subscription.seq, now: now + lease + 1, limit: 10, excluding: [])
        XCTAssertEqual(Set(taken.map(\.seq)), Set(held.map(\.seq)), "a lapsed lease is anyone's")
    }

    func testALiveInstanceKeepsItsClaimsByRenewingThem() async throws {
        let (store, subscription) = try await fixture(tenants: 2)
        let a = try queue(store), b = try queue(store)
        let now = WallClock.nowMillis()
        let held = try a.due(subscription: subscription.seq, now: now, limit: 10, excluding: [])
        XCTAssertEqual(held.count, 2)
        try a.renewClaims(held.map(\.seq), now: now + lease - 1)
        XCTAssertEqual(try b.due(subscription: subscription.seq, now: now + lease + 1, limit: 10, excluding: []).count, 0,
                       "renewed: still the first instance's")
    }

    func testADownSubscriptionGetsOneProbeAcrossInstances() async throws {
        let (store, subscription) = try await fixture(tenants: 4)
        // Down, its next probe due now: as the outcome write leaves it after 5 failures and a backoff.
        try await store.execute(
            "UPDATE subscriptions SET failures = 5, probe_not_before = 0, down_since = 1 WHERE seq = ?", [.integer(subscription.seq)])
        let a = try queue(store), b = try queue(store)
        let now = WallClock.nowMillis()
        XCTAssertEqual(try a.due(subscription: subscription.seq, now: now, limit: 10, excluding: []).count, 1, "one probe")
        XCTAssertEqual(try b.due(subscription: subscription.seq, now: now, limit: 10, excluding: []).count, 0,
                       "not a second one from another instance")
    }

    func testAPublishWakesTheOtherInstancesQueues() async throws {
        let (store, _) = try await fixture(tenants: 0)
        let listener = try queue(store)
        XCTAssertFalse(listener.takeNotifications(), "nothing published yet")
        _ = try await store.publishNew(try tenantRequest("wake.example.com"))
        var woken = false
        for _ in 0..<200 where !woken {  // bounded: up to about 10 s
            woken = listener.takeNotifications()
            if !woken { try await Task.sleep(for: .milliseconds(50)) }
        }
        XCTAssertTrue(woken, "the publish's NOTIFY reached the listening queue")
        XCTAssertNotNil(listener.wakeSocket, "the dispatcher can poll for it")
    }
}
