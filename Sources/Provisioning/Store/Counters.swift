/// The delivery counts (subscriptions.pending_n/delivered_n/failed_n,
/// tenants.pending_n/failed_n) and the live tenants per status (tenant_stats)
/// are kept by the write paths that change a delivery's state, in the same
/// transaction: each path knows what it changed, so it adds it up in Swift
/// and writes one UPDATE per subscription and per tenant (and per status
/// bucket that moved), instead of triggers firing several UPDATEs per row.
/// CountersTests compares them with counted rows after every kind of change.
enum Counters {
    /// A live tenant's status: failed, else pending, else provisioned.
    static func status(pending: Int64, failed: Int64) -> TenantStatus {
        failed > 0 ? .failed : (pending > 0 ? .pending : .provisioned)
    }

    /// Moves one live tenant from one status to another (nil: not counted, i.e. new or deleted).
    static func moveTenant(_ db: any SQLDatabase, from old: TenantStatus?, to new: TenantStatus?) throws {
        guard old != new else { return }
        if let old { try db.run(statsSQL, [.int(-1), .text(old.rawValue)]) }
        if let new { try db.run(statsSQL, [.int(1), .text(new.rawValue)]) }
    }

    static let statsSQL = SQL("UPDATE tenant_stats SET n = n + ? WHERE status = ?")
    static let tenantSQL = SQL(
        "UPDATE tenants SET pending_n = pending_n + ?, failed_n = failed_n + ? WHERE seq = ? RETURNING pending_n, failed_n, deleted_at IS NULL")

    /// Count changes per tenant, written by `apply` with one UPDATE per
    /// tenant, then one per status bucket that changed size.
    struct Tenants {
        private var changes: [Int64: (pending: Int, failed: Int)] = [:]

        /// `tenant` nil: an operational event's delivery, which no tenant counts.
        mutating func add(_ tenant: Int64?, pending: Int = 0, failed: Int = 0) {
            guard let tenant else { return }
            let current = changes[tenant] ?? (0, 0)
            changes[tenant] = (current.pending + pending, current.failed + failed)
        }

        func apply(_ db: any SQLDatabase) throws {
            var buckets: [TenantStatus: Int] = [:]
            for (tenant, change) in changes.sorted(by: { $0.key < $1.key }) where change != (0, 0) {
                guard let (pending, failed, live) = try db.queryOne(Counters.tenantSQL,
                    [.int(change.pending), .int(change.failed), .integer(tenant)], map: { ($0.int(0), $0.int(1), $0.int(2) != 0) })
                else { continue }
                guard live else { continue }
                let old = Counters.status(pending: pending - Int64(change.pending), failed: failed - Int64(change.failed))
                let new = Counters.status(pending: pending, failed: failed)
                if old != new {
                    buckets[old, default: 0] -= 1
                    buckets[new, default: 0] += 1
                }
            }
            for status in TenantStatus.allCases {
                if let n = buckets[status], n != 0 { try db.run(Counters.statsSQL, [.int(n), .text(status.rawValue)]) }
            }
        }
    }
}
