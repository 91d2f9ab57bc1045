import Essentials

public enum TenantStatus: String, Sendable, CaseIterable {
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

public struct Tenant: Sendable {
    public var id: String
    /// The webhook `data` object: id, domain, admin, plan, attributes, active,
    /// version, createdAt, updatedAt, deletedAt.
    public var data: JSON
    public var deletedAt: Int64?
    public var deliveries: [Delivery]

    public var status: TenantStatus { TenantStatus(deliveries: deliveries.map(\.state)) }
}

/// Live tenants by status.
public struct TenantStats: Sendable {
    public var pending = 0
    public var provisioned = 0
    public var failed = 0
    public var total: Int { pending + provisioned + failed }
}

public struct TenantEvent: Sendable {
    public var id: String
    public var type: String
    public var version: Int
    public var createdAt: Int64
}
