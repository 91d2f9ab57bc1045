import Foundation

/// One provisiond per data dir: two dispatchers on one SQLite topic would
/// both deliver every event. A POSIX record lock on `<data-dir>/provisiond.lock`
/// is held for the life of the process; the kernel drops it when the holder
/// dies, so a kill -9 leaves nothing behind, and `F_GETLK` names the holder's
/// pid without a pid file that could go stale.
final class DataDirectoryLock: Sendable {
    static let fileName = "provisiond.lock"
    private let fd: Int32

    /// Takes the lock or fails with a line naming the running process. The
    /// file is only created when missing; a refused start changes nothing.
    init(directory: String) throws {
        let path = (directory as NSString).appendingPathComponent(DataDirectoryLock.fileName)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StartupFailure("data dir \(directory): cannot open \(path) (\(String(cString: strerror(errno))))") }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        if fcntl(fd, F_SETLK, &lock) != 0 {
            let code = errno
            var holder = flock()
            holder.l_type = Int16(F_WRLCK)
            holder.l_whence = Int16(SEEK_SET)
            let pid = fcntl(fd, F_GETLK, &holder) == 0 && holder.l_type != Int16(F_UNLCK) ? "pid \(holder.l_pid)" : "another process"
            close(fd)
            if code == EACCES || code == EAGAIN {
                throw StartupFailure("data dir \(directory) is in use by a running provisiond (\(pid)); stop it or choose another --data-dir")
            }
            throw StartupFailure("data dir \(directory): cannot lock \(path) (\(String(cString: strerror(code))))")
        }
        self.fd = fd
    }

    deinit { close(fd) }
}
