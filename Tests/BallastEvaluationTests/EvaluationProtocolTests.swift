import BallastBenchmark
import BallastData
import BallastEvaluation
import BallastKernels
import BallastModel
import BallastOptim
import BallastRL
import BallastRandom
import Foundation
import Testing

@Suite("Evaluation protocol and the PPO recipe's parts on tiny models", .serialized)
struct EvaluationProtocolTests {
    let prompts = Benchmark.examples(count: 10, seed: 8, split: "e", families: Benchmark.rlFamilies)
        .map { PromptRecord(prompt: $0.prompt, task: $0.task!, id: $0.id!) }

    func tiny(_ seed: UInt64, heads: [String] = []) throws -> GPT {
        var c = GPTConfig(nLayer: 2, nHead: 2, nEmbd: 32, nPositions: 128, vocabSize: 259)
        c.scalarHeads = heads
        let m = try GPT(config: c)
        m.initializeRandom(seed: seed)
        return m
    }

    @Test("expert-aligned forget set: exactly the candidates whose SFT response has gold >= 0.95")
    func expertAlignedFilter() {
        var rng = SeededRNG(seed: 2)
        let problems = (0..<6).map { _ in ArithmeticQA().problem(&rng) }
        let candidates = problems.enumerated().map { PromptRecord(prompt: $1.prompt, task: "qa", id: "\($0)") }
        // Right, right with a free explanation, wrong, right but rambling past the free tail.
        let responses = [problems[0].answer, problems[1].answer + "\n" + problems[1].explanation, "-1",
                         problems[3].answer + "\n" + String(repeating: "so ", count: 20), problems[4].answer, ""]
        let kept = PolicyEvaluation.expertAligned(candidates, responses: responses)
        #expect(kept.map(\.id) == ["0", "1", "4"])
    }

    @Test("curve point: the SFT model against itself has zero KL and no wins or losses; another policy moves away with KL > 0")
    func curvePoint() throws {
        let sft = try tiny(1), other = try tiny(2)
        // Scaled weights make the other model's next-token distributions peaked where the randomly
        // initialised SFT stand-in's are near uniform, so its KL to it is nats per token, far above the
        // sampling noise of 20 short responses (an unscaled pair is ~0.01 nats apart and the estimate's
        // sign is a coin).
        for i in 0..<other.parameterCount { other.params[i] *= 4 }
        var ev = PolicyEvaluation(maxNewTokens: 8)
        ev.samplesPerPrompt = 2
        let base = try ev.sample(sft, prompts, seed: 3)
        #expect(base.texts.count == 20 && base.prompts[0].id == base.prompts[1].id, "two samples per prompt, prompt-major")
        let same = try ev.curvePoint(policy: sft, reference: sft, scorer: nil, prompts: prompts, seed: 3, sftSamples: base)
        #expect(abs(same.kl) < 1e-4 && same.win == 0 && same.lose == 0 && same.tie == 1 && same.proxy == nil)
        #expect(abs(same.gold - base.gold.reduce(0, +) / 20) < 1e-12)
        let moved = try ev.curvePoint(policy: other, reference: sft, scorer: nil, prompts: prompts, seed: 3, sftSamples: base)
        #expect(moved.kl > 1, "sampled sequence KL of a different model is positive: \(moved.kl)")
        // Win / lose recounted from the policy's own samples (same seed), sample for sample against SFT's.
        let own = try ev.sample(other, prompts, seed: 3)
        let pairs = zip(own.gold, base.gold).filter { !$0.0.isNaN && !$0.1.isNaN }
        let wins = pairs.filter { $0.0 - $0.1 > ev.tieEpsilon }.count, losses = pairs.filter { $0.1 - $0.0 > ev.tieEpsilon }.count
        #expect(moved.win == Double(wins) / Double(pairs.count) && moved.lose == Double(losses) / Double(pairs.count), "\(moved.win!) \(moved.lose!) vs \(wins) \(losses) of \(pairs.count)")
        #expect(abs(moved.gold - own.gold.reduce(0, +) / 20) < 1e-12)
        #expect(moved.noEOS == Double(own.ids.filter { $0.last != ByteTokenizer.eos }.count) / 20)
    }

