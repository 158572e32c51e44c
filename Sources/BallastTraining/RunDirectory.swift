import BallastConfig
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A run's output folder, owned by one process. A fresh start where a trained run already is would
/// overwrite its checkpoint and metrics: it is refused, naming `--resume` and `--restart` (which moves
/// the old run aside, never deletes it). While a trainer lives it holds an exclusive lock on RUN/.lock,
/// so two processes never write one folder (the kernel drops the lock when a process dies), until its
/// run returns.
public final class RunDirectory {
    public let path: String
    private var lockDescriptor: Int32

    /// What shows that a folder holds a run: a checkpoint folder (`TrainingCheckpoint.locate`) or a file.
    public static let defaultMarks = ["checkpoint"]

    /// Checks `path` for a fresh start (`resume` false): with one of `marks` present, throws unless
    /// `restart`, which renames the folder to PATH.replaced-N first. Returns the folder it moved, if any.
    @discardableResult
    public static func prepare(_ path: String, resume: Bool, restart: Bool, marks: [String] = defaultMarks) throws -> String? {
        guard !resume else { return nil }
        let fm = FileManager.default
        guard let found = marks.first(where: { TrainingCheckpoint.locate(path + "/" + $0) != nil || isFile(path + "/" + $0) }) else { return nil }
        guard restart else {
            throw ConfigError("\(path) already holds a run (\(found) exists): continue it with --resume, or start over with --restart (the old run is moved aside, not deleted)")
        }
        var n = 1
        while fm.fileExists(atPath: "\(path).replaced-\(n)") { n += 1 }
        let aside = "\(path).replaced-\(n)"
        let lock = try RunDirectory(lock: path)  // never move a run another process is writing
        try withExtendedLifetime(lock) { try fm.moveItem(atPath: path, toPath: aside) }
        return aside
    }

    static func isFile(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
    }

    /// Creates `path` if needed and takes its lock, or throws naming the process that holds it.
    public init(lock path: String) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let file = path + "/.lock"
        let fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ConfigError("\(file): cannot open (\(String(cString: strerror(errno))))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: file, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw ConfigError("\(path) is in use by another Ballast process\(holder.isEmpty ? "" : " (pid \(holder))"); two runs cannot share one folder")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        lockDescriptor = fd
    }

    /// Gives the folder up (a trainer does when its run returns, so the same process may resume it).
    public func release() {
        if lockDescriptor >= 0 { close(lockDescriptor) }
        lockDescriptor = -1
    }

    deinit { release() }
}
