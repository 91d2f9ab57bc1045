import Essentials

/// A tenant's row: what its current `data` is made of, besides the admin,
/// plan and attributes that its latest event's payload holds.
struct TenantRow: Sendable {
    let seq: Int64
    let id: String
    let domain: String
    var active: Bool
    var version: Int
    let createdAt: Int64
    var updatedAt: Int64
    var deletedAt: Int64?
    var lastEventSeq: Int64

    static let columns = "seq, id, domain, active, version, created_at, updated_at, deleted_at, last_event_seq"

    init(_ row: SQLRow) {
        seq = row.int(0)
        id = row.text(1)
        domain = row.text(2)
        active = row.int(3) != 0
        version = Int(row.int(4))
        createdAt = row.int(5)
        updatedAt = row.int(6)
        deletedAt = row.optionalInt(7)
        lastEventSeq = row.int(8)
    }

    init(seq: Int64, id: String, domain: String, createdAt: Int64) {
        self.seq = seq
        self.id = id
        self.domain = domain
        active = true
        version = 0
        self.createdAt = createdAt
        updatedAt = createdAt
        lastEventSeq = 0
    }

    /// The webhook `data` of a tenant event: the tenant as it stands.
    func data(_ fields: TenantFields) -> JSON {
        .object([
            ("id", .string(id)), ("domain", .string(domain)), ("admin", fields.admin), ("plan", .optional(fields.plan)),
            ("attributes", fields.attributes), ("active", .bool(active)), ("version", .int(version)),
            ("createdAt", .string(WallClock.rfc3339(createdAt))), ("updatedAt", .string(WallClock.rfc3339(updatedAt))),
            ("deletedAt", deletedAt.map { .string(WallClock.rfc3339($0)) } ?? .null),
        ])
    }
}

/// The fields of a tenant that a PATCH may change.
struct TenantFields: Sendable, Equatable {
    var admin: JSON
    var plan: String?
    var attributes: JSON

    /// From an event's `data` (a creation from before events had versions included).
    init(data: JSON) {
        admin = data["admin"] ?? .object([])
        plan = data["plan"]?.stringValue
        attributes = data["attributes"] ?? .object([])
    }

    init(admin: JSON, plan: String?, attributes: JSON) {
        self.admin = admin
        self.plan = plan
        self.attributes = attributes
    }

    static func == (a: TenantFields, b: TenantFields) -> Bool {
        a.admin.canonical == b.admin.canonical && a.plan == b.plan && a.attributes.canonical == b.attributes.canonical
    }
}
