import CPostgreSQL
import Foundation

/// The PostgreSQL store's writes, as SQLite's `StoreWriter` does them: one
/// thread and one connection run every write that queued up meanwhile in one
/// SERIALIZABLE transaction (group commit), each job in a savepoint, and
/// complete each job once the group committed.
///
/// One transaction per write, side by side on the pool, cost a commit (a WAL
/// flush) each and, worse, made concurrent publishes conflict on the rows
/// every publish updates (the subscriptions' counts): they ran one after the
/// other anyway, after aborts and retries, and some ran out of retries. In
/// a group they do not conflict; only groups of different instances can,
/// and a group that does is run again whole (a job may run more than once).
final class PostgresGroupWriter: @unchecked Sendable {
    private let url: String
    private let condition = NSCondition()
    private var queue: [WriteJob] = []
    private var closed = false
    private var stopped = false
    private var committed = 0
    private let maxGroup = 256
    /// How long a group keeps running again while it conflicts (ms): groups
    /// of several instances that lock the same subscriptions in another
    /// order deadlock or fail to serialize, and one of them runs again.
    private let patienceMillis: Int64 = 30_000

    init(url: String) {
        self.url = url
        let thread = Thread { [self] in run() }
        thread.name = "postgres-writer"
        thread.start()
    }

    /// Groups committed so far.
    var commits: Int {
        condition.lock()
        defer { condition.unlock() }
        return committed
    }

    func enqueue(_ job: WriteJob) {
        condition.lock()
        if closed {
            condition.unlock()
            job.complete(commitError: StoreUnavailable("the store is closed"))
            return
        }
        queue.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Commits what is queued, then stops.
    func close() {
        condition.lock()
        closed = true
        condition.signal()
        while !stopped { condition.wait() }
        condition.unlock()
    }

    private func run() {
        var connection: PostgresConnection?
        while true {
            condition.lock()
            while queue.isEmpty && !closed { condition.wait() }
            if queue.isEmpty {
                stopped = true
                condition.broadcast()
                condition.unlock()
                return
            }
            let group = Array(queue.prefix(maxGroup))
            queue.removeFirst(group.count)
            condition.unlock()
            commit(group, &connection)
        }
    }

    /// Runs and commits one group, again after a conflict; every job is completed.
    private func commit(_ group: [WriteJob], _ connection: inout PostgresConnection?) {
        var attempts = 0
        var reconnected = false
        let giveUpAt = WallClock.nowMillis() + patienceMillis
        while true {
            do {
                switch try attempt(group, &connection) {
                case .committed:
                    condition.lock()
                    committed += 1
                    condition.unlock()
                    for job in group { job.complete(commitError: nil) }
                    return
                case .alone:
                    return
                }
            } catch let error as PostgresError where error.isRetryable && WallClock.nowMillis() < giveUpAt {
                attempts += 1
                // A random pause, longer as conflicts repeat (up to 50 ms), so the contenders part.
                usleep(UInt32.random(in: 100...(1000 * UInt32(min(attempts, 50)))))
            } catch let error as Reconnect where !reconnected {
                // A connection that died while idle (the server restarted): nothing ran yet.
                _ = error
                reconnected = true
            } catch {
                // For the caller, a conflict that outlasted the patience is the database being unavailable for now.
                let failure: Error
                if let reconnect = error as? Reconnect {
                    failure = StoreUnavailable(reconnect.message)
                } else if let conflict = error as? PostgresError, conflict.isRetryable {
                    failure = StoreUnavailable("writes of other instances kept conflicting: \(conflict.message)")
                } else {
                    failure = error
                }
                for job in group { job.abandon(failure) }
                return
            }
        }
    }

    /// The session lock the instances' writers take turns with (the migrations' key + 1).
    static let lockKey = PostgresSchema.lockKey + 1

    private enum Outcome { case committed, alone }

    /// The connection was found lost at BEGIN: worth one more try on a new one.
    private struct Reconnect: Error { let message: String }

    /// One run of the group. Throws what undid the whole transaction (a
    /// conflict, to run it again; a lost connection, `StoreUnavailable`).
    private func attempt(_ group: [WriteJob], _ connection: inout PostgresConnection?) throws -> Outcome {
        let db = try PostgresConnection.ready(&connection, url: url)
        db.clearLastError()
        do {
            // One group at a time across all instances, taken before BEGIN so
            // that the transaction's snapshot comes after the previous group's
            // commit. Groups that overlapped locked the subscriptions' rows in
            // different orders: they deadlocked (each found only after
            // deadlock_timeout) or failed to serialize, again and again.
            try db.exec("SELECT pg_advisory_lock(\(PostgresGroupWriter.lockKey))")
            try db.exec("BEGIN ISOLATION LEVEL SERIALIZABLE")
        } catch let error as PostgresError where error.isConnectionLost {
            connection = nil
            throw Reconnect(message: error.message)
        }
        // A lost connection lets go of the lock by itself.
        defer { if !db.isBroken { try? db.exec("SELECT pg_advisory_unlock(\(PostgresGroupWriter.lockKey))") } }
        do {
            if group.count == 1, let job = group.first {
                // A job alone needs no savepoint: if it fails, the transaction is its own to undo.
                guard job.run(db), db.transactionStatus != PQTRANS_INERROR else {
                    if let cause = cause(of: job, db), cause.isRetryable || cause.isConnectionLost { throw cause }
                    if job.error == nil { job.fail(db.lastError ?? PostgresError(message: "the job's statement failed")) }
                    try db.exec("ROLLBACK")
                    job.complete(commitError: nil)
                    return .alone
                }
            } else {
                for job in group {
                    try db.exec("SAVEPOINT job")
                    if job.run(db), db.transactionStatus != PQTRANS_INERROR {
                        try db.exec("RELEASE job")
                        continue
                    }
                    // A conflict or a lost connection undoes the group; the job's own error only its savepoint.
                    if let cause = cause(of: job, db), cause.isRetryable || cause.isConnectionLost { throw cause }
                    if job.error == nil { job.fail(db.lastError ?? PostgresError(message: "the job's statement failed")) }
                    try db.exec("ROLLBACK TO job")
                    try db.exec("RELEASE job")
                }
            }
            try db.exec("COMMIT")
            return .committed
        } catch {
            let cause = (error as? PostgresError) ?? db.lastError
            if db.isBroken || cause?.isConnectionLost == true {
                connection = nil
                throw StoreUnavailable(cause?.message ?? "the connection to the server is lost")
            }
            if db.transactionStatus != PQTRANS_IDLE { try? db.exec("ROLLBACK") }
            throw cause ?? error
        }
    }

    /// The database error behind a job's failure, if there is one.
    private func cause(of job: WriteJob, _ db: PostgresConnection) -> PostgresError? {
        if let error = job.error as? PostgresError { return error }
        if let unavailable = job.error as? StoreUnavailable { return PostgresError(message: unavailable.message, connectionBad: true) }
        return db.transactionStatus == PQTRANS_INERROR ? db.lastError : nil
    }
}
