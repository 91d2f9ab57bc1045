import CSQLite
import Foundation
import XCTest

@testable import Provisioning

/// The thin wrapper over the C library.
final class SQLiteTests: XCTestCase {
    /// About SQLite itself: the PostgreSQL pass of the suite skips it.
    override func setUpWithError() throws { try requireSQLite() }

    private func openDatabase() throws -> SQLiteConnection {
        let db = try SQLiteConnection(path: databasePath(try makeTemporaryDirectory(self)))
        try db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, i INTEGER, r REAL, s TEXT UNIQUE, b BLOB)")
        return db
    }

    /// Statements of `db` that are mid-result (stepped, not reset).
    private func busyStatements(_ db: SQLiteConnection) -> Int {
        var count = 0
        var statement = sqlite3_next_stmt(db.handle, nil)
        while let current = statement {
            if sqlite3_stmt_busy(current) != 0 { count += 1 }
            statement = sqlite3_next_stmt(db.handle, current)
        }
        return count
    }

    func testValuesRoundTrip() throws {
        let db = try openDatabase()
        let blob: [UInt8] = [0, 1, 2, 255, 0]
        try db.run("INSERT INTO t (i, r, s, b) VALUES (?, ?, ?, ?)", [.integer(Int64.max), .real(2.5), .text("grüß dich ✓"), .blob(blob)])
        try db.run("INSERT INTO t (i, r, s, b) VALUES (?, ?, ?, ?)", [.null, .null, .optional(nil as String?), .blob([])])
        XCTAssertEqual(try db.queryOne("SELECT max(id) FROM t") { $0.int(0) }, 2)

        let rows = try db.query("SELECT i, s, b, r FROM t ORDER BY id") { row in
            (row.optionalInt(0), row.optionalText(1), row.blob(2), row.isNull(3))
        }
        XCTAssertEqual(rows.count, 2)
        XCTAssertEqual(rows[0].0, Int64.max)
        XCTAssertEqual(rows[0].1, "grüß dich ✓")
        XCTAssertEqual(rows[0].2, blob)
        XCTAssertFalse(rows[0].3)
        XCTAssertNil(rows[1].0)
        XCTAssertNil(rows[1].1)
        XCTAssertEqual(rows[1].2, [])
        XCTAssertTrue(rows[1].3)
        XCTAssertNil(try db.queryOne("SELECT i FROM t WHERE id = 99") { $0.int(0) })
    }

    func testRunReportsChangedRows() throws {
        let db = try openDatabase()
        for index in 0..<5 { try db.run("INSERT INTO t (i) VALUES (?)", [.int(index)]) }
        XCTAssertEqual(try db.run("UPDATE t SET r = 1 WHERE i >= ?", [.int(2)]), 3)
        XCTAssertEqual(try db.run("DELETE FROM t WHERE i = 99"), 0)
    }

    func testConstraintErrorIsRecognizedAndStatementStaysUsable() throws {
        let db = try openDatabase()
        try db.run("INSERT INTO t (s) VALUES (?)", [.text("x")])
        XCTAssertThrowsError(try db.run("INSERT INTO t (s) VALUES (?)", [.text("x")])) { error in
            XCTAssertTrue((error as? SQLiteError)?.isConstraint ?? false, "\(error)")
        }
        XCTAssertEqual(busyStatements(db), 0)
        try db.run("INSERT INTO t (s) VALUES (?)", [.text("y")])  // the cached statement again
        XCTAssertEqual(try db.queryOne("SELECT count(*) FROM t") { $0.int(0) }, 2)
        XCTAssertThrowsError(try db.execute("SELECT * FROM missing")) { error in
            XCTAssertFalse((error as? SQLiteError)?.isConstraint ?? true)
            XCTAssertTrue("\(error)".contains("missing"), "\(error)")
        }
    }

    /// A mapping closure that throws must not leave its statement open: an
    /// open read statement pins a WAL snapshot and holds back checkpoints.
    func testThrowingMapResetsTheStatement() throws {
        let db = try openDatabase()
        for index in 0..<3 { try db.run("INSERT INTO t (i) VALUES (?)", [.int(index)]) }
        struct Stop: Error {}
        XCTAssertThrowsError(try db.query("SELECT i FROM t ORDER BY i") { _ -> Int in throw Stop() })
        XCTAssertEqual(busyStatements(db), 0)
        XCTAssertThrowsError(try db.queryOne("SELECT i FROM t ORDER BY i") { _ -> Int in throw Stop() })
        XCTAssertEqual(busyStatements(db), 0)
        XCTAssertEqual(try db.query("SELECT i FROM t ORDER BY i") { $0.int(0) }, [0, 1, 2])
        XCTAssertEqual(busyStatements(db), 0)
    }

    func testStatementsAreCachedAndRebound() throws {
        let db = try openDatabase()
        let first = try db.prepare("SELECT ?")
        let second = try db.prepare("SELECT ?")
        XCTAssertTrue(first === second)
        XCTAssertEqual(try db.queryOne("SELECT ?", [.text("a")]) { $0.text(0) }, "a")
        XCTAssertEqual(try db.queryOne("SELECT ?", [.text("b")]) { $0.text(0) }, "b")
        XCTAssertEqual(try db.queryOne("SELECT ?") { $0.isNull(0) }, true, "bindings are cleared between uses")
    }

    func testIsInTransaction() throws {
        let db = try openDatabase()
        XCTAssertFalse(db.isInTransaction)
        try db.execute("BEGIN")
        XCTAssertTrue(db.isInTransaction)
        try db.execute("COMMIT")
        XCTAssertFalse(db.isInTransaction)
    }

    func testOpeningAnUnusablePathFailsWithThePath() throws {
        let path = try makeTemporaryDirectory(self) + "/missing/dir/db.sqlite3"
        XCTAssertThrowsError(try SQLiteConnection(path: path)) { error in
            XCTAssertTrue("\(error)".contains(path), "\(error)")
        }
    }
}
