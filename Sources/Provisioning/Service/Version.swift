/// The release, shown by `provisiond --version`, in the start log line and
/// in the User-Agent of every webhook.
package enum ProvisiondVersion {
    package static let current = "0.1.0"
}
