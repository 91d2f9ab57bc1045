import CSQLite
import Foundation
import XCTest

@testable import Provisioning

final class GroupCommitTests: XCTestCase {
    /// About SQLite itself: the PostgreSQL pass of the suite skips it.
    override func setUpWithError() throws { try requireSQLite() }

    /// 500 publishes at once, with nothing arranged: the writer groups what
    /// queues up while it commits, so there are fewer commits than writes.
    func testConcurrentPublishesAreGroupCommitted() async throws {
        let (store, _) = try makeStore(self)
        _ = try await store.subscribe("prod")
        let count = 500
        let requests = try (0..<count).map { try tenantRequest("c\($0).example.com") }
        let before = store.commitCount

        let ids = try await withThrowingTaskGroup(of: String.self) { group in
            for request in requests {
                group.addTask {
                    guard case .created(let tenant) = try await store.publish(request) else {
                        throw TestFailure.unexpected("\(request.domain) not created")
                    }
                    return tenant.id
                }
            }
            var ids: [String] = []
            for try await id in group { ids.append(id) }
            return ids
        }

        let commits = store.commitCount - before
        print("\(count) concurrent publishes took \(commits) commits")
        XCTAssertEqual(Set(ids).count, count)
        XCTAssertLessThan(commits, count, "\(count) writes took \(commits) commits: no grouping")
        let tenantCount = try await store.tenantCount()
        XCTAssertEqual(tenantCount, count)
        let count2 = try await store.integer("SELECT count(*) FROM deliveries")
        XCTAssertEqual(count2, Int64(count))
        for id in ids.prefix(20) {
            let tenant = try await store.tenant(id: id)
            XCTAssertEqual(tenant?.deliveries.count, 1)
        }
    }

    /// The same with the writer held until all 500 are queued: they are
    /// committed as one group, so exactly two commits (the hold, the group).
    func testQueuedPublishesCommitAsOneGroup() async throws {
        let (store, _) = try makeStore(self)
        _ = try await store.subscribe("prod")
        _ = try await store.subscribe("test")
        let count = 500
        let requests = try (0..<count).map { try tenantRequest("g\($0).example.com") }
        let before = store.commitCount

        let hold = try await store.writer.hold(untilQueued: count)
        let results = try await withThrowingTaskGroup(of: TopicStore.PublishResult.self) { group in
            for request in requests { group.addTask { try await store.publish(request) } }
            var results: [TopicStore.PublishResult] = []
            for try await result in group { results.append(result) }
            return results
        }
        try await hold.value

        let created = results.compactMap { result -> Tenant? in
            if case .created(let tenant) = result { return tenant }
            return nil
        }
        XCTAssertEqual(created.count, count)
        XCTAssertEqual(Set(created.map(\.data["domain"]?.stringValue)).count, count)
        XCTAssertTrue(created.allSatisfy { $0.deliveries.count == 2 })
        XCTAssertEqual(store.commitCount - before, 2, "the hold, then one group of \(count)")
        let tenantCount = try await store.tenantCount()
        XCTAssertEqual(tenantCount, count)
        let count2 = try await store.integer("SELECT count(*) FROM deliveries")
        XCTAssertEqual(count2, Int64(2 * count))
    }

    /// A backlog larger than the group limit (2000) commits in several groups.
    func testGroupsAreCappedAt2000Jobs() async throws {
        let (store, _) = try makeStore(self)
        let before = store.commitCount
        let hold = try await store.writer.hold(untilQueued: 4500)
        let jobs = (0..<4500).map { index in store.writer.enqueue { _ in index } }
        try await hold.value
        for (index, job) in jobs.enumerated() {
            let value = try await job.value()
            XCTAssertEqual(value, index)
        }
        XCTAssertEqual(store.commitCount - before, 1 + 3, "the hold, then 2000 + 2000 + 500")
    }

    /// Jobs in one group: one that throws and one that breaks a constraint
    /// are rolled back alone; the others commit, and each caller gets its own result.
    func testFailingJobDoesNotAffectOthersInItsGroup() async throws {
        let (store, _) = try makeStore(self)
        let writer = store.writer
        let before = store.commitCount

        let hold = try await writer.hold(untilQueued: 4)
        let a = writer.enqueue { db in try Self.insertTenant(db, "a.example.com") }
        let b = writer.enqueue { db -> Int64 in
            _ = try Self.insertTenant(db, "b.example.com")
            throw TestFailure.unexpected("job b fails after writing")
        }
        let c = writer.enqueue { db in try Self.insertTenant(db, "c.example.com") }
        let d = writer.enqueue { db in try Self.insertTenant(db, "a.example.com") }  // UNIQUE(domain) with a
        try await hold.value

        let seqA = try await a.value()
        let seqC = try await c.value()
        XCTAssertLessThan(seqA, seqC)
        do {
            _ = try await b.value()
            XCTFail("job b must fail")
        } catch let error as TestFailure {
            XCTAssertEqual(error.description, "job b fails after writing")
        }
        do {
            _ = try await d.value()
            XCTFail("job d must fail")
        } catch let error as SQLiteError {
            XCTAssertTrue(error.isConstraint, "\(error)")
        }

        XCTAssertEqual(store.commitCount - before, 2, "the hold, then one group of four")
        let domains = try await store.readers.read { db in
            try db.query("SELECT domain FROM tenants ORDER BY seq") { $0.text(0) }
        }
        XCTAssertEqual(domains, ["a.example.com", "c.example.com"])

        // The writer is healthy afterwards: no savepoint or transaction left open.
        let inTransaction = try await writer.write { db in sqlite3_get_autocommit((db as! SQLiteConnection).handle) == 0 }
        XCTAssertTrue(inTransaction, "jobs run inside the group transaction")
        _ = try await store.publishNew(try tenantRequest("after.example.com"))
        let tenantCount = try await store.tenantCount()
        XCTAssertEqual(tenantCount, 3)
    }

