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

/// One webhook attempt, as kept for an operator.
public struct Attempt: Sendable {
    public var at: Int64
    public var durationMs: Int64
    public var status: Int?
    public var error: String?
    public var response: [UInt8]?
}
