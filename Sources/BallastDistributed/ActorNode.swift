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
    /// When the work loop last moved (milliseconds of the monotonic clock): the heartbeat thread only
    /// vouches for an actor whose work loop is alive.
    let progress = Atomic<Int>(ActorCounters.monotonicMS())

    static func monotonicMS() -> Int { Int(DispatchTime.now().uptimeNanoseconds / 1_000_000) }

    func moved() { progress.store(Self.monotonicMS(), ordering: .relaxed) }

    /// Seconds since the work loop last moved.
    var silence: Double { Double(Self.monotonicMS() - progress.load(ordering: .relaxed)) / 1000 }

    /// Whether a heartbeat may say this actor is alive.
    func vouches(watchdog: Double) -> Bool { silence <= watchdog }
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
    /// Seconds the work loop may stand still (one lease's sampling, a weights fetch) before heartbeats
    /// stop, so that the coordinator declares a hung actor dead and re-leases its prompts.
    let watchdog: Double
    /// What to do next; this class only performs it over sockets.
    var core: ActorCore
    var models: [WeightsRequest.Model: GPT] = [:]
    var notices: ZMQSocket?

    /// Drains version notices into the core; true when the learner announced the end of the run.
    func pollNotices() -> Bool {
        while let parts = try? notices?.receiveNow() {
            guard parts.count == 2, let (f, _) = try? Frame.decode(envelope: parts[0], payload: parts[1]),
                  let notice = try? VersionNotice(frame: f) else { continue }
            core.received(notice)
        }
        return core.runFinished
    }

    /// Local checkpoint folders of the frozen models (a shared filesystem); nil = fetch from the learner.
    let referencePath: String?, scorerPath: String?

    public init(coordinator: String, id: String, curveKeys: String? = nil, curveKeyName: String? = nil, referencePath: String? = nil,
                scorerPath: String? = nil, watchdog: Double = 600) throws {
        precondition(watchdog > 0)
        self.watchdog = watchdog
        self.id = id
        self.referencePath = referencePath
        self.scorerPath = scorerPath
        coordinatorEndpoint = coordinator
        log = NodeLog(role: id)
        context = try ZMQContext()
        security = try curveKeys.map { try CurveSecurity(directory: $0, client: try CurveSecurity.actorKeyName(in: $0, explicit: curveKeyName)) }
        self.coordinator = try RequestChannel(context: context, endpoint: coordinator, identity: id, security: security)
        core = ActorCore(id: id, host: ProcessInfo.processInfo.hostName)
    }

    /// Fetches one model from the learner's weights endpoint (waiting out a learner busy updating;
    /// asking again at once when a notice shows that the learner process was replaced, since the
    /// one asked died with the request); nil when the run finished or a stop was requested.
    func fetch(_ channel: RequestChannel, _ model: WeightsRequest.Model) throws -> (GPT, Int)? {
        let request = WeightsRequest(policyVersion: core.envelopeVersion, id: id, model: model)
        while true {
            let askedLearner = core.learnerIncarnation
            var replaced = false
            let reply = try channel.request(request.frame(), timeout: 120, attempts: 1, shouldStop: {
                if self.shouldStop() || self.pollNotices() { return true }
                replaced = self.core.learnerReplaced(since: askedLearner)
                return replaced
            })
            if let reply {
                let weights = try Weights(frame: reply)
                guard weights.policyVersion <= UInt64(Int.max) else { throw WireError.payload("weights: policy version \(weights.policyVersion) out of range") }
                // a new policy version overwrites the policy model in place
                return (try WeightsWire.model(from: weights, reuse: model == .policy ? models[.policy] : nil), Int(weights.policyVersion))
            }
            if replaced {
                log("the learner restarted while a \(model.rawValue) request was pending; asking the new process")
            } else if shouldStop() || core.runFinished {
                return nil
            }
        }
    }

    func heartbeatLoop(interval: Double) {
        let counters = self.counters, id = self.id, endpoint = coordinatorEndpoint, context = self.context, security = self.security
        let watchdog = self.watchdog, log = self.log
        let thread = Thread {
            guard let hb = try? RequestChannel(context: context, endpoint: endpoint, identity: id + "-hb", security: security) else { return }
            var paused = false
            while true {
                if !counters.vouches(watchdog: watchdog) {
                    if !paused { log(String(format: "work loop still for %.0f s (watchdog %.0f s): heartbeats paused", counters.silence, watchdog)) }
                    paused = true
                    Thread.sleep(forTimeInterval: interval)
                    continue
                }
                paused = false
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
        guard core.runFinished || !shouldStop() else { return false }
        log("run finished; \(counters.rollouts.load(ordering: .relaxed)) rollouts sent")
        return true
    }

    /// The learner's sockets, made once the coordinator has named it.
    struct LearnerLinks {
        let push: ZMQSocket
        let weights: RequestChannel
    }

    func connect(to learner: ActorWelcome.Learner) throws -> LearnerLinks {
        let push = try context.socket(.push)
        try push.setHighWaterMarks(send: 1, receive: 1)
        try push.setSendTimeout(ms: 500)
        try security?.configureClient(push)
        try push.connect(learner.endpoints.rollouts)
        let sub = try context.socket(.sub)
        try security?.configureClient(sub)
        try sub.subscribe()
        try sub.connect(learner.endpoints.notices)
        notices = sub
        let weights = try RequestChannel(context: context, endpoint: learner.endpoints.weights, identity: id + "-w", security: security)
        heartbeatLoop(interval: learner.settings.heartbeatInterval)
        let s = learner.settings
        log("learner at \(learner.endpoints.rollouts); " + (referencePath == nil ? "fetching reference, scorer and policy" : "fetching the policy")
            + " from \(learner.endpoints.weights); K = \(s.responsesPerPrompt) samples per prompt, leases of \(s.leaseSize)")
        return LearnerLinks(push: push, weights: weights)
    }

    /// Runs until the coordinator says the run is finished (true) or a stop is requested (false).
    public func run() throws -> Bool {
        log("asking the coordinator at \(coordinatorEndpoint) for the learner")
        var links: LearnerLinks?
        var waiting = false
        var sequence: UInt64 = 0
        var ready = false
        var step = core.next()
        while !shouldStop() {
            counters.moved()
            if links != nil && pollNotices() { return finish() }
            switch step {
            case .finished:
                if links == nil { log("the run is already finished"); return true }
                return finish()
            case .wait(let seconds, let note):
                if let note { log(note) }
                if core.learner == nil && !waiting { log("no learner registered yet; waiting"); waiting = true }
                // What ends a wait for work is the learner's next version (or the end of the run), so a
                // notice cuts the wait short instead of leaving the actor asleep while the learner starves.
                if let notices { _ = try? ZMQSocket.poll([notices], timeoutMS: Int(seconds * 1000)) } else { Thread.sleep(forTimeInterval: seconds) }
                step = core.next()
            case .hello(let hello):
                guard let reply = try coordinator.request(hello.frame(), timeout: 2, shouldStop: shouldStop) else { return false }
                do { step = core.received(try ActorWelcome(frame: reply)) } catch {
                    step = .wait(seconds: 0.5, note: "malformed answer from the coordinator (\(error)); asking again")
                }
                if let learner = core.learner, links == nil { links = try connect(to: learner) }
            case .fetch(let model):
                let local = model == .reference ? referencePath : model == .scorer ? scorerPath : nil
                if let local {
                    models[model] = try Checkpoint.load(local)
                    step = core.obtained(model, version: 0)
                } else {
                    guard let (m, v) = try fetch(links!.weights, model) else { return finish() }
                    // policy frames carry no tokenizer: the policy reads text as its reference (the SFT model) does
                    if model == .policy, let reference = models[.reference] { m.codec = reference.codec }
                    models[model] = m
                    step = core.obtained(model, version: v)
                    if model == .policy {
                        counters.version.store(v, ordering: .relaxed)
                        if !ready { log("ready: policy version \(v), \(m.parameterCount) parameters"); ready = true }
                    }
                }
            case .lease(let request):
                guard let reply = try coordinator.request(request.frame(), timeout: 5, shouldStop: shouldStop) else { return false }
                do { step = core.received(try LeaseReply(frame: reply)) } catch {
                    step = .wait(seconds: 0, note: "malformed lease from the coordinator (\(error)); asking again")
                }
            case .sample(let work):
                guard let settings = core.learner?.settings else { return false }
                let sampling = SamplingOptions(temperature: settings.temperature, maxNewTokens: settings.maxNewTokens, seed: work.seed)
                let rollout = try RolloutMaker.make(policy: models[.policy]!, reference: models[.reference]!, critic: nil, scorer: models[.scorer]!,
                                                    prompts: work.rows, sampling: sampling, policyVersion: work.policyVersion)
                sequence += 1
                let message = RolloutMessage(rollout, promptIDs: work.promptIDs, epoch: work.epoch, lease: work.lease, actor: id)
                let (e, p) = message.frame(sequence: sequence).encode()
                // Blocks while the learner's queue is full (back-pressure) or the learner is down,
                // checking for a stop request and for the end of the run.
                while !shouldStop() {
                    counters.moved()  // waiting on the learner's back-pressure is not a hang
                    if try links!.push.send([e, p]) { break }
                    if pollNotices() { return finish() }
                }
                counters.rollouts.add(rollout.count, ordering: .relaxed)
                step = core.next()
            }
        }
        return false
    }
}
