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

/// Everything `ballast ppo` reads from its YAML file.
public struct PPOConfig: Sendable {
    public var policyInit: String
    public var criticInit: String
    public var scorer: String
    public var prompts: String
    public var rehearsal: String?
    public var maxNewTokens: Int
    public var temperature: Float
    public var hyper: PPOHyper
    public var criticLR: Float
    public var optim: OptimConfig
    public var run: RunConfig
    public var cluster: ClusterConfig

    public static func load(_ doc: ConfigDocument) throws -> PPOConfig {
        let top = doc.top
        func required(_ s: ConfigSection, _ key: String, _ what: String) throws -> String {
            guard let v = try s.string(key, nil) else { throw ConfigError("\(doc.file): \(s.full(key)) is required (\(what))") }
            return v
        }
        let m = try top.section("models")
        let policy = try required(m, "policy", "SFT checkpoint: the initial policy and the frozen reference")
        let critic = try required(m, "critic", "reward-model checkpoint whose trunk initialises the critic")
        let scorer = try required(m, "scorer", "reward or advantage model giving the sequence score, or gold / length (controls)")
        try m.finish()
        let d = try top.section("data")
        let prompts = try required(d, "prompts", "PPO prompts JSONL {prompt, task, id}")
        var rehearsal = try d.string("rehearsal", nil)
        if rehearsal == "none" { rehearsal = nil }
        try d.finish()
        let s = try top.section("sampling")
        let maxNew = try s.positive("max_new_tokens", 32)
        let temperature = try s.float("temperature", 1)
        try s.finish()
        let p = try top.section("ppo")
        var h = PPOHyper()
        h.klCoef = try p.double("kl_coef", h.klCoef)
        h.adaptiveKL = try p.bool("adaptive_kl", h.adaptiveKL)
        h.klTarget = try p.double("kl_target", h.klTarget)
        h.klHorizon = try p.double("kl_horizon", h.klHorizon)
        let est = try p.string("kl_estimator", "k1")!
        guard let e = PPOMath.KLEstimator(rawValue: est) else { throw ConfigError("\(p.origin("kl_estimator")): ppo.kl_estimator must be k1, k2 or k3") }
        h.klEstimator = e
        let clip = try p.double("score_clip", 5)
        h.scoreClip = clip > 0 ? clip : nil
        h.gamma = try p.double("gamma", h.gamma)
        h.lambda = try p.double("lambda", h.lambda)
        h.clip = try p.double("clip", h.clip)
        h.valueClip = try p.double("value_clip", h.valueClip)
        h.valueCoef = try p.double("value_coef", h.valueCoef)
        h.epochs = try p.positive("epochs", h.epochs)
        h.minibatch = try p.positive("minibatch", h.minibatch)
        h.rehearsalCoef = try p.double("rehearsal_coef", h.rehearsalCoef)
        h.rehearsalBatch = try p.positive("rehearsal_batch", h.rehearsalBatch)
        h.normalizeScores = try p.bool("normalize_scores", h.normalizeScores)
        h.normalizationSamples = try p.positive("normalization_samples", h.normalizationSamples)
        h.noEOSScore = try p.string("no_eos_score", nil).map { v in
            guard let d = Double(v), d.isFinite else { throw ConfigError("\(p.origin("no_eos_score")): ppo.no_eos_score must be a number") }
            return d
        }
        h.criticWarmupSteps = try p.int("critic_warmup_steps", h.criticWarmupSteps)
        guard h.criticWarmupSteps >= 0 else { throw ConfigError("\(p.origin("critic_warmup_steps")): ppo.critic_warmup_steps must be >= 0") }
        let criticLR = try p.float("critic_lr", 1e-5)
        try p.finish()
        var c = PPOConfig(policyInit: policy, criticInit: critic, scorer: scorer, prompts: prompts, rehearsal: rehearsal,
                          maxNewTokens: maxNew, temperature: temperature, hyper: h, criticLR: criticLR,
                          optim: try OptimConfig.read(try top.section("train"), defaultSteps: 100, defaultBatch: 64, defaultLR: 1e-5),
                          run: try RunConfig.read(try top.section("run"), defaultOut: "runs/ppo", generates: false, snapshots: true),
                          cluster: try ClusterConfig.read(try top.section("cluster")))
        if c.cluster.leaseSize == 0 { c.cluster.leaseSize = (1...min(16, c.optim.batchSize)).last { c.optim.batchSize % $0 == 0 }! }
        guard c.cluster.leaseSize > 0, c.optim.batchSize % c.cluster.leaseSize == 0 else {
            throw ConfigError("\(doc.file): train.batch_size (\(c.optim.batchSize)) must be a multiple of cluster.lease_size (\(c.cluster.leaseSize))")
        }
        let minimumQueue = c.optim.batchSize / c.cluster.leaseSize + 1
        if c.cluster.queueCapacity == 0 { c.cluster.queueCapacity = minimumQueue }
        guard c.cluster.queueCapacity >= minimumQueue else {
            throw ConfigError("\(doc.file): cluster.queue_capacity must be at least train.batch_size / lease_size + 1 = \(minimumQueue), so that a full queue holds a batch")
        }
        try top.finish()
        return c
    }
}

