import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif
@testable import HTTPServer

// Helpers shared by the HTTPServer tests: a server on an ephemeral loopback
// port, a raw-socket client that can never hang (every read has a timeout),
// and a runner for the real curl binary.
//
// Integration tests are synchronous on purpose: the raw client blocks, and a
// blocked thread of Swift's cooperative pool would starve the server's own
// handler tasks. XCTest runs synchronous tests on the main thread.

// MARK: Waiting

/// Polls `condition` every 10 ms until it holds or `timeout` seconds pass.
/// A bounded wait for something that must eventually happen, not a timing
/// assertion.
func eventually(timeout: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if condition() { return true }
        if Date() > deadline { return false }
        usleep(10_000)
    }
}

/// Runs async work from a synchronous test and waits for it (bounded).
func runBlocking(timeout: Double = 30, _ work: @escaping @Sendable () async -> Void) -> Bool {
    let done = DispatchSemaphore(value: 0)
    Task {
        await work()
        done.signal()
    }
    return done.wait(timeout: .now() + timeout) == .success
}

// MARK: Probe

/// Counts what the test handler is doing, shared between handler tasks and the test.
final class Probe: @unchecked Sendable {
    private let lock = NSLock()
    private var _started = 0
    private var _finished = 0
    private var _inFlight = 0
    private var _maxInFlight = 0

    func begin() {
        lock.lock()
        _started += 1
        _inFlight += 1
        _maxInFlight = max(_maxInFlight, _inFlight)
        lock.unlock()
    }

    func end() {
        lock.lock()
        _finished += 1
        _inFlight -= 1
        lock.unlock()
    }

    var started: Int { lock.lock(); defer { lock.unlock() }; return _started }
    var finished: Int { lock.lock(); defer { lock.unlock() }; return _finished }
    var maxInFlight: Int { lock.lock(); defer { lock.unlock() }; return _maxInFlight }
}

// MARK: Gate

/// Holds handlers until the test opens it: an in-flight request that lasts
/// exactly as long as the test needs, without a timed sleep.
final class Gate: @unchecked Sendable {
    private let lock = NSLock()
    private var isOpen = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            lock.lock()
            if isOpen {
                lock.unlock()
                continuation.resume()
            } else {
                waiters.append(continuation)
                lock.unlock()
            }
        }
    }

    func open() {
        lock.lock()
        isOpen = true
        let ready = waiters
        waiters = []
        lock.unlock()
        for continuation in ready { continuation.resume() }
    }
}

// MARK: Test handler

/// A small application for the integration tests.
///
/// - `/echo`: answers 200 with the request body, and `X-Method`/`X-Version`.
/// - `/slow?ms=N&id=X`: sleeps N ms, then answers `X`.
/// - `/gate?id=X`: waits until the server's gate is opened, then answers `X`.
/// - `/big?bytes=N`: answers N bytes of `x`.
/// - `/info`: method, decoded path, query and version as text lines.
/// - `/status/N`: answers status N.
/// - anything else: 404.
enum TestApp {
    static func handler(probe: Probe, gate: Gate) -> HTTPHandler {
        return { request in
            probe.begin()
            defer { probe.end() }
            let first = request.pathSegments.first ?? ""
            switch first {
            case "echo":
                var headers = HTTPHeaders()
                headers.add("Content-Type", "application/octet-stream")
                headers.add("X-Method", request.method)
                headers.add("X-Version", request.version.description)
                return HTTPResponse(status: 200, headers: headers, body: request.body)
            case "slow":
                let ms = Int(request.queryValue("ms") ?? "") ?? 100
                try? await Task.sleep(for: .milliseconds(ms))
                return .text(200, request.queryValue("id") ?? "done")
            case "gate":
                await gate.wait()
                return .text(200, request.queryValue("id") ?? "done")
            case "big":
                let count = Int(request.queryValue("bytes") ?? "") ?? 0
                return HTTPResponse(status: 200, body: [UInt8](repeating: UInt8(ascii: "x"), count: count))
            case "info":
                var lines = ["method=\(request.method)", "path=\(request.path)", "version=\(request.version)"]
                for (name, value) in request.query { lines.append("query \(name)=\(value)") }
                return .text(200, lines.joined(separator: "\n"))
            case "status":
                let status = Int(request.pathSegments.dropFirst().first ?? "") ?? 500
                return .text(status, "status \(status)")
            default:
                return .problem(404, detail: "no resource at \(request.path)")
            }
        }
    }
}

// MARK: Server

/// An HTTPServer on 127.0.0.1 with an ephemeral port, for one test.
final class TestServer: @unchecked Sendable {
    let server: HTTPServer
    let port: Int
    let probe = Probe()
    let gate = Gate()
    private var stopped = false

