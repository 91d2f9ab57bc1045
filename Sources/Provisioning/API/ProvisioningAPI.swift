import Essentials
import HTTPServer
import Logging

/// The HTTP API (docs/api.md): authentication first, then routing, then
/// handlers that validate input fully before they change anything.
struct ProvisioningAPI: Sendable {
    let store: TopicStore
    let token: [UInt8]
    let metrics: Metrics
    let logger: Logger
    /// Called after a commit that created deliveries, to wake the dispatcher.
    let deliveriesCreated: @Sendable () -> Void
    /// Called when an operator retried, unpaused or re-pointed a subscription.
    let subscriptionRevived: @Sendable (String) -> Void
    /// Called after a `deliver: all` subscription was created.
    let backfillRequested: @Sendable () -> Void

    /// The liveness probe, answered on the event loop (see `HTTPImmediateHandler`):
    /// it reads nothing, and is the request load balancers send most.
    func makeImmediateHandler() -> HTTPImmediateHandler {
        let metrics = metrics
        return { request in
            guard request.target == "/healthz", request.method == "GET" || request.method == "HEAD" else { return nil }
            metrics.request(method: Metrics.methodLabel(request.method), route: "/healthz", status: 200)
            return ProvisioningAPI.healthy
        }
    }

    static let healthy = HTTPResponse.json(200, .object([("status", .string("ok"))]))

    func makeHandler() -> HTTPHandler {
        let router = makeRouter()
        return { request in
            let route: String
            let response: HTTPResponse
            let match = router.match(request)
            switch match {
            case .found(let found, _): route = found.pattern
            default: route = "unmatched"
            }
            if ProvisioningAPI.isProtected(request), request.headers.values("Authorization").count > 1 {
                // Two credentials are ambiguous: a proxy may check one and we the other.
                response = .problem(400, detail: "Authorization: more than one Authorization header")
            } else if ProvisioningAPI.isProtected(request), !authorized(request) {
                var headers = HTTPHeaders()
                headers.add("WWW-Authenticate", "Bearer")
                let detail = request.headers["Authorization"] == nil
                    ? "Authorization header missing: send Authorization: Bearer <token>"
                    : "Authorization header does not carry a valid bearer token"
                response = .problem(401, detail: detail, headers: headers)
            } else if case .found = match, let refused = ProvisioningAPI.refusedInput(request, route: route) {
                response = refused
            } else {
                response = await router.respond(to: request, match: match)
            }
            metrics.request(method: Metrics.methodLabel(request.method), route: route, status: response.status)
            return response
        }
    }

    static func isProtected(_ request: HTTPRequest) -> Bool {
        guard let first = request.pathSegments.first else { return false }
        // Segments are percent-decoded: "/tenants%2Fx" arrives as one segment "tenants/x" and must not slip past.
        let top = first.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return top == "tenants" || top == "subscriptions" || top == "status"
    }

    /// Query parameters each route reads; any other is refused with 400, so
    /// a typo (`?stauts=failed`) is not silently a listing of everything.
    static let queryParameters: [String: Set<String>] = [
        "/tenants": ["domain", "status", "deleted", "limit", "after"],
        "/tenants/{id}/events": ["limit", "after"],
        "/subscriptions/{id}/deliveries": ["state", "limit", "after"],
    ]

    /// 400 for an unknown query parameter, 415 for a body that is not JSON; nil if neither.
    static func refusedInput(_ request: HTTPRequest, route: String) -> HTTPResponse? {
        let allowed = queryParameters[route] ?? []
        if let unknown = request.query.first(where: { !allowed.contains($0.name) }) {
            return .problem(400, detail: "\(unknown.name): unknown query parameter" + (allowed.isEmpty ? "" : " (known: \(allowed.sorted().joined(separator: ", ")))"))
        }
        if !request.body.isEmpty, let type = request.headers["Content-Type"], !isJSON(type) {
            return .problem(415, detail: "Content-Type: \(type) is not JSON; send Content-Type: application/json")
        }
        return nil
    }

    /// `application/json` or a `+json` type, with any parameters (charset).
    static func isJSON(_ contentType: String) -> Bool {
        let type = contentType.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        return type == "application/json" || (type.hasPrefix("application/") && type.hasSuffix("+json"))
    }

