import BallastBenchmark
import BallastConfig
import BallastData
import BallastFormats
import BallastKernels
import BallastModel
import BallastOptim
import BallastRandom
import BallastTraining
import Foundation

/// Rollouts with everything PPO needs, as plain data: the distributed issue ships these between
/// actor and learner processes unchanged. Ragged fields are held as columns (`Ragged`): a batch moves
/// between the wire, the learner's queue and the trainer in bulk copies, and the trainer cuts rows once.
public struct RolloutBatch: Sendable {
    /// [BOS] prompt response of every row, flattened: row r is `tokens[tokenOffsets[r]..<tokenOffsets[r + 1]]`
    /// (the response includes EOS when the policy stopped on it).
    public var tokens: [Int32]
    public var tokenOffsets: [Int]
    /// Tokens of [BOS] + prompt per row; response token j sits at index promptTokens + j.
    public var promptTokens: [Int]
    /// Per response token, flattened over rows (row r at `responseOffsets[r]..<responseOffsets[r + 1]`):
    /// log π_old, log π_ref, V_old.
    public var logp: [Double]
    public var refLogp: [Double]
    public var values: [Double]
    public var responseOffsets: [Int]
    /// Sequence-level score (the AM's advantage a, or RM reward r; see `ScoreHeads`) and gold score for logging.
    public var scores: [Double]
    public var gold: [Double]
    public var tasks: [String]
    public var policyVersion: Int

    public var count: Int { promptTokens.count }
    public var responseLengths: [Int] { (0..<count).map { responseOffsets[$0 + 1] - responseOffsets[$0] } }
    /// Row r's tokens.
    public func sequence(_ r: Int) -> ArraySlice<Int32> { tokens[tokenOffsets[r]..<tokenOffsets[r + 1]] }
    /// Every row's tokens (cut on each call).
    public var sequences: [[Int32]] { Ragged.rows(of: tokens, at: tokenOffsets) }
    /// A per-response-token column (`logp`, `refLogp`, `values`) cut into rows.
    public func responseRows(_ column: [Double]) -> [[Double]] { Ragged.rows(of: column, at: responseOffsets) }

    /// From columns, as they are held.
    public init(tokens: [Int32], tokenOffsets: [Int], promptTokens: [Int], logp: [Double], refLogp: [Double], values: [Double],
                responseOffsets: [Int], scores: [Double], gold: [Double], tasks: [String], policyVersion: Int) {
        self.tokens = tokens
        self.tokenOffsets = tokenOffsets
        self.promptTokens = promptTokens
        self.logp = logp
        self.refLogp = refLogp
        self.values = values
        self.responseOffsets = responseOffsets
        self.scores = scores
        self.gold = gold
        self.tasks = tasks
        self.policyVersion = policyVersion
    }

    /// From rows.
    public init(sequences: [[Int32]], promptTokens: [Int], logp: [[Double]], refLogp: [[Double]], values: [[Double]],
                scores: [Double], gold: [Double], tasks: [String], policyVersion: Int) {
        let (tokens, tokenOffsets) = Ragged.flatten(sequences), (flatLogp, responseOffsets) = Ragged.flatten(logp)
        self.init(tokens: tokens, tokenOffsets: tokenOffsets, promptTokens: promptTokens, logp: flatLogp, refLogp: Ragged.flatten(refLogp).column,
                  values: Ragged.flatten(values).column, responseOffsets: responseOffsets, scores: scores, gold: gold, tasks: tasks,
                  policyVersion: policyVersion)
    }

    /// The rows `picks` names (batch, row), in that order, as one batch; its policy version is the oldest.
    public static func gather(_ picks: [(RolloutBatch, Int)]) -> RolloutBatch {
        var out = RolloutBatch(tokens: [], tokenOffsets: [0], promptTokens: [], logp: [], refLogp: [], values: [], responseOffsets: [0],
                               scores: [], gold: [], tasks: [], policyVersion: picks.map { $0.0.policyVersion }.min() ?? 0)
        for (b, r) in picks {
            out.tokens.append(contentsOf: b.sequence(r))
            out.tokenOffsets.append(out.tokens.count)
            let span = b.responseOffsets[r]..<b.responseOffsets[r + 1]
            out.logp.append(contentsOf: b.logp[span])
            out.refLogp.append(contentsOf: b.refLogp[span])
            out.values.append(contentsOf: b.values[span])
            out.responseOffsets.append(out.logp.count)
            out.promptTokens.append(b.promptTokens[r])
            out.scores.append(b.scores[r])
            out.gold.append(b.gold[r])
            out.tasks.append(b.tasks[r])
        }
        return out
    }
}

