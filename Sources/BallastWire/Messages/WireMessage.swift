import BallastFormats
import Foundation

/// A message of the protocol in typed form (WIRE.md, "Messages"). Each type names its kind and how
/// its fields map to the payload's tensors and string metadata; `frame(sequence:)` and
/// `init(frame:)` convert to and from the `Frame` that travels. A missing or malformed field is a
/// `WireError.payload` naming the message and the key, so a typo cannot pass silently.
public protocol WireMessage: Sendable {
    static var kind: MessageKind { get }
    /// The envelope's policy version: the sender's policy version, or for rollouts, weights and
    /// version notices the policy the message is about.
    var policyVersion: UInt64 { get }
    /// Tensors in wire order and metadata (written with sorted keys).
    var payload: WirePayload { get }
    init(policyVersion: UInt64, payload: WirePayload) throws
}

/// The two halves of a frame's payload.
public struct WirePayload: Sendable {
    public var tensors: [(String, TensorData)]
    public var metadata: [String: String]

    public init(tensors: [(String, TensorData)] = [], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }
}

extension WireMessage {
    /// The frame to send; senders number their frames (`RequestChannel` renumbers on every attempt).
    public func frame(sequence: UInt64 = 0) -> Frame {
        let p = payload
        return Frame(kind: Self.kind, sequence: sequence, policyVersion: policyVersion, tensors: p.tensors, metadata: p.metadata)
    }

    /// Decodes a received frame, checking its kind.
    public init(frame: Frame) throws {
        guard frame.kind == Self.kind else { throw WireError.payload("expected a \(Self.kind) message, got \(frame.kind)") }
        // Versions count policy updates; every process keeps them as Int, so a larger one is hostile, not a version.
        guard frame.policyVersion <= UInt64(Int.max) else {
            throw WireError.payload("\(Self.kind): policy version \(frame.policyVersion) is beyond 2^63 - 1")
        }
        try self.init(policyVersion: frame.policyVersion, payload: WirePayload(tensors: frame.tensors, metadata: frame.metadata))
    }
}

extension WirePayload {
    /// Reads typed fields for message `message`; errors name the message and the key.
    struct Reader {
        let message: String
        let payload: WirePayload

        func fail(_ key: String, _ problem: String) -> WireError { .payload("\(message): \(key) \(problem)") }

        func optional(_ key: String) -> String? { payload.metadata[key] }

        func string(_ key: String) throws -> String {
            guard let v = payload.metadata[key] else { throw fail(key, "is missing") }
            return v
        }

        func int(_ key: String) throws -> Int {
            guard let v = Int(try string(key)) else { throw fail(key, "is not an integer: \(payload.metadata[key]!)") }
            return v
        }

        /// A finite number (a NaN or an infinity would poison every JSON and Prometheus report downstream).
        func double(_ key: String) throws -> Double {
            guard let v = Double(try string(key)), v.isFinite else { throw fail(key, "is not a finite number: \(payload.metadata[key]!)") }
            return v
        }

        /// "1" or "0".
        func flag(_ key: String) throws -> Bool {
            switch try string(key) {
            case "1": return true
            case "0": return false
            case let v: throw fail(key, "must be 0 or 1, got \(v)")
            }
        }

        func oneOf<T: RawRepresentable>(_ key: String, _: T.Type) throws -> T where T.RawValue == String {
            let v = try string(key)
            guard let t = T(rawValue: v) else { throw fail(key, "has an unknown value: \(v)") }
            return t
        }

        func tensor(_ name: String) throws -> TensorData {
            guard let t = payload.tensors.first(where: { $0.0 == name })?.1 else { throw fail(name, "(tensor) is missing") }
            return t
        }

        /// A 1-D I64 tensor.
        func int64s(_ name: String) throws -> [Int] {
            let t = try tensor(name)
            guard t.shape.count == 1, let v = t.int64s else { throw fail(name, "must be a 1-D I64 tensor") }
            return v
        }
    }

    func reader(_ message: String) -> Reader { Reader(message: message, payload: self) }
}

/// The run's progress as the coordinator reports it in every reply to the learner.
public struct RunProgress: Sendable, Equatable {
    public var finished: Bool
    public var epoch: Int
    public var completed: Int
    public var budget: Int

    public init(finished: Bool, epoch: Int, completed: Int, budget: Int) {
        self.finished = finished
        self.epoch = epoch
        self.completed = completed
        self.budget = budget
    }

    var metadata: [String: String] {
        ["finished": finished ? "1" : "0", "epoch": "\(epoch)", "completed": "\(completed)", "budget": "\(budget)"]
    }

    init(_ r: WirePayload.Reader) throws {
        self.init(finished: try r.flag("finished"), epoch: try r.int("epoch"), completed: try r.int("completed"), budget: try r.int("budget"))
    }
}
