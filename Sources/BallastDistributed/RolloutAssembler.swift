import BallastCluster
import BallastRL
import BallastWire
import Foundation

/// The learner's bookkeeping between the rollout socket and the trainer, free of sockets so that it
/// is tested directly: a bounded queue of received rollout messages (stale ones dropped by the
/// staleness policy and their prompts handed back), batches of exactly `want` prompts cut from it
/// (a message that overshoots is split and its rest carried into the next batch), counted with the
/// coordinator per epoch before training, and only the rows that counted — each prompt once, from
/// the first message that holds it — trained on; a batch short of `want` counted prompts waits for
/// more rollouts.
struct RolloutAssembler {
    struct Incoming {
        var batch: RolloutBatch
        var promptIDs: [Int]  // per row
        var epoch: Int
        var lease: Int

        init(batch: RolloutBatch, promptIDs: [Int], epoch: Int, lease: Int) {
            self.batch = batch
            self.promptIDs = promptIDs
            self.epoch = epoch
            self.lease = lease
        }

        init(_ m: RolloutMessage) { self.init(batch: RolloutBatch(m), promptIDs: m.promptIDs, epoch: m.epoch, lease: m.lease) }

        var prompts: Int { Set(promptIDs).count }
    }

    /// What a batch trains on: the rows that counted, each row's loss weight, the prompts taken (those
    /// that had counted before included) and the policy lag of every message it took rows from.
    struct Assembled {
        var batch: RolloutBatch
        var weights: [Double]
        var prompts: Int
        var lags: [Int]
        /// [epoch, prompt id] of each prompt trained on, once each (the learner logs them per step).
        var trained: [[Int]]

        static let empty = Assembled(batch: RolloutBatch.gather([]), weights: [], prompts: 0, lags: [], trained: [])
    }

    var queue: BoundedRolloutQueue<Incoming>
    /// Prompts held before the learner stops reading rollouts (≥ one batch + one lease, so that a full
    /// queue always holds a trainable batch).
    let promptCapacity: Int
    /// The part of a message beyond the last batch's size, trained on next (so that every step has
    /// exactly train.batch_size prompts, as in the single-process run).
    private(set) var carry: (item: Incoming, weight: Double)?

    /// The trained model's vocabulary and context: a row outside them would trip the model's preconditions.
    let vocabulary: Int, positions: Int

    init(promptCapacity: Int, policy: StalenessPolicy, vocabulary: Int = Int(Int32.max), positions: Int = .max) {
        self.promptCapacity = promptCapacity
        self.vocabulary = vocabulary
        self.positions = positions
        queue = BoundedRolloutQueue(capacity: promptCapacity, policy: policy)
    }

    var queuedPrompts: Int { queue.items.reduce(carry?.item.prompts ?? 0) { $0 + $1.item.prompts } }
    var isFull: Bool { queuedPrompts >= promptCapacity }

    /// Queues a decoded message; one whose rows the model cannot take (token ids outside the vocabulary,
    /// sequences longer than the context) is rejected whole.
    mutating func offer(_ m: RolloutMessage) throws {
        for i in 0..<m.rows {
            let row = m.tokens[m.tokenOffsets[i]..<m.tokenOffsets[i + 1]]
            guard row.count <= positions else {
                throw WireError.payload("rollout: row \(i) has \(row.count) tokens, beyond the model's \(positions) positions")
            }
            if let t = row.first(where: { $0 < 0 || Int($0) >= vocabulary }) {
                throw WireError.payload("rollout: row \(i) holds token id \(t), outside the vocabulary of \(vocabulary)")
            }
        }
        queue.offer(Incoming(m), version: Int(m.policyVersion))
    }

    /// Removes rollouts too stale to train at `learnerVersion`; returns their prompts per epoch, to be
    /// handed back to the coordinator.
    mutating func prune(learnerVersion: Int) -> [(epoch: Int, ids: [Int])] {
        queue.prune(learnerVersion: learnerVersion).map { ($0.epoch, Array(Set($0.promptIDs)).sorted()) }
    }

