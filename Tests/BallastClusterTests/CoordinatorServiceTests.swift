import BallastCluster
import BallastFormats
import BallastTransport
import BallastWire
import Foundation
import Testing

func message(_ peer: String, _ m: some WireMessage) -> [Data] {
    let (e, p) = m.frame(sequence: 1).encode()
    return [Data(peer.utf8), e, p]
}

func decoded<M: WireMessage>(_ reply: [Data]?, as _: M.Type) throws -> M {
    let r = try #require(reply)
    return try M(frame: try Frame.decode(envelope: r[0], payload: r[1]).0)
}

func ready(_ id: String, _ capacity: Int) -> LeaseRequest { LeaseRequest(id: id, capacity: capacity) }

func consumed(_ id: String, _ ids: [Int], epoch: Int = 0) -> Consumption { Consumption(policyVersion: 0, id: id, epoch: epoch, promptIDs: ids) }

let learnerHello = LearnerHello(
    policyVersion: 7, endpoints: LearnerEndpoints(rollouts: "tcp://h:1", weights: "tcp://h:2", notices: "tcp://h:3"),
    settings: RunSettings(temperature: 1, maxNewTokens: 32, responsesPerPrompt: 2, leaseSize: 4, seed: 5, heartbeatInterval: 1),
    stats: LearnerStats(step: 7, queue: 2, queueCapacity: 8, dropped: 0, downweighted: 0, checkpoint: "none", busy: 0.5, rolloutsPerSecond: 3, errors: 0))

@Suite("Coordinator service")
struct CoordinatorServiceTests {
    @Test("ready → lease, consumption counts, dead actors' prompts are re-leased, status reports it all")
    func protocolFlow() throws {
        let svc = CoordinatorService(ledger: try PromptLedger(promptCount: 10, shards: 2, journal: MemoryJournal()), heartbeatTimeout: 5)
        let a = try decoded(try svc.handle(message("A", ready("A", 4)), now: 0), as: LeaseReply.self)
        #expect(a.grant?.promptIDs == [0, 1, 2, 3])
        let b = try decoded(try svc.handle(message("B", ready("B", 4)), now: 0), as: LeaseReply.self)
        #expect(b.grant?.promptIDs == [4, 5, 6, 7])
        let ack = try decoded(try svc.handle(message("A", consumed("A", a.grant!.promptIDs)), now: 1), as: ConsumptionReply.self)
        #expect(ack.accepted == [0, 1, 2, 3] && ack.progress == RunProgress(finished: false, epoch: 0, completed: 4, budget: 10))
        // B goes silent; A keeps heartbeating; after the timeout B's prompts come back first.
        _ = try svc.handle(message("A", Heartbeat(id: "A", rollouts: 4, version: 0, rate: 1)), now: 7)
        try svc.tick(now: 7)
        let again = try decoded(try svc.handle(message("A", ready("A", 10)), now: 7), as: LeaseReply.self)
        #expect(Set(again.grant?.promptIDs ?? []) == [4, 5, 6, 7, 8, 9])
        _ = try svc.handle(message("A", consumed("A", again.grant!.promptIDs)), now: 8)
        let done = try decoded(try svc.handle(message("A", ready("A", 16)), now: 9), as: LeaseReply.self)
        #expect(done.grant == nil && done.finished)
        let st = try decoded(try svc.handle(message("X", StatusRequest()), now: 9), as: StatusReply.self)
        let json = try JSONSerialization.jsonObject(with: Data(st.json.utf8)) as! [String: Any]
        #expect(json["finished"] as? Bool == true && json["epoch"] as? Int == 1)
    }

