import BallastCluster
import BallastConfig
import BallastFormats
import BallastModel
import BallastRL
import BallastTransport
import BallastWire
import Foundation

/// The learner process: receives rollouts (PULL, bounded queue → back-pressure on actors), filters
/// stale ones by `max_policy_lag`, has the coordinator count each batch's prompts once per epoch,
/// runs the PPO (+ rehearsal) update on what counted, publishes the new policy version (PUB) and
/// serves weights on request (ROUTER). It registers with the coordinator every few seconds, sending
/// its endpoints, the run's sampling settings and its counters.
public final class LearnerNode {
    public let trainer: PPOTrainer
    let config: PPOConfig
    var cluster: ClusterConfig { config.cluster }
    let log = NodeLog(role: "learner")
    let context: ZMQContext
    let security: CurveSecurity?
    let pull: ZMQSocket, router: ZMQSocket, publisher: ZMQSocket
    let coordinator: RequestChannel
    public var shouldStop: () -> Bool = { false }

    /// Received rollouts until they are counted and trained on.
    var assembler: RolloutAssembler
    public private(set) var errors = WireErrorCounters()
    var endpoints: LearnerEndpoints
    var weightCache: [String: (version: Int, parts: [Data])] = [:]
    var budgetLeft: Int?
    var coordinatorFinished = false
    var downweighted = 0
    var busySeconds = 0.0
    var firstRollout: Date?
    var rolloutsReceived = 0
    var lastCheckpoint = "none"
    /// This process, and the step of its last saved checkpoint: the coordinator un-counts what a
    /// previous process counted for later steps (trained, then lost with it).
    let incarnation = UUID().uuidString
    var checkpointStep = 0
    var sequence: UInt64 = 0

    public init(config: PPOConfig, resume: Bool, restart: Bool = false) throws {
        self.config = config
        trainer = try PPOTrainer(config: config, resume: resume, restart: restart)
        guard trainer.scoreRule == nil else {
            throw ConfigError("models.scorer: \(config.scorer) (a control score rule) runs only in single-process `ballast ppo`; actors need a scorer model")
        }
        let c = config.cluster
        context = try ZMQContext()
        security = try c.curveKeys.map { try CurveSecurity(directory: $0, client: "learner") }
        // The queue is bounded in prompts (the learner stops reading past it); the message bound below is
        // never the binding one, since every message holds at least one prompt.
        assembler = RolloutAssembler(promptCapacity: c.queueCapacity * c.leaseSize, policy: StalenessPolicy(
            maxPolicyLag: c.maxPolicyLag, mode: c.staleness == "downweight" ? .downweight : .drop, decay: c.decay),
            vocabulary: trainer.policy.config.vocabSize, positions: trainer.policy.config.nPositions)
        pull = try context.socket(.pull)
        router = try context.socket(.router)
        publisher = try context.socket(.pub)
        try pull.setHighWaterMarks(send: 2, receive: 2)
        for s in [pull, router, publisher] { try security?.configureServer(s) }
        try pull.bind(c.rollouts)
        try router.bind(c.weights)
        try publisher.bind(c.notices)
        endpoints = LearnerEndpoints(rollouts: Self.advertised(pull.lastEndpoint, host: c.advertiseHost),
                                     weights: Self.advertised(router.lastEndpoint, host: c.advertiseHost),
                                     notices: Self.advertised(publisher.lastEndpoint, host: c.advertiseHost))
        coordinator = try RequestChannel(context: context, endpoint: c.coordinator, identity: "learner", security: security)
        if resume {
            lastCheckpoint = "step \(trainer.step)"
            checkpointStep = trainer.step
        }
    }

    /// tcp://0.0.0.0:5556 → tcp://HOST:5556 for the actors.
    static func advertised(_ endpoint: String, host: String?) -> String {
        guard let host, endpoint.hasPrefix("tcp://"), let colon = endpoint.lastIndex(of: ":") else { return endpoint }
        return "tcp://" + host + endpoint[colon...]
    }

    func stats() -> LearnerStats {
        let wall = firstRollout.map { Date().timeIntervalSince($0) } ?? 0
        return LearnerStats(step: trainer.step, queue: assembler.queuedPrompts, queueCapacity: assembler.promptCapacity, dropped: assembler.queue.dropped,
                            downweighted: downweighted, checkpoint: lastCheckpoint, busy: wall > 0 ? busySeconds / wall : 0,
                            rolloutsPerSecond: wall > 0 ? Double(rolloutsReceived) / wall : 0, errors: errors.total)
    }

