import XCTest
@testable import HTTPServer

/// The server listens on IPv4 and IPv6 addresses alike.
final class AddressFamilyTests: XCTestCase {
    func testServesOverIPv6Loopback() throws {
        let server: TestServer
        do {
            server = try TestServer(host: "::1")
        } catch {
            throw XCTSkip("no IPv6 loopback on this machine: \(error)")
        }
        defer { server.stop() }
        let result = try runCurl(["-g", "http://[::1]:\(server.port)/echo", "-d", "over six"])
        XCTAssertEqual(result.exitCode, 0, result.stderr)
        XCTAssertEqual(result.output, "over six")
    }

    func testServesOverIPv4Loopback() throws {
        let server = try TestServer(host: "127.0.0.1")
        defer { server.stop() }
        let result = try runCurl(["http://127.0.0.1:\(server.port)/echo", "-d", "over four"])
        XCTAssertEqual(result.exitCode, 0, result.stderr)
        XCTAssertEqual(result.output, "over four")
    }

    func testUnknownHostFailsToStart() {
        XCTAssertThrowsError(try TestServer(host: "not a host name"))
    }
}