    func authorized(_ request: HTTPRequest) -> Bool {
        guard let header = request.headers["Authorization"] else { return false }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return false }
        return APIToken.constantTimeEquals(Array(parts[1].trimmingCharacters(in: .whitespaces).utf8), token)
    }

    private func makeRouter() -> Router {
        var router = Router()
        router.get("/") { _ in StatusPage.response }
        router.get("/healthz") { _ in ProvisioningAPI.healthy }
        router.get("/readyz") { _ in
            await store.isUsable()
                ? .json(200, .object([("status", .string("ok"))]))
                : .problem(503, detail: "database: not usable")
        }
        router.get("/metrics") { _ in
            let scrape = metrics.beginScrape()
            let subscriptions = try? await store.subscriptions()
            return .text(200, metrics.render(subscriptions: subscriptions, scrape: scrape),
                         contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        router.post("/tenants") { request in await handle { try await createTenant(request) } }
        router.get("/tenants") { request in await handle { try await listTenants(request) } }
        router.get("/tenants/{id}") { request in
            await handle {
                guard let tenant = try await store.tenant(id: request.pathParameters["id"]!) else {
                    return .problem(404, detail: "id: no tenant \(request.pathParameters["id"]!)")
                }
                return .json(200, Representation.tenant(tenant))
            }
        }
        router.patch("/tenants/{id}") { request in
            await handle { try await changeTenant(request, .update(try TenantPatch.parse(request.body))) }
        }
        router.post("/tenants/{id}/deactivate") { request in await handle { try await changeTenant(request, .deactivate) } }
        router.post("/tenants/{id}/activate") { request in await handle { try await changeTenant(request, .activate) } }
        router.delete("/tenants/{id}") { request in await handle { try await changeTenant(request, .delete) } }
        router.get("/tenants/{id}/events") { request in
            await handle {
                let id = request.pathParameters["id"]!
                guard let page = try await store.events(
                    tenantId: id, limit: try ProvisioningAPI.limit(request), after: ProvisioningAPI.cursor(request))
                else { return .problem(404, detail: "id: no tenant \(id)") }
                return .json(200, .object([
                    ("items", .array(page.items.map(Representation.event))), ("next", .optional(page.next)),
                ]))
            }
        }
        router.post("/subscriptions") { request in await handle { try await createSubscription(request) } }
        router.get("/subscriptions") { _ in
            await handle {
                let subscriptions = try await store.subscriptions()
                return .json(200, .object([("items", .array(subscriptions.map { Representation.subscription($0) }))]))
            }
        }
        router.get("/subscriptions/{id}") { request in
            await handle {
                let id = request.pathParameters["id"]!
                guard let subscription = try await store.subscription(id: id) else { return notFound(id) }
                return .json(200, Representation.subscription(subscription))
            }
        }
        router.patch("/subscriptions/{id}") { request in
            await handle {
                let patch = try SubscriptionPatch.parse(request.body)
                let id = request.pathParameters["id"]!
                guard let subscription = try await store.updateSubscription(id: id, patch) else { return notFound(id) }
                if patch.paused == false || patch.url != nil { subscriptionRevived(subscription.id) }
                return .json(200, Representation.subscription(subscription))
            }
        }
        router.delete("/subscriptions/{id}") { request in
            await handle {
                let id = request.pathParameters["id"]!
                guard try await store.deleteSubscription(id: id) != nil else { return notFound(id) }
                return HTTPResponse(status: 204)
            }
        }
        router.get("/subscriptions/{id}/secret") { request in
            await handle {
                let id = request.pathParameters["id"]!
                guard let secret = try await store.secret(subscriptionId: id) else { return notFound(id) }
                return .json(200, .object([("secret", .string(secret))]))
            }
        }
        router.get("/subscriptions/{id}/deliveries") { request in
            await handle {
                var filter = TopicStore.DeliveryFilter()
                filter.limit = try ProvisioningAPI.limit(request)
                filter.after = ProvisioningAPI.cursor(request)
                if let state = request.queryValue("state") {
                    guard let parsed = DeliveryState(name: state) else {
                        throw InvalidRequest(field: "state", message: "must be pending, delivered or failed")
                    }
                    filter.state = parsed
                }
                let id = request.pathParameters["id"]!
                let writer = PageWriter(render: Representation.deliveryItem)
                guard let (page, next) = try await store.deliveries(subscriptionId: id, filter, into: writer) else { return notFound(id) }
                return .json(200, serialized: page.finish(next: next))
            }
        }
        router.post("/subscriptions/{id}/retry") { request in
            await handle {
                let id = request.pathParameters["id"]!
                guard let retry = try await store.retryFailed(subscriptionId: id) else { return notFound(id) }
                // Even with nothing failed: an operator who fixed a receiver asks to try it now,
                // not after the breaker's backoff; the first success makes the backlog due.
                subscriptionRevived(retry.id)
                if retry.requeued > 0 { deliveriesCreated() }
                return .json(202, .object([("requeued", .int(retry.requeued)), ("probing", .bool(retry.probing))]))
            }
        }
        router.post("/subscriptions/{id}/replay") { request in
            await handle {
                let since = try ReplayRequest.parse(request.body).since
                let id = request.pathParameters["id"]!
                guard let replayed = try await store.replay(subscriptionId: id, since: since) else { return notFound(id) }
                deliveriesCreated()
                return .json(202, .object([("replayed", .int(replayed))]))
            }
        }
        router.get("/subscriptions/{id}/deliveries/{eventId}/attempts") { request in
            await handle {
                let id = request.pathParameters["id"]!, eventId = request.pathParameters["eventId"]!
                switch try await store.attempts(subscriptionId: id, eventId: eventId) {
                case .noSubscription: return notFound(id)
                case .noDelivery: return .problem(404, detail: "eventId: subscription \(id) has no delivery of event \(eventId)")
                case .found(let attempts):
                    return .json(200, .object([("items", .array(attempts.map(Representation.attempt)))]))
                }
            }
        }
        router.get("/status") { _ in
            await handle {
                async let subscriptions = store.subscriptions()
                async let tenants = store.tenantStats()
                let delivered = metrics.deliveredLastMinute()
                return .json(200, Representation.status(try await subscriptions, tenants: try await tenants, deliveredLastMinute: delivered))
            }
        }
        return router
    }

    private func notFound(_ id: String) -> HTTPResponse {
        .problem(404, detail: "id: no subscription \(id)")
    }

    private func createTenant(_ request: HTTPRequest) async throws -> HTTPResponse {
        let tenantRequest = try TenantRequest.parse(request.body)
        switch try await store.publish(tenantRequest) {
        case .created(let tenant):
            metrics.tenantCreated()
            deliveriesCreated()
            var headers = HTTPHeaders()
            headers.add("Location", "/tenants/\(tenant.id)")
            return .json(202, Representation.tenant(tenant), headers: headers)
        case .existing(let tenant):
            return .json(200, Representation.tenant(tenant))
        case .conflict(let existingId):
            return .problem(409, detail: "domain: \(tenantRequest.domain) already exists (tenant \(existingId)) with a different request")
        }
    }

    /// A change after creation: 202 with its event committed, 200 when it
    /// changes nothing, 409 once the tenant is deleted.
    private func changeTenant(_ request: HTTPRequest, _ change: TenantChange) async throws -> HTTPResponse {
        let id = request.pathParameters["id"]!
        switch try await store.change(tenantId: id, change) {
        case .changed(let tenant):
            metrics.event(change.eventType)
            deliveriesCreated()
            return .json(202, Representation.tenant(tenant))
        case .unchanged(let tenant):
            return .json(200, Representation.tenant(tenant))
        case .deleted(let tenant):
            return .problem(409, detail: "id: tenant \(id) (\(tenant.data["domain"]?.stringValue ?? "")) is deleted and takes no more changes")
        case .notFound:
            return .problem(404, detail: "id: no tenant \(id)")
        }
    }

    private func listTenants(_ request: HTTPRequest) async throws -> HTTPResponse {
        var filter = TopicStore.TenantFilter()
        filter.limit = try ProvisioningAPI.limit(request)
        filter.after = ProvisioningAPI.cursor(request)
        filter.domain = request.queryValue("domain")
        if let deleted = request.queryValue("deleted") {
            guard deleted == "true" || deleted == "false" else {
                throw InvalidRequest(field: "deleted", message: "must be true or false")
            }
            filter.deleted = deleted == "true"
        }
        if let status = request.queryValue("status") {
            guard let parsed = TenantStatus(rawValue: status) else {
                throw InvalidRequest(field: "status", message: "must be pending, provisioned or failed")
            }
            filter.status = parsed
        }
        let (page, next) = try await store.tenants(filter, into: PageWriter(render: Representation.tenant))
        return .json(200, serialized: page.finish(next: next))
    }

    private func createSubscription(_ request: HTTPRequest) async throws -> HTTPResponse {
        let subscriptionRequest = try SubscriptionRequest.parse(request.body)
        switch try await store.createSubscription(subscriptionRequest) {
        case .created(let subscription, let secret):
            if subscriptionRequest.deliverAll { backfillRequested() }
            var headers = HTTPHeaders()
            headers.add("Location", "/subscriptions/\(subscription.id)")
            return .json(201, Representation.subscription(subscription, secret: secret), headers: headers)
        case .nameTaken:
            return .problem(409, detail: "name: a subscription named \(subscriptionRequest.name) already exists")
        }
    }

    /// The `after` cursor; an empty one means none (the first page).
    static func cursor(_ request: HTTPRequest) -> String? {
        guard let after = request.queryValue("after"), !after.isEmpty else { return nil }
        return after
    }

    static func limit(_ request: HTTPRequest) throws -> Int {
        guard let text = request.queryValue("limit") else { return 100 }
        guard let limit = Int(text), (1...500).contains(limit) else {
            throw InvalidRequest(field: "limit", message: "must be a whole number from 1 to 500")
        }
        return limit
    }

    static let retryAfter: HTTPHeaders = {
        var headers = HTTPHeaders()
        headers.add("Retry-After", "1")
        return headers
    }()

    /// Maps errors to problem documents: bad input is 400 and changed nothing;
    /// a database failure is 503 so clients retry.
    private func handle(_ body: () async throws -> HTTPResponse) async -> HTTPResponse {
        do {
            return try await body()
        } catch let invalid as InvalidRequest {
            return .problem(400, detail: invalid.description)
        } catch let error as SQLiteError {
            logger.error("database error: \(error)")
            return .problem(503, detail: "database: \(error.message); try again", headers: ProvisioningAPI.retryAfter)
        } catch let error as StoreUnavailable {
            // PostgreSQL is gone for now: nothing was changed, and the same request will work once it is back.
            logger.error("database unavailable: \(error)")
            return .problem(503, detail: "database unavailable; try again", headers: ProvisioningAPI.retryAfter)
        } catch {
            logger.error("unexpected error: \(error)")
            return .problem(500, detail: "internal error")
        }
    }
}
