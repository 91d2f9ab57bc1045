extension TopicStore {
    enum AttemptsResult: Sendable {
        case noSubscription
        case noDelivery
        case found([Attempt])
    }

    /// The last 10 attempts of one delivery, newest first.
    func attempts(subscriptionId key: String, eventId: String) async throws -> AttemptsResult {
        try await engine.read { db in
            guard let seq = try TopicStore.subscriptionSeq(db, key: key) else { return .noSubscription }
            guard let delivery = try db.queryOne(
                "SELECT d.seq FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.subscription_seq = ? AND e.id = ?",
                [.integer(seq), .text(eventId)], map: { $0.int(0) })
            else { return .noDelivery }
            return .found(try db.query(
                "SELECT at, duration_ms, status, error, response FROM attempts WHERE delivery_seq = ? ORDER BY seq DESC LIMIT 10",
                [.integer(delivery)]
            ) { row in
                Attempt(at: row.int(0), durationMs: row.int(1), status: row.optionalInt(2).map(Int.init), error: row.optionalText(3),
                        response: row.isNull(4) ? nil : row.blob(4))
            })
        }
    }
}
