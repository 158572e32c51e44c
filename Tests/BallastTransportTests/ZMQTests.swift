import BallastTestSupport
import BallastTransport
import Foundation
import Testing

@Suite("ZeroMQ wrapper on loopback", .serialized)
struct ZMQTests {
    @Test("ROUTER/DEALER multipart round trip with routing ids, over tcp on an ephemeral port")
    func routerDealer() throws {
        let ctx = try ZMQContext()
        let router = try ctx.socket(.router)
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = router.lastEndpoint
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))
        let dealer = try ctx.socket(.dealer)
        try dealer.setRoutingID("actor-1")
        try dealer.connect(endpoint)
        try router.setReceiveTimeout(ms: 5000)
        try dealer.setReceiveTimeout(ms: 5000)
        let big = Data((0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try dealer.send([Data("ready".utf8), big])
        let got = try #require(try router.receive())
        #expect(got.count == 3 && String(decoding: got[0], as: UTF8.self) == "actor-1")
        #expect(String(decoding: got[1], as: UTF8.self) == "ready" && got[2] == big)
        try router.send([got[0], Data("lease".utf8), Data([1, 2, 3])])
        let reply = try #require(try dealer.receive())
        #expect(reply == [Data("lease".utf8), Data([1, 2, 3])])
    }

    @Test("large parts are received without a copy and stay intact after their sockets and context are gone")
    func zeroCopyReceiveOutlivesTheSocket() throws {
        var kept: [[Data]] = []
        let sizes = [ZMQSocket.zeroCopyThreshold - 1, ZMQSocket.zeroCopyThreshold, 1 << 20]
        // Filled through a pointer: a per-byte closure takes seconds in a debug build.
        func payload(_ n: Int, _ seed: Int) -> Data {
            var d = Data(count: n)
            d.withUnsafeMutableBytes { (raw: UnsafeMutableRawBufferPointer) in for i in 0..<n { raw[i] = UInt8(truncatingIfNeeded: i &* 131 &+ seed) } }
            return d
        }
        do {
            let ctx = try ZMQContext()
            let pull = try ctx.socket(.pull)
            try pull.bind("tcp://127.0.0.1:*")
            try pull.setReceiveTimeout(ms: 5000)
            let push = try ctx.socket(.push)
            try push.connect(pull.lastEndpoint)
            for (i, n) in sizes.enumerated() {
                try push.send([Data("head".utf8), payload(n, i), payload(n, i + 7)])
                kept.append(try #require(try pull.receive()))
            }
        }
        for (i, n) in sizes.enumerated() {
            #expect(kept[i] == [Data("head".utf8), payload(n, i), payload(n, i + 7)])
        }
    }

    @Test("receive times out with nil; poll reports readiness")
    func timeoutsAndPoll() throws {
        let ctx = try ZMQContext()
        let a = try ctx.socket(.pair), b = try ctx.socket(.pair)
        try a.bind("inproc://pair-test")
        try b.connect("inproc://pair-test")
        try a.setReceiveTimeout(ms: 50)
        let start = Date()
        #expect(try a.receive() == nil)
        #expect(Date().timeIntervalSince(start) < 5)
        #expect(try ZMQSocket.poll([a], timeoutMS: 10).isEmpty)
        try b.send([Data("x".utf8)])
        #expect(try ZMQSocket.poll([a], timeoutMS: 2000) == [0])
        #expect(try a.receive() == [Data("x".utf8)])
    }

    @Test("PUB/SUB delivers version notices to subscribers of the prefix only")
    func pubSub() throws {
        let ctx = try ZMQContext()
        let pub = try ctx.socket(.pub)
        try pub.bind("inproc://notices")
        let sub = try ctx.socket(.sub), other = try ctx.socket(.sub)
        try sub.subscribe(Array("version".utf8))
        try other.subscribe(Array("status".utf8))
        try sub.connect("inproc://notices")
        try other.connect("inproc://notices")
        try sub.setReceiveTimeout(ms: 2000)
        try other.setReceiveTimeout(ms: 100)
        // PUB drops messages sent before a subscription is live; retry until one arrives.
        var got: [Data]?
        for _ in 0..<50 where got == nil {
            try pub.send([Data("version".utf8), Data("12".utf8)])
            got = try ZMQSocket.poll([sub], timeoutMS: 40).isEmpty ? nil : sub.receive()
        }
        #expect(got == [Data("version".utf8), Data("12".utf8)])
        #expect(try other.receive() == nil)
    }

    @Test func errorsNameTheOperation() throws {
        let ctx = try ZMQContext()
        let s = try ctx.socket(.rep)
        #expect(throws: ZMQError.self) { try s.bind("not-a-transport://x") }
        do { try s.bind("tcp://999.1.1.1:1") } catch let e as ZMQError { #expect(e.description.contains("zmq_bind")) }
    }
}

/// The same exchange over either transport: dealers announce themselves, the router replies to each.
func exchange(router: MessageSocket, dealers: [(String, MessageSocket)]) throws {
    for (id, d) in dealers { #expect(try d.send([Data("ready".utf8), Data(id.utf8)])) }
    var seen: Set<String> = []
    for _ in dealers {
        let m = try #require(try router.receive())
        #expect(m.count == 3 && m[1] == Data("ready".utf8) && m[0] == m[2])
        seen.insert(String(decoding: m[0], as: UTF8.self))
        try router.send([m[0], Data("lease".utf8), m[0]])
    }
    #expect(seen == Set(dealers.map(\.0)))
    for (id, d) in dealers {
        #expect(try d.receive() == [Data("lease".utf8), Data(id.utf8)], "each reply reaches its own dealer")
    }
}

@Suite("Transports share one interface", .serialized)
struct TransportParityTests {
    @Test func inMemory() throws {
        let hub = InMemoryHub()
        try exchange(router: hub.router(timeoutMS: 2000), dealers: ["a", "b", "c"].map { ($0, hub.dealer(id: $0, timeoutMS: 2000)) })
    }

    @Test func zeroMQ() throws {
        let ctx = try ZMQContext()
        let router = try ctx.socket(.router)
        try router.bind("tcp://127.0.0.1:*")
        try router.setReceiveTimeout(ms: 5000)
        var dealers: [(String, MessageSocket)] = []
        for id in ["a", "b", "c"] {
            let d = try ctx.socket(.dealer)
            try d.setRoutingID(id)
            try d.setReceiveTimeout(ms: 5000)
            try d.connect(router.lastEndpoint)
            dealers.append((id, d))
        }
        try exchange(router: router, dealers: dealers)
    }

    @Test("in-memory: bounded queues push back, timeouts return nil, unknown peers are dropped")
    func inMemoryLimits() throws {
        let hub = InMemoryHub(capacity: 2)
        let d = hub.dealer(id: "x", timeoutMS: 20), r = hub.router(timeoutMS: 20)
        #expect(try d.send([Data([1])]) && d.send([Data([2])]))
        #expect(try !d.send([Data([3])]), "third message exceeds the high-water mark")
        #expect(try r.receive()?.last == Data([1]))
        #expect(try d.receive() == nil)
        #expect(try r.send([Data("nobody".utf8), Data([9])]))
    }
}
