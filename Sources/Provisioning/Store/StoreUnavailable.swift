/// The database cannot be reached now (the connection was lost, or a new one
/// is refused). Nothing is wrong with the request: the API answers 503 with
/// `Retry-After`, and the next transaction connects again, so everything
/// resumes when the database is back.
struct StoreUnavailable: Error, CustomStringConvertible, Sendable {
    let message: String

    init(_ message: String) {
        self.message = message
    }

    var description: String { "the database is unavailable: \(message)" }
}