/// A programmatic sequence score for the paper suite's controls: PPO on the gold score itself (if gold
/// does not rise with KL, the recipe is at fault, not the reward model), or on response length alone.
public enum ScoreRule: String, Sendable, CaseIterable {
    case gold, length

    /// gold: the benchmark's gold score in [0, 1]; length: characters / 10.
    public func score(prompt: PromptRecord, response: String) -> Double {
        switch self {
        case .gold: return Benchmark.gold(prompt: prompt.prompt, response: response, task: prompt.task) ?? 0
        case .length: return Double(response.count) / 10
        }
    }
}

public enum RolloutMaker {
    /// Samples one response per prompt with `policy`, then scores it: log-probs under the policy (the
    /// sampler's own, read from the decoding logits: no second policy pass) and under the reference
    /// (a forward pass), critic values, and the scorer's sequence score (`ScoreHeads`: the advantage a
    /// for an Advantage Model, r for a reward model).
    /// With `rule`, the score is that rule's and `scorer` is not used.
    public static func make(policy: GPT, reference: GPT, critic: GPT?, scorer: GPT?, prompts: [PromptRecord],
                            sampling: SamplingOptions, policyVersion: Int, rule: ScoreRule? = nil) throws -> RolloutBatch {
        let codec = policy.codec
        let ids = try prompts.map { try codec.promptIds(text: $0.prompt, messages: $0.messages) }
        var opts = sampling
        opts.maxNewTokens = min(opts.maxNewTokens, policy.config.nPositions - (ids.map(\.count).max() ?? 0))
        let gens = try Generator(model: policy).generate(prompts: ids, options: opts)
        policy.releaseDecodeCaches()  // one generate per PPO step: keep the update's peak memory down instead
        let seqs = zip(ids, gens).map { $0 + $1.outputIds }
        let pt = ids.map(\.count)
        let batch = SequenceBatch.make(seqs)
        func tokenLogps(_ m: GPT) -> [[Double]] {
            m.forward(batch, inferenceOnly: true)
            let v = m.config.vocabSize
            return seqs.indices.map { r in (pt[r]..<seqs[r].count).map { i in SequenceBatch.logProb(m.logits, row: batch.start(ofRow: r) + i - 1, v: v, target: seqs[r][i]) } }
        }
        let logp = gens.map { $0.logprobs.map(Double.init) }, ref = tokenLogps(reference)
        let texts = gens.map { codec.decodeResponse($0.outputIds) }
        let scores: [Double]
        if let rule {
            scores = prompts.indices.map { rule.score(prompt: prompts[$0], response: texts[$0]) }
        } else {
            guard let scorer else { throw ConfigError("a rollout needs a scorer model or a score rule") }
            scores = Scoring.sequenceScores(scorer, sequences: seqs, promptTokens: pt)
        }
        let gold = prompts.indices.map { i in Benchmark.gold(prompt: prompts[i].prompt, response: texts[i], task: prompts[i].task) ?? .nan }
        var rollout = RolloutBatch(sequences: seqs, promptTokens: pt, logp: logp, refLogp: ref, values: logp.map { $0.map { _ in 0 } },
                                   scores: scores, gold: gold, tasks: prompts.map(\.task), policyVersion: policyVersion)
        if let critic { fillValues(&rollout, critic: critic) }
        return rollout
    }

    /// V_old per response token from the critic. Actors leave this to the learner, which holds the critic.
    public static func fillValues(_ rollout: inout RolloutBatch, critic: GPT) {
        let seqs = rollout.sequences, pt = rollout.promptTokens
        let batch = SequenceBatch.make(seqs)
        critic.forward(batch, computeLogits: false, inferenceOnly: true)
        let hv = critic.config.scalarHeads.firstIndex(of: "value_head")!, hc = critic.config.scalarHeads.count
        var values: [Double] = []
        values.reserveCapacity(rollout.logp.count)
        for r in seqs.indices {
            for i in pt[r]..<seqs[r].count { values.append(Double(critic.headOutputs[(batch.start(ofRow: r) + i - 1) * hc + hv])) }
        }
        rollout.values = values
    }
}

