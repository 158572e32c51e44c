import CCRC32C
import Foundation

/// Writes TensorBoard event files (scalars only): TFRecord framing (length, masked CRC32C of the
/// length, payload, masked CRC32C of the payload) around hand-encoded `Event` protobufs —
/// Event{wall_time = 1 (double), step = 2 (int64), file_version = 3 (string), summary = 5} with
/// Summary{value = 1 {tag = 1 (string), simple_value = 2 (float)}}.
public final class TensorBoardWriter {
    public let path: String
    let handle: FileHandle

    /// Creates DIR/events.out.tfevents.TIMESTAMP.ballast and writes the file-version event.
    public init(directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = directory + "/events.out.tfevents.\(Int(Date().timeIntervalSince1970)).ballast.\(getpid())"
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        guard let h = FileHandle(forWritingAtPath: path) else { throw FileError(path: path, problem: "cannot open for writing") }
        handle = h
        var event = Proto()
        event.double(1, Date().timeIntervalSince1970)
        event.string(3, "brain.Event:2")
        write(record: event.bytes)
    }

    deinit { try? handle.close() }

    public func scalars(_ values: [String: Double], step: Int) {
        var summary = Proto()
        for (tag, v) in values.sorted(by: { $0.key < $1.key }) where v.isFinite {
            var value = Proto()
            value.string(1, tag)
            value.float(2, Float(v))
            summary.message(1, value)
        }
        var event = Proto()
        event.double(1, Date().timeIntervalSince1970)
        event.varintField(2, UInt64(bitPattern: Int64(step)))
        event.message(5, summary)
        write(record: event.bytes)
    }

    func write(record: [UInt8]) {
        var out: [UInt8] = []
        let len = UInt64(record.count)
        let lenBytes = (0..<8).map { UInt8(truncatingIfNeeded: len >> (8 * UInt64($0))) }
        out += lenBytes
        out += le32(CRC32C.masked(lenBytes))
        out += record
        out += le32(CRC32C.masked(record))
        Streams.write(Data(out), to: handle.fileDescriptor)  // a lost event is not worth a crash
    }

    func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * UInt32($0))) } }
}

/// Minimal protobuf encoder for the fields above.
struct Proto {
    var bytes: [UInt8] = []

    mutating func varint(_ v: UInt64) {
        var x = v
        while x >= 0x80 { bytes.append(UInt8(x & 0x7F) | 0x80); x >>= 7 }
        bytes.append(UInt8(x))
    }
    mutating func key(_ field: Int, _ wire: Int) { varint(UInt64(field << 3 | wire)) }
    mutating func varintField(_ field: Int, _ v: UInt64) { key(field, 0); varint(v) }
    mutating func double(_ field: Int, _ v: Double) {
        key(field, 1)
        let b = v.bitPattern
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: b >> (8 * UInt64(i)))) }
    }
    mutating func float(_ field: Int, _ v: Float) {
        key(field, 5)
        let b = v.bitPattern
        for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: b >> (8 * UInt32(i)))) }
    }
    mutating func string(_ field: Int, _ s: String) { lengthDelimited(field, Array(s.utf8)) }
    mutating func message(_ field: Int, _ m: Proto) { lengthDelimited(field, m.bytes) }
    mutating func lengthDelimited(_ field: Int, _ b: [UInt8]) { key(field, 2); varint(UInt64(b.count)); bytes += b }
}

/// CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, and TFRecord's masking.
public enum CRC32C {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 { ballast_crc32c(0, bytes.baseAddress, bytes.count) }

    public static func checksum(_ data: [UInt8]) -> UInt32 { data.withUnsafeBytes { checksum($0) } }

    /// Checksum of a Data buffer without copying it.
    public static func checksum(_ data: Data) -> UInt32 { data.withUnsafeBytes { checksum($0) } }

    /// The bytewise table version, kept as the reference the hardware path is tested against.
    public static func checksumReference(_ data: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in data { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    public static func masked(_ data: [UInt8]) -> UInt32 {
        let c = checksum(data)
        return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
    }
}
