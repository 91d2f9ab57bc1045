import CCurl
import Essentials
import Foundation

/// Input that breaks a rule: the field's dotted path and what is wrong.
public struct InvalidRequest: Error, Sendable, CustomStringConvertible {
    public let field: String
    public let message: String
    public var description: String { "\(field): \(message)" }
}

/// Reads a JSON object body field by field, naming the field in every error.
struct ObjectReader {
    let members: [(String, JSON)]
    let path: String
    /// Creation bodies: an optional field given as null is the same as one
    /// left out (clients often serialise unset optionals as null). PATCH
    /// keeps null an error: there it could be read as "remove".
    var nullIsAbsent = false

    static func body(_ bytes: [UInt8]) throws(InvalidRequest) -> ObjectReader {
        let value: JSON
        do {
            value = try JSON.parse(bytes)
        } catch {
            throw InvalidRequest(field: "body", message: "malformed JSON: \(error)")
        }
        guard let members = value.objectMembers else {
            throw InvalidRequest(field: "body", message: "expected a JSON object, got \(value.typeName)")
        }
        return ObjectReader(members: members, path: "")
    }

    func fieldPath(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

    func value(_ name: String) -> JSON? { members.first { $0.0 == name }?.1 }

    /// The optional field's value; nil when left out (or null, if that counts as left out).
    private func optional(_ name: String, required: Bool) throws(InvalidRequest) -> JSON? {
        guard let value = value(name), !(value.isNull && nullIsAbsent && !required) else {
            if required { throw InvalidRequest(field: fieldPath(name), message: "is required") }
            return nil
        }
        return value
    }

    func rejectUnknown(allowed: Set<String>, readOnly: Set<String> = []) throws(InvalidRequest) {
        for (name, _) in members where !allowed.contains(name) {
            throw InvalidRequest(field: fieldPath(name), message: readOnly.contains(name) ? "is read-only" : "unknown field")
        }
    }

    func string(_ name: String, required: Bool) throws(InvalidRequest) -> String? {
        guard let value = try optional(name, required: required) else { return nil }
        guard let string = value.stringValue else {
            throw InvalidRequest(field: fieldPath(name), message: "expected a string, got \(value.typeName)")
        }
        return string
    }

    /// A string of at most 254 characters without control characters (C0,
    /// DEL, C1): these fields end up in e-mails, logs and other systems'
    /// headers, where a CR LF could start a line of its own.
    func shortText(_ name: String, required: Bool) throws(InvalidRequest) -> String? {
        guard let text = try string(name, required: required) else { return nil }
        guard text.unicodeScalars.count <= 254 else {
            throw InvalidRequest(field: fieldPath(name), message: "longer than 254 characters")
        }
        guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) else {
            throw InvalidRequest(field: fieldPath(name), message: "must not contain control characters")
        }
        return text
    }

    func object(_ name: String, required: Bool) throws(InvalidRequest) -> ObjectReader? {
        guard let value = try optional(name, required: required) else { return nil }
        guard let members = value.objectMembers else {
            throw InvalidRequest(field: fieldPath(name), message: "expected an object, got \(value.typeName)")
        }
        return ObjectReader(members: members, path: fieldPath(name), nullIsAbsent: nullIsAbsent)
    }

    func bool(_ name: String) throws(InvalidRequest) -> Bool? {
        guard let value = value(name) else { return nil }
        guard let bool = value.boolValue else {
            throw InvalidRequest(field: fieldPath(name), message: "expected a boolean, got \(value.typeName)")
        }
        return bool
    }
}

/// A validated `POST /tenants` body.
public struct TenantRequest: Sendable {
    public var domain: String
    /// The admin object as given (only the known fields).
    public var admin: JSON
    public var plan: String?
    public var attributes: JSON
    /// Key-order-independent form of the whole request, for idempotency.
    public var canonical: String

    public static func parse(_ body: [UInt8]) throws(InvalidRequest) -> TenantRequest {
        var reader = try ObjectReader.body(body)
        reader.nullIsAbsent = true
        try reader.rejectUnknown(allowed: ["domain", "admin", "plan", "attributes"])
        let domain = DomainName.lowercased(try reader.string("domain", required: true)!)
        try DomainName.validate(domain)

        let admin = try TenantRequest.admin(try reader.object("admin", required: true)!)
        let plan = try reader.shortText("plan", required: false)
        let attributes = try reader.object("attributes", required: false).map { JSON.object($0.members) } ?? .object([])

        let canonical = JSON.object([
            ("domain", .string(domain)), ("admin", admin),
            ("plan", .optional(plan)), ("attributes", attributes),
        ]).canonical.text
        return TenantRequest(domain: domain, admin: admin, plan: plan, attributes: attributes, canonical: canonical)
    }

