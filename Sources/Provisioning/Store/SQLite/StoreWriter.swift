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
    private var committedGroups = 0

    /// Groups committed so far, for tests and metrics. Read under the lock:
    /// other threads read it while the writer thread counts.
    var commits: Int {
        condition.lock()
        defer { condition.unlock() }
        return committedGroups
    }

    init(path: String) throws {
        connection = try SQLiteConnection(path: path)
        try Schema.configure(connection)
        try Schema.migrate(connection)
        let thread = Thread { [self] in run() }
        thread.name = "store-writer"
        thread.start()
    }

    /// Runs `body` in the next group transaction; returns once it is committed.
    /// `body` may run twice (when another job's error undid the group), so it
    /// should only touch the database.
    func write<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            enqueue(TypedWriteJob(body: body) { continuation.resume(with: $0) })
        }
    }

    /// The same for threads that do not await (the dispatcher).
    func write<T: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) throws -> T, completion: @escaping @Sendable (Result<T, Error>) -> Void) {
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

    /// Jobs waiting for the next group (lets tests build a group on purpose).
    var queuedJobs: Int {
        condition.lock()
        defer { condition.unlock() }
        return queue.count
    }

    /// Commits what is queued, checkpoints the WAL into the database file, then stops.
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
                // Before close() returns, so a process that exits right after
                // it leaves the file checkpointed with an empty WAL.
                try? connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
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
    }

    private func commit(_ group: [WriteJob]) {
        var group = group
        while let again = commitGroup(group) { group = again }
    }

    /// Runs and commits one group; returns the jobs to run again when one job's
    /// error rolled back the whole transaction (see below), else nil.
    private func commitGroup(_ group: [WriteJob]) -> [WriteJob]? {
        do {
            try connection.run(StoreWriter.begin)
        } catch {
            for job in group { job.complete(commitError: error) }
            return nil
        }
        // A job alone needs no savepoint: if it fails, the transaction is its own to undo.
        if group.count == 1, let job = group.first {
            if job.run(connection) { return commitRun(group) }
            _ = try? connection.run(StoreWriter.rollback)
            job.complete(commitError: nil)
            return nil
        }
        for (index, job) in group.enumerated() {
            do {
                try connection.run(StoreWriter.savepoint)
                if job.run(connection) {
                    try connection.run(StoreWriter.release)
                } else {
                    try connection.run(StoreWriter.rollbackToSavepoint)
                    try connection.run(StoreWriter.release)
                }
            } catch {
                // The savepoint itself failed (mostly: SQLite already rolled the
                // transaction back, see below). This job's writes can then only be
                // undone with the whole transaction.
                job.fail(error)
                _ = try? connection.run(StoreWriter.rollback)
            }
            // Some errors (interrupt, disk full, I/O error) make SQLite roll back
            // the whole transaction, not just the savepoint: the jobs before this
            // one are undone and the ones after would run, and commit, outside any
            // transaction while their callers are told they failed. This job keeps
            // its error; the others run again in a new transaction.
            if !connection.isInTransaction {
                job.complete(commitError: SQLiteError(code: 1, message: "the transaction was rolled back"))
                var others = group
                others.remove(at: index)
                return others.isEmpty ? nil : others
            }
        }
        return commitRun(group)
    }

    /// Commits the group that ran; each job learns the outcome.
    private func commitRun(_ group: [WriteJob]) -> [WriteJob]? {
        do {
            try connection.run(StoreWriter.commit)
            condition.lock()
            committedGroups += 1
            condition.unlock()
            for job in group { job.complete(commitError: nil) }
        } catch {
            _ = try? connection.run(StoreWriter.rollback)
            for job in group { job.complete(commitError: error) }
        }
        return nil
    }

    // Prepared once: sqlite3_exec would parse them again for every group and job.
    private static let begin = SQL("BEGIN IMMEDIATE")
    private static let commit = SQL("COMMIT")
    private static let rollback = SQL("ROLLBACK")
    private static let savepoint = SQL("SAVEPOINT job")
    private static let release = SQL("RELEASE job")
    private static let rollbackToSavepoint = SQL("ROLLBACK TO job")
}
