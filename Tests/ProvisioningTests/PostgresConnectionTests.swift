import CSQLite
import Foundation
import XCTest

@testable import Provisioning

/// The connection, the engine and the migrations against a real PostgreSQL
/// (PROVISIOND_TEST_POSTGRES; `make test` starts one). Each test makes its
/// own database and drops it after.
final class PostgresConnectionTests: XCTestCase {
    override func setUpWithError() throws {
        // Fail, not skip: a run without the server must not look like a pass.
        _ = try PostgresTestServer.requireAdminURL()
    }

    // MARK: Values and statements

    func testValuesRoundTrip() throws {
        let db = try PostgresConnection(url: try makePostgresDatabase(self))
        try db.exec("CREATE TABLE v (n INTEGER PRIMARY KEY, i BIGINT, r DOUBLE PRECISION, t TEXT, b BYTEA)")
        let text = "héllo ✓ 🚀 'single' \"double\" \\ back ? $1 --"
        let blob: [UInt8] = [0x00, 0x01, 0x00, 0xFF, 0x5C, 0x78, 0x27, 0x00]
        let rows: [[SQLValue]] = [
            [.int(1), .integer(Int64.max), .real(1.5), .text(text), .blob(blob)],
            [.int(2), .integer(Int64.min), .real(-0.000_001), .text(""), .blob([])],
            [.int(3), .null, .null, .null, .null],
            [.int(4), .integer(0), .real(.infinity), .text("x"), .blob([0x00])],
        ]
        for row in rows {
            XCTAssertEqual(try db.run("INSERT INTO v (n, i, r, t, b) VALUES (?, ?, ?, ?, ?)", row), 1)
        }
        struct Row: Equatable {
            var i: Int64?, r: Double?, t: String?, b: [UInt8]?
        }
        let read = try db.query("SELECT i, r, t, b FROM v ORDER BY n") { row in
            Row(i: row.optionalInt(0), r: row.isNull(1) ? nil : Double(row.text(1)),
                t: row.optionalText(2), b: row.isNull(3) ? nil : row.blob(3))
        }
        XCTAssertEqual(read, [
            Row(i: Int64.max, r: 1.5, t: text, b: blob),
            Row(i: Int64.min, r: -0.000_001, t: "", b: []),
            Row(i: nil, r: nil, t: nil, b: nil),
            Row(i: 0, r: .infinity, t: "x", b: [0x00]),
        ])
        // A value not given is NULL, as in SQLite; a boolean reads as 1 or 0.
        XCTAssertEqual(try db.queryOne("SELECT ?::bigint IS NULL, 1 = 2", []) { [$0.int(0), $0.int(1)] }, [1, 0])
        // A statement prepared once is run again with other values.
        XCTAssertEqual(try db.queryOne("SELECT t FROM v WHERE n = ?", [.int(4)]) { $0.text(0) }, "x")
        XCTAssertEqual(try db.queryOne("SELECT t FROM v WHERE n = ?", [.int(1)]) { $0.text(0) }, text)
        // `each` returning false stops; the count is the rows changed.
        var seen = 0
        try db.execute(text: "SELECT n FROM v", []) { _ in seen += 1; return false }
        XCTAssertEqual(seen, 1)
        XCTAssertEqual(try db.run("UPDATE v SET t = ? WHERE n >= ?", [.text("y"), .int(2)]), 3)
    }

    func testPlaceholdersOnTheServer() throws {
        let db = try PostgresConnection(url: try makePostgresDatabase(self))
        let sql = SQL("""
            SELECT '?' AS literal, ?2 AS second, ?1 AS first, "?column?" -- ? in a comment
            FROM (SELECT 'it''s ?' AS "?column?") AS quoted /* ? */
            """)
        let row = try db.queryOne(sql, [.text("one"), .text("two")]) { [$0.text(0), $0.text(1), $0.text(2), $0.text(3)] }
        XCTAssertEqual(row, ["?", "two", "one", "it's ?"])
        // Prepared once per connection, found again by the SQL's identity.
        XCTAssertEqual(try db.queryOne(sql, [.text("a"), .text("b")]) { $0.text(1) }, "b")
        XCTAssertThrowsError(try db.run("SELECT ?", [.int(1), .int(2)]))
    }

