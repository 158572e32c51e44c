import BallastHTTP
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A raw TCP client of the server on 127.0.0.1, with a receive timeout.
final class RawClient: @unchecked Sendable {
    let fd: Int32
    init(port: Int, timeout: Double = 5) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        try #require(ok == 0)
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }
    deinit { close(fd) }
    func send(_ text: String) { _ = Array(text.utf8).withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
    /// Everything until the server closes, or nil when the receive timeout passes first.
    func readAll() -> String? {
        var out = [UInt8](), buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buf, buf.count)
            if n == 0 { return String(decoding: out, as: UTF8.self) }
            if n < 0 { return nil }
            out += buf[0..<n]
        }
    }
}

@Suite("HTTP status server")
struct HTTPServerTests {
    func server() throws -> HTTPServer {
        try HTTPServer(host: "127.0.0.1", port: 0) { path in
            path == "/metrics" ? .init(contentType: "text/plain", body: "ballast_up 1\n") : .init(status: 404, contentType: "text/plain", body: "no\n")
        }
    }

    @Test("a GET is answered with status, length and body; other methods and garbage get 400")
    func answers() throws {
        let s = try server()
        let c = try RawClient(port: s.port)
        c.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(c.readAll() == "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nballast_up 1\n")
        let post = try RawClient(port: s.port)
        post.send("POST /metrics HTTP/1.1\r\n\r\n")
        #expect(post.readAll()?.hasPrefix("HTTP/1.0 400 Bad Request") == true)
    }

    @Test("clients that connect and say nothing do not hold up a scrape")
    func silentClients() throws {
        let s = try server()
        let silent = try (0..<3).map { _ in try RawClient(port: s.port) }
        Thread.sleep(forTimeInterval: 0.1)  // all three accepted before the scrape
        // The old single-threaded server answered this only after each silent client's 2 s read timeout.
        let scrape = try RawClient(port: s.port, timeout: 1)
        scrape.send("GET /metrics HTTP/1.0\r\n\r\n")
        #expect(scrape.readAll()?.hasSuffix("ballast_up 1\n") == true)
        #expect(silent.count == 3)
    }

    @Test("a client dribbling its request is cut off at the deadline; an oversized head gets 431")
    func slowAndLarge() throws {
        let s = try server()
        let slow = try RawClient(port: s.port, timeout: 8)
        // One byte every 0.3 s: each read arrives well within a per-read timeout, but the whole head never does.
        let dribble = Thread { for ch in "GET /metrics HTTP/1.0\r\n" { slow.send(String(ch)); Thread.sleep(forTimeInterval: 0.3) } }
        dribble.start()
        #expect(slow.readAll()?.hasPrefix("HTTP/1.0 400") == true)
        let big = try RawClient(port: s.port)
        big.send("GET /metrics HTTP/1.0\r\nX: " + String(repeating: "a", count: 20_000) + "\r\n\r\n")
        #expect(big.readAll()?.hasPrefix("HTTP/1.0 431") == true)
    }

    @Test("past the connection bound a client is told 503 at once instead of waiting")
    func bounded() throws {
        let s = try server()
        let hogs = try (0..<8).map { _ in try RawClient(port: s.port) }
        Thread.sleep(forTimeInterval: 0.2)
        let extra = try RawClient(port: s.port, timeout: 1)
        extra.send("GET /metrics HTTP/1.0\r\n\r\n")
        #expect(extra.readAll()?.hasPrefix("HTTP/1.0 503") == true)
        #expect(hogs.count == 8)
    }
}
