/// A validated `POST /subscriptions/{id}/replay` body.
struct ReplayRequest: Sendable {
    /// Unix ms.
    var since: Int64

    static func parse(_ body: [UInt8]) throws(InvalidRequest) -> ReplayRequest {
        let reader = try ObjectReader.body(body)
        try reader.rejectUnknown(allowed: ["since"])
        let text = try reader.string("since", required: true)!
        guard let since = RFC3339.parse(text) else {
            throw InvalidRequest(field: "since", message: "must be an RFC 3339 time, like 2026-11-29T16:00:00Z")
        }
        return ReplayRequest(since: since)
    }
}
