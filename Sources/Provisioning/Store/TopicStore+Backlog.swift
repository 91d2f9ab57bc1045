extension TopicStore {
    /// Deliveries waiting to be made, across all subscriptions: the backlog
    /// the start log line reports. The sum of the subscriptions' kept counts,
    /// not a count through the index of a million pending rows at start.
    package func pendingBacklog() throws -> Int {
        try engine.readNow { db in
            Int(try db.queryOne("SELECT coalesce(sum(pending_n), 0) FROM subscriptions") { $0.int(0) } ?? 0)
        }
    }
}
