import Foundation

/// Runs every file (directories: every file in them) through `run`.
package func replayCorpus(_ paths: ArraySlice<String>, run: ([UInt8]) -> Void) throws -> Int {
    var count = 0
    for path in paths {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
        let files = isDirectory.boolValue
            ? try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { (path as NSString).appendingPathComponent($0) }
            : [path]
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            run(Array(data))
            count += 1
        }
    }
    return count
}

/// The replayer's main: every file named on the command line through `run`.
package func replayCommandLine(through what: String, _ run: ([UInt8]) -> Void) throws {
    let count = try replayCorpus(CommandLine.arguments.dropFirst(), run: run)
    print("replayed \(count) inputs through \(what)")
}