/// PPO with optional rehearsal: each step samples `train.batch_size` prompts, makes a rollout
/// (RolloutMaker), and runs one PPOUpdater update. Policy and critic are checkpointed with their
/// optimiser states; `--resume` continues.
public final class PPOTrainer {
    public let config: PPOConfig
    public let policy: GPT
    let reference: GPT, critic: GPT
    /// The scorer model, or nil when the score is a programmatic rule (`models.scorer: gold | length`).
    let scorer: GPT?
    public let scoreRule: ScoreRule?
    let policyOpt: AdamW, criticOpt: AdamW
    let prompts: [PromptRecord]
    let rehearsal: [EncodedExample]
    var state: TrainerState
    var sampler: EpochSampler
    var rehearsalSampler: EpochSampler
    var kl: AdaptiveKLController
    let progress = Progress()
    public var shouldStop: () -> Bool = { false }
    public var policyDir: String { config.run.outDir + "/checkpoint" }
    var criticDir: String { config.run.outDir + "/critic" }

    /// Holds the run folder's lock while the trainer lives.
    let directory: RunDirectory

    /// A fresh start (`resume` false) over an existing checkpoint needs `restart`, which moves it aside.
    public init(config: PPOConfig, resume: Bool, restart: Bool = false) throws {
        self.config = config
        Parallel.threads = config.run.threads
        BLAS.setThreads(config.run.threads)
        try RunDirectory.prepare(config.run.outDir, resume: resume, restart: restart, marks: ["checkpoint", "critic"])
        directory = try RunDirectory(lock: config.run.outDir)
        // Policy and critic are one checkpoint: resume from the newest pair whose steps agree.
        let pair = resume ? TrainingCheckpoint.locate([config.run.outDir + "/checkpoint", config.run.outDir + "/critic"]) : nil
        let resumePolicy = pair?[0], resumeCritic = pair?[1]
        if resume && pair == nil {
            throw ConfigError("\(config.run.outDir): nothing to resume (checkpoint/ and critic/ with trainer_state.json at the same step)")
        }
        reference = try Checkpoint.load(config.policyInit)
        policy = try resumePolicy.map(Checkpoint.load) ?? Checkpoint.load(config.policyInit)
        critic = try resumeCritic.map(Checkpoint.load) ?? Checkpoint.load(config.criticInit).withScalarHeads(["value_head"])
        scoreRule = ScoreRule(rawValue: config.scorer)
        scorer = scoreRule == nil ? try Checkpoint.load(config.scorer) : nil
        if let scorer, !scorer.config.scalarHeads.contains("score") {
            throw FileError(path: config.scorer, problem: "the scorer needs a score head (train it with train-rm or train-am)")
        }
        guard policy.config.vocabSize == critic.config.vocabSize, policy.config.nPositions <= critic.config.nPositions else {
            throw ConfigError("policy and critic checkpoints have different vocabularies or contexts")
        }
        for (name, m) in [(config.policyInit, reference), (config.criticInit, critic)] + (scorer.map { [(config.scorer, $0)] } ?? [])
        where !m.codec.sameText(as: policy.codec) || m.config.vocabSize != policy.config.vocabSize {
            throw ConfigError("\(name): its tokenizer or vocabulary differs from the policy's; the models of a PPO run exchange token ids and must share one")
        }
        // The four models run strictly one after another: one set of activation buffers serves them all.
        for m in [reference, critic] + (scorer.map { [$0] } ?? []) { m.shareArenas(with: policy) }
        policyOpt = config.optim.makeOptimizer(for: policy)
        criticOpt = config.optim.makeOptimizer(for: critic)
        prompts = try PromptRecord.read(config.prompts)
        let codec = policy.codec
        rehearsal = try config.rehearsal.map { path in
            try SFTExample.read(path).enumerated().map { k, e in
                do { return try SFTEncoding.encode(e, codec: codec) } catch { throw DatasetError(file: path, line: k + 1, problem: "\(error)") }
            }
        } ?? []
        if let resumePolicy, let resumeCritic {
            state = try TrainingCheckpoint.load(from: resumePolicy, optimizer: policyOpt)
            _ = try TrainingCheckpoint.load(from: resumeCritic, optimizer: criticOpt)
            progress.note("resumed from \(resumePolicy) at step \(state.step)")
        } else {
            state = TrainerState(step: 0, epoch: 0, cursor: 0, seed: config.optim.seed, tokensSeen: 0, lastEvalLoss: nil)
        }
        sampler = EpochSampler(count: prompts.count, seed: state.seed, epoch: state.epoch, cursor: state.cursor)
        rehearsalSampler = EpochSampler(count: max(rehearsal.count, 1), seed: state.seed &+ 17,
                                        epoch: state.rehearsalEpoch ?? 0, cursor: state.rehearsalCursor ?? 0)
        kl = AdaptiveKLController(beta: state.klCoef ?? config.hyper.klCoef, target: config.hyper.klTarget, horizon: config.hyper.klHorizon)
        metrics = try MetricsLog(path: config.run.outDir + "/metrics.jsonl", keepUpTo: state.step)
        startStep = state.step
    }

