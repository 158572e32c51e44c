import BallastConfig
import BallastKernels
import BallastModel
import BallastOptim
import Foundation

/// The `train` section shared by every trainer: optimisation hyper-parameters.
public struct OptimConfig: Sendable, Equatable {
    public var steps: Int
    public var batchSize: Int
    public var gradAccum: Int
    public var lr: Float
    public var minLR: Float
    public var warmupSteps: Int
    public var weightDecay: Float
    public var beta1: Float
    public var beta2: Float
    public var eps: Float
    public var maxGradNorm: Float
    public var seed: UInt64

    public static func read(_ t: ConfigSection, defaultSteps: Int = 1000, defaultBatch: Int = 32, defaultLR: Float = 1e-3) throws -> OptimConfig {
        let steps = try t.positive("steps", defaultSteps)
        let c = OptimConfig(
            steps: steps, batchSize: try t.positive("batch_size", defaultBatch), gradAccum: try t.positive("grad_accum", 1),
            lr: try t.float("lr", defaultLR), minLR: try t.float("min_lr", defaultLR / 10),
            warmupSteps: try t.int("warmup_steps", min(50, steps / 10)), weightDecay: try t.float("weight_decay", 0.1),
            beta1: try t.float("beta1", 0.9), beta2: try t.float("beta2", 0.95), eps: try t.float("eps", 1e-8),
            maxGradNorm: try t.float("max_grad_norm", 1.0), seed: UInt64(try t.int("seed", 1)))
        try t.finish()
        let file = t.document.file
        if c.warmupSteps < 0 || c.warmupSteps > c.steps { throw ConfigError("\(file): train.warmup_steps must be in 0...train.steps") }
        if !(c.lr > 0) || c.minLR < 0 || c.minLR > c.lr { throw ConfigError("\(file): need 0 <= train.min_lr <= train.lr and lr > 0") }
        return c
    }

    public func makeOptimizer(for model: GPT) -> AdamW {
        AdamW(count: model.parameterCount,
              decayRanges: model.layout.decayRanges,
              hyper: .init(beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay))
    }

    public var schedule: CosineSchedule { CosineSchedule(peak: lr, minLR: minLR, warmupSteps: warmupSteps, totalSteps: steps) }
}

/// The `run` section shared by every trainer: where outputs go and how often things happen.
public struct RunConfig: Sendable, Equatable {
    public var outDir: String
    public var evalEvery: Int
    public var evalGenerate: Int
    public var checkpointEvery: Int
    public var logEvery: Int
    public var threads: Int
    /// SFT and PPO: also keep the model of every N-th step as RUN/snapshots/step-N (model files only),
    /// for evaluation along training (PPO) or an early checkpoint in the labelling panel (SFT); 0 = off.
    public var snapshotEvery = 0

    /// `generates`: whether this trainer decodes eval prompts (the `eval_generate` key exists only then);
    /// `snapshots`: whether it keeps model snapshots (SFT, PPO; the `snapshot_every` key exists only then).
    public static func read(_ r: ConfigSection, defaultOut: String, generates: Bool, snapshots: Bool = false) throws -> RunConfig {
        var c = RunConfig(outDir: try r.string("out_dir", defaultOut)!, evalEvery: try r.positive("eval_every", 200),
                          evalGenerate: generates ? try r.int("eval_generate", 64) : 0,
                          checkpointEvery: try r.positive("checkpoint_every", 500), logEvery: try r.positive("log_every", 10),
                          threads: try r.positive("threads", 2))
        if snapshots { c.snapshotEvery = try r.int("snapshot_every", 0) }
        try r.finish()
        return c
    }
}

/// One optimiser step's outcome, reported by a trainer's step function.
public struct StepResult {
    public var loss: Double
    public var tokens: Int
    /// Extra per-step metrics (e.g. accuracy), logged beside loss.
    public var metrics: [String: Double] = [:]
    public init(loss: Double, tokens: Int, metrics: [String: Double] = [:]) {
        self.loss = loss
        self.tokens = tokens
        self.metrics = metrics
    }
}

public struct LoopSummary: Sendable {
    public var steps: Int
    public var finalLoss: Double
    public var lastEval: [String: Double]
    public var checkpoint: String
    public var interrupted: Bool
}

/// The loop every trainer shares: gradient step, clipping, AdamW with the schedule, metrics JSONL,
/// progress, periodic evaluation, atomic checkpoints (also on a stop request) and exact resume.
public final class TrainingLoop {
    public let model: GPT
    public let optimizer: AdamW
    public let optim: OptimConfig
    public let run: RunConfig
    public var state: TrainerState
    public let progress = Progress()
    public var shouldStop: () -> Bool = { false }
    /// Parameter ranges clipped by their own gradient norm (see `AdamW.clippedUpdate`).
    public var clippedApart: [Range<Int>] = []
    public var checkpointDir: String { run.outDir + "/checkpoint" }

    /// Holds the run folder's lock while the loop lives.
    let directory: RunDirectory
    /// Updates skipped in a row (non-finite loss or gradients) before the run stops.
    static let maxConsecutiveSkips = 5

