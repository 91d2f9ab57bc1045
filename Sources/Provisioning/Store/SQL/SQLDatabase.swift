import CPostgreSQL
import CSQLite
import Glibc

/// One connection as the store's shared code sees it, SQLite or PostgreSQL.
/// Statements are written once, with `?` for each binding, in the SQL both
/// engines accept (`ON CONFLICT DO NOTHING`, `RETURNING`, no `rowid`); where
/// they differ, the code asks `dialect`. Not thread-safe: each owner (a
/// writer, a reader, the dispatcher) uses its own connection.
protocol SQLDatabase: AnyObject {
    var dialect: SQLDialect { get }
    /// Runs a statement (prepared once per connection, found by the `SQL`'s
    /// identity), calls `each` for every row until it returns false, and
    /// gives the number of rows the statement changed.
    @discardableResult
    func execute(_ sql: SQL, _ bindings: [SQLValue], each: (SQLRow) throws -> Bool) throws -> Int
    /// The same for a statement built at run time (prepared and cached by its text).
    @discardableResult
    func execute(text: String, _ bindings: [SQLValue], each: (SQLRow) throws -> Bool) throws -> Int
    /// Runs an INSERT of one row into a table keyed by `seq`; gives that seq.
    /// SQLite reads it back for free (last_insert_rowid); PostgreSQL adds
    /// RETURNING seq, which costs SQLite a result table per row.
    func insert(_ sql: SQL, _ bindings: [SQLValue]) throws -> Int64
}

enum SQLDialect: Sendable {
    case sqlite
    case postgres
}

/// A SELECT that locks its rows for the rest of the transaction on
/// PostgreSQL (FOR UPDATE), where another instance may write them
/// meanwhile; SQLite has one writer, and no such clause.
final class LockingSQL: Sendable {
    let sqlite: SQL
    let postgres: SQL

    init(_ text: String) {
        sqlite = SQL(text)
        postgres = SQL(text + " FOR UPDATE")
    }

    func on(_ dialect: SQLDialect) -> SQL { dialect == .postgres ? postgres : sqlite }
}

extension SQLDatabase {
    /// Every row, mapped.
    func query<T>(_ sql: SQL, _ bindings: [SQLValue] = [], map: (SQLRow) throws -> T) throws -> [T] {
        var rows: [T] = []
        try execute(sql, bindings) { rows.append(try map($0)); return true }
        return rows
    }

    func query<T>(_ sql: String, _ bindings: [SQLValue] = [], map: (SQLRow) throws -> T) throws -> [T] {
        var rows: [T] = []
        try execute(text: sql, bindings) { rows.append(try map($0)); return true }
        return rows
    }

    /// The first row, mapped.
    func queryOne<T>(_ sql: SQL, _ bindings: [SQLValue] = [], map: (SQLRow) throws -> T) throws -> T? {
        var first: T?
        try execute(sql, bindings) { first = try map($0); return false }
        return first
    }

    func queryOne<T>(_ sql: String, _ bindings: [SQLValue] = [], map: (SQLRow) throws -> T) throws -> T? {
        var first: T?
        try execute(text: sql, bindings) { first = try map($0); return false }
        return first
    }

    /// A statement for its effect; gives the number of rows changed.
    @discardableResult
    func run(_ sql: SQL, _ bindings: [SQLValue] = []) throws -> Int {
        try execute(sql, bindings) { _ in true }
    }

    @discardableResult
    func run(_ sql: String, _ bindings: [SQLValue] = []) throws -> Int {
        try execute(text: sql, bindings) { _ in true }
    }
}

/// A statement's text with an identity (keep it in a `static let`): a
/// connection finds its prepared statement by that identity instead of
/// hashing the whole text on every use (about 4 k instructions for a long
/// statement).
final class SQL: Sendable {
    let text: String
    init(_ text: String) { self.text = text }
}

enum SQLValue: Sendable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    static func int(_ value: Int) -> SQLValue { .integer(Int64(value)) }
    static func optional(_ value: String?) -> SQLValue { value.map(SQLValue.text) ?? .null }
    static func optional(_ value: Int64?) -> SQLValue { value.map(SQLValue.integer) ?? .null }
}

/// The current row of a result; valid only inside the closure it is given to.
/// One concrete type for both engines, so that the shared code's mapping
/// closures are not generic.
struct SQLRow {
    enum Source {
        /// A stepped sqlite3_stmt.
        case sqlite(OpaquePointer)
        /// A PGresult (text format) and the row's index in it.
        case postgres(OpaquePointer, Int32)
    }

    let source: Source

    func isNull(_ column: Int32) -> Bool {
        switch source {
        case .sqlite(let statement): return sqlite3_column_type(statement, column) == SQLITE_NULL
        case .postgres(let result, let row): return PQgetisnull(result, row, column) == 1
        }
    }

    func int(_ column: Int32) -> Int64 {
        switch source {
        case .sqlite(let statement): return sqlite3_column_int64(statement, column)
        case .postgres(let result, let row):
            // A boolean (count(*) > 0 and the like) reads as 0 or 1, as in SQLite.
            guard let value = PQgetvalue(result, row, column) else { return 0 }
            if value.pointee == UInt8(ascii: "t") { return 1 }
            return strtoll(value, nil, 10)
        }
    }

    func optionalInt(_ column: Int32) -> Int64? { isNull(column) ? nil : int(column) }

    func text(_ column: Int32) -> String {
        switch source {
        case .sqlite(let statement):
            guard let pointer = sqlite3_column_text(statement, column) else { return "" }
            return String(cString: pointer)
        case .postgres(let result, let row):
            guard let value = PQgetvalue(result, row, column) else { return "" }
            return String(cString: value)
        }
    }

    func optionalText(_ column: Int32) -> String? { isNull(column) ? nil : text(column) }

    func blob(_ column: Int32) -> [UInt8] {
        switch source {
        case .sqlite(let statement):
            let count = Int(sqlite3_column_bytes(statement, column))
            guard count > 0, let pointer = sqlite3_column_blob(statement, column) else { return [] }
            return Array(UnsafeRawBufferPointer(start: pointer, count: count))
        case .postgres(let result, let row):
            // bytea in text format: "\x" and two hex digits per byte.
            guard let value = PQgetvalue(result, row, column) else { return [] }
            let length = Int(PQgetlength(result, row, column))
            return value.withMemoryRebound(to: UInt8.self, capacity: length) { SQLRow.hexDecoded(UnsafeBufferPointer(start: $0, count: length)) }
        }
    }

    static func hexDecoded(_ text: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        guard text.count >= 2, text[0] == UInt8(ascii: "\\"), text[1] == UInt8(ascii: "x") else { return Array(text) }
        func nibble(_ c: UInt8) -> UInt8 { c <= 57 ? c &- 48 : (c | 0x20) &- 87 }
        var bytes = [UInt8]()
        bytes.reserveCapacity((text.count - 2) / 2)
        var index = 2
        while index + 1 < text.count {
            bytes.append(nibble(text[index]) << 4 | nibble(text[index + 1]))
            index += 2
        }
        return bytes
    }
}
