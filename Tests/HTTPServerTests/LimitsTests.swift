import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import HTTPServer

/// Every limit and timeout of `HTTPLimits`, over loopback, with small values.
/// The tests assert what happens (status, close), never how long it took.
final class LimitsTests: XCTestCase {
    func limits(_ change: (inout HTTPLimits) -> Void) -> HTTPLimits {
        var limits = TestServer.quickLimits()
        change(&limits)
        return limits
    }

    /// A server with these timeouts and a client with a small receive buffer,
    /// so that a large response backs up in the server instead of the kernel.
    func serverWithSmallWindowClient(idleTimeout: Duration, writeTimeout: Duration) throws -> (TestServer, RawClient) {
        let server = try TestServer(limits: limits {
            $0.idleTimeout = idleTimeout
            $0.writeTimeout = writeTimeout
        })
        return (server, try RawClient(port: server.port, timeout: 10, receiveBuffer: 16384))
    }

    // MARK: Body size: 413

    func testBodyOverTheLimitGets413WithoutReadingTheBody() throws {
        let server = try TestServer(limits: limits { $0.maxBodyBytes = 1000 })
        defer { server.stop() }
        let client = try server.client()
        // Announce 10 MB but send only the head: the answer must not wait for the body.
        client.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n")
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 413)
        XCTAssertEqual(response.header("Content-Type"), "application/problem+json")
        XCTAssertTrue(response.closesConnection)
        assertStandardHeaders(response)
        XCTAssertEqual(client.waitForClose(), .closed(extraBytes: 0))
        XCTAssertEqual(server.probe.started, 0)
    }

    func testBodyAtTheLimitIsAccepted() throws {
        let server = try TestServer(limits: limits { $0.maxBodyBytes = 1000 })
        defer { server.stop() }
        let client = try server.client()
        let body = String(repeating: "b", count: 1000)
        client.send(httpRequest("POST", "/echo", body: body))
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.text, body)
    }

    func testBodyOverTheLimitWhileTheClientKeepsSending() throws {
        let server = try TestServer(limits: limits { $0.maxBodyBytes = 1000 })
        defer { server.stop() }
        let client = try server.client()
        // A client that sends its body without waiting still gets to read the 413.
        client.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n" + String(repeating: "x", count: 200_000))
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 413)
        XCTAssertTrue(response.closesConnection)
        XCTAssertNotEqual(client.waitForClose(), .stillOpen)
    }

    func testDefaultBodyLimitIs1MiB() throws {
        let server = try TestServer()
        defer { server.stop() }
        let fits = try server.client(timeout: 10)
        let body = [UInt8](repeating: UInt8(ascii: "m"), count: 1 << 20)
        fits.send(Array("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: \(1 << 20)\r\n\r\n".utf8) + body)
        let accepted = try fits.readResponse()
        XCTAssertEqual(accepted.status, 200)
        XCTAssertEqual(accepted.body.count, 1 << 20)
        let tooBig = try server.client()
        tooBig.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: \((1 << 20) + 1)\r\n\r\n")
        XCTAssertEqual(try tooBig.readResponse().status, 413)
    }

    func testChunkedBodyOverTheLimitGets413() throws {
        let server = try TestServer(limits: limits { $0.maxBodyBytes = 1000 })
        defer { server.stop() }
        let client = try server.client()
        client.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        // Chunks of 300 bytes until the server refuses (bounded).
        var refused = false
        for _ in 0..<10 {
            if client.isReadable(withinMilliseconds: 50) { refused = true; break }
            client.send("12c\r\n" + String(repeating: "c", count: 300) + "\r\n")
        }
        XCTAssertTrue(refused || client.isReadable(withinMilliseconds: 5000))
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 413)
        XCTAssertTrue(response.closesConnection)
        assertStandardHeaders(response)
        XCTAssertEqual(server.probe.started, 0)
    }

    func testExpectContinueOverTheLimitGets413InsteadOf100() throws {
        let server = try TestServer(limits: limits { $0.maxBodyBytes = 1000 })
        defer { server.stop() }
        let client = try server.client()
        client.send("POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n")
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 413, "the client learns before sending its body")
        XCTAssertEqual(client.waitForClose(), .closed(extraBytes: 0))
    }

    func testCurlUploadOverTheLimitGets413() throws {
        let server = try TestServer(limits: limits { $0.maxBodyBytes = 1000 })
        defer { server.stop() }
        let file = try temporaryFile(patternBytes(200_000))
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try runCurl(["-v", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "@" + file.path, server.url + "/echo"])
        XCTAssertEqual(result.output, "413", result.stderr)
        XCTAssertFalse(result.stderr.contains("100 Continue"), "no 100 Continue for a body that is refused")
    }

    // MARK: Head size: 431

    func testHeadOverTheLimitGets431() throws {
        let server = try TestServer(limits: limits { $0.maxHeadBytes = 1024 })
        defer { server.stop() }
        let client = try server.client()
        client.send(httpRequest("GET", "/info", headers: ["X-Big: " + String(repeating: "h", count: 2000)]))
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 431)
        XCTAssertTrue(response.closesConnection)
        assertStandardHeaders(response)
        XCTAssertNotEqual(client.waitForClose(), .stillOpen)
    }

    func testEndlessHeadGets431() throws {
        let server = try TestServer(limits: limits { $0.maxHeadBytes = 1024 })
        defer { server.stop() }
        let client = try server.client()
        client.send("GET /info HTTP/1.1\r\nHost: t\r\n")
        // Header lines that never end the head (bounded).
        var answered = false
        for i in 0..<200 {
            if client.isReadable(withinMilliseconds: 5) { answered = true; break }
            client.send("X-Line-\(i): " + String(repeating: "v", count: 50) + "\r\n")
        }
        XCTAssertTrue(answered || client.isReadable(withinMilliseconds: 5000))
        XCTAssertEqual(try client.readResponse().status, 431)
    }

    func testDefaultHeadLimitIs16KiB() throws {
        let server = try TestServer()
        defer { server.stop() }
        let fits = try server.client()
        fits.send(httpRequest("GET", "/info", headers: ["X-Big: " + String(repeating: "h", count: 15 * 1024)]))
        XCTAssertEqual(try fits.readResponse().status, 200)
        let tooBig = try server.client()
        tooBig.send(httpRequest("GET", "/info", headers: ["X-Big: " + String(repeating: "h", count: 17 * 1024)]))
        XCTAssertEqual(try tooBig.readResponse().status, 431)
    }

    func testTooManyHeadersGets431() throws {
        let server = try TestServer(limits: limits { $0.maxHeaderCount = 10 })
        defer { server.stop() }
        let ok = try server.client()
        ok.send(httpRequest("GET", "/info", headers: (1...9).map { "X-\($0): v" }))
        XCTAssertEqual(try ok.readResponse().status, 200, "Host plus nine is ten")
        let client = try server.client()
        client.send(httpRequest("GET", "/info", headers: (1...10).map { "X-\($0): v" }))
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 431)
        XCTAssertTrue(response.closesConnection)
        assertStandardHeaders(response)
    }

    // MARK: Timeouts: 408 and idle close

    func testSlowlorisHeadGets408AndClose() throws {
        let server = try TestServer(limits: limits { $0.headTimeout = .milliseconds(300) })
        defer { server.stop() }
        let client = try server.client()
        client.send("GET /info HTTP/1.1\r\nHost: t\r\n")
        // Trickle a header line every 100 ms: bytes keep coming, the head never ends.
        var answered = false
        for i in 0..<50 {
            if client.isReadable(withinMilliseconds: 100) { answered = true; break }
            client.send("X-\(i): y\r\n")
        }
        XCTAssertTrue(answered, "the trickle did not keep the head timeout from firing")
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 408)
        XCTAssertTrue(response.closesConnection)
        assertStandardHeaders(response)
        XCTAssertNotEqual(client.waitForClose(), .stillOpen)
        XCTAssertEqual(server.probe.started, 0)
    }

    func testPartialRequestLineGets408() throws {
        let server = try TestServer(limits: limits { $0.headTimeout = .milliseconds(300) })
        defer { server.stop() }
        let client = try server.client()
        client.send("GET /in")
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 408)
        XCTAssertEqual(client.waitForClose(), .closed(extraBytes: 0))
    }

    func testHeadTimeoutAfterAKeepAliveRequest() throws {
        let server = try TestServer(limits: limits { $0.headTimeout = .milliseconds(300) })
        defer { server.stop() }
        let client = try server.client()
        client.send(httpRequest("GET", "/info"))
        XCTAssertEqual(try client.readResponse().status, 200)
        client.send("GET /info HTTP/1.1\r\nHo")
        XCTAssertEqual(try client.readResponse().status, 408)
    }

    func testSlowBodyGets408() throws {
        let server = try TestServer(limits: limits { $0.bodyTimeout = .milliseconds(300) })
        defer { server.stop() }
        let client = try server.client()
        client.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 408)
        XCTAssertTrue(response.closesConnection)
        assertStandardHeaders(response)
        XCTAssertEqual(client.waitForClose(), .closed(extraBytes: 0))
        XCTAssertEqual(server.probe.started, 0)
    }

    func testBodyTimeoutRunsFromTheEndOfTheHead() throws {
        let server = try TestServer(limits: limits {
            $0.headTimeout = .seconds(30)
            $0.bodyTimeout = .seconds(3)
        })
        defer { server.stop() }
        let client = try server.client(timeout: 10)
        // The head takes longer than the body timeout (a lower bound: a slower
        // machine only makes it take longer) ...
        let head = Array("POST /echo HTTP/1.1\r\nHost: t\r\nX-Slow: yes\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n".utf8)
        let pieceSize = head.count / 5 + 1
        for (index, start) in stride(from: 0, to: head.count, by: pieceSize).enumerated() {
            if index > 0 { usleep(900_000) }
            client.send(Array(head[start..<min(head.count, start + pieceSize)]))
        }
        // ... the 100 Continue is sent where the body clock starts, so once it is
        // here the server has the whole head and is waiting for the body ...
        XCTAssertEqual(try client.readResponse().status, 100)
        // ... and after at least one deadline sweep (every 250 ms), a body clock
        // started with the head would have fired; one started at its end has not.
        usleep(300_000)
        client.send("body")
        let response = try client.readFinalResponse()
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.text, "body")
    }

    func testIdleTimeoutRunsFromTheEndOfAResponse() throws {
        // The idle timeout is long against any stall between the server finishing
        // the write and this client's next request; the unread phase only has to
        // outlast it, which a slow machine can only make more so.
        let (server, client) = try serverWithSmallWindowClient(idleTimeout: .seconds(4), writeTimeout: .seconds(60))
        defer { server.stop() }
        client.send(httpRequest("GET", "/big?bytes=20000000"))
        XCTAssertTrue(eventually { server.probe.finished == 1 }, "the response is being written")
        // The response waits unread for longer than the idle timeout: a
        // connection with a response being written is not idle ...
        usleep(5_000_000)
        XCTAssertEqual(try client.readResponse().body.count, 20_000_000)
        // ... and once it is written, the connection is good for the idle timeout:
        // after at least one deadline sweep (every 250 ms) it is still open.
        usleep(300_000)
        XCTAssertTrue(client.send(httpRequest("GET", "/info")))
        XCTAssertEqual(try client.readResponse().status, 200)
    }

    func testIdleKeepAliveConnectionIsClosed() throws {
        // 1 s: the idle clock also runs between connecting and the first request.
        let server = try TestServer(limits: limits { $0.idleTimeout = .seconds(1) })
        defer { server.stop() }
        let client = try server.client()
        client.send(httpRequest("GET", "/info"))
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 200)
        XCTAssertFalse(response.closesConnection)
        // Nothing more is sent: the server closes quietly, without a 408.
        XCTAssertEqual(client.waitForClose(timeout: 10), .closed(extraBytes: 0))
        XCTAssertTrue(eventually { server.server.openConnections == 0 })
    }

    func testConnectionThatNeverSendsIsClosed() throws {
        let server = try TestServer(limits: limits { $0.idleTimeout = .milliseconds(300) })
        defer { server.stop() }
        let client = try server.client()
        XCTAssertEqual(client.waitForClose(timeout: 10), .closed(extraBytes: 0))
    }

    func testSlowHandlerIsNotTimedOut() throws {
        // Timeouts are about the client; a handler slower than all of them still answers.
        let server = try TestServer(limits: limits {
            $0.headTimeout = .seconds(1)
            $0.bodyTimeout = .seconds(1)
            $0.idleTimeout = .seconds(1)
        })
        defer { server.stop() }
        let client = try server.client()
        client.send(httpRequest("GET", "/slow?ms=3000&id=late"))
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.text, "late")
    }

    func testUnreadResponseIsAbandonedAfterTheWriteTimeout() throws {
        let (server, client) = try serverWithSmallWindowClient(idleTimeout: .seconds(60), writeTimeout: .milliseconds(300))
        defer { server.stop() }
        client.send(httpRequest("GET", "/big?bytes=30000000"))
        XCTAssertTrue(eventually { server.probe.finished == 1 })
        // The client reads nothing; the server gives up on it.
        XCTAssertTrue(eventually(timeout: 15) { server.server.openConnections == 0 }, "the stuck connection was not closed")
    }

    func testSlowButSteadyReaderOutlastsTheWriteTimeout() throws {
        // 12 MiB read about 16 KiB per 10 ms takes about 8 s, more than twice the write
        // timeout, but no gap between two reads comes near it (a stall of 3 s would).
        let (server, client) = try serverWithSmallWindowClient(idleTimeout: .seconds(60), writeTimeout: .seconds(3))
        defer { server.stop() }
        client.pauseBeforeEachRead = 10_000
        client.send(httpRequest("GET", "/big?bytes=12582912"))
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.body.count, 12_582_912)
    }

    // MARK: Connections and pipelining depth

    func testConnectionLimitAnswers503() throws {
        let server = try TestServer(limits: limits { $0.maxConnections = 2 })
        defer { server.stop() }
        var admitted: [RawClient] = []
        for _ in 0..<2 {
            let client = try server.client()
            client.send(httpRequest("GET", "/info"))
            XCTAssertEqual(try client.readResponse().status, 200)
            admitted.append(client)
        }
        let refused = try server.client()
        let response = try refused.readResponse()
        XCTAssertEqual(response.status, 503)
        XCTAssertTrue(response.closesConnection)
        XCTAssertNotNil(response.header("Retry-After"))
        assertStandardHeaders(response)
        XCTAssertEqual(refused.waitForClose(), .closed(extraBytes: 0))

        // A request sent before the refusal arrives does not turn it into a reset.
        let eager = try server.client()
        eager.send(httpRequest("GET", "/info"))
        XCTAssertEqual(try eager.readResponse().status, 503)

        // Once a slot frees up, a new client gets in.
        admitted.removeFirst().close()
        XCTAssertTrue(eventually { server.server.openConnections == 1 })
        let later = try server.client()
        later.send(httpRequest("GET", "/info"))
        XCTAssertEqual(try later.readResponse().status, 200)
        XCTAssertEqual(server.probe.started, 3)
    }

    func testDeepPipelineFromAHalfClosedClientIsAnsweredInFull() throws {
        let server = try TestServer(limits: limits { $0.maxPipelinedRequests = 2 })
        defer { server.stop() }
        let client = try server.client(timeout: 10)
        client.send((0..<30).map { httpRequest("POST", "/echo", body: "r\($0)") }.joined())
        client.shutdownWrite()
        for i in 0..<30 {
            XCTAssertEqual(try client.readResponse().text, "r\(i)")
        }
        XCTAssertEqual(client.waitForClose(), .closed(extraBytes: 0))
        XCTAssertLessThanOrEqual(server.probe.maxInFlight, 2)
    }

    func testPipelineDepthLimitsConcurrentHandlersButAnswersEverything() throws {
        let server = try TestServer(limits: limits { $0.maxPipelinedRequests = 2 })
        defer { server.stop() }
        let client = try server.client(timeout: 10)
        client.send((0..<8).map { httpRequest("GET", "/slow?ms=30&id=\($0)") }.joined())
        var ids: [String] = []
        for _ in 0..<8 { ids.append(try client.readResponse().text) }
        XCTAssertEqual(ids, (0..<8).map(String.init))
        XCTAssertLessThanOrEqual(server.probe.maxInFlight, 2)
    }
}
