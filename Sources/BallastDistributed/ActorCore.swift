import BallastData
import BallastWire
import Foundation

/// The actor's decisions without sockets: which request comes next, given the typed messages that
/// arrived. `ActorNode` performs each `Step` over ZeroMQ and feeds the answer back; tests drive the
/// core with messages alone. Order of work: find the learner through the coordinator, obtain the
/// frozen models and the policy, then lease → sample → send, fetching the policy again whenever a
/// version notice names a newer one, until the coordinator or the learner says the run is finished.
public struct ActorCore {
    /// One lease turned into rows to sample: K rows per prompt, each with its prompt id.
    public struct Work: Equatable, Sendable {
        public var lease: Int
        public var epoch: Int
        public var rows: [PromptRecord]
        public var promptIDs: [Int]
        /// Sampling seed: the run's seed mixed with the lease id, so a re-leased prompt gets new samples.
        public var seed: UInt64
        public var policyVersion: Int
    }

    public enum Step: Equatable, Sendable {
        /// Ask the coordinator where the learner is.
        case hello(ActorHello)
        /// Obtain a model (from the learner's weights endpoint, or a local checkpoint for frozen ones).
        case fetch(WeightsRequest.Model)
        case lease(LeaseRequest)
        case sample(Work)
        /// Nothing to do yet; `note`, when set, is worth a log line.
        case wait(seconds: Double, note: String?)
        /// The run is over.
        case finished
    }

    public let id: String
    public let host: String
    public private(set) var learner: ActorWelcome.Learner?
    /// The policy version sampled with (−1 before the first fetch) and the last one announced (lower
    /// after a learner resumed from an older checkpoint: the actor follows it back).
    public private(set) var version = -1
    public private(set) var noticed = -1
    public private(set) var runFinished = false
    /// The learner process that published the newest notice naming one (nil before the first).
    public private(set) var learnerIncarnation: String?
    /// Frozen models still to obtain before work starts.
    public private(set) var missing: [WeightsRequest.Model] = [.reference, .scorer]
    /// Keys lease requests (this process, then a count of the answers received), so that the
    /// coordinator answers a retried request with the lease it already granted.
    let process: String
    public private(set) var leaseReplies = 0

    public init(id: String, host: String, process: String = String(UUID().uuidString.prefix(8))) {
        self.id = id
        self.host = host
        self.process = process
    }

    /// The policy version stamped on this actor's envelopes (0 before the first fetch).
    public var envelopeVersion: UInt64 { UInt64(max(version, 0)) }

    /// What to do now.
    public func next() -> Step {
        if runFinished { return .finished }
        guard let learner else { return .hello(ActorHello(id: id, host: host)) }
        if let model = missing.first { return .fetch(model) }
        if version < 0 || noticed != version { return .fetch(.policy) }
        return .lease(LeaseRequest(policyVersion: envelopeVersion, id: id, capacity: learner.settings.leaseSize, request: "\(process)-\(leaseReplies)"))
    }

    public mutating func received(_ welcome: ActorWelcome) -> Step {
        switch welcome.state {
        case .finished: runFinished = true
        case .ok:
            guard let found = welcome.learner else { return .wait(seconds: 0.5, note: "the coordinator's welcome names no learner; asking again") }
            learner = found
        case .wait: return .wait(seconds: 0.1, note: nil)  // the learner is starting: it registers within moments
        }
        return next()
    }

    /// A version notice from the learner's publisher: remembered, acted on at the next step.
    public mutating func received(_ notice: VersionNotice) {
        guard notice.policyVersion <= UInt64(Int.max) else { return }
        noticed = Int(notice.policyVersion)
        if let incarnation = notice.incarnation { learnerIncarnation = incarnation }
        if notice.finished { runFinished = true }
    }

    /// Whether the learner process has been replaced since `earlier` was the current one: a request
    /// sent to the previous process will never be answered and must be sent again.
    public func learnerReplaced(since earlier: String?) -> Bool {
        earlier != nil && learnerIncarnation != earlier
    }

    /// A model arrived; for the policy, `version` is the one it carries.
    public mutating func obtained(_ model: WeightsRequest.Model, version v: Int) -> Step {
        missing.removeAll { $0 == model }
        if model == .policy {
            version = v
            noticed = v
        }
        return next()
    }

    public mutating func received(_ reply: LeaseReply) -> Step {
        leaseReplies += 1
        guard let grant = reply.grant else {
            if reply.finished { runFinished = true; return .finished }
            return .wait(seconds: 0.2, note: nil)
        }
        guard let k = learner?.settings.responsesPerPrompt, let seed = learner?.settings.seed else { return next() }
        guard let prompts = Self.prompts(of: grant) else {
            return .wait(seconds: 0, note: "lease \(grant.lease) does not carry its \(grant.promptIDs.count) prompts; asking again")
        }
        return .sample(Work(lease: grant.lease, epoch: reply.epoch,
                            rows: prompts.flatMap { Array(repeating: $0, count: k) },
                            promptIDs: grant.promptIDs.flatMap { Array(repeating: $0, count: k) },
                            seed: seed ^ UInt64(truncatingIfNeeded: grant.lease) &* 0x9E37_79B9_7F4A_7C15,
                            policyVersion: version))
    }

    /// The prompt records a lease carries (a JSON array in lease order), or nil when they do not match its ids.
    static func prompts(of grant: LeaseReply.Grant) -> [PromptRecord]? {
        guard let data = grant.promptsJSON?.data(using: .utf8),
              let objects = (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]],
              objects.count == grant.promptIDs.count else { return nil }
        let rows = objects.compactMap { PromptRecord(json: $0) }
        return rows.count == objects.count ? rows : nil
    }
}
