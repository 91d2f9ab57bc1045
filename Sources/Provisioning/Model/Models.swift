import Essentials

public enum DeliveryState: Int, Sendable, CaseIterable {
    case pending = 0
    case delivered = 1
    case failed = 2

    public var name: String {
        switch self {
        case .pending: return "pending"
        case .delivered: return "delivered"
        case .failed: return "failed"
        }
    }

    public init?(name: String) {
        guard let state = DeliveryState.allCases.first(where: { $0.name == name }) else { return nil }
        self = state
    }
}

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

/// A delivery as seen from its tenant or its subscription.
public struct Delivery: Sendable {
    public var subscriptionId: String
    public var subscriptionName: String
    /// Nil for an operational event's delivery.
    public var tenantId: String?
    public var domain: String?
    public var eventId: String
    public var type: String
    public var state: DeliveryState
    public var attempts: Int
    public var lastAttemptAt: Int64?
    public var lastStatus: Int?
    public var lastError: String?
    public var nextAttemptAt: Int64?
    public var deliveredAt: Int64?
    /// The event this one waits behind (its domain's oldest unacknowledged one).
    public var blockedBy: String?
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

public struct DeliveryCounts: Sendable {
    public var pending = 0
    public var delivered = 0
    public var failed = 0
}

public struct Subscription: Sendable {
    public var seq: Int64
    public var id: String
    public var name: String
    public var url: String
    public var deliver: String
    public var paused: Bool
    public var createdAt: Int64
    public var events: [EventType]
    public var counts: DeliveryCounts
    /// Set while it counts as down (failing in a row): since when.
    public var downSince: Int64?
    public var lastAttemptAt: Int64?
    public var lastSuccessAt: Int64?
    public var lastStatus: Int?
    /// Of the last attempt; nil when it succeeded.
    public var lastError: String?
    /// When its oldest pending delivery was created.
    public var oldestPendingAt: Int64?

    /// `paused` wins over `down`.
    public var state: String { paused ? "paused" : (downSince != nil ? "down" : "up") }
}

/// Live tenants by status.
public struct TenantStats: Sendable {
    public var pending = 0
    public var provisioned = 0
    public var failed = 0
    public var total: Int { pending + provisioned + failed }
}

public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    /// The cursor for the next page; nil on the last.
    public var next: String?
}

/// Takes a list page's items one by one as the store loads them; the store
/// loads no more once it is full (and then gives a `next` cursor).
protocol PageCollector: Sendable {
    associatedtype Item
    var isFull: Bool { get }
    mutating func add(_ item: Item)
}

/// Every item up to the page's `limit`, in an array.
struct ItemList<Item: Sendable>: PageCollector {
    var items: [Item] = []
    var isFull: Bool { false }
    mutating func add(_ item: Item) { items.append(item) }
}
