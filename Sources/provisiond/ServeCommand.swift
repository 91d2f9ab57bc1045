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
        discussion: "Every option can also be set by PROVISIOND_<OPTION> (PROVISIOND_PORT, PROVISIOND_DATA_DIR, ...); a flag beats the variable."
    )

    @Option(parsing: .unconditional, help: "Address to listen on.") var host: String?
    @Option(parsing: .unconditional, help: "Port to listen on (0: any free port).") var port: String?
    @Option(name: .customLong("data-dir"), parsing: .unconditional, help: "Directory of the database and the generated API token.") var dataDir: String?
    @Option(name: .customLong("api-token"), parsing: .unconditional, help: "Bearer token for the API (default: generated into <data-dir>/api-token).") var apiToken: String?
    @Option(name: .customLong("delivery-timeout"), parsing: .unconditional, help: "Time limit of one webhook attempt.") var deliveryTimeout: String?
    @Option(name: .customLong("retry-initial"), parsing: .unconditional, help: "First retry delay.") var retryInitial: String?
    @Option(name: .customLong("retry-max"), parsing: .unconditional, help: "Longest retry delay.") var retryMax: String?
    @Option(name: .customLong("max-attempts"), parsing: .unconditional, help: "Attempts before a delivery fails (0: until it succeeds).") var maxAttempts: String?
    @Option(name: .customLong("max-in-flight"), parsing: .unconditional, help: "Concurrent attempts per subscription.") var maxInFlight: String?
    @Option(name: .customLong("max-outgoing"), parsing: .unconditional, help: "Concurrent attempts across all subscriptions (default 1024, lowered to what ulimit -n leaves room for).") var maxOutgoing: String?
    @Option(name: .customLong("event-loops"), parsing: .unconditional, help: "HTTP event loop threads (0: one per core).") var eventLoops: String?
    @Option(name: .customLong("max-connections"), parsing: .unconditional, help: "Open HTTP connections at most (default 10000).") var maxConnections: String?
    @Option(name: .customLong("idle-timeout"), parsing: .unconditional, help: "Close idle keep-alive connections after this (default 60s).") var idleTimeout: String?
    @Option(name: .customLong("request-timeout"), parsing: .unconditional, help: "Time for a request head to arrive, 408 after it (default 10s).") var requestTimeout: String?
    @Option(name: .customLong("webhook-ca-file"), parsing: .unconditional, help: "PEM file of the CAs trusted for https webhooks (default: the system's).") var webhookCAFile: String?

    /// Flag, else environment variable, else nil.
    private func value(_ flag: String?, _ option: String) -> String? {
        if let flag { return flag }
        let variable = "PROVISIOND_" + option.uppercased().replacingOccurrences(of: "-", with: "_")
        return ProcessInfo.processInfo.environment[variable]
    }

    func resolve() throws -> ServiceConfiguration {
        var config = ServiceConfiguration()
        func integer(_ flag: String?, _ option: String, _ range: ClosedRange<Int>) throws -> Int? {
            guard let text = value(flag, option) else { return nil }
            guard let number = Int(text), range.contains(number) else {
                throw ValidationError("--\(option): '\(text)' is not a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return number
        }
        func duration(_ flag: String?, _ option: String) throws -> Duration? {
            guard let text = value(flag, option) else { return nil }
            guard let duration = DurationParser.parse(text) else {
                throw ValidationError("--\(option): '\(text)' is not a duration (use ms, s, m or h, as in 250ms, 2s, 10m)")
            }
            return duration
        }
        if let host = value(host, "host") {
            guard !host.isEmpty else { throw ValidationError("--host: must not be empty") }
            config.host = host
        }
        config.port = try integer(port, "port", 0...65535) ?? config.port
        if let dir = value(dataDir, "data-dir") {
            guard !dir.isEmpty else { throw ValidationError("--data-dir: must not be empty") }
            config.dataDirectory = dir
        }
        if let token = value(apiToken, "api-token") {
            guard !token.isEmpty, token.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
                throw ValidationError("--api-token: must be non-empty printable ASCII without spaces")
            }
            config.apiToken = token
        }
        config.deliveryTimeout = try duration(deliveryTimeout, "delivery-timeout") ?? config.deliveryTimeout
        config.retryInitial = try duration(retryInitial, "retry-initial") ?? config.retryInitial
        config.retryMax = try duration(retryMax, "retry-max") ?? config.retryMax
        config.maxAttempts = try integer(maxAttempts, "max-attempts", 0...1_000_000) ?? config.maxAttempts
        config.maxInFlight = try integer(maxInFlight, "max-in-flight", 1...10_000) ?? config.maxInFlight
        config.maxOutgoing = try integer(maxOutgoing, "max-outgoing", 1...100_000) ?? config.maxOutgoing
        config.eventLoops = try integer(eventLoops, "event-loops", 0...256) ?? config.eventLoops
        config.maxConnections = try integer(maxConnections, "max-connections", 1...1_000_000) ?? config.maxConnections
        config.idleTimeout = try duration(idleTimeout, "idle-timeout") ?? config.idleTimeout
        config.requestTimeout = try duration(requestTimeout, "request-timeout") ?? config.requestTimeout
        if let caFile = value(webhookCAFile, "webhook-ca-file") {
            // Checked now: a typo would otherwise show only as a TLS error on every https delivery.
            guard let pem = FileManager.default.contents(atPath: caFile) else {
                throw ValidationError("--webhook-ca-file: cannot read '\(caFile)'")
            }
            guard String(decoding: pem, as: UTF8.self).contains("-----BEGIN CERTIFICATE-----") else {
                throw ValidationError("--webhook-ca-file: '\(caFile)' holds no PEM certificate")
            }
            config.webhookCAFile = caFile
        }
        guard config.idleTimeout > .zero else { throw ValidationError("--idle-timeout: must be more than 0") }
        guard config.requestTimeout > .zero else { throw ValidationError("--request-timeout: must be more than 0") }
        guard config.deliveryTimeout > .zero else { throw ValidationError("--delivery-timeout: must be more than 0") }
        guard config.retryInitial > .zero else { throw ValidationError("--retry-initial: must be more than 0") }
        guard config.retryMax >= config.retryInitial else {
            throw ValidationError("--retry-max: must be at least --retry-initial (\(DurationParser.format(config.retryInitial)))")
        }
        return config
    }

    func run() async throws {
        let config = try resolve()
        let signals = SignalWaiter([SIGTERM, SIGINT])
        var logger = Logger(label: "provisiond")
        logger.logLevel = .info
        let service: ProvisioningService
        do {
            service = try ProvisioningService(configuration: config, logger: logger)
        } catch {
            throw StartupError(message: "\(error)")
        }
        let port = try service.start()
        let shownHost = config.host.contains(":") ? "[\(config.host)]" : config.host
        logger.info("listening on http://\(shownHost):\(port)")

        let signal = await signals.wait()
        logger.info("received \(signal == SIGTERM ? "SIGTERM" : "SIGINT"), shutting down")
        await service.shutdown()
        logger.info("stopped")
    }
}

/// A problem that stops the service from starting (an unusable data dir, a
/// port in use): one line on stderr and exit 2.
struct StartupError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
