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
