import BallastCluster
import BallastData
import BallastHTTP
import BallastTransport
import BallastWire
import Foundation
import Synchronization

/// The coordinator process: `CoordinatorService` (the socket-free core in BallastCluster) served on a
/// ZeroMQ ROUTER socket, with its journal on disk and its status over HTTP.
public final class CoordinatorNode {
    public struct Settings: Sendable {
        public var prompts: String
        public var journal: String
        public var bind: String
        public var shards: Int
        /// Passes over the prompts; nil = enough for `budget` (or one without a budget).
        public var epochs: Int?
        /// Prompts to consume in total; nil = all prompts × epochs.
        public var budget: Int?
        public var heartbeatTimeout: Double
        public var leaseTimeout: Double
        /// Where the status server listens, or nil for none.
        public var http: (host: String, port: Int)?
        public var curveKeys: String?

        public init(prompts: String, journal: String, bind: String, shards: Int, epochs: Int?, budget: Int?,
                    heartbeatTimeout: Double, leaseTimeout: Double, http: (host: String, port: Int)?, curveKeys: String?) {
            self.prompts = prompts
            self.journal = journal
            self.bind = bind
            self.shards = shards
            self.epochs = epochs
            self.budget = budget
            self.heartbeatTimeout = heartbeatTimeout
            self.leaseTimeout = leaseTimeout
            self.http = http
            self.curveKeys = curveKeys
        }
    }

    let log = NodeLog(role: "coordinator")
    let ledger: PromptLedger
    let service: CoordinatorService
    let socket: ZMQSocket
    let context: ZMQContext
    let board = StatusBoard()
    var server: HTTPServer?

    /// Reads the prompts, replays the journal, binds the socket and starts the status server.
    public init(_ settings: Settings) throws {
        let lines = try JSONL.readObjects(settings.prompts).map { _, obj in
            String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self)
        }
        guard !lines.isEmpty else { throw DatasetError(file: settings.prompts, line: 0, problem: "no prompts") }
        let epochs = settings.epochs ?? settings.budget.map { ($0 + lines.count - 1) / lines.count } ?? 1
        let now = Self.monotonicSeconds()
        let journal = try FileJournal(path: settings.journal)
        if journal.truncatedTail > 0 {
            log("journal \(settings.journal): cut a torn last record of \(journal.truncatedTail) bytes (a crash during its write); it never counted")
        }
        ledger = try PromptLedger(promptCount: lines.count, shards: settings.shards, epochs: epochs, budget: settings.budget,
                                  journal: journal, now: now)
        service = CoordinatorService(ledger: ledger, heartbeatTimeout: settings.heartbeatTimeout, leaseTimeout: settings.leaseTimeout,
                                     prompts: lines, now: now)
        context = try ZMQContext()
        let security = try settings.curveKeys.map { try CurveSecurity(directory: $0, client: "coordinator") }
        socket = try context.socket(.router)
        try socket.setReceiveTimeout(ms: 200)
        try security?.configureServer(socket)
        try socket.bind(settings.bind)
        log("\(lines.count) prompts in \(ledger.shards) shards, budget \(ledger.budget) (\(ledger.epochs) epoch(s)), listening on \(socket.lastEndpoint)"
            + (security == nil ? "" : " with CURVE (\(security!.allowed.count) authorized clients)") + ", journal \(settings.journal)"
            + (ledger.completed > 0 ? "; replayed: \(ledger.completed) prompts already consumed" : ""))
        if let (host, port) = settings.http {
            let board = self.board
            let server = try HTTPServer(host: host, port: port, handler: { board.response($0) })
            log("status on http://\(host):\(server.port)/ (JSON /status, Prometheus /metrics)")
            self.server = server
        }
    }

    /// Liveness and lease ages are measured on this clock: a wall clock stepped by NTP or an operator
    /// would expire every actor at once (forward) or keep dead ones alive (backward). Nothing persists
    /// it: a replayed journal starts every lease's age at the restart.
    static func monotonicSeconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// Serves until `shouldStop` (the run's end does not stop the coordinator: late actors are told it is finished).
    public func run(shouldStop: @escaping () -> Bool) throws {
        var refreshed = 0.0
        var announced = false
        fflush(nil)
        try service.serve(socket, clock: Self.monotonicSeconds, shouldStop: shouldStop, afterEach: { [self] in
            let t = Self.monotonicSeconds()
            if server != nil, t - refreshed > 0.25 {
                refreshed = t
                let st = service.status(now: t)
                let json = (try? JSONSerialization.data(withJSONObject: st, options: [.sortedKeys, .prettyPrinted])).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
                let page = (json, service.prometheus(now: t), StatusPage.html(st))
                board.pages.withLock { $0 = page }
            }
            if ledger.finished && !announced {
                log("prompt budget consumed (\(ledger.completed) prompts); actors are told the run is finished")
                announced = true
            }
        })
        log("stopped (epoch \(ledger.epoch), \(ledger.completed)/\(ledger.budget) prompts consumed, \(service.errors.total) malformed frames)")
    }
}

/// The coordinator's status as the HTTP thread serves it, refreshed by the serving loop.
final class StatusBoard: Sendable {
    let pages = Mutex<(json: String, metrics: String, html: String)>(("{}", "", ""))

    func response(_ path: String) -> HTTPServer.Response {
        let p = pages.withLock { $0 }
        switch path {
        case "/status", "/status.json": return .init(contentType: "application/json", body: p.json)
        case "/metrics": return .init(contentType: "text/plain; version=0.0.4", body: p.metrics)
        case "/", "/index.html": return .init(contentType: "text/html; charset=utf-8", body: p.html)
        default: return .init(status: 404, contentType: "text/plain", body: "not found: \(path) (try /, /status, /metrics)\n")
        }
    }
}