    @Test("actors learn the learner's endpoints from hello; leases carry the prompts; /metrics text")
    func helloPromptsAndMetrics() throws {
        let lines = (0..<3).map { "{\"prompt\":\"p\($0)\",\"task\":\"qa\"}" }
        let svc = CoordinatorService(ledger: try PromptLedger(promptCount: 3, journal: MemoryJournal()), prompts: lines)
        let actor = ActorHello(id: "A", host: "node-a")
        #expect(try decoded(try svc.handle(message("A", actor), now: 0), as: ActorWelcome.self) == ActorWelcome(policyVersion: 0, state: .wait, learner: nil))
        let welcome = try decoded(try svc.handle(message("L", learnerHello), now: 0), as: LearnerWelcome.self)
        #expect(welcome.policyVersion == 7 && welcome.progress == RunProgress(finished: false, epoch: 0, completed: 0, budget: 3))
        let hello = try decoded(try svc.handle(message("A", actor), now: 1), as: ActorWelcome.self)
        #expect(hello.state == .ok && hello.learner == ActorWelcome.Learner(endpoints: learnerHello.endpoints, settings: learnerHello.settings))
        let lease = try decoded(try svc.handle(message("A", ready("A", 2)), now: 1), as: LeaseReply.self)
        let objs = try JSONSerialization.jsonObject(with: Data(try #require(lease.grant?.promptsJSON).utf8)) as! [[String: Any]]
        #expect(objs.map { $0["prompt"] as? String } == ["p0", "p1"])
        _ = try svc.handle(message("A", Heartbeat(id: "A", rollouts: 5, version: 7, rate: 1.5)), now: 2)
        let text = svc.prometheus(now: 2)
        #expect(text.contains("ballast_shard_prompts{shard=\"0\",state=\"leased\"} 1.0"))
        #expect(text.contains("ballast_actor_rollouts_total{actor=\"A\"} 5.0") && text.contains("ballast_learner_step 7.0"))
        let st = svc.status(now: 2)
        #expect((st["learner"] as? [String: Any])?["step"] as? Int == 7)
    }

    @Test("garbage and truncated frames are counted and the service keeps answering")
    func garbage() throws {
        let svc = CoordinatorService(ledger: try PromptLedger(promptCount: 4, journal: MemoryJournal()))
        #expect(try svc.handle([Data("A".utf8), Data("garbage".utf8), Data()], now: 0) == nil)
        var bad = message("A", ready("A", 2))
        bad[1] = bad[1].prefix(30)
        #expect(try svc.handle(bad, now: 0) == nil)
        #expect(try svc.handle([Data("A".utf8)], now: 0) == nil)
        #expect(svc.errors.total == 3)
        #expect(try decoded(try svc.handle(message("A", ready("A", 2)), now: 0), as: LeaseReply.self).grant?.promptIDs == [0, 1])
    }

    @Test("messages missing a field or carrying a non-finite number are counted as malformed and change nothing")
    func malformedMessages() throws {
        let svc = CoordinatorService(ledger: try PromptLedger(promptCount: 4, journal: MemoryJournal()))
        func raw(_ kind: MessageKind, _ metadata: [String: String], tensors: [(String, TensorData)] = []) -> [Data] {
            let (e, p) = Frame(kind: kind, sequence: 1, tensors: tensors, metadata: metadata).encode()
            return [Data("A".utf8), e, p]
        }
        let cases: [[Data]] = [
            raw(.ready, ["id": "A"]),                                                     // no capacity
            raw(.ready, ["id": "A", "capacity": "0"]),
            raw(.hello, ["id": "A"]),                                                     // no role
            raw(.hello, ["role": "learner", "id": "learner"]),                            // no endpoints, settings, counters
            raw(.heartbeat, ["id": "A", "rollouts": "1", "version": "0", "rate": "nan"]),
            raw(.heartbeat, ["id": "A", "rollouts": "1", "version": "0", "rate": "inf"]),
            raw(.consumption, ["id": "A", "epoch": "0"]),                                 // no prompt_ids
            raw(.consumption, ["id": "A", "epoch": "x"], tensors: [("prompt_ids", TensorData(int64s: [0]))]),
            raw(.weights, [:]),                                                           // not a coordinator message
        ]
        for c in cases { #expect(try svc.handle(c, now: 0) == nil) }
        #expect(svc.errors.counts == ["bad_payload": cases.count])
        #expect(svc.ledger.completed == 0 && svc.ledger.leasedCount == 0)
        let st = try decoded(try svc.handle(message("X", StatusRequest()), now: 1), as: StatusReply.self)
        #expect(try JSONSerialization.jsonObject(with: Data(st.json.utf8)) is [String: Any])
    }

    /// CRC-valid frames whose fields sit at their extremes: before the fix a policy version ≥ 2^63 trapped
    /// in status(), a learner checkpoint named "nan" made the status JSON unwritable (the coordinator
    /// exited), and an actor id with a quote broke the /metrics text.
    @Test("well-formed frames with extreme field values are rejected or absorbed; status and /metrics still work")
    func hostileFieldValues() throws {
        let svc = CoordinatorService(ledger: try PromptLedger(promptCount: 4, journal: MemoryJournal()))
        var hostileLearner = learnerHello
        hostileLearner.stats.checkpoint = "nan"
        hostileLearner.stats.step = Int.max
        let huge = UInt64(1) << 63
        var rejected: [[Data]] = [message("L", LearnerHello(policyVersion: huge, endpoints: learnerHello.endpoints, settings: learnerHello.settings,
                                                           stats: learnerHello.stats)),
                                  [Data("A".utf8)] + {
                                      let (e, p) = Frame(kind: .heartbeat, sequence: 1, policyVersion: UInt64.max,
                                                         metadata: Heartbeat(id: "A", rollouts: 1, version: 0, rate: 1).payload.metadata).encode()
                                      return [e, p]
                                  }()]
        rejected.append(message("A", LeaseRequest(policyVersion: huge, id: "A", capacity: 1)))
        for m in rejected { #expect(try svc.handle(m, now: 0) == nil) }
        #expect(svc.errors.counts == ["bad_payload": rejected.count] && svc.policyVersion == 0)

        _ = try svc.handle(message("L", hostileLearner), now: 0)
        let odd = "a\"b\\c\nd"
        _ = try svc.handle(message(odd, Heartbeat(id: odd, rollouts: Int.max, version: Int.min, rate: 1e308)), now: 0)
        _ = try svc.handle(message("B", Heartbeat(id: "B", rollouts: Int.max, version: Int.max, rate: -1e308)), now: 0)
        let lease = try decoded(try svc.handle(message("B", ready("B", Int.max)), now: 0), as: LeaseReply.self)
        #expect(lease.grant?.promptIDs == [0, 1, 2, 3])
        for epoch in [Int.min, -1, Int.max] {
            let r = try decoded(try svc.handle(message("L", consumed("L", [Int.min, -1, 4, Int.max, 0], epoch: epoch)), now: 1), as: ConsumptionReply.self)
            #expect(r.accepted == [])
        }
        let r = try decoded(try svc.handle(message("L", consumed("L", [Int.min, -1, 4, Int.max, 0], epoch: 0)), now: 1), as: ConsumptionReply.self)
        #expect(r.accepted == [0] && svc.ledger.completed == 1)

        let st = try decoded(try svc.handle(message("X", StatusRequest()), now: 2), as: StatusReply.self)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(st.json.utf8)) as? [String: Any])
        #expect((json["learner"] as? [String: Any])?["checkpoint"] as? String == "nan")
        let text = svc.prometheus(now: 2)
        #expect(text.contains(#"ballast_actor_rollouts_total{actor="a\"b\\c\nd"}"#))
        #expect(!text.split(separator: "\n").contains { $0.hasPrefix("d\"") })  // the newline in the id did not end the line
    }

    @Test("serves real DEALER peers over a loopback ROUTER socket")
    func overZeroMQ() throws {
        let ctx = try ZMQContext()
        let router = try ctx.socket(.router)
        try router.bind("tcp://127.0.0.1:*")
        try router.setReceiveTimeout(ms: 20)
        let endpoint = router.lastEndpoint
        let svc = CoordinatorService(ledger: try PromptLedger(promptCount: 6, journal: MemoryJournal()))
        let stop = StopFlag()
        let thread = Thread { try? svc.serve(router, clock: { Date().timeIntervalSince1970 }, shouldStop: { stop.value }) }
        thread.start()
        defer { stop.value = true }
        let dealer = try ctx.socket(.dealer)
        try dealer.setRoutingID("actor-7")
        try dealer.setReceiveTimeout(ms: 5000)
        try dealer.connect(endpoint)
        let m = message("", ready("actor-7", 6))
        try dealer.send([m[1], m[2]])
        let lease = try decoded(try dealer.receive(), as: LeaseReply.self)
        #expect(lease.grant?.promptIDs == [0, 1, 2, 3, 4, 5])
    }

    /// A learner training 8 prompts per step, one time unit per step, fed by eight actors that each
    /// sample a 4-prompt lease in one time unit: four times the work the learner can train. Actors take
    /// the newest policy before each lease; the learner drops rollouts lagging it by more than one
    /// version (handing their prompts back) and trains the rest in arrival order.
    static func simulateFlow(_ flow: LearnerHello.Flow?) throws -> (trained: Int, dropped: Int, steps: Int, elapsed: Double, waits: Int) {
        let batch = 8, lag = 1
        let svc = CoordinatorService(ledger: try PromptLedger(promptCount: 192, journal: MemoryJournal()), heartbeatTimeout: 1e9)
        var version = 0
        func hello() throws {
            var h = learnerHello
            h.policyVersion = UInt64(version)
            h.incarnation = .init(id: "L1", checkpointStep: 0)
            h.flow = flow
            _ = try svc.handle(message("L", h), now: 0)
        }
        try hello()
        var queue = BoundedRolloutQueue<(epoch: Int, ids: [Int])>(capacity: 10_000, policy: StalenessPolicy(maxPolicyLag: lag))
        var actorFree = [Double](repeating: 0, count: 8)
        var sampling: [(epoch: Int, ids: [Int], version: Int)?] = Array(repeating: nil, count: 8)
        var learnerFree = 0.0, training = false, trained = 0, dropped = 0
        var tick = 0
        while !svc.ledger.finished && tick < 10_000 {
            let t = Double(tick) / 10
            for i in 0..<8 where actorFree[i] <= t {
                if let w = sampling[i] { queue.offer((w.epoch, w.ids), version: w.version) }
                sampling[i] = nil
                let reply = try decoded(try svc.handle(message("A\(i)", LeaseRequest(policyVersion: UInt64(version), id: "A\(i)", capacity: 4)), now: t),
                                        as: LeaseReply.self)
                if let g = reply.grant { sampling[i] = (reply.epoch, g.promptIDs, version) }
                actorFree[i] = t + (reply.grant == nil ? 0.2 : 1)
            }
            if learnerFree <= t {
                if training {
                    version += 1
                    training = false
                    try hello()
                }
                for stale in queue.prune(learnerVersion: version) {
                    dropped += stale.ids.count
                    _ = try svc.handle(message("L", Consumption(policyVersion: UInt64(version), id: "L1", epoch: stale.epoch, promptIDs: stale.ids, release: true)), now: t)
                }
                if queue.count * 4 >= batch {
                    for (item, _) in queue.take(max: batch / 4, learnerVersion: version).kept {
                        let c = Consumption(policyVersion: UInt64(version), id: "L1", epoch: item.epoch, promptIDs: item.ids, step: version + 1)
                        trained += try decoded(try svc.handle(message("L", c), now: t), as: ConsumptionReply.self).accepted.count
                    }
                    training = true
                    learnerFree = t + 1
                }
            }
            tick += 1
        }
        return (trained, dropped, version + (training ? 1 : 0), Double(tick) / 10, svc.flowWaits)
    }

    @Test("flow control: actors four times faster than the learner lease only what it trains before it goes stale")
    func flowControl() throws {
        let unbounded = try Self.simulateFlow(nil)
        // The defect: everything is leased at once, and most of it is stale by the time the learner gets to it.
        #expect(unbounded.trained == 192 && unbounded.dropped > 192, "\(unbounded)")
        let bounded = try Self.simulateFlow(LearnerHello.Flow(batchPrompts: 8, maxPolicyLag: 1))
        #expect(bounded.trained == 192 && bounded.steps == 24, "\(bounded)")
        #expect(bounded.dropped == 0 && bounded.waits > 0)
        // ... and the learner is not starved: 24 steps of one time unit, after the first lease's unit.
        #expect(bounded.elapsed <= 26, "\(bounded)")
    }

    @Test("with CURVE, each message is taken only from the role whose key sends it")
    func rolesBoundToKeys() throws {
        let svc = CoordinatorService(ledger: try PromptLedger(promptCount: 8, journal: MemoryJournal()))
        // An actor's key cannot register as the learner, nor count prompts as consumed.
        #expect(try svc.handle(message("A", learnerHello), now: 0, role: "actor") == nil)
        #expect(try svc.handle(message("A", consumed("learner", [0, 1])), now: 0, role: "actor") == nil)
        #expect(svc.policyVersion == 0 && svc.ledger.completed == 0 && svc.errors.counts["bad_payload"] == 2)
        // Nor can the learner's key lease prompts; a status client may only ask for status.
        #expect(try svc.handle(message("L", ready("L", 4)), now: 0, role: "learner") == nil)
        #expect(try svc.handle(message("C", Heartbeat(id: "C", rollouts: 0, version: 0, rate: 0)), now: 0, role: "client") == nil)
        #expect(svc.ledger.leasedCount == 0 && svc.status(now: 0)["actors"] as? [Any] != nil && (svc.status(now: 0)["actors"] as! [Any]).isEmpty)
        #expect(try svc.handle(message("C", StatusRequest()), now: 0, role: "client") != nil)
        // The right keys are served.
        #expect(try decoded(try svc.handle(message("L", learnerHello), now: 0, role: "learner"), as: LearnerWelcome.self).policyVersion == 7)
        #expect(try decoded(try svc.handle(message("A", ready("A", 4)), now: 0, role: "actor"), as: LeaseReply.self).grant?.promptIDs == [0, 1, 2, 3])
    }

    @Test("a retried ready (its reply was lost) gets the lease it was granted, also after a coordinator restart")
    func idempotentReady() throws {
        let journal = MemoryJournal()
        var svc = CoordinatorService(ledger: try PromptLedger(promptCount: 20, journal: journal))
        func lease(_ request: String?) throws -> LeaseReply {
            try decoded(try svc.handle(message("A", LeaseRequest(id: "A", capacity: 4, request: request)), now: 0), as: LeaseReply.self)
        }
        let first = try lease("p-0")
        #expect(first.grant?.promptIDs == [0, 1, 2, 3])
        #expect(try lease("p-0").grant == first.grant, "the retry strands nothing")
        #expect(svc.ledger.leasedCount == 4)
        svc = CoordinatorService(ledger: try PromptLedger(promptCount: 20, journal: journal))  // restarted: replays the journal
        #expect(try lease("p-0").grant?.lease == first.grant?.lease)
        // Part of the lease consumed: the retry carries what is still out.
        _ = try svc.handle(message("L", consumed("L", [0, 1])), now: 1)
        #expect(try lease("p-0").grant?.promptIDs == [2, 3])
        #expect(try lease("p-1").grant?.promptIDs == [4, 5, 6, 7], "a new request is a new lease")
        #expect(try lease(nil).grant?.promptIDs == [8, 9, 10, 11], "unkeyed requests are never merged")
        #expect(svc.ledger.leasedCount == 10)
    }

    @Test("flow control: the outstanding bound follows the learner's version and the actor's")
    func flowLimit() throws {
        let svc = CoordinatorService(ledger: try PromptLedger(promptCount: 100, journal: MemoryJournal()))
        var h = learnerHello  // policy version 7
        h.incarnation = .init(id: "L1", checkpointStep: 0)
        h.flow = .init(batchPrompts: 4, maxPolicyLag: 1)
        _ = try svc.handle(message("L", h), now: 0)
        func lease(_ actorVersion: UInt64, _ capacity: Int = 4) throws -> [Int] {
            try decoded(try svc.handle(message("A", LeaseRequest(policyVersion: actorVersion, id: "A", capacity: capacity)), now: 0), as: LeaseReply.self)
                .grant?.promptIDs ?? []
        }
        #expect(try lease(7, 6) == [0, 1, 2, 3, 4, 5])  // (1 + 1) × 4 = 8 may be out
        #expect(try lease(7) == [6, 7])
        #expect(try lease(7).isEmpty)
        #expect(try lease(8).isEmpty)  // ahead of the learner: its rollouts would be from the future
        // The learner counts a batch for step 8 and trains it: the next batch trains from version 8, so a
        // rollout sampled at 7 may only be in that one (lag 1), and 4 are still out.
        _ = try svc.handle(message("L", Consumption(policyVersion: 7, id: "L1", epoch: 0, promptIDs: [0, 1, 2, 3], step: 8)), now: 1)
        #expect(try lease(7).isEmpty)
        #expect(try lease(6).isEmpty)
        #expect(try lease(8) == [8, 9, 10, 11])
        #expect(svc.flowWaits == 4)
        #expect(svc.status(now: 1)["flow_waits"] as? Int == 4)
        // Without the learner's flow settings nothing is bounded (a learner of an older build).
        h.flow = nil
        _ = try svc.handle(message("L", h), now: 2)
        #expect(try lease(0, 50).count == 50)
    }
}

final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var v = false
    var value: Bool {
        get { lock.lock(); defer { lock.unlock() }; return v }
        set { lock.lock(); v = newValue; lock.unlock() }
    }
}