/// PPO hyper-parameters (the `ppo:` section).
public struct PPOHyper: Sendable, Equatable {
    public var klCoef = 0.05
    public var adaptiveKL = false
    public var klTarget = 6.0
    public var klHorizon = 10000.0
    public var klEstimator = PPOMath.KLEstimator.k1
    public var scoreClip: Double? = 5
    public var gamma = 1.0
    public var lambda = 0.95
    public var clip = 0.2
    public var valueClip = 0.2
    public var valueCoef = 1.0
    public var epochs = 2
    public var minibatch = 16
    /// γ of the rehearsal loss L = L_PPO + γ·NLL(rehearsal); 0 disables rehearsal.
    public var rehearsalCoef = 0.01
    public var rehearsalBatch = 8
    /// One global normalisation of the sequence score, (s − μ)/σ with μ, σ measured once on
    /// `normalizationSamples` responses of the SFT model (not per task: balancing tasks is the AM's job).
    public var normalizeScores = false
    public var normalizationSamples = 256
    /// The (normalised) score given to a response that ends without EOS; nil keeps the scorer's.
    public var noEOSScore: Double? = nil
    /// Critic-only updates on SFT rollouts before the first policy update.
    public var criticWarmupSteps = 0
    public init() {}
}

/// One PPO update on a rollout batch: rewards with the KL penalty, GAE, whitening, then `epochs` passes
/// over minibatches of the clipped policy loss (plus γ·NLL on a rehearsal minibatch) and the clipped value loss.
public struct PPOUpdater {
    public var hyper: PPOHyper
    public init(hyper: PPOHyper) { self.hyper = hyper }

    public struct Stats: Sendable {
        public var policyLoss = 0.0, valueLoss = 0.0, clipFraction = 0.0, entropy = 0.0, kl = 0.0, rehearsalNLL = 0.0
        public var score = 0.0, gold = 0.0, responseLength = 0.0, updates = 0
        /// Minibatch updates (policy or critic) skipped because their gradients were not finite.
        public var skippedUpdates = 0
    }

