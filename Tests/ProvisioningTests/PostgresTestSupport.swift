import Foundation
import XCTest

@testable import Provisioning

/// The PostgreSQL server the tests use: `make test` starts one
/// (Tests/pg/postgres.sh) and gives its admin URL in PROVISIOND_TEST_POSTGRES.
enum PostgresTestServer {
    static var adminURL: String? {
        guard let url = ProcessInfo.processInfo.environment["PROVISIOND_TEST_POSTGRES"], !url.isEmpty else { return nil }
        return url
    }

    static let missing = """
        PROVISIOND_TEST_POSTGRES is not set, so the PostgreSQL tests have no server: run `make test`, \
        or start the test server and give its URL: PROVISIOND_TEST_POSTGRES=$(Tests/pg/postgres.sh start) swift test
        """

    /// The admin URL, or a failure saying how to get a server.
    static func requireAdminURL() throws -> String {
        guard let url = adminURL else { throw TestFailure.unexpected(missing) }
        return url
    }

    /// `url` with another database: the path replaced, the query kept.
    static func url(_ url: String, database: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return url }
        let rest = url[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let query = rest[authorityEnd...].firstIndex(of: "?").map { rest[$0...] } ?? ""
        return url[..<authorityEnd] + "/" + database + query
    }
}

/// A new, empty database on the test server, dropped when the test ends; gives its URL.
func makePostgresDatabase(_ test: XCTestCase) throws -> String {
    let admin = try PostgresTestServer.requireAdminURL()
    let name = "provisiond_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
    try PostgresConnection(url: admin).exec("CREATE DATABASE \(name)")
    test.addTeardownBlock {
        // FORCE: also when a connection of the test is still open.
        try? PostgresConnection(url: admin).exec("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }
    return PostgresTestServer.url(admin, database: name)
}

/// An engine on `url` (migrated), closed when the test ends.
func makePostgresEngine(_ test: XCTestCase, url: String, maxConnections: Int = 10) throws -> PostgresEngine {
    let engine = try PostgresEngine.open(url: url, maxConnections: maxConnections)
    test.addTeardownBlock { engine.close() }
    return engine
}
