import Foundation
import XCTest

@testable import Provisioning

final class MigrationTests: XCTestCase {
    /// About SQLite itself: the PostgreSQL pass of the suite skips it.
    override func setUpWithError() throws { try requireSQLite() }

    private static func userVersion(_ db: any SQLDatabase) throws -> Int {
        Int(try db.queryOne("PRAGMA user_version") { $0.int(0) } ?? -1)
    }

    private static func tableNames(_ db: SQLiteConnection) throws -> Set<String> {
        Set(try db.query("SELECT name FROM sqlite_schema WHERE type = 'table'") { $0.text(0) })
    }

    private static func indexNames(_ db: SQLiteConnection) throws -> Set<String> {
        Set(try db.query("SELECT name FROM sqlite_schema WHERE type = 'index'") { $0.text(0) })
    }

    private static func columnNames(_ db: any SQLDatabase, table: String) throws -> Set<String> {
        Set(try db.query("SELECT name FROM pragma_table_info(?)", [.text(table)]) { $0.text(0) })
    }

    func testEmptyFileMigratesToCurrentVersion() throws {
        let directory = try makeTemporaryDirectory(self)
        let store = try TopicStore(directory: directory)
        store.close()

        let db = try SQLiteConnection(path: databasePath(directory))
        XCTAssertEqual(try Self.userVersion(db), Schema.currentVersion)
        XCTAssertEqual(Schema.currentVersion, Schema.migrations.count)
        XCTAssertTrue(try Self.tableNames(db).isSuperset(of: ["tenants", "subscriptions", "deliveries"]))
        XCTAssertTrue(try Self.indexNames(db).isSuperset(of: ["deliveries_due", "deliveries_by_tenant", "deliveries_by_state"]))
        XCTAssertTrue(try Self.columnNames(db, table: "subscriptions").isSuperset(of: ["backfill_next", "backfill_until"]))
        XCTAssertEqual(try db.queryOne("PRAGMA integrity_check") { $0.text(0) }, "ok")
    }

    func testMigrateStepByStepEndsAtCurrentVersion() throws {
        let directory = try makeTemporaryDirectory(self)
        let db = try SQLiteConnection(path: databasePath(directory))
        XCTAssertEqual(try Self.userVersion(db), 0)
        for version in 1...Schema.currentVersion {
            try Schema.migrate(db, upTo: version)
            XCTAssertEqual(try Self.userVersion(db), version)
        }
        // Migrating again is a no-op.
        try Schema.migrate(db)
        XCTAssertEqual(try Self.userVersion(db), Schema.currentVersion)
    }

    func testReopeningACurrentFileKeepsItsData() async throws {
        let directory = try makeTemporaryDirectory(self)
        let first = try TopicStore(directory: directory)
        let subscription = try await first.subscribe("prod")
        let tenant = try await first.publishNew(try tenantRequest("acme.com"))
        first.close()

        let second = try TopicStore(directory: directory)
        defer { second.close() }
        let reloaded = try await second.tenant(id: tenant.id)
        XCTAssertEqual(reloaded?.data["domain"]?.stringValue, "acme.com")
        XCTAssertEqual(reloaded?.deliveries.map(\.subscriptionId), [subscription.id])
        let subscriptions = try await second.subscriptions()
        XCTAssertEqual(subscriptions.map(\.name), ["prod"])
    }

