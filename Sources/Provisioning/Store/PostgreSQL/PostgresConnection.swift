import CPostgreSQL
import Foundation

/// An error from libpq or the server, on one line and without the password.
struct PostgresError: Error, CustomStringConvertible, Sendable {
    /// The server's SQLSTATE ("23505"); nil for errors of the client or the connection.
    let sqlState: String?
    let message: String
    /// The connection was gone when the error came (PQstatus CONNECTION_BAD, or no result at all).
    let connectionBad: Bool

    init(sqlState: String? = nil, message: String, connectionBad: Bool = false) {
        self.sqlState = sqlState
        self.message = message
        self.connectionBad = connectionBad
    }

    var description: String {
        if let sqlState { return "PostgreSQL error \(sqlState): \(message)" }
        return "PostgreSQL: \(message)"
    }

    /// A serialization failure or a deadlock: running the transaction again may succeed.
    var isRetryable: Bool { sqlState == "40001" || sqlState == "40P01" }

    var isUniqueViolation: Bool { sqlState == "23505" }

    /// The connection cannot be used any more: open another.
    var isConnectionLost: Bool {
        if connectionBad { return true }
        guard let sqlState else { return false }
        // Class 08: connection exception; 57P01..03: admin shutdown, crash shutdown, cannot connect now.
        return sqlState.hasPrefix("08") || sqlState == "57P01" || sqlState == "57P02" || sqlState == "57P03"
    }
}

/// One connection to PostgreSQL over libpq. Statements use SQLite's `?` and
/// `?NNN` placeholders (the store's shared SQL), turned into `$n` and
/// prepared once per connection; values go as text, blobs as binary, and
/// results come back as text, which `SQLRow` reads. Not thread-safe: one
/// owner at a time (a pool's worker, the listener). Once the connection is
/// lost (`isBroken`), the object is dead: open another.
final class PostgresConnection: SQLDatabase {
    var dialect: SQLDialect { .postgres }
    let handle: OpaquePointer
    private var keyedStatements: [ObjectIdentifier: (sql: SQL, statement: PreparedStatement)] = [:]
    private var statements: [String: PreparedStatement] = [:]
    private var returningStatements: [ObjectIdentifier: (sql: SQL, statement: PreparedStatement)] = [:]
    private var statementNumber = 0
    /// The last error a statement on this connection raised: what aborted the
    /// transaction when the caller caught it and went on.
    private(set) var lastError: PostgresError?

    struct PreparedStatement {
        let name: String
        /// The highest placeholder number: the statement takes that many values.
        let parameters: Int
    }

