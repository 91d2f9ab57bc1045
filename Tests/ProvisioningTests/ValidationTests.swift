import Foundation
import XCTest

@testable import Provisioning

final class ValidationTests: XCTestCase {
    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    // MARK: TenantRequest

    private let validAdmin = #""admin": {"username": "admin", "email": "admin@acme.com"}"#

    func testTenantRequestRejectsEachBadField() {
        let long = String(repeating: "a", count: 63)
        let tooLongDomain = [long, long, long, String(repeating: "b", count: 62)].joined(separator: ".")  // 254
        let cases: [(body: String, field: String)] = [
            ("", "body"),
            ("not json", "body"),
            (#"{"domain": "acme.com""#, "body"),
            ("[]", "body"),
            (#""acme.com""#, "body"),
            ("null", "body"),
            ("{}", "domain"),
            (#"{\#(validAdmin)}"#, "domain"),
            (#"{"domain": 5, \#(validAdmin)}"#, "domain"),
            (#"{"domain": null, \#(validAdmin)}"#, "domain"),
            (#"{"domain": "", \#(validAdmin)}"#, "domain"),
            (#"{"domain": "localhost", \#(validAdmin)}"#, "domain"),
            (#"{"domain": "acme..com", \#(validAdmin)}"#, "domain"),
            (#"{"domain": ".acme.com", \#(validAdmin)}"#, "domain"),
            (#"{"domain": "acme.com.", \#(validAdmin)}"#, "domain"),
            (#"{"domain": "-acme.com", \#(validAdmin)}"#, "domain"),
            (#"{"domain": "acme-.com", \#(validAdmin)}"#, "domain"),
            (#"{"domain": "ac_me.com", \#(validAdmin)}"#, "domain"),
            (#"{"domain": "ac me.com", \#(validAdmin)}"#, "domain"),
            (#"{"domain": "acme.com/x", \#(validAdmin)}"#, "domain"),
            (#"{"domain": "bücher.de", \#(validAdmin)}"#, "domain"),
            (#"{"domain": "\u212Aelvin.com", \#(validAdmin)}"#, "domain"),  // KELVIN SIGN lowercases to "k"
            (#"{"domain": "\#(String(repeating: "a", count: 64)).com", \#(validAdmin)}"#, "domain"),
            (#"{"domain": "\#(tooLongDomain)", \#(validAdmin)}"#, "domain"),
            (#"{"domain": "acme.com"}"#, "admin"),
            (#"{"domain": "acme.com", "admin": "admin@acme.com"}"#, "admin"),
            (#"{"domain": "acme.com", "admin": []}"#, "admin"),
            (#"{"domain": "acme.com", "admin": {}}"#, "admin.username"),
            (#"{"domain": "acme.com", "admin": {"email": "a@acme.com"}}"#, "admin.username"),
            (#"{"domain": "acme.com", "admin": {"username": 1, "email": "a@acme.com"}}"#, "admin.username"),
            (#"{"domain": "acme.com", "admin": {"username": "", "email": "a@acme.com"}}"#, "admin.username"),
            (#"{"domain": "acme.com", "admin": {"username": "admin"}}"#, "admin.email"),
            (#"{"domain": "acme.com", "admin": {"username": "admin", "email": "nobody"}}"#, "admin.email"),
            (#"{"domain": "acme.com", "admin": {"username": "admin", "email": true}}"#, "admin.email"),
            (#"{"domain": "acme.com", "admin": {"username": "admin", "email": "a@b.c", "firstName": 1}}"#, "admin.firstName"),
            (#"{"domain": "acme.com", "admin": {"username": "admin", "email": "a@b.c", "lastName": {}}}"#, "admin.lastName"),
            (#"{"domain": "acme.com", "admin": {"username": "admin", "email": "a@b.c", "password": "x"}}"#, "admin.password"),
            (#"{"domain": "127.0.0.1", \#(validAdmin)}"#, "domain"),
            (#"{"domain": "acme.123", \#(validAdmin)}"#, "domain"),
            (#"{"domain": "acme.com", "admin": {"username": "admin", "email": "u@x.com\r\nBcc: evil@x"}}"#, "admin.email"),
            (#"{"domain": "acme.com", "admin": {"username": "ad\u0000min", "email": "a@b.c"}}"#, "admin.username"),
            (#"{"domain": "acme.com", "admin": {"username": "\#(String(repeating: "u", count: 255))", "email": "a@b.c"}}"#, "admin.username"),
            (#"{"domain": "acme.com", "admin": {"username": "admin", "email": "a@\#(String(repeating: "b", count: 900_000))"}}"#, "admin.email"),
            (#"{"domain": "acme.com", "admin": {"username": "admin", "email": "a@b.c", "firstName": "A\u007f"}}"#, "admin.firstName"),
            (#"{"domain": "acme.com", "admin": {"username": "admin", "email": "a@b.c", "lastName": "L\u0085"}}"#, "admin.lastName"),
            (#"{"domain": "acme.com", \#(validAdmin), "plan": "Demo\t"}"#, "plan"),
            (#"{"domain": "acme.com", \#(validAdmin), "plan": "\#(String(repeating: "é", count: 255))"}"#, "plan"),
            (#"{"domain": "acme.com", \#(validAdmin), "plan": 3}"#, "plan"),
            (#"{"domain": "acme.com", \#(validAdmin), "attributes": "x"}"#, "attributes"),
            (#"{"domain": "acme.com", \#(validAdmin), "attributes": [1]}"#, "attributes"),
            (#"{"domain": "acme.com", \#(validAdmin), "id": "ten_x"}"#, "id"),
            (#"{"domain": "acme.com", \#(validAdmin), "status": "pending"}"#, "status"),
        ]
        for (body, field) in cases {
            assertInvalid(field) { _ = try TenantRequest.parse(bytes(body)) }
        }
    }

    func testNullOptionalFieldsAreTheSameAsLeftOut() throws {
        let left = try TenantRequest.parse(bytes(#"{"domain": "a.b", "admin": {"username": "u", "email": "@"}}"#))
        let nulls = try TenantRequest.parse(bytes(
            #"{"domain": "a.b", "admin": {"username": "u", "email": "@", "firstName": null, "lastName": null}, "plan": null, "attributes": null}"#))
        XCTAssertNil(nulls.plan)
        XCTAssertNil(nulls.admin["firstName"])
        XCTAssertEqual(nulls.attributes, .object([]))
        XCTAssertEqual(nulls.canonical, left.canonical, "the same request for idempotency")

        let subscription = try SubscriptionRequest.parse(bytes(#"{"name": "prod", "url": "https://p.example/", "secret": null, "deliver": null}"#))
        XCTAssertNil(subscription.secret)
        XCTAssertFalse(subscription.deliverAll)
        // Required fields stay required, and a PATCH null is still an error.
        assertInvalid("admin.email") { _ = try TenantRequest.parse(bytes(#"{"domain": "a.b", "admin": {"username": "u", "email": null}}"#)) }
        assertInvalid("url") { _ = try SubscriptionPatch.parse(bytes(#"{"url": null, "paused": true}"#)) }
    }

    func testTenantRequestAcceptsAndNormalizes() throws {
        let full = try TenantRequest.parse(bytes(
            #"{"domain": "Sub.ACME-1.com", "admin": {"username": "ada", "email": "ada@acme.com", "firstName": "Ada", "lastName": "Lovelace"}, "plan": "Demo", "attributes": {"k": [1, {"n": null}], "x": 1.50}}"#))
        XCTAssertEqual(full.domain, "sub.acme-1.com")
        XCTAssertEqual(full.admin["firstName"]?.stringValue, "Ada")
        XCTAssertEqual(full.admin["lastName"]?.stringValue, "Lovelace")
        XCTAssertEqual(full.plan, "Demo")
        XCTAssertEqual(full.attributes["x"], .number("1.50"), "numbers pass through as written")

        let minimal = try TenantRequest.parse(bytes(#"{"domain": "a.b", "admin": {"username": "u", "email": "@"}}"#))
        XCTAssertNil(minimal.plan)
        XCTAssertEqual(minimal.attributes, .object([]))
        XCTAssertNil(minimal.admin["firstName"])

        let longest = [String](repeating: String(repeating: "a", count: 63), count: 3).joined(separator: ".") + "." + String(repeating: "b", count: 61)
        XCTAssertEqual(longest.utf8.count, 253)
        XCTAssertNoThrow(try TenantRequest.parse(bytes(#"{"domain": "\#(longest)", \#(validAdmin)}"#)))
        XCTAssertNoThrow(try TenantRequest.parse(bytes(#"{"domain": "1-2.3-4", \#(validAdmin)}"#)))
        // 254 characters (code points, whatever their UTF-8 length) is the most for admin and plan strings.
        let most = String(repeating: "é", count: 254)
        let long = try TenantRequest.parse(bytes(
            #"{"domain": "a.b", "admin": {"username": "\#(most)", "email": "@\#(most.dropFirst())", "firstName": "\#(most)", "lastName": "\#(most)"}, "plan": "\#(most)"}"#))
        XCTAssertEqual(long.plan, most)
    }

    func testCanonicalFormIgnoresKeyOrderAndDomainCase() throws {
        let a = try TenantRequest.parse(bytes(
            #"{"domain": "acme.com", "admin": {"username": "u", "email": "u@acme.com", "firstName": "F"}, "plan": "P", "attributes": {"x": 1, "y": {"b": 2, "a": 1}}}"#))
        let b = try TenantRequest.parse(bytes(
            #"{"attributes": {"y": {"a": 1, "b": 2}, "x": 1}, "plan": "P", "admin": {"firstName": "F", "email": "u@acme.com", "username": "u"}, "domain": "ACME.COM"}"#))
        XCTAssertEqual(a.canonical, b.canonical)

        let others = [
            #"{"domain": "acme.com", "admin": {"username": "u", "email": "u@acme.com"}, "plan": "P", "attributes": {"x": 1, "y": {"b": 2, "a": 1}}}"#,
            #"{"domain": "acme.com", "admin": {"username": "u", "email": "u@acme.com", "firstName": "F"}, "attributes": {"x": 1, "y": {"b": 2, "a": 1}}}"#,
            #"{"domain": "acme.com", "admin": {"username": "u", "email": "u@acme.com", "firstName": "F"}, "plan": "P", "attributes": {"x": 2, "y": {"b": 2, "a": 1}}}"#,
            #"{"domain": "acme.com", "admin": {"username": "u", "email": "u@acme.com", "firstName": "F"}, "plan": "P"}"#,
        ]
        for other in others {
            XCTAssertNotEqual(try TenantRequest.parse(bytes(other)).canonical, a.canonical, other)
        }
    }

    // MARK: SubscriptionRequest

    private static let secret24 = "whsec_" + Data(repeating: 7, count: 24).base64EncodedString()
    private static let secret64 = "whsec_" + Data(repeating: 7, count: 64).base64EncodedString()

    func testSubscriptionRequestRejectsEachBadField() {
        let url = #""url": "https://prod.example/hooks""#
        let cases: [(body: String, field: String)] = [
            ("", "body"),
            ("{", "body"),
            ("[1]", "body"),
            (#"{\#(url)}"#, "name"),
            (#"{"name": 1, \#(url)}"#, "name"),
            (#"{"name": "", \#(url)}"#, "name"),
            (#"{"name": "Prod", \#(url)}"#, "name"),
            (#"{"name": "-prod", \#(url)}"#, "name"),
            (#"{"name": "_prod", \#(url)}"#, "name"),
            (#"{"name": "pr od", \#(url)}"#, "name"),
            (#"{"name": "prod.eu", \#(url)}"#, "name"),
            (#"{"name": "\#(String(repeating: "p", count: 64))", \#(url)}"#, "name"),
            (#"{"name": "prod"}"#, "url"),
            (#"{"name": "prod", "url": 5}"#, "url"),
            (#"{"name": "prod", "url": ""}"#, "url"),
            (#"{"name": "prod", "url": "prod.example/hooks"}"#, "url"),
            (#"{"name": "prod", "url": "/hooks"}"#, "url"),
            (#"{"name": "prod", "url": "ftp://prod.example/hooks"}"#, "url"),
            (#"{"name": "prod", "url": "https://"}"#, "url"),
            (#"{"name": "prod", "url": "https://prod example/hooks"}"#, "url"),
            (#"{"name": "prod", "url": "mailto:ops@prod.example"}"#, "url"),
            (#"{"name": "prod", \#(url), "secret": 1}"#, "secret"),
            (#"{"name": "prod", \#(url), "secret": "abc"}"#, "secret"),
            (#"{"name": "prod", \#(url), "secret": "whsec_"}"#, "secret"),
            (#"{"name": "prod", \#(url), "secret": "whsec_not base64!"}"#, "secret"),
            // 25 zero bytes are AAAA...AA==; "AB==" sets padding bits: not canonical base64.
            (#"{"name": "prod", \#(url), "secret": "whsec_\#(String(repeating: "A", count: 32))AB=="}"#, "secret"),
            (#"{"name": "prod", \#(url), "secret": "whsec_\#(Data(repeating: 1, count: 23).base64EncodedString())"}"#, "secret"),
            (#"{"name": "prod", \#(url), "secret": "whsec_\#(Data(repeating: 1, count: 65).base64EncodedString())"}"#, "secret"),
            (#"{"name": "prod", \#(url), "secret": "\#(Data(repeating: 1, count: 32).base64EncodedString())"}"#, "secret"),
            (#"{"name": "prod", \#(url), "deliver": "some"}"#, "deliver"),
            (#"{"name": "prod", \#(url), "deliver": "ALL"}"#, "deliver"),
            (#"{"name": "prod", \#(url), "deliver": true}"#, "deliver"),
            (#"{"name": "prod", \#(url), "paused": true}"#, "paused"),
            (#"{"name": "prod", \#(url), "id": "sub_x"}"#, "id"),
        ]
        for (body, field) in cases {
            assertInvalid(field) { _ = try SubscriptionRequest.parse(bytes(body)) }
        }
    }

    func testSubscriptionRequestAccepts() throws {
        let plain = try SubscriptionRequest.parse(bytes(#"{"name": "prod", "url": "https://prod.example/hooks"}"#))
        XCTAssertEqual(plain.name, "prod")
        XCTAssertEqual(plain.url, "https://prod.example/hooks")
        XCTAssertNil(plain.secret)
        XCTAssertFalse(plain.deliverAll, "deliver defaults to new")

        let all = try SubscriptionRequest.parse(bytes(
            #"{"name": "0-env_2", "url": "http://127.0.0.1:9000/h?x=1", "secret": "\#(Self.secret24)", "deliver": "all"}"#))
        XCTAssertTrue(all.deliverAll)
        XCTAssertEqual(all.secret, Self.secret24)

        XCTAssertNoThrow(try SubscriptionRequest.parse(bytes(#"{"name": "a", "url": "HTTPS://x.example", "secret": "\#(Self.secret64)", "deliver": "new"}"#)))
        XCTAssertNoThrow(try SubscriptionRequest.parse(bytes(#"{"name": "\#(String(repeating: "p", count: 63))", "url": "http://[::1]:8080/"}"#)))
    }

    func testURLIsReadAsLibcurlReadsIt() {
        // Refused: libcurl refuses them, or would connect elsewhere than they read.
        for url in [
            #"http://127.0.0.1:40001\@evil.example/bs"#, #"http://h.example/a\b"#,
            "http://h.example:0/", "http://h.example:65536/", "http://h.example:99999/", "http://h.example:0080/",
            "http:/h.example/", "http:///h.example/", "http://0x7f.1/", "http://h%2eexample/", "http://a@b@h.example/",
            "http://[fe80::1%25eth0]/", "http://h.example:/x", "ftp://h.example/",
        ] {
            assertInvalid("url") { try SubscriptionRules.validateURL(url, field: "url") }
        }
        for url in ["http://h.example:1/", "https://h.example:65535/x?y#z", "http://[::1]:8080/", "http://u:p%40ss@h.example/", "HTTP://H.example"] {
            XCTAssertNoThrow(try SubscriptionRules.validateURL(url, field: "url"), url)
        }
    }

    func testURLPasswordIsMasked() {
        XCTAssertEqual(SubscriptionRules.maskingPassword("http://u:p%40ss@h.example:8/x?a=b@c"), "http://u:***@h.example:8/x?a=b@c")
        XCTAssertEqual(SubscriptionRules.maskingPassword("http://u:@h.example/"), "http://u:***@h.example/")
        for unchanged in ["http://u@h.example/", "http://h.example:8/a:b@c", "https://h.example?x=u:p@q", "nonsense"] {
            XCTAssertEqual(SubscriptionRules.maskingPassword(unchanged), unchanged)
        }
    }

    // MARK: SubscriptionPatch

    func testSubscriptionPatchRejectsEachBadField() {
        let cases: [(body: String, field: String)] = [
            ("", "body"),
            ("[]", "body"),
            ("{}", "body"),
            (#"{"paused": "yes"}"#, "paused"),
            (#"{"paused": 1}"#, "paused"),
            (#"{"paused": null}"#, "paused"),
            (#"{"url": 5}"#, "url"),
            (#"{"url": "nope"}"#, "url"),
            (#"{"url": "ftp://x.example/"}"#, "url"),
            (#"{"name": "other"}"#, "name"),
            (#"{"id": "sub_x", "paused": true}"#, "id"),
            (#"{"secret": "\#(Self.secret24)"}"#, "secret"),
            (#"{"deliver": "all"}"#, "deliver"),
            (#"{"createdAt": "2026-01-01T00:00:00Z"}"#, "createdAt"),
            (#"{"counts": {}}"#, "counts"),
            (#"{"paused": true, "colour": "blue"}"#, "colour"),
        ]
        for (body, field) in cases {
            assertInvalid(field) { _ = try SubscriptionPatch.parse(bytes(body)) }
        }
    }

    func testSubscriptionPatchReadOnlyAndUnknownSayWhich() {
        do {
            _ = try SubscriptionPatch.parse(bytes(#"{"name": "other"}"#))
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(error.message, "is read-only")
        }
        do {
            _ = try SubscriptionPatch.parse(bytes(#"{"colour": "blue"}"#))
            XCTFail("expected an error")
        } catch {
            XCTAssertEqual(error.message, "unknown field")
        }
    }

    func testSubscriptionPatchAccepts() throws {
        let pause = try SubscriptionPatch.parse(bytes(#"{"paused": true}"#))
        XCTAssertEqual(pause.paused, true)
        XCTAssertNil(pause.url)
        let move = try SubscriptionPatch.parse(bytes(#"{"url": "https://new.example/h"}"#))
        XCTAssertEqual(move.url, "https://new.example/h")
        XCTAssertNil(move.paused)
        let both = try SubscriptionPatch.parse(bytes(#"{"url": "http://n.example", "paused": false}"#))
        XCTAssertEqual(both.paused, false)
        XCTAssertEqual(both.url, "http://n.example")
    }

    // MARK: DurationParser

    func testDurationParserAccepts() {
        let cases: [(String, Duration)] = [
            ("250ms", .milliseconds(250)),
            ("0ms", .zero),
            ("2s", .seconds(2)),
            ("1.5s", .milliseconds(1500)),
            ("0s", .zero),
            ("10m", .seconds(600)),
            ("1h", .seconds(3600)),
            ("0.5h", .seconds(1800)),
            ("5", .seconds(5)),
            ("0.25", .milliseconds(250)),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(DurationParser.parse(text), expected, text)
        }
    }

    func testDurationParserRejects() {
        let cases = ["", "s", "ms", "m", "h", "-1s", "-5", "+1s", "+5", "abc", "1x", "1 s", " 1s", "1s ", "1sec", "1min",
                     "1d", "5hs", "1m30s", "infs", "inf", "nan", "nanms", "1,5s",
                     // Not plain decimals, or so large the arithmetic would overflow.
                     "0x10s", "1e3s", ".5s", "5.s", "1.2.3s", "99999999999999999999h", "366000000s"]
        for text in cases {
            XCTAssertNil(DurationParser.parse(text), "\(text) must be refused")
        }
    }

    func testDurationFormatRoundTrips() {
        for text in ["250ms", "2s", "10m", "1h", "0s", "1500ms", "90s"] {
            guard let duration = DurationParser.parse(text) else {
                XCTFail("\(text) did not parse")
                continue
            }
            XCTAssertEqual(DurationParser.format(duration), text)
            XCTAssertEqual(DurationParser.parse(DurationParser.format(duration)), duration)
        }
    }
}
