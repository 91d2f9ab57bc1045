import Essentials
import Foundation
import XCTest

@testable import Provisioning

final class TopicStoreTests: XCTestCase {
    // MARK: Publish: idempotency and conflict

    func testPublishStoresTenantEventAndPayload() async throws {
        let (store, _) = try makeStore(self)
        let tenant = try await store.publishNew(try tenantRequest("acme.com", plan: "Demo", attributes: #"{"b": 2, "a": [1, 2.50]}"#))
        XCTAssertTrue(tenant.id.hasPrefix("ten_"))
        XCTAssertEqual(tenant.data["id"]?.stringValue, tenant.id)
        XCTAssertEqual(tenant.data["domain"]?.stringValue, "acme.com")
        XCTAssertEqual(tenant.data["plan"]?.stringValue, "Demo")
        XCTAssertEqual(tenant.data["admin"]?["email"]?.stringValue, "admin@acme.com")
        // Attributes pass through as given, number literals included.
        XCTAssertEqual(tenant.data["attributes"], try JSON.parse(#"{"b": 2, "a": [1, 2.50]}"#))
        XCTAssertEqual(tenant.status, .provisioned, "no subscriptions: nothing to deliver")

        let (eventId, payload) = try await store.engine.read { db in
            try db.queryOne(
                "SELECT e.id, e.payload FROM events e JOIN tenants t ON e.seq = t.last_event_seq WHERE t.id = ?", [.text(tenant.id)]
            ) { ($0.text(0), $0.blob(1)) }
        }!
        XCTAssertTrue(eventId.hasPrefix("evt_"))
        let event = try JSON.parse(payload)
        XCTAssertEqual(event["type"]?.stringValue, "tenant.created")
        XCTAssertEqual(event["data"], tenant.data)
        let tenantCount = try await store.tenantCount()
        XCTAssertEqual(tenantCount, 1)
    }

    func testSameRequestAgainIsExistingWithSameId() async throws {
        let (store, _) = try makeStore(self)
        _ = try await store.subscribe("prod")
        let first = try await store.publishNew(try tenantRequest("acme.com"))

        // Same request, other key order and upper-case domain: the same canonical request.
        let reordered = try TenantRequest.parse(Array(
            #"{"attributes": {"tier": 1}, "plan": "Demo", "admin": {"email": "admin@acme.com", "username": "admin"}, "domain": "ACME.com"}"#.utf8))
        for request in [try tenantRequest("acme.com"), reordered] {
            guard case .existing(let existing) = try await store.publish(request) else {
                XCTFail("expected .existing")
                continue
            }
            XCTAssertEqual(existing.id, first.id)
            XCTAssertEqual(existing.data, first.data)
        }
        let tenantCount = try await store.tenantCount()
        XCTAssertEqual(tenantCount, 1)
        let count = try await store.integer("SELECT count(*) FROM deliveries")
        XCTAssertEqual(count, 1, "nothing published again")
    }

    func testDifferentRequestForSameDomainIsConflict() async throws {
        let (store, _) = try makeStore(self)
        let first = try await store.publishNew(try tenantRequest("acme.com"))
        let variants = [
            try tenantRequest("acme.com", plan: "Pro"),
            try tenantRequest("acme.com", plan: nil),
            try tenantRequest("acme.com", username: "root"),
            try tenantRequest("ACME.COM", email: "other@acme.com"),
            try tenantRequest("acme.com", attributes: #"{"tier": 2}"#),
            try tenantRequest("acme.com", attributes: #"{}"#),
        ]
        for request in variants {
            guard case .conflict(let existingId) = try await store.publish(request) else {
                XCTFail("expected .conflict for \(request.canonical)")
                continue
            }
            XCTAssertEqual(existingId, first.id)
        }
        let tenantCount = try await store.tenantCount()
        XCTAssertEqual(tenantCount, 1)
        let stored = try await store.tenant(id: first.id)
        XCTAssertEqual(stored?.data["plan"]?.stringValue, "Demo", "a conflict changes nothing")
    }

    func testConcurrentPublishOfOneDomainCreatesOnce() async throws {
        let (store, _) = try makeStore(self)
        let request = try tenantRequest("race.example.com")
        let results = try await withThrowingTaskGroup(of: TopicStore.PublishResult.self) { group in
            for _ in 0..<20 { group.addTask { try await store.publish(request) } }
            var results: [TopicStore.PublishResult] = []
            for try await result in group { results.append(result) }
            return results
        }
        var created: [String] = []
        var existing: [String] = []
        for result in results {
            switch result {
            case .created(let tenant): created.append(tenant.id)
            case .existing(let tenant): existing.append(tenant.id)
            case .conflict: XCTFail("same request must not conflict")
            }
        }
        XCTAssertEqual(created.count, 1)
        XCTAssertEqual(existing.count, 19)
        XCTAssertEqual(Set(existing), Set(created))
    }

    // MARK: Deliveries per subscription

    func testPublishCreatesOneDeliveryPerSubscriptionIncludingPaused() async throws {
        let (store, _) = try makeStore(self)
        let dev = try await store.subscribe("dev")
        let test = try await store.subscribe("test")
        let prod = try await store.subscribe("prod")
        let paused = try await store.updateSubscription(id: test.id, try SubscriptionPatch.parse(Array(#"{"paused": true}"#.utf8)))
        XCTAssertEqual(paused?.paused, true)

        let tenant = try await store.publishNew(try tenantRequest("acme.com"))
        XCTAssertEqual(tenant.deliveries.map(\.subscriptionId), [dev.id, test.id, prod.id])
        XCTAssertEqual(tenant.deliveries.map(\.subscriptionName), ["dev", "test", "prod"])
        for delivery in tenant.deliveries {
            XCTAssertEqual(delivery.state, .pending)
            XCTAssertEqual(delivery.attempts, 0)
            XCTAssertNotNil(delivery.nextAttemptAt, "due now")
            XCTAssertNil(delivery.deliveredAt)
            XCTAssertEqual(delivery.tenantId, tenant.id)
            XCTAssertEqual(delivery.domain, "acme.com")
            XCTAssertTrue(delivery.eventId.hasPrefix("evt_"))
        }
        XCTAssertEqual(Set(tenant.deliveries.map(\.eventId)).count, 1, "one event, the same webhook-id for every subscription")
        XCTAssertEqual(tenant.status, .pending)

        let pausedNow = try await store.subscription(id: test.id)
        XCTAssertEqual(pausedNow?.counts.pending, 1, "a paused subscription keeps collecting")
    }

    func testSubscriptionCreatedLaterGetsOnlyNewTenants() async throws {
        let (store, _) = try makeStore(self)
        let old = try await store.publishNew(try tenantRequest("old.example.com"))
        let late = try await store.subscribe("late")
        let new = try await store.publishNew(try tenantRequest("new.example.com"))
        let stored = try await store.tenant(id: old.id)?.deliveries.count
        XCTAssertEqual(stored, 0)
        XCTAssertEqual(new.deliveries.map(\.subscriptionId), [late.id])
        let more = try await store.backfillStep()
        XCTAssertFalse(more, "deliver=new has nothing to catch up")
    }

    func testDeleteSubscriptionCascadesItsDeliveries() async throws {
        let (store, _) = try makeStore(self)
        let keep = try await store.subscribe("keep")
        let drop = try await store.subscribe("drop")
        var tenants: [Tenant] = []
        for index in 0..<5 { tenants.append(try await store.publishNew(try tenantRequest("d\(index).example.com"))) }
        let count = try await store.integer("SELECT count(*) FROM deliveries")
        XCTAssertEqual(count, 10)

        let deleted = try await store.deleteSubscription(id: drop.id)
        XCTAssertEqual(deleted, drop.id)
        let deleted2 = try await store.deleteSubscription(id: drop.id)
        XCTAssertNil(deleted2, "already gone")
        let deleted3 = try await store.deleteSubscription(id: "sub_unknown")
        XCTAssertNil(deleted3)

        let count2 = try await store.integer("SELECT count(*) FROM deliveries")
        XCTAssertEqual(count2, 5)
        let count3 = try await store.integer("SELECT count(*) FROM deliveries WHERE subscription_seq = ?", [.integer(drop.seq)])
        XCTAssertEqual(count3, 0)
        for tenant in tenants {
            let stored = try await store.tenant(id: tenant.id)?.deliveries.map(\.subscriptionId)
            XCTAssertEqual(stored, [keep.id])
        }
        let stored2 = try await store.subscription(id: drop.id)
        XCTAssertNil(stored2)
        let page = try await store.deliveries(subscriptionId: drop.id, .init())
        XCTAssertNil(page)
        let all = try await store.subscriptions().map(\.id)
        XCTAssertEqual(all, [keep.id])
        let tenantCount = try await store.tenantCount()
        XCTAssertEqual(tenantCount, 5, "tenants stay")
    }

    // MARK: Subscriptions

    func testCreateSubscriptionNameTakenAndSecret() async throws {
        let (store, _) = try makeStore(self)
        let request = try SubscriptionRequest.parse(Array(
            #"{"name": "prod", "url": "https://prod.example/hooks", "secret": "whsec_MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIz"}"#.utf8))
        guard case .created(let subscription, let secret) = try await store.createSubscription(request) else {
            return XCTFail("expected created")
        }
        XCTAssertEqual(secret, "whsec_MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIz")
        let storedSecret = try await store.secret(subscriptionId: subscription.id)
        XCTAssertEqual(storedSecret, secret)
        XCTAssertEqual(subscription.deliver, "new")
        XCTAssertFalse(subscription.paused)
        XCTAssertTrue(subscription.id.hasPrefix("sub_"))

        guard case .nameTaken = try await store.createSubscription(try subscriptionRequest("prod", deliver: "all")) else {
            return XCTFail("expected nameTaken")
        }
        let all = try await store.subscriptions().count
        XCTAssertEqual(all, 1)

        // A generated secret is whsec_ + base64 of enough random bytes, and valid by our own rules.
        guard case .created(let other, let generated) = try await store.createSubscription(try subscriptionRequest("dev")) else {
            return XCTFail("expected created")
        }
        XCTAssertNoThrow(try SubscriptionRules.validateSecret(generated))
        XCTAssertNotEqual(generated, secret)
        let storedSecret2 = try await store.secret(subscriptionId: other.id)
        XCTAssertEqual(storedSecret2, generated)
        let storedSecret3 = try await store.secret(subscriptionId: "sub_unknown")
        XCTAssertNil(storedSecret3)
    }

    func testUpdateSubscription() async throws {
        let (store, _) = try makeStore(self)
        let subscription = try await store.subscribe("prod")
        let moved = try await store.updateSubscription(
            id: subscription.id, try SubscriptionPatch.parse(Array(#"{"url": "http://new.example/h", "paused": true}"#.utf8)))
        XCTAssertEqual(moved?.url, "http://new.example/h")
        XCTAssertEqual(moved?.paused, true)
        let resumed = try await store.updateSubscription(id: subscription.id, try SubscriptionPatch.parse(Array(#"{"paused": false}"#.utf8)))
        XCTAssertEqual(resumed?.paused, false)
        XCTAssertEqual(resumed?.url, "http://new.example/h", "unchanged fields stay")
        let updated = try await store.updateSubscription(id: "sub_unknown", try SubscriptionPatch.parse(Array(#"{"paused": true}"#.utf8)))
        XCTAssertNil(updated)
    }

    // MARK: retryFailed

    func testRetryFailedRequeuesOnlyThatSubscriptionsFailedDeliveries() async throws {
        let (store, _) = try makeStore(self)
        let prod = try await store.subscribe("prod")
        let other = try await store.subscribe("other")
        var tenants: [Tenant] = []
        for index in 0..<10 { tenants.append(try await store.publishNew(try tenantRequest("r\(index).example.com"))) }
        let failedIds = tenants.prefix(4).map { $0.id }
        // 4 failed and 2 delivered in prod; everything failed in other.
        try await store.execute(
            """
            UPDATE deliveries SET state = 2, attempts = 9, next_attempt_at = NULL, last_status = 500, last_error = 'HTTP 500'
            WHERE subscription_seq = ? AND tenant_seq IN (SELECT seq FROM tenants WHERE id IN (?, ?, ?, ?))
            """, [.integer(prod.seq)] + failedIds.map { .text($0) })
        try await store.execute(
            "UPDATE deliveries SET state = 1, attempts = 1, delivered_at = 1 WHERE subscription_seq = ? AND tenant_seq IN (SELECT seq FROM tenants WHERE id IN (?, ?))",
            [.integer(prod.seq), .text(tenants[8].id), .text(tenants[9].id)])
        try await store.execute("UPDATE deliveries SET state = 2, attempts = 3 WHERE subscription_seq = ?", [.integer(other.seq)])
        try await store.recountDeliveries()
        let stored = try await store.tenant(id: tenants[0].id)?.status
        XCTAssertEqual(stored, .failed)
        let stored2 = try await store.subscription(id: prod.id)?.counts.failed
        XCTAssertEqual(stored2, 4)

        let before = WallClock.nowMillis()
        let requeued2 = try await store.retryFailed(subscriptionId: prod.id)
        XCTAssertEqual(requeued2?.requeued, 4)
        XCTAssertEqual(requeued2?.probing, false)

        let counts = try await store.subscription(id: prod.id)?.counts
        XCTAssertEqual(counts?.failed, 0)
        XCTAssertEqual(counts?.pending, 8)
        XCTAssertEqual(counts?.delivered, 2, "delivered ones are not touched")
        let requeued = try await store.deliveries(subscriptionId: prod.id, .init())!.items.filter { failedIds.contains($0.tenantId ?? "") }
        XCTAssertEqual(requeued.count, 4)
        for delivery in requeued {
            XCTAssertEqual(delivery.state, .pending)
            XCTAssertEqual(delivery.attempts, 0, "a fresh round of attempts")
            XCTAssertGreaterThanOrEqual(delivery.nextAttemptAt ?? 0, before, "due now")
        }
        let stored3 = try await store.subscription(id: other.id)?.counts.failed
        XCTAssertEqual(stored3, 10, "another subscription is not touched")

        let requeued3 = try await store.retryFailed(subscriptionId: prod.id)
        XCTAssertEqual(requeued3?.requeued, 0, "nothing failed any more")
        let requeued4 = try await store.retryFailed(subscriptionId: "sub_unknown")
        XCTAssertNil(requeued4)
    }

    // MARK: Backfill for deliver=all

    func testBackfillCreatesAllDeliveriesInBatches() async throws {
        let (store, _) = try makeStore(self)
        let tenantIds = try await store.insertTenantsDirectly(5000)
        let newOnly = try await store.subscribe("new-only")
        let all = try await store.subscribe("everything", deliver: "all")
        XCTAssertEqual(all.deliver, "all")
        let number = try await store.integer("SELECT backfill_next FROM subscriptions WHERE id = ?", [.text(all.id)])
        XCTAssertEqual(number, 1)
        let number2 = try await store.integer("SELECT backfill_until FROM subscriptions WHERE id = ?", [.text(all.id)])
        XCTAssertEqual(number2, 5000)

        var counts: [Int64] = []
        for _ in 0..<3 {
            let more = try await store.backfillStep(batchSize: 2000)
            XCTAssertTrue(more)
            counts.append(try await store.integer("SELECT count(*) FROM deliveries WHERE subscription_seq = ?", [.integer(all.seq)]) ?? -1)
        }
        XCTAssertEqual(counts, [2000, 4000, 5000])
        let more2 = try await store.backfillStep(batchSize: 2000)
        XCTAssertFalse(more2, "done")
        let number3 = try await store.integer("SELECT backfill_next FROM subscriptions WHERE id = ?", [.text(all.id)])
        XCTAssertEqual(number3, nil)

        let stored = try await store.subscription(id: all.id)?.counts.pending
        XCTAssertEqual(stored, 5000)
        let stored2 = try await store.subscription(id: newOnly.id)?.counts.pending
        XCTAssertEqual(stored2, 0)
        let count = try await store.integer("SELECT count(DISTINCT tenant_seq) FROM deliveries WHERE subscription_seq = ?", [.integer(all.seq)])
        XCTAssertEqual(count, 5000)
        let first = try await store.tenant(id: tenantIds[0])
        XCTAssertEqual(first?.deliveries.map(\.subscriptionId), [all.id])
    }

    func testBackfillResumesAfterReopen() async throws {
        let directory = try makeTemporaryDirectory(self)
        var store = try TopicStore(directory: directory)
        _ = try await store.insertTenantsDirectly(5000)
        let all = try await store.subscribe("everything", deliver: "all")
        let more = try await store.backfillStep(batchSize: 2000)
        XCTAssertTrue(more)
        store.close()

        store = try TopicStore(directory: directory)
        let reopened = store
        addTeardownBlock { reopened.close() }
        let number = try await store.integer("SELECT backfill_next FROM subscriptions WHERE id = ?", [.text(all.id)])
        XCTAssertEqual(number, 2001)
        let count = try await store.integer("SELECT count(*) FROM deliveries")
        XCTAssertEqual(count, 2000)
        // A tenant published mid-catch-up gets its delivery at once and is not back-filled twice.
        let late = try await store.publishNew(try tenantRequest("late.example.com"))
        XCTAssertEqual(late.deliveries.map(\.subscriptionId), [all.id])

        var steps = 0
        while try await store.backfillStep(batchSize: 2000), steps < 10 { steps += 1 }
        XCTAssertEqual(steps, 2)
        let count2 = try await store.integer("SELECT count(*) FROM deliveries WHERE subscription_seq = ?", [.integer(all.seq)])
        XCTAssertEqual(count2, 5001)
        let count3 = try await store.integer("SELECT count(*) FROM tenants WHERE seq NOT IN (SELECT tenant_seq FROM deliveries)")
        XCTAssertEqual(count3, 0,
            "every tenant has its delivery")
    }

    func testBackfillWithoutTenantsHasNothingToDo() async throws {
        let (store, _) = try makeStore(self)
        let all = try await store.subscribe("everything", deliver: "all")
        let number = try await store.integer("SELECT backfill_next FROM subscriptions WHERE id = ?", [.text(all.id)])
        XCTAssertEqual(number, nil)
        let more = try await store.backfillStep()
        XCTAssertFalse(more)
    }

    func testBackfillOfDeletedSubscriptionStops() async throws {
        let (store, _) = try makeStore(self)
        _ = try await store.insertTenantsDirectly(300)
        let all = try await store.subscribe("everything", deliver: "all")
        let more = try await store.backfillStep(batchSize: 100)
        XCTAssertTrue(more)
        let deleted = try await store.deleteSubscription(id: all.id)
        XCTAssertEqual(deleted, all.id)
        let more2 = try await store.backfillStep(batchSize: 100)
        XCTAssertFalse(more2)
        let count = try await store.integer("SELECT count(*) FROM deliveries")
        XCTAssertEqual(count, 0)
    }

    func testTwoBackfillsRunOneAfterTheOther() async throws {
        let (store, _) = try makeStore(self)
        _ = try await store.insertTenantsDirectly(250)
        let a = try await store.subscribe("a", deliver: "all")
        let b = try await store.subscribe("b", deliver: "all")
        var steps = 0
        while try await store.backfillStep(batchSize: 100), steps < 20 { steps += 1 }
        XCTAssertEqual(steps, 6, "three batches each")
        let stored = try await store.subscription(id: a.id)?.counts.pending
        XCTAssertEqual(stored, 250)
        let stored2 = try await store.subscription(id: b.id)?.counts.pending
        XCTAssertEqual(stored2, 250)
    }

    // MARK: Misc

    func testBacklogAndIsUsable() async throws {
        let (store, _) = try makeStore(self)
        let usable = await store.isUsable()
        XCTAssertTrue(usable)
        let a = try await store.subscribe("a")
        _ = try await store.subscribe("b")
        for index in 0..<3 { _ = try await store.publishNew(try tenantRequest("b\(index).example.com")) }
        try await store.execute("UPDATE deliveries SET state = 1 WHERE subscription_seq = ?", [.integer(a.seq)])
        try await store.recountDeliveries()
        let backlog = try await store.subscriptions().map { ($0.name, $0.counts.pending) }
        XCTAssertEqual(backlog.map(\.0), ["a", "b"])
        XCTAssertEqual(backlog.map(\.1), [0, 3])
    }
}
