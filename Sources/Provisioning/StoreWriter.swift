import Foundation

/// The one connection that writes. Callers hand it write jobs from any
/// thread; it runs every job that queued up meanwhile in one transaction
/// (group commit), each in a savepoint so one failing job leaves the others
/// intact, and completes each job only after the commit returned: an answer
/// given after `write` returns is on disk.
final class StoreWriter: @unchecked Sendable {
    private let connection: SQLiteConnection
    private let condition = NSCondition()
    private var queue: [WriteJob] = []
    private var stopping = false
    private var stopped = false
    private let maxGroup = 2000
    private(set) var commits = 0  // for tests and metrics: groups committed

    init(path: String) throws {
        connection = try SQLiteConnection(path: path)
        try Schema.configure(connection)
        try Schema.migrate(connection)
        let thread = Thread { [self] in run() }
        thread.name = "store-writer"
        thread.start()
    }

    /// Runs `body` in the next group transaction; returns once it is committed.
    func write<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            enqueue(TypedWriteJob(body: body) { continuation.resume(with: $0) })
        }
    }

    /// The same for threads that do not await (the dispatcher).
    func write<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T, completion: @escaping @Sendable (Result<T, Error>) -> Void) {
        enqueue(TypedWriteJob(body: body, completion: completion))
    }

    private func enqueue(_ job: WriteJob) {
        condition.lock()
        if stopped {
            condition.unlock()
            job.complete(commitError: SQLiteError(code: 21, message: "the store is closed"))
            return
        }
        queue.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Commits what is queued, then stops and closes the connection.
    func close() {
        condition.lock()
        stopping = true
        condition.signal()
        while !stopped { condition.wait() }
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty && stopping {
                stopped = true
                condition.broadcast()
                condition.unlock()
                break
            }
            let group = Array(queue.prefix(maxGroup))
            queue.removeFirst(group.count)
            condition.unlock()
            commit(group)
        }
        try? connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    private func commit(_ group: [WriteJob]) {
        do {
            try connection.execute("BEGIN IMMEDIATE")
        } catch {
            for job in group { job.complete(commitError: error) }
            return
        }
        for job in group {
            do {
                try connection.execute("SAVEPOINT job")
                if job.run(connection) {
                    try connection.execute("RELEASE job")
                } else {
                    try connection.execute("ROLLBACK TO job")
                    try connection.execute("RELEASE job")
                }
            } catch {
                job.fail(error)
            }
        }
        do {
            try connection.execute("COMMIT")
            commits += 1
            for job in group { job.complete(commitError: nil) }
        } catch {
            try? connection.execute("ROLLBACK")
            for job in group { job.complete(commitError: error) }
        }
    }
}

private protocol WriteJob: AnyObject {
    /// Runs the job; false if it threw (its savepoint is then rolled back).
    func run(_ db: SQLiteConnection) -> Bool
    func fail(_ error: Error)
    func complete(commitError: Error?)
}

private final class TypedWriteJob<T: Sendable>: WriteJob, @unchecked Sendable {
    let body: (SQLiteConnection) throws -> T
    let completion: (Result<T, Error>) -> Void
    var result: Result<T, Error>?

    init(body: @escaping (SQLiteConnection) throws -> T, completion: @escaping (Result<T, Error>) -> Void) {
        self.body = body
        self.completion = completion
    }

    func run(_ db: SQLiteConnection) -> Bool {
        do {
            result = .success(try body(db))
            return true
        } catch {
            result = .failure(error)
            return false
        }
    }

    func fail(_ error: Error) { result = .failure(error) }

    func complete(commitError: Error?) {
        if let commitError, case .success = result ?? .failure(commitError) {
            completion(.failure(commitError))
        } else {
            completion(result ?? .failure(commitError ?? SQLiteError(code: 1, message: "job did not run")))
        }
    }
}

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
    func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { [self] in
                continuation.resume(with: Result { try readNow(body) })
            }
        }
    }

    func readNow<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
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
