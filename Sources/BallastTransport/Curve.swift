import CZMQ
import Foundation
import Synchronization

/// ZeroMQ CURVE (encryption + authentication) for multi-node runs. Keys are Z85 text as made by
/// `ballast keys`: a directory with `server.public`, `server.secret` (listening sockets), one
/// `NAME.public` / `NAME.secret` pair per client, and `authorized_clients` (one public key per line).
/// A listener only completes the handshake with clients whose public key is on that allowlist; the
/// others are refused by the ZAP handler and counted (`refused`). Each accepted key carries a role,
/// from the name of its `NAME.public` file: `learner`, `coordinator`, `actor` (also `actor-*`, so each
/// node can have its own actor key), else `client`; messages arrive tagged with it (`peerRole`), and
/// the coordinator and learner accept each kind of message only from the roles that send it.
public final class CurveSecurity: @unchecked Sendable {
    public let serverPublic: String
    let serverSecret: String?
    public let clientPublic: String
    let clientSecret: String
    public let allowed: Set<String>
    /// Role per public key, from the key files in the directory.
    public let roles: [String: String]
    let refusedCount = Atomic<Int>(0)
    public var refused: Int { refusedCount.load(ordering: .relaxed) }
    private var zapThread: Thread?
    private let zapStop = Atomic<Bool>(false)

    public struct KeyError: Error, CustomStringConvertible {
        public let description: String
    }

    /// A Z85 key pair from libzmq's generator.
    public static func keyPair() throws -> (public: String, secret: String) {
        var pub = [CChar](repeating: 0, count: 41), sec = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&pub, &sec) == 0 else { throw ZMQError.last("zmq_curve_keypair (libzmq without CURVE?)") }
        func text(_ c: [CChar]) -> String { String(decoding: c.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        return (text(pub), text(sec))
    }

    public init(directory: String, client: String = "client") throws {
        func read(_ name: String, required: Bool = true) throws -> String? {
            let path = directory + "/" + name
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                if required { throw KeyError(description: "\(path): missing (make keys with `ballast keys --out \(directory)`)") }
                return nil
            }
            let key = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard key.utf8.count == 40 else { throw KeyError(description: "\(path): not a 40-character Z85 CURVE key") }
            return key
        }
        serverPublic = try read("server.public")!
        serverSecret = try read("server.secret", required: false)
        clientPublic = try read(client + ".public")!
        clientSecret = try read(client + ".secret")!
        let list = (try? String(contentsOfFile: directory + "/authorized_clients", encoding: .utf8)) ?? ""
        allowed = Set(list.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") })
        var roles: [String: String] = [:]
        for file in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where file.hasSuffix(".public") && file != "server.public" {
            let name = String(file.dropLast(".public".count))
            if let key = try read(file, required: false) { roles[key] = Self.role(ofKeyNamed: name) }
        }
        self.roles = roles
    }

    /// The client key pair an actor uses in `directory`: `explicit` when given, else `actor` when that
    /// pair is there, else the one `actor-*` pair of a node's own folder (`ballast keys --nodes`).
    public static func actorKeyName(in directory: String, explicit: String? = nil) throws -> String {
        if let explicit { return explicit }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        if files.contains("actor.secret") { return "actor" }
        let names = files.filter { $0.hasPrefix("actor-") && $0.hasSuffix(".secret") }.map { String($0.dropLast(".secret".count)) }.sorted()
        guard names.count == 1 else {
            throw KeyError(description: "\(directory): " + (names.isEmpty ? "no actor key pair (actor.secret or actor-NODE.secret)"
                                                        : "several actor key pairs (\(names.joined(separator: ", "))); choose one with --curve-key"))
        }
        return names[0]
    }

    /// The role a key file's name gives: learner, coordinator, actor (actor or actor-*), else client.
    public static func role(ofKeyNamed name: String) -> String {
        if name == "learner" || name == "coordinator" { return name }
        if name == "actor" || name.hasPrefix("actor-") { return "actor" }
        return "client"
    }

    deinit { zapStop.store(true, ordering: .relaxed) }

    static func z85(_ key: String) -> [UInt8] { Array(key.utf8) + [0] }

    /// Makes `socket` a CURVE server; the first call also starts the ZAP handler on its context.
    public func configureServer(_ socket: ZMQSocket) throws {
        guard let serverSecret else { throw KeyError(description: "this node listens but has no server.secret") }
        try startZAP(socket.context)
        try socket.setBytes(55 /* ZMQ_ZAP_DOMAIN */, Array("ballast".utf8))
        try socket.setInt(47 /* ZMQ_CURVE_SERVER */, 1)
        try socket.setBytes(49 /* ZMQ_CURVE_SECRETKEY */, Self.z85(serverSecret))
    }

    public func configureClient(_ socket: ZMQSocket) throws {
        try socket.setBytes(50 /* ZMQ_CURVE_SERVERKEY */, Self.z85(serverPublic))
        try socket.setBytes(48 /* ZMQ_CURVE_PUBLICKEY */, Self.z85(clientPublic))
        try socket.setBytes(49 /* ZMQ_CURVE_SECRETKEY */, Self.z85(clientSecret))
    }

    /// ZAP (RFC 27): libzmq asks inproc://zeromq.zap.01 whether to accept each CURVE handshake.
    private func startZAP(_ context: ZMQContext) throws {
        guard zapThread == nil else { return }
        let rep = try context.socket(.rep)
        try rep.setReceiveTimeout(ms: 200)
        try rep.bind("inproc://zeromq.zap.01")
        let allowed = self.allowed, roles = self.roles
        let thread = Thread { [self] in
            while !zapStop.load(ordering: .relaxed) {
                guard let req = try? rep.receive(), req.count >= 6 else { continue }
                var key = "?"
                if req[5] == Data("CURVE".utf8), req.count >= 7, req[6].count == 32 {
                    var out = [CChar](repeating: 0, count: 41)
                    _ = req[6].withUnsafeBytes { zmq_z85_encode(&out, $0.bindMemory(to: UInt8.self).baseAddress, 32) }
                    key = String(decoding: out.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                }
                let ok = allowed.contains(key)
                if !ok {
                    refusedCount.add(1, ordering: .relaxed)
                    let address = String(decoding: req[3], as: UTF8.self)
                    let line = Array("[curve] refused a peer at \(address) (client key \(key) is not in authorized_clients)\n".utf8)
                    _ = line.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }  // never traps, unlike FileHandle.write
                }
                _ = try? rep.send([req[0], req[1], Data(ok ? "200".utf8 : "400".utf8), Data(ok ? "OK".utf8 : "key not authorized".utf8),
                                   Data(ok ? (roles[key] ?? "client").utf8 : "".utf8), Data()])
            }
            rep.close()
        }
        thread.start()
        zapThread = thread
    }
}
