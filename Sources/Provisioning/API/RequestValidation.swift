import Essentials

/// Input that breaks a rule: the field's dotted path and what is wrong.
package struct InvalidRequest: Error, Sendable, CustomStringConvertible {
    let field: String
    let message: String
    package var description: String { "\(field): \(message)" }
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