    /// Short timeouts by default so a test that relies on one stays quick.
    static func quickLimits() -> HTTPLimits {
        var limits = HTTPLimits()
        limits.headTimeout = .seconds(5)
        limits.bodyTimeout = .seconds(5)
        limits.idleTimeout = .seconds(10)
        limits.writeTimeout = .seconds(5)
        return limits
    }

    init(limits: HTTPLimits = TestServer.quickLimits(), eventLoops: Int = 2, host: String = "127.0.0.1",
         immediate: HTTPImmediateHandler? = nil, handler: HTTPHandler? = nil) throws {
        let configuration = HTTPServer.Configuration(host: host, port: 0, eventLoopCount: eventLoops, limits: limits)
        server = try HTTPServer(configuration: configuration, immediate: immediate, handler: handler ?? TestApp.handler(probe: probe, gate: gate))
        port = try server.start()
    }

    var url: String { "http://127.0.0.1:\(port)" }

    func client(timeout: Double = 5) throws -> RawClient {
        try RawClient(port: port, timeout: timeout)
    }

    /// Graceful shutdown, waited for (bounded).
    @discardableResult
    func stop(grace: Duration = .seconds(2)) -> Bool {
        if stopped { return true }
        stopped = true
        gate.open()  // no handler is left waiting once the test is over
        let server = self.server
        return runBlocking { await server.shutdown(gracePeriod: grace) }
    }

    deinit { if !stopped { stop(grace: .zero) } }
}

// MARK: Raw client

enum ClientError: Error, CustomStringConvertible {
    case connect(Int32)
    case timedOut(String)
    case closed(String)
    case reset
    case malformed(String)

    var description: String {
        switch self {
        case .connect(let code): return "connect: \(String(cString: strerror(code)))"
        case .timedOut(let what): return "timed out waiting for \(what)"
        case .closed(let what): return "connection closed while waiting for \(what)"
        case .reset: return "connection reset"
        case .malformed(let what): return "malformed response: \(what)"
        }
    }
}

struct RawResponse {
    var version: String
    var status: Int
    var reason: String
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    func values(_ name: String) -> [String] {
        headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }

    var text: String { String(decoding: body, as: UTF8.self) }

    var closesConnection: Bool {
        values("Connection").contains { $0.lowercased().contains("close") }
    }
}

/// How a connection ended, as seen by `RawClient.waitForClose`.
enum CloseOutcome: Equatable {
    /// An orderly close (FIN), after `extraBytes` further bytes.
    case closed(extraBytes: Int)
    case reset
    /// Still open when the wait ended.
    case stillOpen
}

/// A blocking HTTP/1.1 client on a plain POSIX socket. Every read and write
/// has a timeout (SO_RCVTIMEO/SO_SNDTIMEO), so no test can hang on it.
final class RawClient {
    let fd: Int32
    private var buffer: [UInt8] = []
    private var closed = false
    /// A pause before each read, to play a slow reader.
    var pauseBeforeEachRead: useconds_t = 0

