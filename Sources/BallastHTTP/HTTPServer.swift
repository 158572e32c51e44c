import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP/1.0 server for status pages: GET only, one request per connection, a thread per
/// connection up to a bound, deadlines on reading and writing. Enough for `curl`, Prometheus scrapes
/// and a browser refreshing a page; not a web server (hummingbird would bring swift-nio's event loops
/// and a dependency tree to every node for three read-only pages).
public final class HTTPServer: @unchecked Sendable {
    public struct Response: Sendable {
        public var status: Int
        public var contentType: String
        public var body: String
        public init(status: Int = 200, contentType: String, body: String) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }
    }

    let fd: Int32
    public let port: Int
    let handler: @Sendable (String) -> Response

    /// Binds `host:port` (port 0 picks a free one) and serves `handler(path)` on a background thread.
    public init(host: String, port: Int, handler: @escaping @Sendable (String) -> Response) throws {
        struct BindError: Error, CustomStringConvertible { let description: String }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BindError(description: "socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &addr.sin_addr) == 1 else {
            close(fd)
            throw BindError(description: "http: \(host) is not an IPv4 address")
        }
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 16) == 0 else {
            let msg = String(cString: strerror(errno))
            close(fd)
            throw BindError(description: "http: cannot listen on \(host):\(port) (\(msg))")
        }
        var actual = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: actual.sin_port))
        self.handler = handler
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// Connections served at once; one more is answered 503 and closed rather than queued behind them.
    static let maxConnections = 8
    /// Seconds a client has to send its whole request head, and each write may block.
    static let requestDeadline = 2.0
    /// Bytes of request head accepted (a GET needs a few hundred).
    static let maxRequest = 16384
    let slots = DispatchSemaphore(value: HTTPServer.maxConnections)

    /// Accepts forever; each connection is served on its own thread, at most `maxConnections` at a time,
    /// so a slow or half-open client costs one slot for at most `requestDeadline`, never the scrape
    /// behind it.
    func acceptLoop() {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if errno == EMFILE || errno == ENFILE { usleep(50_000); continue }  // out of descriptors: wait for some to close, do not spin
                return
            }
            var timeout = timeval(tv_sec: Int(Self.requestDeadline), tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            guard slots.wait(timeout: .now()) == .success else {
                respond(client, Response(status: 503, contentType: "text/plain", body: "busy: \(Self.maxConnections) requests in progress\n"))
                closeGracefully(client, within: 0.05)
                continue
            }
            let thread = Thread { [self] in
                serve(client)
                closeGracefully(client, within: 0.5)
                slots.signal()
            }
            thread.start()
        }
    }

    /// Reads one request head (until a blank line, the deadline or the size bound) and answers it.
    func serve(_ client: Int32) {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(Self.requestDeadline * 1e9)
        var request = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        var complete = false
        while !complete && request.count <= Self.maxRequest {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else { break }
            var pfd = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32((deadline - now) / 1_000_000) + 1)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { break }
            let n = read(client, &buf, buf.count)
            if n <= 0 { break }
            request += buf[0..<n]
            complete = request.count >= 4 && request.suffix(4) == [13, 10, 13, 10]
        }
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self).split(separator: " ")
        if !complete && request.isEmpty { return }  // nothing arrived in time: close without a word
        if request.count > Self.maxRequest {
            respond(client, Response(status: 431, contentType: "text/plain", body: "request head larger than \(Self.maxRequest) bytes\n"))
        } else if complete, line.count >= 2, line[0] == "GET" {
            respond(client, handler(String(line[1].split(separator: "?").first ?? "/")))
        } else {
            respond(client, Response(status: 400, contentType: "text/plain", body: "bad request\n"))
        }
    }

    /// Closing a socket with unread request bytes makes the kernel send a reset, which can destroy the
    /// answer before the client reads it: say we are done writing, then drain (briefly) until the client closes.
    func closeGracefully(_ client: Int32, within seconds: Double) {
        shutdown(client, Int32(SHUT_WR))
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
        var buf = [UInt8](repeating: 0, count: 4096)
        while case let now = DispatchTime.now().uptimeNanoseconds, now < deadline {
            var pfd = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32((deadline - now) / 1_000_000) + 1) > 0, read(client, &buf, buf.count) > 0 else { break }
        }
        close(client)
    }

    func respond(_ client: Int32, _ response: Response) {
        let body = Array(response.body.utf8)
        let reason = [200: "OK", 400: "Bad Request", 404: "Not Found", 431: "Request Header Fields Too Large", 503: "Service Unavailable"][response.status] ?? "Error"
        let head = "HTTP/1.0 \(response.status) \(reason)\r\nContent-Type: \(response.contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let out = Array(head.utf8) + body
        var sent = 0
        while sent < out.count {
            let n = out[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }  // the peer left, or SO_SNDTIMEO: a client that does not read is dropped
            sent += n
        }
    }
}
