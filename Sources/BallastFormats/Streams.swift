import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes to standard streams and logs that never trap. `FileHandle.write(_:)` traps on any error (a
/// closed pipe after an SSH drop, a full disk), which would end a node without its final checkpoint;
/// here a failed write is reported to the caller instead. SIGPIPE is ignored process-wide so that a
/// closed pipe is an error return (EPIPE), not a kill.
public enum Streams {
    public static func ignoreBrokenPipes() { signal(SIGPIPE, SIG_IGN) }

    /// Writes all of `data` to `fd`; false (and errno set) when the write failed.
    @discardableResult
    public static func write(_ data: Data, to fd: Int32) -> Bool {
        data.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                done += n
            }
            return true
        }
    }

    public static func out(_ text: String) { write(Data(text.utf8), to: STDOUT_FILENO) }
    public static func err(_ text: String) { write(Data(text.utf8), to: STDERR_FILENO) }
}
