import ArgumentParser
import Foundation
import HTTPServer
import Logging
import Provisioning

struct Provisiond: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provisiond",
        abstract: "A durable topic that provisions every tenant in every environment.",
        version: ProvisiondVersion.current,
        subcommands: [Serve.self]
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the HTTP API and deliver webhooks.",
        discussion: """
            Every option can also be set by its variable PROVISIOND_<OPTION> (shown with each option); \
            a flag beats the variable. Durations take ms, s, m or h (250ms, 2s, 10m).
            """
    )

    // Flags are parsed by swift-argument-parser through the functions of
    // `OptionValue`; an option left out falls back to its variable, parsed by
    // the same function (`resolve()`), then to `ServiceConfiguration`'s
    // default, which its help shows. `.unconditional`: `--port -1` is a bad
    // port, not a missing value.
    private static let defaults = ServiceConfiguration()

    @Option(parsing: .unconditional, help: help("host", "Address to listen on.", default: defaults.host),
            transform: OptionValue.nonEmpty)
    var host: String?
    @Option(parsing: .unconditional, help: help("port", "Port to listen on (0: any free port).", default: defaults.port),
            transform: OptionValue.port)
    var port: Int?
    @Option(parsing: .unconditional,
            help: help("data-dir", "Directory of the database and the generated API token.", default: defaults.dataDirectory),
            transform: OptionValue.nonEmpty)
    var dataDir: String?
    // Checked in resolve(), never by the parser: a rejected token must not be echoed.
    @Option(parsing: .unconditional,
            help: help("api-token", "Bearer token for the API.", default: "generated once into <data-dir>/api-token"))
    var apiToken: String?
    @Option(parsing: .unconditional,
            help: help("delivery-timeout", "Time limit of one webhook attempt.", default: defaults.deliveryTimeout),
            transform: OptionValue.positiveDuration)
    var deliveryTimeout: Duration?
    @Option(parsing: .unconditional, help: help("retry-initial", "First retry delay.", default: defaults.retryInitial),
            transform: OptionValue.positiveDuration)
    var retryInitial: Duration?
    @Option(parsing: .unconditional,
            help: help("retry-max", "Longest retry delay (at least --retry-initial).", default: defaults.retryMax),
            transform: OptionValue.positiveDuration)
    var retryMax: Duration?
    @Option(parsing: .unconditional,
            help: help("max-attempts", "Attempts before a delivery fails (0: until it succeeds).", default: defaults.maxAttempts),
            transform: OptionValue.maxAttempts)
    var maxAttempts: Int?
    @Option(parsing: .unconditional,
            help: help("max-in-flight", "Concurrent attempts per subscription.", default: defaults.maxInFlight),
            transform: OptionValue.maxInFlight)
    var maxInFlight: Int?
    @Option(parsing: .unconditional,
            help: help("max-outgoing", "Concurrent attempts across all subscriptions, lowered to what ulimit -n leaves room for.",
                       default: defaults.maxOutgoing),
            transform: OptionValue.maxOutgoing)
    var maxOutgoing: Int?
    @Option(parsing: .unconditional,
            help: help("event-loops", "HTTP event loop threads (0: one per core).", default: defaults.eventLoops),
            transform: OptionValue.eventLoops)
    var eventLoops: Int?
    @Option(parsing: .unconditional,
            help: help("max-connections", "Open HTTP connections at most; more are answered 503.", default: defaults.maxConnections),
            transform: OptionValue.maxConnections)
    var maxConnections: Int?
    @Option(parsing: .unconditional,
            help: help("idle-timeout", "Close idle keep-alive connections after this.", default: defaults.idleTimeout),
            transform: OptionValue.positiveDuration)
    var idleTimeout: Duration?
    @Option(parsing: .unconditional,
            help: help("request-timeout", "Time for a request head to arrive (408 after it; 3 times this for the body).",
                       default: defaults.requestTimeout),
            transform: OptionValue.positiveDuration)
    var requestTimeout: Duration?
    @Option(parsing: .unconditional,
            help: help("webhook-ca-file", "PEM file of the CAs trusted for https webhooks.", default: "the system's CAs"),
            transform: OptionValue.caFile)
    var webhookCAFile: String?
    @Option(parsing: .unconditional,
            help: help("database", "Where the topic is stored: sqlite: (the file in --data-dir) or postgres://user:pass@host:port/db, shared by several instances.",
                       default: "sqlite:"))
    var database: String?
    @Option(parsing: .unconditional,
            help: help("claim-lease", "PostgreSQL: how long a claimed delivery stays with its instance before another takes it over.",
                       default: defaults.claimLease),
            transform: OptionValue.positiveDuration)
    var claimLease: Duration?
    @Option(parsing: .unconditional,
            help: help("log-level", "Least severe log lines written: trace, debug, info, notice, warning, error or critical.",
                       default: Serve.defaultLogLevel.rawValue),
            transform: OptionValue.logLevel)
    var logLevel: Logger.Level?
    @Option(parsing: .unconditional,
            help: help("log-format", "Log lines as text or json (one object per line).", default: Serve.defaultLogFormat.rawValue),
            transform: OptionValue.logFormat)
    var logFormat: LogFormat?

    static let defaultLogLevel = Logger.Level.info
    static let defaultLogFormat = LogFormat.text

    /// The environment variable of an option: `data-dir` → `PROVISIOND_DATA_DIR`.
    static func variable(_ option: String) -> String {
        "PROVISIOND_" + option.uppercased().replacingOccurrences(of: "-", with: "_")
    }

    /// An option's help, ending with its default and its variable.
    private static func help(_ option: String, _ text: String, default value: Any) -> ArgumentHelp {
        let duration = (value as? Duration).map(DurationParser.format)
        return ArgumentHelp(
            "\(text) (default: \(duration ?? "\(value)"), env: \(variable(option)))",
            valueName: duration != nil ? "duration" : (value is Int ? "n" : nil))
    }

    /// The flag if given, else the option's variable parsed as the flag would be, else nil.
    private func value<T>(_ flag: T?, _ option: String, _ parse: (String) throws -> T) throws -> T? {
        if let flag { return flag }
        let variable = Serve.variable(option)
        guard let text = ProcessInfo.processInfo.environment[variable] else { return nil }
        do {
            return try parse(text)
        } catch {
            throw ValidationError("The value '\(text)' of \(variable) is invalid for '--\(option)': \(error)")
        }
    }

    func resolve() throws -> ServiceConfiguration {
        var config = Serve.defaults
        config.host = try value(host, "host", OptionValue.nonEmpty) ?? config.host
        config.port = try value(port, "port", OptionValue.port) ?? config.port
        config.dataDirectory = try value(dataDir, "data-dir", OptionValue.nonEmpty) ?? config.dataDirectory
        if let token = apiToken ?? ProcessInfo.processInfo.environment[Serve.variable("api-token")] {
            guard !token.isEmpty, token.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
                throw ValidationError("--api-token: must be non-empty printable ASCII without spaces")
            }
            config.apiToken = token
        }
        config.deliveryTimeout = try value(deliveryTimeout, "delivery-timeout", OptionValue.positiveDuration) ?? config.deliveryTimeout
        config.retryInitial = try value(retryInitial, "retry-initial", OptionValue.positiveDuration) ?? config.retryInitial
        config.retryMax = try value(retryMax, "retry-max", OptionValue.positiveDuration) ?? config.retryMax
        config.maxAttempts = try value(maxAttempts, "max-attempts", OptionValue.maxAttempts) ?? config.maxAttempts
        config.maxInFlight = try value(maxInFlight, "max-in-flight", OptionValue.maxInFlight) ?? config.maxInFlight
        config.maxOutgoing = try value(maxOutgoing, "max-outgoing", OptionValue.maxOutgoing) ?? config.maxOutgoing
        config.eventLoops = try value(eventLoops, "event-loops", OptionValue.eventLoops) ?? config.eventLoops
        config.maxConnections = try value(maxConnections, "max-connections", OptionValue.maxConnections) ?? config.maxConnections
        config.idleTimeout = try value(idleTimeout, "idle-timeout", OptionValue.positiveDuration) ?? config.idleTimeout
        config.requestTimeout = try value(requestTimeout, "request-timeout", OptionValue.positiveDuration) ?? config.requestTimeout
        config.webhookCAFile = try value(webhookCAFile, "webhook-ca-file", OptionValue.caFile)
        // Checked here, not echoed: a database URL may carry a password.
        if let database = try value(database, "database", { $0 }), database != "sqlite:", database != "sqlite" {
            guard database.hasPrefix("postgres://") || database.hasPrefix("postgresql://") else {
                throw ValidationError("--database: expected sqlite: or a postgres:// URL")
            }
            guard config.apiToken != nil else {
                throw ValidationError("--database postgres://…: --api-token (or PROVISIOND_API_TOKEN) must be given, the same for every instance")
            }
            config.postgresURL = database
        }
        config.claimLease = try value(claimLease, "claim-lease", OptionValue.positiveDuration) ?? config.claimLease
        // Renewed every second while an attempt is in flight: shorter would lapse between renewals.
        guard config.claimLease >= .seconds(2) else {
            throw ValidationError("--claim-lease: must be at least 2s (a live instance renews its claims every second)")
        }
        guard config.retryMax >= config.retryInitial else {
            throw ValidationError("--retry-max: must be at least --retry-initial (\(DurationParser.format(config.retryInitial)))")
        }
        return config
    }

    func run() async throws {
        let config = try resolve()
        let level = try value(logLevel, "log-level", OptionValue.logLevel) ?? Serve.defaultLogLevel
        let format = try value(logFormat, "log-format", OptionValue.logFormat) ?? Serve.defaultLogFormat
        LoggingSystem.bootstrap { _ in LineLogHandler(format: format, level: level) }
        let started = ContinuousClock.now
        let signals = SignalWaiter([SIGTERM, SIGINT])
        let logger = Logger(label: "provisiond")
        let service: ProvisioningService
        let backlog: Int
        do {
            service = try ProvisioningService(configuration: config, logger: logger)
            backlog = try service.store.pendingBacklog()
        } catch {
            throw StartupError(message: "\(error)")
        }
        let port = try service.start()
        let shownHost = config.host.contains(":") ? "[\(config.host)]" : config.host
        logger.info("listening on http://\(shownHost):\(port)", metadata: [
            "version": "\(ProvisiondVersion.current)",
            "store": "\(service.store.description)",
            "backlog": .stringConvertible(backlog),
        ])

        let signal = await signals.wait()
        logger.info("received \(signal == SIGTERM ? "SIGTERM" : "SIGINT"), shutting down")
        await service.shutdown()
        let uptime = Double((ContinuousClock.now - started).milliseconds) / 1000
        let totals = service.runTotals()
        let delivered = totals.attempts["delivered", default: 0]
        let failedAttempts = totals.attempts["retry", default: 0] + totals.attempts["failed", default: 0]
        logger.info(
            "stopped after \(DurationParser.format(.seconds(Int64(uptime)))): \(totals.tenantsAccepted) tenants accepted, \(delivered) deliveries made, \(failedAttempts) attempts failed",
            metadata: [
                "uptime_seconds": .stringConvertible(uptime),
                "tenants_accepted": .stringConvertible(totals.tenantsAccepted),
                "deliveries_made": .stringConvertible(delivered),
                "attempts_failed": .stringConvertible(failedAttempts),
            ])
    }
}

