import BallastFormats
import BallastTransport
import BallastWire
import Foundation

/// The coordinator's message handling, over any `MessageSocket` carrying [peer, envelope, payload].
///
/// - `LearnerHello` registers the learner's endpoints, settings and counters (sent every few
///   seconds, so a restarted coordinator learns them again) → `LearnerWelcome` with the run's progress.
/// - `ActorHello` → `ActorWelcome`: the learner's endpoints and settings, or "wait" while no learner
///   has registered.
/// - `LeaseRequest` → `LeaseReply`: prompt ids with the prompts themselves, or "finished" / "wait".
/// - `Heartbeat` keeps an actor alive and carries its counters.
/// - `Consumption` counts consumed prompts once per epoch (or returns released ones to the queue)
///   → `ConsumptionReply` with the ids that counted; a repeated request id gets the same answer.
/// - `StatusRequest` → `StatusReply` with `status()`.
/// Malformed frames (a bad envelope or a message missing a field) are counted and answered with nothing.
public final class CoordinatorService: @unchecked Sendable {
    public let ledger: PromptLedger
    public let heartbeatTimeout: Double
    /// Seconds after which a lease whose prompts were not consumed is re-leased.
    public let leaseTimeout: Double
    /// The prompt file's lines (JSON objects), shipped with each lease; nil leases ids only.
    let prompts: [String]?
    public private(set) var errors = WireErrorCounters()
    var sequence: UInt64 = 0
    struct ActorInfo { var lastSeen: Double; var leases = 0; var prompts = 0; var rollouts = 0; var version = 0; var rate = 0.0; var host = "" }
    var actors: [String: ActorInfo] = [:]
    var expiredActors = 0
    var learner: (lastSeen: Double, hello: LearnerHello)?
    public private(set) var policyVersion: UInt64 = 0
    /// The newest step the current learner process has counted a batch for: that batch is being
    /// trained, so the next one counted trains from this version on.
    var countedStep = 0
    /// Lease requests answered "wait" because the learner could not train more work before it went stale.
    public private(set) var flowWaits = 0
    /// Group commits made by `serve`, and the messages they covered.
    public private(set) var groups = 0, groupedMessages = 0
    public let started: Double

    public init(ledger: PromptLedger, heartbeatTimeout: Double = 10, leaseTimeout: Double = 600, prompts: [String]? = nil, now: Double = 0) {
        self.ledger = ledger
        self.heartbeatTimeout = heartbeatTimeout
        self.leaseTimeout = leaseTimeout
        self.prompts = prompts
        started = now
    }

    func reply(_ message: some WireMessage) -> [Data] {
        sequence += 1
        let (e, p) = message.frame(sequence: sequence).encode()
        return [e, p]
    }

    var progress: RunProgress {
        RunProgress(finished: ledger.finished, epoch: ledger.epoch, completed: ledger.completed, budget: ledger.budget)
    }

    /// Handles one message; returns the reply parts (without the peer id) or nil. `role` is the role of
    /// the sender's CURVE key (nil without CURVE): learner messages are taken only from the learner's
    /// key and actor messages only from actor keys, so an actor key cannot register as the learner.
    public func handle(_ parts: [Data], now: Double, role: String? = nil) throws -> [Data]? {
        guard parts.count == 3 else {
            errors.record(.tooShort(parts.count))
            return nil
        }
        do {
            return try handle(try Frame.decode(envelope: parts[1], payload: parts[2]).0, now: now, role: role)
        } catch let e as WireError {
            errors.record(e)
            return nil
        }
    }