    func testUniqueViolationHasItsSQLState() throws {
        let db = try PostgresConnection(url: try makePostgresDatabase(self))
        try db.exec("CREATE TABLE u (k TEXT UNIQUE)")
        try db.run("INSERT INTO u (k) VALUES (?)", [.text("a")])
        XCTAssertThrowsError(try db.run("INSERT INTO u (k) VALUES (?)", [.text("a")])) { error in
            guard let error = error as? PostgresError else { return XCTFail("\(error)") }
            XCTAssertEqual(error.sqlState, "23505")
            XCTAssertTrue(error.isUniqueViolation)
            XCTAssertFalse(error.isRetryable)
            XCTAssertFalse(error.isConnectionLost)
            XCTAssertFalse("\(error)".contains("\n"), "\(error)")
        }
        // The connection goes on.
        XCTAssertEqual(try db.queryOne("SELECT count(*) FROM u") { $0.int(0) }, 1)
    }

    // MARK: The engine

    func testSerializationConflictIsRetriedToSuccess() async throws {
        let url = try makePostgresDatabase(self)
        let engine = try makePostgresEngine(self, url: url)
        _ = try await engine.write { db in
            try db.run("CREATE TABLE counter (id INTEGER PRIMARY KEY, v BIGINT NOT NULL)")
            try db.run("INSERT INTO counter VALUES (1, 0)")
        }
        // Another session (a claim, say) holds the row changed and commits it
        // after the write read it: the write cannot serialize and must run again.
        let other = try PostgresConnection(url: url)
        try other.exec("BEGIN")
        try other.run("UPDATE counter SET v = v + 10 WHERE id = 1")
        let read = Meeting(parties: 2)
        let runs = Counter()
        async let result = engine.write { db -> Int64 in
            runs.add()
            let value = try db.queryOne("SELECT v FROM counter WHERE id = 1") { $0.int(0) } ?? -1
            read.arrive()
            try db.run("UPDATE counter SET v = ? WHERE id = 1", [.integer(value + 1)])
            return value + 1
        }
        await Task.detached { read.arrive() }.value
        try other.exec("COMMIT")
        let written = try await result
        XCTAssertEqual(written, 11, "the second run saw the other session's change")
        XCTAssertEqual(runs.value, 2, "the first run failed to serialize and ran again")
        let final = try await engine.read { db in try db.queryOne("SELECT v FROM counter") { $0.int(0) } }
        XCTAssertEqual(final, 11)
    }

    func testWritersOfTwoInstancesTakeTurns() async throws {
        let url = try makePostgresDatabase(self)
        let first = try makePostgresEngine(self, url: url)
        let second = try makePostgresEngine(self, url: url)
        _ = try await first.write { db in
            try db.run("CREATE TABLE counter (id INTEGER PRIMARY KEY, v BIGINT NOT NULL)")
            try db.run("INSERT INTO counter VALUES (1, 0)")
        }
        // Each write waits (up to 1 s) for the other to have read too. Were they
        // to overlap, both would read 0 and one would run again; taking turns,
        // the first gives up waiting, writes, and the second reads its value.
        let meeting = Meeting(parties: 2)
        let runs = Counter()
        let increment: @Sendable (any SQLDatabase) throws -> Int64 = { db in
            runs.add()
            let value = try db.queryOne("SELECT v FROM counter WHERE id = 1") { $0.int(0) } ?? -1
            meeting.arrive(timeout: 1)
            try db.run("UPDATE counter SET v = ? WHERE id = 1", [.integer(value + 1)])
            return value + 1
        }
        async let a = first.write(increment)
        async let b = second.write(increment)
        let results = try await [a, b].sorted()
        XCTAssertEqual(results, [1, 2])
        XCTAssertEqual(runs.value, 2, "no write ran twice: they never overlapped")
        XCTAssertEqual(first.commits + second.commits, 3)
    }

