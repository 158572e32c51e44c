import BallastModel
import BallastOptim
import BallastRandom
import BallastTestSupport
import Foundation
import Testing
import BallastTraining

struct InjectedCrash: Error {}

/// Crash injection in the checkpoint swap: the test hook throws before the k-th rename or removal, the
/// folders stay as a crash would leave them, and the next save starts from there.
@Suite("Checkpoint swap")
struct CheckpointSwapTests {
    @Test("a crash before any rename or removal of a policy + critic save always leaves a consistent pair, never an older one than the last completed save")
    func crashAtEveryOperation() throws {
        let dir = scratchDirectory("ckpt-swap")
        let policy = try GPT(config: .tiny), critic = try GPT(config: .tiny)
        let policyOpt = AdamW(count: policy.parameterCount, decayRanges: []), criticOpt = AdamW(count: critic.parameterCount, decayRanges: [])
        let dirs = [dir + "/checkpoint", dir + "/critic"]
        func save(step: Int, crashAt: Int?) throws {
            policy.params[0] = Float(step)  // tags the folders' contents with the step they were saved at
            critic.params[0] = Float(-step)
            var ops = 0
            try TrainingCheckpoint.save([.init(model: policy, optimizer: policyOpt, dir: dirs[0]), .init(model: critic, optimizer: criticOpt, dir: dirs[1])],
                                        state: TrainerState(step: step, epoch: 0, cursor: 0, seed: 1, tokensSeen: 0, lastEvalLoss: nil)) { _ in
                defer { ops += 1 }
                if ops == crashAt { throw InjectedCrash() }
            }
        }
        try save(step: 0, crashAt: nil)
        var committed = 0
        var rng = SeededRNG(seed: 7)
        var crashes = 0
        for step in 1...80 {
            // Rounds 1-8 crash at operation 0..7 in turn (a swap of two folders has at most 8), then at random ones.
            let crashAt = step <= 8 ? step - 1 : Int(rng.next() % 10)
            do {
                try save(step: step, crashAt: crashAt)
                committed = step
            } catch is InjectedCrash {
                crashes += 1
            }
            let found = try #require(TrainingCheckpoint.locate(dirs), "no valid checkpoint after a crash at operation \(crashAt) of step \(step)")
            let p = try Checkpoint.load(found[0]), c = try Checkpoint.load(found[1])
            let at = Int(p.params[0])
            #expect(Int(-c.params[0]) == at, "policy and critic from different steps")
            #expect(at == committed || at == step, "step \(step), crash at \(crashAt): resumed at \(at), last completed save \(committed)")
            #expect(try TrainingCheckpoint.load(from: found[0], optimizer: policyOpt).step == at)
            committed = at  // what a resume would continue from
        }
        #expect(crashes > 20)
        try save(step: 81, crashAt: nil)
        #expect(TrainingCheckpoint.locate(dirs) == dirs)
        #expect(!FileManager.default.fileExists(atPath: dirs[0] + ".old") && !FileManager.default.fileExists(atPath: dirs[1] + ".tmp"))
    }
}
