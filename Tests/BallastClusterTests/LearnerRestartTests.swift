import BallastCluster
import BallastRandom
import BallastWire
import Foundation
import Testing

/// Exactly-once training across learner crashes, on the ledger and the service, without sockets.
@Suite("Coordinator: learner restarts")
struct LearnerRestartTests {
    /// A simulated run: a learner leases a batch, counts it for step s + 1, "trains" it (records the
    /// prompts under that step), saves a checkpoint every `every` steps and crashes at random; a crash
    /// loses the steps after the checkpoint, and the restarted process registers as a new incarnation.
    /// At the end every prompt of every epoch must have been trained exactly once in the history that
    /// survived — before the fix the prompts of the lost steps stayed counted and were never trained.
    @Test("random learner crashes: every prompt is trained exactly once per epoch in the surviving history", arguments: [UInt64(1), 2, 3, 4])
    func randomCrashes(seed: UInt64) throws {
        var rng = SeededRNG(seed: seed)
        let journal = MemoryJournal()
        var ledger = try PromptLedger(promptCount: 23, shards: 3, epochs: 3, journal: journal)
        let batch = 4, every = 3
        var incarnation = 0
        var step = 0, checkpoint = 0
        var history: [Int: [[Int]]] = [:]  // step → [epoch, id] trained there
        try ledger.learnerRegistered(incarnation: "L0", checkpointStep: 0)
        var crashes = 0, rounds = 0
        while !ledger.finished {
            rounds += 1
            #expect(rounds < 10_000)
            if rounds > 10_000 { break }
            // Lease until a batch is in hand (leases may span the epoch boundary: one lease per epoch).
            var got: [(epoch: Int, ids: [Int])] = []
            while got.map(\.ids.count).reduce(0, +) < batch, let l = try ledger.lease(actor: "a", max: batch - got.map(\.ids.count).reduce(0, +), now: 0) {
                got.append((l.epoch, l.promptIDs))
            }
            if got.isEmpty { break }
            var trained: [[Int]] = []
            for g in got {
                let r = try ledger.complete(actor: "L\(incarnation)", epoch: g.epoch, promptIDs: g.ids, now: 0, request: "s\(step + 1)-e\(g.epoch)", step: step + 1)
                trained += r.accepted.map { [g.epoch, $0] }
            }
            step += 1
            history[step] = trained
            if step % every == 0 {
                checkpoint = step
                try ledger.learnerRegistered(incarnation: "L\(incarnation)", checkpointStep: checkpoint)
            }
            if rng.next() % 5 == 0 {  // crash: steps after the checkpoint are lost with the process
                crashes += 1
                for s in history.keys where s > checkpoint { history[s] = nil }
                step = checkpoint
                incarnation += 1
                try ledger.learnerRegistered(incarnation: "L\(incarnation)", checkpointStep: checkpoint)
            }
            if rng.next() % 7 == 0 {  // the coordinator restarts too: replaying the journal gives the same state
                let again = try PromptLedger(promptCount: 23, shards: 3, epochs: 3, journal: journal)
                #expect(again.completed == ledger.completed && again.epoch == ledger.epoch && again.pendingCount == ledger.pendingCount)
                #expect(again.learnerIncarnation == ledger.learnerIncarnation && again.durableStep == ledger.durableStep)
                ledger = again
            }
        }
        let all = history.values.flatMap { $0 }
        #expect(crashes >= 2)
        #expect(all.count == 23 * 3 && Set(all).count == 23 * 3, "trained \(all.count) prompts, \(Set(all).count) distinct, of \(23 * 3)")
        #expect(ledger.completed == 23 * 3 && ledger.rewound > 0)
    }