    /// Runs the update; `nextRehearsal()` returns a rehearsal minibatch (or nil when rehearsal is off).
    /// `rowWeights` (stale rollouts down-weighted by the learner) scale each row's policy loss.
    public func update(rollout: RolloutBatch, policy: GPT, critic: GPT, policyOpt: AdamW, criticOpt: AdamW, lr: Float, criticLR: Float,
                       beta: Double, maxGradNorm: Float, nextRehearsal: () -> [EncodedExample]?, rowWeights: [Double]? = nil,
                       updatePolicy: Bool = true, rng: inout SeededRNG) -> Stats {
        // The trainer's per-row views, cut once per update.
        let sequences = rollout.sequences, oldLogp = rollout.responseRows(rollout.logp), refLogp = rollout.responseRows(rollout.refLogp)
        let oldValues = rollout.responseRows(rollout.values)
        let mask = oldLogp.map { $0.map { _ in 1.0 } }
        let rewards = PPOMath.tokenRewards(logp: oldLogp, refLogp: refLogp, mask: mask, scores: rollout.scores,
                                           beta: beta, scoreClip: hyper.scoreClip, estimator: hyper.klEstimator)
        let (adv, ret) = PPOMath.gae(rewards: rewards, values: oldValues, mask: mask, gamma: hyper.gamma, lambda: hyper.lambda)
        var white = PPOMath.whiten(adv, mask)
        // The clipped surrogate is positively homogeneous in the advantage (min(ρ·wA, clip(ρ)·wA) =
        // w·min(ρA, clip(ρ)A) for w > 0), so scaling a row's advantages scales its loss by w.
        if let rowWeights { for r in white.indices { white[r] = white[r].map { $0 * rowWeights[r] } } }
        var stats = Stats()
        let n = rollout.count
        // Sequence-level KL estimate: Σ_t (log π − log π_ref) per response, mean over the batch.
        stats.kl = zip(rollout.logp, rollout.refLogp).reduce(0) { $0 + $1.0 - $1.1 } / Double(n)
        stats.score = rollout.scores.reduce(0, +) / Double(n)
        let golds = rollout.gold.filter { !$0.isNaN }
        stats.gold = golds.reduce(0, +) / Double(max(golds.count, 1))
        stats.responseLength = Double(rollout.responseLengths.reduce(0, +)) / Double(n)
        let v = policy.config.vocabSize
        for _ in 0..<hyper.epochs {
            var order = Array(0..<n)
            for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            for mbStart in stride(from: 0, to: n, by: hyper.minibatch) {
                let idx = Array(order[mbStart..<min(mbStart + hyper.minibatch, n)])
                let seqs = idx.map { sequences[$0] }, pt = idx.map { rollout.promptTokens[$0] }
                let batch = SequenceBatch.make(seqs)
                // Policy: clipped surrogate on response tokens (skipped while the critic warms up).
                if updatePolicy {
                policy.zeroGrad()
                policy.forward(batch)
                let logits = policy.logits
                let newLogp = idx.indices.map { k in (pt[k]..<seqs[k].count).map { i in SequenceBatch.logProb(logits, row: batch.start(ofRow: k) + i - 1, v: v, target: seqs[k][i]) } }
                let p = PPOMath.policyLoss(logp: newLogp, oldLogp: idx.map { oldLogp[$0] }, advantages: idx.map { white[$0] },
                                           mask: idx.map { mask[$0] }, clip: hyper.clip)
                policy.clearOutputGradients()
                var entropy = 0.0, tokens = 0.0
                for k in idx.indices {
                    for (j, i) in (pt[k]..<seqs[k].count).enumerated() {
                        let row = batch.start(ofRow: k) + i - 1
                        let base = logits.baseAddress! + row * v, d = policy.dLogits + row * v
                        let lse = Softmax.logSumExp(base, v)
                        let g = Float(p.dLogp[k][j])
                        var h = 0.0
                        for c in 0..<v {
                            let prob = expf(base[c] - lse)
                            d[c] = -g * prob
                            h -= Double(prob) * Double(base[c] - lse)
                        }
                        d[Int(seqs[k][i])] += g
                        entropy += h
                        tokens += 1
                    }
                }
                policy.backward(headsGradient: false)
                // Rehearsal: γ · mean-token NLL on expert-aligned examples, added to the same gradients.
                if hyper.rehearsalCoef > 0, let reh = nextRehearsal(), !reh.isEmpty {
                    let (rb, targets, lossMask) = SFTEncoding.batch(reh)
                    policy.forward(rb)
                    let count = max(lossMask.reduce(0, +), 1)
                    let weights = lossMask.map { $0 * Float(hyper.rehearsalCoef) / count }
                    let l = targets.withUnsafeBufferPointer { tp in
                        weights.withUnsafeBufferPointer { wp in
                            CrossEntropy.forwardBackward(logits: policy.logits.baseAddress!, targets: tp.baseAddress!, weights: wp.baseAddress!,
                                                         dlogits: policy.dLogits, n: rb.tokens.count, v: v)
                        }
                    }
                    policy.backward(headsGradient: false)
                    stats.rehearsalNLL += Double(l) / hyper.rehearsalCoef
                }
                // Non-finite gradients (a NaN in the rollout's numbers or an overflow) would poison every weight.
                if !policyOpt.clippedUpdate(params: policy.params, grads: policy.grads, lr: lr, maxGradNorm: maxGradNorm).isFinite {
                    stats.skippedUpdates += 1
                }
                stats.policyLoss += p.loss
                stats.clipFraction += p.clipFraction
                stats.entropy += entropy / max(tokens, 1)
                }
                // Critic: clipped value loss.
                critic.zeroGrad()
                critic.forward(batch, computeLogits: false)
                let hv = critic.config.scalarHeads.firstIndex(of: "value_head")!, hc = critic.config.scalarHeads.count
                let newValues = idx.indices.map { k in (pt[k]..<seqs[k].count).map { i in Double(critic.headOutputs[(batch.start(ofRow: k) + i - 1) * hc + hv]) } }
                let vl = PPOMath.valueLoss(values: newValues, oldValues: idx.map { oldValues[$0] }, returns: idx.map { ret[$0] },
                                           mask: idx.map { mask[$0] }, clip: hyper.valueClip)
                critic.clearOutputGradients()
                for k in idx.indices {
                    for (j, i) in (pt[k]..<seqs[k].count).enumerated() {
                        critic.dHeads[(batch.start(ofRow: k) + i - 1) * hc + hv] = Float(vl.dValues[k][j] * hyper.valueCoef)
                    }
                }
                critic.backward(logitsGradient: false)
                if !criticOpt.clippedUpdate(params: critic.params, grads: critic.grads, lr: criticLR, maxGradNorm: maxGradNorm).isFinite {
                    stats.skippedUpdates += 1
                }
                stats.valueLoss += vl.loss
                stats.updates += 1
            }
        }
        let u = Double(max(stats.updates, 1))
        stats.policyLoss /= u
        stats.valueLoss /= u
        stats.clipFraction /= u
        stats.entropy /= u
        stats.rehearsalNLL /= u
        return stats
    }
}
