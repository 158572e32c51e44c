import BallastFormats
import Foundation

/// The coordinator's prompt accounting: prompts split into shards, leased in batches to actors,
/// re-leased when an actor stops heartbeating or a lease grows stale, and counted once per epoch
/// however often they were leased or completed. When the current epoch has nothing left to lease, the
/// next epoch's prompts are leased already (the learner only reports a batch once it is full, so
/// waiting for the epoch to close would stall the run). Every state change is journaled first, so a
/// restarted coordinator replays the journal and neither loses nor repeats work. Time is passed in
/// (seconds), so tests control it.
public final class PromptLedger: @unchecked Sendable {
    public struct Lease: Sendable, Equatable {
        public let id: Int
        public let epoch: Int
        public let promptIDs: [Int]
    }

    public struct ShardProgress: Sendable, Equatable {
        public var done = 0, leased = 0, total = 0
    }

    /// One prompt in one epoch: the unit that is leased and counted.
    struct Slot: Hashable, Comparable {
        var epoch: Int
        var id: Int
        static func < (a: Slot, b: Slot) -> Bool { (a.epoch, a.id) < (b.epoch, b.id) }
    }

    public let promptCount: Int
    public let shards: Int
    public let epochs: Int
    /// Total completions after which the run is finished (a PPO run of S steps × B prompts stops
    /// part-way through its last epoch); promptCount × epochs by default.
    public let budget: Int
    /// The oldest epoch that is not complete.
    public private(set) var epoch = 0
    public private(set) var duplicates = 0
    /// Completions accepted over all epochs.
    public private(set) var completed = 0
    let journal: Journal
    var pending = PendingQueue()
    /// The newest epoch whose prompts were queued for leasing.
    var queuedEpoch = 0
    var leasedBy: [Slot: (actor: String, lease: Int)] = [:]
    var leaseTimes: [Int: Double] = [:]
    var done: [Int: Set<Int>] = [:]
    /// Prompts done in the current epoch, per shard: kept up to date by each completion and recounted
    /// only when the current epoch changes, so that a status costs O(shards + leased), not O(prompts).
    var doneInEpochByShard: [Int] = []
    var lastSeen: [String: Double] = [:]
    var nextLease = 0
    /// Accepted ids per consumption request id, so that a retried request (its reply was lost, or the
    /// coordinator restarted in between) gets the same answer instead of being counted as duplicates.
    var answered: [String: [Int]] = [:]
    var answeredOrder: [String] = []
    /// Each actor's last keyed lease request and the lease it got: a retry of it (the reply was lost)
    /// gets that lease's unfinished prompts again.
    var lastLeaseRequest: [String: (request: String, lease: Int)] = [:]
    /// Exactly-once training across learner crashes: the learner process counting now, the step of its
    /// last durable checkpoint, and the step that trains each prompt counted since (older ones are safe
    /// in a checkpoint and forgotten, so this stays one checkpoint interval large).
    public private(set) var learnerIncarnation: String?
    public private(set) var durableStep = 0
    var countedAt: [Slot: Int] = [:]
    /// Prompts un-counted over the run because the learner that trained them died before saving.
    public private(set) var rewound = 0
    /// Prompts taken back from actors' leases because the learner process they sampled for was replaced.
    public private(set) var reclaimed = 0

    /// Records appended since the journal was last rewritten as a snapshot; at `compactEvery` it is
    /// rewritten again, so a restarted coordinator replays one snapshot (its size grows with the open
    /// epochs' state, not with the run's length) and fewer than `compactEvery` records.
    var recordsSinceSnapshot = 0
    public let compactEvery: Int
    /// Times the journal was compacted by this process.
    public private(set) var compactions = 0

    public init(promptCount: Int, shards: Int = 4, epochs: Int = 1, budget: Int? = nil, journal: Journal, now: Double = 0,
                compactEvery: Int = 10_000) throws {
        precondition(promptCount > 0 && shards > 0 && epochs > 0)
        self.promptCount = promptCount
        self.shards = shards
        self.epochs = epochs
        self.budget = min(budget ?? promptCount * epochs, promptCount * epochs)
        precondition(self.budget > 0)
        self.journal = journal
        precondition(compactEvery > 0)
        self.compactEvery = compactEvery
        doneInEpochByShard = Array(repeating: 0, count: shards)
        pending.replace(with: Self.order(promptCount).map { Slot(epoch: 0, id: $0) })
        let records = try journal.records()
        for r in records { try replay(r, now: now) }
        recordsSinceSnapshot = records.count
    }