    func handle(_ frame: Frame, now: Double, role: String?) throws -> [Data]? {
        func require(_ allowed: String, _ what: String) throws {
            if let role, role != allowed { throw WireError.payload("\(what) from a peer whose CURVE key is a \(role)'s, not the \(allowed)'s") }
        }
        switch frame.kind {
        case .hello:
            switch try Hello(frame: frame) {
            case .learner(let hello):
                try require("learner", "learner hello")
                if let inc = hello.incarnation {
                    if inc.id != ledger.learnerIncarnation { countedStep = 0 }
                    try ledger.learnerRegistered(incarnation: inc.id, checkpointStep: inc.checkpointStep)
                }
                learner = (now, hello)
                policyVersion = hello.policyVersion  // the learner is the authority (it may have restarted from a checkpoint)
                return reply(LearnerWelcome(policyVersion: policyVersion, progress: progress))
            case .actor(let hello):
                try require("actor", "actor hello")
                actors[hello.id, default: ActorInfo(lastSeen: now)].lastSeen = now
                actors[hello.id]!.host = hello.host
                // The learner's endpoints and settings (sampling, K, lease size, seed) reach the actors this way.
                let known = learner.map { ActorWelcome.Learner(endpoints: $0.hello.endpoints, settings: $0.hello.settings) }
                return reply(ActorWelcome(policyVersion: policyVersion, state: ledger.finished ? .finished : known == nil ? .wait : .ok, learner: known))
            }
        case .ready:
            let request = try LeaseRequest(frame: frame)
            try require("actor", "lease request")
            actors[request.id, default: ActorInfo(lastSeen: now)].lastSeen = now
            let limit = outstandingLimit(actorVersion: request.policyVersion)
            guard let lease = try ledger.lease(actor: request.id, max: request.capacity, now: now, outstanding: limit, request: request.request) else {
                if let limit, ledger.leasedCount >= limit, !ledger.finished { flowWaits += 1 }
                return reply(LeaseReply(policyVersion: policyVersion, epoch: ledger.epoch, finished: ledger.finished))
            }
            actors[request.id]!.leases += 1
            actors[request.id]!.prompts += lease.promptIDs.count
            let json = prompts.map { p in "[" + lease.promptIDs.map { p[$0] }.joined(separator: ",") + "]" }
            return reply(LeaseReply(policyVersion: policyVersion, epoch: lease.epoch, grant: .init(lease: lease.id, promptIDs: lease.promptIDs, promptsJSON: json)))
        case .heartbeat:
            let beat = try Heartbeat(frame: frame)
            try require("actor", "heartbeat")
            ledger.heartbeat(actor: beat.id, now: now)
            actors[beat.id, default: ActorInfo(lastSeen: now)].lastSeen = now
            actors[beat.id]!.rollouts = beat.rollouts
            actors[beat.id]!.version = beat.version
            actors[beat.id]!.rate = beat.rate
            return nil
        case .consumption:
            let c = try Consumption(frame: frame)
            try require("learner", "consumption report")
            if c.release {
                try ledger.release(epoch: c.epoch, promptIDs: c.promptIDs)
                return reply(ConsumptionReply(policyVersion: policyVersion, accepted: [], progress: progress))
            }
            if let current = ledger.learnerIncarnation, c.id != current {
                // A learner process that has since been replaced (its steps after its checkpoint were undone).
                errors.record(.payload("consumption from a previous learner process \(c.id)"))
                return reply(ConsumptionReply(policyVersion: policyVersion, accepted: [], progress: progress))
            }
            let r = try ledger.complete(actor: c.id, epoch: c.epoch, promptIDs: c.promptIDs, now: now, request: c.request, step: c.step)
            if let step = c.step, UInt64(step) == c.policyVersion &+ 1, !r.accepted.isEmpty { countedStep = max(countedStep, step) }
            return reply(ConsumptionReply(policyVersion: policyVersion, accepted: r.accepted, progress: progress))
        case .status:
            _ = try StatusRequest(frame: frame)
            let data = try JSONSerialization.data(withJSONObject: status(now: now), options: [.sortedKeys])
            return reply(StatusReply(policyVersion: policyVersion, json: String(decoding: data, as: UTF8.self)))
        default:
            throw WireError.payload("unexpected \(frame.kind) at the coordinator")
        }
    }