    /// Splits a message after its first `n` prompts (rows of one prompt stay together).
    static func split(_ item: Incoming, after n: Int) -> (Incoming, Incoming) {
        var seen: [Int] = []
        for id in item.promptIDs where !seen.contains(id) { seen.append(id) }
        let first = Set(seen.prefix(n))
        func part(_ keep: (Int) -> Bool) -> Incoming {
            let rows = item.promptIDs.indices.filter { keep(item.promptIDs[$0]) }
            return Incoming(batch: RolloutBatch.gather(rows.map { (item.batch, $0) }), promptIDs: rows.map { item.promptIDs[$0] }, epoch: item.epoch, lease: item.lease)
        }
        return (part { first.contains($0) }, part { !first.contains($0) })
    }

    /// Rows counted for the next step while its batch is still short of `want` prompts (some prompts
    /// taken had counted before: delivered twice, or re-leased while their first rollout was on the
    /// way); kept until more rollouts complete the batch, so that every step trains exactly
    /// `train.batch_size` prompts and the run ends at `train.steps`.
    private(set) var held = Assembled.empty
    var heldPrompts: Int { held.trained.count }

    /// Takes rollouts until `want` prompts have counted (each taken prompt reported per epoch with an
    /// idempotency key naming the learner version, the messages' leases and the prompts, so a retried
    /// report is answered the same) and returns the rows that counted; nil while fewer have (what
    /// counted is held for the next call). `release` hands back the prompts of messages found stale on the way.
    mutating func next(want: Int, learnerVersion: Int, release: (_ epoch: Int, _ ids: [Int]) throws -> Void,
                       count: (_ epoch: Int, _ ids: [Int], _ request: String) throws -> [Int]) throws -> Assembled? {
        var rows: [(RolloutBatch, Int, Double)] = held.batch.count == 0 ? [] : (0..<held.batch.count).map { (held.batch, $0, held.weights[$0]) }
        while heldPrompts < want {
            let need = want - heldPrompts
            var taken: [(item: Incoming, weight: Double)] = []
            var prompts = 0
            func add(_ t: (item: Incoming, weight: Double)) {
                let n = t.item.prompts
                if prompts + n > need {
                    let (now, later) = Self.split(t.item, after: need - prompts)
                    taken.append((now, t.weight))
                    carry = (later, t.weight)
                    prompts = need
                } else {
                    taken.append(t)
                    prompts += n
                }
            }
            if let c = carry { carry = nil; add(c) }
            while prompts < need, !queue.items.isEmpty {
                let r = queue.take(max: 1, learnerVersion: learnerVersion)
                for d in r.dropped { try release(d.epoch, Array(Set(d.promptIDs)).sorted()) }
                for t in r.kept { add(t) }
            }
            if taken.isEmpty { break }
            // Count first, per epoch; only prompts that counted are trained on.
            var accepted = Set<[Int]>()  // [epoch, id]
            for epoch in Set(taken.map(\.item.epoch)).sorted() {
                let group = taken.filter { $0.item.epoch == epoch }
                let ids = Array(Set(group.flatMap(\.item.promptIDs))).sorted()
                // The learner version makes a later report of the same leases and prompts (their rollouts
                // delivered twice) a new question, which the coordinator answers "already counted"; a
                // retry within the step keeps the key and gets the first answer.
                let request = "v\(learnerVersion)-e\(epoch)-l" + group.map { "\($0.item.lease)" }.joined(separator: ",") + "-p\(ids.first!)-\(ids.count)"
                for id in try count(epoch, ids, request) { accepted.insert([epoch, id]) }
            }
            // A prompt re-leased while its first rollout was on the way can arrive twice in one batch: the
            // first message that holds it owns it, so it is trained on once, as it was counted once.
            var owner: [[Int]: Int] = [:]
            for (i, t) in taken.enumerated() { for id in t.item.promptIDs where owner[[t.item.epoch, id]] == nil { owner[[t.item.epoch, id]] = i } }
            for (i, (item, weight)) in taken.enumerated() {
                for r in 0..<item.batch.count where accepted.contains([item.epoch, item.promptIDs[r]]) && owner[[item.epoch, item.promptIDs[r]]] == i {
                    rows.append((item.batch, r, weight))
                }
            }
            held = Assembled(batch: RolloutBatch.gather(rows.map { ($0.0, $0.1) }), weights: rows.map(\.2), prompts: held.prompts + prompts,
                             lags: held.lags + taken.map { learnerVersion - $0.item.batch.policyVersion },
                             trained: (held.trained + owner.filter { accepted.contains($0.key) }.keys).sorted { ($0[0], $0[1]) < ($1[0], $1[1]) })
        }
        guard heldPrompts >= want, want > 0 else { return nil }
        defer { held = .empty }
        return held
    }
}
