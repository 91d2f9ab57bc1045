/// Routes requests by method and path pattern (`/tenants/{id}`). An unknown
/// path gets 404; a known path with another method gets 405 and `Allow`.
public struct Router: Sendable {
    public struct Route: Sendable {
        public let method: String
        public let pattern: String
        let segments: [Segment]
        let handler: HTTPHandler
    }

    enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    /// The outcome of a lookup, before the handler runs.
    public enum Match: Sendable {
        case found(Route, parameters: [String: String])
        case methodNotAllowed(allowed: [String])
        case notFound
    }

    public private(set) var routes: [Route] = []

    public init() {}

    public mutating func add(_ method: String, _ pattern: String, _ handler: @escaping HTTPHandler) {
        let segments = pattern.split(separator: "/").map { part -> Segment in
            part.hasPrefix("{") && part.hasSuffix("}") ? .parameter(String(part.dropFirst().dropLast())) : .literal(String(part))
        }
        routes.append(Route(method: method, pattern: pattern, segments: segments, handler: handler))
    }

    public mutating func get(_ pattern: String, _ handler: @escaping HTTPHandler) { add("GET", pattern, handler) }
    public mutating func post(_ pattern: String, _ handler: @escaping HTTPHandler) { add("POST", pattern, handler) }
    public mutating func patch(_ pattern: String, _ handler: @escaping HTTPHandler) { add("PATCH", pattern, handler) }
    public mutating func delete(_ pattern: String, _ handler: @escaping HTTPHandler) { add("DELETE", pattern, handler) }

    public func match(_ request: HTTPRequest) -> Match {
        var allowed: [String] = []
        for route in routes {
            guard let parameters = Router.bind(route.segments, to: request.pathSegments) else { continue }
            // HEAD is served by the GET route (the body is dropped when writing).
            if route.method == request.method || (request.method == "HEAD" && route.method == "GET") {
                return .found(route, parameters: parameters)
            }
            // Several patterns may match one path: name each method once.
            if !allowed.contains(route.method) { allowed.append(route.method) }
        }
        if allowed.isEmpty { return .notFound }
        if allowed.contains("GET") && !allowed.contains("HEAD") { allowed.append("HEAD") }
        return .methodNotAllowed(allowed: allowed)
    }

    /// Routes and runs the request.
    public func respond(to request: HTTPRequest) async -> HTTPResponse {
        await respond(to: request, match: match(request))
    }

    /// Runs a request already matched (by a caller that needed the match too).
    public func respond(to request: HTTPRequest, match: Match) async -> HTTPResponse {
        switch match {
        case .found(let route, let parameters):
            var routed = request
            routed.pathParameters = parameters
            return await route.handler(routed)
        case .methodNotAllowed(let allowed):
            var headers = HTTPHeaders()
            headers.add("Allow", allowed.joined(separator: ", "))
            return .problem(405, detail: "method \(request.method) is not allowed on \(request.path); allowed: \(allowed.joined(separator: ", "))", headers: headers)
        case .notFound:
            return .problem(404, detail: "no resource at \(request.path)")
        }
    }

    static func bind(_ segments: [Segment], to path: [String]) -> [String: String]? {
        guard segments.count == path.count else { return nil }
        var parameters: [String: String] = [:]
        for (segment, value) in zip(segments, path) {
            switch segment {
            case .literal(let literal): if literal != value { return nil }
            case .parameter(let name):
                if value.isEmpty { return nil }
                parameters[name] = value
            }
        }
        return parameters
    }
}