    public func checkpoint() throws {
        state.epoch = sampler.epoch
        state.cursor = sampler.cursor
        state.rehearsalEpoch = rehearsalSampler.epoch
        state.rehearsalCursor = rehearsalSampler.cursor
        state.klCoef = kl.beta
        try TrainingCheckpoint.save([TrainingCheckpoint.Part(model: policy, optimizer: policyOpt, dir: policyDir),
                                     TrainingCheckpoint.Part(model: critic, optimizer: criticOpt, dir: criticDir)], state: state)
    }

    let metrics: MetricsLog
    let startTime = Date()
    let startStep: Int

    /// The policy version: one per PPO update.
    public var step: Int { state.step }
    public var isDone: Bool { state.step >= config.optim.steps }
    public var policyModel: GPT { policy }
    public var referenceModel: GPT { reference }
    public var scorerModel: GPT? { scorer }
    public var criticModel: GPT { critic }
    public var seed: UInt64 { state.seed }

    public func describe() -> String {
        "policy \(config.policyInit), scorer \(config.scorer) (\(scoreRule.map { "\($0.rawValue) rule: a control" } ?? ScoreHeads(scorer!.config)!.formula)), "
            + "\(rehearsal.count) rehearsal examples (γ = \(config.hyper.rehearsalCoef)), steps \(state.step)→\(config.optim.steps)"
    }