    /// Appends a record, first compacting the journal when `compactEvery` records have accumulated
    /// (the state then includes every record applied so far).
    func append(_ record: [String: Any]) throws {
        if recordsSinceSnapshot >= compactEvery { try compact() }
        try journal.append(record)
        recordsSinceSnapshot += 1
    }

    /// See `Journal.beginGroup` / `commitGroup`.
    public func beginGroup() { journal.beginGroup() }
    public func commitGroup() throws { try journal.commitGroup() }

    /// Rewrites the journal as one snapshot record of the current state.
    public func compact() throws {
        try journal.rewrite([snapshot()])
        recordsSinceSnapshot = 1
        compactions += 1
    }

    /// Prompt i belongs to shard i mod shards, so leasing in id order visits the shards round-robin
    /// and every shard progresses at the same pace.
    static func order(_ n: Int) -> [Int] { Array(0..<n) }

    public func shard(of prompt: Int) -> Int { prompt % shards }
    public var finished: Bool { epoch >= epochs || completed >= budget }

    func replay(_ r: [String: Any], now: Double) throws {
        switch r["t"] as? String {
        case "snapshot":
            try applySnapshot(r, now: now)
        case "lease":
            guard let e = r["epoch"] as? Int, let ids = r["ids"] as? [Int], let actor = r["actor"] as? String,
                  let lease = r["lease"] as? Int else { return }
            refill()
            applyLease(actor: actor, lease: lease, slots: ids.map { Slot(epoch: e, id: $0) }, now: now)
            lastSeen[actor] = now
            if let req = r["req"] as? String { lastLeaseRequest[actor] = (req, lease) }
        case "done":
            guard let e = r["epoch"] as? Int, let ids = r["ids"] as? [Int] else { return }
            let accepted = applyDone(epoch: e, ids: ids, step: r["step"] as? Int).accepted
            if let req = r["req"] as? String { remember(req, accepted) }
        case "expire":
            if let actor = r["actor"] as? String { applyExpire(actor) }
        case "expire_lease":
            if let lease = r["lease"] as? Int { applyExpireLease(lease) }
        case "learner":
            if let inc = r["inc"] as? String, let step = r["ckpt"] as? Int { applyLearnerRestart(incarnation: inc, checkpointStep: step) }
        case "durable":
            if let step = r["step"] as? Int { applyDurable(step) }
        case "release":
            if let e = r["epoch"] as? Int, let ids = r["ids"] as? [Int] { applyRelease(ids.map { Slot(epoch: e, id: $0) }) }
        default: break
        }
    }

    /// Queues the next epoch's prompts once nothing of the queued ones is left to lease.
    func refill() {
        guard pending.isEmpty, queuedEpoch + 1 < epochs, !finished else { return }
        queuedEpoch += 1
        pending.replace(with: Self.order(promptCount).map { Slot(epoch: queuedEpoch, id: $0) })
    }

    func applyLease(actor: String, lease: Int, slots: [Slot], now: Double) {
        for s in slots { pending.remove(s) }
        for s in slots { leasedBy[s] = (actor, lease) }
        leaseTimes[lease] = now
        nextLease = max(nextLease, lease + 1)
    }