    /// The admin object, the same at creation and in a PATCH (only the known fields).
    static func admin(_ reader: ObjectReader) throws(InvalidRequest) -> JSON {
        try reader.rejectUnknown(allowed: ["username", "email", "firstName", "lastName"])
        let username = try reader.shortText("username", required: true)!
        guard !username.isEmpty else { throw InvalidRequest(field: "admin.username", message: "must not be empty") }
        let email = try reader.shortText("email", required: true)!
        guard email.contains("@") else { throw InvalidRequest(field: "admin.email", message: "must contain @") }
        var admin: [(String, JSON)] = [("username", .string(username)), ("email", .string(email))]
        if let first = try reader.shortText("firstName", required: false) { admin.append(("firstName", .string(first))) }
        if let last = try reader.shortText("lastName", required: false) { admin.append(("lastName", .string(last))) }
        return .object(admin)
    }
}

/// A validated `PATCH /tenants/{id}` body: each field given replaces the
/// tenant's whole value; null is refused (it could be read as "remove").
public struct TenantPatch: Sendable {
    public var admin: JSON?
    /// Set when `plan` was given.
    public var plan: String??
    public var attributes: JSON?

    public static func parse(_ body: [UInt8]) throws(InvalidRequest) -> TenantPatch {
        let reader = try ObjectReader.body(body)
        try reader.rejectUnknown(
            allowed: ["admin", "plan", "attributes"],
            readOnly: ["id", "domain", "active", "version", "createdAt", "updatedAt", "deletedAt", "status", "deliveries"])
        var patch = TenantPatch()
        if let admin = try reader.object("admin", required: false) { patch.admin = try TenantRequest.admin(admin) }
        if let plan = try reader.shortText("plan", required: false) { patch.plan = .some(plan) }
        patch.attributes = try reader.object("attributes", required: false).map { JSON.object($0.members) }
        return patch
    }

    func applied(to fields: TenantFields) -> TenantFields {
        TenantFields(admin: admin ?? fields.admin, plan: plan ?? fields.plan, attributes: attributes ?? fields.attributes)
    }
}

enum DomainName {
    /// ASCII letters only: Unicode lowercasing would turn some non-DNS
    /// characters into ASCII ones (KELVIN SIGN becomes "k") and let them pass.
    static func lowercased(_ domain: String) -> String {
        String(decoding: domain.utf8.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }, as: UTF8.self)
    }

    /// Letters, digits and hyphens in dot-separated labels of 1-63 characters
    /// that neither start nor end with a hyphen; two labels at least, 253 characters at most;
    /// the last label not all digits (`127.0.0.1` is an address, no domain).
    static func validate(_ domain: String) throws(InvalidRequest) {
        func fail(_ message: String) -> InvalidRequest { InvalidRequest(field: "domain", message: message) }
        guard !domain.isEmpty else { throw fail("must not be empty") }
        guard domain.utf8.count <= 253 else { throw fail("longer than 253 characters") }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2 else { throw fail("needs at least two labels, like example.com") }
        for label in labels {
            guard !label.isEmpty else { throw fail("has an empty label") }
            guard label.utf8.count <= 63 else { throw fail("has a label longer than 63 characters") }
            guard label.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 }) else {
                throw fail("may contain only letters, digits, hyphens and dots")
            }
            guard label.first != "-", label.last != "-" else { throw fail("has a label starting or ending with a hyphen") }
        }
        guard !labels.last!.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
            throw fail("last label is all digits: an IP address is no domain")
        }
    }
}

/// A validated `POST /subscriptions` body.
public struct SubscriptionRequest: Sendable {
    public var name: String
    public var url: String
    public var secret: String?
    public var deliverAll: Bool
    public var events: [EventType]

    public static func parse(_ body: [UInt8]) throws(InvalidRequest) -> SubscriptionRequest {
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
public struct SubscriptionPatch: Sendable {
    public var url: String?
    public var paused: Bool?
    public var events: [EventType]?

    public static func parse(_ body: [UInt8]) throws(InvalidRequest) -> SubscriptionPatch {
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
