import BallastFormats
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Append-only journal of ledger events; `FileJournal` fsyncs every record, or once per group
/// (group commit), `MemoryJournal` is for tests.
public protocol Journal: AnyObject {
    /// Writes a record; it is durable when this returns, or, inside a group, when `commitGroup` returns.
    func append(_ record: [String: Any]) throws
    /// Starts a group: appends until `commitGroup` share one fsync. The caller must not act on any of
    /// them (answer a peer) before `commitGroup` returns.
    func beginGroup()
    /// Makes every record of the group durable (one fsync) and ends the group.
    func commitGroup() throws
    /// Every complete record written so far, in order.
    func records() throws -> [[String: Any]]
    /// Replaces the whole journal by `records` at once (compaction): a crash leaves the old journal or
    /// the new one, never a mix.
    func rewrite(_ records: [[String: Any]]) throws
}

public final class MemoryJournal: Journal {
    public private(set) var lines: [Data] = []
    /// Groups committed so far (for tests).
    public private(set) var commits = 0
    public init() {}
    public func append(_ record: [String: Any]) throws { lines.append(try JSONText.data(record)) }
    public func beginGroup() {}
    public func commitGroup() throws { commits += 1 }
    public func records() throws -> [[String: Any]] { lines.compactMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] } }
    public func rewrite(_ records: [[String: Any]]) throws {
        lines = try records.map { try JSONText.data($0) }
    }
}

/// One JSON object per line (written by `JSONText`, read by JSONSerialization); a group's lines reach
/// the file together when it commits. A crash or a full disk can
/// leave the last line torn (no newline): opening the journal cuts that tail off before anything is
/// appended, otherwise the next record would be glued onto the fragment and lost at the following replay.
/// Any other line that does not parse is corruption and fails the replay rather than being skipped.
public final class FileJournal: Journal {
    public let path: String
    /// Bytes of a torn last line removed when the journal was opened (0 when it ended cleanly).
    public private(set) var truncatedTail = 0
    /// fsync calls made by appends and group commits (for benchmarks and tests).
    public private(set) var syncs = 0
    var fd: Int32
    var inGroup = false
    /// A group's records, written with one write and one fsync at `commitGroup` (a write per record was
    /// two system calls per record: a third of a busy coordinator's journal time).
    var pending: [UInt8] = []

    public init(path: String) throws {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_APPEND, 0o644)
        guard fd >= 0 else { throw FileError(path: path, problem: "cannot open journal (\(String(cString: strerror(errno))))") }
        let data = FileManager.default.contents(atPath: path) ?? Data()
        if let last = data.last, last != 0x0A {
            let keep = (data.lastIndex(of: 0x0A).map { $0 + 1 }) ?? 0
            truncatedTail = data.count - keep
            guard ftruncate(fd, off_t(keep)) == 0, fsync(fd) == 0 else {
                let msg = String(cString: strerror(errno))
                close(fd)
                fd = -1  // deinit runs after a throw from a complete init: it must not close a reused number
                throw FileError(path: path, problem: "cannot cut the torn last record (\(msg))")
            }
        }
    }

    deinit { if fd >= 0 { close(fd) } }

    public func append(_ record: [String: Any]) throws {
        try JSONText.append(record, to: &pending)
        pending.append(0x0A)
        if !inGroup { try flush(group: false) }
    }

    /// Writes the pending records and fsyncs them; on failure takes back what was written, so that a
    /// later append stays whole, and throws.
    func flush(group: Bool) throws {
        guard !pending.isEmpty else { return }
        defer { pending.removeAll(keepingCapacity: pending.capacity <= 1 << 16) }
        let start = lseek(fd, 0, SEEK_END)
        let written = pending.withUnsafeBytes { raw -> Bool in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n <= 0 { return false }
                done += n
            }
            return true
        }
        syncs += 1
        // fdatasync: it writes the file size an append changed (so the records are as durable as with
        // fsync) but not the timestamps, which costs a fifth less per call on this machine's ext4.
        guard written, fdatasync(fd) == 0 else {
            let msg = String(cString: strerror(errno))
            if start >= 0 { _ = ftruncate(fd, start) }
            throw FileError(path: path, problem: "journal write failed (\(msg))" + (group ? "; nothing of this group was answered" : ""))
        }
    }

    public func beginGroup() { inGroup = true }

    /// One write and one fsync for the group's records. If it fails, which of them reached the disk is
    /// unknown: the caller must stop without answering anyone (a restart replays what did).
    public func commitGroup() throws {
        inGroup = false
        try flush(group: true)
    }

    /// Writes `records` to a temporary file, fsyncs it, renames it over the journal and fsyncs the folder.
    public func rewrite(_ records: [[String: Any]]) throws {
        var bytes: [UInt8] = []
        for r in records {
            try JSONText.append(r, to: &bytes)
            bytes.append(0x0A)
        }
        try AtomicFile.write(Data(bytes), to: path)
        let fresh = open(path, O_RDWR | O_APPEND)
        guard fresh >= 0 else { throw FileError(path: path, problem: "cannot reopen the compacted journal (\(String(cString: strerror(errno))))") }
        close(fd)
        fd = fresh
        pending.removeAll()  // the snapshot, fsynced by AtomicFile, holds every record so far
    }

    public func records() throws -> [[String: Any]] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        var out: [[String: Any]] = []
        for (i, line) in data.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            guard let r = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                throw FileError(path: path, problem: "line \(i + 1) is not a journal record (corrupt journal; nothing was replayed)")
            }
            out.append(r)
        }
        return out
    }
}