    func testBodyErrorsRollBack() async throws {
        let engine = try makePostgresEngine(self, url: try makePostgresDatabase(self))
        try await engine.write { db in _ = try db.run("CREATE TABLE u (k TEXT UNIQUE)") }
        struct Refused: Error {}
        do {
            try await engine.write { db in
                try db.run("INSERT INTO u VALUES ('a')")
                throw Refused()
            }
            XCTFail("no error")
        } catch is Refused {}
        // A body that catches an error and goes on does not commit a void transaction silently.
        do {
            try await engine.write { db in
                try db.run("INSERT INTO u VALUES ('b')")
                _ = try? db.run("INSERT INTO u VALUES ('b')")
                return
            }
            XCTFail("no error")
        } catch let error as PostgresError {
            XCTAssertTrue(error.isUniqueViolation, "\(error)")
        }
        let count = try await engine.read { db in try db.queryOne("SELECT count(*) FROM u") { $0.int(0) } }
        XCTAssertEqual(count, 0)
        // Reads are read-only.
        do {
            try await engine.read { db in _ = try db.run("INSERT INTO u VALUES ('c')") }
            XCTFail("a read wrote")
        } catch let error as PostgresError {
            XCTAssertEqual(error.sqlState, "25006", "\(error)")
        }
    }

    func testPoolUsesAtMostMaxConnections() async throws {
        let url = try makePostgresDatabase(self)
        let engine = try makePostgresEngine(self, url: url, maxConnections: 2)
        let name = String(url.split(separator: "/").last!)
        XCTAssertEqual(engine.description, "postgres 127.0.0.1:\(URLComponents(string: url)!.port!)/\(name)")
        let pids = try await withThrowingTaskGroup(of: Int64.self) { group in
            for _ in 0..<6 {
                group.addTask {
                    try await engine.read { db in
                        try db.queryOne("SELECT pg_backend_pid(), pg_sleep(0.05)") { $0.int(0) }!
                    }
                }
            }
            return try await group.reduce(into: Set<Int64>()) { $0.insert($1) }
        }
        XCTAssertLessThanOrEqual(pids.count, 2)
        // From a thread that does not await.
        let now = try engine.readNow { db in try db.queryOne("SELECT 41 + 1") { $0.int(0) } }
        XCTAssertEqual(now, 42)
        let written = Counter()
        let done = expectation(description: "write with completion")
        engine.write({ db in try db.queryOne("SELECT 7") { $0.int(0) }! }) { result in
            if case .success(7) = result { written.add() }
            done.fulfill()
        }
        await fulfillment(of: [done], timeout: 10)
        XCTAssertEqual(written.value, 1)
    }

    func testNotifyReachesAListenerAtCommit() async throws {
        let url = try makePostgresDatabase(self)
        let listener = try PostgresConnection(url: url)
        let sender = try PostgresConnection(url: url)
        try listener.listen("provisiond_wake")
        XCTAssertGreaterThanOrEqual(listener.socket, 0)

        try sender.exec("BEGIN")
        try sender.run("SELECT pg_notify(?, ?)", [.text("provisiond_wake"), .text("first")])
        XCTAssertEqual(try listener.waitForNotifications(timeout: 0.2), [], "delivered before the commit")
        try sender.exec("COMMIT")
        XCTAssertEqual(try listener.waitForNotifications(timeout: 5), ["first"])

        // From a write transaction of the engine.
        let engine = try makePostgresEngine(self, url: url)
        try await engine.write { db in _ = try db.run("SELECT pg_notify(?, ?)", [.text("provisiond_wake"), .text("second")]) }
        XCTAssertEqual(try listener.waitForNotifications(timeout: 5), ["second"])
        XCTAssertEqual(try listener.notifications(), [])
    }

    // MARK: Migrations