    /// Registers with the coordinator; its answer carries the remaining prompt budget.
    func hello(attempts: Int) throws {
        let settings = RunSettings(temperature: config.temperature, maxNewTokens: config.maxNewTokens, responsesPerPrompt: cluster.responsesPerPrompt,
                                   leaseSize: cluster.leaseSize, seed: trainer.seed, heartbeatInterval: cluster.heartbeatInterval)
        let hello = LearnerHello(policyVersion: UInt64(trainer.step), endpoints: endpoints, settings: settings, stats: stats(),
                                 incarnation: .init(id: incarnation, checkpointStep: checkpointStep),
                                 flow: .init(batchPrompts: config.optim.batchSize, maxPolicyLag: cluster.maxPolicyLag))
        guard let reply = try coordinator.request(hello.frame(), timeout: 1, attempts: attempts, shouldStop: shouldStop) else { return }
        do { absorb(try LearnerWelcome(frame: reply).progress) } catch let e as WireError { errors.record(e); log("malformed answer to hello: \(e)") }
    }

    func absorb(_ progress: RunProgress) {
        coordinatorFinished = progress.finished
        budgetLeft = progress.budget - progress.completed
    }

    func publishVersion() throws {
        sequence += 1
        let (e, p) = VersionNotice(policyVersion: UInt64(trainer.step), finished: coordinatorFinished, incarnation: incarnation).frame(sequence: sequence).encode()
        // PUB drops what a subscriber cannot take; notices are tiny and re-sent every few seconds.
        try publisher.send([e, p])
    }

    /// Answers a weights request; frames are encoded once per version.
    func serveWeights(_ parts: [Data]) throws {
        let request: WeightsRequest
        do {
            guard parts.count == 3 else { throw WireError.tooShort(parts.count) }
            try Self.requireActor(router.peerRole, "weights request")
            request = try WeightsRequest(frame: try Frame.decode(envelope: parts[1], payload: parts[2]).0)
        } catch let e as WireError { errors.record(e); return }
        let model: GPT
        switch request.model {
        case .policy: model = trainer.policyModel
        case .reference: model = trainer.referenceModel
        case .scorer: model = trainer.scorerModel!  // a score rule is refused at init
        }
        let name = request.model.rawValue
        let version = request.model == .policy ? trainer.step : 0
        if weightCache[name]?.version != version {
            sequence += 1
            let (e, p) = try WeightsWire.message(model, policyVersion: UInt64(version), withTokenizer: request.model != .policy)
                .frame(sequence: sequence).encode()
            weightCache[name] = (version, [e, p])
        }
        try router.send([parts[0]] + weightCache[name]!.parts)
    }

    /// With CURVE, rollouts and weights requests are taken only from actor keys.
    static func requireActor(_ role: String?, _ what: String) throws {
        if let role, role != "actor" { throw WireError.payload("\(what) from a peer whose CURVE key is a \(role)'s, not an actor's") }
    }

    func receiveRollout(_ parts: [Data]) {
        do {
            guard parts.count == 2 else { throw WireError.tooShort(parts.count) }
            try Self.requireActor(pull.peerRole, "rollout")
            let message = try RolloutMessage(frame: try Frame.decode(envelope: parts[0], payload: parts[1]).0)
            try assembler.offer(message)
            firstRollout = firstRollout ?? Date()
            rolloutsReceived += message.rows
        } catch let e as WireError {
            reject(e)
        } catch {
            reject(.payload("\(error)"))
        }
    }

    /// Counts a rejected rollout message and logs it: each of the first 20, then one line per 1000
    /// (a hostile or broken peer must not be able to fill the disk with the log).
    func reject(_ e: WireError) {
        errors.record(e)
        let n = errors.total
        if n <= 20 {
            log("rejected a rollout message: \(e)" + (n == 20 ? " (from now on one line per 1000 rejected frames; counts in ballast status)" : ""))
        } else if n % 1000 == 0 {
            log("\(n) malformed frames rejected so far; the latest: \(e)")
        }
    }

    /// Takes `want` prompts' worth of rollouts, has the coordinator count them, trains on what counted.
    func trainStep(want: Int) throws {
        let began = Date()
        guard let next = try assembler.next(want: want, learnerVersion: trainer.step,
                                            release: { try tellCoordinator(ids: $1, epoch: $0, release: true, request: nil) },
                                            count: { try tellCoordinator(ids: $1, epoch: $0, release: false, request: $2) }) else { return }
        var batch = next.batch
        RolloutMaker.fillValues(&batch, critic: trainer.criticModel)
        downweighted += next.weights.filter { $0 < 1 }.count
        try trainer.train(on: batch, rowWeights: next.weights.contains { $0 != 1 } ? next.weights : nil,
                          extra: ["policy_lag_max": next.lags.max() ?? 0, "queue": assembler.queuedPrompts, "dropped": assembler.queue.dropped,
                                  "trained_prompts": next.trained])
        if trainer.step % config.run.checkpointEvery == 0 || trainer.isDone {
            lastCheckpoint = "step \(trainer.step)"
            checkpointStep = trainer.step
        }
        busySeconds += Date().timeIntervalSince(began)
        try publishVersion()
    }

