import Foundation
import HTTPServer
import Logging

/// Wires the pieces: the store (durable topic), the HTTP API and server, the
/// webhook dispatcher, and the `deliver: all` catch-up.
package final class ProvisioningService: Sendable {
    let configuration: ServiceConfiguration
    package let store: TopicStore
    let server: HTTPServer
    let metrics = Metrics()
    let logger: Logger
    private let backfill: BackfillRunner
    let dispatcher: Dispatcher
    /// Held for the life of the service: one provisiond per data dir (SQLite;
    /// on PostgreSQL several instances share the database on purpose).
    private let directoryLock: DataDirectoryLock?

    package init(configuration: ServiceConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        var limits = HTTPLimits()
        limits.maxBodyBytes = 1 << 20
        limits.maxHeadBytes = 16 * 1024
        limits.maxConnections = configuration.maxConnections
        limits.idleTimeout = configuration.idleTimeout
        limits.headTimeout = configuration.requestTimeout
        limits.bodyTimeout = configuration.requestTimeout * 3
        // The port first: a start that cannot listen must leave the data dir untouched.
        let listener: HTTPListener
        do {
            listener = try HTTPListener.bind(host: configuration.host, port: configuration.port, limits: limits)
        } catch {
            throw StartupFailure("cannot listen on \(configuration.host):\(configuration.port): \(error)")
        }
        let directory = configuration.dataDirectory
        if let url = configuration.postgresURL {
            // Nothing goes to the data dir: the topic and the token are shared by every instance.
            directoryLock = nil
            do {
                store = TopicStore(engine: try PostgresEngine.open(url: url))
            } catch {
                throw StartupFailure("database: \(error)")
            }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw StartupFailure("data dir \(directory): cannot create it (\(error.localizedDescription))")
            }
            guard access(directory, W_OK | X_OK) == 0 else {
                throw StartupFailure("data dir \(directory): not writable")
            }
            // Then the lock: a second provisiond on this data dir stops here, having changed nothing.
            directoryLock = try DataDirectoryLock(directory: directory)
            // The database next: if it is unusable, the start fails with one line and writes no token file.
            do {
                store = try TopicStore(directory: directory)
            } catch {
                throw StartupFailure("data dir \(directory): cannot open the database (\(error))")
            }
        }
        let (token, source) = try APIToken.resolve(given: configuration.apiToken, dataDirectory: directory)
        switch source {
        case .given: break
        case .generated(let path), .stored(let path): logger.info("api token stored in \(path)")
        }
        let serverConfiguration = HTTPServer.Configuration(
            host: configuration.host, port: listener.port, eventLoopCount: configuration.eventLoops, limits: limits)
        let store = self.store
        let metrics = self.metrics
        var dispatcherSettings = Dispatcher.Settings(
            policy: RetryPolicy(
                initial: configuration.retryInitial, maximum: configuration.retryMax,
                maxAttempts: configuration.maxAttempts),
            deliveryTimeout: configuration.deliveryTimeout, maxInFlight: configuration.maxInFlight)
        dispatcherSettings.caFile = configuration.webhookCAFile
        dispatcherSettings.maxOutgoing = configuration.maxOutgoing
        let queue = store.makeDeliveryQueue(
            policy: dispatcherSettings.policy, maxInFlight: configuration.maxInFlight, claimLease: configuration.claimLease)
        let dispatcher = Dispatcher(queue: queue, settings: dispatcherSettings, metrics: metrics, logger: logger)
        self.dispatcher = dispatcher
        let backfill = BackfillRunner(store: store, logger: logger, batchDone: { dispatcher.wake() })
        self.backfill = backfill
        let api = ProvisioningAPI(
            store: store, token: Array(token.utf8), metrics: metrics, logger: logger,
            deliveriesCreated: { dispatcher.wake() },
            subscriptionRevived: { dispatcher.probeNow(subscriptionId: $0) },
            backfillRequested: { backfill.request() })
        server = try HTTPServer(
            configuration: serverConfiguration, listener: listener, logger: logger,
            immediate: api.makeImmediateHandler(), handler: api.makeHandler())
    }

    /// Starts serving; returns the bound port.
    package func start() throws -> Int {
        metrics.setTenantsTotal((try? store.engine.readNow(TopicStore.countTenants)) ?? 0)
        backfill.request()  // resume an interrupted catch-up
        // Deliveries pending before a restart resume on their schedule;
        // those that were in flight when the process died are due at once.
        try dispatcher.start()
        return try server.start()
    }

    /// Stops accepting, finishes in-flight requests, hands back in-flight
    /// deliveries, and closes the database.
    package func shutdown() async {
        await server.shutdown(gracePeriod: .seconds(10))
        await backfill.stop()
        await dispatcher.shutdown(grace: .seconds(5))
        store.close()
    }
}
