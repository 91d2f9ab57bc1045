/// An incremental HTTP/1.1 request parser (RFC 9112). It is fed the
/// connection's buffer and consumes complete requests from it, keeping its
/// place between calls so a slowly arriving head is not scanned again.
public struct HTTPParser {
    public enum Outcome {
        case incomplete
        case request(HTTPRequest)
        /// A malformed or refused request: answer with this status and close.
        case failure(status: Int, detail: String)
    }

    private enum Framing {
        case none
        case length(Int)
        case chunked
    }

    private enum ChunkPhase {
        case size
        case data(remaining: Int)
        case dataEnd
        case trailers(bytes: Int)
    }

    private enum State {
        case head(scannedUpTo: Int)
        case body(HTTPRequest, remaining: Int)
        case chunked(HTTPRequest, ChunkPhase)
    }

    let limits: HTTPLimits
    private var state: State = .head(scannedUpTo: 0)
    /// The body being read. It lives outside `state` so appending to it never
    /// copies it: a copy per chunk made a body of tiny chunks quadratic.
    private var body: [UInt8] = []
    /// Set when a head with `Expect: 100-continue` arrived and its body has not.
    private(set) var wantsContinue = false

    public init(limits: HTTPLimits) { self.limits = limits }

    /// True while a request has started arriving (a head or body is partial).
    func isMidRequest(bufferedBytes: Int) -> Bool {
        if case .head = state { return bufferedBytes > 0 }
        return true
    }

    /// True once a head is complete and the body is still arriving.
    var isReadingBody: Bool {
        if case .head = state { return false }
        return true
    }

    mutating func continueSent() { wantsContinue = false }

    /// Parses from `buffer[index...]`, advancing `index` past what it consumed.
    public mutating func parse(_ buffer: [UInt8], index: inout Int) -> Outcome {
        while true {
            switch state {
            case .head(let scanned):
                // RFC 9112 §2.2: ignore empty lines before a request line (some
                // clients send a CRLF after a body).
                if buffer.count - index >= 2, buffer[index] == 13, buffer[index + 1] == 10 {
                    index += 2
                    state = .head(scannedUpTo: max(0, scanned - 2))
                    continue
                }
                let available = buffer.count - index
                let headEnd: (contentEnd: Int, end: Int)
                switch HTTPParser.scanHead(buffer, from: index, scanFrom: index + scanned) {
                case .end(let contentEnd, let end): headEnd = (contentEnd, end)
                case .bareLF:
                    // Answered at once: waiting for a CRLF CRLF that such a client never sends would
                    // leave it to the head timeout. Not read as a line end either, so that no
                    // proxy in front can see other header lines than we do.
                    return .failure(status: 400, detail: "bare LF in request head: lines must end with CRLF")
                case .incomplete:
                    if available > limits.maxHeadBytes {
                        return .failure(status: 431, detail: "request head exceeds \(limits.maxHeadBytes) bytes")
                    }
                    state = .head(scannedUpTo: available)
                    return .incomplete
                }
                if headEnd.end - index > limits.maxHeadBytes {
                    return .failure(status: 431, detail: "request head exceeds \(limits.maxHeadBytes) bytes")
                }
                let head: (HTTPRequest, Framing)
                switch parseHead(buffer[index..<headEnd.contentEnd]) {
                case .success(let parsed): head = parsed
                case .failure(let failure): return .failure(status: failure.status, detail: failure.detail)
                }
                index = headEnd.end
                let (request, framing) = head
                switch framing {
                case .none:
                    state = .head(scannedUpTo: 0)
                    return .request(request)
                case .length(let length):
                    if length > limits.maxBodyBytes {
                        return .failure(status: 413, detail: "body of \(length) bytes exceeds the limit of \(limits.maxBodyBytes)")
                    }
                    wantsContinue = request.headers.containsToken("Expect", "100-continue") && request.version == .http1_1
                    body = []
                    body.reserveCapacity(length)
                    state = .body(request, remaining: length)
                case .chunked:
                    wantsContinue = request.headers.containsToken("Expect", "100-continue") && request.version == .http1_1
                    body = []
                    state = .chunked(request, .size)
                }

            case .body(var request, let remaining):
                let take = min(remaining, buffer.count - index)
                body.append(contentsOf: buffer[index..<(index + take)])
                index += take
                if take == remaining {
                    state = .head(scannedUpTo: 0)
                    wantsContinue = false
                    request.body = body
                    body = []
                    return .request(request)
                }
                state = .body(request, remaining: remaining - take)
                return .incomplete

            case .chunked(var request, let phase):
                switch phase {
                case .size:
                    guard let lineEnd = HTTPParser.findCRLF(buffer, from: index) else {
                        if buffer.count - index > 1024 { return .failure(status: 400, detail: "chunk size line too long") }
                        state = .chunked(request, .size)
                        return .incomplete
                    }
                    guard let size = HTTPParser.parseChunkSize(buffer[index..<lineEnd]) else {
                        return .failure(status: 400, detail: "invalid chunk size")
                    }
                    index = lineEnd + 2
                    if size == 0 {
                        state = .chunked(request, .trailers(bytes: 0))
                    } else {
                        if body.count + size > limits.maxBodyBytes {
                            return .failure(status: 413, detail: "body exceeds the limit of \(limits.maxBodyBytes) bytes")
                        }
                        state = .chunked(request, .data(remaining: size))
                    }
                case .data(let remaining):
                    let take = min(remaining, buffer.count - index)
                    body.append(contentsOf: buffer[index..<(index + take)])
                    index += take
                    state = .chunked(request, take == remaining ? .dataEnd : .data(remaining: remaining - take))
                    if take < remaining { return .incomplete }
                case .dataEnd:
                    guard buffer.count - index >= 2 else { state = .chunked(request, .dataEnd); return .incomplete }
                    guard buffer[index] == 13, buffer[index + 1] == 10 else {
                        return .failure(status: 400, detail: "chunk data not followed by CRLF")
                    }
                    index += 2
                    state = .chunked(request, .size)
                case .trailers(let consumed):
                    // Trailer fields are read and dropped; they count toward the head limit.
                    guard let lineEnd = HTTPParser.findCRLF(buffer, from: index) else {
                        if consumed + buffer.count - index > limits.maxHeadBytes {
                            return .failure(status: 431, detail: "trailer section too large")
                        }
                        state = .chunked(request, .trailers(bytes: consumed))
                        return .incomplete
                    }
                    let lineLength = lineEnd - index
                    index = lineEnd + 2
                    if lineLength == 0 {
                        state = .head(scannedUpTo: 0)
                        wantsContinue = false
                        request.headers.remove("Transfer-Encoding")
                        request.headers.set("Content-Length", String(body.count))
                        request.body = body
                        body = []
                        return .request(request)
                    }
                    if consumed + lineLength > limits.maxHeadBytes {
                        return .failure(status: 431, detail: "trailer section too large")
                    }
                    state = .chunked(request, .trailers(bytes: consumed + lineLength + 2))
                }
            }
        }
    }

