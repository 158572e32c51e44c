import BallastFormats
import Foundation

extension Frame {
    /// The values of the I64 tensor `name` (nil when absent or of another dtype).
    public func int64s(_ name: String) -> [Int]? { tensors.first { $0.0 == name }?.1.int64s }
}

/// Message kinds of the wire format (WIRE.md).
public enum MessageKind: UInt16, Sendable, CaseIterable {
    case hello = 1, ready, lease, heartbeat, rollout, consumption, versionNotice, weightsRequest, weights, status, error
}

/// Why a frame was rejected. Every case is counted by `WireErrorCounters`.
public enum WireError: Error, Equatable, CustomStringConvertible {
    case tooShort(Int)
    case badMagic
    case unsupportedVersion(UInt16)
    case unknownKind(UInt16)
    case headerChecksum
    case reservedNotZero
    case lengthMismatch(declared: UInt64, received: Int)
    case oversize(UInt64, limit: Int)
    case payloadChecksum
    case payload(String)

    public var label: String {
        switch self {
        case .tooShort: return "too_short"
        case .badMagic: return "bad_magic"
        case .unsupportedVersion: return "bad_version"
        case .unknownKind: return "unknown_kind"
        case .headerChecksum: return "header_checksum"
        case .reservedNotZero: return "bad_reserved"
        case .lengthMismatch: return "length_mismatch"
        case .oversize: return "oversize"
        case .payloadChecksum: return "payload_checksum"
        case .payload: return "bad_payload"
        }
    }

    public var description: String {
        switch self {
        case .tooShort(let n): return "envelope of \(n) bytes, need \(Frame.envelopeSize)"
        case .badMagic: return "bad magic (not a Ballast frame)"
        case .unsupportedVersion(let v): return "unsupported wire version \(v)"
        case .unknownKind(let k): return "unknown message kind \(k)"
        case .headerChecksum: return "envelope checksum mismatch"
        case .reservedNotZero: return "reserved envelope bytes are not zero"
        case .lengthMismatch(let d, let r): return "payload length \(d) declared, \(r) received"
        case .oversize(let n, let limit): return "payload of \(n) bytes exceeds the \(limit)-byte limit"
        case .payloadChecksum: return "payload checksum mismatch"
        case .payload(let m): return "invalid payload: \(m)"
        }
    }
}

/// Counts rejected frames by reason (for logs, `ballast status` and /metrics).
public struct WireErrorCounters: Sendable {
    public private(set) var counts: [String: Int] = [:]
    public init() {}
    public mutating func record(_ e: WireError) { counts[e.label, default: 0] += 1 }
    public var total: Int { counts.values.reduce(0, +) }
}

/// One message: envelope fields plus a safetensors payload (tensors and string metadata).
public struct Frame: Sendable {
    public static let envelopeSize = 48
    public static let magic: [UInt8] = Array("BLWF".utf8)
    public static let version: UInt16 = 2
    public static let defaultMaxPayload = 1 << 30

    public var kind: MessageKind
    public var sequence: UInt64
    public var policyVersion: UInt64
    public var tensors: [(String, TensorData)]
    public var metadata: [String: String]

    public init(kind: MessageKind, sequence: UInt64, policyVersion: UInt64 = 0, tensors: [(String, TensorData)] = [], metadata: [String: String] = [:]) {
        self.kind = kind
        self.sequence = sequence
        self.policyVersion = policyVersion
        self.tensors = tensors
        self.metadata = metadata
    }

