import BallastBenchmark
import BallastFormats
import BallastModel
import BallastTrain
import BallastTransport
import BallastWire
import Foundation
import Synchronization

/// Counters the heartbeat thread reads while the actor computes.
final class ActorCounters: Sendable {
    let rollouts = Atomic<Int>(0)
    let version = Atomic<Int>(0)
    let started = Date()
}

/// The actor process: asks the coordinator where the learner is, fetches the reference policy, the
/// scorer and the current policy over the wire, then loops: lease prompts → K samples per prompt with
/// the KV cache → log-probs under policy and reference, scorer score → a rollout frame stamped with
/// the policy version, pushed to the learner. Version notices (SUB) trigger a weights fetch. All links
/// survive peer restarts (ZeroMQ reconnects; requests are retried on fresh sockets).
public final class ActorNode {
    public let id: String
    let coordinatorEndpoint: String
    let log: NodeLog
    let context: ZMQContext
    let security: CurveSecurity?
    let coordinator: RequestChannel
    public var shouldStop: () -> Bool = { false }
    let counters = ActorCounters()
    var policy: GPT?, reference: GPT?, scorer: GPT?
    var version = -1
    var settings: [String: String] = [:]
    var notices: ZMQSocket?
    var noticed = -1
    var runFinished = false

    /// Drains version notices; true when the learner announced the end of the run.
    func pollNotices() -> Bool {
        while let parts = try? notices?.receiveNow() {
            if parts.count == 2, let (f, _) = try? Frame.decode(envelope: parts[0], payload: parts[1]), f.kind == .versionNotice {
                noticed = Int(f.policyVersion)
                if f.metadata["finished"] == "1" { runFinished = true }
            }
        }
        return runFinished
    }

    /// Local checkpoint folders of the frozen models (a shared filesystem); nil = fetch from the learner.
    let referencePath: String?, scorerPath: String?

    public init(coordinator: String, id: String, curveKeys: String? = nil, referencePath: String? = nil, scorerPath: String? = nil) throws {
        self.id = id
        self.referencePath = referencePath
        self.scorerPath = scorerPath
        coordinatorEndpoint = coordinator
        log = NodeLog(role: id)
        context = try ZMQContext()
        security = try curveKeys.map { try CurveSecurity(directory: $0, client: "actor") }
        self.coordinator = try RequestChannel(context: context, endpoint: coordinator, identity: id, security: security)
    }

    func frame(_ kind: MessageKind, _ metadata: [String: String]) -> Frame {
        Frame(kind: kind, sequence: 0, policyVersion: UInt64(max(version, 0)), metadata: metadata.merging(["id": id]) { a, _ in a })
    }

    /// Fetches one model from the learner's weights endpoint (waiting out a learner busy updating).
    func fetch(_ channel: RequestChannel, _ model: String) throws -> (GPT, Int)? {
        guard let reply = try channel.request(frame(.weightsRequest, ["model": model]), timeout: 120,
                                              shouldStop: { self.shouldStop() || self.pollNotices() }) else { return nil }
        return (try WeightsWire.model(from: reply), Int(reply.policyVersion))
    }

    func heartbeatLoop(interval: Double) {
        let counters = self.counters, id = self.id, endpoint = coordinatorEndpoint, context = self.context, security = self.security
        let thread = Thread {
            guard let hb = try? RequestChannel(context: context, endpoint: endpoint, identity: id + "-hb", security: security) else { return }
            while true {
                let n = counters.rollouts.load(ordering: .relaxed)
                let rate = Double(n) / max(Date().timeIntervalSince(counters.started), 1e-3)
                try? hb.post(Frame(kind: .heartbeat, sequence: 0, metadata: [
                    "id": id, "rollouts": "\(n)", "version": "\(counters.version.load(ordering: .relaxed))", "rate": String(format: "%.3f", rate)]))
                Thread.sleep(forTimeInterval: interval)
            }
        }
        thread.start()
    }

    /// True (and a last line) when the run finished, false when this actor was asked to stop.
    func finish() -> Bool {
        guard runFinished || !shouldStop() else { return false }
        log("run finished; \(counters.rollouts.load(ordering: .relaxed)) rollouts sent")
        return true
    }