    init(port: Int, timeout: Double = 5, receiveBuffer: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError.connect(errno) }
        RawClient.setTimeout(fd, SO_RCVTIMEO, timeout)
        RawClient.setTimeout(fd, SO_SNDTIMEO, timeout)
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if rc != 0 {
            let code = errno
            Glibc.close(fd)
            throw ClientError.connect(code)
        }
    }

    deinit { close() }

    static func setTimeout(_ fd: Int32, _ option: Int32, _ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, option, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func setReadTimeout(_ seconds: Double) { RawClient.setTimeout(fd, SO_RCVTIMEO, seconds) }

    func close() {
        if closed { return }
        closed = true
        Glibc.close(fd)
    }

    /// Half-closes: the server sees end of input but can still answer.
    func shutdownWrite() { Glibc.shutdown(fd, Int32(SHUT_WR)) }

    // MARK: Sending

    /// Sends everything; false if the peer stopped taking bytes (closed,
    /// reset, or the send timed out).
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            sent += n
        }
        return true
    }

    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    // MARK: Receiving

    /// Reads more bytes into the buffer; throws on timeout, close or reset.
    private func fill(_ what: String) throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        if pauseBeforeEachRead > 0 { usleep(pauseBeforeEachRead) }
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                buffer.append(contentsOf: chunk[0..<n])
                return
            }
            if n == 0 { throw ClientError.closed(what) }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { throw ClientError.timedOut(what) }
            throw ClientError.reset
        }
    }

    /// Reads one response (interim 1xx ones included: the caller sees them).
    /// `bodyless` is for answers to HEAD, which have a Content-Length but no body.
    func readResponse(bodyless: Bool = false) throws -> RawResponse {
        var headEnd: Int?
        for _ in 0..<10_000 {
            if let end = RawClient.find([13, 10, 13, 10], in: buffer) { headEnd = end; break }
            try fill("a response head")
        }
        guard let headEnd else { throw ClientError.malformed("no end of head") }
        let head = String(decoding: buffer[0..<headEnd], as: UTF8.self)
        buffer.removeFirst(headEnd + 4)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else {
            throw ClientError.malformed("status line \(statusLine)")
        }
        var headers: [(name: String, value: String)] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { throw ClientError.malformed("header line \(line)") }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var response = RawResponse(
            version: String(parts[0]), status: status, reason: parts.count > 2 ? String(parts[2]) : "",
            headers: headers, body: [])
        if bodyless || status < 200 || status == 204 || status == 304 { return response }
        if let lengthText = response.header("Content-Length") {
            guard let length = Int(lengthText) else { throw ClientError.malformed("Content-Length \(lengthText)") }
            for _ in 0..<100_000 where buffer.count < length { try fill("a body of \(length) bytes") }
            response.body = Array(buffer[0..<length])
            buffer.removeFirst(length)
        } else {
            // No length: the body runs to the end of the connection.
            for _ in 0..<100_000 {
                do { try fill("the end of a body") } catch ClientError.closed { break }
            }
            response.body = buffer
            buffer = []
        }
        return response
    }

    /// Reads the next final (non-1xx) response, skipping interim ones.
    func readFinalResponse(bodyless: Bool = false) throws -> RawResponse {
        for _ in 0..<10 {
            let response = try readResponse(bodyless: bodyless)
            if response.status >= 200 { return response }
        }
        throw ClientError.malformed("too many interim responses")
    }

    /// Waits (up to `timeout` seconds) for the server to close the connection.
    func waitForClose(timeout: Double = 5) -> CloseOutcome {
        setReadTimeout(timeout)
        var extra = buffer.count
        buffer = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        for _ in 0..<100_000 {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { extra += n; continue }
            if n == 0 { return .closed(extraBytes: extra) }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return .stillOpen }
            return .reset
        }
        return .stillOpen
    }

    /// Whether bytes (or the end of the stream) are ready to read within `ms`.
    func isReadable(withinMilliseconds ms: Int32) -> Bool {
        if !buffer.isEmpty { return true }
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, ms) > 0
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
            if Array(haystack[i..<(i + needle.count)]) == needle { return i }
        }
        return nil
    }
}

/// Builds a request head (and body), with a Host unless `host` is nil.
func httpRequest(
    _ method: String, _ target: String, version: String = "HTTP/1.1", host: String? = "test",
    headers: [String] = [], body: String? = nil
) -> String {
    var text = "\(method) \(target) \(version)\r\n"
    if let host { text += "Host: \(host)\r\n" }
    for header in headers { text += header + "\r\n" }
    if let body { text += "Content-Length: \(body.utf8.count)\r\n" }
    text += "\r\n"
    if let body { text += body }
    return text
}

/// Checks the headers every response of the server carries.
func assertStandardHeaders(_ response: RawResponse, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(response.version, "HTTP/1.1", file: file, line: line)
    XCTAssertNotNil(response.header("Date"), "response \(response.status) without Date", file: file, line: line)
    if let date = response.header("Date") {
        // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
        XCTAssertEqual(date.count, 29, "Date \(date)", file: file, line: line)
        XCTAssertTrue(date.hasSuffix(" GMT"), "Date \(date)", file: file, line: line)
    }
    if response.status >= 200 && response.status != 204 && response.status != 304 {
        XCTAssertEqual(response.values("Content-Length").count, 1, "response \(response.status) without one Content-Length", file: file, line: line)
    }
}

// MARK: curl

struct CurlResult {
    var exitCode: Int32
    var stdout: [UInt8]
    var stderr: String
    var output: String { String(decoding: stdout, as: UTF8.self) }
}

/// Runs the real curl binary (bounded by `--max-time`).
func runCurl(_ arguments: [String], maxTime: Int = 15) throws -> CurlResult {
    let path = "/usr/bin/curl"
    guard FileManager.default.isExecutableFile(atPath: path) else { throw XCTSkip("curl is not installed") }
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("httpserver-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let outURL = directory.appendingPathComponent("stdout"), errURL = directory.appendingPathComponent("stderr")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = ["--silent", "--show-error", "--max-time", String(maxTime)] + arguments
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    try out.close()
    try err.close()
    return CurlResult(
        exitCode: process.terminationStatus,
        stdout: Array(try Data(contentsOf: outURL)),
        stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
}

/// A temporary file holding `bytes`, removed by the caller.
func temporaryFile(_ bytes: [UInt8]) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("httpserver-body-\(UUID().uuidString)")
    try Data(bytes).write(to: url)
    return url
}

/// Deterministic, varied bytes for bodies.
func patternBytes(_ count: Int, seed: Int = 0) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: ($0 &* 31 &+ seed &* 7) % 251) }
}
