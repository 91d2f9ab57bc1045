/// A change to a tenant after its creation.
enum TenantChange: Sendable {
    case update(TenantPatch)
    case deactivate
    case activate
    case delete
}

extension TenantChange {
    /// The event a change publishes when it changes something.
    var eventType: EventType {
        switch self {
        case .update: .tenantUpdated
        case .deactivate: .tenantDeactivated
        case .activate: .tenantActivated
        case .delete: .tenantDeleted
        }
    }
}
