import Essentials
import Foundation
import XCTest
@testable import HTTPServer

final class RouterTests: XCTestCase {
    static func request(_ method: String, _ target: String) -> HTTPRequest {
        var index = 0
        var parser = HTTPParser(limits: HTTPLimits())
        let text = "\(method) \(target) HTTP/1.1\r\nHost: t\r\n\r\n"
        guard case .request(let request) = parser.parse(Array(text.utf8), index: &index) else {
            fatalError("test request \(text) did not parse")
        }
        return request
    }

    static func named(_ name: String) -> HTTPHandler {
        return { request in
            let parameters = request.pathParameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            return .text(200, ([name] + parameters).joined(separator: " "))
        }
    }

    static func sampleRouter() -> Router {
        var router = Router()
        router.get("/healthz", named("health"))
        router.get("/items", named("list"))
        router.post("/items", named("create"))
        router.get("/items/{id}", named("show"))
        router.patch("/items/{id}", named("update"))
        router.delete("/items/{id}", named("delete"))
        router.get("/items/{id}/parts/{part}", named("part"))
        router.post("/items/{id}/retry", named("retry"))
        router.add("PUT", "/", named("root"))
        return router
    }

    func respond(_ router: Router, _ method: String, _ target: String) -> HTTPResponse {
        let request = RouterTests.request(method, target)
        let result = Box<HTTPResponse>()
        XCTAssertTrue(runBlocking { result.value = await router.respond(to: request) })
        return result.value ?? HTTPResponse(status: 0)
    }

    // MARK: Matching

    func testLiteralAndParameterRoutes() {
        let router = RouterTests.sampleRouter()
        XCTAssertEqual(respond(router, "GET", "/healthz").body, Array("health".utf8))
        XCTAssertEqual(respond(router, "GET", "/items").body, Array("list".utf8))
        XCTAssertEqual(respond(router, "POST", "/items").body, Array("create".utf8))
        XCTAssertEqual(respond(router, "GET", "/items/42").body, Array("show id=42".utf8))
        XCTAssertEqual(respond(router, "DELETE", "/items/42").body, Array("delete id=42".utf8))
        XCTAssertEqual(respond(router, "GET", "/items/7/parts/wheel").body, Array("part id=7 part=wheel".utf8))
        XCTAssertEqual(respond(router, "POST", "/items/7/retry").body, Array("retry id=7".utf8))
        XCTAssertEqual(respond(router, "PUT", "/").body, Array("root".utf8))
    }

    func testParametersAreDecoded() {
        let router = RouterTests.sampleRouter()
        XCTAssertEqual(respond(router, "GET", "/items/a%2Fb%20c").body, Array("show id=a/b c".utf8))
    }

    func testHeadIsServedByTheGetRoute() {
        let router = RouterTests.sampleRouter()
        guard case .found(let route, let parameters) = router.match(RouterTests.request("HEAD", "/items/9")) else {
            return XCTFail("HEAD did not match")
        }
        XCTAssertEqual(route.method, "GET")
        XCTAssertEqual(parameters, ["id": "9"])
    }

    func testUnknownPathsAre404() throws {
        let router = RouterTests.sampleRouter()
        for target in ["/nope", "/items/1/2", "/items/1/parts", "/healthz/x", "/items//parts/x", "/items/"] {
            let response = respond(router, "GET", target)
            XCTAssertEqual(response.status, 404, target)
            XCTAssertEqual(response.headers["Content-Type"], "application/problem+json")
            let problem = try JSON.parse(response.body)
            XCTAssertEqual(problem["status"], .number("404"))
            XCTAssertNotNil(problem["title"]?.stringValue)
            XCTAssertNotNil(problem["detail"]?.stringValue)
        }
    }

    func testEmptyParameterDoesNotMatch() {
        let router = RouterTests.sampleRouter()
        guard case .notFound = router.match(RouterTests.request("GET", "/items//parts/x")) else {
            return XCTFail("an empty {id} matched")
        }
    }

