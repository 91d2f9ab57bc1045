/// What happened, as the `type` of a webhook body.
enum EventType: String, Sendable, CaseIterable {
    case tenantCreated = "tenant.created"
    case tenantUpdated = "tenant.updated"
    case tenantDeactivated = "tenant.deactivated"
    case tenantActivated = "tenant.activated"
    case tenantDeleted = "tenant.deleted"
    case deliveryFailed = "delivery.failed"
    case subscriptionDown = "subscription.down"
    case subscriptionRecovered = "subscription.recovered"

    /// What a subscription gets unless it lists its own: every tenant event.
    static let tenantTypes: [EventType] = [.tenantCreated, .tenantUpdated, .tenantDeactivated, .tenantActivated, .tenantDeleted]

    /// The stored form of a list of wanted types, `,a,b,`, tested with `instr(events, ',type,')`.
    static func stored(_ types: [EventType]) -> String { "," + types.map(\.rawValue).joined(separator: ",") + "," }

    static func parseStored(_ text: String) -> [EventType] {
        text.split(separator: ",").compactMap { EventType(rawValue: String($0)) }
    }
}
