import Essentials

/// How the domain objects look in the HTTP API (docs/api.md, openapi.yaml).
enum Representation {
    static func time(_ millis: Int64?) -> JSON { millis.map { .string(WallClock.rfc3339($0)) } ?? .null }

    static func tenant(_ tenant: Tenant) -> JSON {
        var members = tenant.data.objectMembers ?? []
        members.append(("status", .string(tenant.status.rawValue)))
        members.append(("deliveries", .array(tenant.deliveries.map { delivery in
            .object([
                ("subscriptionId", .string(delivery.subscriptionId)),
                ("subscription", .string(delivery.subscriptionName)),
                ("eventId", .string(delivery.eventId)),
                ("type", .string(delivery.type)),
            ] + deliveryState(delivery))
        })))
        return .object(members)
    }

    static func deliveryItem(_ delivery: Delivery) -> JSON {
        .object([
            ("tenantId", .optional(delivery.tenantId)),
            ("domain", .optional(delivery.domain)),
            ("eventId", .string(delivery.eventId)),
            ("type", .string(delivery.type)),
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
            ("blockedBy", .optional(delivery.blockedBy)),
        ]
    }

    static func attempt(_ attempt: Attempt) -> JSON {
        .object([
            ("at", time(attempt.at)), ("durationMs", .int(Int(attempt.durationMs))), ("status", .optional(attempt.status)),
            ("error", .optional(attempt.error)),
            ("response", attempt.response.map { .string(String(decoding: $0, as: UTF8.self)) } ?? .null),
        ])
    }

    static func status(_ subscriptions: [Subscription], tenants: TenantStats, deliveredLastMinute: [String: Int]) -> JSON {
        .object([
            ("subscriptions", .array(subscriptions.map { subscription in
                var members = self.subscription(subscription).objectMembers ?? []
                members.append(("deliveredLastMinute", .int(deliveredLastMinute[subscription.name] ?? 0)))
                return .object(members)
            })),
            ("tenants", .object([
                ("total", .int(tenants.total)), ("pending", .int(tenants.pending)),
                ("provisioned", .int(tenants.provisioned)), ("failed", .int(tenants.failed)),
            ])),
        ])
    }

    static func event(_ event: TenantEvent) -> JSON {
        .object([
            ("id", .string(event.id)), ("type", .string(event.type)), ("version", .int(event.version)),
            ("createdAt", time(event.createdAt)),
        ])
    }

    static func subscription(_ subscription: Subscription, secret: String? = nil) -> JSON {
        var members: [(String, JSON)] = [
            ("id", .string(subscription.id)),
            ("name", .string(subscription.name)),
            ("url", .string(SubscriptionRules.maskingPassword(subscription.url))),
            ("deliver", .string(subscription.deliver)),
            ("events", .array(subscription.events.map { .string($0.rawValue) })),
            ("paused", .bool(subscription.paused)),
            ("createdAt", time(subscription.createdAt)),
            ("counts", .object([
                ("pending", .int(subscription.counts.pending)),
                ("delivered", .int(subscription.counts.delivered)),
                ("failed", .int(subscription.counts.failed)),
            ])),
        ]
        members += [
            ("state", .string(subscription.state)),
            ("oldestPendingAt", time(subscription.oldestPendingAt)),
            ("lastAttemptAt", time(subscription.lastAttemptAt)),
            ("lastSuccessAt", time(subscription.lastSuccessAt)),
            ("lastStatus", .optional(subscription.lastStatus)),
            ("lastError", .optional(subscription.lastError)),
        ]
        if let secret { members.append(("secret", .string(secret))) }
        return .object(members)
    }

}
