import Foundation

/// Read-only connections for the API's queries. WAL lets them read while the
/// writer commits. Reads run on their own threads, never on an event loop.
final class ReaderPool: @unchecked Sendable {
    private let lock = NSLock()
    private var idle: [SQLiteConnection] = []
    private let path: String
    private let queue = DispatchQueue(label: "store-readers", attributes: .concurrent)

    init(path: String) {
        self.path = path
    }

    /// Runs `body` in a read transaction, so every query in it sees one snapshot.
    func read<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { [self] in
                continuation.resume(with: Result { try readNow(body) })
            }
        }
    }

    func readNow<T>(_ body: (any SQLDatabase) throws -> T) throws -> T {
        let db = try checkout()
        defer { checkin(db) }
        try db.execute("BEGIN")
        defer { try? db.execute("COMMIT") }
        return try body(db)
    }

    private func checkout() throws -> SQLiteConnection {
        lock.lock()
        if let db = idle.popLast() {
            lock.unlock()
            return db
        }
        lock.unlock()
        return try ReaderPool.openReadOnly(path: path)
    }

    /// A connection that can only read (the writer owns every write).
    static func openReadOnly(path: String) throws -> SQLiteConnection {
        let db = try SQLiteConnection(path: path)
        try db.execute("PRAGMA foreign_keys = ON")
        try db.execute("PRAGMA query_only = ON")
        return db
    }

    private func checkin(_ db: SQLiteConnection) {
        lock.lock()
        if idle.count < 8 { idle.append(db) }
        lock.unlock()
    }
}
