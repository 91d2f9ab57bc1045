extension TopicStore {
    /// Deliveries waiting to be made, across all subscriptions: the backlog
    /// the start log line reports. Counted through the partial index of
    /// pending deliveries (`deliveries_due`).
    package func pendingBacklog() throws -> Int {
        try readers.readNow { db in
            Int(try db.queryOne("SELECT count(*) FROM deliveries WHERE state = 0") { $0.int(0) } ?? 0)
        }
    }
}
