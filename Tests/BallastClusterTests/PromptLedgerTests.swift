import BallastCluster
import BallastFormats
import BallastKernels
import BallastRandom
import Foundation
import Testing

@Suite("Coordinator prompt ledger")
struct PromptLedgerTests {
    /// Random actors lease, complete (sometimes twice), die and get expired; every prompt must count
    /// exactly once per epoch, and the run must finish.
    @Test("every prompt counts once per epoch despite deaths, re-leases and duplicate completions", arguments: [UInt64(1), 2, 3])
    func exactlyOnce(seed: UInt64) throws {
        var rng = SeededRNG(seed: seed)
        let ledger = try PromptLedger(promptCount: 57, shards: 4, epochs: 2, journal: MemoryJournal())
        var counted: [Int: [Int: Int]] = [:]  // epoch → id → times accepted
        var acceptedTotal: [Int: Int] = [:]
        var held: [String: PromptLedger.Lease] = [:]
        var now = 0.0
        var alive = ["a", "b", "c"]
        var steps = 0
        while !ledger.finished && steps < 10_000 {
            steps += 1
            now += 1
            let actor = alive[Int(rng.next() % UInt64(alive.count))]
            switch rng.next() % 10 {
            case 0..<4:
                if held[actor] == nil, let l = try ledger.lease(actor: actor, max: 1 + Int(rng.next() % 6), now: now) { held[actor] = l }
            case 4..<8:
                if let l = held[actor] {
                    let r = try ledger.complete(actor: actor, epoch: l.epoch, promptIDs: l.promptIDs, now: now)
                    acceptedTotal[l.epoch, default: 0] += r.accepted.count
                    countAccepted(&counted, epoch: l.epoch, ids: l.promptIDs, accepted: r.accepted.count)
                    if rng.next() % 4 == 0 {  // a duplicate delivery of the same completion
                        let d = try ledger.complete(actor: actor, epoch: l.epoch, promptIDs: l.promptIDs, now: now)
                        #expect(d.accepted.isEmpty)
                    }
                    held[actor] = nil
                }
            case 8:
                // The actor dies holding its lease; it is expired and later replaced.
                held[actor] = nil
                alive.removeAll { $0 == actor }
                alive.append("\(actor)'")
                now += 100
                for (other, _) in held { ledger.heartbeat(actor: other, now: now) }
                for a in alive { ledger.heartbeat(actor: a, now: now) }
                _ = try ledger.expire(now: now, timeout: 50)
            default:
                for a in alive { ledger.heartbeat(actor: a, now: now) }
            }
        }
        #expect(ledger.finished, "run finished in \(steps) steps")
        for e in 0..<2 {
            let c = counted[e] ?? [:]
            #expect(c.count == 57 && c.values.allSatisfy { $0 == 1 }, "epoch \(e): \(c.count) prompts counted, max \(c.values.max() ?? 0)")
            #expect(acceptedTotal[e] == 57, "epoch \(e): the ledger accepted \(acceptedTotal[e] ?? 0) completions")
        }
    }

    /// Tracks which ids were accepted by replaying the ledger's own rule: the first `accepted` of the
    /// ids not yet counted in that epoch.
    func countAccepted(_ counted: inout [Int: [Int: Int]], epoch: Int, ids: [Int], accepted: Int) {
        var n = 0
        for id in ids where n < accepted && (counted[epoch]?[id] ?? 0) == 0 {
            counted[epoch, default: [:]][id] = 1
            n += 1
        }
    }

