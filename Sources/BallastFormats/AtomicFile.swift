import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Crash-safe file replacement: a reader sees either the old file or the complete new one.
public enum AtomicFile {
    /// `mode` is the file's permissions from its creation on (0o600 for a secret: never readable by others, not even briefly).
    public static func write(_ data: Data, to path: String, mode: mode_t = 0o644) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let tmp = path + ".tmp-\(getpid())"
        unlink(tmp)  // a leftover from a crashed writer would keep its own permissions
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_EXCL, mode)
        guard fd >= 0 else { throw FileError(path: tmp, problem: "cannot create (\(String(cString: strerror(errno))))") }
        var ok = true
        data.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                if n <= 0 { ok = false; return }
                done += n
            }
        }
        if !ok || fsync(fd) != 0 {
            let msg = String(cString: strerror(errno))
            close(fd)
            unlink(tmp)
            throw FileError(path: tmp, problem: "write failed (\(msg))")
        }
        close(fd)
        guard rename(tmp, path) == 0 else {
            let msg = String(cString: strerror(errno))
            unlink(tmp)
            throw FileError(path: path, problem: "rename failed (\(msg))")
        }
        syncDirectory(dir.isEmpty ? "." : dir)
    }

    public static func write(_ string: String, to path: String, mode: mode_t = 0o644) throws {
        try write(Data(string.utf8), to: path, mode: mode)
    }

    public static func syncDirectory(_ dir: String) {
        let dfd = open(dir, O_RDONLY)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
    }
}