    /// Before the first update: measures the score normalisation on SFT samples and warms the critic
    /// up on SFT rollouts, as configured; both are kept in the trainer state, so a resumed run skips them.
    public func prepare() throws {
        let h = config.hyper
        var changed = false
        if h.normalizeScores && state.scoreMean == nil {
            var picker = EpochSampler(count: prompts.count, seed: state.seed &+ 101)
            let sample = picker.next(min(h.normalizationSamples, prompts.count)).map { prompts[$0] }
            var scores: [Double] = []
            for start in stride(from: 0, to: sample.count, by: 64) {
                var sampling = SamplingOptions(temperature: config.temperature, maxNewTokens: config.maxNewTokens)
                sampling.seed = state.seed &+ 0x5C0 &+ UInt64(start)
                let r = try RolloutMaker.make(policy: reference, reference: reference, critic: nil, scorer: scorer,
                                              prompts: Array(sample[start..<min(start + 64, sample.count)]), sampling: sampling, policyVersion: 0,
                                              rule: scoreRule)
                scores += r.scores
            }
            let mean = scores.reduce(0, +) / Double(scores.count)
            let std = (scores.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(scores.count - 1, 1))).squareRoot()
            state.scoreMean = mean
            state.scoreStd = max(std, 1e-6)
            progress.note(String(format: "score normalisation from %d SFT samples: mean %.4f, std %.4f", scores.count, mean, std))
            changed = true
        }
        var warm = EpochSampler(count: prompts.count, seed: state.seed &+ 202, epoch: 0, cursor: 0)
        while (state.criticWarmupDone ?? 0) < h.criticWarmupSteps {
            let done = state.criticWarmupDone ?? 0
            let batch = warm.next(config.optim.batchSize).map { prompts[$0] }
            var sampling = SamplingOptions(temperature: config.temperature, maxNewTokens: config.maxNewTokens)
            sampling.seed = state.seed &+ 0xC817 &+ UInt64(done) &* 7919
            var rollout = try RolloutMaker.make(policy: policy, reference: reference, critic: critic, scorer: scorer, prompts: batch,
                                                sampling: sampling, policyVersion: state.step, rule: scoreRule)
            rollout.scores = shapedScores(rollout)
            var rng = SeededRNG(seed: state.seed ^ 0xC817 ^ UInt64(done))
            let s = PPOUpdater(hyper: h).update(
                rollout: rollout, policy: policy, critic: critic, policyOpt: policyOpt, criticOpt: criticOpt, lr: 0,
                criticLR: config.criticLR, beta: kl.beta, maxGradNorm: config.optim.maxGradNorm, nextRehearsal: { nil },
                updatePolicy: false, rng: &rng)
            state.criticWarmupDone = done + 1
            progress.update(String(format: "critic warm-up %d/%d  value loss %.4f", done + 1, h.criticWarmupSteps, s.valueLoss),
                            force: done + 1 == h.criticWarmupSteps || (done + 1) % config.run.logEvery == 0)
            changed = true
        }
        if changed { try checkpoint() }
    }

    /// The score PPO optimises: the scorer's, normalised by the SFT statistics when configured, and
    /// replaced by `no_eos_score` for a response that ran out of tokens without EOS.
    public func shapedScores(_ rollout: RolloutBatch) -> [Double] {
        rollout.scores.indices.map { r in
            if let penalty = config.hyper.noEOSScore, rollout.sequence(r).last != policy.codec.eos { return penalty }
            guard let mean = state.scoreMean, let std = state.scoreStd else { return rollout.scores[r] }
            return (rollout.scores[r] - mean) / std
        }
    }

    /// One PPO update on a rollout (critic values must be filled in): KL control, metrics, progress,
    /// and a checkpoint on schedule. `rowWeights` down-weights stale rows (the distributed learner).
    @discardableResult
    public func train(on rollout: RolloutBatch, rowWeights: [Double]? = nil, extra: [String: Any] = [:]) throws -> PPOUpdater.Stats {
        var rng = SeededRNG(seed: state.seed ^ UInt64(state.step))
        let lr = config.optim.schedule.lr(at: state.step)
        var shaped = rollout
        shaped.scores = shapedScores(rollout)
        let s = PPOUpdater(hyper: config.hyper).update(
            rollout: shaped, policy: policy, critic: critic, policyOpt: policyOpt, criticOpt: criticOpt, lr: lr,
            criticLR: config.criticLR, beta: kl.beta, maxGradNorm: config.optim.maxGradNorm,
            nextRehearsal: { self.rehearsal.isEmpty ? nil : self.rehearsalSampler.next(self.config.hyper.rehearsalBatch).map { self.rehearsal[$0] } },
            rowWeights: rowWeights, rng: &rng)
        if config.hyper.adaptiveKL { kl.update(currentKL: s.kl, steps: rollout.count) }
        state.step += 1
        let noEOS = Double((0..<rollout.count).filter { rollout.sequence($0).last != policy.codec.eos }.count) / Double(max(rollout.count, 1))
        let rawScore = rollout.scores.reduce(0, +) / Double(max(rollout.count, 1))
        var record: [String: Any] = ["step": state.step, "score": rawScore, "shaped_score": s.score, "no_eos": noEOS, "gold": s.gold, "kl": s.kl, "kl_coef": kl.beta,
                                     "policy_loss": s.policyLoss, "value_loss": s.valueLoss, "clip_fraction": s.clipFraction,
                                     "entropy": s.entropy, "response_length": s.responseLength, "lr": Double(lr),
                                     "elapsed_s": Date().timeIntervalSince(startTime), "rollouts": rollout.count]
        if !rehearsal.isEmpty { record["rehearsal_nll"] = s.rehearsalNLL }
        if s.skippedUpdates > 0 {
            record["skipped_updates"] = s.skippedUpdates
            progress.note("step \(state.step): \(s.skippedUpdates) minibatch update(s) skipped: gradients not finite")
        }
        var perTask: [String: [Double]] = [:]
        for (t, g) in zip(rollout.tasks, rollout.gold) where !g.isNaN { perTask[t, default: []].append(g) }
        for (t, gs) in perTask { record["gold_" + t] = gs.reduce(0, +) / Double(gs.count) }
        metrics.write(record.merging(extra) { a, _ in a })
        let done = max(state.step - startStep, 1)
        let eta = Date().timeIntervalSince(startTime) / Double(done) * Double(max(config.optim.steps - state.step, 0))
        progress.update(String(format: "step %d/%d  score %.3f  gold %.3f  kl %.3f  pg %.4f  vf %.4f  len %.1f  ETA %@",
                               state.step, config.optim.steps, rawScore, s.gold, s.kl, s.policyLoss, s.valueLoss, s.responseLength,
                               Progress.duration(eta)), force: state.step % config.run.logEvery == 0 || state.step == config.optim.steps)
        if state.step % config.run.checkpointEvery == 0 || state.step == config.optim.steps { try checkpoint() }
        if config.run.snapshotEvery > 0 && state.step % config.run.snapshotEvery == 0 {
            try Checkpoint.save(policy, to: config.run.outDir + "/snapshots/step-\(state.step)")
        }
        return s
    }

    /// Samples the next prompt batch of the single-process run and makes its rollout.
    func nextRollout() throws -> RolloutBatch {
        let batch = sampler.next(config.optim.batchSize).map { prompts[$0] }
        var sampling = SamplingOptions(temperature: config.temperature, maxNewTokens: config.maxNewTokens)
        sampling.seed = state.seed &+ UInt64(state.step) &* 7919
        return try RolloutMaker.make(policy: policy, reference: reference, critic: critic, scorer: scorer, prompts: batch,
                                     sampling: sampling, policyVersion: state.step, rule: scoreRule)
    }

    public func run() throws -> (steps: Int, interrupted: Bool) {
        defer { directory.release() }
        progress.note("ppo: \(describe()), \(prompts.count) prompts")
        try prepare()
        while state.step < config.optim.steps {
            if shouldStop() {
                try checkpoint()
                progress.note("interrupted at step \(state.step): checkpoint written; continue with --resume")
                return (state.step, true)
            }
            try train(on: try nextRollout())
        }
        progress.note("done: \(state.step) PPO steps in \(Progress.duration(Date().timeIntervalSince(startTime))); policy at \(policyDir)")
        return (state.step, false)
    }
}
