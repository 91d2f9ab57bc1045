import Foundation

/// What the standard `process_*` metrics show, read from /proc/self at
/// scrape time (swift-prometheus has no process collector on Linux).
struct ProcessStats: Sendable {
    var residentMemoryBytes: Double
    var cpuSeconds: Double
    var openFileDescriptors: Double
    /// Unix seconds.
    var startTime: Double

    /// nil where /proc is not there to read.
    static func read() -> ProcessStats? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8) else { return nil }
        // The command name, field 2, is in parentheses and may hold spaces: count fields after the last ')'.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); utime is 14, stime 15, starttime 22, rss 24.
        guard fields.count > 21, let utime = Double(fields[11]), let stime = Double(fields[12]),
              let started = Double(fields[19]), let rssPages = Double(fields[21])
        else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
        return ProcessStats(
            residentMemoryBytes: rssPages * pageSize, cpuSeconds: (utime + stime) / ticks,
            openFileDescriptors: Double(fds), startTime: bootTime() + started / ticks)
    }

    /// The `btime` line of /proc/stat: when the machine booted, in Unix seconds.
    private static func bootTime() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        return 0
    }
}
