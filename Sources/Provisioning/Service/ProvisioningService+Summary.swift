extension ProvisioningService {
    /// Tenants accepted and webhook attempts by outcome since this process
    /// started, for the shutdown summary.
    package func runTotals() -> (tenantsAccepted: Int, attempts: [String: Int]) {
        metrics.runTotals()
    }
}
