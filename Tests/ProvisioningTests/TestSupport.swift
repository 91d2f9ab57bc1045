import Foundation
import XCTest

@testable import Provisioning

/// A fresh directory under the system's temporary directory, removed when
/// the test that made it ends.
func makeTemporaryDirectory(_ test: XCTestCase, function: String = #function) throws -> String {
    let base = URL(fileURLWithPath: NSTemporaryDirectory(), isDirectory: true)
    let name = "provisiond-tests-\(function.prefix { $0.isLetter || $0.isNumber })-\(UUID().uuidString)"
    let url = base.appendingPathComponent(name, isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock {
        // SQLite may still delete its -wal/-shm files as the last connection of a
        // released store closes, racing the first attempt; a few tries settle it.
        for _ in 0..<5 where FileManager.default.fileExists(atPath: url.path) {
            try? FileManager.default.removeItem(at: url)
        }
    }
    return url.path
}

/// The store the suite runs against: SQLite unless PROVISIOND_TEST_STORE=postgres
/// (then on the server of PROVISIOND_TEST_POSTGRES). `make test` runs it both ways.
let testStoreIsPostgres = ProcessInfo.processInfo.environment["PROVISIOND_TEST_STORE"] == "postgres"

/// A TopicStore, fresh for the test and closed when it ends: SQLite in a
/// temporary directory, or a new PostgreSQL database (see `testStoreIsPostgres`).
/// The directory is made either way.
func makeStore(_ test: XCTestCase, function: String = #function) throws -> (TopicStore, String) {
    let directory = try makeTemporaryDirectory(test, function: function)
    let store: TopicStore
    if testStoreIsPostgres {
        store = TopicStore(engine: try PostgresEngine.open(url: try makePostgresDatabase(test)))
    } else {
        store = try TopicStore(directory: directory)
    }
    test.addTeardownBlock { store.close() }
    return (store, directory)
}

/// For a test of SQLite itself (its file, its writer, its query plans): skipped on PostgreSQL.
func requireSQLite() throws {
    if testStoreIsPostgres { throw XCTSkip("about the SQLite store itself") }
}

/// The path of the database file inside a data directory.
func databasePath(_ directory: String) -> String {
    (directory as NSString).appendingPathComponent(TopicStore.fileName)
}

/// A valid tenant request for `domain`, built through the real parser.
func tenantRequest(
    _ domain: String, username: String = "admin", email: String? = nil, plan: String? = "Demo",
    attributes: String = #"{"tier": 1}"#
) throws -> TenantRequest {
    let email = email ?? "admin@\(domain)"
    var body = #"{"domain": "\#(domain)", "admin": {"username": "\#(username)", "email": "\#(email)"}"#
    if let plan { body += #", "plan": "\#(plan)""# }
    body += #", "attributes": \#(attributes)}"#
    return try TenantRequest.parse(Array(body.utf8))
}

func subscriptionRequest(_ name: String, deliver: String = "new") throws -> SubscriptionRequest {
    try SubscriptionRequest.parse(Array(#"{"name": "\#(name)", "url": "https://\#(name).example/hooks", "deliver": "\#(deliver)"}"#.utf8))
}

enum TestFailure: Error, CustomStringConvertible {
    case unexpected(String)
    var description: String {
        switch self {
        case .unexpected(let message): return message
        }
    }
}

extension TopicStore {
    /// Publishes and requires a newly created tenant.
    func publishNew(_ request: TenantRequest) async throws -> Tenant {
        guard case .created(let tenant) = try await publish(request) else {
            throw TestFailure.unexpected("\(request.domain) was not created")
        }
        return tenant
    }

    /// Creates a subscription and requires success.
    func subscribe(_ name: String, deliver: String = "new") async throws -> Subscription {
        guard case .created(let subscription, _) = try await createSubscription(try subscriptionRequest(name, deliver: deliver)) else {
            throw TestFailure.unexpected("subscription \(name) was not created")
        }
        return subscription
    }

    /// Runs `sql` on the writer connection, committed like any other job.
    @discardableResult
    func execute(_ sql: String, _ bindings: [SQLValue] = []) async throws -> Int {
        try await engine.write { db in try db.run(sql, bindings) }
    }

    /// Counts every subscription's and tenant's deliveries again, and the
    /// tenants per status: for fixtures that set delivery states with SQL
    /// rather than through the write paths that keep the counts.
    func recountDeliveries() async throws {
        try await engine.write { db in
            try db.run(
                """
                UPDATE subscriptions SET
                    pending_n = (SELECT count(*) FROM deliveries WHERE subscription_seq = subscriptions.seq AND state = 0),
                    delivered_n = (SELECT count(*) FROM deliveries WHERE subscription_seq = subscriptions.seq AND state = 1),
                    failed_n = (SELECT count(*) FROM deliveries WHERE subscription_seq = subscriptions.seq AND state = 2)
                """)
            try db.run(
                """
                UPDATE tenants SET
                    pending_n = (SELECT count(*) FROM deliveries WHERE tenant_seq = tenants.seq AND state = 0),
                    failed_n = (SELECT count(*) FROM deliveries WHERE tenant_seq = tenants.seq AND state = 2)
                """)
            try db.run(
                """
                UPDATE tenant_stats SET n = (
                    SELECT count(*) FROM tenants WHERE deleted_at IS NULL AND
                        CASE WHEN failed_n > 0 THEN 'failed' WHEN pending_n > 0 THEN 'pending' ELSE 'provisioned' END = tenant_stats.status)
                """)
        }
    }

    /// Reads one integer with a reader connection.
    func integer(_ sql: String, _ bindings: [SQLValue] = []) async throws -> Int64? {
        try await engine.read { db in try db.queryOne(sql, bindings) { $0.optionalInt(0) } ?? nil }
    }

    /// Inserts `count` tenants directly, in one write job (fast fixtures);
    /// returns their ids in seq order. Creates no deliveries.
    func insertTenantsDirectly(_ count: Int, domainPrefix: String = "t") async throws -> [String] {
        try await engine.write { db in
            var ids: [String] = []
            for index in 0..<count {
                let id = "ten_fixture_\(domainPrefix)_\(index)"
                try insertTenantRow(
                    db, id: id, domain: "\(domainPrefix)\(index).example.com", eventId: "evt_fixture_\(domainPrefix)_\(index)",
                    payload: Array(#"{"data": {"domain": "\#(domainPrefix)\#(index).example.com"}}"#.utf8))
                ids.append(id)
            }
            return ids
        }
    }
}

/// Asserts that `body` throws an InvalidRequest naming `field`.
func assertInvalid(
    _ field: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void
) {
    do {
        try body()
        XCTFail("expected InvalidRequest for \(field), but it succeeded", file: file, line: line)
    } catch let error as InvalidRequest {
        XCTAssertEqual(error.field, field, "message: \(error.message)", file: file, line: line)
    } catch {
        XCTFail("expected InvalidRequest for \(field), got \(error)", file: file, line: line)
    }
}

func assertInvalid(
    _ field: String, file: StaticString = #filePath, line: UInt = #line, _ body: () async throws -> Void
) async {
    do {
        try await body()
        XCTFail("expected InvalidRequest for \(field), but it succeeded", file: file, line: line)
    } catch let error as InvalidRequest {
        XCTAssertEqual(error.field, field, "message: \(error.message)", file: file, line: line)
    } catch {
        XCTFail("expected InvalidRequest for \(field), got \(error)", file: file, line: line)
    }
}

/// The result of a write job queued with the completion API, to await later.
final class PendingWrite<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<T, Error>?
    private var continuation: CheckedContinuation<T, Error>?

    func complete(_ result: Result<T, Error>) {
        lock.lock()
        if let continuation {
            self.continuation = nil
            lock.unlock()
            continuation.resume(with: result)
        } else {
            self.result = result
            lock.unlock()
        }
    }

    func value() async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            lock.lock()
            if let result {
                lock.unlock()
                continuation.resume(with: result)
            } else {
                self.continuation = continuation
                lock.unlock()
            }
        }
    }
}

/// A flag set on one thread and polled on another.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() {
        lock.lock()
        value = true
        lock.unlock()
    }
    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}

extension StoreWriter {
    /// Queues a job now, in call order (unlike concurrent tasks); await its result later.
    func enqueue<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T) -> PendingWrite<T> {
        let pending = PendingWrite<T>()
        write(body, completion: { pending.complete($0) })
        return pending
    }

    /// Occupies the writer thread with a job that waits until `count` more
    /// jobs are queued behind it, so that those form one group. Returns once
    /// the hold is in place; await the task to see it end. The waits are
    /// bounded (about a minute) so a broken writer fails the test instead of hanging it.
    func hold(untilQueued count: Int) async throws -> Task<Void, Error> {
        let started = Flag()
        let task = Task {
            try await self.write { _ in
                started.set()
                var rounds = 0
                while self.queuedJobs < count && rounds < 60_000 {
                    usleep(1000)
                    rounds += 1
                }
            }
        }
        var rounds = 0
        while !started.isSet && rounds < 60_000 {
            try await Task.sleep(for: .milliseconds(1))
            rounds += 1
        }
        XCTAssertTrue(started.isSet, "the writer never ran the hold job")
        return task
    }
}