/// How each option's text becomes its value, for its flag and its variable alike.
/// A thrown error's description completes "The value 'x' is invalid for '--option': ...".
enum OptionValue {
    struct Invalid: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static let port = integer(0...65535)
    static let maxAttempts = integer(0...1_000_000)
    static let maxInFlight = integer(1...10_000)
    static let maxOutgoing = integer(1...100_000)
    static let eventLoops = integer(0...256)
    static let maxConnections = integer(1...1_000_000)

    static func integer(_ range: ClosedRange<Int>) -> @Sendable (String) throws -> Int {
        { text in
            guard let number = Int(text), range.contains(number) else {
                throw Invalid("not a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return number
        }
    }

    @Sendable static func nonEmpty(_ text: String) throws -> String {
        guard !text.isEmpty else { throw Invalid("must not be empty") }
        return text
    }

    @Sendable static func positiveDuration(_ text: String) throws -> Duration {
        guard let duration = DurationParser.parse(text) else {
            throw Invalid("not a duration (use ms, s, m or h, as in 250ms, 2s, 10m)")
        }
        guard duration > .zero else { throw Invalid("must be more than 0") }
        return duration
    }

    /// Checked at start: a typo would otherwise show only as a TLS error on every https delivery.
    @Sendable static func caFile(_ path: String) throws -> String {
        guard let pem = FileManager.default.contents(atPath: path) else { throw Invalid("cannot read the file") }
        guard String(decoding: pem, as: UTF8.self).contains("-----BEGIN CERTIFICATE-----") else {
            throw Invalid("the file holds no PEM certificate")
        }
        return path
    }

    @Sendable static func logLevel(_ text: String) throws -> Logger.Level {
        guard let level = Logger.Level(rawValue: text) else {
            throw Invalid("not one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return level
    }

    @Sendable static func logFormat(_ text: String) throws -> LogFormat {
        guard let format = LogFormat(rawValue: text) else {
            throw Invalid("not one of \(LogFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return format
    }
}

/// A problem that stops the service from starting (an unusable data dir, a
/// port in use): one line on stderr and exit 2.
struct StartupError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
