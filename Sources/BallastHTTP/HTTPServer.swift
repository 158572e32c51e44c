import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small blocking HTTP/1.0 server for status pages: one thread, GET only, one request per
/// connection. Enough for `curl`, Prometheus scrapes and a browser refreshing a page; not a web server.
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

    func acceptLoop() {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 { if errno == EINTR { continue } else { return } }
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var request = [UInt8]()
            var buf = [UInt8](repeating: 0, count: 4096)
            while request.count < 16384 {
                let n = read(client, &buf, buf.count)
                if n <= 0 { break }
                request += buf[0..<n]
                if request.count >= 4, request.suffix(4) == [13, 10, 13, 10] { break }
            }
            let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self).split(separator: " ")
            let response: Response
            if line.count >= 2, line[0] == "GET" {
                response = handler(String(line[1].split(separator: "?").first ?? "/"))
            } else {
                response = Response(status: 400, contentType: "text/plain", body: "bad request\n")
            }
            let body = Array(response.body.utf8)
            let reason = [200: "OK", 400: "Bad Request", 404: "Not Found"][response.status] ?? "Error"
            let head = "HTTP/1.0 \(response.status) \(reason)\r\nContent-Type: \(response.contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
            let out = Array(head.utf8) + body
            var sent = 0
            while sent < out.count {
                let n = out[sent...].withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                sent += n
            }
            close(client)
        }
    }
}
