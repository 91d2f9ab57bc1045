import Essentials

/// A validated `POST /tenants` body.
package struct TenantRequest: Sendable {
    package var domain: String
    /// The admin object as given (only the known fields).
    package var admin: JSON
    var plan: String?
    var attributes: JSON
    /// Key-order-independent form of the whole request, for idempotency.
    package var canonical: String

    package static func parse(_ body: [UInt8]) throws(InvalidRequest) -> TenantRequest {
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
struct TenantPatch: Sendable {
    var admin: JSON?
    /// Set when `plan` was given.
    var plan: String??
    var attributes: JSON?

    static func parse(_ body: [UInt8]) throws(InvalidRequest) -> TenantPatch {
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