    /// Some errors (interrupt, disk full, I/O error) make SQLite roll back the
    /// whole transaction, not just the job's savepoint. The group's other jobs
    /// must not be lost silently, nor run outside a transaction.
    func testJobThatAbortsTheTransactionDoesNotLoseTheOthers() async throws {
        let (store, _) = try makeStore(self)
        let writer = store.writer

        let hold = try await writer.hold(untilQueued: 3)
        let a = writer.enqueue { db in try Self.insertTenant(db, "a.example.com") }
        let b = writer.enqueue { db -> Int64 in
            _ = try Self.insertTenant(db, "b.example.com")
            // A progress handler that asks to stop makes the statement fail with SQLITE_INTERRUPT.
            sqlite3_progress_handler((db as! SQLiteConnection).handle, 1, { _ in 1 }, nil)
            defer { sqlite3_progress_handler((db as! SQLiteConnection).handle, 0, nil, nil) }
            return try Self.insertTenant(db, "b2.example.com")
        }
        let c = writer.enqueue { db in try Self.insertTenant(db, "c.example.com") }
        try await hold.value

        do {
            _ = try await b.value()
            XCTFail("job b must fail")
        } catch let error as SQLiteError {
            XCTAssertEqual(error.code & 0xFF, SQLITE_INTERRUPT, "\(error)")
        }
        // a was undone with b's transaction and c had not run yet: both run again, and commit.
        let seqA = try await a.value()
        let seqC = try await c.value()
        XCTAssertNotEqual(seqA, seqC)
        let domains = try await store.readers.read { db in try db.query("SELECT domain FROM tenants ORDER BY seq") { $0.text(0) } }
        XCTAssertEqual(domains, ["a.example.com", "c.example.com"])

        // And the writer is still usable.
        _ = try await store.publishNew(try tenantRequest("after.example.com"))
    }

    func testCloseCommitsQueuedJobsAndRefusesLaterOnes() async throws {
        let directory = try makeTemporaryDirectory(self)
        let store = try TopicStore(directory: directory)
        let writer = store.writer

        let hold = try await writer.hold(untilQueued: 10)
        let jobs = (0..<10).map { index in writer.enqueue { db in try Self.insertTenant(db, "q\(index).example.com") } }
        store.close()  // returns once the queue is committed
        try await hold.value
        for job in jobs { _ = try await job.value() }
        // ... and checkpointed: everything is in the database file itself.
        let wal = try FileManager.default.attributesOfItem(atPath: databasePath(directory) + "-wal")[.size] as? Int
        XCTAssertEqual(wal ?? 0, 0, "close() leaves an empty WAL")

        do {
            _ = try await store.publish(try tenantRequest("late.example.com"))
            XCTFail("a write after close must fail")
        } catch let error as SQLiteError {
            XCTAssertTrue(error.message.contains("closed"), "\(error)")
        }

        let reopened = try TopicStore(directory: directory)
        defer { reopened.close() }
        let tenantCount = try await reopened.tenantCount()
        XCTAssertEqual(tenantCount, 10)
    }

    func testCompletionAPIReportsCommittedResults() async throws {
        let (store, _) = try makeStore(self)
        let jobs = (0..<50).map { index in store.writer.enqueue { db in try Self.insertTenant(db, "h\(index).example.com") } }
        var seqs: [Int64] = []
        for job in jobs { seqs.append(try await job.value()) }
        XCTAssertEqual(seqs, seqs.sorted(), "jobs run in the order they were queued")
        XCTAssertEqual(Set(seqs).count, 50)
        let tenantCount = try await store.tenantCount()
        XCTAssertEqual(tenantCount, 50)
    }

    /// A minimal tenant row; returns its seq.
    static func insertTenant(_ db: any SQLDatabase, _ domain: String) throws -> Int64 {
        try insertTenantRow(db, id: "ten_" + domain, domain: domain, eventId: "evt_" + domain, payload: Array("{}".utf8))
    }
}
