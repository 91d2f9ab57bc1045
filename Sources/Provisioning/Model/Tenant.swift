import Essentials

enum TenantStatus: String, Sendable, CaseIterable {
    case pending, provisioned, failed

    /// `failed` if any delivery failed, else `pending` if any is pending, else `provisioned`.
    init(deliveries: [DeliveryState]) {
        if deliveries.contains(.failed) {
            self = .failed
        } else if deliveries.contains(.pending) {
            self = .pending
        } else {
            self = .provisioned
        }
    }
}

struct Tenant: Sendable {
    var id: String
    /// The webhook `data` object: id, domain, admin, plan, attributes, active,
    /// version, createdAt, updatedAt, deletedAt.
    var data: JSON
    var deletedAt: Int64?
    var deliveries: [Delivery]

    var status: TenantStatus { TenantStatus(deliveries: deliveries.map(\.state)) }
}

/// Live tenants by status.
struct TenantStats: Sendable {
    var pending = 0
    var provisioned = 0
    var failed = 0
    var total: Int { pending + provisioned + failed }
}

struct TenantEvent: Sendable {
    var id: String
    var type: String
    var version: Int
    var createdAt: Int64
}