    /// Flow control (the part Reverb's rate limiter plays): how many prompts may be
    /// out on lease after a grant to an actor sampling with policy version `actorVersion`, so that the
    /// learner trains them before they lag it by more than `max_policy_lag`; nil (no bound) until the
    /// learner has said its batch size and lag. Leased prompts are trained in about the order they
    /// were leased, B per step, and the next batch counted trains from version C, so the prompt at
    /// position p of the outstanding ones is trained at version C + p / B with lag C + p / B − v:
    /// at most (lag + 1 − (C − v)) × B prompts can be out. An actor ahead of the learner (it restarted
    /// from an older checkpoint) gets nothing until it follows the learner back.
    func outstandingLimit(actorVersion: UInt64) -> Int? {
        guard let flow = learner?.hello.flow else { return nil }
        let next = max(Int(policyVersion), countedStep)
        guard actorVersion <= UInt64(next) else { return 0 }
        let behind = next - Int(actorVersion)
        return max(0, flow.maxPolicyLag + 1 - behind) * flow.batchPrompts
    }

    /// Expires silent actors (their prompts go back to the pending queue) and stale leases.
    public func tick(now: Double) throws {
        for a in try ledger.expire(now: now, timeout: heartbeatTimeout) where actors[a] != nil {
            actors[a] = nil
            expiredActors += 1
        }
        try ledger.expireLeases(now: now, maxAge: leaseTimeout)
    }

    public func status(now: Double) -> [String: Any] {
        let p = ledger.progress
        var st: [String: Any] = [
            "epoch": ledger.epoch, "epochs": ledger.epochs, "finished": ledger.finished, "policy_version": Int(policyVersion),
            "completed": ledger.completed, "budget": ledger.budget, "pending": ledger.pendingCount, "uptime_s": now - started,
            "shards": p.enumerated().map { ["shard": $0.offset, "done": $0.element.done, "leased": $0.element.leased, "total": $0.element.total] },
            "actors": actors.keys.sorted().map { k -> [String: Any] in
                let a = actors[k]!
                return ["id": k, "host": a.host, "last_seen_s": now - a.lastSeen, "alive": now - a.lastSeen <= heartbeatTimeout, "leases": a.leases,
                        "prompts": a.prompts, "rollouts": a.rollouts, "policy_version": a.version, "rollouts_per_s": a.rate]
            },
            "actors_expired": expiredActors, "duplicates": ledger.duplicates, "errors": errors.counts, "prompts_rewound": ledger.rewound,
            "prompts_reclaimed": ledger.reclaimed, "leased": ledger.leasedCount, "flow_waits": flowWaits,
        ]
        if let l = learner {
            let s = l.hello.stats  // typed fields: a string that merely parses as a number ("nan") stays a string
            st["learner"] = ["last_seen_s": now - l.lastSeen, "step": s.step, "queue": s.queue, "queue_capacity": s.queueCapacity,
                             "dropped": s.dropped, "downweighted": s.downweighted, "checkpoint": s.checkpoint, "busy": s.busy,
                             "rollouts_per_s": s.rolloutsPerSecond, "errors": s.errors]
        }
        return st
    }