    func testWrongMethodIs405WithAllow() throws {
        let router = RouterTests.sampleRouter()
        let cases: [(String, String, String)] = [
            ("PUT", "/items", "GET, POST, HEAD"),
            ("POST", "/items/1", "GET, PATCH, DELETE, HEAD"),
            ("DELETE", "/healthz", "GET, HEAD"),
            ("GET", "/items/1/retry", "POST"),
            ("HEAD", "/items/1/retry", "POST"),
            ("GET", "/", "PUT"),
        ]
        for (method, target, allow) in cases {
            let response = respond(router, method, target)
            XCTAssertEqual(response.status, 405, "\(method) \(target)")
            XCTAssertEqual(response.headers["Allow"], allow, "\(method) \(target)")
            XCTAssertEqual(response.headers["Content-Type"], "application/problem+json")
            let problem = try JSON.parse(response.body)
            XCTAssertEqual(problem["status"], .number("405"))
            XCTAssertTrue(problem["detail"]?.stringValue?.contains(method) ?? false)
        }
    }

    func testAllowNamesEachMethodOnce() {
        var router = Router()
        router.get("/things/{id}", RouterTests.named("by id"))
        router.get("/things/special", RouterTests.named("special"))
        router.add("HEAD", "/things/special", RouterTests.named("head"))
        router.post("/things/special", RouterTests.named("post"))
        guard case .methodNotAllowed(let allowed) = router.match(RouterTests.request("PUT", "/things/special")) else {
            return XCTFail("expected 405")
        }
        XCTAssertEqual(allowed, ["GET", "HEAD", "POST"])
    }

    func testFirstRegisteredRouteWins() {
        var router = Router()
        router.get("/things/special", RouterTests.named("special"))
        router.get("/things/{id}", RouterTests.named("by id"))
        XCTAssertEqual(respond(router, "GET", "/things/special").body, Array("special".utf8))
        XCTAssertEqual(respond(router, "GET", "/things/other").body, Array("by id id=other".utf8))
    }

    // MARK: Through the server

    func testRouterBehindTheServer() throws {
        let router = RouterTests.sampleRouter()
        let server = try TestServer(handler: { await router.respond(to: $0) })
        defer { server.stop() }
        let client = try server.client()

        client.send(httpRequest("GET", "/items/5"))
        let found = try client.readResponse()
        XCTAssertEqual(found.status, 200)
        XCTAssertEqual(found.text, "show id=5")
        assertStandardHeaders(found)

        client.send(httpRequest("GET", "/missing"))
        let missing = try client.readResponse()
        XCTAssertEqual(missing.status, 404)
        XCTAssertEqual(missing.header("Content-Type"), "application/problem+json")
        assertStandardHeaders(missing)
        XCTAssertFalse(missing.closesConnection, "a 404 keeps the connection")

        client.send(httpRequest("PUT", "/items/5", body: "{}"))
        let wrongMethod = try client.readResponse()
        XCTAssertEqual(wrongMethod.status, 405)
        XCTAssertEqual(wrongMethod.header("Allow"), "GET, PATCH, DELETE, HEAD")
        assertStandardHeaders(wrongMethod)

        client.send(httpRequest("HEAD", "/items/5"))
        let head = try client.readResponse(bodyless: true)
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.header("Content-Length"), String("show id=5".utf8.count))

        client.send(httpRequest("GET", "/healthz"))
        XCTAssertEqual(try client.readResponse().text, "health", "still in step after the HEAD")
    }

    func testCurlSees405WithAllow() throws {
        let router = RouterTests.sampleRouter()
        let server = try TestServer(handler: { await router.respond(to: $0) })
        defer { server.stop() }
        let result = try runCurl(["-i", "-X", "DELETE", server.url + "/items"])
        XCTAssertEqual(result.exitCode, 0, result.stderr)
        XCTAssertTrue(result.output.hasPrefix("HTTP/1.1 405 Method Not Allowed"), result.output)
        XCTAssertTrue(result.output.contains("Allow: GET, POST, HEAD"), result.output)
    }
}

/// A value set from a task and read by the test afterwards.
final class Box<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T?
    var value: T? {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.unlock() }
    }
}
