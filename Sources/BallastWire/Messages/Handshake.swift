import Foundation

// Kind `hello`: the learner registers (and re-registers every few seconds, so that a restarted
// coordinator learns it again); an actor asks where the learner is. The coordinator answers each
// on the same kind.

/// Where actors reach the learner.
public struct LearnerEndpoints: Sendable, Equatable {
    /// PULL: rollout frames. ROUTER: weights requests. PUB: version notices.
    public var rollouts: String, weights: String, notices: String

    public init(rollouts: String, weights: String, notices: String) {
        self.rollouts = rollouts
        self.weights = weights
        self.notices = notices
    }

    var metadata: [String: String] { ["rollouts": rollouts, "weights": weights, "notices": notices] }

    init(_ r: WirePayload.Reader) throws {
        self.init(rollouts: try r.string("rollouts"), weights: try r.string("weights"), notices: try r.string("notices"))
    }
}

/// The run's sampling settings, which reach the actors through the coordinator (metadata `run.*`).
public struct RunSettings: Sendable, Equatable {
    public var temperature: Float
    public var maxNewTokens: Int
    /// K responses sampled per prompt.
    public var responsesPerPrompt: Int
    public var leaseSize: Int
    public var seed: UInt64
    public var heartbeatInterval: Double

    public init(temperature: Float, maxNewTokens: Int, responsesPerPrompt: Int, leaseSize: Int, seed: UInt64, heartbeatInterval: Double) {
        self.temperature = temperature
        self.maxNewTokens = maxNewTokens
        self.responsesPerPrompt = responsesPerPrompt
        self.leaseSize = leaseSize
        self.seed = seed
        self.heartbeatInterval = heartbeatInterval
    }

    var metadata: [String: String] {
        ["run.temperature": "\(temperature)", "run.max_new_tokens": "\(maxNewTokens)", "run.responses_per_prompt": "\(responsesPerPrompt)",
         "run.lease_size": "\(leaseSize)", "run.seed": "\(seed)", "run.heartbeat_interval": "\(heartbeatInterval)"]
    }

    init(_ r: WirePayload.Reader) throws {
        guard let t = Float(try r.string("run.temperature")), t.isFinite, t > 0 else { throw r.fail("run.temperature", "must be a number > 0") }
        guard let seed = UInt64(try r.string("run.seed")) else { throw r.fail("run.seed", "must be an unsigned integer") }
        let interval = try r.double("run.heartbeat_interval")
        guard interval > 0 else { throw r.fail("run.heartbeat_interval", "must be > 0") }
        self.init(temperature: t, maxNewTokens: try r.int("run.max_new_tokens"), responsesPerPrompt: try r.int("run.responses_per_prompt"),
                  leaseSize: try r.int("run.lease_size"), seed: seed, heartbeatInterval: interval)
    }
}

/// The learner's counters, shown by `ballast status` and /metrics.
public struct LearnerStats: Sendable, Equatable {
    public var step: Int
    /// Prompts queued, and the queue's bound.
    public var queue: Int, queueCapacity: Int
    /// Stale rollout messages dropped; rows trained with a weight below 1.
    public var dropped: Int, downweighted: Int
    /// "none" or "step N".
    public var checkpoint: String
    /// Fraction of the time spent training (3 decimals on the wire) and rollouts received per second (2 decimals).
    public var busy: Double, rolloutsPerSecond: Double
    /// Malformed frames rejected.
    public var errors: Int

    public init(step: Int, queue: Int, queueCapacity: Int, dropped: Int, downweighted: Int, checkpoint: String, busy: Double,
                rolloutsPerSecond: Double, errors: Int) {
        self.step = step
        self.queue = queue
        self.queueCapacity = queueCapacity
        self.dropped = dropped
        self.downweighted = downweighted
        self.checkpoint = checkpoint
        self.busy = busy
        self.rolloutsPerSecond = rolloutsPerSecond
        self.errors = errors
    }

