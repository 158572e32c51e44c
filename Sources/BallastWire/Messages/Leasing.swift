import BallastFormats
import Foundation

/// Kind `ready`, actor → coordinator: give me up to `capacity` prompts. The envelope carries the
/// actor's policy version. An optional request key (`req`) makes it idempotent: a retry whose answer
/// was lost gets the same lease again instead of a second one that strands the first.
public struct LeaseRequest: WireMessage, Equatable {
    public static let kind = MessageKind.ready
    public var policyVersion: UInt64
    public var id: String
    public var capacity: Int
    public var request: String?

    public init(policyVersion: UInt64 = 0, id: String, capacity: Int, request: String? = nil) {
        self.policyVersion = policyVersion
        self.id = id
        self.capacity = capacity
        self.request = request
    }

    public var payload: WirePayload {
        var m = ["id": id, "capacity": "\(capacity)"]
        if let request { m["req"] = request }
        return WirePayload(metadata: m)
    }

    public init(policyVersion: UInt64, payload: WirePayload) throws {
        let r = payload.reader("ready")
        let capacity = try r.int("capacity")
        guard capacity > 0 else { throw r.fail("capacity", "must be > 0, got \(capacity)") }
        self.init(policyVersion: policyVersion, id: try r.string("id"), capacity: capacity, request: r.optional("req"))
    }
}

/// Kind `lease`, coordinator → actor: prompts to generate for (state "lease"), or nothing to lease
/// now ("wait") or ever again ("finished").
public struct LeaseReply: WireMessage, Equatable {
    public static let kind = MessageKind.lease
    public var policyVersion: UInt64
    public var epoch: Int
    public var grant: Grant?

    /// A lease: its id, the prompts' ids (indices in the prompt file) and, when the coordinator
    /// holds the prompt file, the prompts themselves as a JSON array of the file's objects.
    public struct Grant: Sendable, Equatable {
        public var lease: Int
        public var promptIDs: [Int]
        public var promptsJSON: String?

        public init(lease: Int, promptIDs: [Int], promptsJSON: String?) {
            self.lease = lease
            self.promptIDs = promptIDs
            self.promptsJSON = promptsJSON
        }
    }

    /// When there is no grant: finished (true) or wait (false).
    public var finished: Bool

    public init(policyVersion: UInt64, epoch: Int, grant: Grant) {
        self.policyVersion = policyVersion
        self.epoch = epoch
        self.grant = grant
        finished = false
    }

    public init(policyVersion: UInt64, epoch: Int, finished: Bool) {
        self.policyVersion = policyVersion
        self.epoch = epoch
        grant = nil
        self.finished = finished
    }

    public var payload: WirePayload {
        guard let grant else { return WirePayload(metadata: ["state": finished ? "finished" : "wait", "epoch": "\(epoch)"]) }
        var m = ["state": "lease", "lease": "\(grant.lease)", "epoch": "\(epoch)"]
        if let p = grant.promptsJSON { m["prompts"] = p }
        return WirePayload(tensors: [("prompt_ids", TensorData(int64s: grant.promptIDs))], metadata: m)
    }

    public init(policyVersion: UInt64, payload: WirePayload) throws {
        let r = payload.reader("lease")
        let epoch = try r.int("epoch")
        switch try r.string("state") {
        case "lease":
            self.init(policyVersion: policyVersion, epoch: epoch,
                      grant: Grant(lease: try r.int("lease"), promptIDs: try r.int64s("prompt_ids"), promptsJSON: r.optional("prompts")))
        case "wait": self.init(policyVersion: policyVersion, epoch: epoch, finished: false)
        case "finished": self.init(policyVersion: policyVersion, epoch: epoch, finished: true)
        case let s: throw r.fail("state", "must be lease, wait or finished, got \(s)")
        }
    }
}

/// Kind `heartbeat`, actor → coordinator (no reply): alive, with its counters.
public struct Heartbeat: WireMessage, Equatable {
    public static let kind = MessageKind.heartbeat
    public var policyVersion: UInt64 { 0 }
    public var id: String
    /// Rollouts sent so far, the policy version in use, rollouts per second since start (3 decimals on the wire).
    public var rollouts: Int, version: Int, rate: Double

    public init(id: String, rollouts: Int, version: Int, rate: Double) {
        self.id = id
        self.rollouts = rollouts
        self.version = version
        self.rate = rate
    }

    public var payload: WirePayload {
        WirePayload(metadata: ["id": id, "rollouts": "\(rollouts)", "version": "\(version)", "rate": String(format: "%.3f", rate)])
    }

    public init(policyVersion: UInt64, payload: WirePayload) throws {
        let r = payload.reader("heartbeat")
        self.init(id: try r.string("id"), rollouts: try r.int("rollouts"), version: try r.int("version"), rate: try r.double("rate"))
    }
}