    /// Reports consumed (or, with release, dropped) prompts; returns the ids that counted.
    @discardableResult
    func tellCoordinator(ids: [Int], epoch: Int, release: Bool, request: String?) throws -> [Int] {
        let message = Consumption(policyVersion: UInt64(trainer.step), id: incarnation, epoch: epoch, promptIDs: ids, release: release,
                                  request: request, step: release ? nil : trainer.step + 1)
        var warned = false
        while !shouldStop() {
            if let reply = try coordinator.request(message.frame(), timeout: 2, attempts: 1, shouldStop: shouldStop) {
                do {
                    let answer = try ConsumptionReply(frame: reply)
                    absorb(answer.progress)
                    return answer.accepted
                } catch let e as WireError {
                    errors.record(e)
                    log("malformed answer to a consumption report (\(e)); asking again")
                    continue
                }
            }
            if !warned { log("coordinator \(cluster.coordinator) is not answering; retrying"); warned = true }
        }
        return []
    }

    /// Receives, serves weights and trains until the coordinator says the budget is consumed or a stop is requested.
    func serveUntilDone() throws {
        var lastHello = Date()
        try publishVersion()
        while !shouldStop() {
            if Date().timeIntervalSince(lastHello) > 2 {
                try hello(attempts: 1)
                try publishVersion()  // late subscribers learn the version too
                lastHello = Date()
            }
            if coordinatorFinished { break }
            var sockets = [router]
            if !assembler.isFull { sockets.append(pull) }
            for i in try ZMQSocket.poll(sockets, timeoutMS: 100) {
                let s = sockets[i]
                while let parts = try? s.receiveNow() {
                    if s === router { try serveWeights(parts) } else { receiveRollout(parts) }
                    if s === pull && assembler.isFull { break }
                }
            }
            for d in assembler.prune(learnerVersion: trainer.step) { try tellCoordinator(ids: d.ids, epoch: d.epoch, release: true, request: nil) }
            // Prompts held for the next batch already count against the budget left.
            let want = min(config.optim.batchSize, (budgetLeft ?? config.optim.batchSize) + assembler.heldPrompts)
            if want > 0 && assembler.queuedPrompts + assembler.heldPrompts >= want { try trainStep(want: want) }
        }
    }

    /// Runs until the coordinator reports the prompt budget consumed (true) or a stop is requested (false).
    public func run() throws -> Bool {
        // Score normalisation and critic warm-up happen before any actor is served (they use the SFT policy).
        try trainer.prepare()
        log("PPO learner: \(trainer.describe()); rollouts \(endpoints.rollouts), weights \(endpoints.weights), notices \(endpoints.notices)")
        log("registering with the coordinator at \(cluster.coordinator)")
        while budgetLeft == nil && !shouldStop() { try hello(attempts: 1) }
        do { try serveUntilDone() } catch {
            // A write error (full disk, lost mount) or anything else ends the run: save what was
            // trained if the disk still allows it, so that --resume loses as little as possible.
            log("stopping on an error: \(error)")
            if trainer.step > checkpointStep {
                do {
                    try trainer.checkpoint()
                    log("final checkpoint written at step \(trainer.step); fix the cause and continue with --resume")
                } catch let saveError {
                    log("the final checkpoint could not be written either (\(saveError)); --resume continues from step \(checkpointStep)")
                }
            }
            throw error
        }
        // The last step's checkpoint is already written by the trainer (it was written twice, 0.4 s of a
        // short run's tail); a stop between checkpoints, or before the first step, still writes one.
        if trainer.step > checkpointStep || trainer.step == 0 {
            try trainer.checkpoint()
            lastCheckpoint = "step \(trainer.step)"
            checkpointStep = trainer.step
        }
        try hello(attempts: 2)
        try publishVersion()
        if coordinatorFinished {
            // The finished notice leaves when the process ends and its context terminates, waiting for
            // delivery at most this long (instead of a fixed sleep).
            try publisher.setLinger(milliseconds: 1000)
            guard trainer.step >= config.optim.steps else {
                throw ConfigError("the coordinator counted the whole prompt budget but this learner trained \(trainer.step) of \(config.optim.steps) steps "
                                  + "(prompts counted and never trained: a learner restarted against a coordinator journal newer than its checkpoint?)")
            }
            let st = stats()
            log("run complete: \(trainer.step) PPO steps; " + String(format: "%.2f rollouts/s received, learner busy %.3f of the time; ", st.rolloutsPerSecond, st.busy)
                + "\(assembler.queue.dropped) stale rollout messages dropped, \(errors.total) malformed; checkpoint \(trainer.policyDir)")
            return true
        }
        log("stopped at step \(trainer.step): checkpoint written; continue with --resume")
        return false
    }
}
