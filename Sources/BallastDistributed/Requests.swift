import BallastTransport
import BallastWire
import BallastFormats
import Foundation

/// Progress lines of a node: "[role] message", flushed at once so that `launch local` can interleave them.
public struct NodeLog: Sendable {
    public let role: String
    public init(role: String) { self.role = role }
    public func callAsFunction(_ message: String) {
        Streams.err("[\(role)] \(message)\n")
    }
}

/// Request/reply over a DEALER with the Lazy Pirate pattern (zguide ch. 4): wait a bounded time for
/// the answer; on silence close the socket, open a fresh one and resend, so that a restarted peer is
/// reached and a late reply to the old request can never be mistaken for the new one.
public final class RequestChannel {
    let context: ZMQContext
    public let endpoint: String
    let identity: String
    let security: CurveSecurity?
    var socket: ZMQSocket
    var sequence: UInt64 = 0
    /// An earlier request went unanswered: its reply may still arrive on the current socket and must
    /// not be taken for the next request's, so the next request opens a fresh socket.
    var unanswered = false
    public private(set) var errors = WireErrorCounters()

    public init(context: ZMQContext, endpoint: String, identity: String, security: CurveSecurity? = nil) throws {
        self.context = context
        self.endpoint = endpoint
        self.identity = identity
        self.security = security
        socket = try Self.open(context, endpoint, identity, security)
    }

    static func open(_ ctx: ZMQContext, _ endpoint: String, _ identity: String, _ security: CurveSecurity?) throws -> ZMQSocket {
        let s = try ctx.socket(.dealer)
        try s.setRoutingID(identity + "-" + String(UInt32.random(in: 0...UInt32.max), radix: 16))
        try s.setReceiveTimeout(ms: 100)
        try s.setSendTimeout(ms: 1000)
        try security?.configureClient(s)
        try s.connect(endpoint)
        return s
    }

    /// Sends `frame` and waits up to `timeout` seconds per attempt for a reply; retries (with a fresh
    /// socket) until a reply arrives, `attempts` run out (nil) or `shouldStop()`.
    public func request(_ frame: Frame, timeout: Double, attempts: Int = .max, shouldStop: () -> Bool = { false }) throws -> Frame? {
        var frame = frame
        for attempt in 0..<attempts {
            if shouldStop() { break }
            if attempt > 0 || unanswered {
                socket.close()
                socket = try Self.open(context, endpoint, identity, security)
                unanswered = false
            }
            sequence += 1
            frame.sequence = sequence
            let (e, p) = frame.encode()
            guard try socket.send([e, p]) else { continue }
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline && !shouldStop() {
                guard let parts = try socket.receive() else { continue }
                guard parts.count == 2 else { errors.record(.tooShort(parts.count)); continue }
                do {
                    let (reply, _) = try Frame.decode(envelope: parts[0], payload: parts[1])
                    return reply
                } catch let e as WireError { errors.record(e) }
            }
            unanswered = true
        }
        unanswered = true
        return nil
    }

    /// Sends without waiting for an answer (heartbeats).
    public func post(_ frame: Frame) throws {
        var frame = frame
        sequence += 1
        frame.sequence = sequence
        let (e, p) = frame.encode()
        try socket.send([e, p])
    }
}