    /// Runs until the coordinator says the run is finished (true) or a stop is requested (false).
    public func run() throws -> Bool {
        log("asking the coordinator at \(coordinatorEndpoint) for the learner")
        var learner: [String: String] = [:]
        var waiting = false
        while !shouldStop() {
            guard let reply = try coordinator.request(frame(.hello, ["role": "actor", "host": ProcessInfo.processInfo.hostName]), timeout: 2,
                                                      shouldStop: shouldStop) else { return false }
            if reply.metadata["state"] == "finished" { log("the run is already finished"); return true }
            if reply.metadata["state"] == "ok" { learner = reply.metadata; break }
            if !waiting { log("no learner registered yet; waiting"); waiting = true }
            Thread.sleep(forTimeInterval: 0.5)
        }
        guard let rolloutsEndpoint = learner["rollouts"], let weightsEndpoint = learner["weights"], let noticesEndpoint = learner["notices"] else { return false }
        settings = learner
        let push = try context.socket(.push)
        try push.setHighWaterMarks(send: 1, receive: 1)
        try push.setSendTimeout(ms: 500)
        try security?.configureClient(push)
        try push.connect(rolloutsEndpoint)
        let sub = try context.socket(.sub)
        try security?.configureClient(sub)
        try sub.subscribe()
        try sub.connect(noticesEndpoint)
        notices = sub
        let weights = try RequestChannel(context: context, endpoint: weightsEndpoint, identity: id + "-w", security: security)
        heartbeatLoop(interval: Double(settings["run.heartbeat_interval"] ?? "") ?? 1)

        func setting<T: LosslessStringConvertible>(_ key: String, _ fallback: T) -> T { settings["run." + key].flatMap(T.init) ?? fallback }
        let k = setting("responses_per_prompt", 1), leaseSize = setting("lease_size", 16), seed: UInt64 = setting("seed", 1)
        var sampling = SamplingOptions(temperature: setting("temperature", Float(1)), maxNewTokens: setting("max_new_tokens", 32))
        log("learner at \(rolloutsEndpoint); " + (referencePath == nil ? "fetching reference, scorer and policy" : "fetching the policy") + " from \(weightsEndpoint)")
        func frozen(_ path: String?, _ name: String) throws -> GPT? {
            if let path { return try Checkpoint.load(path) }
            return try fetch(weights, name)?.0
        }
        guard let ref = try frozen(referencePath, "reference"), let sc = try frozen(scorerPath, "scorer"), let (pol, v) = try fetch(weights, "policy") else {
            return finish()
        }
        reference = ref
        scorer = sc
        policy = pol
        version = v
        counters.version.store(v, ordering: .relaxed)
        log("ready: policy version \(v), \(pol.parameterCount) parameters; K = \(k) samples per prompt, leases of \(leaseSize)")
        noticed = v
        var sequence: UInt64 = 0
        while !shouldStop() {
            if pollNotices() { return finish() }
            if noticed != version {
                guard let (pol, v) = try fetch(weights, "policy") else { return finish() }
                policy = pol
                version = v
                noticed = v
                counters.version.store(v, ordering: .relaxed)
            }
            guard let reply = try coordinator.request(frame(.ready, ["capacity": "\(leaseSize)"]), timeout: 5, shouldStop: shouldStop) else { return false }
            switch reply.metadata["state"] {
            case "finished":
                return finish()
            case "lease": break
            default:
                Thread.sleep(forTimeInterval: 0.2)
                continue
            }
            guard let ids = reply.int64s("prompt_ids"), let epoch = reply.metadata["epoch"], let lease = reply.metadata["lease"],
                  let data = reply.metadata["prompts"]?.data(using: .utf8),
                  let objs = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]], objs.count == ids.count else {
                log("malformed lease from the coordinator; asking again")
                continue
            }
            let prompts = objs.map { PromptRecord(prompt: $0["prompt"] as? String ?? "", task: $0["task"] as? String ?? "", id: $0["id"] as? String ?? "") }
            let rows = prompts.flatMap { p in Array(repeating: p, count: k) }
            let rowIDs = ids.flatMap { Array(repeating: $0, count: k) }
            sampling.seed = seed ^ (UInt64(lease) ?? 0) &* 0x9E37_79B9_7F4A_7C15
            let rollout = try RolloutMaker.make(policy: policy!, reference: reference!, critic: nil, scorer: scorer!, prompts: rows,
                                                sampling: sampling, policyVersion: version)
            sequence += 1
            var f = rollout.frame(sequence: sequence)
            f.tensors.append(("prompt_ids", TensorData(int64s: rowIDs)))
            f.metadata["epoch"] = epoch
            f.metadata["lease"] = lease
            f.metadata["actor"] = id
            let (e, p) = f.encode()
            // Blocks while the learner's queue is full (back-pressure), checking for a stop request.
            while !shouldStop() {
                if try push.send([e, p]) { break }
            }
            counters.rollouts.add(rollout.count, ordering: .relaxed)
        }
        return false
    }
}