    /// Connects with a `postgres://` or `postgresql://` URL. Throws a
    /// one-line `PostgresError` that never contains the password.
    init(url: String) throws {
        let secrets = PostgresConnection.secrets(in: url)
        let shown = PostgresConnection.redacted(url: url)
        guard url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") else {
            throw PostgresError(message: "invalid database URL \(shown): expected postgres://user:password@host:port/database", connectionBad: true)
        }
        // Parse first: libpq's message for a malformed URL may quote part of it.
        var parseError: UnsafeMutablePointer<CChar>?
        if let options = PQconninfoParse(url, &parseError) {
            PQconninfoFree(options)
        } else {
            let detail = parseError.map { String(cString: $0) } ?? "cannot parse it"
            if let parseError { PQfreemem(parseError) }
            throw PostgresError(
                message: "invalid database URL \(shown): \(PostgresConnection.clean(detail, hiding: secrets))", connectionBad: true)
        }
        // Defaults the URL may override (libpq: a later keyword wins, and the
        // URL is expanded where "dbname" stands): no endless wait for an
        // unreachable host, UTF-8 text, and a name in pg_stat_activity.
        let keywords = ["connect_timeout", "client_encoding", "application_name", "dbname"]
        let values = ["10", "UTF8", "provisiond", url]
        let connection = PostgresConnection.withCStrings(keywords) { keywords in
            PostgresConnection.withCStrings(values) { values in PQconnectdbParams(keywords, values, 1) }
        }
        guard let connection else {
            throw PostgresError(message: "cannot connect to \(shown): out of memory", connectionBad: true)
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let detail = PostgresConnection.clean(String(cString: PQerrorMessage(connection)), hiding: secrets)
            PQfinish(connection)
            throw PostgresError(message: "cannot connect to \(shown): \(detail)", connectionBad: true)
        }
        handle = connection
        // libpq prints notices and warnings on stderr by default ("there is no
        // transaction in progress", "relation already exists, skipping").
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
    }

    deinit {
        PQfinish(handle)
    }

    /// False once the connection is lost: the pool drops it.
    var isBroken: Bool { PQstatus(handle) == CONNECTION_BAD }

    /// Idle, in a transaction, or in a failed transaction (that only ROLLBACK ends).
    var transactionStatus: PGTransactionStatusType { PQtransactionStatus(handle) }

    /// Where the connection went, without user or password: "host:port/database".
    var location: String {
        let host = PQhost(handle).map { String(cString: $0) } ?? ""
        let port = PQport(handle).map { String(cString: $0) } ?? ""
        let database = PQdb(handle).map { String(cString: $0) } ?? ""
        let hostPort = host.contains(":") && !host.hasPrefix("/") ? "[\(host)]:\(port)" : "\(host):\(port)"
        return "\(hostPort)/\(database)"
    }

    // MARK: Statements

    /// Runs a script of one or more statements (BEGIN, COMMIT, DDL), without values.
    func exec(_ script: String) throws {
        guard let result = PQexec(handle, script) else { throw failure(nil) }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY: return
        default: throw failure(result)
        }
    }

    @discardableResult
    func execute(_ sql: SQL, _ bindings: [SQLValue], each: (SQLRow) throws -> Bool) throws -> Int {
        let statement: PreparedStatement
        // The entry keeps its SQL alive, so no other SQL can come to have its identity.
        if let cached = keyedStatements[ObjectIdentifier(sql)], cached.sql === sql {
            statement = cached.statement
        } else {
            statement = try prepare(sql.text)
            keyedStatements[ObjectIdentifier(sql)] = (sql, statement)
        }
        return try run(statement, bindings, each: each)
    }

    /// The INSERT with RETURNING seq, prepared once per statement like the others.
    func insert(_ sql: SQL, _ bindings: [SQLValue]) throws -> Int64 {
        let statement: PreparedStatement
        if let cached = returningStatements[ObjectIdentifier(sql)], cached.sql === sql {
            statement = cached.statement
        } else {
            statement = try prepare(sql.text + " RETURNING seq")
            returningStatements[ObjectIdentifier(sql)] = (sql, statement)
        }
        var seq: Int64?
        _ = try run(statement, bindings) { row in
            seq = row.int(0)
            return false
        }
        guard let seq else { throw PostgresError(message: "an INSERT gave no row") }
        return seq
    }

    @discardableResult
    func execute(text sql: String, _ bindings: [SQLValue], each: (SQLRow) throws -> Bool) throws -> Int {
        let statement: PreparedStatement
        if let cached = statements[sql] {
            statement = cached
        } else {
            statement = try prepare(sql)
            statements[sql] = statement
        }
        return try run(statement, bindings, each: each)
    }

    private func prepare(_ sql: String) throws -> PreparedStatement {
        let (text, parameters) = PostgresConnection.numberedPlaceholders(sql)
        statementNumber += 1
        let name = "s\(statementNumber)"
        // No parameter types: the server infers each from where it stands.
        guard let result = PQprepare(handle, name, text, 0, nil) else { throw failure(nil) }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_COMMAND_OK else { throw failure(result) }
        return PreparedStatement(name: name, parameters: parameters)
    }

    private func run(_ statement: PreparedStatement, _ bindings: [SQLValue], each: (SQLRow) throws -> Bool) throws -> Int {
        guard bindings.count <= statement.parameters else {
            throw PostgresError(message: "\(bindings.count) values for a statement with \(statement.parameters) placeholders")
        }
        // Every value in one buffer: integers, reals and text NUL-terminated,
        // blobs as their bytes with a length (binary format). A value not
        // given is NULL, as in SQLite.
        let count = statement.parameters
        var storage: [UInt8] = []
        var offsets = [Int](repeating: -1, count: count)
        var lengths = [Int32](repeating: 0, count: count)
        var formats = [Int32](repeating: 0, count: count)
        for (index, value) in bindings.enumerated() {
            switch value {
            case .null:
                continue
            case .integer(let number):
                offsets[index] = storage.count
                storage.append(contentsOf: String(number).utf8)
            case .real(let number):
                offsets[index] = storage.count
                storage.append(contentsOf: PostgresConnection.text(of: number).utf8)
            case .text(let text):
                offsets[index] = storage.count
                storage.append(contentsOf: text.utf8)
            case .blob(let bytes):
                offsets[index] = storage.count
                storage.append(contentsOf: bytes)
                lengths[index] = Int32(bytes.count)
                formats[index] = 1
                continue
            }
            storage.append(0)
        }
        // Never empty, so an empty blob or string still has an address (NULL means NULL).
        storage.append(0)
        let result: OpaquePointer? = storage.withUnsafeBytes { buffer in
            let base = buffer.baseAddress!
            let values: [UnsafePointer<CChar>?] = offsets.map {
                $0 < 0 ? nil : (base + $0).assumingMemoryBound(to: CChar.self)
            }
            return PQexecPrepared(handle, statement.name, Int32(count), values, lengths, formats, 0)
        }
        guard let result else { throw failure(nil) }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK else { throw failure(result) }
        let rows = PQntuples(result)
        var row: Int32 = 0
        while row < rows {
            if try !each(SQLRow(source: .postgres(result, row))) { break }
            row += 1
        }
        return Int(strtol(PQcmdTuples(result), nil, 10))
    }

    /// The error of a failed result (or of no result: the connection is gone), remembered.
    private func failure(_ result: OpaquePointer?) -> PostgresError {
        let broken = result == nil || isBroken
        var sqlState: String?
        var message = ""
        if let result {
            sqlState = PQresultErrorField(result, PostgresConnection.diagSQLState).map { String(cString: $0) }
            if let primary = PQresultErrorField(result, PostgresConnection.diagMessage) {
                message = String(cString: primary)
                if let detail = PQresultErrorField(result, PostgresConnection.diagDetail) {
                    message += " (\(String(cString: detail)))"
                }
            } else {
                message = String(cString: PQresultErrorMessage(result))
            }
        }
        if message.isEmpty { message = String(cString: PQerrorMessage(handle)) }
        if message.isEmpty { message = broken ? "the connection to the server is lost" : "unknown error" }
        let error = PostgresError(sqlState: sqlState, message: PostgresConnection.clean(message, hiding: []), connectionBad: broken)
        lastError = error
        return error
    }

    /// Forgets the last error (at the start of a transaction).
    func clearLastError() { lastError = nil }

    // PG_DIAG_SQLSTATE, PG_DIAG_MESSAGE_PRIMARY, PG_DIAG_MESSAGE_DETAIL.
    private static let diagSQLState = Int32(UInt8(ascii: "C"))
    private static let diagMessage = Int32(UInt8(ascii: "M"))
    private static let diagDetail = Int32(UInt8(ascii: "D"))

    /// The owner's connection (a pool worker's, the writer's): `connection`
    /// while it is usable, else a new one; `StoreUnavailable` when none can be opened.
    static func ready(_ connection: inout PostgresConnection?, url: String) throws -> PostgresConnection {
        if let open = connection, !open.isBroken { return open }
        connection = nil
        do {
            let open = try PostgresConnection(url: url)
            connection = open
            return open
        } catch let error as PostgresError {
            throw StoreUnavailable(error.message)
        }
    }

    // MARK: LISTEN / NOTIFY

    /// Receives the notifications of `channel` from now on (`SELECT pg_notify(channel, payload)`
    /// sends one; inside a transaction, at its commit).
    func listen(_ channel: String) throws {
        try exec("LISTEN \(quoted(identifier: channel))")
    }

    /// The connection's socket: readable when a notification may have come.
    var socket: Int32 { PQsocket(handle) }

    /// Reads what the server sent and gives the payloads of the notifications
    /// received so far (also those that came during other statements).
    func notifications() throws -> [String] {
        guard PQconsumeInput(handle) == 1 else { throw failure(nil) }
        var payloads: [String] = []
        while let notification = PQnotifies(handle) {
            payloads.append(String(cString: notification.pointee.extra))
            PQfreemem(notification)
        }
        return payloads
    }

    /// The notifications received so far, else those that come within
    /// `timeout` seconds (an empty array when none came).
    func waitForNotifications(timeout: Double) throws -> [String] {
        let received = try notifications()
        if !received.isEmpty { return received }
        var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, Int32(max(0, timeout * 1000)))
        guard ready > 0 else { return [] }
        return try notifications()
    }

    private func quoted(identifier: String) -> String {
        guard let escaped = PQescapeIdentifier(handle, identifier, identifier.utf8.count) else {
            return "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        defer { PQfreemem(escaped) }
        return String(cString: escaped)
    }

    // MARK: Text

    /// SQLite's placeholders in PostgreSQL's form: `?NNN` becomes `$NNN`, and
    /// a bare `?` one more than the highest number so far (SQLite's rule).
    /// Not inside string literals ('…', E'…', $tag$…$tag$), quoted
    /// identifiers or comments. Gives the highest number: the values the
    /// statement takes.
    static func numberedPlaceholders(_ sql: String) -> (text: String, parameters: Int) {
        let bytes = Array(sql.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 16)
        var highest = 0
        var index = 0
        func isIdentifier(_ byte: UInt8) -> Bool {
            (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A) || byte == 0x5F || byte == 0x24 || byte >= 0x80
        }
        func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
        /// Copies up to and including the end of what starts at `index`, ending with `terminator`.
        func copy(through terminator: [UInt8], from start: Int) -> Int {
            var position = start
            while position < bytes.count {
                if bytes[position...].starts(with: terminator) { return position + terminator.count }
                position += 1
            }
            return bytes.count
        }
        while index < bytes.count {
            let byte = bytes[index]
            let previous: UInt8? = index > 0 ? bytes[index - 1] : nil
            switch byte {
            case UInt8(ascii: "'"):
                // E'…' takes backslash escapes; '' is a quote inside any string.
                let escapes = (previous == UInt8(ascii: "E") || previous == UInt8(ascii: "e"))
                    && (index < 2 || !isIdentifier(bytes[index - 2]))
                var position = index + 1
                while position < bytes.count {
                    if escapes && bytes[position] == UInt8(ascii: "\\") { position += 2; continue }
                    if bytes[position] == UInt8(ascii: "'") { break }
                    position += 1
                }
                let end = min(position + 1, bytes.count)
                out.append(contentsOf: bytes[index..<end])
                index = end
            case UInt8(ascii: "\""):
                let end = copy(through: [UInt8(ascii: "\"")], from: index + 1)
                out.append(contentsOf: bytes[index..<end])
                index = end
            case UInt8(ascii: "-") where index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "-"):
                let end = copy(through: [UInt8(ascii: "\n")], from: index + 2)
                out.append(contentsOf: bytes[index..<end])
                index = end
            case UInt8(ascii: "/") where index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "*"):
                // Block comments nest in PostgreSQL.
                var depth = 1
                var position = index + 2
                while position < bytes.count && depth > 0 {
                    if bytes[position] == UInt8(ascii: "/") && position + 1 < bytes.count && bytes[position + 1] == UInt8(ascii: "*") {
                        depth += 1
                        position += 2
                    } else if bytes[position] == UInt8(ascii: "*") && position + 1 < bytes.count && bytes[position + 1] == UInt8(ascii: "/") {
                        depth -= 1
                        position += 2
                    } else {
                        position += 1
                    }
                }
                out.append(contentsOf: bytes[index..<position])
                index = position
            case UInt8(ascii: "$") where previous.map { !isIdentifier($0) } ?? true:
                // $tag$…$tag$ (or $$…$$); $1 is a placeholder already.
                var position = index + 1
                while position < bytes.count && bytes[position] != UInt8(ascii: "$") && isIdentifier(bytes[position]) {
                    position += 1
                }
                let isTag = position < bytes.count && bytes[position] == UInt8(ascii: "$")
                    && (position == index + 1 || !isDigit(bytes[index + 1]))
                if isTag {
                    let tag = Array(bytes[index...position])
                    let end = copy(through: tag, from: position + 1)
                    out.append(contentsOf: bytes[index..<end])
                    index = end
                } else {
                    out.append(byte)
                    index += 1
                }
            case UInt8(ascii: "?"):
                var position = index + 1
                var number = 0
                while position < bytes.count && isDigit(bytes[position]) {
                    number = number * 10 + Int(bytes[position] - 0x30)
                    position += 1
                }
                if position == index + 1 { number = highest + 1 }
                highest = max(highest, number)
                out.append(UInt8(ascii: "$"))
                out.append(contentsOf: String(number).utf8)
                index = position
            default:
                out.append(byte)
                index += 1
            }
        }
        return (String(decoding: out, as: UTF8.self), highest)
    }

    /// A Double as PostgreSQL reads it.
    static func text(of number: Double) -> String {
        if number.isNaN { return "NaN" }
        if number.isInfinite { return number < 0 ? "-Infinity" : "Infinity" }
        return "\(number)"
    }

    /// The URL without its password: `postgres://user:***@host:port/db?…`
    /// (a `password=` in the query is masked too). For logs and errors.
    static func redacted(url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else {
            return url.contains("password") || url.contains("@") ? "(a database URL)" : url
        }
        var result = String(url[..<schemeEnd.upperBound])
        var rest = url[schemeEnd.upperBound...]
        // The user information ends at the last "@" (a password may hold "/",
        // "?" or "@" unencoded; cutting too much only hides more).
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            if let colon = userInfo.firstIndex(of: ":") {
                result += userInfo[..<colon] + ":***@"
            } else {
                result += userInfo + "@"
            }
            rest = rest[rest.index(after: at)...]
        }
        guard let question = rest.firstIndex(of: "?") else { return result + rest }
        result += rest[...question]
        let parameters = rest[rest.index(after: question)...].split(separator: "&", omittingEmptySubsequences: false).map { parameter in
            let key = parameter.prefix { $0 != "=" }
            return key.lowercased() == "password" ? "\(key)=***" : String(parameter)
        }
        return result + parameters.joined(separator: "&")
    }

    /// The password as written in the URL and percent-decoded, in the user
    /// information or a `password=` parameter: never shown in a message.
    static func secrets(in url: String) -> [String] {
        var found: [String] = []
        guard let schemeEnd = url.range(of: "://") else { return url.isEmpty ? [] : [url] }
        let rest = url[schemeEnd.upperBound...]
        if let at = rest.lastIndex(of: "@"), let colon = rest[..<at].firstIndex(of: ":") {
            found.append(String(rest[rest.index(after: colon)..<at]))
        }
        if let question = rest.firstIndex(of: "?") {
            for parameter in rest[rest.index(after: question)...].split(separator: "&") {
                let parts = parameter.split(separator: "=", maxSplits: 1)
                if parts.count == 2, parts[0].lowercased() == "password" { found.append(String(parts[1])) }
            }
        }
        found += found.compactMap { $0.removingPercentEncodingIfValid }
        return found.filter { !$0.isEmpty }
    }

    /// One line (libpq's messages have several), with every secret masked.
    static func clean(_ message: String, hiding secrets: [String]) -> String {
        var text = message.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
            .joined(separator: " ")
        for secret in secrets.sorted(by: { $0.count > $1.count }) {
            text = text.replacingOccurrences(of: secret, with: "***")
        }
        return text
    }

    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        defer { for pointer in pointers { free(pointer) } }
        pointers.append(nil)
        return pointers.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) { body($0) }
        }
    }
}

private extension String {
    /// The percent-decoded text, when the escapes make valid UTF-8.
    var removingPercentEncodingIfValid: String? {
        guard contains("%") else { return nil }
        var bytes: [UInt8] = []
        var iterator = Array(utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
               let value = UInt8(String(decoding: iterator.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(value)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