    /// A file written by the first release (schema version 1) opens with the
    /// current release: its rows survive and the schema is brought up to date.
    func testVersion1FileUpgradesInPlace() async throws {
        let directory = try makeTemporaryDirectory(self)
        do {
            let db = try SQLiteConnection(path: databasePath(directory))
            try Schema.configure(db)
            try Schema.migrate(db, upTo: 1)
            XCTAssertEqual(try Self.userVersion(db), 1)
            XCTAssertFalse(try Self.columnNames(db, table: "subscriptions").contains("backfill_next"))
            let payload = #"{"type":"tenant.created","timestamp":"2026-01-01T00:00:00Z","data":{"id":"ten_old","domain":"old.example.com","admin":{"username":"root","email":"root@old.example.com"},"plan":null,"attributes":{},"createdAt":"2026-01-01T00:00:00Z"}}"#
            try db.run(
                "INSERT INTO tenants (id, domain, request, event_id, payload, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [.text("ten_old"), .text("old.example.com"), .text("{}"), .text("evt_old"), .blob(Array(payload.utf8)),
                 .integer(1_767_225_600_000)])
            try db.run(
                "INSERT INTO subscriptions (id, name, url, secret, deliver, paused, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [.text("sub_old"), .text("legacy"), .text("https://legacy.example/hooks"), .text("whsec_AAAA"), .text("all"),
                 .int(1), .integer(1_767_225_600_000)])
            try db.run(
                "INSERT INTO deliveries (subscription_seq, tenant_seq, state, attempts, last_status, last_error) VALUES (1, 1, 2, 7, 503, 'HTTP 503')")
        }  // the v1 connection closes here

        let store = try TopicStore(directory: directory)
        defer { store.close() }

        let tenant = try await store.tenant(id: "ten_old")
        XCTAssertEqual(tenant?.data["domain"]?.stringValue, "old.example.com")
        XCTAssertEqual(tenant?.status, .failed)
        XCTAssertEqual(tenant?.deliveries.count, 1)
        XCTAssertEqual(tenant?.deliveries.first?.attempts, 7)
        XCTAssertEqual(tenant?.deliveries.first?.lastStatus, 503)
        XCTAssertEqual(tenant?.deliveries.first?.subscriptionName, "legacy")

        let subscription = try await store.subscription(id: "sub_old")
        XCTAssertEqual(subscription?.paused, true)
        XCTAssertEqual(subscription?.deliver, "all")
        XCTAssertEqual(subscription?.counts.failed, 1)
        let storedSecret = try await store.secret(subscriptionId: "sub_old")
        XCTAssertEqual(storedSecret, "whsec_AAAA")

        let (version, columns) = try await store.readers.read { db in
            (try Self.userVersion(db), try Self.columnNames(db, table: "subscriptions"))
        }
        XCTAssertEqual(version, Schema.currentVersion)
        XCTAssertTrue(columns.isSuperset(of: ["backfill_next", "backfill_until"]))
        // An upgraded subscription has no catch-up pending.
        let number = try await store.integer("SELECT backfill_next FROM subscriptions WHERE id = 'sub_old'")
        XCTAssertEqual(number, nil)
        let more = try await store.backfillStep()
        XCTAssertFalse(more)

        // The upgraded file works like a new one.
        let fresh = try await store.publishNew(try tenantRequest("new.example.com"))
        XCTAssertEqual(fresh.deliveries.map(\.subscriptionId), ["sub_old"])
    }

    func testNewerSchemaVersionIsRefused() throws {
        let directory = try makeTemporaryDirectory(self)
        let newer = Schema.currentVersion + 1
        do {
            let db = try SQLiteConnection(path: databasePath(directory))
            try db.execute("PRAGMA user_version = \(newer)")
        }
        XCTAssertThrowsError(try TopicStore(directory: directory)) { error in
            let text = String(describing: error)
            XCTAssertTrue(text.contains("newer"), text)
            XCTAssertTrue(text.contains("\(newer)"), text)
        }
        // The file is left as it was, for the newer release.
        let db = try SQLiteConnection(path: databasePath(directory))
        XCTAssertEqual(try Self.userVersion(db), newer)
        XCTAssertTrue(try Self.tableNames(db).isEmpty)
    }

    func testFailingMigrationRollsBackAndKeepsVersion() throws {
        let directory = try makeTemporaryDirectory(self)
        let db = try SQLiteConnection(path: databasePath(directory))
        try Schema.migrate(db, upTo: 1)
        // Simulate a half-upgraded file: migration 2's first column already exists.
        try db.execute("ALTER TABLE subscriptions ADD COLUMN backfill_next INTEGER")
        XCTAssertThrowsError(try Schema.migrate(db))
        XCTAssertEqual(try Self.userVersion(db), 1, "a failed migration must not bump user_version")
        XCTAssertFalse(try Self.columnNames(db, table: "subscriptions").contains("backfill_until"))
    }

    func testWriterConnectionPragmas() async throws {
        let (store, _) = try makeStore(self)
        let (journal, synchronous, foreignKeys) = try await store.writer.write { db in
            (
                try db.queryOne("PRAGMA journal_mode") { $0.text(0) },
                try db.queryOne("PRAGMA synchronous") { $0.int(0) },
                try db.queryOne("PRAGMA foreign_keys") { $0.int(0) }
            )
        }
        XCTAssertEqual(journal, "wal")
        XCTAssertEqual(synchronous, 2, "synchronous must be FULL")
        XCTAssertEqual(foreignKeys, 1)

        // WAL is a property of the file: any connection sees it.
        let readerJournal = try await store.readers.read { db in try db.queryOne("PRAGMA journal_mode") { $0.text(0) } }
        XCTAssertEqual(readerJournal, "wal")
    }

    func testForeignKeysAreEnforcedOnTheWriter() async throws {
        let (store, _) = try makeStore(self)
        do {
            try await store.execute("INSERT INTO deliveries (subscription_seq, tenant_seq) VALUES (99, 99)")
            XCTFail("a delivery without subscription and tenant must be refused")
        } catch let error as SQLiteError {
            XCTAssertTrue(error.isConstraint, "\(error)")
        }
    }
}