    /// Envelope and payload as separate buffers (the two parts of a ZeroMQ multipart message).
    public func encode() -> (envelope: Data, payload: Data) {
        let (payload, payloadCRC) = tensors.isEmpty && metadata.isEmpty ? (Data(), CRC32C.checksum(Data()))
                                                                        : SafeTensorsWriter.encodeChecksummed(tensors, metadata: metadata)
        var env = Data(count: Self.envelopeSize)
        env.withUnsafeMutableBytes { b in
            b.copyBytes(from: Self.magic)
            b.storeBytes(of: Self.version.littleEndian, toByteOffset: 4, as: UInt16.self)
            b.storeBytes(of: kind.rawValue.littleEndian, toByteOffset: 6, as: UInt16.self)
            b.storeBytes(of: sequence.littleEndian, toByteOffset: 8, as: UInt64.self)
            b.storeBytes(of: policyVersion.littleEndian, toByteOffset: 16, as: UInt64.self)
            b.storeBytes(of: UInt64(payload.count).littleEndian, toByteOffset: 24, as: UInt64.self)
            b.storeBytes(of: payloadCRC.littleEndian, toByteOffset: 32, as: UInt32.self)
            b.storeBytes(of: CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[0..<36])).littleEndian, toByteOffset: 36, as: UInt32.self)
        }
        return (env, payload)
    }

    /// Envelope followed by payload in one buffer (what a frame looks like on disk).
    public func encodeContiguous() -> Data {
        let (e, p) = encode()
        return e + p
    }

    /// The envelope's fields, read in place (little-endian, unaligned).
    struct Envelope {
        var magicOK: Bool, headerCRC: UInt32, computedHeaderCRC: UInt32, reserved: UInt64
        var version: UInt16, kind: UInt16, sequence: UInt64, policyVersion: UInt64, length: UInt64, payloadCRC: UInt32

        init(_ b: UnsafeRawBufferPointer) {
            func load<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T { T(littleEndian: b.loadUnaligned(fromByteOffset: at, as: T.self)) }
            magicOK = b[0] == Frame.magic[0] && b[1] == Frame.magic[1] && b[2] == Frame.magic[2] && b[3] == Frame.magic[3]
            headerCRC = load(36, UInt32.self)
            computedHeaderCRC = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[0..<36]))
            reserved = load(40, UInt64.self)
            version = load(4, UInt16.self)
            kind = load(6, UInt16.self)
            sequence = load(8, UInt64.self)
            policyVersion = load(16, UInt64.self)
            length = load(24, UInt64.self)
            payloadCRC = load(32, UInt32.self)
        }
    }

    /// Decodes and validates a frame; returns the frame and its payload as a readable safetensors file.
    public static func decode(envelope: Data, payload: Data, maxPayload: Int = defaultMaxPayload) throws -> (Frame, SafeTensorsFile?) {
        guard envelope.count >= envelopeSize else { throw WireError.tooShort(envelope.count) }
        let env = envelope.withUnsafeBytes { Envelope($0) }
        guard env.magicOK else { throw WireError.badMagic }
        guard env.headerCRC == env.computedHeaderCRC else { throw WireError.headerChecksum }
        guard env.reserved == 0 else { throw WireError.reservedNotZero }
        guard env.version == Self.version else { throw WireError.unsupportedVersion(env.version) }
        guard let kind = MessageKind(rawValue: env.kind) else { throw WireError.unknownKind(env.kind) }
        guard env.length <= UInt64(maxPayload) else { throw WireError.oversize(env.length, limit: maxPayload) }
        guard env.length == UInt64(payload.count) else { throw WireError.lengthMismatch(declared: env.length, received: payload.count) }
        guard env.payloadCRC == CRC32C.checksum(payload) else { throw WireError.payloadChecksum }
        var frame = Frame(kind: kind, sequence: env.sequence, policyVersion: env.policyVersion)
        guard !payload.isEmpty else { return (frame, nil) }
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(data: payload, name: "frame \(frame.sequence)") } catch let e as FileError {
            throw WireError.payload(e.problem)
        }
        frame.metadata = file.metadata
        frame.tensors = try file.names.map { name in
            let info = try file.info(name)
            return (name, TensorData(dtype: info.dtype, shape: info.shape, bytes: try file.slice(name)))  // views of the payload
        }
        return (frame, file)
    }

    /// Decodes a contiguous buffer (envelope + payload).
    public static func decode(contiguous data: Data, maxPayload: Int = defaultMaxPayload) throws -> (Frame, SafeTensorsFile?) {
        guard data.count >= envelopeSize else { throw WireError.tooShort(data.count) }
        let start = data.startIndex
        return try decode(envelope: data.subdata(in: start..<(start + envelopeSize)),
                          payload: data.subdata(in: (start + envelopeSize)..<data.endIndex), maxPayload: maxPayload)
    }
}
