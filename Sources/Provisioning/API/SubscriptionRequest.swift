import CCurl
import Foundation

/// A validated `POST /subscriptions` body.
package struct SubscriptionRequest: Sendable {
    var name: String
    var url: String
    var secret: String?
    var deliverAll: Bool
    var events: [EventType]

    package static func parse(_ body: [UInt8]) throws(InvalidRequest) -> SubscriptionRequest {
        var reader = try ObjectReader.body(body)
        reader.nullIsAbsent = true
        try reader.rejectUnknown(allowed: ["name", "url", "secret", "deliver", "events"])
        let name = try reader.string("name", required: true)!
        try SubscriptionRules.validateName(name)
        let url = try reader.string("url", required: true)!
        try SubscriptionRules.validateURL(url, field: "url")
        let secret = try reader.string("secret", required: false)
        if let secret { try SubscriptionRules.validateSecret(secret) }
        let deliver = try reader.string("deliver", required: false) ?? "new"
        guard deliver == "new" || deliver == "all" else {
            throw InvalidRequest(field: "deliver", message: "must be \"new\" or \"all\"")
        }
        let events = try SubscriptionRules.events(reader) ?? EventType.tenantTypes
        return SubscriptionRequest(name: name, url: url, secret: secret, deliverAll: deliver == "all", events: events)
    }
}

/// A validated `PATCH /subscriptions/{id}` body.
package struct SubscriptionPatch: Sendable {
    var url: String?
    var paused: Bool?
    var events: [EventType]?

    package static func parse(_ body: [UInt8]) throws(InvalidRequest) -> SubscriptionPatch {
        let reader = try ObjectReader.body(body)
        try reader.rejectUnknown(
            allowed: ["url", "paused", "events"],
            readOnly: ["id", "name", "secret", "deliver", "createdAt", "counts", "state", "oldestPendingAt", "lastAttemptAt",
                       "lastSuccessAt", "lastStatus", "lastError"])
        let url = try reader.string("url", required: false)
        if let url { try SubscriptionRules.validateURL(url, field: "url") }
        let paused = try reader.bool("paused")
        let events = try SubscriptionRules.events(reader)
        guard url != nil || paused != nil || events != nil else {
            throw InvalidRequest(field: "body", message: "nothing to change: give url, paused or events")
        }
        return SubscriptionPatch(url: url, paused: paused, events: events)
    }
}

enum SubscriptionRules {
    /// `events`: a non-empty list of known event types, each once.
    static func events(_ reader: ObjectReader) throws(InvalidRequest) -> [EventType]? {
        guard let value = reader.value("events"), !(value.isNull && reader.nullIsAbsent) else { return nil }
        guard case .array(let items) = value else {
            throw InvalidRequest(field: "events", message: "expected an array of event types, got \(value.typeName)")
        }
        guard !items.isEmpty else { throw InvalidRequest(field: "events", message: "must list at least one event type") }
        var types: [EventType] = []
        for (index, item) in items.enumerated() {
            guard let name = item.stringValue, let type = EventType(rawValue: name) else {
                let known = EventType.allCases.map(\.rawValue).joined(separator: ", ")
                throw InvalidRequest(field: "events[\(index)]", message: "unknown event type; known: \(known)")
            }
            if !types.contains(type) { types.append(type) }
        }
        return types
    }

    static func validateName(_ name: String) throws(InvalidRequest) {
        let bytes = Array(name.utf8)
        func allowed(_ c: UInt8, first: Bool) -> Bool {
            (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || (!first && (c == 95 || c == 45))
        }
        guard !bytes.isEmpty, bytes.count <= 63, allowed(bytes[0], first: true),
              bytes.dropFirst().allSatisfy({ allowed($0, first: false) })
        else {
            throw InvalidRequest(field: "name", message: "must match ^[a-z0-9][a-z0-9_-]{0,62}$")
        }
    }

    /// Checked with libcurl's own URL parser, the one that later sends to the
    /// URL: what passes here is what curl connects to. The URL is stored as
    /// given (not curl's normalised form) so an operator reads back what they
    /// wrote; that is safe because the authority as written must be exactly
    /// the user, password, host and port curl reads from it.
    static func validateURL(_ url: String, field: String) throws(InvalidRequest) {
        func fail(_ message: String = "must be an absolute http or https URL") -> InvalidRequest {
            InvalidRequest(field: field, message: message)
        }
        // Backslashes: other readers take them for slashes, curl does not
        // (`http://a:1\@b/` is host b to curl, a to a browser).
        guard url.utf8.count <= 2048, url.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != 92 }) else { throw fail() }
        guard let handle = curl_url() else { throw fail("could not be checked") }
        defer { curl_url_cleanup(handle) }
        let rc = curl_url_set(handle, CURLUPART_URL, url, 0)
        guard rc == CURLUE_OK else { throw fail("is not a URL libcurl accepts: \(String(cString: curl_url_strerror(rc)))") }
        func part(_ which: CURLUPart) -> String? {
            var value: UnsafeMutablePointer<CChar>?
            guard curl_url_get(handle, which, &value, 0) == CURLUE_OK, let value else { return nil }
            defer { curl_free(value) }
            return String(cString: value)
        }
        guard let scheme = part(CURLUPART_SCHEME), scheme == "http" || scheme == "https",
              let host = part(CURLUPART_HOST), !host.isEmpty
        else { throw fail() }
        let port = part(CURLUPART_PORT)
        if let port { guard let number = Int(port), (1...65535).contains(number) else { throw fail("port must be 1-65535") } }
        // Rebuilt from curl's reading, the authority must be the one written:
        // this refuses what curl would read as another host (`http:/h`,
        // `http:///h`, `0x7f.1`, `h%2e`, a zone id) or another port (`:0080`).
        var authority = host + (port.map { ":" + $0 } ?? "")
        if let user = part(CURLUPART_USER) {
            authority = user + (part(CURLUPART_PASSWORD).map { ":" + $0 } ?? "") + "@" + authority
        }
        guard writtenAuthority(url).map(String.init) == authority else {
            throw fail("must name its host and port plainly: libcurl reads the host as \(host) and port \(port ?? "default")")
        }
    }

    /// The text between `://` and the first `/`, `?` or `#`; nil without `://`.
    static func writtenAuthority(_ url: String) -> Substring? {
        guard let start = url.range(of: "://")?.upperBound else { return nil }
        let rest = url[start...]
        return rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
    }

    /// The URL for reading back: a password (which curl sends as Basic auth)
    /// becomes `***`. Works on any stored URL, also ones from before validation used curl.
    static func maskingPassword(_ url: String) -> String {
        guard let authority = writtenAuthority(url), let at = authority.lastIndex(of: "@"),
              let colon = authority[..<at].firstIndex(of: ":")
        else { return url }
        return String(url[..<authority.index(after: colon)]) + "***" + String(url[at...])
    }

    static func validateSecret(_ secret: String) throws(InvalidRequest) {
        // Canonical base64 only (it encodes back to the same text), as openapi.yaml's pattern says:
        // non-zero padding bits would let two different strings stand for one key.
        guard let key = WebhookSigner.key(ofSecret: secret), (24...64).contains(key.count),
              "whsec_" + key.base64EncodedString() == secret
        else {
            throw InvalidRequest(field: "secret", message: "must be whsec_ followed by base64 of 24 to 64 random bytes")
        }
    }

    static func generateSecret() -> String {
        "whsec_" + Data(RandomToken.bytes(32)).base64EncodedString()
    }
}
