import CZMQ
import Foundation

/// A libzmq failure: the operation and zmq_strerror's text.
public struct ZMQError: Error, CustomStringConvertible {
    public let operation: String
    public let code: Int32
    public var description: String { "\(operation): \(String(cString: zmq_strerror(code)))" }
    static func last(_ op: String) -> ZMQError { ZMQError(operation: op, code: zmq_errno()) }
}

/// libzmq access point: the only module that calls libzmq (DESIGN §2, issue 4).
public enum ZMQ {
    public static var version: (major: Int, minor: Int, patch: Int) {
        var a: Int32 = 0, b: Int32 = 0, c: Int32 = 0
        zmq_version(&a, &b, &c)
        return (Int(a), Int(b), Int(c))
    }
}

/// A ZeroMQ context (one per process).
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    public init() throws {
        guard let h = zmq_ctx_new() else { throw ZMQError.last("zmq_ctx_new") }
        handle = h
    }

    deinit { zmq_ctx_term(handle) }

    public func socket(_ type: ZMQSocket.Kind) throws -> ZMQSocket { try ZMQSocket(context: self, kind: type) }
}

/// A ZeroMQ socket with multipart send/receive and timeouts. Not thread-safe (as libzmq sockets).
public final class ZMQSocket: @unchecked Sendable {
    public enum Kind: Int32, Sendable {
        case pair = 0, pub = 1, sub = 2, req = 3, rep = 4, dealer = 5, router = 6, pull = 7, push = 8
    }

    let handle: UnsafeMutableRawPointer
    public let context: ZMQContext  // keeps the context alive while the socket exists
    private var closed = false

    init(context: ZMQContext, kind: Kind) throws {
        guard let h = zmq_socket(context.handle, kind.rawValue) else { throw ZMQError.last("zmq_socket") }
        handle = h
        self.context = context
        try setLinger(milliseconds: 0)  // never block process exit on unsent messages
        try setKeepalive(idleSeconds: Self.keepaliveIdleSeconds, intervalSeconds: Self.keepaliveIntervalSeconds, probes: Self.keepaliveProbes)
    }

    /// TCP keepalive on every connection: a peer whose host vanished without closing (powered off, a
    /// cable pulled, a route or NAT that dropped the flow) is noticed after idle + interval × probes
    /// seconds (2 min) and the connection dropped, so a connecting socket reconnects to the restarted
    /// peer and a PUSH stops queueing into a dead pipe; without it Linux keeps such a connection for
    /// hours. Not ZMTP heartbeats: libzmq 4.3.4 (Debian 12's) aborts with "Assertion failed:
    /// !_io_error (stream_engine_base.cpp:331)" when a heartbeat timeout meets a full receive pipe
    /// (libzmq issues 3937, 4364, 4767), which tools/fuzz/cluster.py hit on the coordinator.
    public static let keepaliveIdleSeconds: Int32 = 60, keepaliveIntervalSeconds: Int32 = 10, keepaliveProbes: Int32 = 6

    /// `idleSeconds` 0 switches keepalive off.
    public func setKeepalive(idleSeconds: Int32, intervalSeconds: Int32, probes: Int32) throws {
        try setInt(34 /* ZMQ_TCP_KEEPALIVE */, idleSeconds > 0 ? 1 : 0)
        guard idleSeconds > 0 else { return }
        try setInt(36 /* ZMQ_TCP_KEEPALIVE_IDLE */, idleSeconds)
        try setInt(37 /* ZMQ_TCP_KEEPALIVE_INTVL */, intervalSeconds)
        try setInt(35 /* ZMQ_TCP_KEEPALIVE_CNT */, probes)
    }

    deinit { close() }

    /// How long closing the socket (and terminating its context) waits to deliver queued messages;
    /// sockets start at 0, so that nothing unsent holds up a process's exit.
    public func setLinger(milliseconds: Int32) throws { try setInt(17 /* ZMQ_LINGER */, milliseconds) }

    public func close() {
        if !closed { zmq_close(handle); closed = true }
    }