    @Test("a coordinator restarted from its journal resumes the same state and neither loses nor repeats work")
    func restart() throws {
        let dir = NSTemporaryDirectory() + "ballast-ledger-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/journal.jsonl"
        var ledger: PromptLedger? = try PromptLedger(promptCount: 20, shards: 3, epochs: 2, journal: FileJournal(path: path))
        let l1 = try #require(try ledger!.lease(actor: "a", max: 8, now: 0))
        try ledger!.complete(actor: "a", epoch: 0, promptIDs: l1.promptIDs, now: 1)
        let l2 = try #require(try ledger!.lease(actor: "b", max: 5, now: 1))  // outstanding at the crash
        let before = (ledger!.progress, ledger!.pendingCount, ledger!.epoch)
        ledger = nil
        // Crash mid-write: a torn last line must be ignored.
        let h = FileHandle(forWritingAtPath: path)!
        h.seekToEndOfFile()
        h.write(Data("{\"t\":\"done\",\"epoch\":0,\"ids\":[1".utf8))
        try h.close()
        let again = try PromptLedger(promptCount: 20, shards: 3, epochs: 2, journal: FileJournal(path: path), now: 10)
        #expect(again.progress == before.0 && again.pendingCount == before.1 && again.epoch == before.2)
        #expect(again.progress.map(\.done).reduce(0, +) == 8 && again.progress.map(\.leased).reduce(0, +) == 5)
        // b never comes back: its prompts are re-leased after the timeout, then everything completes once.
        _ = try again.expire(now: 100, timeout: 50)
        var total = 8
        while !again.finished {
            guard let l = try again.lease(actor: "c", max: 6, now: 101) else { break }
            total += try again.complete(actor: "c", epoch: l.epoch, promptIDs: l.promptIDs, now: 101).accepted.count
        }
        #expect(again.finished && total == 40)
        // b's late completion of the old lease counts as duplicates, not work.
        #expect(try again.complete(actor: "b", epoch: 0, promptIDs: l2.promptIDs, now: 102).accepted.isEmpty)
    }

    @Test func shardsProgressTogether() throws {
        let ledger = try PromptLedger(promptCount: 12, shards: 4, journal: MemoryJournal())
        _ = try ledger.lease(actor: "a", max: 8, now: 0)
        #expect(ledger.progress.map(\.leased) == [2, 2, 2, 2])
        #expect(ledger.progress.map(\.total) == [3, 3, 3, 3])
    }

    @Test("a budget stops leasing and finishes part-way through the last epoch")
    func budget() throws {
        let ledger = try PromptLedger(promptCount: 10, epochs: 3, budget: 25, journal: MemoryJournal())
        var total = 0, leased: [Int] = []
        while let l = try ledger.lease(actor: "a", max: 4, now: 0) {
            leased.append(l.promptIDs.count)
            total += try ledger.complete(actor: "a", epoch: l.epoch, promptIDs: l.promptIDs, now: 0).accepted.count
        }
        #expect(ledger.finished && total == 25 && ledger.completed == 25 && ledger.epoch == 2)
        #expect(leased == [4, 4, 2, 4, 4, 2, 4, 1])  // epochs of 10, the last one cut at 5
        #expect(try ledger.complete(actor: "a", epoch: 2, promptIDs: [7, 8], now: 0).accepted.isEmpty)
    }

    @Test("stale leases of a live actor are re-leased; released prompts come back first")
    func leaseExpiryAndRelease() throws {
        let ledger = try PromptLedger(promptCount: 6, journal: MemoryJournal())
        let a = try #require(try ledger.lease(actor: "a", max: 2, now: 0))
        let b = try #require(try ledger.lease(actor: "b", max: 2, now: 15))
        ledger.heartbeat(actor: "a", now: 20)
        #expect(try ledger.expireLeases(now: 20, maxAge: 10) == [a.id])
        #expect(try ledger.lease(actor: "c", max: 3, now: 21)?.promptIDs == [0, 1, 4])
        try ledger.release(epoch: 0, promptIDs: b.promptIDs)
        #expect(try ledger.lease(actor: "c", max: 6, now: 22)?.promptIDs == [2, 3, 5])
        #expect(ledger.progress.map(\.leased).reduce(0, +) == 6)
    }

    @Test("a retried consumption request gets its first answer, also after a restart from the journal")
    func idempotentConsumption() throws {
        let path = NSTemporaryDirectory() + "ledger-req-\(UUID().uuidString).jsonl"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let ledger = try PromptLedger(promptCount: 4, journal: FileJournal(path: path))
        let l = try #require(try ledger.lease(actor: "a", max: 4, now: 0))
        #expect(try ledger.complete(actor: "L", epoch: 0, promptIDs: [0, 1], now: 1, request: "step-1").accepted == [0, 1])
        #expect(try ledger.complete(actor: "L", epoch: 0, promptIDs: [0, 1], now: 1, request: "step-1").accepted == [0, 1])
        #expect(try ledger.complete(actor: "L", epoch: 0, promptIDs: [1, 2], now: 1, request: "step-2").accepted == [2])
        let again = try PromptLedger(promptCount: 4, journal: FileJournal(path: path))
        #expect(try again.complete(actor: "L", epoch: 0, promptIDs: [1, 2], now: 2, request: "step-2").accepted == [2])
        // Prompt 1 of step-2 was a duplicate; the replay remembers it and the retry adds none.
        #expect(again.completed == 3 && again.duplicates == 1 && l.promptIDs.count == 4)
    }

