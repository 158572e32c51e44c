import BallastBenchmark
import BallastData
import BallastFormats
import BallastModel
import BallastRL
import BallastTransport
import BallastWire
import Synchronization
import Foundation

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
    var notices: ZMQSocket?
    var noticed = -1
    var runFinished = false

    /// Drains version notices; true when the learner announced the end of the run.
    func pollNotices() -> Bool {
        while let parts = try? notices?.receiveNow() {
            guard parts.count == 2, let (f, _) = try? Frame.decode(envelope: parts[0], payload: parts[1]),
                  let notice = try? VersionNotice(frame: f), notice.policyVersion <= UInt64(Int.max) else { continue }
            noticed = Int(notice.policyVersion)
            if notice.finished { runFinished = true }
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

    /// The policy version this actor samples with (0 before the first fetch), sent in its envelopes.
    var envelopeVersion: UInt64 { UInt64(max(version, 0)) }

    /// Fetches one model from the learner's weights endpoint (waiting out a learner busy updating).
    func fetch(_ channel: RequestChannel, _ model: WeightsRequest.Model) throws -> (GPT, Int)? {
        let request = WeightsRequest(policyVersion: envelopeVersion, id: id, model: model)
        guard let reply = try channel.request(request.frame(), timeout: 120, shouldStop: { self.shouldStop() || self.pollNotices() }) else { return nil }
        let weights = try Weights(frame: reply)
        guard weights.policyVersion <= UInt64(Int.max) else { throw WireError.payload("weights: policy version \(weights.policyVersion) out of range") }
        return (try WeightsWire.model(from: weights), Int(weights.policyVersion))
    }

    func heartbeatLoop(interval: Double) {
        let counters = self.counters, id = self.id, endpoint = coordinatorEndpoint, context = self.context, security = self.security
        let thread = Thread {
            guard let hb = try? RequestChannel(context: context, endpoint: endpoint, identity: id + "-hb", security: security) else { return }
            while true {
                let n = counters.rollouts.load(ordering: .relaxed)
                let rate = Double(n) / max(Date().timeIntervalSince(counters.started), 1e-3)
                try? hb.post(Heartbeat(id: id, rollouts: n, version: counters.version.load(ordering: .relaxed), rate: rate).frame())
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
        var found: ActorWelcome.Learner?
        var waiting = false
        let hello = ActorHello(id: id, host: ProcessInfo.processInfo.hostName)
        while !shouldStop() {
            guard let reply = try coordinator.request(hello.frame(), timeout: 2, shouldStop: shouldStop) else { return false }
            let welcome: ActorWelcome
            do { welcome = try ActorWelcome(frame: reply) } catch {
                log("malformed answer from the coordinator (\(error)); asking again")
                Thread.sleep(forTimeInterval: 0.5)
                continue
            }
            if welcome.state == .finished { log("the run is already finished"); return true }
            if welcome.state == .ok { found = welcome.learner; break }
            if !waiting { log("no learner registered yet; waiting"); waiting = true }
            Thread.sleep(forTimeInterval: 0.5)
        }
        guard let learner = found else { return false }
        let settings = learner.settings
        let rolloutsEndpoint = learner.endpoints.rollouts, weightsEndpoint = learner.endpoints.weights
        let push = try context.socket(.push)
        try push.setHighWaterMarks(send: 1, receive: 1)
        try push.setSendTimeout(ms: 500)
        try security?.configureClient(push)
        try push.connect(rolloutsEndpoint)
        let sub = try context.socket(.sub)
        try security?.configureClient(sub)
        try sub.subscribe()
        try sub.connect(learner.endpoints.notices)
        notices = sub
        let weights = try RequestChannel(context: context, endpoint: weightsEndpoint, identity: id + "-w", security: security)
        heartbeatLoop(interval: settings.heartbeatInterval)
        let k = settings.responsesPerPrompt, leaseSize = settings.leaseSize, seed = settings.seed
        var sampling = SamplingOptions(temperature: settings.temperature, maxNewTokens: settings.maxNewTokens)
        log("learner at \(rolloutsEndpoint); " + (referencePath == nil ? "fetching reference, scorer and policy" : "fetching the policy") + " from \(weightsEndpoint)")
        func frozen(_ path: String?, _ name: WeightsRequest.Model) throws -> GPT? {
            if let path { return try Checkpoint.load(path) }
            return try fetch(weights, name)?.0
        }
        guard let ref = try frozen(referencePath, .reference), let sc = try frozen(scorerPath, .scorer), let (pol, v) = try fetch(weights, .policy) else {
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
                guard let (pol, v) = try fetch(weights, .policy) else { return finish() }
                policy = pol
                version = v
                noticed = v
                counters.version.store(v, ordering: .relaxed)
            }
            let request = LeaseRequest(policyVersion: envelopeVersion, id: id, capacity: leaseSize)
            guard let reply = try coordinator.request(request.frame(), timeout: 5, shouldStop: shouldStop) else { return false }
            let answer: LeaseReply
            do { answer = try LeaseReply(frame: reply) } catch {
                log("malformed lease from the coordinator (\(error)); asking again")
                continue
            }
            guard let grant = answer.grant else {
                if answer.finished { return finish() }
                Thread.sleep(forTimeInterval: 0.2)
                continue
            }
            let ids = grant.promptIDs
            guard let data = grant.promptsJSON?.data(using: .utf8),
                  let objs = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]], objs.count == ids.count else {
                log("lease \(grant.lease) does not carry its \(ids.count) prompts; asking again")
                continue
            }
            let prompts = objs.map { PromptRecord(prompt: $0["prompt"] as? String ?? "", task: $0["task"] as? String ?? "", id: $0["id"] as? String ?? "") }
            let rows = prompts.flatMap { p in Array(repeating: p, count: k) }
            let rowIDs = ids.flatMap { Array(repeating: $0, count: k) }
            sampling.seed = seed ^ UInt64(truncatingIfNeeded: grant.lease) &* 0x9E37_79B9_7F4A_7C15
            let rollout = try RolloutMaker.make(policy: policy!, reference: reference!, critic: nil, scorer: scorer!, prompts: rows,
                                                sampling: sampling, policyVersion: version)
            sequence += 1
            let message = RolloutMessage(rollout, promptIDs: rowIDs, epoch: answer.epoch, lease: grant.lease, actor: id)
            let (e, p) = message.frame(sequence: sequence).encode()
            // Blocks while the learner's queue is full (back-pressure), checking for a stop request.
            while !shouldStop() {
                if try push.send([e, p]) { break }
            }
            counters.rollouts.add(rollout.count, ordering: .relaxed)
        }
        return false
    }
}