    @Test("a budget that finished is reopened by a restart, and the lost prompts are leased first")
    func reopensFinishedBudget() throws {
        let ledger = try PromptLedger(promptCount: 6, epochs: 2, budget: 8, journal: MemoryJournal())
        try ledger.learnerRegistered(incarnation: "A", checkpointStep: 0)
        for (step, ids) in [(1, [0, 1, 2, 3]), (2, [4, 5])] {
            let l = try #require(try ledger.lease(actor: "x", max: ids.count, now: 0))
            #expect(l.promptIDs == ids)
            try ledger.complete(actor: "A", epoch: 0, promptIDs: ids, now: 0, step: step)
        }
        try ledger.learnerRegistered(incarnation: "A", checkpointStep: 2)  // steps 1-2 are saved
        let l = try #require(try ledger.lease(actor: "x", max: 2, now: 0))
        #expect(l.epoch == 1)
        try ledger.complete(actor: "A", epoch: 1, promptIDs: l.promptIDs, now: 0, step: 3)
        #expect(ledger.finished && ledger.epoch == 1)
        // The learner dies before saving step 3 and comes back from step 2.
        #expect(try ledger.learnerRegistered(incarnation: "B", checkpointStep: 2) == 2)
        #expect(!ledger.finished && ledger.completed == 6)
        let again = try #require(try ledger.lease(actor: "x", max: 4, now: 0))
        #expect(again.epoch == 1 && again.promptIDs == [0, 1])
    }

    @Test("the service un-counts on a new learner incarnation and refuses counts from the replaced one")
    func serviceRefusesThePreviousIncarnation() throws {
        let svc = CoordinatorService(ledger: try PromptLedger(promptCount: 8, journal: MemoryJournal()))
        func hello(_ id: String, _ ckpt: Int) -> LearnerHello {
            var h = learnerHello
            h.incarnation = .init(id: id, checkpointStep: ckpt)
            return h
        }
        func count(_ who: String, _ ids: [Int], step: Int) throws -> ConsumptionReply {
            try decoded(try svc.handle(message("L", Consumption(policyVersion: 0, id: who, epoch: 0, promptIDs: ids, step: step)), now: 1), as: ConsumptionReply.self)
        }
        _ = try svc.handle(message("L", hello("one", 0)), now: 0)
        _ = try svc.handle(message("A", ready("A", 8)), now: 0)
        #expect(try count("one", [0, 1, 2, 3], step: 1).accepted == [0, 1, 2, 3])
        #expect(try count("one", [4, 5], step: 2).accepted == [4, 5])
        let welcome = try decoded(try svc.handle(message("L", hello("two", 1)), now: 2), as: LearnerWelcome.self)
        #expect(welcome.progress.completed == 4)  // step 2's prompts come back
        #expect(try count("one", [6, 7], step: 3).accepted == [])  // the old process, still talking
        #expect(try count("two", [4, 5, 6, 7], step: 2).accepted == [4, 5, 6, 7])
        let st = svc.status(now: 3)
        #expect(st["prompts_rewound"] as? Int == 2 && st["completed"] as? Int == 8)
    }

    /// Under flow control the leases out when the learner died held all the credit; their rollouts
    /// died in the learner's queue. Before the fix every lease request waited until `lease_timeout`
    /// (600 s by default) expired them.
    @Test("a new learner process takes back every lease still out, so the actors get work at once")
    func restartReclaimsOutstandingLeases() throws {
        let journal = MemoryJournal()
        let svc = CoordinatorService(ledger: try PromptLedger(promptCount: 20, journal: journal), leaseTimeout: 600)
        func hello(_ id: String) throws {
            var h = learnerHello
            h.policyVersion = 0
            h.incarnation = .init(id: id, checkpointStep: 0)
            h.flow = .init(batchPrompts: 4, maxPolicyLag: 1)  // (1 + 1) × 4 = 8 prompts of credit
            _ = try svc.handle(message("L", h), now: 0)
        }
        func lease(_ t: Double) throws -> [Int]? {
            try decoded(try svc.handle(message("A", LeaseRequest(policyVersion: 0, id: "A", capacity: 4)), now: t), as: LeaseReply.self).grant?.promptIDs
        }
        try hello("one")
        #expect(try lease(1) == [0, 1, 2, 3] && lease(1) == [4, 5, 6, 7])
        #expect(try lease(2) == nil, "the credit is used up")
        try hello("two")  // the learner died with those rollouts queued, and came back
        #expect(try lease(3) == [0, 1, 2, 3])
        #expect(try lease(3) == [4, 5, 6, 7])
        let st = svc.status(now: 3)
        #expect(st["prompts_reclaimed"] as? Int == 8 && st["leased"] as? Int == 8)
        // Replaying the journal reaches the same state.
        let again = try PromptLedger(promptCount: 20, journal: journal)
        #expect(again.leasedCount == 8 && again.pendingCount == svc.ledger.pendingCount && again.reclaimed == 8)
    }
}
