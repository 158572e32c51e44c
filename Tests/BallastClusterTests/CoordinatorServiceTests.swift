import BallastCluster
import BallastFormats
import BallastTransport
import BallastWire
import Foundation
import Testing

func message(_ peer: String, _ kind: MessageKind, tensors: [(String, TensorData)] = [], metadata: [String: String] = [:]) -> [Data] {
    let (e, p) = Frame(kind: kind, sequence: 1, tensors: tensors, metadata: metadata).encode()
    return [Data(peer.utf8), e, p]
}

func ids(_ xs: [Int]) -> TensorData {
    let v = xs.map(Int64.init)
    return TensorData(dtype: .i64, shape: [v.count], bytes: v.withUnsafeBufferPointer { Data(buffer: $0) })
}

func leaseOf(_ reply: [Data]?) throws -> (state: String, ids: [Int], epoch: Int) {
    let r = try #require(reply)
    let (f, _) = try Frame.decode(envelope: r[0], payload: r[1])
    #expect(f.kind == .lease)
    let t = f.tensors.first { $0.0 == "prompt_ids" }?.1
    let list = t.map { $0.bytes.withUnsafeBytes { $0.bindMemory(to: Int64.self).map(Int.init) } } ?? []
    return (f.metadata["state"] ?? "", list, Int(f.metadata["epoch"] ?? "") ?? -1)
}

@Suite("Coordinator service")
struct CoordinatorServiceTests {
    @Test("ready → lease, consumption counts, dead actors' prompts are re-leased, status reports it all")
    func protocolFlow() throws {
        let svc = CoordinatorService(ledger: try PromptLedger(promptCount: 10, shards: 2, journal: MemoryJournal()), heartbeatTimeout: 5)
        let a = try leaseOf(try svc.handle(message("A", .ready, metadata: ["id": "A", "capacity": "4"]), now: 0))
        #expect(a.state == "lease" && a.ids == [0, 1, 2, 3])
        let b = try leaseOf(try svc.handle(message("B", .ready, metadata: ["id": "B", "capacity": "4"]), now: 0))
        #expect(b.ids == [4, 5, 6, 7])
        let ack = try #require(try svc.handle(message("A", .consumption, tensors: [("prompt_ids", ids(a.ids))], metadata: ["id": "A", "epoch": "0"]), now: 1))
        let (af, _) = try Frame.decode(envelope: ack[0], payload: ack[1])
        #expect(af.kind == .consumption && af.metadata["completed"] == "4" && af.metadata["finished"] == "0")
        // B goes silent; A keeps heartbeating; after the timeout B's prompts come back first.
        _ = try svc.handle(message("A", .heartbeat, metadata: ["id": "A"]), now: 7)
        try svc.tick(now: 7)
        let again = try leaseOf(try svc.handle(message("A", .ready, metadata: ["id": "A", "capacity": "10"]), now: 7))
        #expect(Set(again.ids) == [4, 5, 6, 7, 8, 9])
        _ = try svc.handle(message("A", .consumption, tensors: [("prompt_ids", ids(again.ids))], metadata: ["id": "A", "epoch": "0"]), now: 8)
        let done = try leaseOf(try svc.handle(message("A", .ready, metadata: ["id": "A"]), now: 9))
        #expect(done.state == "finished" && done.ids.isEmpty)
        let st = try #require(try svc.handle(message("X", .status), now: 9))
        let (sf, _) = try Frame.decode(envelope: st[0], payload: st[1])
        let json = try JSONSerialization.jsonObject(with: Data(sf.metadata["json"]!.utf8)) as! [String: Any]
        #expect(json["finished"] as? Bool == true && json["epoch"] as? Int == 1)
    }

    @Test("actors learn the learner's endpoints from hello; leases carry the prompts; /metrics text")
    func helloPromptsAndMetrics() throws {
        let lines = (0..<3).map { "{\"prompt\":\"p\($0)\",\"task\":\"qa\"}" }
        let svc = CoordinatorService(ledger: try PromptLedger(promptCount: 3, journal: MemoryJournal()), prompts: lines)
        func meta(_ r: [Data]?) throws -> [String: String] {
            let r = try #require(r)
            return try Frame.decode(envelope: r[0], payload: r[1]).0.metadata
        }
        #expect(try meta(try svc.handle(message("A", .hello, metadata: ["id": "A", "role": "actor"]), now: 0))["state"] == "wait")
        let learner = ["id": "L", "role": "learner", "rollouts": "tcp://h:1", "weights": "tcp://h:2", "notices": "tcp://h:3", "step": "7", "queue": "2"]
        #expect(try meta(try svc.handle(message("L", .hello, metadata: learner), now: 0))["state"] == "ok")
        let hello = try meta(try svc.handle(message("A", .hello, metadata: ["id": "A", "role": "actor"]), now: 1))
        #expect(hello["state"] == "ok" && hello["rollouts"] == "tcp://h:1" && hello["weights"] == "tcp://h:2" && hello["notices"] == "tcp://h:3")
        let lease = try meta(try svc.handle(message("A", .ready, metadata: ["id": "A", "capacity": "2"]), now: 1))
        let objs = try JSONSerialization.jsonObject(with: Data(lease["prompts"]!.utf8)) as! [[String: Any]]
        #expect(objs.map { $0["prompt"] as? String } == ["p0", "p1"])
        _ = try svc.handle(message("A", .heartbeat, metadata: ["id": "A", "rollouts": "5", "rate": "1.5"]), now: 2)
        let text = svc.prometheus(now: 2)
        #expect(text.contains("ballast_shard_prompts{shard=\"0\",state=\"leased\"} 1.0"))
        #expect(text.contains("ballast_actor_rollouts_total{actor=\"A\"} 5.0") && text.contains("ballast_learner_step 7.0"))
        let st = svc.status(now: 2)
        #expect((st["learner"] as? [String: Any])?["step"] as? Double == 7)
    }

    @Test("garbage and truncated frames are counted and the service keeps answering")
    func garbage() throws {
        let svc = CoordinatorService(ledger: try PromptLedger(promptCount: 4, journal: MemoryJournal()))
        #expect(try svc.handle([Data("A".utf8), Data("garbage".utf8), Data()], now: 0) == nil)
        var bad = message("A", .ready)
        bad[1] = bad[1].prefix(30)
        #expect(try svc.handle(bad, now: 0) == nil)
        #expect(try svc.handle([Data("A".utf8)], now: 0) == nil)
        #expect(svc.errors.total == 3)
        #expect(try leaseOf(try svc.handle(message("A", .ready, metadata: ["capacity": "2"]), now: 0)).ids == [0, 1])
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
        let m = message("", .ready, metadata: ["id": "actor-7", "capacity": "6"])
        try dealer.send([m[1], m[2]])
        let lease = try leaseOf(try dealer.receive())
        #expect(lease.ids == [0, 1, 2, 3, 4, 5])
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
