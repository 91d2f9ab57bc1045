import ArgumentParser
import Foundation

// Exit codes: 0 on a clean stop or --help; 2 with one line on stderr for any
// bad flag, bad value or unusable data dir (the contract's promise).
do {
    var command = try Provisiond.parseAsRoot()
    if let serve = command as? Serve {
        try await serve.run()
    } else {
        try command.run()  // prints help for the bare command
    }
} catch {
    if Provisiond.exitCode(for: error) == .success {
        Provisiond.exit(withError: error)
    }
    let message = Provisiond.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
    FileHandle.standardError.write(Data("provisiond: \(message)\n".utf8))
    exit(2)
}
