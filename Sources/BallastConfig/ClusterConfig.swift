import Foundation

/// The `cluster:` section of a PPO config: where the distributed run's processes listen and how the
/// learner treats rollouts. `ballast ppo` ignores it; `ballast coordinator|learner|actor|launch` read it.
public struct ClusterConfig: Sendable, Equatable {
    /// Coordinator ROUTER endpoint (actors and the learner connect here).
    public var coordinator = "tcp://127.0.0.1:5555"
    /// Learner endpoints: rollouts (PULL), weights (ROUTER), version notices (PUB).
    public var rollouts = "tcp://127.0.0.1:5556"
    public var weights = "tcp://127.0.0.1:5557"
    public var notices = "tcp://127.0.0.1:5558"
    /// Host name actors use to reach the learner when it binds a wildcard address (multi-node).
    public var advertiseHost: String?
    /// Coordinator HTTP status (JSON at /status, Prometheus text at /metrics, HTML at /); nil = off.
    public var http: String? = "127.0.0.1:8080"
    /// Coordinator journal (default RUN/coordinator.journal).
    public var journal: String?
    public var shards = 4
    /// Prompts per lease; the PPO batch size must be a multiple of it (default: the largest divisor ≤ 16).
    public var leaseSize = 0
    /// K responses sampled per prompt.
    public var responsesPerPrompt = 1
    public var maxPolicyLag = 2
    public var staleness = "drop"
    public var decay = 0.5
    /// Leases' worth of rollouts (× lease_size prompts) the learner holds before it stops reading
    /// (back-pressure); default one batch plus one lease: a deeper queue only holds rollouts that go stale.
    public var queueCapacity = 0
    public var heartbeatInterval = 1.0
    public var heartbeatTimeout = 10.0
    public var leaseTimeout = 300.0
    /// CURVE: directory with this run's key pairs (`ballast keys`); nil = plain TCP (loopback only).
    public var curveKeys: String?

    public init() {}

    static let keys = ["coordinator", "rollouts", "weights", "notices", "advertise_host", "http", "journal", "shards", "lease_size",
                       "responses_per_prompt", "max_policy_lag", "staleness", "decay", "queue_capacity", "heartbeat_interval",
                       "heartbeat_timeout", "lease_timeout", "curve_keys"]

    public static func read(_ s: ConfigSection) throws -> ClusterConfig {
        var c = ClusterConfig()
        c.coordinator = try s.string("coordinator", c.coordinator)!
        c.rollouts = try s.string("rollouts", c.rollouts)!
        c.weights = try s.string("weights", c.weights)!
        c.notices = try s.string("notices", c.notices)!
        c.advertiseHost = try s.string("advertise_host", nil)
        c.http = try s.string("http", c.http)
        if c.http == "none" { c.http = nil }
        c.journal = try s.string("journal", nil)
        c.shards = try s.positive("shards", c.shards)
        c.leaseSize = try s.int("lease_size", 0)
        c.responsesPerPrompt = try s.positive("responses_per_prompt", c.responsesPerPrompt)
        c.maxPolicyLag = try s.int("max_policy_lag", c.maxPolicyLag)
        guard c.maxPolicyLag >= 0 else { throw ConfigError("\(s.origin("max_policy_lag")): cluster.max_policy_lag must be ≥ 0") }
        c.staleness = try s.string("staleness", c.staleness)!
        guard ["drop", "downweight"].contains(c.staleness) else { throw ConfigError("\(s.origin("staleness")): cluster.staleness must be drop or downweight") }
        c.decay = try s.double("decay", c.decay)
        guard c.decay > 0 && c.decay <= 1 else { throw ConfigError("\(s.origin("decay")): cluster.decay must be in (0, 1]") }
        c.queueCapacity = try s.int("queue_capacity", 0)
        guard c.queueCapacity >= 0 else { throw ConfigError("\(s.origin("queue_capacity")): cluster.queue_capacity must be ≥ 0 (0 = automatic)") }
        c.heartbeatInterval = try s.double("heartbeat_interval", c.heartbeatInterval)
        c.heartbeatTimeout = try s.double("heartbeat_timeout", c.heartbeatTimeout)
        c.leaseTimeout = try s.double("lease_timeout", c.leaseTimeout)
        guard c.heartbeatInterval > 0, c.heartbeatTimeout > c.heartbeatInterval, c.leaseTimeout > 0 else {
            throw ConfigError("\(s.origin("heartbeat_timeout")): need 0 < heartbeat_interval < heartbeat_timeout and lease_timeout > 0")
        }
        c.curveKeys = try s.string("curve_keys", nil)
        if c.curveKeys == "none" { c.curveKeys = nil }
        try s.finish()
        return c
    }
}