    func applyDone(epoch e: Int, ids: [Int], step: Int? = nil) -> (accepted: [Int], duplicates: Int) {
        // A late completion of a closed epoch, or one of an epoch never leased (it would be leased again
        // when queued, and counted twice).
        guard e >= epoch, e <= queuedEpoch, e < epochs, !finished else {
            duplicates += ids.count
            return ([], ids.count)
        }
        var accepted: [Int] = [], dup = 0
        for id in ids where id >= 0 && id < promptCount {
            if completed + accepted.count < budget, done[e, default: []].insert(id).inserted {
                accepted.append(id)
                let slot = Slot(epoch: e, id: id)
                if let step, step > durableStep { countedAt[slot] = step }
                leasedBy[slot] = nil
                pending.remove(slot)
            } else {
                dup += 1
            }
        }
        completed += accepted.count
        duplicates += dup
        if e == epoch { for id in accepted { doneInEpochByShard[shard(of: id)] += 1 } }
        let before = epoch
        while epoch < epochs, done[epoch]?.count == promptCount {
            done[epoch] = nil
            epoch += 1
        }
        if epoch != before { recountProgress() }
        if epoch > queuedEpoch, epoch < epochs {  // everything queued is done: queue the new current epoch
            queuedEpoch = epoch
            pending.replace(with: Self.order(promptCount).map { Slot(epoch: epoch, id: $0) })
        }
        if finished { pending.replace(with: []) }
        return (accepted, dup)
    }

    /// A learner process (re)registered: prompts counted for steps after its checkpoint were trained by
    /// a process that died before saving them, so they are counted again from scratch — un-counted,
    /// reopening their epoch if it had closed, and queued first. Returns how many came back.
    /// Every outstanding lease is returned to the queue as well: rollouts that waited in the dead
    /// process's queue are gone, and under flow control their leases would hold the actors' credit
    /// until `lease_timeout`. Work still in flight to the new process counts if it arrives first
    /// (the first completion of a prompt wins), so nothing is counted twice.
    @discardableResult
    func applyLearnerRestart(incarnation: String, checkpointStep: Int) -> Int {
        let lost = countedAt.filter { $0.value > checkpointStep }.map(\.key)
        let firstProcess = learnerIncarnation == nil
        learnerIncarnation = incarnation
        durableStep = checkpointStep
        countedAt = [:]
        answered = [:]  // the new process's requests are new questions, even where it reuses a key
        answeredOrder = []
        if !firstProcess {
            reclaimed += leasedBy.count
            requeue(Array(leasedBy.keys))
            let live = Set(leasedBy.values.map(\.lease))  // slots requeue leaves out (done meanwhile) keep their lease
            leaseTimes = leaseTimes.filter { live.contains($0.key) }
        }
        guard let oldest = lost.map(\.epoch).min() else { return 0 }
        defer { recountProgress() }
        for e in stride(from: oldest, to: epoch, by: 1) where done[e] == nil { done[e] = Set(0..<promptCount) }  // closed epochs were complete
        for s in lost { done[s.epoch]?.remove(s.id) }
        epoch = min(epoch, oldest)
        completed -= lost.count
        rewound += lost.count
        requeue(lost)
        return lost.count
    }

    func applyDurable(_ step: Int) {
        durableStep = step
        countedAt = countedAt.filter { $0.value > step }
    }

    func remember(_ request: String, _ accepted: [Int]) {
        if answered.updateValue(accepted, forKey: request) == nil { answeredOrder.append(request) }
        if answeredOrder.count > 256 { answered[answeredOrder.removeFirst()] = nil }
    }

    /// Puts slots back at the front of the queue (oldest epoch first), unless already done.
    func requeue(_ slots: [Slot]) {
        let back = slots.filter { !($0.epoch < epoch || (done[$0.epoch]?.contains($0.id) ?? false)) }
            .sorted()
        for s in back { leasedBy[s] = nil }
        pending.prepend(back)
    }

    func applyExpire(_ actor: String) {
        requeue(leasedBy.filter { $0.value.actor == actor }.map(\.key))
        lastSeen[actor] = nil
        lastLeaseRequest[actor] = nil
    }

    func applyExpireLease(_ lease: Int) {
        requeue(leasedBy.filter { $0.value.lease == lease }.map(\.key))
        leaseTimes[lease] = nil
    }

    func applyRelease(_ slots: [Slot]) { requeue(slots.filter { leasedBy[$0] != nil }) }

