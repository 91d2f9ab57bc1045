import Essentials
import Foundation
import Logging

/// How log events are written: `text` for people, `json` for log shippers.
package enum LogFormat: String, CaseIterable, Sendable {
    case text, json
}

/// Writes every log event as exactly one line on stderr, whatever its
/// message holds (newlines and other control characters are escaped).
///
/// - `text`: `2026-11-29T10:00:00.123Z info listening on http://127.0.0.1:8080 backlog=0 version=0.1.0`
///   (metadata as `key=value`, values quoted when they hold spaces, quotes or `=`).
/// - `json`: `{"time":"2026-11-29T10:00:00.123Z","level":"info","message":"...","backlog":0,...}`,
///   the metadata as fields beside `time`, `level` and `message`.
package struct LineLogHandler: LogHandler {
    package var metadata: Logger.Metadata = [:]
    package var metadataProvider: Logger.MetadataProvider?
    package var logLevel: Logger.Level
    private let format: LogFormat
    private let output: @Sendable (String) -> Void

    package init(
        format: LogFormat, level: Logger.Level, metadataProvider: Logger.MetadataProvider? = nil,
        output: @escaping @Sendable (String) -> Void = LineLogHandler.writeToStandardError
    ) {
        self.format = format
        self.logLevel = level
        self.metadataProvider = metadataProvider
        self.output = output
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { $1 } }
        if let given = event.metadata { fields.merge(given) { $1 } }
        if let error = event.error { fields["error"] = .string("\(error)") }
        output(Self.line(
            format: format, time: Self.timestamp(), level: event.level, message: event.message.description, fields: fields))
    }

    /// One event as one line, without its line feed.
    static func line(
        format: LogFormat, time: String, level: Logger.Level, message: String, fields: Logger.Metadata
    ) -> String {
        let sorted = fields.sorted { $0.key < $1.key }
        switch format {
        case .text:
            var line = "\(time) \(level.rawValue) \(escapedText(message))"
            for (key, value) in sorted {
                line += " \(escapedText(key))=\(textValue(value))"
            }
            return line
        case .json:
            var line = "{\"time\":\(jsonString(time)),\"level\":\(jsonString(level.rawValue)),\"message\":\(jsonString(message))"
            for (key, value) in sorted {
                // A field never replaces the three every line has.
                let name = ["time", "level", "message"].contains(key) ? "field." + key : key
                line += ",\(jsonString(name)):\(jsonValue(value))"
            }
            return line + "}"
        }
    }

    /// RFC 3339 in UTC with milliseconds: `2026-11-29T10:00:00.123Z`.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func padded(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return padded(Int(parts.tm_year) + 1900, 4) + "-" + padded(Int(parts.tm_mon) + 1, 2) + "-"
            + padded(Int(parts.tm_mday), 2) + "T" + padded(Int(parts.tm_hour), 2) + ":" + padded(Int(parts.tm_min), 2)
            + ":" + padded(Int(parts.tm_sec), 2) + "." + padded(now.tv_nsec / 1_000_000, 3) + "Z"
    }

    /// Lines from all threads go out whole, one write each. A plain NSLock:
    /// `Locked<Void>` made ThreadSanitizer report its zero-sized value as raced.
    private static let stderrLock = NSLock()

    static let writeToStandardError: @Sendable (String) -> Void = { line in
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        stderrLock.withLock {
            bytes.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = write(STDERR_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
                    if written > 0 {
                        offset += written
                    } else if written < 0 && errno == EINTR {
                        continue
                    } else {
                        return  // stderr is gone; nothing better to do with a log line
                    }
                }
            }
        }
    }

    // MARK: Text

    /// Control characters (newlines above all) as escapes, so an event stays on its line.
    static func escapedText(_ text: String) -> String {
        text.unicodeScalars.contains(where: isControl) ? escaped(text, json: false) : text
    }

    private static func textValue(_ value: Logger.Metadata.Value) -> String {
        let text: String
        switch value {
        case .string(let string): text = string
        case .stringConvertible(let convertible): text = convertible.description
        case .array, .dictionary: return jsonValue(value)
        }
        let plain = !text.isEmpty && !text.unicodeScalars.contains {
            $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\\" || isControl($0)
        }
        return plain ? text : jsonString(text)
    }

    // MARK: JSON

    static func jsonString(_ text: String) -> String {
        "\"" + escaped(text, json: true) + "\""
    }

    private static func jsonValue(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let string):
            return jsonString(string)
        case .stringConvertible(let convertible):
            // Numbers and booleans stay numbers and booleans; anything else is its description.
            switch convertible {
            case let number as Int: return String(number)
            case let number as Int64: return String(number)
            case let number as Double where number.isFinite: return String(number)
            case let flag as Bool: return flag ? "true" : "false"
            default: return jsonString(convertible.description)
            }
        case .array(let values):
            return "[" + values.map(jsonValue).joined(separator: ",") + "]"
        case .dictionary(let fields):
            let members = fields.sorted { $0.key < $1.key }.map { jsonString($0.key) + ":" + jsonValue($0.value) }
            return "{" + members.joined(separator: ",") + "}"
        }
    }

    /// Control characters as escapes; in JSON, quotes and backslashes too.
    private static func escaped(_ text: String, json: Bool) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"" where json: out += "\\\""
            case "\\" where json: out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where isControl(scalar): out += "\\u" + hex4(scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// C0 and C1 controls, DEL, and the two Unicode line separators.
    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
    }

    private static func hex4(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