/// A tenant with its creation event, straight into the tables (fast
/// fixtures; no deliveries); returns the tenant's seq.
@discardableResult
func insertTenantRow(_ db: any SQLDatabase, id: String, domain: String, eventId: String, payload: [UInt8]) throws -> Int64 {
    let eventSeq = try db.queryOne(
        "INSERT INTO events (id, type, domain, version, payload, created_at) VALUES (?, 'tenant.created', ?, 1, ?, 0) RETURNING seq",
        [.text(eventId), .text(domain), .blob(payload)], map: { $0.int(0) })!
    let seq = try db.queryOne(
        "INSERT INTO tenants (id, domain, request, last_event_seq, created_at, updated_at) VALUES (?, ?, '{}', ?, 0, 0) RETURNING seq",
        [.text(id), .text(domain), .integer(eventSeq)], map: { $0.int(0) })!
    try db.run("UPDATE events SET tenant_seq = ? WHERE seq = ?", [.integer(seq), .integer(eventSeq)])
    // Counted like a published tenant with no deliveries (see `Counters`).
    try Counters.moveTenant(db, from: nil, to: .provisioned)
    return seq
}

/// The SQLite store's own parts, for tests of group commit and of SQLite itself.
extension TopicStore {
    var writer: StoreWriter { (engine as! SQLiteEngine).writer }
    var readers: ReaderPool { (engine as! SQLiteEngine).readers }
}
