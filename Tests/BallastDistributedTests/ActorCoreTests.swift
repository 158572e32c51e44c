import BallastData
@testable import BallastDistributed
import BallastWire
import Foundation
import Testing

/// The actor's decisions, driven by typed messages alone (no sockets, no models).
@Suite("Actor core")
struct ActorCoreTests {
    let learner = ActorWelcome.Learner(
        endpoints: LearnerEndpoints(rollouts: "tcp://l:1", weights: "tcp://l:2", notices: "tcp://l:3"),
        settings: RunSettings(temperature: 1, maxNewTokens: 16, responsesPerPrompt: 2, leaseSize: 4, seed: 9, heartbeatInterval: 1))

    func grant(_ lease: Int, ids: [Int], prompts: [String]? = nil) -> LeaseReply {
        let records = (prompts ?? ids.map { "p\($0)" }).enumerated().map { i, p in ["prompt": p, "task": "qa", "id": "id\(i)"] }
        let json = String(decoding: try! JSONSerialization.data(withJSONObject: records), as: UTF8.self)
        return LeaseReply(policyVersion: 0, epoch: 1, grant: .init(lease: lease, promptIDs: ids, promptsJSON: json))
    }

    /// An actor that has found the learner and holds every model, policy at `version`.
    func working(version: Int = 3) -> ActorCore {
        var core = ActorCore(id: "a", host: "h", process: "p")
        _ = core.received(ActorWelcome(policyVersion: 0, state: .ok, learner: learner))
        _ = core.obtained(.reference, version: 0)
        _ = core.obtained(.scorer, version: 0)
        _ = core.obtained(.policy, version: version)
        return core
    }

    @Test("start-up: hello until a learner is registered, then reference, scorer and policy, then leases of the run's size")
    func startUp() {
        var core = ActorCore(id: "a", host: "h", process: "p")
        #expect(core.next() == .hello(ActorHello(id: "a", host: "h")))
        #expect(core.received(ActorWelcome(policyVersion: 0, state: .wait, learner: nil)) == .wait(seconds: 0.1, note: nil))
        #expect(core.next() == .hello(ActorHello(id: "a", host: "h")))
        #expect(core.received(ActorWelcome(policyVersion: 0, state: .ok, learner: learner)) == .fetch(.reference))
        #expect(core.obtained(.reference, version: 0) == .fetch(.scorer))
        #expect(core.obtained(.scorer, version: 0) == .fetch(.policy))
        #expect(core.envelopeVersion == 0)
        #expect(core.obtained(.policy, version: 5) == .lease(LeaseRequest(policyVersion: 5, id: "a", capacity: 4, request: "p-0")))
    }

    @Test("a welcome that says finished ends the actor before any work")
    func finishedAtHello() {
        var core = ActorCore(id: "a", host: "h", process: "p")
        #expect(core.received(ActorWelcome(policyVersion: 0, state: .finished, learner: nil)) == .finished)
        #expect(core.next() == .finished)
    }

    @Test("a version notice makes the next step a policy fetch; the notice of the end finishes the actor")
    func notices() {
        var core = working(version: 3)
        core.received(VersionNotice(policyVersion: 3, finished: false))
        #expect(core.next() == .lease(LeaseRequest(policyVersion: 3, id: "a", capacity: 4, request: "p-0")), "the version it has: no fetch")
        core.received(VersionNotice(policyVersion: 4, finished: false))
        core.received(VersionNotice(policyVersion: 6, finished: false))
        #expect(core.next() == .fetch(.policy))
        #expect(core.obtained(.policy, version: 6) == .lease(LeaseRequest(policyVersion: 6, id: "a", capacity: 4, request: "p-0")))
        // A learner resumed from an older checkpoint announces a lower version: the actor follows it.
        core.received(VersionNotice(policyVersion: 2, finished: false))
        #expect(core.next() == .fetch(.policy))
        _ = core.obtained(.policy, version: 2)
        core.received(VersionNotice(policyVersion: UInt64.max, finished: false))
        #expect(core.next() == .lease(LeaseRequest(policyVersion: 2, id: "a", capacity: 4, request: "p-0")), "an out-of-range version is ignored")
        core.received(VersionNotice(policyVersion: 2, finished: true))
        #expect(core.next() == .finished)
    }

    @Test("a grant becomes K rows per prompt with their ids, seeded per lease")
    func grants() throws {
        var core = working(version: 3)
        guard case .sample(let work) = core.received(grant(17, ids: [40, 41])) else { Issue.record("no work"); return }
        #expect(work.rows.map(\.prompt) == ["p40", "p40", "p41", "p41"])
        #expect(work.promptIDs == [40, 40, 41, 41])
        #expect(work.lease == 17 && work.epoch == 1 && work.policyVersion == 3)
        guard case .sample(let other) = core.received(grant(18, ids: [40, 41])) else { Issue.record("no work"); return }
        #expect(other.seed != work.seed, "a re-leased prompt is sampled with another seed")
        guard case .sample(let again) = core.received(grant(17, ids: [40, 41])) else { Issue.record("no work"); return }
        #expect(again.seed == work.seed, "the seed depends on the run's seed and the lease only")
        // Every answered request gets a new key: only a retry of an unanswered one repeats it.
        #expect(core.next() == .lease(LeaseRequest(policyVersion: 3, id: "a", capacity: 4, request: "p-3")))
        #expect(core.next() == .lease(LeaseRequest(policyVersion: 3, id: "a", capacity: 4, request: "p-3")))
    }

    @Test("no grant: wait, or finish when the coordinator says the budget is spent; a grant without its prompts is asked again")
    func noGrant() {
        var core = working()
        #expect(core.received(LeaseReply(policyVersion: 0, epoch: 1, finished: false)) == .wait(seconds: 0.2, note: nil))
        let short = LeaseReply(policyVersion: 0, epoch: 1, grant: .init(lease: 3, promptIDs: [1, 2], promptsJSON: "[{\"prompt\": \"x\"}]"))
        guard case .wait(0, let note?) = core.received(short) else { Issue.record("expected a wait with a note"); return }
        #expect(note.contains("lease 3"))
        #expect(core.received(LeaseReply(policyVersion: 0, epoch: 2, finished: true)) == .finished)
        #expect(core.runFinished)
    }

    @Test("heartbeats vouch for an actor only while its work loop moves")
    func watchdog() {
        let counters = ActorCounters()
        #expect(counters.vouches(watchdog: 1))
        counters.progress.store(ActorCounters.monotonicMS() - 5_000, ordering: .relaxed)  // a work loop stuck for 5 s
        #expect(!counters.vouches(watchdog: 1) && counters.vouches(watchdog: 10))
        counters.moved()
        #expect(counters.vouches(watchdog: 1))
    }
}
