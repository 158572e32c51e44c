import BallastDistributed
import BallastTransport
import BallastWire
import Foundation
import Testing

@Suite("Request channel (Lazy Pirate)")
struct RequestChannelTests {
    @Test("a late reply to an abandoned request is never taken for the next request's answer")
    func lateReplyIsNotMisattributed() throws {
        let ctx = try ZMQContext()
        let router = try ctx.socket(.router)
        try router.setReceiveTimeout(ms: 5000)
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = router.lastEndpoint
        // The server answers the first request too late, then answers every later one at once,
        // echoing the request's "n" so the client's answer can be traced to its request.
        let server = Thread {
            var first = true
            while let parts = try? router.receive(), parts.count == 3 {
                guard let (f, _) = try? Frame.decode(envelope: parts[1], payload: parts[2]) else { continue }
                if first { Thread.sleep(forTimeInterval: 0.4); first = false }
                let (e, p) = Frame(kind: .status, sequence: 1, metadata: ["n": f.metadata["n"] ?? "?"]).encode()
                _ = try? router.send([parts[0], e, p])
                if f.metadata["n"] == "last" { return }
            }
        }
        server.start()
        let channel = try RequestChannel(context: ctx, endpoint: endpoint, identity: "test")
        #expect(try channel.request(Frame(kind: .status, sequence: 0, metadata: ["n": "1"]), timeout: 0.1, attempts: 1) == nil)
        Thread.sleep(forTimeInterval: 0.6)  // the late answer to request 1 has been sent by now
        let reply = try channel.request(Frame(kind: .status, sequence: 0, metadata: ["n": "2"]), timeout: 3, attempts: 1)
        #expect(reply?.metadata["n"] == "2")
        _ = try channel.request(Frame(kind: .status, sequence: 0, metadata: ["n": "last"]), timeout: 3, attempts: 1)
    }
}