    public func setInt(_ option: Int32, _ value: Int32) throws {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int32>.size) == 0 else { throw ZMQError.last("zmq_setsockopt(\(option))") }
    }

    public func setBytes(_ option: Int32, _ value: [UInt8]) throws {
        let rc = value.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, value.count) }
        guard rc == 0 else { throw ZMQError.last("zmq_setsockopt(\(option))") }
    }

    /// Receive timeout in milliseconds (−1 = wait forever).
    public func setReceiveTimeout(ms: Int32) throws { try setInt(27, ms) }
    public func setSendTimeout(ms: Int32) throws { try setInt(28, ms) }
    /// High-water marks: how many messages queue before sends block or drop (back-pressure).
    public func setHighWaterMarks(send: Int32, receive: Int32) throws {
        try setInt(23, send)
        try setInt(24, receive)
    }
    public func setRoutingID(_ id: String) throws { try setBytes(5, Array(id.utf8)) }
    public func subscribe(_ prefix: [UInt8] = []) throws { try setBytes(6, prefix) }

    public func bind(_ endpoint: String) throws {
        guard zmq_bind(handle, endpoint) == 0 else { throw ZMQError.last("zmq_bind(\(endpoint))") }
    }

    public func connect(_ endpoint: String) throws {
        guard zmq_connect(handle, endpoint) == 0 else { throw ZMQError.last("zmq_connect(\(endpoint))") }
    }

    /// The endpoint actually bound (resolves tcp://127.0.0.1:* to its port).
    public var lastEndpoint: String {
        var buf = [CChar](repeating: 0, count: 256)
        var size = buf.count
        _ = zmq_getsockopt(handle, 32 /* ZMQ_LAST_ENDPOINT */, &buf, &size)
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Parts at least this large are handed to libzmq without a copy (zmq_msg_init_data) and received
    /// without one (the Data reads libzmq's buffer).
    public static let zeroCopyThreshold = 64 << 10

    /// Sends all parts as one multipart message. Returns false when a send timeout expired.
    /// Large parts are sent zero-copy: libzmq reads the Data's own bytes and releases it when done.
    @discardableResult
    public func send(_ parts: [Data]) throws -> Bool {
        for (i, part) in parts.enumerated() {
            let flags: Int32 = i < parts.count - 1 ? 2 /* ZMQ_SNDMORE */ : 0
            let rc = part.count >= Self.zeroCopyThreshold ? sendZeroCopy(part, flags) : part.withUnsafeBytes { zmq_send(handle, $0.baseAddress, part.count, flags) }
            if rc < 0 {
                if zmq_errno() == EAGAIN && i == 0 { return false }
                throw ZMQError.last("zmq_send")
            }
        }
        return true
    }

    /// A Data kept alive until libzmq has sent its bytes. A large Data's storage is a heap buffer that
    /// does not move while the value exists and is not mutated, so its base address stays valid.
    final class Retained { let data: Data; init(_ d: Data) { data = d } }

    func sendZeroCopy(_ part: Data, _ flags: Int32) -> Int32 {
        let box = Unmanaged.passRetained(Retained(part))
        let base = part.withUnsafeBytes { UnsafeMutableRawPointer(mutating: $0.baseAddress!) }
        var msg = zmq_msg_t()
        let free: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void = { _, hint in
            Unmanaged<Retained>.fromOpaque(hint!).release()
        }
        guard zmq_msg_init_data(&msg, base, part.count, free, box.toOpaque()) == 0 else {
            box.release()
            return -1
        }
        let rc = zmq_msg_send(&msg, handle, flags)
        if rc < 0 { zmq_msg_close(&msg) }  // still ours after a failed send; closing runs the free callback
        return rc
    }

    /// With CURVE, the role of the key that sent the last message received (the ZAP handler's user id:
    /// "learner", "actor", "coordinator" or "client"); nil without CURVE.
    public private(set) var peerRole: String?

    /// Receives one multipart message, or nil when the receive timeout expired.
    public func receive() throws -> [Data]? { try receive(flags: 0) }

    /// `flags` apply to the first part: ZMQ_DONTWAIT returns nil at once when no message is waiting (the
    /// other parts of a multipart message arrive with the first).
    func receive(flags: Int32) throws -> [Data]? {
        var parts: [Data] = []
        while true {
            var msg = zmq_msg_t()
            zmq_msg_init(&msg)
            defer { zmq_msg_close(&msg) }
            let rc = zmq_msg_recv(&msg, handle, parts.isEmpty ? flags : 0)
            if rc < 0 {
                // A timeout, or a signal (SIGINT/SIGTERM) interrupting the wait: report "no message" so
                // the caller's loop can check whether it should stop.
                let err = zmq_errno()
                if (err == EAGAIN || err == EINTR) && parts.isEmpty { return nil }
                throw ZMQError.last("zmq_msg_recv")
            }
            if parts.isEmpty {
                let id = zmq_msg_gets(&msg, "User-Id").map { String(cString: $0) }
                peerRole = id?.isEmpty == false ? id : nil
            }
            let more = zmq_msg_more(&msg) != 0
            if zmq_msg_size(&msg) >= Self.zeroCopyThreshold {
                parts.append(Self.adopt(&msg))
            } else {
                parts.append(Data(bytes: zmq_msg_data(&msg), count: zmq_msg_size(&msg)))
            }
            if !more { return parts }
        }
    }

    /// A large received part without a copy: the message moves to the heap and the Data reads its bytes
    /// in place, closing the message when the last copy of the Data goes away. `msg` is left empty.
    static func adopt(_ msg: inout zmq_msg_t) -> Data {
        let owned = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        zmq_msg_init(owned)
        zmq_msg_move(owned, &msg)
        return Data(bytesNoCopy: zmq_msg_data(owned), count: zmq_msg_size(owned), deallocator: .custom { _, _ in
            zmq_msg_close(owned)
            owned.deallocate()
        })
    }

    /// One multipart message if one is waiting, else nil (never blocks).
    public func receiveNow() throws -> [Data]? { try receive(flags: ZMQ_DONTWAIT) }

    /// Waits up to `timeoutMS` for any of `sockets` to be readable; returns their indices.
    public static func poll(_ sockets: [ZMQSocket], timeoutMS: Int) throws -> [Int] {
        var items = sockets.map { zmq_pollitem_t(socket: $0.handle, fd: 0, events: 1 /* ZMQ_POLLIN */, revents: 0) }
        let rc = zmq_poll(&items, Int32(items.count), timeoutMS)
        if rc < 0 && zmq_errno() == EINTR { return [] }
        guard rc >= 0 else { throw ZMQError.last("zmq_poll") }
        return items.indices.filter { items[$0].revents & 1 != 0 }
    }
}