    /// The status as Prometheus text exposition (`/metrics`).
    public func prometheus(now: Double) -> String {
        var out = ""
        func metric(_ name: String, _ help: String, _ type: String, _ samples: [(String, Double)]) {
            out += "# HELP ballast_\(name) \(help)\n# TYPE ballast_\(name) \(type)\n"
            for (labels, v) in samples { out += "ballast_\(name)\(labels.isEmpty ? "" : "{\(labels)}") \(v)\n" }
        }
        let p = ledger.progress
        metric("epoch", "Current epoch of the prompt set.", "gauge", [("", Double(ledger.epoch))])
        metric("finished", "1 when the run's prompt budget is consumed.", "gauge", [("", ledger.finished ? 1 : 0)])
        metric("policy_version", "Latest policy version announced by the learner.", "gauge", [("", Double(policyVersion))])
        metric("prompts_completed_total", "Prompts consumed by the learner, counted once per epoch.", "counter", [("", Double(ledger.completed))])
        metric("prompts_budget", "Prompts the run consumes in total.", "gauge", [("", Double(ledger.budget))])
        metric("shard_prompts", "Prompts of the current epoch per shard and state.", "gauge",
               p.enumerated().flatMap { s in [("shard=\"\(s.offset)\",state=\"done\"", Double(s.element.done)),
                                              ("shard=\"\(s.offset)\",state=\"leased\"", Double(s.element.leased)),
                                              ("shard=\"\(s.offset)\",state=\"total\"", Double(s.element.total))] })
        metric("actors_alive", "Actors heard from within the heartbeat timeout.", "gauge", [("", Double(actors.values.filter { now - $0.lastSeen <= heartbeatTimeout }.count))])
        metric("actors_expired_total", "Actors declared dead (their leases were re-leased).", "counter", [("", Double(expiredActors))])
        metric("actor_rollouts_total", "Rollouts sent by each actor.", "counter", actors.keys.sorted().map { ("actor=\"\(labelValue($0))\"", Double(actors[$0]!.rollouts)) })
        metric("actor_rollouts_per_second", "Recent rollout rate of each actor.", "gauge", actors.keys.sorted().map { ("actor=\"\(labelValue($0))\"", actors[$0]!.rate) })
        metric("flow_waits_total", "Lease requests deferred because the learner could not train more work before it went stale.", "counter",
               [("", Double(flowWaits))])
        metric("prompts_rewound_total", "Prompts un-counted because the learner that trained them died before its checkpoint.", "counter",
               [("", Double(ledger.rewound))])
        metric("prompts_reclaimed_total", "Prompts taken back from leases because the learner process was replaced.", "counter",
               [("", Double(ledger.reclaimed))])
        metric("duplicate_completions_total", "Completions ignored because the prompt already counted this epoch.", "counter", [("", Double(ledger.duplicates))])
        metric("malformed_frames_total", "Frames rejected by the coordinator, by reason.", "counter",
               errors.counts.keys.sorted().map { ("reason=\"\($0)\"", Double(errors.counts[$0]!)) })
        if let s = learner?.hello.stats {
            metric("learner_step", "Learner PPO steps.", "gauge", [("", Double(s.step))])
            metric("learner_queue", "Rollouts waiting in the learner's queue.", "gauge", [("", Double(s.queue))])
            metric("learner_busy", "Fraction of time the learner spends updating.", "gauge", [("", s.busy)])
            metric("learner_dropped", "Stale rollouts dropped by the learner.", "gauge", [("", Double(s.dropped))])
        }
        return out
    }

    /// A Prometheus label value: backslash, double quote and newline escaped (actor ids come from peers).
    func labelValue(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    /// Seconds between the expiry passes of `serve`. The timeouts are seconds long, and a pass walks every
    /// leased prompt: after every group it cost more than handling the group once many were out.
    public static let tickInterval = 0.05

    /// Serves until `shouldStop()`: receive, handle, reply to the sender, expire silent actors. Group
    /// commit: every message already waiting (up to `maxGroup`) is handled, the journal records they
    /// caused are made durable with one fdatasync, and only then do their answers leave, so no peer ever acts
    /// on a lease or a count the journal could lose. `afterEach` runs after every group or timeout (the
    /// HTTP status snapshot is refreshed there).
    public func serve(_ socket: MessageSocket, clock: () -> Double, shouldStop: () -> Bool, afterEach: () -> Void = {},
                      maxGroup: Int = 256, tickInterval: Double = CoordinatorService.tickInterval) throws {
        var answers: [[Data]] = []
        var lastTick = -Double.infinity
        while !shouldStop() {
            if var parts = try socket.receive() {
                ledger.beginGroup()
                var handled = 0
                while true {
                    if let out = try handle(parts, now: clock(), role: socket.peerRole) { answers.append([parts[0]] + out) }
                    handled += 1
                    guard handled < maxGroup, let next = try socket.receiveNow() else { break }
                    parts = next
                }
                try ledger.commitGroup()
                groups += 1
                groupedMessages += handled
                for a in answers { try socket.send(a) }
                answers.removeAll(keepingCapacity: true)
            }
            let now = clock()
            if now - lastTick >= tickInterval || now < lastTick {
                lastTick = now
                try tick(now: now)
            }
            afterEach()
        }
    }
}
