import BallastFormats
import BallastTransport
import BallastWire
import Foundation

/// The coordinator's message handling, over any `MessageSocket` carrying [peer, envelope, payload]:
/// `ready` (metadata id, capacity) → a `lease` of prompt ids (empty with metadata state "finished"
/// when the run is done, "wait" when everything is leased); `heartbeat` keeps an actor alive;
/// `consumption` (tensor prompt_ids I64, metadata epoch) counts consumed prompts; `status` → a status
/// frame whose metadata "json" is `status()`. Malformed frames are counted and answered with nothing.
public final class CoordinatorService: @unchecked Sendable {
    public let ledger: PromptLedger
    public let heartbeatTimeout: Double
    public private(set) var errors = WireErrorCounters()
    var sequence: UInt64 = 0
    var actors: [String: (lastSeen: Double, leases: Int, prompts: Int)] = [:]
    public private(set) var policyVersion: UInt64 = 0

    public init(ledger: PromptLedger, heartbeatTimeout: Double = 10) {
        self.ledger = ledger
        self.heartbeatTimeout = heartbeatTimeout
    }

    func reply(_ kind: MessageKind, tensors: [(String, TensorData)] = [], metadata: [String: String]) -> [Data] {
        sequence += 1
        let (e, p) = Frame(kind: kind, sequence: sequence, policyVersion: policyVersion, tensors: tensors, metadata: metadata).encode()
        return [e, p]
    }

    /// Handles one message; returns the reply parts (without the peer id) or nil.
    public func handle(_ parts: [Data], now: Double) throws -> [Data]? {
        guard parts.count == 3 else {
            errors.record(.tooShort(parts.count))
            return nil
        }
        let frame: Frame
        do { frame = try Frame.decode(envelope: parts[1], payload: parts[2]).0 } catch let e as WireError {
            errors.record(e)
            return nil
        }
        let peer = String(decoding: parts[0], as: UTF8.self)
        policyVersion = max(policyVersion, frame.policyVersion)
        switch frame.kind {
        case .ready:
            let actor = frame.metadata["id"] ?? peer
            let capacity = Int(frame.metadata["capacity"] ?? "") ?? 16
            actors[actor, default: (now, 0, 0)].lastSeen = now
            guard let lease = try ledger.lease(actor: actor, max: capacity, now: now) else {
                return reply(.lease, metadata: ["state": ledger.finished ? "finished" : "wait", "epoch": "\(ledger.epoch)"])
            }
            actors[actor]!.leases += 1
            actors[actor]!.prompts += lease.promptIDs.count
            let ids = lease.promptIDs.map(Int64.init)
            return reply(.lease, tensors: [("prompt_ids", TensorData(dtype: .i64, shape: [ids.count], bytes: ids.withUnsafeBufferPointer { Data(buffer: $0) }))],
                         metadata: ["state": "lease", "lease": "\(lease.id)", "epoch": "\(lease.epoch)"])
        case .heartbeat:
            let actor = frame.metadata["id"] ?? peer
            ledger.heartbeat(actor: actor, now: now)
            actors[actor, default: (now, 0, 0)].lastSeen = now
            return nil
        case .consumption:
            guard let t = frame.tensors.first(where: { $0.0 == "prompt_ids" })?.1, t.dtype == .i64, let epoch = Int(frame.metadata["epoch"] ?? "") else {
                errors.record(.payload("consumption needs prompt_ids (I64) and metadata epoch"))
                return nil
            }
            let ids = t.bytes.withUnsafeBytes { $0.bindMemory(to: Int64.self).map(Int.init) }
            try ledger.complete(actor: frame.metadata["id"] ?? peer, epoch: epoch, promptIDs: ids, now: now)
            return nil
        case .status:
            let data = try JSONSerialization.data(withJSONObject: status(now: now), options: [.sortedKeys])
            return reply(.status, metadata: ["json": String(decoding: data, as: UTF8.self)])
        default:
            errors.record(.payload("unexpected \(frame.kind) at the coordinator"))
            return nil
        }
    }

    /// Expires silent actors (their prompts go back to the pending queue).
    public func tick(now: Double) throws {
        for a in try ledger.expire(now: now, timeout: heartbeatTimeout) { actors[a] = nil }
    }

    public func status(now: Double) -> [String: Any] {
        let p = ledger.progress
        return [
            "epoch": ledger.epoch, "epochs": ledger.epochs, "finished": ledger.finished, "policy_version": Int(policyVersion),
            "shards": p.enumerated().map { ["shard": $0.offset, "done": $0.element.done, "leased": $0.element.leased, "total": $0.element.total] },
            "actors": actors.keys.sorted().map { ["id": $0, "last_seen_s": now - actors[$0]!.lastSeen, "leases": actors[$0]!.leases, "prompts": actors[$0]!.prompts] },
            "duplicates": ledger.duplicates, "errors": errors.counts,
        ]
    }

    /// Serves until `shouldStop()`: receive, handle, reply to the sender, expire silent actors.
    public func serve(_ socket: MessageSocket, clock: () -> Double, shouldStop: () -> Bool) throws {
        while !shouldStop() {
            if let parts = try socket.receive(), let out = try handle(parts, now: clock()) {
                try socket.send([parts[0]] + out)
            }
            try tick(now: clock())
        }
    }
}