    /// Leases up to `max` pending prompts (all of one epoch) to `actor`, leaving at most `outstanding`
    /// prompts out on lease when given (flow control); nil when none can be leased. A repeated
    /// `request` key of the same actor returns its lease's prompts still out instead of a new lease.
    public func lease(actor: String, max: Int, now: Double, outstanding: Int? = nil, request: String? = nil) throws -> Lease? {
        lastSeen[actor] = now
        if let request, let last = lastLeaseRequest[actor], last.request == request {
            let held = leasedBy.filter { $0.value.actor == actor && $0.value.lease == last.lease }.map(\.key).sorted { $0.id < $1.id }
            if let epoch = held.first?.epoch { return Lease(id: last.lease, epoch: epoch, promptIDs: held.map(\.id)) }
        }
        // Never lease beyond the budget: what is out on lease could complete it.
        var room = budget - completed - leasedBy.count
        if let outstanding { room = Swift.min(room, outstanding - leasedBy.count) }
        guard !finished, max > 0, room > 0 else { return nil }
        refill()  // only here (and replayed with each lease record), so a replay refills at the same points
        guard let first = pending.first() else { return nil }
        let slots = pending.prefix(Swift.min(max, room), epoch: first.epoch)
        let lease = nextLease
        let ids = slots.map(\.id)
        var record: [String: Any] = ["t": "lease", "lease": lease, "actor": actor, "epoch": first.epoch, "ids": ids]
        if let request { record["req"] = request }
        try append(record)
        applyLease(actor: actor, lease: lease, slots: slots, now: now)
        if let request { lastLeaseRequest[actor] = (request, lease) }
        return Lease(id: lease, epoch: first.epoch, promptIDs: ids)
    }

    /// Records consumed prompts; returns the ids that counted (first completion this epoch) and how
    /// many were duplicates. A `request` id makes the call idempotent: a repeat returns the first answer.
    /// `step` is the learner step that trains them (see `learnerRegistered`).
    @discardableResult
    public func complete(actor: String, epoch e: Int, promptIDs: [Int], now: Double, request: String? = nil,
                         step: Int? = nil) throws -> (accepted: [Int], duplicates: Int) {
        if let request, let previous = answered[request] { return (previous, 0) }
        var record: [String: Any] = ["t": "done", "epoch": e, "ids": promptIDs]
        if let request { record["req"] = request }
        if let step { record["step"] = step }
        try append(record)
        let r = applyDone(epoch: e, ids: promptIDs, step: step)
        if let request { remember(request, r.accepted) }
        return r
    }

    /// The learner's hello: a new incarnation (a learner process started or restarted from checkpoint
    /// step `checkpointStep`) gets the prompts counted for later steps back; the same incarnation with a
    /// newer checkpoint makes the prompts of the steps it saved final. Returns the prompts given back.
    @discardableResult
    public func learnerRegistered(incarnation: String, checkpointStep: Int) throws -> Int {
        if incarnation != learnerIncarnation {
            try append(["t": "learner", "inc": incarnation, "ckpt": checkpointStep])
            return applyLearnerRestart(incarnation: incarnation, checkpointStep: checkpointStep)
        }
        if checkpointStep > durableStep {
            try append(["t": "durable", "step": checkpointStep])
            applyDurable(checkpointStep)
        }
        return 0
    }

    /// Returns prompts that were leased but will not be consumed (the learner dropped their stale
    /// rollouts) to the front of the pending queue.
    public func release(epoch e: Int, promptIDs: [Int]) throws {
        try append(["t": "release", "epoch": e, "ids": promptIDs])
        applyRelease(promptIDs.map { Slot(epoch: e, id: $0) })
    }

    /// Leases older than `maxAge` seconds whose prompts are still unfinished go back to pending: their
    /// rollouts were lost (a learner restart, a lost reply) even though the actor is alive.
    @discardableResult
    public func expireLeases(now: Double, maxAge: Double) throws -> [Int] {
        let live = Set(leasedBy.values.map(\.lease))
        let old = leaseTimes.filter { now - $0.value > maxAge && live.contains($0.key) }.map(\.key).sorted()
        for lease in old {
            try append(["t": "expire_lease", "lease": lease])
            applyExpireLease(lease)
        }
        for lease in leaseTimes.keys where !live.contains(lease) { leaseTimes[lease] = nil }
        return old
    }

    public func heartbeat(actor: String, now: Double) { lastSeen[actor] = now }

