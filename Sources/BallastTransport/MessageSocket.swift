import Foundation

/// What coordinator, actor and learner code talks to: a multipart message socket. ZeroMQ sockets and
/// the in-memory sockets of the test support (`InMemoryHub`) both conform, so the same logic runs over real sockets and in tests.
public protocol MessageSocket: AnyObject {
    /// Sends one multipart message; false when it could not be queued in time (back-pressure).
    @discardableResult func send(_ parts: [Data]) throws -> Bool
    /// One multipart message, or nil when the receive timeout expired.
    func receive() throws -> [Data]?
    /// One multipart message if one is already waiting, else nil at once.
    func receiveNow() throws -> [Data]?
    /// The role bound to the sender's CURVE key (see `CurveSecurity`), nil when unauthenticated.
    var peerRole: String? { get }
}

extension MessageSocket {
    public var peerRole: String? { nil }
}

extension ZMQSocket: MessageSocket {}
