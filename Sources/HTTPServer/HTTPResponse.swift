import Essentials

public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: Int, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func text(_ status: Int, _ text: String, contentType: String = "text/plain; charset=utf-8") -> HTTPResponse {
        var headers = HTTPHeaders()
        headers.add("Content-Type", contentType)
        return HTTPResponse(status: status, headers: headers, body: Array(text.utf8))
    }

    /// A JSON response from an already-built JSON value.
    public static func json(_ status: Int, _ value: JSON, headers extra: HTTPHeaders = HTTPHeaders()) -> HTTPResponse {
        json(status, serialized: value.serialized(), headers: extra)
    }

    /// A JSON response from a document already serialised (a list page written item by item).
    public static func json(_ status: Int, serialized body: [UInt8], headers extra: HTTPHeaders = HTTPHeaders()) -> HTTPResponse {
        var headers = extra
        headers.set("Content-Type", "application/json; charset=utf-8")
        return HTTPResponse(status: status, headers: headers, body: body)
    }

    /// An RFC 9457 problem document.
    public static func problem(
        _ status: Int, detail: String, title: String? = nil, headers extra: HTTPHeaders = HTTPHeaders()
    ) -> HTTPResponse {
        var headers = extra
        headers.set("Content-Type", "application/problem+json")
        let document: JSON = .object([
            ("type", .string("about:blank")),
            ("title", .string(title ?? HTTPStatus.reason(status))),
            ("status", .number(String(status))),
            ("detail", .string(detail)),
        ])
        return HTTPResponse(status: status, headers: headers, body: document.serialized())
    }
}

public enum HTTPStatus {
    public static func reason(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 304: return "Not Modified"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 411: return "Length Required"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 422: return "Unprocessable Content"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        case 505: return "HTTP Version Not Supported"
        default: return "Status \(status)"
        }
    }

    /// Statuses whose responses never carry a body (RFC 9110 §6.4.1).
    static func forbidsBody(_ status: Int) -> Bool {
        status < 200 || status == 204 || status == 304
    }
}