    /// Actors silent for more than `timeout` seconds are declared dead; their leases return to pending.
    public func expire(now: Double, timeout: Double) throws -> [String] {
        let dead = lastSeen.filter { now - $0.value > timeout }.map(\.key).sorted()
        for actor in dead {
            try append(["t": "expire", "actor": actor])
            applyExpire(actor)
        }
        return dead
    }

    /// The whole state as one journal record. Id sets are stored as runs [epoch, first id, count]
    /// (the pending queue in leasing order), so a snapshot of a regular state stays small.
    func snapshot() -> [String: Any] {
        var r: [String: Any] = ["t": "snapshot", "epoch": epoch, "queued_epoch": queuedEpoch, "completed": completed, "duplicates": duplicates,
                                "next_lease": nextLease, "rewound": rewound, "reclaimed": reclaimed, "durable": durableStep,
                                "actors": lastSeen.keys.sorted()]
        if let learnerIncarnation { r["inc"] = learnerIncarnation }
        r["done"] = Self.runs(done.keys.sorted().flatMap { e in done[e]!.sorted().map { Slot(epoch: e, id: $0) } })
        r["pending"] = Self.runs(pending.ordered())
        var byLease: [Int: (actor: String, slots: [Slot])] = [:]
        for (slot, holder) in leasedBy { byLease[holder.lease, default: (holder.actor, [])].slots.append(slot) }
        r["leases"] = byLease.keys.sorted().map { l -> [String: Any] in
            ["lease": l, "actor": byLease[l]!.actor, "slots": Self.runs(byLease[l]!.slots.sorted())]
        }
        r["counted"] = countedAt.keys.sorted().map { [$0.epoch, $0.id, countedAt[$0]!] }
        r["answered"] = answeredOrder.map { ["req": $0, "ids": answered[$0]!] as [String: Any] }
        r["lease_requests"] = lastLeaseRequest.keys.sorted().map { ["actor": $0, "req": lastLeaseRequest[$0]!.request, "lease": lastLeaseRequest[$0]!.lease] as [String: Any] }
        return r
    }

    func applySnapshot(_ r: [String: Any], now: Double) throws {
        func bad(_ key: String) -> FileError { FileError(path: "journal", problem: "snapshot record: \(key) is missing or malformed (corrupt journal; nothing was replayed)") }
        func int(_ key: String) throws -> Int { guard let v = r[key] as? Int else { throw bad(key) }; return v }
        func slots(_ runs: Any?, _ key: String) throws -> [Slot] {
            guard let runs = runs as? [[Int]], runs.allSatisfy({ $0.count == 3 && $0[2] >= 0 }) else { throw bad(key) }
            return runs.flatMap { run in (0..<run[2]).map { Slot(epoch: run[0], id: run[1] + $0) } }
        }
        epoch = try int("epoch"); queuedEpoch = try int("queued_epoch"); completed = try int("completed"); duplicates = try int("duplicates")
        nextLease = try int("next_lease"); rewound = try int("rewound"); reclaimed = try int("reclaimed"); durableStep = try int("durable")
        learnerIncarnation = r["inc"] as? String
        done = [:]
        for s in try slots(r["done"], "done") { done[s.epoch, default: []].insert(s.id) }
        pending.replace(with: try slots(r["pending"], "pending"))
        guard let leases = r["leases"] as? [[String: Any]], let counted = r["counted"] as? [[Int]], let answers = r["answered"] as? [[String: Any]],
              let requests = r["lease_requests"] as? [[String: Any]], let actors = r["actors"] as? [String] else { throw bad("leases, counted, answered, lease_requests or actors") }
        leasedBy = [:]; leaseTimes = [:]
        for l in leases {
            guard let id = l["lease"] as? Int, let actor = l["actor"] as? String else { throw bad("leases") }
            for s in try slots(l["slots"], "leases") { leasedBy[s] = (actor, id) }
            leaseTimes[id] = now
        }
        countedAt = [:]
        for c in counted {
            guard c.count == 3 else { throw bad("counted") }
            countedAt[Slot(epoch: c[0], id: c[1])] = c[2]
        }
        answered = [:]; answeredOrder = []
        for a in answers {
            guard let req = a["req"] as? String, let ids = a["ids"] as? [Int] else { throw bad("answered") }
            remember(req, ids)
        }
        lastLeaseRequest = [:]
        for q in requests {
            guard let actor = q["actor"] as? String, let req = q["req"] as? String, let lease = q["lease"] as? Int else { throw bad("lease_requests") }
            lastLeaseRequest[actor] = (req, lease)
        }
        lastSeen = Dictionary(uniqueKeysWithValues: actors.map { ($0, now) })
        recountProgress()
    }