    func testMigrationsRunOnceWhenInstancesStartTogether() throws {
        let url = try makePostgresDatabase(self)
        let errors = Counter()
        let engines = Locked<[PostgresEngine]>([])
        DispatchQueue.concurrentPerform(iterations: 3) { _ in
            do {
                let engine = try PostgresEngine.open(url: url)
                engines.withLock { $0.append(engine) }
            } catch {
                errors.add()
                XCTFail("\(error)")
            }
        }
        defer { engines.withLock { $0.forEach { $0.close() } } }
        XCTAssertEqual(errors.value, 0)
        // And again, on a migrated database.
        let again = try makePostgresEngine(self, url: url)
        let versions = try again.readNow { db in try db.query("SELECT version FROM schema_migrations ORDER BY version") { $0.int(0) } }
        XCTAssertEqual(versions, (1...PostgresSchema.currentVersion).map(Int64.init))
        let stats = try again.readNow { db in try db.query("SELECT status, n FROM tenant_stats ORDER BY status") { "\($0.text(0))=\($0.int(1))" } }
        XCTAssertEqual(stats, ["failed=0", "pending=0", "provisioned=0"])
    }

    /// Migration 1 is SQLite's schema after its migrations: the same tables,
    /// columns, nullability, defaults, unique keys and indexes.
    func testSchemaMatchesSQLite() throws {
        let engine = try makePostgresEngine(self, url: try makePostgresDatabase(self))
        let directory = try makeTemporaryDirectory(self)
        let sqlite = try SQLiteConnection(path: directory + "/schema.sqlite3")
        try Schema.migrate(sqlite)

        let tables = try sqlite.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name") { $0.text(0) }
        let pgTables = try engine.readNow { db in
            try db.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name != 'schema_migrations' ORDER BY table_name") { $0.text(0) }
        }
        XCTAssertEqual(pgTables, tables)

        /// A column as "name notnull default", the default without PostgreSQL's cast.
        func normalized(_ name: String, _ notNull: Bool, _ defaultValue: String?) -> String {
            var value = defaultValue ?? "-"
            if let cast = value.range(of: "::") { value = String(value[..<cast.lowerBound]) }
            return "\(name) \(notNull ? "NOT NULL" : "null") \(value)"
        }
        for table in tables {
            let columns = try sqlite.query("SELECT name, \"notnull\", dflt_value, pk FROM pragma_table_info(?) ORDER BY name", [.text(table)]) {
                // A primary key column is never null (SQLite's integer key is the rowid).
                normalized($0.text(0), $0.int(1) == 1 || $0.int(3) > 0, $0.optionalText(2)?.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            let pgColumns = try engine.readNow { db in
                try db.query("""
                    SELECT column_name, is_nullable = 'NO', column_default FROM information_schema.columns
                    WHERE table_schema = 'public' AND table_name = ? ORDER BY column_name
                    """, [.text(table)]) { normalized($0.text(0), $0.int(1) == 1, $0.optionalText(2)) }
            }
            XCTAssertEqual(pgColumns, columns.sorted(), table)
        }

        // Unique keys (other than primary keys) and named indexes, as "table(columns)".
        var sqliteUnique: [String] = []
        var sqliteIndexes: [String] = []
        for table in tables {
            let indexes = try sqlite.query("SELECT name, \"unique\", origin FROM pragma_index_list(?)", [.text(table)]) { ($0.text(0), $0.int(1) == 1, $0.text(2)) }
            for (name, unique, origin) in indexes where origin != "pk" {
                let columns = try sqlite.query("SELECT name FROM pragma_index_info(?) ORDER BY seqno", [.text(name)]) { $0.text(0) }
                let key = "\(table)(\(columns.joined(separator: ",")))"
                if unique { sqliteUnique.append(key) }
                if origin == "c" { sqliteIndexes.append("\(name) \(key)") }
            }
        }
        let pgIndexes = try engine.readNow { db in
            try db.query("""
                SELECT i.relname, t.relname, x.indisunique, x.indisprimary,
                       (SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM unnest(x.indkey[0:x.indnkeyatts - 1]) WITH ORDINALITY AS k(attnum, ord)
                        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum)
                FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
                WHERE t.relnamespace = 'public'::regnamespace AND t.relname != 'schema_migrations'
                """) { (name: $0.text(0), key: "\($0.text(1))(\($0.text(4)))", unique: $0.int(2) == 1, primary: $0.int(3) == 1) }
        }
        XCTAssertEqual(pgIndexes.filter { $0.unique && !$0.primary }.map(\.key).sorted(), sqliteUnique.sorted())
        let pgNamed = Set(pgIndexes.map { "\($0.name) \($0.key)" })
        for index in sqliteIndexes {
            XCTAssertTrue(pgNamed.contains(index), "missing index \(index)")
        }
    }

    // MARK: Failures

    func testConnectionErrorsAreOneLineWithoutThePassword() throws {
        let admin = try PostgresTestServer.requireAdminURL()
        let port = URLComponents(string: admin)!.port!
        let closedPort = try freeTCPPort()
        let cases = [
            "bad URL": "postgres://user:s3cret@127.0.0.1:notaport/db",
            "bad scheme": "mysql://user:s3cret@127.0.0.1/db",
            "bad escape": "postgres://user:s3cret@127.0.0.1:\(port)/db?sslmode=%zz",
            "bad option": "postgres://user:s3cret@127.0.0.1:\(port)/db?password=s3cret&nosuchoption=1",
            "refused login": "postgres://nobody_here:s3cret@127.0.0.1:\(port)/postgres",
            "refused login, encoded password": "postgres://nobody_here:s3%63ret@127.0.0.1:\(port)/postgres",
            "no such database": "postgres://postgres:s3cret@127.0.0.1:\(port)/no_such_database",
            "unreachable": "postgresql://user:s3cret@127.0.0.1:\(closedPort)/db",
        ]
        for (label, url) in cases {
            XCTAssertThrowsError(try PostgresEngine.open(url: url), label) { error in
                let text = "\(error)"
                XCTAssertFalse(text.contains("s3cret"), "\(label): \(text)")
                XCTAssertFalse(text.contains("\n"), "\(label): \(text)")
                XCTAssertTrue(text.contains("***"), "\(label): the URL is not shown: \(text)")
                XCTAssertTrue((error as? PostgresError)?.isConnectionLost == true, "\(label): \(text)")
            }
        }
    }

    func testLostConnectionIsUnavailableThenRecovers() async throws {
        let admin = try PostgresTestServer.requireAdminURL()
        let url = try makePostgresDatabase(self)
        let name = String(url.split(separator: "/").last!)
        let engine = try makePostgresEngine(self, url: url, maxConnections: 1)
        try await engine.write { db in _ = try db.run("CREATE TABLE t (n BIGINT)") }

        // The backend dies in the middle of a transaction.
        do {
            try await engine.write { db in
                let pid = try db.queryOne("SELECT pg_backend_pid()") { $0.int(0) }!
                try db.run("INSERT INTO t VALUES (1)")
                try PostgresConnection(url: admin).run("SELECT pg_terminate_backend(?, 5000)", [.integer(pid)])
                try db.run("INSERT INTO t VALUES (2)")
            }
            XCTFail("no error")
        } catch let error as StoreUnavailable {
            XCTAssertFalse("\(error)".contains("\n"), "\(error)")
        }
        // The next transaction has a new connection.
        try await engine.write { db in _ = try db.run("INSERT INTO t VALUES (3)") }
        let rows = try await engine.read { db in try db.query("SELECT n FROM t") { $0.int(0) } }
        XCTAssertEqual(rows, [3])

        // The database refuses connections (as while the server is down), then takes them again.
        let control = try PostgresConnection(url: admin)
        try control.exec("ALTER DATABASE \(name) WITH ALLOW_CONNECTIONS false")
        addTeardownBlock { try? PostgresConnection(url: admin).exec("ALTER DATABASE \(name) WITH ALLOW_CONNECTIONS true") }
        try control.run("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = ?", [.text(name)])
        for _ in 0..<2 {
            do {
                _ = try await engine.read { db in try db.queryOne("SELECT count(*) FROM t") { $0.int(0) } }
                XCTFail("no error")
            } catch let error as StoreUnavailable {
                XCTAssertFalse("\(error)".contains("\n"), "\(error)")
            }
        }
        XCTAssertThrowsError(try engine.readNow { _ in 0 }) { XCTAssertTrue($0 is StoreUnavailable, "\($0)") }
        try control.exec("ALTER DATABASE \(name) WITH ALLOW_CONNECTIONS true")
        let count = try await engine.read { db in try db.queryOne("SELECT count(*) FROM t") { $0.int(0) } }
        XCTAssertEqual(count, 1)
        try await engine.write { db in _ = try db.run("INSERT INTO t VALUES (4)") }
    }
}

/// What needs no server: placeholders, redaction, messages.
final class PostgresTextTests: XCTestCase {
    func testPlaceholdersAreNumbered() {
        let cases: [(String, String, Int)] = [
            ("SELECT ?, ?", "SELECT $1, $2", 2),
            ("?2 ?1 ?", "$2 $1 $3", 3),
            ("WHERE a = ?1 AND b IS NOT ?1", "WHERE a = $1 AND b IS NOT $1", 1),
            ("SELECT '?', \"?\", ? -- ?\n, ?", "SELECT '?', \"?\", $1 -- ?\n, $2", 2),
            ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1", 1),
            ("SELECT E'\\'?', ?", "SELECT E'\\'?', $1", 1),
            ("SELECT e'?', ?", "SELECT e'?', $1", 1),
            ("/* ? /* ? */ ? */ ?", "/* ? /* ? */ ? */ $1", 1),
            ("SELECT $$?$$, $tag$ ? $$ ? $tag$, ?", "SELECT $$?$$, $tag$ ? $$ ? $tag$, $1", 1),
            ("SELECT a$b, ?", "SELECT a$b, $1", 1),
            ("SELECT ✓, ?", "SELECT ✓, $1", 1),
            ("SELECT 1", "SELECT 1", 0),
            ("SELECT '?", "SELECT '?", 0),
        ]
        for (sql, expected, parameters) in cases {
            let converted = PostgresConnection.numberedPlaceholders(sql)
            XCTAssertEqual(converted.text, expected, sql)
            XCTAssertEqual(converted.parameters, parameters, sql)
        }
    }

    func testRedactedURL() {
        XCTAssertEqual(PostgresConnection.redacted(url: "postgres://app:s3cret@db.example:5432/topic?sslmode=require"),
                       "postgres://app:***@db.example:5432/topic?sslmode=require")
        XCTAssertEqual(PostgresConnection.redacted(url: "postgresql://app@db/topic"), "postgresql://app@db/topic")
        XCTAssertEqual(PostgresConnection.redacted(url: "postgres://db/topic?user=app&password=s3cret&sslmode=disable"),
                       "postgres://db/topic?user=app&password=***&sslmode=disable")
        XCTAssertEqual(PostgresConnection.redacted(url: "postgres://app:p@ss/w?rd@db:5432/topic"), "postgres://app:***@db:5432/topic")
        XCTAssertEqual(PostgresConnection.redacted(url: "postgres://[::1]:5432/topic"), "postgres://[::1]:5432/topic")
        XCTAssertFalse(PostgresConnection.redacted(url: "host=db password=s3cret").contains("s3cret"))
    }

    func testMessagesAreCleaned() {
        XCTAssertEqual(PostgresConnection.clean("connection failed: FATAL:  no\n\tIs the server running?\n", hiding: ["no"]),
                       "connection failed: FATAL:  *** Is the server running?")
        XCTAssertEqual(PostgresConnection.secrets(in: "postgres://u:s3%63ret@h/d?password=x%41"), ["s3%63ret", "x%41", "s3cret", "xA"])
    }
}

/// Waits until `parties` threads have arrived, once; later arrivals pass at once.
private final class Meeting: @unchecked Sendable {
    private let condition = NSCondition()
    private let parties: Int
    private var arrived = 0

    init(parties: Int) { self.parties = parties }

    func arrive(timeout: TimeInterval = 10) {
        condition.lock()
        defer { condition.unlock() }
        arrived += 1
        if arrived >= parties {
            condition.broadcast()
            return
        }
        let deadline = Date(timeIntervalSinceNow: timeout)
        while arrived < parties && condition.wait(until: deadline) {}
    }
}

private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}

private final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// A port on 127.0.0.1 that nothing listens on (bound, then closed).
private func freeTCPPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure.unexpected("socket() failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw TestFailure.unexpected("bind() failed") }
    return Int(UInt16(bigEndian: address.sin_port))
}
