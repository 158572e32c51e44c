import ArgumentParser
import BallastCluster
import BallastConfig
import BallastDistributed
import BallastFormats
import BallastTransport
import BallastWire
import Foundation

struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Lease prompts to actors over ZeroMQ (ROUTER), track liveness, count consumption once per epoch, journal every change, serve status over HTTP.")
    @Option(help: "PPO config of a distributed run: prompts, budget (train.steps × train.batch_size) and the cluster: section.") var config: String?
    @Option(name: .customLong("set"), help: "Override a field of --config (repeatable).") var overrides: [String] = []
    @Option(help: "Prompts JSONL (without --config).") var prompts: String?
    @Option(help: "Endpoint to bind (default cluster.coordinator, else tcp://127.0.0.1:5555).") var bind: String?
    @Option(help: "Append-only journal; an existing one is replayed (restart without losing or repeating work).") var journal: String?
    @Option var shards: Int?
    @Option var epochs: Int?
    @Option(help: "Prompts to consume in total (default: all prompts × epochs).") var budget: Int?
    @Option(name: .customLong("heartbeat-timeout"), help: "Seconds of silence after which an actor's leases are re-leased.") var heartbeatTimeout: Double?
    @Option(name: .customLong("lease-timeout"), help: "Seconds after which an unconsumed lease is re-leased.") var leaseTimeout: Double?
    @Option(help: "HTTP status address host:port, or none (default cluster.http).") var http: String?

    func run() throws {
        try failing {
            var cluster = ClusterConfig()
            var promptsFile = prompts, journalFile = journal, runBudget = budget
            if let config {
                let c = try ConfigOptions.ppo(config, overrides)
                cluster = c.cluster
                promptsFile = promptsFile ?? c.prompts
                journalFile = journalFile ?? c.cluster.journal ?? c.run.outDir + "/coordinator.journal"
                runBudget = runBudget ?? c.optim.steps * c.optim.batchSize
                try FileManager.default.createDirectory(atPath: c.run.outDir, withIntermediateDirectories: true)
            } else {
                cluster.http = nil
            }
            guard let promptsFile else { throw ValidationError("give --config, or --prompts and --journal") }
            guard let journalFile else { throw ValidationError("--journal is required without --config") }
            var status: (host: String, port: Int)?
            if let address = http == "none" ? nil : http ?? cluster.http {
                let parts = address.split(separator: ":")
                guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("--http must be host:port, e.g. 127.0.0.1:8080") }
                status = (String(parts[0]), port)
            }
            let node = try CoordinatorNode(CoordinatorNode.Settings(
                prompts: promptsFile, journal: journalFile, bind: bind ?? cluster.coordinator, shards: shards ?? cluster.shards,
                epochs: epochs, budget: runBudget, heartbeatTimeout: heartbeatTimeout ?? cluster.heartbeatTimeout,
                leaseTimeout: leaseTimeout ?? cluster.leaseTimeout, http: status, curveKeys: cluster.curveKeys))
            try runUntilStopped { stop in
                try node.run(shouldStop: stop)
                return true
            }
        }
    }
}

struct LearnerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "learner",
        abstract: "PPO + rehearsal learner of a distributed run: receives rollouts, publishes policy versions, serves weights, checkpoints.")
    @OptionGroup var options: TrainingOptions

    func run() throws {
        try failing {
            let node = try LearnerNode(config: try options.ppo(), resume: options.resume, restart: options.restart)
            try runUntilStopped { stop in
                node.shouldStop = stop
                return try node.run()
            }
        }
    }
}

