import BallastRandom
import Foundation
import Testing
@testable import BallastCluster

/// Journal compaction: the journal is rewritten as one snapshot record every `compactEvery` records,
/// and nothing a coordinator decides may depend on whether (or when) that happened.
@Suite("Coordinator: journal compaction")
struct JournalCompactionTests {
    /// The state that a replay must reproduce (the actors heard from are only a liveness hint).
    func state(_ l: PromptLedger) -> NSDictionary {
        var s = l.snapshot()
        s["actors"] = nil
        return NSDictionary(dictionary: s)
    }

    /// Per-shard progress of the current epoch by looking at every prompt (what `progress` computed on
    /// every status before it was kept incrementally).
    func bruteForceProgress(_ l: PromptLedger) -> [PromptLedger.ShardProgress] {
        var p = [PromptLedger.ShardProgress](repeating: .init(), count: l.shards)
        let d = l.done[l.epoch] ?? []
        for id in 0..<l.promptCount {
            p[l.shard(of: id)].total += 1
            if d.contains(id) { p[l.shard(of: id)].done += 1 } else if l.leasedBy[.init(epoch: l.epoch, id: id)] != nil { p[l.shard(of: id)].leased += 1 }
        }
        return p
    }

    /// Random leases, completions (retried, duplicated, counted for learner steps), releases, learner
    /// restarts and checkpoints, lease and actor expiry, against two ledgers: one compacting every few
    /// records, one never. Every answer must agree, and so must the state after restarting both from
    /// their journals at random points.
    @Test("a compacting ledger answers every operation as one that never compacts, across restarts", arguments: [UInt64(1), 2, 3, 4, 5])
    func compactionIsInvisible(seed: UInt64) throws {
        var rng = SeededRNG(seed: seed)
        func pick(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
        let promptCount = 11, epochs = 3
        let ja = MemoryJournal(), jb = MemoryJournal()
        var a = try PromptLedger(promptCount: promptCount, shards: 3, epochs: epochs, budget: 29, journal: ja, compactEvery: 5)
        var b = try PromptLedger(promptCount: promptCount, shards: 3, epochs: epochs, budget: 29, journal: jb, compactEvery: 1_000_000)
        var now = 0.0, step = 0, incarnation = 0, restarts = 0
        try a.learnerRegistered(incarnation: "L0", checkpointStep: 0)
        try b.learnerRegistered(incarnation: "L0", checkpointStep: 0)
        for op in 0..<600 where !b.finished {
            now += Double(pick(3))
            let actor = "A\(pick(3))"
            switch pick(10) {
            case 0...3:
                let (max, outstanding, request) = (1 + pick(4), pick(4) == 0 ? 6 : nil, "\(actor)-\(pick(6))")
                let la = try a.lease(actor: actor, max: max, now: now, outstanding: outstanding, request: request)
                let lb = try b.lease(actor: actor, max: max, now: now, outstanding: outstanding, request: request)
                #expect(la == lb, "op \(op): lease")
            case 4...6:
                let e = b.epoch + pick(2)
                let ids = (0..<(1 + pick(4))).map { _ in pick(promptCount) }
                let request = pick(3) == 0 ? "c\(pick(5))" : nil
                if pick(2) == 0 { step += 1 }
                let ca = try a.complete(actor: "L", epoch: e, promptIDs: ids, now: now, request: request, step: step)
                let cb = try b.complete(actor: "L", epoch: e, promptIDs: ids, now: now, request: request, step: step)
                #expect(ca.accepted == cb.accepted && ca.duplicates == cb.duplicates, "op \(op): complete")
            case 7:
                let ids = (0..<(1 + pick(3))).map { _ in pick(promptCount) }, e = b.epoch
                try a.release(epoch: e, promptIDs: ids)
                try b.release(epoch: e, promptIDs: ids)
            case 8:
                if pick(2) == 0 { incarnation += 1 }  // a restarted learner, or the same one checkpointing
                let ckpt = max(0, step - pick(3))
                let ra = try a.learnerRegistered(incarnation: "L\(incarnation)", checkpointStep: ckpt)
                let rb = try b.learnerRegistered(incarnation: "L\(incarnation)", checkpointStep: ckpt)
                #expect(ra == rb, "op \(op): learner registration")
            default:
                #expect(try a.expireLeases(now: now, maxAge: 4) == b.expireLeases(now: now, maxAge: 4), "op \(op): lease expiry")
                #expect(try a.expire(now: now, timeout: 6) == b.expire(now: now, timeout: 6), "op \(op): actor expiry")
            }
            #expect(state(a) == state(b), "op \(op): state")
            for l in [a, b] {
                // every lease out can expire
                #expect(Set(l.leasedBy.values.map(\.lease)).isSubset(of: l.leaseTimes.keys), "op \(op): a lease out without a time")
                #expect(l.progress == bruteForceProgress(l), "op \(op): the incremental per-shard progress")
            }
            if pick(15) == 0 {  // both coordinators restart
                restarts += 1
                a = try PromptLedger(promptCount: promptCount, shards: 3, epochs: epochs, budget: 29, journal: ja, now: now, compactEvery: 5)
                b = try PromptLedger(promptCount: promptCount, shards: 3, epochs: epochs, budget: 29, journal: jb, now: now, compactEvery: 1_000_000)
                #expect(state(a) == state(b), "op \(op): state after a restart")
                #expect(a.progress == bruteForceProgress(a) && b.progress == bruteForceProgress(b), "op \(op): progress after a restart")
            }
        }
        #expect(a.compactions > 0 || restarts > 0)
        #expect(ja.lines.count <= 5 + 1, "the compacting journal holds a snapshot and the records since")
        #expect(a.completed == b.completed && a.epoch == b.epoch && a.duplicates == b.duplicates)
    }

    @Test("a file journal compacts in place; replay after the compaction is exact and appends continue after it")
    func fileJournalCompaction() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ballast-compaction-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/coordinator.journal"
        let ledger = try PromptLedger(promptCount: 1000, epochs: 2, journal: FileJournal(path: path), compactEvery: 50)
        for i in 0..<300 {
            let l = try #require(try ledger.lease(actor: "a\(i % 7)", max: 4, now: 0))
            if i % 5 != 0 { try ledger.complete(actor: "L", epoch: l.epoch, promptIDs: l.promptIDs, now: 0) }  // every fifth lease stays out
        }
        #expect(ledger.compactions >= 10)  // 540 records
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count <= 50 && lines[0].contains("\"t\":\"snapshot\""))
        let again = try PromptLedger(promptCount: 1000, epochs: 2, journal: FileJournal(path: path))
        #expect(state(again) == state(ledger))
        // Epoch 0 was leased whole (50 leases of it still out), epoch 1's first 200 prompts (10 leases out).
        #expect(again.leasedCount == 240 && again.completed == 960 && again.epoch == 0)
        let next = try #require(try again.lease(actor: "b", max: 4, now: 1))
        #expect(next.epoch == 1 && next.promptIDs == [200, 201, 202, 203])
        try again.complete(actor: "L", epoch: 1, promptIDs: next.promptIDs, now: 1)
        let third = try PromptLedger(promptCount: 1000, epochs: 2, journal: FileJournal(path: path))
        #expect(state(third) == state(again) && third.completed == 964)
    }
}
