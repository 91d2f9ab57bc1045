/// Where the topic's transactions run: SQLite (one group-committing writer
/// and read-only connections, `SQLiteEngine`) or PostgreSQL (a pool shared
/// by several instances, `PostgresEngine`). The store's shared code
/// (`TopicStore`, the delivery queue) sees only this and `SQLDatabase`.
protocol StoreEngine: Sendable {
    var dialect: SQLDialect { get }
    /// What the start line calls the store ("sqlite /path", "postgres host:port/db").
    var description: String { get }
    /// Runs `body` in a write transaction; returns once it is committed.
    /// `body` may run more than once (a group or a serialization conflict
    /// undid it), so it should only touch the database.
    func write<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T) async throws -> T
    /// The same for threads that do not await (the dispatcher).
    func write<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T, completion: @escaping @Sendable (Result<T, Error>) -> Void)
    /// Runs `body` in a read transaction: every query in it sees one snapshot.
    func read<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T) async throws -> T
    /// The same on the calling thread.
    func readNow<T>(_ body: (any SQLDatabase) throws -> T) throws -> T
    /// Write transactions committed so far (group commit shows as fewer commits than writes).
    var commits: Int { get }
    /// A connection for the dispatcher's thread alone: SQLite's is read-only;
    /// PostgreSQL's claims deliveries and listens for other instances' publishes.
    func openDispatcherConnection() throws -> any SQLDatabase
    /// Commits what is queued and closes every connection.
    func close()
}

/// A connection that hears when another instance published (PostgreSQL's LISTEN).
protocol NotificationSource: AnyObject {
    /// Readable when a notification may have come.
    var notificationSocket: Int32 { get }
    /// Whether any came since the last call (consumes them).
    func takeNotifications() -> Bool
}

/// The SQLite store: one file in the data dir, one writer thread, readers on WAL.
struct SQLiteEngine: StoreEngine {
    let path: String
    let writer: StoreWriter
    let readers: ReaderPool

    init(path: String) throws {
        self.path = path
        writer = try StoreWriter(path: path)
        readers = ReaderPool(path: path)
    }

    var dialect: SQLDialect { .sqlite }
    var description: String { "sqlite \(path)" }
    var commits: Int { writer.commits }

    func write<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T) async throws -> T {
        try await writer.write(body)
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T, completion: @escaping @Sendable (Result<T, Error>) -> Void) {
        writer.write(body, completion: completion)
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T) async throws -> T {
        try await readers.read(body)
    }

    func readNow<T>(_ body: (any SQLDatabase) throws -> T) throws -> T {
        try readers.readNow(body)
    }

    func openDispatcherConnection() throws -> any SQLDatabase { try ReaderPool.openReadOnly(path: path) }

    func close() { writer.close() }
}