    /// The keys and values as they travel (and as the coordinator's status reports them).
    public var metadata: [String: String] {
        ["step": "\(step)", "queue": "\(queue)", "queue_capacity": "\(queueCapacity)", "dropped": "\(dropped)",
         "downweighted": "\(downweighted)", "checkpoint": checkpoint, "busy": String(format: "%.3f", busy),
         "rollouts_per_s": String(format: "%.2f", rolloutsPerSecond), "errors": "\(errors)"]
    }

    init(_ r: WirePayload.Reader) throws {
        self.init(step: try r.int("step"), queue: try r.int("queue"), queueCapacity: try r.int("queue_capacity"), dropped: try r.int("dropped"),
                  downweighted: try r.int("downweighted"), checkpoint: try r.string("checkpoint"), busy: try r.double("busy"),
                  rolloutsPerSecond: try r.double("rollouts_per_s"), errors: try r.int("errors"))
    }
}

/// Learner → coordinator: its endpoints, settings and counters; the envelope carries its policy
/// version (the coordinator takes it as the run's: the learner may have restarted from a checkpoint).
public struct LearnerHello: WireMessage, Equatable {
    public static let kind = MessageKind.hello
    static let flowBound = 1 << 24
    public var policyVersion: UInt64
    public var endpoints: LearnerEndpoints
    public var settings: RunSettings
    public var stats: LearnerStats
    /// Which learner process this is and the step of its last durable checkpoint (metadata
    /// `incarnation`, `checkpoint_step`): a new incarnation makes the coordinator un-count the prompts
    /// of steps after its checkpoint, which the crashed process trained but never saved.
    public var incarnation: Incarnation?
    /// How much leased work the learner can train before it goes stale (metadata `flow.batch_prompts`,
    /// `flow.max_policy_lag`): the coordinator leases no more than that (flow control).
    public var flow: Flow?

    public struct Flow: Sendable, Equatable {
        /// Prompts per training step, and the most versions a rollout may lag the learner by.
        public var batchPrompts: Int, maxPolicyLag: Int
        public init(batchPrompts: Int, maxPolicyLag: Int) {
            self.batchPrompts = batchPrompts
            self.maxPolicyLag = maxPolicyLag
        }
    }

    public struct Incarnation: Sendable, Equatable {
        public var id: String
        public var checkpointStep: Int
        public init(id: String, checkpointStep: Int) {
            self.id = id
            self.checkpointStep = checkpointStep
        }
    }

    public init(policyVersion: UInt64, endpoints: LearnerEndpoints, settings: RunSettings, stats: LearnerStats, incarnation: Incarnation? = nil,
                flow: Flow? = nil) {
        self.policyVersion = policyVersion
        self.endpoints = endpoints
        self.settings = settings
        self.stats = stats
        self.incarnation = incarnation
        self.flow = flow
    }

    public var payload: WirePayload {
        var m = stats.metadata.merging(endpoints.metadata) { a, _ in a }.merging(settings.metadata) { a, _ in a }
        m["role"] = "learner"
        m["id"] = "learner"
        if let incarnation {
            m["incarnation"] = incarnation.id
            m["checkpoint_step"] = "\(incarnation.checkpointStep)"
        }
        if let flow {
            m["flow.batch_prompts"] = "\(flow.batchPrompts)"
            m["flow.max_policy_lag"] = "\(flow.maxPolicyLag)"
        }
        return WirePayload(metadata: m)
    }

    public init(policyVersion: UInt64, payload: WirePayload) throws {
        let r = payload.reader("learner hello")
        guard try r.string("role") == "learner" else { throw r.fail("role", "must be learner") }
        var incarnation: Incarnation?
        if let id = r.optional("incarnation") {
            let step = try r.int("checkpoint_step")
            guard step >= 0, !id.isEmpty else { throw r.fail("checkpoint_step", "must be >= 0 with a non-empty incarnation") }
            incarnation = Incarnation(id: id, checkpointStep: step)
        }
        var flow: Flow?
        if r.optional("flow.batch_prompts") != nil {
            // Bounded so that (lag + 1) × batch cannot overflow at the coordinator.
            let batch = try r.int("flow.batch_prompts"), lag = try r.int("flow.max_policy_lag")
            guard (1...Self.flowBound).contains(batch) else { throw r.fail("flow.batch_prompts", "must be in 1...\(Self.flowBound), got \(batch)") }
            guard (0...Self.flowBound).contains(lag) else { throw r.fail("flow.max_policy_lag", "must be in 0...\(Self.flowBound), got \(lag)") }
            flow = Flow(batchPrompts: batch, maxPolicyLag: lag)
        }
        self.init(policyVersion: policyVersion, endpoints: try LearnerEndpoints(r), settings: try RunSettings(r), stats: try LearnerStats(r),
                  incarnation: incarnation, flow: flow)
    }
}