    @Test("greedy win / lose per snapshot equals the full comparison table's first row")
    func greedyWinLoseMatchesCompare() throws {
        let sft = try tiny(1), other = try tiny(2)
        for i in 0..<other.parameterCount { other.params[i] *= 4 }
        let ev = PolicyEvaluation(maxNewTokens: 8)
        let base = try ev.respond(sft, prompts)
        let rows = try ev.compare(policy: other, sft: sft, reference: sft, scorer: nil, prompts: prompts, sftResponses: base)
        let quick = try ev.greedyWinLose(policy: other, prompts: prompts, sftResponses: base)
        #expect(quick.win == rows[0].win && quick.lose == rows[0].lose)
        #expect(rows[0].win + rows[0].lose > 0, "the scaled model should differ from SFT on some prompt for this test to mean something")
        let itself = try ev.greedyWinLose(policy: sft, prompts: prompts, sftResponses: base)
        #expect(itself.win == 0 && itself.lose == 0)
    }

    /// One PPO update of a tiny policy and critic on a sampled rollout (`edit` may change it first);
    /// returns the stats and whether the policy and the critic changed.
    func ppoUpdate(updatePolicy: Bool = true, edit: (inout RolloutBatch) -> Void = { _ in }) throws -> (stats: PPOUpdater.Stats, policyMoved: Bool, criticMoved: Bool) {
        let policy = try tiny(1), reference = try tiny(1), critic = try tiny(3, heads: ["value_head"]), scorer = try tiny(4, heads: ["score"])
        var sampling = SamplingOptions(temperature: 1, maxNewTokens: 6)
        sampling.seed = 5
        var rollout = try RolloutMaker.make(policy: policy, reference: reference, critic: critic, scorer: scorer, prompts: prompts,
                                            sampling: sampling, policyVersion: 0)
        edit(&rollout)
        func params(_ m: GPT) -> [Float] { Array(UnsafeBufferPointer(start: m.params, count: m.parameterCount)) }
        let policyBefore = params(policy), criticBefore = params(critic)
        let opt = { (m: GPT) in AdamW(count: m.parameterCount, decayRanges: []) }
        var rng = SeededRNG(seed: 1)
        var hyper = PPOHyper()
        hyper.minibatch = 5
        let stats = PPOUpdater(hyper: hyper).update(rollout: rollout, policy: policy, critic: critic, policyOpt: opt(policy), criticOpt: opt(critic),
                                                    lr: 1e-2, criticLR: 1e-2, beta: 0.05, maxGradNorm: 1, nextRehearsal: { nil },
                                                    updatePolicy: updatePolicy, rng: &rng)
        return (stats, params(policy) != policyBefore, params(critic) != criticBefore)
    }

    @Test("a rollout's old log-probs, taken from the sampler, equal a full forward pass of the policy over the same tokens")
    func rolloutLogProbsFromGeneration() throws {
        let policy = try tiny(1), reference = try tiny(2)
        var sampling = SamplingOptions(temperature: 1.3, maxNewTokens: 6)
        sampling.seed = 5
        let rollout = try RolloutMaker.make(policy: policy, reference: reference, critic: nil, scorer: nil, prompts: prompts,
                                            sampling: sampling, policyVersion: 0, rule: .length)
        let sequences = rollout.sequences, logp = rollout.responseRows(rollout.logp)
        let batch = TokenBatch.packed(sequences)
        policy.forward(batch)
        var worst = 0.0
        for r in 0..<rollout.count {
            for (j, i) in (rollout.promptTokens[r]..<sequences[r].count).enumerated() {
                let full = SequenceBatch.logProb(policy.logits, row: batch.start(ofRow: r) + i - 1, v: policy.config.vocabSize,
                                                 target: sequences[r][i])
                worst = max(worst, abs(full - logp[r][j]))
            }
        }
        // at temperature 1.3 the sampler's distribution differs; the log-probs must still be the model's own
        #expect(worst < 1e-4, "largest difference \(worst)")
        #expect(rollout.logp.count > prompts.count)
    }

    @Test("critic warm-up updates: the critic moves, the policy does not")
    func criticOnlyUpdate() throws {
        let r = try ppoUpdate(updatePolicy: false)
        #expect(!r.policyMoved && r.criticMoved)
    }

    /// Before the fix a NaN in the rollout (a log-prob and a value here) went through clipping into AdamW
    /// and made every policy and critic weight NaN.
    @Test("a minibatch whose gradients are not finite is skipped and counted; the weights stay as they were")
    func nonFiniteGradientsSkipTheUpdate() throws {
        let r = try ppoUpdate { rollout in
            for r in 0..<rollout.count { rollout.logp[rollout.responseOffsets[r]] = .nan; rollout.values[rollout.responseOffsets[r]] = .nan }
        }
        #expect(r.stats.skippedUpdates == 2 * r.stats.updates && r.stats.updates > 0)
        #expect(!r.policyMoved && !r.criticMoved)
    }
}
