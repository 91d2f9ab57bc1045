import XCTest
@testable import Essentials

final class JSONTests: XCTestCase {
    func parse(_ text: String) throws -> JSON { try JSON.parse(text) }

    // MARK: Parsing

    func testScalars() throws {
        XCTAssertEqual(try parse("null"), .null)
        XCTAssertEqual(try parse("true"), .bool(true))
        XCTAssertEqual(try parse("false"), .bool(false))
        XCTAssertEqual(try parse("\"hi\""), .string("hi"))
        XCTAssertEqual(try parse(" \t\r\n 42 \n"), .number("42"))
    }

    func testNumbersKeepTheirText() throws {
        for text in ["0", "-0", "12345678901234567890123", "3.14159265358979323846", "1e400", "-2.5E-3", "6.02e+23", "0.0"] {
            XCTAssertEqual(try parse(text), .number(text), text)
            XCTAssertEqual(try parse(text).text, text)
        }
    }

    func testObjectsKeepKeyOrder() throws {
        let value = try parse(#"{"zeta": 1, "alpha": [true, null, {"x": "y"}], "mid": {}}"#)
        XCTAssertEqual(value.objectMembers?.map(\.0), ["zeta", "alpha", "mid"])
        XCTAssertEqual(value["alpha"], .array([.bool(true), .null, .object([("x", .string("y"))])]))
        XCTAssertEqual(value["mid"], .object([]))
        XCTAssertNil(value["missing"])
        XCTAssertEqual(value.text, #"{"zeta":1,"alpha":[true,null,{"x":"y"}],"mid":{}}"#)
    }

    func testStringEscapes() throws {
        let value = try parse(#""q\" b\\ s\/ \b\f\n\r\t \u0041\u00e9\u4e2d \ud83d\ude00""#)
        XCTAssertEqual(value.stringValue, "q\" b\\ s/ \u{8}\u{c}\n\r\t Aé中 😀")
    }

    func testRawUTF8InStrings() throws {
        XCTAssertEqual(try parse("\"café 中 😀\"").stringValue, "café 中 😀")
    }

    func testInvalidDocuments() {
        let bad = [
            "", " ", "{", "}", "[", "[1,]", "[,1]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "{\"a\":}", "{'a':1}",
            "01", "-", "1.", ".5", "1e", "1e+", "+1", "0x10", "NaN", "Infinity", "-Infinity",
            "tru", "nul", "True", "\"unterminated", "\"bad \\x escape\"", "\"\\u12\"", "\"\\u12G4\"",
            "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"tab\there\"", "\"new\nline\"",
            "1 2", "{} {}", "[1] x", "{\"a\":1,\"a\":2}", "\u{feff}{}",
        ]
        for text in bad {
            XCTAssertThrowsError(try parse(text), "accepted \(text.debugDescription)")
        }
    }

    func testInvalidUTF8IsRefused() {
        XCTAssertThrowsError(try JSON.parse([34, 0xC3, 0x28, 34]))
        XCTAssertThrowsError(try JSON.parse([34, 0xFF, 34]))
    }

    func testErrorsSayWhere() {
        do {
            _ = try JSON.parse(#"{"a": [1, 2,, 3]}"#)
            XCTFail("accepted")
        } catch {
            XCTAssertEqual(error.offset, 12)
            XCTAssertFalse(error.message.isEmpty)
            XCTAssertTrue(error.description.contains("at byte 12"))
        }
    }

    func testDepthIsBounded() throws {
        let ok = String(repeating: "[", count: JSON.maximumDepth) + String(repeating: "]", count: JSON.maximumDepth)
        XCTAssertNoThrow(try parse(ok))
        let deep = String(repeating: "[", count: JSON.maximumDepth + 1) + String(repeating: "]", count: JSON.maximumDepth + 1)
        XCTAssertThrowsError(try parse(deep))
        // Far deeper input fails cleanly too, without exhausting the stack.
        XCTAssertThrowsError(try parse(String(repeating: "{\"a\":", count: 100_000)))
        XCTAssertThrowsError(try parse(String(repeating: "[", count: 100_000)))
    }

    // MARK: Writing

    func testSerializationEscapes() {
        let value = JSON.string("quote\" backslash\\ nl\n cr\r tab\t nul\u{0} bell\u{7} esc\u{1B} del\u{7F} é 😀")
        XCTAssertEqual(value.text, #""quote\" backslash\\ nl\n cr\r tab\t nul\u0000 bell\u0007 esc\u001b del"# + "\u{7F} é 😀\"")
    }

    func testRoundTrip() throws {
        let value = JSON.object([
            ("id", .string("t_1")),
            ("count", .int(3)),
            ("ratio", .number("0.25")),
            ("tags", .array([.string("a"), .string("b\u{1}")])),
            ("nested", .object([("ok", .bool(true)), ("none", .null)])),
            ("optional", .optional(nil as String?)),
            ("optionalInt", .optional(7 as Int?)),
        ])
        let text = value.text
        XCTAssertEqual(try JSON.parse(text), value)
        XCTAssertEqual(try JSON.parse(value.serialized()), value)
        XCTAssertEqual(value["optional"]?.isNull, true)
        XCTAssertEqual(value["optionalInt"], .number("7"))
    }

    func testCanonicalFormSortsKeysAtEveryLevel() throws {
        let a = try parse(#"{"b": 1, "a": {"y": 2, "x": [ {"d": 1, "c": 2} ]}}"#)
        let b = try parse(#"{"a": {"x": [ {"c": 2, "d": 1} ], "y": 2}, "b": 1}"#)
        XCTAssertNotEqual(a, b, "key order counts for ==")
        XCTAssertEqual(a.canonical, b.canonical)
        XCTAssertEqual(a.canonical.text, #"{"a":{"x":[{"c":2,"d":1}],"y":2},"b":1}"#)
    }

    func testAccessorsAndTypeNames() throws {
        let value = try parse(#"{"s": "x", "b": false, "n": 1, "a": [], "o": {}, "z": null}"#)
        XCTAssertEqual(value["s"]?.stringValue, "x")
        XCTAssertNil(value["n"]?.stringValue)
        XCTAssertEqual(value["b"]?.boolValue, false)
        XCTAssertNil(value["s"]?.boolValue)
        XCTAssertEqual(value["z"]?.isNull, true)
        XCTAssertNil(JSON.string("x")["key"], "subscript of a non-object")
        XCTAssertEqual(
            ["s", "b", "n", "a", "o", "z"].compactMap { value[$0]?.typeName },
            ["a string", "a boolean", "a number", "an array", "an object", "null"])
    }
}