    func recountProgress() {
        doneInEpochByShard = Array(repeating: 0, count: shards)
        for id in done[epoch] ?? [] { doneInEpochByShard[shard(of: id)] += 1 }
    }

    /// Slots as runs of consecutive ids within one epoch, in the given order: [epoch, first id, count].
    static func runs(_ slots: [Slot]) -> [[Int]] {
        var out: [[Int]] = []
        for s in slots {
            if let last = out.last, last[0] == s.epoch, last[1] + last[2] == s.id {
                out[out.count - 1][2] += 1
            } else {
                out.append([s.epoch, s.id, 1])
            }
        }
        return out
    }

    /// done / leased / total per shard for the current (oldest open) epoch.
    public var progress: [ShardProgress] {
        var p = (0..<shards).map { s in
            ShardProgress(done: doneInEpochByShard[s], leased: 0, total: promptCount / shards + (s < promptCount % shards ? 1 : 0))
        }
        let d = done[epoch] ?? []
        for slot in leasedBy.keys where slot.epoch == epoch && !d.contains(slot.id) { p[shard(of: slot.id)].leased += 1 }
        return p
    }

    /// Prompts out on lease, over all open epochs.
    public var leasedCount: Int { leasedBy.count }
    public var pendingCount: Int { pending.count }
}

/// The prompts waiting to be leased, in leasing order, with O(1) removal from anywhere: a slot that
/// leaves the queue (leased, or completed while waiting) only loses its membership, and its place in
/// the order is skipped when the front reaches it. The previous array scanned the whole queue on every
/// lease and completion, which at 10^6 prompts is the coordinator's whole budget.
struct PendingQueue {
    typealias Slot = PromptLedger.Slot
    /// The order: `front` holds prompts put back (its last element leases first), then `order` from `head`.
    private var front: [Slot] = []
    private var order: [Slot] = []
    private var head = 0
    private var members = Set<Slot>()

    var count: Int { members.count }
    var isEmpty: Bool { members.isEmpty }

    mutating func replace(with slots: [Slot]) {
        front = []
        order = slots
        head = 0
        members = Set(slots)
    }

    mutating func remove(_ slot: Slot) { members.remove(slot) }

    /// The waiting slots in leasing order.
    func ordered() -> [Slot] {
        var out: [Slot] = [], seen = Set<Slot>()
        for s in front.reversed() where members.contains(s) && seen.insert(s).inserted { out.append(s) }
        for s in order[head...] where members.contains(s) && seen.insert(s).inserted { out.append(s) }
        return out
    }

    /// Puts `slots` at the front, `slots[0]` first.
    mutating func prepend(_ slots: [Slot]) {
        for s in slots.reversed() where members.insert(s).inserted { front.append(s) }
    }

    /// Drops departed slots from the front, so that the next lookups start at a waiting one.
    private mutating func skipDeparted() {
        while let s = front.last, !members.contains(s) { front.removeLast() }
        while head < order.count, !members.contains(order[head]) { head += 1 }
        if head > 4096 && head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }

    mutating func first() -> Slot? {
        skipDeparted()
        return front.last ?? (head < order.count ? order[head] : nil)
    }

    /// Up to `n` waiting slots of `epoch` from the front, in order, without removing them.
    mutating func prefix(_ n: Int, epoch: Int) -> [Slot] {
        skipDeparted()
        var out: [Slot] = [], seen = Set<Slot>()
        func take(_ s: Slot) -> Bool {
            guard out.count < n else { return false }
            guard members.contains(s), seen.insert(s).inserted else { return true }
            guard s.epoch == epoch else { return false }
            out.append(s)
            return true
        }
        for s in front.reversed() where !take(s) { return out }
        var i = head
        while i < order.count, take(order[i]) { i += 1 }
        return out
    }
}