/// Actor → coordinator: where is the learner? The envelope carries the actor's policy version.
public struct ActorHello: WireMessage, Equatable {
    public static let kind = MessageKind.hello
    public var policyVersion: UInt64
    public var id: String
    public var host: String

    public init(policyVersion: UInt64 = 0, id: String, host: String) {
        self.policyVersion = policyVersion
        self.id = id
        self.host = host
    }

    public var payload: WirePayload { WirePayload(metadata: ["role": "actor", "id": id, "host": host]) }

    public init(policyVersion: UInt64, payload: WirePayload) throws {
        let r = payload.reader("actor hello")
        guard try r.string("role") == "actor" else { throw r.fail("role", "must be actor") }
        self.init(policyVersion: policyVersion, id: try r.string("id"), host: try r.string("host"))
    }
}

/// A hello as the coordinator receives it: from the learner or from an actor (metadata `role`).
public enum Hello: Sendable, Equatable {
    case learner(LearnerHello)
    case actor(ActorHello)

    public init(frame: Frame) throws {
        switch frame.metadata["role"] {
        case "learner": self = .learner(try LearnerHello(frame: frame))
        case "actor": self = .actor(try ActorHello(frame: frame))
        case let role: throw WireError.payload("hello: role must be learner or actor, got \(role ?? "nothing")")
        }
    }
}

/// Coordinator → learner: registered (state "ok"), with the run's progress.
public struct LearnerWelcome: WireMessage, Equatable {
    public static let kind = MessageKind.hello
    public var policyVersion: UInt64
    public var progress: RunProgress

    public init(policyVersion: UInt64, progress: RunProgress) {
        self.policyVersion = policyVersion
        self.progress = progress
    }

    public var payload: WirePayload { WirePayload(metadata: progress.metadata.merging(["state": "ok"]) { a, _ in a }) }

    public init(policyVersion: UInt64, payload: WirePayload) throws {
        let r = payload.reader("learner welcome")
        guard try r.string("state") == "ok" else { throw r.fail("state", "must be ok") }
        self.init(policyVersion: policyVersion, progress: try RunProgress(r))
    }
}

/// Coordinator → actor: the learner's endpoints and the run's settings once a learner has
/// registered (state "ok", or "finished" when the run is over), else state "wait" or "finished".
public struct ActorWelcome: WireMessage, Equatable {
    public enum State: String, Sendable { case ok, wait, finished }
    public static let kind = MessageKind.hello
    public var policyVersion: UInt64
    public var state: State
    public var learner: Learner?

    public struct Learner: Sendable, Equatable {
        public var endpoints: LearnerEndpoints
        public var settings: RunSettings

        public init(endpoints: LearnerEndpoints, settings: RunSettings) {
            self.endpoints = endpoints
            self.settings = settings
        }
    }

    public init(policyVersion: UInt64, state: State, learner: Learner?) {
        self.policyVersion = policyVersion
        self.state = state
        self.learner = learner
    }

    public var payload: WirePayload {
        var m = ["state": state.rawValue]
        if let learner { m.merge(learner.endpoints.metadata.merging(learner.settings.metadata) { a, _ in a }) { a, _ in a } }
        return WirePayload(metadata: m)
    }

    public init(policyVersion: UInt64, payload: WirePayload) throws {
        let r = payload.reader("actor welcome")
        let state = try r.oneOf("state", State.self)
        let learner = r.optional("rollouts") == nil ? nil : Learner(endpoints: try LearnerEndpoints(r), settings: try RunSettings(r))
        guard state != .ok || learner != nil else { throw r.fail("rollouts", "is missing (state ok names the learner)") }
        self.init(policyVersion: policyVersion, state: state, learner: learner)
    }
}
