import BallastCluster
import BallastFormats
import BallastWire
import Foundation
import Testing
@testable import BallastDistributed

/// A rollout message whose rows answer `ids` (one row per entry; repeat an id for K > 1), sampled by
/// policy `version`; each row's score is 100 · message + row, so a test can tell rows apart.
func rollout(_ ids: [Int], message: Int, version: Int = 0, epoch: Int = 0, lease: Int? = nil) -> RolloutMessage {
    let n = ids.count
    return RolloutMessage(policyVersion: UInt64(version), sequences: ids.map { [256, Int32($0), 257] }, promptTokens: Array(repeating: 2, count: n),
                          logp: Array(repeating: [-1], count: n), refLogp: Array(repeating: [-1], count: n), values: Array(repeating: [0], count: n),
                          scores: (0..<n).map { Double(100 * message + $0) }, gold: Array(repeating: 0, count: n), tasks: Array(repeating: "qa", count: n),
                          promptIDs: ids, epoch: epoch, lease: lease ?? message, actor: "a")
}

@Suite("Learner core: batches cut from received rollouts, counted before training")
struct RolloutAssemblerTests {
    func assembler(capacity: Int = 64, lag: Int = 2) -> RolloutAssembler {
        RolloutAssembler(promptCapacity: capacity, policy: StalenessPolicy(maxPolicyLag: lag))
    }

    /// Counts every prompt (a coordinator that has seen none of them), recording the reports.
    final class Coordinator {
        var reports: [(epoch: Int, ids: [Int], request: String)] = []
        var released: [(epoch: Int, ids: [Int])] = []
        var refuse: Set<Int> = []
        func count(_ epoch: Int, _ ids: [Int], _ request: String) -> [Int] {
            reports.append((epoch, ids, request))
            return ids.filter { !refuse.contains($0) }
        }
        func release(_ epoch: Int, _ ids: [Int]) { released.append((epoch, ids)) }
    }

    func next(_ a: inout RolloutAssembler, _ c: Coordinator, want: Int, version: Int = 0) throws -> RolloutAssembler.Assembled? {
        try a.next(want: want, learnerVersion: version, release: c.release, count: c.count)
    }

    @Test("a message that overshoots the batch is split, prompts with K rows stay whole, and the rest opens the next batch")
    func splitAndCarry() throws {
        var a = assembler()
        let c = Coordinator()
        try a.offer(rollout([1, 1, 2, 2, 3, 3], message: 0))  // K = 2
        try a.offer(rollout([4, 4, 5, 5], message: 1))
        #expect(a.queuedPrompts == 5)
        let first = try #require(try next(&a, c, want: 4))
        #expect(first.prompts == 4 && first.batch.count == 8)
        #expect(first.batch.scores == [0, 1, 2, 3, 4, 5, 100, 101], "message 0 whole, then prompt 4's two rows of message 1")
        #expect(c.reports.map(\.ids) == [[1, 2, 3, 4]] && c.reports[0].request == "v0-e0-l0,1-p1-4")
        #expect(a.queuedPrompts == 1, "prompt 5 carried")
        // Prompt 5 alone is not a batch: it is counted and held until more rollouts arrive.
        #expect(try next(&a, c, want: 4) == nil)
        #expect(c.reports[1].ids == [5] && a.heldPrompts == 1 && a.queuedPrompts == 0)
        try a.offer(rollout([6, 6, 7, 7, 8, 8], message: 2))
        let second = try #require(try next(&a, c, want: 4))
        #expect(second.batch.scores == [102, 103, 200, 201, 202, 203, 204, 205] && c.reports[2].ids == [6, 7, 8])
        #expect(second.trained == [[0, 5], [0, 6], [0, 7], [0, 8]] && a.heldPrompts == 0)
    }

    @Test("only prompts the coordinator counted are trained, and a prompt that arrives twice in a batch trains once")
    func countedOnceTrainedOnce() throws {
        var a = assembler()
        let c = Coordinator()
        c.refuse = [2]  // counted before (a re-lease of a prompt already trained this epoch)
        try a.offer(rollout([1, 2], message: 0))
        try a.offer(rollout([3, 1], message: 1, lease: 7))  // prompt 1 again: re-leased while its first rollout was on the way
        // want 4: both messages are taken whole (two prompts each), so prompt 1 is in the batch twice;
        // two prompts count, and the batch waits for two more.
        #expect(try next(&a, c, want: 4) == nil)
        #expect(a.queuedPrompts == 0 && a.heldPrompts == 2)
        #expect(c.reports.count == 1 && c.reports[0].ids == [1, 2, 3])
        try a.offer(rollout([4, 5], message: 2))
        let got = try #require(try next(&a, c, want: 4))
        #expect(c.reports.count == 2 && c.reports[1].ids == [4, 5])
        #expect(got.batch.scores == [0, 100, 200, 201], "prompt 1 from the first message that holds it, prompt 3, then 4 and 5; not prompt 2")
        #expect(got.weights == [1, 1, 1, 1] && got.trained == [[0, 1], [0, 3], [0, 4], [0, 5]] && got.prompts == 6)
    }

    @Test("every prompt already counted: no batch and nothing held")
    func nothingNew() throws {
        var a = assembler()
        let c = Coordinator()
        c.refuse = [1, 2]
        try a.offer(rollout([1, 2], message: 0))
        #expect(try next(&a, c, want: 2) == nil)
        #expect(c.reports.count == 1 && a.heldPrompts == 0 && a.queuedPrompts == 0)
    }

