import BallastTransport
import Foundation
import Testing

/// TCP keepalive as the kernel sees it: /proc/net/tcp's "tr" column is 2 while a keepalive timer is
/// armed on a connection (0: no timer).
@Suite("TCP keepalive", .serialized)
struct KeepaliveTests {
    /// The timer state of the established connection from a local port to `port`, once it shows up.
    func timerOfConnection(toPort port: Int) throws -> Int? {
        let hexPort = String(format: ":%04X", port)
        for _ in 0..<50 {
            let table = try String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)
            for line in table.split(separator: "\n").dropFirst() {
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                // sl local rem st tx:rx tr:when ...; the connecting side has rem = 127.0.0.1:port
                guard f.count > 5, f[2].hasSuffix(hexPort), f[3] == "01" else { continue }
                return Int(f[5].split(separator: ":")[0], radix: 16)
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return nil
    }

    func connectedTimer(_ configure: (ZMQSocket) throws -> Void) throws -> Int? {
        let ctx = try ZMQContext()
        let router = try ctx.socket(.router)
        try router.bind("tcp://127.0.0.1:*")
        try router.setReceiveTimeout(ms: 5000)
        let port = Int(router.lastEndpoint.split(separator: ":").last!)!
        let dealer = try ctx.socket(.dealer)
        try configure(dealer)
        try dealer.connect(router.lastEndpoint)
        try dealer.send([Data("hello".utf8)])
        #expect(try router.receive()?.last == Data("hello".utf8))
        return try timerOfConnection(toPort: port)
    }

    @Test("every socket's connections carry a keepalive timer by default")
    func onByDefault() throws {
        #expect(try connectedTimer { _ in } == 2)
    }

    @Test("switched off, the connection has no timer (the control)")
    func offControl() throws {
        #expect(try connectedTimer { try $0.setKeepalive(idleSeconds: 0, intervalSeconds: 0, probes: 0) } == 0)
    }
}
