public enum HTTPVersion: Sendable, Equatable, CustomStringConvertible {
    case http1_0, http1_1
    public var description: String { self == .http1_0 ? "HTTP/1.0" : "HTTP/1.1" }
}

/// A complete request: head and whole body.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The request target as sent (`/tenants?limit=5`).
    public var target: String
    /// The path, percent-decoded, split into segments (`["tenants", "abc"]`).
    public var pathSegments: [String]
    /// Query parameters, percent-decoded, in order; repeated names are kept.
    public var query: [(name: String, value: String)]
    public var version: HTTPVersion
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// Path parameters filled in by the router (`{id}` → value).
    public var pathParameters: [String: String] = [:]

    public init(
        method: String, target: String, pathSegments: [String],
        query: [(name: String, value: String)], version: HTTPVersion,
        headers: HTTPHeaders, body: [UInt8] = []
    ) {
        self.method = method
        self.target = target
        self.pathSegments = pathSegments
        self.query = query
        self.version = version
        self.headers = headers
        self.body = body
    }

    /// The decoded path (`/tenants/abc`).
    public var path: String { "/" + pathSegments.joined(separator: "/") }

    /// The first value of a query parameter.
    public func queryValue(_ name: String) -> String? {
        query.first { $0.name == name }?.value
    }

    /// Whether the client asked to keep the connection open after this request.
    public var wantsKeepAlive: Bool {
        switch version {
        case .http1_1: return !headers.containsToken("Connection", "close")
        case .http1_0: return headers.containsToken("Connection", "keep-alive")
        }
    }
}
