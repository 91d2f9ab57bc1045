import Essentials
import Foundation
import Logging
import XCTest

@testable import Provisioning

/// Log lines: one per event in both formats, JSON that parses, nothing lost in escaping.
final class LineLogHandlerTests: XCTestCase {
    let awkward = "two\nlines, a \"quote\", a \\ backslash, a tab\t, a bell \u{07}, é and \u{2028}"

    func line(_ format: LogFormat, _ message: String, _ fields: Logger.Metadata = [:]) -> String {
        LineLogHandler.line(format: format, time: "2026-11-29T10:00:00.123Z", level: .warning, message: message, fields: fields)
    }

    func testJSONLineParsesBackToWhatWasLogged() throws {
        let text = line(.json, awkward, [
            "url": .string("http://x/\"y\"\n"), "backlog": .stringConvertible(12), "ratio": .stringConvertible(0.5),
            "up": .stringConvertible(true), "list": ["a", "b"], "nested": ["k": "v"],
            "message": "a field that would shadow the message",
        ])
        XCTAssertFalse(text.contains("\n"))
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        XCTAssertEqual(object["time"] as? String, "2026-11-29T10:00:00.123Z")
        XCTAssertEqual(object["level"] as? String, "warning")
        XCTAssertEqual(object["message"] as? String, awkward)
        XCTAssertEqual(object["field.message"] as? String, "a field that would shadow the message")
        XCTAssertEqual(object["url"] as? String, "http://x/\"y\"\n")
        XCTAssertEqual(object["backlog"] as? Int, 12)
        XCTAssertEqual(object["ratio"] as? Double, 0.5)
        XCTAssertEqual(object["up"] as? Bool, true)
        XCTAssertEqual(object["list"] as? [String], ["a", "b"])
        XCTAssertEqual(object["nested"] as? [String: String], ["k": "v"])
    }

    func testTextLineIsOneLineWithQuotedValuesWhereNeeded() {
        let text = line(.text, awkward, ["store": "sqlite /tmp/a b", "backlog": .stringConvertible(3), "empty": ""])
        XCTAssertFalse(text.contains("\n") || text.contains("\r") || text.contains("\u{2028}"))
        XCTAssertTrue(text.hasPrefix("2026-11-29T10:00:00.123Z warning two\\nlines, a \"quote\""), text)
        XCTAssertTrue(text.hasSuffix(" backlog=3 empty=\"\" store=\"sqlite /tmp/a b\""), text)
        XCTAssertEqual(line(.text, "listening on http://127.0.0.1:8080"), "2026-11-29T10:00:00.123Z warning listening on http://127.0.0.1:8080")
    }

    func testTimestampIsRFC3339InUTC() throws {
        let stamp = LineLogHandler.timestamp()
        XCTAssertNotNil(stamp.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"#, options: .regularExpression), stamp)
        let parsed = try XCTUnwrap(ISO8601DateFormatter.withFractionalSeconds.date(from: stamp))
        XCTAssertLessThan(abs(parsed.timeIntervalSinceNow), 5)
    }

    func testHandlerMergesItsMetadataWithTheEventsAndKeepsItsLevel() {
        let lines = Locked<[String]>([])
        var logger = Logger(label: "t") { _ in LineLogHandler(format: .json, level: .notice) { line in lines.withLock { $0.append(line) } } }
        logger[metadataKey: "component"] = "dispatcher"
        logger.info("hidden")
        logger.notice("shown", metadata: ["n": .stringConvertible(1)])
        let written = lines.withLock { $0 }
        XCTAssertEqual(written.count, 1)
        XCTAssertTrue(written[0].hasSuffix(#""message":"shown","component":"dispatcher","n":1}"#), written[0])
    }
}

extension ISO8601DateFormatter {
    static var withFractionalSeconds: ISO8601DateFormatter {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }
}