    @Test("rollouts staler than max_policy_lag are dropped and their prompts handed back, per epoch")
    func staleReleased() throws {
        var a = assembler(lag: 1)
        let c = Coordinator()
        try a.offer(rollout([1, 2], message: 0, version: 3, epoch: 0))
        try a.offer(rollout([9, 8], message: 1, version: 5, epoch: 1))
        try a.offer(rollout([3], message: 2, version: 4, epoch: 1))
        let pruned = a.prune(learnerVersion: 5)
        #expect(pruned.map(\.epoch) == [0] && pruned.map(\.ids) == [[1, 2]] && a.queuedPrompts == 3)
        // At version 6 message 2 (version 4) is stale too: taken batches skip it and release it.
        #expect(try next(&a, c, want: 3, version: 6) == nil)
        #expect(c.released.map(\.ids) == [[3]] && a.heldPrompts == 2 && c.reports.map(\.ids) == [[8, 9]] && c.reports[0].epoch == 1)
        try a.offer(rollout([7], message: 3, version: 6, epoch: 1))
        let got = try #require(try next(&a, c, want: 3, version: 6))
        #expect(got.prompts == 3 && got.lags == [1, 0] && got.trained == [[1, 7], [1, 8], [1, 9]])
    }

    @Test("rows the model cannot take (token ids outside the vocabulary, sequences beyond the context) are rejected, not queued")
    func rejectsRowsTheModelCannotTake() throws {
        var a = RolloutAssembler(promptCapacity: 64, policy: StalenessPolicy(maxPolicyLag: 2), vocabulary: 259, positions: 3)
        var bad = rollout([1], message: 0)
        bad.sequences = [[256, 259, 257]]
        #expect(throws: WireError.self) { try a.offer(bad) }
        bad.sequences = [[256, -1, 257]]
        #expect(throws: WireError.self) { try a.offer(bad) }
        bad.sequences = [[256, 1, 2, 257]]
        #expect(throws: WireError.self) { try a.offer(bad) }
        #expect(a.queuedPrompts == 0)
        try a.offer(rollout([1], message: 1))
        #expect(a.queuedPrompts == 1)
    }

    @Test("a batch spanning two epochs is counted once per epoch")
    func perEpoch() throws {
        var a = assembler()
        let c = Coordinator()
        try a.offer(rollout([5, 6], message: 0, epoch: 0))
        try a.offer(rollout([5, 1], message: 1, epoch: 1))
        let got = try #require(try next(&a, c, want: 4))
        #expect(c.reports.map(\.epoch) == [0, 1] && c.reports.map(\.ids) == [[5, 6], [1, 5]])
        #expect(got.batch.count == 4, "prompt 5 of epoch 0 and of epoch 1 are different units")
    }

    @Test("down-weight mode keeps stale rollouts within the lag at decay^lag")
    func downweight() throws {
        var a = RolloutAssembler(promptCapacity: 64, policy: StalenessPolicy(maxPolicyLag: 2, mode: .downweight, decay: 0.5))
        let c = Coordinator()
        try a.offer(rollout([1], message: 0, version: 4))
        try a.offer(rollout([2], message: 1, version: 3))
        try a.offer(rollout([3], message: 2, version: 2))
        try a.offer(rollout([4], message: 3, version: 1))  // lag 3 > 2: dropped
        #expect(try next(&a, c, want: 4, version: 4) == nil, "three of four prompts: the batch waits")
        #expect(a.held.weights == [1, 0.5, 0.25] && a.held.batch.scores == [0, 100, 200] && c.released.map(\.ids) == [[4]])
    }

    @Test("against a real coordinator: prompts consumed once per epoch however often their rollouts arrive")
    func withCoordinator() throws {
        let svc = CoordinatorService(ledger: try PromptLedger(promptCount: 4, epochs: 2, journal: MemoryJournal()))
        func send(_ m: some WireMessage) throws -> Frame {
            let (e, p) = m.frame(sequence: 1).encode()
            let reply = try #require(try svc.handle([Data("learner".utf8), e, p], now: 0))
            return try Frame.decode(envelope: reply[0], payload: reply[1]).0
        }
        func lease(_ n: Int) throws -> LeaseReply.Grant { try #require(try LeaseReply(frame: try send(LeaseRequest(id: "a", capacity: n))).grant) }
        func count(_ epoch: Int, _ ids: [Int], _ request: String) throws -> [Int] {
            try ConsumptionReply(frame: try send(Consumption(policyVersion: 0, id: "learner", epoch: epoch, promptIDs: ids, request: request))).accepted
        }
        var a = assembler()
        let first = try lease(2)
        try a.offer(rollout(first.promptIDs, message: 0, lease: first.lease))
        try a.offer(rollout(first.promptIDs, message: 1, lease: first.lease))  // the same lease's rollouts delivered twice
        let got = try #require(try a.next(want: 2, learnerVersion: 0, release: { _, _ in }, count: count))
        #expect(got.batch.scores == [0, 1], "each prompt once, from the first message")
        #expect(try a.next(want: 2, learnerVersion: 1, release: { _, _ in }, count: count) == nil, "the retried message counted nothing new")
        #expect(svc.ledger.completed == 2 && a.heldPrompts == 0)
    }
}