    // MARK: Head

    private struct HeadFailure: Error {
        let status: Int
        let detail: String
    }

    private func parseHead(_ head: ArraySlice<UInt8>) -> Result<(HTTPRequest, Framing), HeadFailure> {
        func fail(_ status: Int, _ detail: String) -> Result<(HTTPRequest, Framing), HeadFailure> {
            .failure(HeadFailure(status: status, detail: detail))
        }
        var lines = HTTPParser.splitLines(head)
        guard !lines.isEmpty else { return fail(400, "empty request") }
        let requestLine = lines.removeFirst()

        // request-line = method SP request-target SP HTTP-version
        let parts = requestLine.split(separator: 32, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return fail(400, "malformed request line") }
        let methodBytes = parts[0], targetBytes = parts[1], versionBytes = parts[2]
        guard !methodBytes.isEmpty, methodBytes.allSatisfy(HTTPParser.isTokenChar) else {
            return fail(400, "invalid method")
        }
        guard !targetBytes.isEmpty, targetBytes.allSatisfy({ $0 > 32 && $0 < 127 }) else {
            return fail(400, "invalid request target")
        }
        let version: HTTPVersion
        switch String(decoding: versionBytes, as: UTF8.self) {
        case "HTTP/1.1": version = .http1_1
        case "HTTP/1.0": version = .http1_0
        default:
            let text = String(decoding: versionBytes, as: UTF8.self)
            if text.hasPrefix("HTTP/"), text.count == 8 { return fail(505, "HTTP version \(text.dropFirst(5)) is not supported") }
            return fail(400, "malformed HTTP version")
        }

        guard lines.count <= limits.maxHeaderCount else {
            return fail(431, "more than \(limits.maxHeaderCount) header fields")
        }
        var headers = HTTPHeaders()
        for line in lines {
            if let first = line.first, first == 32 || first == 9 {
                return fail(400, "obsolete line folding in header")
            }
            guard let colon = line.firstIndex(of: 58) else { return fail(400, "header line without a colon") }
            let name = line[line.startIndex..<colon]
            guard !name.isEmpty, name.allSatisfy(HTTPParser.isTokenChar) else {
                return fail(400, "invalid header name")
            }
            var value = line[(colon + 1)...]
            while let f = value.first, f == 32 || f == 9 { value.removeFirst() }
            while let l = value.last, l == 32 || l == 9 { value.removeLast() }
            guard value.allSatisfy({ $0 == 9 || ($0 >= 32 && $0 != 127) }) else {
                return fail(400, "invalid character in header \(String(decoding: name, as: UTF8.self))")
            }
            headers.add(String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self))
        }

