import BallastFormats
import BallastTransport
import BallastWire
import Foundation

/// The coordinator's message handling, over any `MessageSocket` carrying [peer, envelope, payload].
///
/// - `hello` role=learner registers the learner's endpoints and statistics (sent every few seconds,
///   so a restarted coordinator learns them again); role=actor is answered with the learner's
///   endpoints (metadata state "ok") or state "wait" while no learner has registered.
/// - `ready` (metadata id, capacity) → a `lease` of prompt ids with the prompts themselves (metadata
///   "prompts", a JSON array of the prompt file's objects), or state "finished" / "wait".
/// - `heartbeat` keeps an actor alive and carries its counters (rollouts, policy version).
/// - `consumption` (tensor prompt_ids I64; metadata epoch, optional req, optional release=1) counts
///   consumed prompts once per epoch (or returns dropped ones to the queue) and is answered with the
///   accepted ids and the run's state; a repeated req gets the same answer.
/// - `status` → metadata "json" = `status()`.
/// Malformed frames are counted and answered with nothing.
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
    var learner: (lastSeen: Double, metadata: [String: String])?
    public private(set) var policyVersion: UInt64 = 0
    public let started: Double

    public init(ledger: PromptLedger, heartbeatTimeout: Double = 10, leaseTimeout: Double = 600, prompts: [String]? = nil, now: Double = 0) {
        self.ledger = ledger
        self.heartbeatTimeout = heartbeatTimeout
        self.leaseTimeout = leaseTimeout
        self.prompts = prompts
        started = now
    }

    func reply(_ kind: MessageKind, tensors: [(String, TensorData)] = [], metadata: [String: String]) -> [Data] {
        sequence += 1
        let (e, p) = Frame(kind: kind, sequence: sequence, policyVersion: policyVersion, tensors: tensors, metadata: metadata).encode()
        return [e, p]
    }

    var runState: [String: String] {
        ["finished": ledger.finished ? "1" : "0", "epoch": "\(ledger.epoch)", "completed": "\(ledger.completed)", "budget": "\(ledger.budget)"]
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
        let id = frame.metadata["id"] ?? peer
        switch frame.kind {
        case .hello where frame.metadata["role"] == "learner":
            learner = (now, frame.metadata)
            policyVersion = frame.policyVersion  // the learner is the authority (it may have restarted from a checkpoint)
            return reply(.hello, metadata: runState.merging(["state": "ok"]) { a, _ in a })
        case .hello:
            actors[id, default: ActorInfo(lastSeen: now)].lastSeen = now
            actors[id]!.host = frame.metadata["host"] ?? ""
            guard let l = learner?.metadata, let rollouts = l["rollouts"], let weights = l["weights"], let notices = l["notices"] else {
                return reply(.hello, metadata: ["state": ledger.finished ? "finished" : "wait"])
            }
            // The learner's "run.*" settings (sampling, K, lease size, seed) reach the actors this way.
            var meta = l.filter { $0.key.hasPrefix("run.") }
            meta.merge(["state": ledger.finished ? "finished" : "ok", "rollouts": rollouts, "weights": weights, "notices": notices]) { _, b in b }
            return reply(.hello, metadata: meta)
        case .ready:
            let capacity = Int(frame.metadata["capacity"] ?? "") ?? 16
            actors[id, default: ActorInfo(lastSeen: now)].lastSeen = now
            guard let lease = try ledger.lease(actor: id, max: capacity, now: now) else {
                return reply(.lease, metadata: ["state": ledger.finished ? "finished" : "wait", "epoch": "\(ledger.epoch)"])
            }
            actors[id]!.leases += 1
            actors[id]!.prompts += lease.promptIDs.count
            var meta = ["state": "lease", "lease": "\(lease.id)", "epoch": "\(lease.epoch)"]
            if let prompts { meta["prompts"] = "[" + lease.promptIDs.map { prompts[$0] }.joined(separator: ",") + "]" }
            return reply(.lease, tensors: [("prompt_ids", TensorData(int64s: lease.promptIDs))], metadata: meta)
        case .heartbeat:
            ledger.heartbeat(actor: id, now: now)
            actors[id, default: ActorInfo(lastSeen: now)].lastSeen = now
            if let r = frame.metadata["rollouts"].flatMap(Int.init) { actors[id]!.rollouts = r }
            if let v = frame.metadata["version"].flatMap(Int.init) { actors[id]!.version = v }
            if let r = frame.metadata["rate"].flatMap(Double.init) { actors[id]!.rate = r }
            return nil
        case .consumption:
            guard let ids = frame.int64s("prompt_ids"), let epoch = Int(frame.metadata["epoch"] ?? "") else {
                errors.record(.payload("consumption needs prompt_ids (I64) and metadata epoch"))
                return nil
            }
            if frame.metadata["release"] == "1" {
                try ledger.release(epoch: epoch, promptIDs: ids)
                return reply(.consumption, tensors: [("accepted", TensorData(int64s: []))], metadata: runState)
            }
            let r = try ledger.complete(actor: id, epoch: epoch, promptIDs: ids, now: now, request: frame.metadata["req"])
            return reply(.consumption, tensors: [("accepted", TensorData(int64s: r.accepted))], metadata: runState)
        case .status:
            let data = try JSONSerialization.data(withJSONObject: status(now: now), options: [.sortedKeys])
            return reply(.status, metadata: ["json": String(decoding: data, as: UTF8.self)])
        default:
            errors.record(.payload("unexpected \(frame.kind) at the coordinator"))
            return nil
        }
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
            "actors_expired": expiredActors, "duplicates": ledger.duplicates, "errors": errors.counts,
        ]
        if let l = learner {
            var info: [String: Any] = ["last_seen_s": now - l.lastSeen]
            for key in ["step", "queue", "queue_capacity", "dropped", "downweighted", "checkpoint", "busy", "rollouts_per_s", "errors"] {
                if let v = l.metadata[key] { info[key] = Double(v).map { $0 as Any } ?? v }
            }
            st["learner"] = info
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
        metric("actor_rollouts_total", "Rollouts sent by each actor.", "counter", actors.keys.sorted().map { ("actor=\"\($0)\"", Double(actors[$0]!.rollouts)) })
        metric("actor_rollouts_per_second", "Recent rollout rate of each actor.", "gauge", actors.keys.sorted().map { ("actor=\"\($0)\"", actors[$0]!.rate) })
        metric("duplicate_completions_total", "Completions ignored because the prompt already counted this epoch.", "counter", [("", Double(ledger.duplicates))])
        metric("malformed_frames_total", "Frames rejected by the coordinator, by reason.", "counter",
               errors.counts.keys.sorted().map { ("reason=\"\($0)\"", Double(errors.counts[$0]!)) })
        if let l = learner?.metadata {
            for (key, help) in [("step", "Learner PPO steps."), ("queue", "Rollouts waiting in the learner's queue."),
                                ("busy", "Fraction of time the learner spends updating."), ("dropped", "Stale rollouts dropped by the learner.")] {
                if let v = l[key].flatMap(Double.init) { metric("learner_\(key)", help, "gauge", [("", v)]) }
            }
        }
        return out
    }

    /// Serves until `shouldStop()`: receive, handle, reply to the sender, expire silent actors.
    /// `afterEach` runs after every message or timeout (the HTTP status snapshot is refreshed there).
    public func serve(_ socket: MessageSocket, clock: () -> Double, shouldStop: () -> Bool, afterEach: () -> Void = {}) throws {
        while !shouldStop() {
            if let parts = try socket.receive(), let out = try handle(parts, now: clock()) {
                try socket.send([parts[0]] + out)
            }
            try tick(now: clock())
            afterEach()
        }
    }
}
