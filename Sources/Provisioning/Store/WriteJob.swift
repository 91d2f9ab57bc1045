/// A write waiting for its group: run inside the group's transaction,
/// completed once the group committed (or could not). Both engines' group
/// writers use it.
protocol WriteJob: AnyObject {
    /// Runs the job; false if it threw (its savepoint is then rolled back).
    func run(_ db: any SQLDatabase) -> Bool
    /// What the last run threw, if it did.
    var error: Error? { get }
    func fail(_ error: Error)
    func complete(commitError: Error?)
    /// Completes with `error`, whatever the job's own outcome: its whole
    /// transaction was undone (a lost connection, conflicts without end).
    func abandon(_ error: Error)
}

final class TypedWriteJob<T: Sendable>: WriteJob, @unchecked Sendable {
    let body: (any SQLDatabase) throws -> T
    let completion: (Result<T, Error>) -> Void
    var result: Result<T, Error>?

    init(body: @escaping (any SQLDatabase) throws -> T, completion: @escaping (Result<T, Error>) -> Void) {
        self.body = body
        self.completion = completion
    }

    /// The error of the last run, if it threw.
    var error: Error? {
        if case .failure(let error)? = result { return error }
        return nil
    }

    func run(_ db: any SQLDatabase) -> Bool {
        do {
            result = .success(try body(db))
            return true
        } catch {
            result = .failure(error)
            return false
        }
    }

    /// Keeps the job's own error if it threw.
    func fail(_ error: Error) {
        if case .failure? = result { return }
        result = .failure(error)
    }

    func abandon(_ error: Error) { completion(.failure(error)) }

    func complete(commitError: Error?) {
        if let commitError, case .success = result ?? .failure(commitError) {
            completion(.failure(commitError))
        } else {
            completion(result ?? .failure(commitError ?? SQLiteError(code: 1, message: "job did not run")))
        }
    }
}