    /// Loads the model from RUN/checkpoint when resuming, else from `initial()`; restores optimiser
    /// and trainer state on resume. A fresh start over an existing checkpoint needs `restart`.
    public init(optim: OptimConfig, run: RunConfig, resume: Bool, restart: Bool = false, initial: () throws -> GPT) throws {
        self.optim = optim
        self.run = run
        Parallel.threads = run.threads
        BLAS.setThreads(run.threads)
        try RunDirectory.prepare(run.outDir, resume: resume, restart: restart)
        directory = try RunDirectory(lock: run.outDir)
        let resumeDir = resume ? TrainingCheckpoint.locate(run.outDir + "/checkpoint") : nil
        if resume && resumeDir == nil {
            throw ConfigError("\(run.outDir)/checkpoint: nothing to resume (no trainer_state.json)")
        }
        model = try resumeDir.map(Checkpoint.load) ?? initial()
        optimizer = optim.makeOptimizer(for: model)
        if let resumeDir {
            state = try TrainingCheckpoint.load(from: resumeDir, optimizer: optimizer)
            progress.note("resumed from \(resumeDir) at step \(state.step)")
        } else {
            state = TrainerState(step: 0, epoch: 0, cursor: 0, seed: optim.seed, tokensSeen: 0, lastEvalLoss: nil)
        }
    }

    /// Runs to `optim.steps`. `step` fills gradients (already zeroed) and reports its loss;
    /// `evaluate` returns metrics whose "eval_loss" (if any) is kept in the trainer state;
    /// `syncState` stores data-order position into the state before each checkpoint.
    public func train(step: () throws -> StepResult, evaluate: () throws -> [String: Double],
                      syncState: (inout TrainerState) -> Void) throws -> LoopSummary {
        defer { directory.release() }
        let metrics = try MetricsLog(path: run.outDir + "/metrics.jsonl", keepUpTo: state.step)
        let schedule = optim.schedule
        let start = Date(), startStep = state.step
        var lastLoss = Double.nan
        var lastEval: [String: Double] = [:]
        var windowTokens = 0, windowStart = Date()
        var skipped = 0, consecutiveSkips = 0
        func checkpoint() throws {
            syncState(&state)
            try TrainingCheckpoint.save(model: model, optimizer: optimizer, state: state, to: checkpointDir)
        }
        while state.step < optim.steps {
            if shouldStop() {
                try checkpoint()
                progress.note("interrupted at step \(state.step): checkpoint written to \(checkpointDir); continue with --resume")
                return LoopSummary(steps: state.step, finalLoss: lastLoss, lastEval: lastEval, checkpoint: checkpointDir, interrupted: true)
            }
            let lr = schedule.lr(at: state.step)
            model.zeroGrad()
            let r = try step()
            let norm = GradientClipping.globalNorm(model.grads, count: model.parameterCount)
            state.step += 1
            state.tokensSeen += r.tokens
            windowTokens += r.tokens
            // A non-finite loss or gradient would make every weight NaN: skip that update (the batch is
            // consumed), count it, and stop when it keeps happening.
            if r.loss.isFinite && norm.isFinite {
                consecutiveSkips = 0
                optimizer.clippedUpdate(params: model.params, grads: model.grads, lr: lr, maxGradNorm: optim.maxGradNorm, clippedApart: clippedApart)
                lastLoss = r.loss
                let tps = Double(windowTokens) / max(Date().timeIntervalSince(windowStart), 1e-9)
                var record: [String: Any] = ["step": state.step, "loss": r.loss, "lr": Double(lr), "grad_norm": Double(norm),
                                             "tokens_per_s": tps, "elapsed_s": Date().timeIntervalSince(start)]
                if skipped > 0 { record["skipped_updates"] = skipped }
                for (k, v) in r.metrics { record[k] = v }
                metrics.write(record)
                let eta = Date().timeIntervalSince(start) / Double(state.step - startStep) * Double(optim.steps - state.step)
                var line = String(format: "step %d/%d  loss %.4f  lr %.2e  |g| %.2f  %.0f tok/s  ETA %@",
                                  state.step, optim.steps, r.loss, lr, norm, tps, Progress.duration(eta))
                for (k, v) in r.metrics.sorted(by: { $0.key < $1.key }) { line += String(format: "  %@ %.3f", k, v) }
                progress.update(line, force: state.step % run.logEvery == 0 || state.step == optim.steps)
            } else {
                skipped += 1
                consecutiveSkips += 1
                metrics.write(["step": state.step, "skipped_update": 1, "skipped_updates": skipped])
                progress.note("step \(state.step): loss \(r.loss), gradient norm \(norm): update skipped (\(skipped) so far)")
                if consecutiveSkips >= Self.maxConsecutiveSkips {
                    throw ConfigError("loss or gradients non-finite for \(consecutiveSkips) steps in a row (step \(state.step)); "
                                      + "lower train.lr or check the data (the last checkpoint is intact)")
                }
            }
            if state.step % run.logEvery == 0 {
                windowTokens = 0
                windowStart = Date()
            }
            if state.step % run.evalEvery == 0 || state.step == optim.steps {
                lastEval = try evaluate()
                state.lastEvalLoss = lastEval["eval_loss"]
                var rec: [String: Any] = ["step": state.step]
                for (k, v) in lastEval { rec[k] = v }
                metrics.write(rec)
                progress.note("eval @ step \(state.step): " + lastEval.sorted { $0.key < $1.key }.map { String(format: "%@ %.4f", $0.key, $0.value) }.joined(separator: "  "))
            }
            if state.step % run.checkpointEvery == 0 || state.step == optim.steps {
                try checkpoint()
            }
            if run.snapshotEvery > 0 && state.step % run.snapshotEvery == 0 {
                try Checkpoint.save(model, to: run.outDir + "/snapshots/step-\(state.step)")
            }
        }
        progress.note("done: \(state.step) steps in \(Progress.duration(Date().timeIntervalSince(start))); model at \(checkpointDir)")
        return LoopSummary(steps: state.step, finalLoss: lastLoss, lastEval: lastEval, checkpoint: checkpointDir, interrupted: false)
    }
}
