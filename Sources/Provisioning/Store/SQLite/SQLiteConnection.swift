import CSQLite

struct SQLiteError: Error, CustomStringConvertible, Sendable {
    let code: Int32
    let message: String
    var description: String { "SQLite error \(code): \(message)" }

    /// A UNIQUE or other constraint was violated.
    var isConstraint: Bool { code & 0xFF == SQLITE_CONSTRAINT }
}

/// One SQLite connection. Not thread-safe by itself: each owner (the writer
/// thread, a reader, the dispatcher) uses its own.
final class SQLiteConnection: SQLDatabase {
    var dialect: SQLDialect { .sqlite }
    let handle: OpaquePointer
    private var statements: [String: SQLiteStatement] = [:]
    private var keyedStatements: [ObjectIdentifier: SQLiteStatement] = [:]

    init(path: String) throws {
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            if let db { sqlite3_close_v2(db) }
            throw SQLiteError(code: rc, message: "\(path): \(message)")
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
        // Wait for a lock instead of failing at once (checkpoints, a second process).
        sqlite3_busy_timeout(db, 5000)
    }

    deinit {
        statements.removeAll()
        keyedStatements.removeAll()
        sqlite3_close_v2(handle)
    }

    func execute(_ sql: String) throws {
        var error: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &error)
        if rc != SQLITE_OK {
            let message = error.map { String(cString: $0) } ?? "error"
            sqlite3_free(error)
            throw SQLiteError(code: rc, message: message)
        }
    }

    /// A prepared statement, cached by its text, reset and ready to bind.
    func prepare(_ sql: String) throws -> SQLiteStatement {
        if let cached = statements[sql] {
            cached.reset()
            return cached
        }
        let statement = try compile(sql)
        statements[sql] = statement
        return statement
    }

    /// The same, found by the `SQL`'s identity.
    func prepare(_ sql: SQL) throws -> SQLiteStatement {
        if let cached = keyedStatements[ObjectIdentifier(sql)] {
            cached.reset()
            return cached
        }
        let statement = try compile(sql.text)
        keyedStatements[ObjectIdentifier(sql)] = statement
        return statement
    }

    private func compile(_ sql: String) throws -> SQLiteStatement {
        var raw: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &raw, nil)
        guard rc == SQLITE_OK, let raw else { throw lastError(rc) }
        return SQLiteStatement(raw, connection: self)
    }

    func execute(_ sql: SQL, _ bindings: [SQLValue], each: (SQLRow) throws -> Bool) throws -> Int {
        try execute(statement: prepare(sql), bindings, each: each)
    }

    func insert(_ sql: SQL, _ bindings: [SQLValue]) throws -> Int64 {
        _ = try execute(sql, bindings) { _ in true }
        return sqlite3_last_insert_rowid(handle)
    }

    func execute(text sql: String, _ bindings: [SQLValue], each: (SQLRow) throws -> Bool) throws -> Int {
        try execute(statement: prepare(sql), bindings, each: each)
    }

    private func execute(statement: SQLiteStatement, _ bindings: [SQLValue], each: (SQLRow) throws -> Bool) throws -> Int {
        try statement.bind(bindings)
        // Also when `each` throws or stops early: a statement left mid-result keeps
        // its read snapshot open on this connection, which holds back WAL checkpoints.
        defer { statement.reset() }
        let row = SQLRow(source: .sqlite(statement.raw))
        while try statement.step() {
            if try !each(row) { break }
        }
        return Int(sqlite3_changes(handle))
    }

    /// False in autocommit mode: no BEGIN is open (or SQLite rolled it back after an error).
    var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    func lastError(_ rc: Int32) -> SQLiteError {
        SQLiteError(code: rc, message: String(cString: sqlite3_errmsg(handle)))
    }
}

final class SQLiteStatement {
    let raw: OpaquePointer
    unowned let connection: SQLiteConnection

    init(_ raw: OpaquePointer, connection: SQLiteConnection) {
        self.raw = raw
        self.connection = connection
    }

    deinit { sqlite3_finalize(raw) }

    func reset() {
        sqlite3_reset(raw)
        sqlite3_clear_bindings(raw)
    }

    func bind(_ values: [SQLValue]) throws {
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let rc: Int32
            switch value {
            case .null: rc = sqlite3_bind_null(raw, index)
            case .integer(let v): rc = sqlite3_bind_int64(raw, index, v)
            case .real(let v): rc = sqlite3_bind_double(raw, index, v)
            case .text(let v): rc = sqlite3_bind_text(raw, index, v, -1, provisiond_sqlite_transient())
            case .blob(let v):
                rc = v.withUnsafeBytes { sqlite3_bind_blob(raw, index, $0.baseAddress, Int32($0.count), provisiond_sqlite_transient()) }
            }
            guard rc == SQLITE_OK else { throw connection.lastError(rc) }
        }
    }

    /// Steps once: true when a row is available.
    func step() throws -> Bool {
        let rc = sqlite3_step(raw)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let error = connection.lastError(rc)
            sqlite3_reset(raw)
            throw error
        }
    }
}
