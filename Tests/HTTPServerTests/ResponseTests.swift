import Essentials
import XCTest
@testable import HTTPServer

final class ResponseTests: XCTestCase {
    func testResponseHelpers() throws {
        let json = HTTPResponse.json(201, .object([("id", .string("x"))]))
        XCTAssertEqual(json.status, 201)
        XCTAssertEqual(json.headers["Content-Type"], "application/json; charset=utf-8")
        XCTAssertEqual(try JSON.parse(json.body)["id"]?.stringValue, "x")

        let problem = HTTPResponse.problem(422, detail: "admin.email: not an email address")
        XCTAssertEqual(problem.headers["Content-Type"], "application/problem+json")
        let document = try JSON.parse(problem.body)
        XCTAssertEqual(document["status"], .int(422))
        XCTAssertEqual(document["title"]?.stringValue, "Unprocessable Content")
        XCTAssertEqual(document["detail"]?.stringValue, "admin.email: not an email address")
    }
}
