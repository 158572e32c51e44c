import BallastFormats
import Foundation

/// Kind `consumption`, learner → coordinator: count these prompts of `epoch` as consumed (once per
/// epoch however often they arrive), or with `release` hand back prompts whose rollouts were
/// dropped. `request` makes the call idempotent: a repeat gets the first answer. The envelope
/// carries the learner's policy version.
public struct Consumption: WireMessage, Equatable {
    public static let kind = MessageKind.consumption
    public var policyVersion: UInt64
    public var id: String
    public var epoch: Int
    public var promptIDs: [Int]
    public var release: Bool
    public var request: String?
    /// The learner step that trains these prompts (metadata `step`): a learner restarted from an
    /// earlier checkpoint gets the prompts of later steps back.
    public var step: Int?

    public init(policyVersion: UInt64, id: String, epoch: Int, promptIDs: [Int], release: Bool = false, request: String? = nil, step: Int? = nil) {
        self.policyVersion = policyVersion
        self.id = id
        self.epoch = epoch
        self.promptIDs = promptIDs
        self.release = release
        self.request = request
        self.step = step
    }

    public var payload: WirePayload {
        var m = ["id": id, "epoch": "\(epoch)"]
        if release { m["release"] = "1" }
        if let request { m["req"] = request }
        if let step { m["step"] = "\(step)" }
        return WirePayload(tensors: [("prompt_ids", TensorData(int64s: promptIDs))], metadata: m)
    }

    public init(policyVersion: UInt64, payload: WirePayload) throws {
        let r = payload.reader("consumption")
        let release = r.optional("release")
        guard release == nil || release == "1" else { throw r.fail("release", "must be 1 when present") }
        let step = try r.optional("step").map { _ in try r.int("step") }
        if let step, step < 1 { throw r.fail("step", "must be >= 1, got \(step)") }
        self.init(policyVersion: policyVersion, id: try r.string("id"), epoch: try r.int("epoch"), promptIDs: try r.int64s("prompt_ids"),
                  release: release == "1", request: r.optional("req"), step: step)
    }
}

/// Kind `consumption`, coordinator → learner: the ids that counted (first completion this epoch;
/// none for a release) and the run's progress.
public struct ConsumptionReply: WireMessage, Equatable {
    public static let kind = MessageKind.consumption
    public var policyVersion: UInt64
    public var accepted: [Int]
    public var progress: RunProgress

    public init(policyVersion: UInt64, accepted: [Int], progress: RunProgress) {
        self.policyVersion = policyVersion
        self.accepted = accepted
        self.progress = progress
    }

    public var payload: WirePayload { WirePayload(tensors: [("accepted", TensorData(int64s: accepted))], metadata: progress.metadata) }

    public init(policyVersion: UInt64, payload: WirePayload) throws {
        let r = payload.reader("consumption reply")
        self.init(policyVersion: policyVersion, accepted: try r.int64s("accepted"), progress: try RunProgress(r))
    }
}

/// Kind `version_notice`, learner → actors (PUB): the policy is now at `policyVersion`; `finished`
/// at the end of the run.
public struct VersionNotice: WireMessage, Equatable {
    public static let kind = MessageKind.versionNotice
    public var policyVersion: UInt64
    public var finished: Bool
    /// The publishing learner process (optional): a change tells actors that requests sent to the
    /// previous process will never be answered.
    public var incarnation: String?

    public init(policyVersion: UInt64, finished: Bool, incarnation: String? = nil) {
        self.policyVersion = policyVersion
        self.finished = finished
        self.incarnation = incarnation
    }

    public var payload: WirePayload {
        var m = ["finished": finished ? "1" : "0"]
        if let incarnation { m["incarnation"] = incarnation }
        return WirePayload(metadata: m)
    }

    public init(policyVersion: UInt64, payload: WirePayload) throws {
        let r = payload.reader("version notice")
        self.init(policyVersion: policyVersion, finished: try r.flag("finished"), incarnation: r.optional("incarnation"))
    }
}