struct ActorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "actor",
        abstract: "Rollout actor: leases prompts from the coordinator, samples and scores responses, sends rollouts to the learner.")
    @Option(help: "Coordinator endpoint, e.g. tcp://127.0.0.1:5555.") var coordinator: String
    @Option(help: "Name shown in status (default actor-HOST-PID).") var id: String?
    @Option(name: .customLong("curve-keys"), help: "Directory of CURVE keys (ballast keys) when the run requires them.") var curveKeys: String?
    @Option(name: .customLong("curve-key"), help: "Client key pair to use in --curve-keys (default: actor, or the folder's one actor-NODE pair).") var curveKey: String?
    @Option(help: "Reference (SFT) checkpoint on a shared filesystem (default: fetched from the learner).") var reference: String?
    @Option(help: "Scorer (AM or RM) checkpoint on a shared filesystem (default: fetched from the learner).") var scorer: String?
    @Option(help: "Seconds the work loop may stand still before heartbeats stop and the coordinator re-leases this actor's prompts.") var watchdog = 600.0
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard (reference == nil) == (scorer == nil) else { throw ValidationError("give both --reference and --scorer, or neither") }
        guard watchdog > 0 && watchdog.isFinite else { throw ValidationError("--watchdog must be a number of seconds > 0, got \(watchdog)") }
    }

    func run() throws {
        threads.apply()
        try failing {
            let name = id ?? "actor-\(ProcessInfo.processInfo.hostName)-\(getpid())"
            let node = try ActorNode(coordinator: coordinator, id: name, curveKeys: curveKeys, curveKeyName: curveKey, referencePath: reference,
                                     scorerPath: scorer, watchdog: watchdog)
            try runUntilStopped { stop in
                node.shouldStop = stop
                return try node.run()
            }
        }
    }
}

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Make CURVE key pairs for a multi-node run: one server pair for the listeners, one client pair per role, and the allowlist.",
        discussion: """
            OUT is the head node's folder (server secret, its clients' pairs, every public key, the allowlist).
            With --nodes, each node N also gets OUT/nodes/N holding only the server's public key and its own
            actor-N pair: copy that folder to N, so that no node holds another's secret; remove N's line
            from OUT/authorized_clients to revoke it.
            """)
    @Option(help: "Output directory (set cluster.curve_keys to it).") var out: String
    @Option(help: "Client key pairs to make.") var clients: [String] = ["coordinator", "learner", "actor"]
    @Option(parsing: .upToNextOption, help: "Actor nodes that get their own key pair and folder (OUT/nodes/NODE).") var nodes: [String] = []

    func validate() throws {
        for n in nodes where n.isEmpty || n.contains("/") || n.hasPrefix(".") {
            throw ValidationError("--nodes: \"\(n)\" is not a usable node name (no slashes, not empty, not starting with a dot)")
        }
        guard Set(nodes).count == nodes.count else { throw ValidationError("--nodes: a node is named twice") }
    }

    func run() throws {
        try failing {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            func save(_ name: String, _ pair: (public: String, secret: String), in dir: String) throws {
                try AtomicFile.write(pair.public + "\n", to: "\(dir)/\(name).public")
                try AtomicFile.write(pair.secret + "\n", to: "\(dir)/\(name).secret", mode: 0o600)
            }
            let server = try CurveSecurity.keyPair()
            try save("server", server, in: out)
            var allowed = "# public keys of the clients the listeners accept, one per line\n"
            for c in clients {
                let pair = try CurveSecurity.keyPair()
                try save(c, pair, in: out)
                allowed += pair.public + "\n"
            }
            for n in nodes {
                let dir = "\(out)/nodes/\(n)", pair = try CurveSecurity.keyPair()
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                try AtomicFile.write(server.public + "\n", to: "\(dir)/server.public")
                try save("actor-\(n)", pair, in: dir)
                try AtomicFile.write(pair.public + "\n", to: "\(out)/actor-\(n).public")  // the listeners learn its role from the name
                allowed += "# \(n)\n" + pair.public + "\n"
            }
            try AtomicFile.write(allowed, to: "\(out)/authorized_clients")
            print("wrote \(out): server.{public,secret}, \(clients.map { "\($0).{public,secret}" }.joined(separator: ", ")), authorized_clients")
            if nodes.isEmpty {
                print("copy the directory to every node (secrets are mode 600) and set cluster.curve_keys: \(out)")
            } else {
                print("copy \(out) to the head node only (coordinator, learner) and \(out)/nodes/NODE to each node NODE "
                      + "(\(nodes.joined(separator: ", "))); cluster.curve_keys: \(out)")
            }
        }
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Ask a coordinator for its status: run, learner, shards, actors, errors.")
    @Argument(help: "Coordinator endpoint, e.g. tcp://127.0.0.1:5555") var address: String
    @Flag(help: "Print the raw JSON.") var json = false
    @Option(name: .customLong("timeout-ms")) var timeoutMS: Int32 = 3000
    @Option(name: .customLong("curve-keys"), help: "CURVE keys directory when the coordinator requires them.") var curveKeys: String?

    func run() throws {
        try failing {
            let ctx = try ZMQContext()
            let s = try ctx.socket(.dealer)
            try s.setReceiveTimeout(ms: timeoutMS)
            if let curveKeys { try CurveSecurity(directory: curveKeys, client: "coordinator").configureClient(s) }
            try s.connect(address)
            let (e, p) = StatusRequest().frame(sequence: 1).encode()
            try s.send([e, p])
            guard let reply = try s.receive(), reply.count == 2 else {
                throw ConfigError("\(address): no answer within \(timeoutMS) ms (is a coordinator running there?)")
            }
            let text = try StatusReply(frame: try Frame.decode(envelope: reply[0], payload: reply[1]).0).json
            if json { print(text); return }
            let st = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
            print(StatusPage.text(st), terminator: "")
        }
    }
}
