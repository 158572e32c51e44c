import BallastCluster
import Testing

@Suite("Learner inbox and staleness")
struct LearnerQueueTests {
    @Test func stalenessModes() {
        let drop = StalenessPolicy(maxPolicyLag: 2)
        #expect(drop.weight(rolloutVersion: 5, learnerVersion: 5) == 1)
        #expect(drop.weight(rolloutVersion: 3, learnerVersion: 5) == 1)
        #expect(drop.weight(rolloutVersion: 2, learnerVersion: 5) == nil)
        let down = StalenessPolicy(maxPolicyLag: 3, mode: .downweight, decay: 0.5)
        #expect(down.weight(rolloutVersion: 5, learnerVersion: 5) == 1)
        #expect(down.weight(rolloutVersion: 3, learnerVersion: 5) == 0.25)
        #expect(down.weight(rolloutVersion: 1, learnerVersion: 5) == nil)
        #expect(down.weight(rolloutVersion: 6, learnerVersion: 5) == nil)  // sampled by a lost learner process
    }

    @Test("bounded: refuses when full, drops stale rollouts on the way out, keeps arrival order")
    func bounded() {
        var q = BoundedRolloutQueue<String>(capacity: 3, policy: StalenessPolicy(maxPolicyLag: 1))
        let accepted = [q.offer("a", version: 0), q.offer("b", version: 2), q.offer("c", version: 3), q.offer("d", version: 3)]
        #expect(accepted == [true, true, true, false] && q.refused == 1)
        let got = q.take(max: 5, learnerVersion: 3)
        #expect(got.kept.map(\.item) == ["b", "c"] && got.dropped == ["a"] && q.dropped == 1 && q.count == 0)
        let again = q.offer("e", version: 3)
        #expect(again)
        q.offer("f", version: 1)
        q.offer("g", version: 2)
        #expect(q.prune(learnerVersion: 3) == ["f"] && q.items.map(\.item) == ["e", "g"] && q.dropped == 2)
    }
}
