import BallastTransport
import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A TCP proxy on 127.0.0.1 that forwards to `target` until frozen, then stops moving bytes without
/// closing anything: what a peer that lost power or a silently broken route looks like from outside.
final class FreezingProxy: @unchecked Sendable {
    let listener: Int32
    let port: Int
    let targetPort: Int
    let frozen = Atomic<Bool>(false)
    let accepted = Atomic<Int>(0)
    let stopped = Atomic<Bool>(false)

    init(targetPort: Int) throws {
        self.targetPort = targetPort
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = Self.loopback(port: 0)
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        try #require(ok == 0 && listen(fd, 8) == 0)
        var actual = sockaddr_in(), len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        listener = fd
        port = Int(UInt16(bigEndian: actual.sin_port))
        Thread { [self] in acceptLoop() }.start()
    }

    deinit {
        stopped.store(true, ordering: .relaxed)
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    static func loopback(port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        return addr
    }

    func acceptLoop() {
        while !stopped.load(ordering: .relaxed) {
            let client = accept(listener, nil, nil)
            if client < 0 { return }
            accepted.add(1, ordering: .relaxed)
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = Self.loopback(port: targetPort)
            _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            for (from, to) in [(client, server), (server, client)] {
                Thread { [self] in pump(from, to) }.start()
            }
        }
    }

    /// Copies bytes until either side closes; while frozen it reads nothing and writes nothing.
    func pump(_ from: Int32, _ to: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        var tv = timeval(tv_sec: 0, tv_usec: 50_000)
        setsockopt(from, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        while !stopped.load(ordering: .relaxed) {
            if frozen.load(ordering: .relaxed) { usleep(50_000); continue }
            let n = read(from, &buffer, buffer.count)
            if n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { break }
            if n > 0 { _ = buffer.withUnsafeBytes { send(to, $0.baseAddress, n, Int32(MSG_NOSIGNAL)) } }
        }
        shutdown(to, Int32(SHUT_WR))
    }
}

@Suite("ZMTP heartbeats", .serialized)
struct HeartbeatTests {
    /// Connects a DEALER to a ROUTER through the proxy, checks the path, freezes the proxy and counts
    /// the TCP connections it accepted within `wait` seconds.
    func connectionsAfterFreeze(heartbeat: (intervalMS: Int32, timeoutMS: Int32), wait: Double) throws -> Int {
        let ctx = try ZMQContext()
        let router = try ctx.socket(.router)
        try router.bind("tcp://127.0.0.1:*")
        try router.setReceiveTimeout(ms: 5000)
        let routerPort = Int(router.lastEndpoint.split(separator: ":").last!)!
        let proxy = try FreezingProxy(targetPort: routerPort)
        let dealer = try ctx.socket(.dealer)
        try dealer.setHeartbeat(intervalMS: heartbeat.intervalMS, timeoutMS: heartbeat.timeoutMS)
        try dealer.connect("tcp://127.0.0.1:\(proxy.port)")
        try dealer.send([Data("hello".utf8)])
        #expect(try router.receive()?.last == Data("hello".utf8), "the path through the proxy works")
        proxy.frozen.store(true, ordering: .relaxed)
        let deadline = Date().addingTimeInterval(wait)
        while Date() < deadline && proxy.accepted.load(ordering: .relaxed) < 2 { Thread.sleep(forTimeInterval: 0.05) }
        return proxy.accepted.load(ordering: .relaxed)
    }

    @Test("a connection to a peer that went silent is dropped and made again")
    func silentPeerIsDropped() throws {
        #expect(try connectionsAfterFreeze(heartbeat: (100, 500), wait: 10) >= 2)
    }

    @Test("without heartbeats the silent connection is kept (the control)")
    func withoutHeartbeatsItStays() throws {
        #expect(try connectionsAfterFreeze(heartbeat: (0, 0), wait: 2) == 1)
    }
}
