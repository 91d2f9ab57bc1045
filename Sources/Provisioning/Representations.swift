import HTTPServer

/// How the domain objects look in the HTTP API (CONTRACT.md).
enum Representation {
    static func time(_ millis: Int64?) -> JSON { millis.map { .string(WallClock.rfc3339($0)) } ?? .null }

    static func tenant(_ tenant: Tenant) -> JSON {
        var members = tenant.data.objectMembers ?? []
        members.append(("status", .string(tenant.status.rawValue)))
        members.append(("deliveries", .array(tenant.deliveries.map { delivery in
            .object([
                ("subscriptionId", .string(delivery.subscriptionId)),
                ("subscription", .string(delivery.subscriptionName)),
            ] + deliveryState(delivery))
        })))
        return .object(members)
    }

    static func deliveryItem(_ delivery: Delivery) -> JSON {
        .object([
            ("tenantId", .string(delivery.tenantId)),
            ("domain", .string(delivery.domain)),
            ("eventId", .string(delivery.eventId)),
        ] + deliveryState(delivery))
    }

    private static func deliveryState(_ delivery: Delivery) -> [(String, JSON)] {
        [
            ("state", .string(delivery.state.name)),
            ("attempts", .int(delivery.attempts)),
            ("lastAttemptAt", time(delivery.lastAttemptAt)),
            ("lastStatus", .optional(delivery.lastStatus)),
            ("lastError", .optional(delivery.lastError)),
            ("nextAttemptAt", time(delivery.nextAttemptAt)),
            ("deliveredAt", time(delivery.deliveredAt)),
        ]
    }

    static func subscription(_ subscription: Subscription, secret: String? = nil) -> JSON {
        var members: [(String, JSON)] = [
            ("id", .string(subscription.id)),
            ("name", .string(subscription.name)),
            ("url", .string(SubscriptionRules.maskingPassword(subscription.url))),
            ("deliver", .string(subscription.deliver)),
            ("paused", .bool(subscription.paused)),
            ("createdAt", time(subscription.createdAt)),
            ("counts", .object([
                ("pending", .int(subscription.counts.pending)),
                ("delivered", .int(subscription.counts.delivered)),
                ("failed", .int(subscription.counts.failed)),
            ])),
        ]
        if let secret { members.append(("secret", .string(secret))) }
        return .object(members)
    }

    static func page<Item>(_ page: Page<Item>, _ render: (Item) -> JSON) -> JSON {
        .object([("items", .array(page.items.map(render))), ("next", .optional(page.next))])
    }
}
