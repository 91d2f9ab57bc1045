enum DeliveryState: Int, Sendable, CaseIterable {
    case pending = 0
    case delivered = 1
    case failed = 2

    var name: String {
        switch self {
        case .pending: return "pending"
        case .delivered: return "delivered"
        case .failed: return "failed"
        }
    }

    init?(name: String) {
        guard let state = DeliveryState.allCases.first(where: { $0.name == name }) else { return nil }
        self = state
    }
}

/// A delivery as seen from its tenant or its subscription.
struct Delivery: Sendable {
    var subscriptionId: String
    var subscriptionName: String
    /// Nil for an operational event's delivery.
    var tenantId: String?
    var domain: String?
    var eventId: String
    var type: String
    var state: DeliveryState
    var attempts: Int
    var lastAttemptAt: Int64?
    var lastStatus: Int?
    var lastError: String?
    var nextAttemptAt: Int64?
    var deliveredAt: Int64?
    /// The event this one waits behind (its domain's oldest unacknowledged one).
    var blockedBy: String?
}

/// One webhook attempt, as kept for an operator.
struct Attempt: Sendable {
    var at: Int64
    var durationMs: Int64
    var status: Int?
    var error: String?
    var response: [UInt8]?
}
