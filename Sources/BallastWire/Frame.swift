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
    public static let version: UInt16 = 1
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
        let payload = tensors.isEmpty && metadata.isEmpty ? Data() : SafeTensorsWriter.encode(tensors, metadata: metadata)
        var env = [UInt8](repeating: 0, count: Self.envelopeSize)
        env.replaceSubrange(0..<4, with: Self.magic)
        Self.put(&env, 4, UInt64(Self.version), 2)
        Self.put(&env, 6, UInt64(kind.rawValue), 2)
        Self.put(&env, 8, sequence, 8)
        Self.put(&env, 16, policyVersion, 8)
        Self.put(&env, 24, UInt64(payload.count), 8)
        Self.put(&env, 32, UInt64(CRC32C.checksum(payload)), 4)
        Self.put(&env, 36, UInt64(CRC32C.checksum(Array(env[0..<36]))), 4)
        return (Data(env), payload)
    }

    /// Envelope followed by payload in one buffer (what a frame looks like on disk).
    public func encodeContiguous() -> Data {
        let (e, p) = encode()
        return e + p
    }

    static func put(_ b: inout [UInt8], _ at: Int, _ v: UInt64, _ n: Int) {
        for i in 0..<n { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
    }

    static func get(_ b: [UInt8], _ at: Int, _ n: Int) -> UInt64 {
        (0..<n).reduce(UInt64(0)) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) }
    }

    /// Decodes and validates a frame; returns the frame and its payload as a readable safetensors file.
    public static func decode(envelope: Data, payload: Data, maxPayload: Int = defaultMaxPayload) throws -> (Frame, SafeTensorsFile?) {
        let env = [UInt8](envelope)
        guard env.count >= envelopeSize else { throw WireError.tooShort(env.count) }
        guard Array(env[0..<4]) == magic else { throw WireError.badMagic }
        guard UInt32(get(env, 36, 4)) == CRC32C.checksum(Array(env[0..<36])) else { throw WireError.headerChecksum }
        guard get(env, 40, 8) == 0 else { throw WireError.reservedNotZero }
        let version = UInt16(get(env, 4, 2))
        guard version == Self.version else { throw WireError.unsupportedVersion(version) }
        let rawKind = UInt16(get(env, 6, 2))
        guard let kind = MessageKind(rawValue: rawKind) else { throw WireError.unknownKind(rawKind) }
        let length = get(env, 24, 8)
        guard length <= UInt64(maxPayload) else { throw WireError.oversize(length, limit: maxPayload) }
        guard length == UInt64(payload.count) else { throw WireError.lengthMismatch(declared: length, received: payload.count) }
        guard UInt32(get(env, 32, 4)) == CRC32C.checksum(payload) else { throw WireError.payloadChecksum }
        var frame = Frame(kind: kind, sequence: get(env, 8, 8), policyVersion: get(env, 16, 8))
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
