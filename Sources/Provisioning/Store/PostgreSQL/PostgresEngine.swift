import CPostgreSQL
import Foundation

/// The PostgreSQL store, which several provisiond instances share one
/// database through.
///
/// Writes go to one group-committing writer (`PostgresGroupWriter`): its
/// groups run SERIALIZABLE and run again on a serialization failure or a
/// deadlock, so the store's shared code, written for SQLite's single writer,
/// behaves as if every write ran alone, across every instance.
///
/// Reads run on a pool: up to `maxConnections` worker threads, started as
/// work comes, each own one connection (opened when first needed, opened
/// again after it is lost) and take reads in the order they were asked for.
/// libpq blocks, so no transaction ever runs on Swift's cooperative threads.
/// A lost connection makes the transaction throw `StoreUnavailable`.
final class PostgresEngine: StoreEngine, @unchecked Sendable {
    typealias Job = @Sendable (inout PostgresConnection?) -> Void

    let url: String
    let maxConnections: Int
    /// "postgres host:port/db": no user, no password.
    let description: String
    private let writer: PostgresGroupWriter

    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var jobsHead = 0
    private var workers = 0
    private var idleWorkers = 0
    /// Connections opened before any worker (the one that ran the migrations).
    private var spare: [PostgresConnection] = []
    private var closed = false

    var dialect: SQLDialect { .postgres }

    var commits: Int { writer.commits }

    private init(url: String, maxConnections: Int, first: PostgresConnection) {
        self.url = url
        writer = PostgresGroupWriter(url: url)
        self.maxConnections = max(1, maxConnections)
        description = "postgres \(first.location)"
        spare = [first]
    }

    /// Connects, runs the migrations, and gives the engine. Throws a
    /// one-line error without the password for a bad URL, an unreachable
    /// server or a refused login.
    static func open(url: String, maxConnections: Int = 10) throws -> PostgresEngine {
        let connection = try PostgresConnection(url: url)
        try PostgresSchema.migrate(connection)
        return PostgresEngine(url: url, maxConnections: maxConnections, first: connection)
    }

    /// A connection of its own, outside the pool (for LISTEN).
    func connect() throws -> PostgresConnection {
        try PostgresConnection(url: url)
    }

    /// The dispatcher's: it claims on it, and hears other instances' publishes.
    func openDispatcherConnection() throws -> any SQLDatabase {
        let connection = try connect()
        try connection.listen(TopicStore.deliveriesChannel)
        return connection
    }

    // MARK: StoreEngine

    func write<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            write(body) { continuation.resume(with: $0) }
        }
    }

    /// Through the group writer (see `PostgresGroupWriter`), not the pool.
    func write<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T, completion: @escaping @Sendable (Result<T, Error>) -> Void) {
        writer.enqueue(TypedWriteJob(body: body, completion: completion))
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            submit({ [self] connection in
                continuation.resume(with: Result { try read(&connection, body) })
            }, failure: { continuation.resume(throwing: $0) })
        }
    }

    func readNow<T>(_ body: (any SQLDatabase) throws -> T) throws -> T {
        // On a worker (connections belong to them); this thread waits for it.
        try withoutActuallyEscaping(body) { body in
            // Emptied before this thread goes on: the closure must not outlive the call.
            let box = Unchecked<((any SQLDatabase) throws -> T)?>(body)
            let outcome = Unchecked<Result<T, Error>?>(nil)
            let done = DispatchSemaphore(value: 0)
            submit({ [self] connection in
                outcome.value = Result { try read(&connection, box.value!) }
                box.value = nil
                done.signal()
            }, failure: { error in
                box.value = nil
                outcome.value = .failure(error)
                done.signal()
            })
            done.wait()
            return try outcome.value!.get()
        }
    }

    /// Runs what is queued, then closes every connection.
    func close() {
        writer.close()
        condition.lock()
        closed = true
        spare.removeAll()
        condition.broadcast()
        while workers > 0 { condition.wait() }
        condition.unlock()
    }

    // MARK: Transactions

    /// Runs `body` in one read transaction on the worker's connection: again
    /// on a new connection when the old one turns out lost at BEGIN (before
    /// anything ran), and `StoreUnavailable` when the connection is lost later
    /// or cannot be opened.
    private func read<T>(_ connection: inout PostgresConnection?, _ body: (any SQLDatabase) throws -> T) throws -> T {
        var reconnected = false
        while true {
            let db = try PostgresConnection.ready(&connection, url: url)
            db.clearLastError()
            do {
                try db.exec("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            } catch let error as PostgresError where error.isConnectionLost {
                connection = nil
                // A connection that died while idle (the server restarted): nothing ran yet.
                if !reconnected {
                    reconnected = true
                    continue
                }
                throw StoreUnavailable(error.message)
            }
            do {
                let value = try body(db)
                // The body caught an error and went on: the transaction is void,
                // and COMMIT would answer with a ROLLBACK.
                if db.transactionStatus == PQTRANS_INERROR {
                    throw db.lastError ?? PostgresError(message: "the transaction failed")
                }
                try db.exec("COMMIT")
                return value
            } catch {
                // What ended the transaction, also when the body threw an error of its own about it.
                let cause = (error as? PostgresError) ?? (db.transactionStatus == PQTRANS_INERROR ? db.lastError : nil)
                if db.isBroken || cause?.isConnectionLost == true {
                    connection = nil
                    throw StoreUnavailable(cause?.message ?? "the connection to the server is lost")
                }
                if db.transactionStatus != PQTRANS_IDLE {
                    do {
                        try db.exec("ROLLBACK")
                    } catch {
                        connection = nil
                        throw StoreUnavailable("\(error)")
                    }
                }
                throw error
            }
        }
    }


    // MARK: Workers

    private func submit(_ job: @escaping Job, failure: @escaping @Sendable (Error) -> Void) {
        condition.lock()
        if closed {
            condition.unlock()
            failure(StoreUnavailable("the store is closed"))
            return
        }
        jobs.append(job)
        var first: PostgresConnection?
        let startWorker = jobs.count - jobsHead > idleWorkers && workers < maxConnections
        if startWorker {
            workers += 1
            first = spare.popLast()
        } else {
            condition.signal()
        }
        condition.unlock()
        if startWorker {
            let connection = Unchecked(first)
            let thread = Thread { [self] in work(connection.value) }
            thread.name = "postgres-store"
            thread.start()
        }
    }

    private func work(_ first: PostgresConnection?) {
        var connection = first
        while let job = nextJob() {
            job(&connection)
        }
    }

    /// The oldest job; nil once the engine is closed and nothing is left.
    private func nextJob() -> Job? {
        condition.lock()
        defer { condition.unlock() }
        while jobsHead == jobs.count {
            if closed {
                workers -= 1
                condition.broadcast()
                return nil
            }
            idleWorkers += 1
            condition.wait()
            idleWorkers -= 1
        }
        let job = jobs[jobsHead]
        jobsHead += 1
        if jobsHead == jobs.count {
            jobs.removeAll(keepingCapacity: true)
            jobsHead = 0
        } else if jobsHead > 1024 {
            jobs.removeFirst(jobsHead)
            jobsHead = 0
        }
        return job
    }
}

/// A value handed to another thread whose use the code orders itself.
private final class Unchecked<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}

extension PostgresConnection: NotificationSource {
    var notificationSocket: Int32 { socket }

    func takeNotifications() -> Bool { (try? notifications())?.isEmpty == false }
}