        if version == .http1_1 {
            let hosts = headers.values("Host")
            guard hosts.count == 1 else { return fail(400, hosts.isEmpty ? "missing Host header" : "more than one Host header") }
        }

        // Message framing (RFC 9112 §6): refuse anything ambiguous, the stuff of request smuggling.
        let framing: Framing
        let transferEncodings = headers.values("Transfer-Encoding")
        let contentLengths = headers.values("Content-Length")
        if !transferEncodings.isEmpty {
            guard contentLengths.isEmpty else { return fail(400, "both Content-Length and Transfer-Encoding") }
            guard version == .http1_1 else { return fail(400, "Transfer-Encoding in an HTTP/1.0 request") }
            let codings = transferEncodings.flatMap { $0.split(separator: ",").map { $0.trimmingWhitespace().lowercased() } }
            guard codings == ["chunked"] else {
                // chunked must come last and once (RFC 9112 §6.3); any other coding is one we lack.
                if codings.dropLast().contains("chunked") || codings.contains("") { return fail(400, "invalid Transfer-Encoding") }
                let unknown = codings.filter { $0 != "chunked" }
                return fail(501, "transfer coding \(unknown.joined(separator: ", ")) is not supported")
            }
            framing = .chunked
        } else if !contentLengths.isEmpty {
            let values = contentLengths.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingWhitespace() } }
            guard let first = values.first, values.allSatisfy({ $0 == first }),
                  !first.isEmpty, first.count <= 18, first.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                  let length = Int(first)
            else { return fail(400, "invalid Content-Length") }
            framing = length == 0 ? .none : .length(length)
        } else {
            framing = .none
        }

        guard let (segments, query) = HTTPParser.parseTarget(targetBytes) else {
            return fail(400, "invalid request target")
        }
        let request = HTTPRequest(
            method: String(decoding: methodBytes, as: UTF8.self),
            target: String(decoding: targetBytes, as: UTF8.self),
            pathSegments: segments, query: query, version: version, headers: headers)
        return .success((request, framing))
    }

    // MARK: Helpers

    enum HeadScan: Equatable {
        /// Where the head's content ends (before the final CRLF pair) and where the next bytes begin.
        case end(contentEnd: Int, end: Int)
        /// An LF without a CR before it.
        case bareLF
        case incomplete
    }

    /// Looks for the empty line ending a head from `scanFrom` on (the bytes
    /// before it were looked at by an earlier call), stopping at a bare LF.
    static func scanHead(_ buffer: [UInt8], from start: Int, scanFrom: Int) -> HeadScan {
        var i = max(start, scanFrom)
        while i < buffer.count {
            if buffer[i] == 10 {
                guard i > start, buffer[i - 1] == 13 else { return .bareLF }
                if i - 3 >= start, buffer[i - 3] == 13, buffer[i - 2] == 10 { return .end(contentEnd: i - 3, end: i + 1) }
            }
            i += 1
        }
        return .incomplete
    }

    static func findCRLF(_ buffer: [UInt8], from start: Int) -> Int? {
        var i = start
        while i + 1 < buffer.count {
            if buffer[i] == 13, buffer[i + 1] == 10 { return i }
            i += 1
        }
        return nil
    }

    /// Splits a head into lines at CRLF. A bare CR inside a line is kept in
    /// it and later refused as an invalid character (a bare LF never gets here).
    static func splitLines(_ head: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        var lines: [ArraySlice<UInt8>] = []
        var lineStart = head.startIndex
        var i = head.startIndex
        while i + 1 < head.endIndex {
            if head[i] == 13, head[i + 1] == 10 {
                lines.append(head[lineStart..<i])
                i += 2
                lineStart = i
            } else {
                i += 1
            }
        }
        lines.append(head[lineStart..<head.endIndex])
        return lines
    }

    static func parseChunkSize(_ line: ArraySlice<UInt8>) -> Int? {
        var size = 0
        var digits = 0
        for (offset, byte) in zip(line.indices, line) {
            let digit: Int
            switch byte {
            case 48...57: digit = Int(byte - 48)
            case 65...70: digit = Int(byte - 55)
            case 97...102: digit = Int(byte - 87)
            case UInt8(ascii: ";"), 32, 9:
                // Only whitespace may come before the (ignored) chunk extensions: "5 5" is no size.
                let rest = line[offset...].drop { $0 == 32 || $0 == 9 }
                return digits > 0 && (rest.isEmpty || rest.first == UInt8(ascii: ";")) ? size : nil
            default: return nil
            }
            digits += 1
            guard digits <= 15 else { return nil }
            size = size * 16 + digit
        }
        return digits > 0 ? size : nil
    }

    static func isTokenChar(_ c: UInt8) -> Bool {
        switch c {
        case 48...57, 65...90, 97...122: return true
        default: return "!#$%&'*+-.^_`|~".utf8.contains(c)
        }
    }

    /// Splits an origin-form (or absolute-form) target into decoded path
    /// segments and query parameters; nil if its encoding is invalid.
    static func parseTarget(_ target: ArraySlice<UInt8>) -> (segments: [String], query: [(name: String, value: String)])? {
        var bytes = target
        if bytes.first != UInt8(ascii: "/") {
            // absolute-form: skip scheme and authority.
            let text = String(decoding: bytes, as: UTF8.self).lowercased()
            guard text.hasPrefix("http://") || text.hasPrefix("https://") else {
                if bytes.elementsEqual("*".utf8) { return ([], []) }
                return nil
            }
            let afterScheme = bytes.index(bytes.startIndex, offsetBy: text.hasPrefix("http://") ? 7 : 8)
            bytes = bytes[afterScheme...]
            guard let slash = bytes.firstIndex(of: UInt8(ascii: "/")) else { return ([], []) }
            bytes = bytes[slash...]
        }
        if let hash = bytes.firstIndex(of: UInt8(ascii: "#")) { bytes = bytes[..<hash] }
        let pathPart: ArraySlice<UInt8>
        var queryPart: ArraySlice<UInt8> = []
        if let question = bytes.firstIndex(of: UInt8(ascii: "?")) {
            pathPart = bytes[..<question]
            queryPart = bytes[(question + 1)...]
        } else {
            pathPart = bytes
        }
        var segments: [String] = []
        let afterSlash = pathPart.dropFirst()
        if !afterSlash.isEmpty {
            for raw in afterSlash.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
                guard let segment = percentDecode(raw, plusIsSpace: false) else { return nil }
                segments.append(segment)
            }
        }
        var query: [(name: String, value: String)] = []
        for pair in queryPart.split(separator: UInt8(ascii: "&")) {
            let name: ArraySlice<UInt8>, value: ArraySlice<UInt8>
            if let equals = pair.firstIndex(of: UInt8(ascii: "=")) {
                name = pair[..<equals]
                value = pair[(equals + 1)...]
            } else {
                name = pair
                value = []
            }
            guard let n = percentDecode(name, plusIsSpace: true), let v = percentDecode(value, plusIsSpace: true) else { return nil }
            query.append((n, v))
        }
        return (segments, query)
    }

    static func percentDecode(_ bytes: ArraySlice<UInt8>, plusIsSpace: Bool) -> String? {
        if !bytes.contains(UInt8(ascii: "%")) && !(plusIsSpace && bytes.contains(UInt8(ascii: "+"))) {
            return String(validating: bytes, as: UTF8.self)
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let c = bytes[i]
            if c == UInt8(ascii: "%") {
                guard i + 2 < bytes.endIndex, let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2]) else { return nil }
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(plusIsSpace && c == UInt8(ascii: "+") ? 32 : c)
                i += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: return c - 48
        case 65...70: return c - 55
        case 97...102: return c - 87
        default: return nil
        }
    }
}
