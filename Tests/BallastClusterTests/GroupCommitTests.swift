import BallastCluster
import BallastFormats
import BallastTestSupport
import BallastTransport
import BallastWire
import Foundation
import Testing

/// Records the order of journal appends, group commits and socket sends.
final class EventLog { var events: [String] = [] }

final class LoggingJournal: Journal {
    let log: EventLog
    let inner = MemoryJournal()
    init(_ log: EventLog) { self.log = log }
    func append(_ record: [String: Any]) throws { log.events.append("append"); try inner.append(record) }
    func beginGroup() { inner.beginGroup() }
    func commitGroup() throws { log.events.append("commit"); try inner.commitGroup() }
    func records() throws -> [[String: Any]] { try inner.records() }
    func rewrite(_ records: [[String: Any]]) throws { try inner.rewrite(records) }
}

/// A ROUTER stand-in whose inbox is filled before serving starts; it asks to stop once it is drained.
final class ScriptedRouter: MessageSocket {
    var inbox: [[Data]]
    var sent: [[Data]] = []
    let log: EventLog
    var drained = false
    init(_ inbox: [[Data]], _ log: EventLog) { self.inbox = inbox; self.log = log }
    func send(_ parts: [Data]) throws -> Bool { log.events.append("send"); sent.append(parts); return true }
    func receive() throws -> [Data]? {
        if inbox.isEmpty { drained = true; return nil }
        return inbox.removeFirst()
    }
    func receiveNow() throws -> [Data]? { inbox.isEmpty ? nil : inbox.removeFirst() }
}

@Suite("Journal group commit")
struct GroupCommitTests {
    @Test("messages waiting together share one commit, and no answer leaves before the records it depends on are committed")
    func answersFollowTheirCommit() throws {
        let log = EventLog()
        let journal = LoggingJournal(log)
        let svc = CoordinatorService(ledger: try PromptLedger(promptCount: 64, journal: journal), heartbeatTimeout: 1e9)
        let inbox = (0..<10).map { message("a\($0)", ready("a\($0)", 4)) } + [message("a0", consumed("a0", [0, 1, 2, 3]))]
        let socket = ScriptedRouter(inbox, log)
        try svc.serve(socket, clock: { 0 }, shouldStop: { socket.drained }, maxGroup: 4)
        #expect(socket.sent.count == 11, "every message answered")
        let leased = try socket.sent.prefix(10).map { try decoded(Array($0.dropFirst()), as: LeaseReply.self).grant?.promptIDs ?? [] }
        #expect(Set(leased.flatMap { $0 }).count == 40, "ten distinct leases of four")
        #expect(svc.ledger.completed == 4)
        // 11 messages in groups of at most 4: 3 commits, each before its group's answers
        #expect(journal.inner.commits == 3 && svc.groups == 3 && svc.groupedMessages == 11)
        var uncommitted = 0
        for e in log.events {
            switch e {
            case "append": uncommitted += 1
            case "commit": uncommitted = 0
            default: #expect(uncommitted == 0, "an answer left with \(uncommitted) record(s) not yet durable: \(log.events)")
            }
        }
    }

    @Test("serve expires a silent actor's leases at its first pass after the timeout, and passes at most once per tick interval")
    func expiryPassesAreThrottled() throws {
        // One lease at t = 0, then only receive timeouts while the clock advances 0.4 s per loop.
        func serveSilence(tickInterval: Double) throws -> (leased: Int, expired: Int) {
            let log = EventLog()
            let svc = CoordinatorService(ledger: try PromptLedger(promptCount: 8, journal: MemoryJournal()), heartbeatTimeout: 1)
            let socket = ScriptedRouter([message("a0", ready("a0", 4))], log)
            var now = -0.4, loops = 0
            try svc.serve(socket, clock: { now }, shouldStop: {
                loops += 1
                now += 0.4
                return loops > 6  // the clock reaches 2.0 s: the actor is silent for more than its 1 s timeout
            }, tickInterval: tickInterval)
            #expect(socket.sent.count == 1)
            return (svc.ledger.leasedCount, svc.status(now: now)["actors_expired"] as! Int)
        }
        let frequent = try serveSilence(tickInterval: 0.3)
        #expect(frequent.leased == 0 && frequent.expired == 1, "the lease went back to the queue")
        let rare = try serveSilence(tickInterval: 10)  // one pass, at t = 0: nothing is late yet
        #expect(rare.leased == 4 && rare.expired == 0)
    }

    @Test("a file journal syncs once per group, and every grouped record is there after reopening")
    func fileJournalSyncsOncePerGroup() throws {
        let path = scratchDirectory() + "/journal"
        let j = try FileJournal(path: path)
        try j.append(["t": "solo"])
        #expect(j.syncs == 1)
        j.beginGroup()
        for i in 0..<20 { try j.append(["t": "g", "i": i]) }
        #expect(j.syncs == 1, "no fsync inside the group")
        try j.commitGroup()
        #expect(j.syncs == 2)
        j.beginGroup()
        try j.commitGroup()
        #expect(j.syncs == 2, "an empty group costs nothing")
        #expect(try FileJournal(path: path).records().count == 21)
    }

    @Test("a group's records reach the file together when it commits; a compaction inside a group replaces those before it")
    func groupWrittenAtCommit() throws {
        let path = scratchDirectory() + "/journal"
        let j = try FileJournal(path: path)
        j.beginGroup()
        for i in 0..<3 { try j.append(["t": "g", "i": i]) }
        #expect(try j.records().isEmpty, "nothing written before the commit")
        try j.commitGroup()
        #expect(try j.records().compactMap { $0["i"] as? Int } == [0, 1, 2])
        j.beginGroup()
        try j.append(["t": "covered"])
        try j.rewrite([["t": "snapshot"]])
        try j.append(["t": "after"])
        try j.commitGroup()
        #expect(try FileJournal(path: path).records().compactMap { $0["t"] as? String } == ["snapshot", "after"])
    }
}
