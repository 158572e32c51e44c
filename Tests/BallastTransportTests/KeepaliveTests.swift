import BallastTransport
import Foundation
import Testing

/// TCP keepalive as the kernel sees it: /proc/net/tcp's "tr" column is 2 while a keepalive timer is
/// armed on a connection (0: no timer).
@Suite("TCP keepalive", .serialized)
struct KeepaliveTests {
    /// The timer states seen on the established connection from a local port to `port` over `seconds`
    /// (sampling stops early once a keepalive timer is seen). A retransmit timer (1) can stand in for the
    /// keepalive timer while data is unacknowledged, so a single look is not enough on a busy machine.
    func timersOfConnection(toPort port: Int, seconds: Double) throws -> Set<Int> {
        let hexPort = String(format: ":%04X", port)
        var seen = Set<Int>()
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline && !seen.contains(2) {
            // Read to the end: /proc files report size 0, and a read sized by stat stops after the first page.
            let table = String(decoding: try #require(FileHandle(forReadingAtPath: "/proc/net/tcp")).readDataToEndOfFile(), as: UTF8.self)
            for line in table.split(separator: "\n").dropFirst() {
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                // sl local rem st tx:rx tr:when ...; the connecting side has rem = 127.0.0.1:port
                guard f.count > 5, f[2].hasSuffix(hexPort), f[3] == "01", let tr = Int(f[5].split(separator: ":")[0], radix: 16) else { continue }
                seen.insert(tr)
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return seen
    }

    func connectedTimers(seconds: Double, _ configure: (ZMQSocket) throws -> Void) throws -> Set<Int> {
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
        return try timersOfConnection(toPort: port, seconds: seconds)
    }

    @Test("every socket's connections carry a keepalive timer by default")
    func onByDefault() throws {
        #expect(try connectedTimers(seconds: 10) { _ in }.contains(2))
    }

    @Test("switched off, the connection has no timer (the control)")
    func offControl() throws {
        let seen = try connectedTimers(seconds: 1) { try $0.setKeepalive(idleSeconds: 0, intervalSeconds: 0, probes: 0) }
        #expect(!seen.isEmpty && !seen.contains(2), "timers seen: \(seen)")
    }
}