    @Test("the next epoch is leased before the current one closes; each epoch counts its own completions")
    func overlappingEpochs() throws {
        let ledger = try PromptLedger(promptCount: 3, epochs: 2, journal: MemoryJournal())
        let a = try #require(try ledger.lease(actor: "a", max: 3, now: 0))
        let b = try #require(try ledger.lease(actor: "b", max: 3, now: 0))
        #expect(a.epoch == 0 && b.epoch == 1 && b.promptIDs == [0, 1, 2])
        #expect(try ledger.lease(actor: "c", max: 3, now: 0) == nil)
        #expect(try ledger.complete(actor: "L", epoch: 1, promptIDs: [0, 1, 2], now: 1).accepted == [0, 1, 2])
        #expect(ledger.epoch == 0 && !ledger.finished)
        #expect(try ledger.complete(actor: "L", epoch: 0, promptIDs: [2, 1, 0], now: 1).accepted == [2, 1, 0])
        #expect(ledger.finished && ledger.completed == 6)
    }

    @Test("a torn journal tail is cut before the next append, and a second restart replays every record")
    func tornJournalTail() throws {
        let path = NSTemporaryDirectory() + "ledger-torn-\(UUID().uuidString).jsonl"
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let ledger = try PromptLedger(promptCount: 6, journal: FileJournal(path: path))
            _ = try #require(try ledger.lease(actor: "a", max: 6, now: 0))
            #expect(try ledger.complete(actor: "L", epoch: 0, promptIDs: [0, 1], now: 1).accepted == [0, 1])
        }
        // A crash in the middle of writing the next record: half a line, no newline.
        let torn = Data(#"{"epoch":0,"ids":[2,3],"t":"do"#.utf8)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try h.seekToEnd(); try h.write(contentsOf: torn); try h.close()

        let journal = try FileJournal(path: path)
        #expect(journal.truncatedTail == torn.count)
        let again = try PromptLedger(promptCount: 6, journal: journal, now: 2)
        #expect(again.completed == 2)
        #expect(try again.complete(actor: "L", epoch: 0, promptIDs: [2, 3], now: 3).accepted == [2, 3])
        let third = try PromptLedger(promptCount: 6, journal: FileJournal(path: path), now: 4)
        #expect(third.completed == 4)
        #expect(try third.complete(actor: "L", epoch: 0, promptIDs: [2, 3], now: 5).accepted == [])
    }

    @Test("a corrupt record inside the journal fails the replay instead of being skipped")
    func corruptJournalLine() throws {
        let path = NSTemporaryDirectory() + "ledger-corrupt-\(UUID().uuidString).jsonl"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("{\"t\":\"lease\"\ngarbage\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: FileError.self) { _ = try PromptLedger(promptCount: 6, journal: FileJournal(path: path)) }
    }

    /// Before the fix the completion counted, and the prompt was leased and counted again once its
    /// epoch was queued (found by the journal compaction property test).
    @Test("a completion for an epoch not yet leased from is refused")
    func completionOfAnEpochNotQueued() throws {
        let ledger = try PromptLedger(promptCount: 2, epochs: 2, journal: MemoryJournal())
        #expect(try ledger.complete(actor: "L", epoch: 1, promptIDs: [0], now: 0).accepted == [])
        let first = try #require(try ledger.lease(actor: "a", max: 2, now: 0))
        #expect(try ledger.complete(actor: "L", epoch: 0, promptIDs: first.promptIDs, now: 0).accepted == [0, 1])
        let second = try #require(try ledger.lease(actor: "a", max: 2, now: 0))
        #expect(second.epoch == 1 && second.promptIDs == [0, 1])
        #expect(try ledger.complete(actor: "L", epoch: 1, promptIDs: [0, 1], now: 0).accepted == [0, 1])
        #expect(ledger.completed == 4 && ledger.finished)
    }
}
