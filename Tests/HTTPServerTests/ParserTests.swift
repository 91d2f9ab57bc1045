import XCTest
@testable import HTTPServer

/// What feeding some bytes to an `HTTPParser` produced.
struct ParseRun {
    var requests: [HTTPRequest] = []
    var failure: (status: Int, detail: String)?
    /// How far the parser consumed the input when it stopped.
    var consumed = 0
}

/// Feeds the whole input at once, taking requests until the parser wants more.
func parseWhole(_ bytes: [UInt8], limits: HTTPLimits = HTTPLimits()) -> ParseRun {
    var parser = HTTPParser(limits: limits)
    var run = ParseRun()
    var index = 0
    for _ in 0...(bytes.count + 1) {
        switch parser.parse(bytes, index: &index) {
        case .incomplete:
            run.consumed = index
            return run
        case .request(let request):
            run.requests.append(request)
        case .failure(let status, let detail):
            run.failure = (status, detail)
            run.consumed = index
            return run
        }
    }
    XCTFail("parser did not stop")
    return run
}

/// Feeds the input in pieces (one byte at a time by default), the way a
/// slow network delivers it.
func parseInPieces(_ bytes: [UInt8], pieceSize: Int = 1, limits: HTTPLimits = HTTPLimits()) -> ParseRun {
    var parser = HTTPParser(limits: limits)
    var run = ParseRun()
    var buffer: [UInt8] = []
    var index = 0
    var offset = 0
    while offset < bytes.count {
        let end = min(bytes.count, offset + pieceSize)
        buffer.append(contentsOf: bytes[offset..<end])
        offset = end
        pieces: for _ in 0...(bytes.count + 1) {
            switch parser.parse(buffer, index: &index) {
            case .incomplete: break pieces
            case .request(let request): run.requests.append(request)
            case .failure(let status, let detail):
                run.failure = (status, detail)
                run.consumed = index
                return run
            }
        }
    }
    run.consumed = index
    return run
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

final class ParserTests: XCTestCase {
    // MARK: Hostile and malformed input

    struct BadCase {
        let name: String
        let input: [UInt8]
        let status: Int
        var limits = HTTPLimits()
    }

    static var smallBodyLimits: HTTPLimits {
        var limits = HTTPLimits()
        limits.maxBodyBytes = 10
        return limits
    }

    static var fewHeadersLimits: HTTPLimits {
        var limits = HTTPLimits()
        limits.maxHeaderCount = 5
        return limits
    }

    static let badCases: [BadCase] = {
        func head(_ lines: String...) -> [UInt8] { bytes(lines.joined(separator: "\r\n") + "\r\n\r\n") }
        var cases: [BadCase] = [
            // Request line
            BadCase(name: "no version", input: head("GET /", "Host: a"), status: 400),
            BadCase(name: "two spaces", input: head("GET  / HTTP/1.1", "Host: a"), status: 400),
            BadCase(name: "four parts", input: head("GET / HTTP/1.1 x", "Host: a"), status: 400),
            BadCase(name: "leading space", input: head(" GET / HTTP/1.1", "Host: a"), status: 400),
            BadCase(name: "bad method char", input: head("G@T / HTTP/1.1", "Host: a"), status: 400),
            BadCase(name: "method with slash", input: head("GE/T / HTTP/1.1", "Host: a"), status: 400),
            BadCase(name: "lowercase protocol", input: head("GET / http/1.1", "Host: a"), status: 400),
            BadCase(name: "garbage version", input: head("GET / HTTX/1.1", "Host: a"), status: 400),
            BadCase(name: "short version", input: head("GET / HTTP/1", "Host: a"), status: 400),
            BadCase(name: "tab separator", input: head("GET\t/ HTTP/1.1", "Host: a"), status: 400),
            BadCase(name: "only garbage", input: head("\u{1}\u{2}\u{3}"), status: 400),
            BadCase(name: "NUL in target", input: bytes("GET /a\u{0}b HTTP/1.1\r\nHost: a\r\n\r\n"), status: 400),
            BadCase(name: "non-ASCII target", input: bytes("GET /caf") + [0xC3, 0xA9] + bytes(" HTTP/1.1\r\nHost: a\r\n\r\n"), status: 400),
            BadCase(name: "target not origin-form", input: head("GET tenants HTTP/1.1", "Host: a"), status: 400),
            BadCase(name: "HTTP/2.0", input: head("GET / HTTP/2.0", "Host: a"), status: 505),
            BadCase(name: "HTTP/3.0", input: head("GET / HTTP/3.0", "Host: a"), status: 505),
            BadCase(name: "HTTP/0.9", input: head("GET / HTTP/0.9", "Host: a"), status: 505),
            // Header fields
            BadCase(name: "header without colon", input: head("GET / HTTP/1.1", "Host: a", "X-Thing"), status: 400),
            BadCase(name: "space in header name", input: head("GET / HTTP/1.1", "Host: a", "Bad Name: x"), status: 400),
            BadCase(name: "space before colon", input: head("GET / HTTP/1.1", "Host : a"), status: 400),
            BadCase(name: "empty header name", input: head("GET / HTTP/1.1", "Host: a", ": x"), status: 400),
            BadCase(name: "separator in header name", input: head("GET / HTTP/1.1", "Host: a", "X(y): x"), status: 400),
            BadCase(name: "control char in name", input: head("GET / HTTP/1.1", "Host: a", "X\u{1}Y: x"), status: 400),
            BadCase(name: "control char in value", input: head("GET / HTTP/1.1", "Host: a", "X-A: a\u{1}b"), status: 400),
            BadCase(name: "NUL in value", input: head("GET / HTTP/1.1", "Host: a", "X-A: a\u{0}b"), status: 400),
            BadCase(name: "DEL in value", input: head("GET / HTTP/1.1", "Host: a", "X-A: a\u{7F}"), status: 400),
            BadCase(name: "bare CR in value", input: head("GET / HTTP/1.1", "Host: a", "X-A: a\rb"), status: 400),
            BadCase(name: "bare LF in value", input: head("GET / HTTP/1.1", "Host: a", "X-A: a\nb"), status: 400),
            // Bare LF line ends: refused as soon as seen (no CRLF CRLF ever comes to end such a head).
            BadCase(name: "bare LF line ends", input: bytes("GET / HTTP/1.1\nHost: a\n\n"), status: 400),
            BadCase(name: "bare LF ending the head", input: bytes("GET / HTTP/1.1\r\nHost: a\n\n"), status: 400),
            BadCase(name: "bare LF after the request line", input: bytes("GET / HTTP/1.1\nHost: a\r\n"), status: 400),
            BadCase(name: "bare LF before the request line", input: bytes("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), status: 400),
            BadCase(name: "bare LF after a leading CRLF", input: bytes("\r\n\nGET / HTTP/1.1\r\n"), status: 400),
            BadCase(name: "obs-fold with spaces", input: head("GET / HTTP/1.1", "Host: a", "X-A: a", "  b"), status: 400),
            BadCase(name: "obs-fold with tab", input: head("GET / HTTP/1.1", "Host: a", "X-A: a", "\tb"), status: 400),
            BadCase(name: "fold before first header", input: head("GET / HTTP/1.1", " Host: a"), status: 400),
            // Host
            BadCase(name: "missing Host in HTTP/1.1", input: head("GET / HTTP/1.1", "Accept: */*"), status: 400),
            BadCase(name: "two Host headers", input: head("GET / HTTP/1.1", "Host: a", "Host: b"), status: 400),
            // Framing
            BadCase(name: "Content-Length and Transfer-Encoding",
                    input: head("POST / HTTP/1.1", "Host: a", "Content-Length: 5", "Transfer-Encoding: chunked"), status: 400),
            BadCase(name: "Transfer-Encoding and Content-Length",
                    input: head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked", "Content-Length: 0"), status: 400),
            BadCase(name: "Content-Length list 1, 2", input: head("POST / HTTP/1.1", "Host: a", "Content-Length: 1, 2"), status: 400),
            BadCase(name: "Content-Length -1", input: head("POST / HTTP/1.1", "Host: a", "Content-Length: -1"), status: 400),
            BadCase(name: "Content-Length +1", input: head("POST / HTTP/1.1", "Host: a", "Content-Length: +1"), status: 400),
            BadCase(name: "Content-Length abc", input: head("POST / HTTP/1.1", "Host: a", "Content-Length: abc"), status: 400),
            BadCase(name: "Content-Length hex", input: head("POST / HTTP/1.1", "Host: a", "Content-Length: 0x10"), status: 400),
            BadCase(name: "Content-Length empty", input: head("POST / HTTP/1.1", "Host: a", "Content-Length:"), status: 400),
            BadCase(name: "Content-Length 1 2", input: head("POST / HTTP/1.1", "Host: a", "Content-Length: 1 2"), status: 400),
            BadCase(name: "Content-Length trailing comma", input: head("POST / HTTP/1.1", "Host: a", "Content-Length: 1,"), status: 400),
            BadCase(name: "Content-Length overflow",
                    input: head("POST / HTTP/1.1", "Host: a", "Content-Length: 99999999999999999999999"), status: 400),
            BadCase(name: "two different Content-Length headers",
                    input: head("POST / HTTP/1.1", "Host: a", "Content-Length: 1", "Content-Length: 2"), status: 400),
            BadCase(name: "unknown transfer coding gzip", input: head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: gzip"), status: 501),
            BadCase(name: "unknown coding before chunked",
                    input: head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: gzip, chunked"), status: 501),
            BadCase(name: "chunked not last", input: head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked, gzip"), status: 400),
            BadCase(name: "chunked twice", input: head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked, chunked"), status: 400),
            BadCase(name: "Transfer-Encoding in HTTP/1.0", input: head("POST / HTTP/1.0", "Transfer-Encoding: chunked"), status: 400),
            // Target encoding
            BadCase(name: "bad percent escape", input: head("GET /a%zz HTTP/1.1", "Host: a"), status: 400),
            BadCase(name: "truncated percent escape", input: head("GET /a%4 HTTP/1.1", "Host: a"), status: 400),
            BadCase(name: "percent at the end", input: head("GET /a% HTTP/1.1", "Host: a"), status: 400),
            BadCase(name: "percent-encoded invalid UTF-8", input: head("GET /%C3%28 HTTP/1.1", "Host: a"), status: 400),
            BadCase(name: "bad percent escape in query", input: head("GET /a?x=%g1 HTTP/1.1", "Host: a"), status: 400),
            // Chunked bodies
            BadCase(name: "chunk size not hex",
                    input: head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked") + bytes("zz\r\nhello\r\n0\r\n\r\n"), status: 400),
            BadCase(name: "chunk size empty",
                    input: head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked") + bytes("\r\nhello\r\n0\r\n\r\n"), status: 400),
            BadCase(name: "chunk size negative",
                    input: head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked") + bytes("-5\r\nhello\r\n0\r\n\r\n"), status: 400),
            BadCase(name: "chunk size 0x prefix",
                    input: head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked") + bytes("0x5\r\nhello\r\n0\r\n\r\n"), status: 400),
            BadCase(name: "chunk size with junk after a space",
                    input: head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked") + bytes("5 5\r\nhello\r\n0\r\n\r\n"), status: 400),
            BadCase(name: "chunk extension without size",
                    input: head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked") + bytes(";a=b\r\nhello\r\n0\r\n\r\n"), status: 400),
            BadCase(name: "chunk size too many digits",
                    input: head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked") + bytes("10000000000000000\r\nx\r\n"), status: 400),
            BadCase(name: "chunk data too long",
                    input: head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked") + bytes("3\r\nhello\r\n0\r\n\r\n"), status: 400),
            BadCase(name: "chunk size line too long",
                    input: head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked") + bytes("1;" + String(repeating: "e", count: 2000)),
                    status: 400),
            // Sizes
            BadCase(name: "head over 16 KiB",
                    input: head("GET / HTTP/1.1", "Host: a", "X-Big: " + String(repeating: "b", count: 17 * 1024)), status: 431),
            BadCase(name: "endless head over 16 KiB",
                    input: bytes("GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + String(repeating: "b", count: 17 * 1024)), status: 431),
            BadCase(name: "request line over 16 KiB",
                    input: head("GET /" + String(repeating: "a", count: 17 * 1024) + " HTTP/1.1", "Host: a"), status: 431),
            BadCase(name: "trailers over 16 KiB",
                    input: head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked")
                        + bytes("1\r\nx\r\n0\r\nX-T: " + String(repeating: "t", count: 17 * 1024) + "\r\n\r\n"), status: 431),
        ]
        cases.append(BadCase(
            name: "too many headers",
            input: bytes("GET / HTTP/1.1\r\nHost: a\r\n" + (1...5).map { "X-\($0): v\r\n" }.joined() + "\r\n"),
            status: 431, limits: fewHeadersLimits))
        cases.append(BadCase(
            name: "too many headers (default limit)",
            input: bytes("GET / HTTP/1.1\r\nHost: a\r\n" + (1...200).map { "X-\($0): v\r\n" }.joined() + "\r\n"),
            status: 431))
        cases.append(BadCase(
            name: "Content-Length over the body limit",
            input: head("POST / HTTP/1.1", "Host: a", "Content-Length: 11"), status: 413, limits: smallBodyLimits))
        cases.append(BadCase(
            name: "huge Content-Length", input: head("POST / HTTP/1.1", "Host: a", "Content-Length: 999999999999"), status: 413))
        cases.append(BadCase(
            name: "chunked body over the limit",
            input: head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked") + bytes("6\r\nhello \r\n6\r\nworld!\r\n0\r\n\r\n"),
            status: 413, limits: smallBodyLimits))
        cases.append(BadCase(
            name: "one huge chunk",
            input: head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked") + bytes("fffffff\r\n"), status: 413))
        return cases
    }()

    func testMalformedAndHostileRequestsAreRefusedWithTheRightStatus() {
        for bad in ParserTests.badCases {
            let whole = parseWhole(bad.input, limits: bad.limits)
            XCTAssertEqual(whole.failure?.status, bad.status, "\(bad.name): \(whole.failure?.detail ?? "no failure")")
            XCTAssertTrue(whole.requests.isEmpty, "\(bad.name): produced a request")
            XCTAssertFalse(whole.failure?.detail.isEmpty ?? true, "\(bad.name): failure without detail")
        }
    }

    func testMalformedAndHostileRequestsFedOneByteAtATime() {
        for bad in ParserTests.badCases {
            let run = parseInPieces(bad.input, limits: bad.limits)
            XCTAssertEqual(run.failure?.status, bad.status, "\(bad.name) byte by byte: \(run.failure?.detail ?? "no failure")")
            XCTAssertTrue(run.requests.isEmpty, "\(bad.name): produced a request")
        }
    }

    func testFailureAfterAGoodPipelinedRequestKeepsTheGoodOne() {
        let input = bytes("GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /bad HTTP/2.0\r\nHost: a\r\n\r\n")
        let run = parseWhole(input)
        XCTAssertEqual(run.requests.map(\.path), ["/ok"])
        XCTAssertEqual(run.failure?.status, 505)
    }

    // MARK: Well-formed input

    func testSimpleGet() throws {
        let input = bytes("GET /tenants HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n")
        for run in [parseWhole(input), parseInPieces(input)] {
            XCTAssertNil(run.failure)
            let request = try XCTUnwrap(run.requests.first)
            XCTAssertEqual(run.requests.count, 1)
            XCTAssertEqual(request.method, "GET")
            XCTAssertEqual(request.target, "/tenants")
            XCTAssertEqual(request.pathSegments, ["tenants"])
            XCTAssertEqual(request.path, "/tenants")
            XCTAssertEqual(request.version, .http1_1)
            XCTAssertEqual(request.headers["host"], "example.com")
            XCTAssertTrue(request.body.isEmpty)
            XCTAssertEqual(run.consumed, input.count)
        }
    }

    func testPercentDecodedPathSegmentsAndQuery() throws {
        let input = bytes(
            "GET /a%20b/c%2Fd/caf%C3%A9/x+y/%7Euser?q=a+b&amp=%26&empty=&flag&name%3D=v%3Dw&q=second#frag HTTP/1.1\r\nHost: a\r\n\r\n")
        let request = try XCTUnwrap(parseWhole(input).requests.first)
        XCTAssertEqual(request.pathSegments, ["a b", "c/d", "café", "x+y", "~user"])
        XCTAssertEqual(request.query.map(\.name), ["q", "amp", "empty", "flag", "name=", "q"])
        XCTAssertEqual(request.query.map(\.value), ["a b", "&", "", "", "v=w", "second"])
        XCTAssertEqual(request.queryValue("q"), "a b", "the first value of a repeated parameter")
        XCTAssertNil(request.queryValue("missing"))
    }

    func testRootAndTrailingSlashPaths() throws {
        let root = try XCTUnwrap(parseWhole(bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\n")).requests.first)
        XCTAssertEqual(root.pathSegments, [])
        XCTAssertEqual(root.path, "/")
        let trailing = try XCTUnwrap(parseWhole(bytes("GET /a/ HTTP/1.1\r\nHost: a\r\n\r\n")).requests.first)
        XCTAssertEqual(trailing.pathSegments, ["a", ""])
        let queryOnly = try XCTUnwrap(parseWhole(bytes("GET /?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")).requests.first)
        XCTAssertEqual(queryOnly.pathSegments, [])
        XCTAssertEqual(queryOnly.queryValue("x"), "1")
    }

    func testAbsoluteFormAndAsteriskTargets() throws {
        let absolute = try XCTUnwrap(parseWhole(bytes("GET http://example.com/a/b?c=d HTTP/1.1\r\nHost: example.com\r\n\r\n")).requests.first)
        XCTAssertEqual(absolute.pathSegments, ["a", "b"])
        XCTAssertEqual(absolute.queryValue("c"), "d")
        let asterisk = try XCTUnwrap(parseWhole(bytes("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")).requests.first)
        XCTAssertEqual(asterisk.method, "OPTIONS")
        XCTAssertEqual(asterisk.pathSegments, [])
    }

    func testRepeatedHeadersAreKeptAndLookupIsCaseInsensitive() throws {
        let input = bytes(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Tag: one\r\nx-tag: two\r\nX-TAG:three  \r\nCache-Control: no-cache,\tno-store\r\nEmpty:\r\n\r\n")
        for run in [parseWhole(input), parseInPieces(input)] {
            let request = try XCTUnwrap(run.requests.first)
            XCTAssertEqual(request.headers.values("x-tag"), ["one", "two", "three"], "order kept, whitespace trimmed")
            XCTAssertEqual(request.headers["X-TAG"], "one")
            XCTAssertEqual(request.headers["HOST"], "a")
            XCTAssertTrue(request.headers.contains("cache-control"))
            XCTAssertTrue(request.headers.containsToken("Cache-Control", "NO-STORE"))
            XCTAssertFalse(request.headers.containsToken("Cache-Control", "no"))
            XCTAssertEqual(request.headers["Empty"], "")
            XCTAssertNil(request.headers["Missing"])
            XCTAssertEqual(request.headers.count, 6)
        }
    }

    func testContentLengthBody() throws {
        let input = bytes("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world")
        for run in [parseWhole(input), parseInPieces(input), parseInPieces(input, pieceSize: 7)] {
            let request = try XCTUnwrap(run.requests.first)
            XCTAssertEqual(request.method, "POST")
            XCTAssertEqual(String(decoding: request.body, as: UTF8.self), "hello world")
            XCTAssertEqual(run.consumed, input.count)
        }
    }

    func testEqualContentLengthsAreAccepted() throws {
        let list = try XCTUnwrap(parseWhole(bytes("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc")).requests.first)
        XCTAssertEqual(list.body, bytes("abc"))
        let twice = try XCTUnwrap(
            parseWhole(bytes("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc")).requests.first)
        XCTAssertEqual(twice.body, bytes("abc"))
    }

    func testChunkedBodyWithExtensionsAndTrailers() throws {
        let input = bytes(
            "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
                + "5;name=value\r\nhello\r\n"
                + "1 ; ext\r\n \r\n"
                + "A;a=1;b=\"q\"\r\n0123456789\r\n"
                + "0;last\r\nX-Checksum: abc\r\nX-Other: def\r\n\r\n"
                + "GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
        for run in [parseWhole(input), parseInPieces(input), parseInPieces(input, pieceSize: 5)] {
            XCTAssertNil(run.failure)
            XCTAssertEqual(run.requests.count, 2)
            let request = try XCTUnwrap(run.requests.first)
            XCTAssertEqual(String(decoding: request.body, as: UTF8.self), "hello 0123456789")
            // The handler sees a plain body with its length.
            XCTAssertNil(request.headers["Transfer-Encoding"])
            XCTAssertEqual(request.headers["Content-Length"], "16")
            XCTAssertEqual(run.requests.last?.path, "/next")
            XCTAssertEqual(run.consumed, input.count)
        }
    }

    func testChunkedBodyWithUppercaseHexAndManyChunks() throws {
        var text = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        var expected: [UInt8] = []
        for i in 0..<2000 {
            let piece = String(repeating: Character(UnicodeScalar(UInt8(65 + i % 26))), count: i % 7 + 1)
            text += String(piece.utf8.count, radix: 16, uppercase: true) + "\r\n" + piece + "\r\n"
            expected += bytes(piece)
        }
        text += "1F\r\n" + String(repeating: "z", count: 31) + "\r\n0\r\n\r\n"
        expected += bytes(String(repeating: "z", count: 31))
        let request = try XCTUnwrap(parseWhole(bytes(text)).requests.first)
        XCTAssertEqual(request.body, expected)
    }

    func testPipelinedRequestsInOneBuffer() throws {
        let input = bytes(
            "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
                + "POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                + "POST /three HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n"
                + "HEAD /four HTTP/1.1\r\nHost: a\r\n\r\n"
                + "GET /fi")  // the start of a fifth
        for run in [parseWhole(input), parseInPieces(input), parseInPieces(input, pieceSize: 13)] {
            XCTAssertNil(run.failure)
            XCTAssertEqual(run.requests.map(\.path), ["/one", "/two", "/three", "/four"])
            XCTAssertEqual(run.requests.map(\.method), ["GET", "POST", "POST", "HEAD"])
            XCTAssertEqual(run.requests.map { String(decoding: $0.body, as: UTF8.self) }, ["", "abc", "de", ""])
            XCTAssertEqual(run.consumed, input.count - "GET /fi".utf8.count, "the partial fifth request stays unconsumed")
        }
    }

    /// Splitting the same bytes into two reads at any position gives the same requests.
    func testEverySplitPointGivesTheSameRequests() {
        let input = bytes(
            "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nwxyz"
                + "POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n"
                + "GET /c?d=e HTTP/1.1\r\nHost: a\r\n\r\n")
        for split in 0...input.count {
            var parser = HTTPParser(limits: HTTPLimits())
            var buffer = Array(input[0..<split])
            var index = 0
            var paths: [String] = []
            var bodies: [String] = []
            func drain() {
                for _ in 0..<10 {
                    switch parser.parse(buffer, index: &index) {
                    case .incomplete: return
                    case .request(let request):
                        paths.append(request.path)
                        bodies.append(String(decoding: request.body, as: UTF8.self))
                    case .failure(let status, let detail):
                        XCTFail("split at \(split): \(status) \(detail)")
                        return
                    }
                }
            }
            drain()
            buffer.append(contentsOf: input[split...])
            drain()
            XCTAssertEqual(paths, ["/a", "/b", "/c"], "split at \(split)")
            XCTAssertEqual(bodies, ["wxyz", "abc", ""], "split at \(split)")
            XCTAssertEqual(index, input.count, "split at \(split)")
        }
    }

    func testHTTP10WithoutHostIsAccepted() throws {
        let request = try XCTUnwrap(parseWhole(bytes("GET /old HTTP/1.0\r\n\r\n")).requests.first)
        XCTAssertEqual(request.version, .http1_0)
        XCTAssertFalse(request.wantsKeepAlive)
        let keepAlive = try XCTUnwrap(parseWhole(bytes("GET /old HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")).requests.first)
        XCTAssertTrue(keepAlive.wantsKeepAlive)
    }

    func testKeepAliveSemanticsOfHTTP11() throws {
        let plain = try XCTUnwrap(parseWhole(bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\n")).requests.first)
        XCTAssertTrue(plain.wantsKeepAlive)
        let close = try XCTUnwrap(parseWhole(bytes("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, CLOSE\r\n\r\n")).requests.first)
        XCTAssertFalse(close.wantsKeepAlive)
    }

    /// RFC 9112 §2.2: a server should ignore empty lines before a request line
    /// (some clients send a CRLF after a POST body).
    func testEmptyLinesBeforeTheRequestLineAreIgnored() throws {
        let input = bytes(
            "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\r\n"
                + "\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n")
        for run in [parseWhole(input), parseInPieces(input)] {
            XCTAssertNil(run.failure, run.failure?.detail ?? "")
            XCTAssertEqual(run.requests.map(\.path), ["/a", "/b"])
            XCTAssertEqual(run.consumed, input.count)
        }
    }

    func testExpectContinueIsReportedUntilTheBodyArrives() {
        var parser = HTTPParser(limits: HTTPLimits())
        var buffer = bytes("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        var index = 0
        XCTAssertFalse(parser.isReadingBody)
        guard case .incomplete = parser.parse(buffer, index: &index) else { return XCTFail("expected incomplete") }
        XCTAssertTrue(parser.wantsContinue)
        XCTAssertTrue(parser.isReadingBody)
        XCTAssertTrue(parser.isMidRequest(bufferedBytes: 0))
        parser.continueSent()
        XCTAssertFalse(parser.wantsContinue)
        buffer += bytes("body")
        guard case .request(let request) = parser.parse(buffer, index: &index) else { return XCTFail("expected a request") }
        XCTAssertEqual(request.body, bytes("body"))
        XCTAssertFalse(parser.isReadingBody)
        XCTAssertFalse(parser.isMidRequest(bufferedBytes: 0))
    }

    func testExpectContinueWithTheBodyAlreadyThereIsNotReported() {
        var parser = HTTPParser(limits: HTTPLimits())
        let buffer = bytes("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody")
        var index = 0
        guard case .request = parser.parse(buffer, index: &index) else { return XCTFail("expected a request") }
        XCTAssertFalse(parser.wantsContinue)
    }

    func testHTTP10ExpectIsIgnored() {
        var parser = HTTPParser(limits: HTTPLimits())
        let buffer = bytes("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        var index = 0
        guard case .incomplete = parser.parse(buffer, index: &index) else { return XCTFail("expected incomplete") }
        XCTAssertFalse(parser.wantsContinue, "an HTTP/1.0 client does not understand 100 Continue")
    }

    func testIsMidRequestWhileAHeadArrives() {
        var parser = HTTPParser(limits: HTTPLimits())
        let buffer = bytes("GET / HT")
        var index = 0
        guard case .incomplete = parser.parse(buffer, index: &index) else { return XCTFail("expected incomplete") }
        XCTAssertTrue(parser.isMidRequest(bufferedBytes: buffer.count))
        XCTAssertFalse(parser.isMidRequest(bufferedBytes: 0))
        XCTAssertEqual(index, 0, "nothing is consumed before a head is complete")
    }

    func testHeadAndBodyLimitsAreInclusive() throws {
        var limits = HTTPLimits()
        limits.maxBodyBytes = 10
        limits.maxHeaderCount = 3
        let exactBody = parseWhole(bytes("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789"), limits: limits)
        XCTAssertEqual(exactBody.requests.first?.body.count, 10)
        let exactHeaders = parseWhole(bytes("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"), limits: limits)
        XCTAssertEqual(exactHeaders.requests.count, 1)

        var headLimits = HTTPLimits()
        headLimits.maxHeadBytes = 100
        let line = "GET / HTTP/1.1\r\nHost: a\r\nX: "
        let fits = line + String(repeating: "v", count: 100 - line.utf8.count - 4) + "\r\n\r\n"
        XCTAssertEqual(fits.utf8.count, 100)
        XCTAssertEqual(parseWhole(bytes(fits), limits: headLimits).requests.count, 1)
        XCTAssertEqual(parseInPieces(bytes(fits), limits: headLimits).requests.count, 1)
        let tooBig = line + String(repeating: "v", count: 101 - line.utf8.count - 4) + "\r\n\r\n"
        XCTAssertEqual(parseWhole(bytes(tooBig), limits: headLimits).failure?.status, 431)
    }

    func testObsTextInHeaderValuesIsKept() throws {
        let input = bytes("GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf") + [0xC3, 0xA9] + bytes("\r\n\r\n")
        let request = try XCTUnwrap(parseWhole(input).requests.first)
        XCTAssertEqual(request.headers["X-Name"], "café")
    }
}
