import BallastData
import BallastKernels
import BallastModel
import BallastOptim
import Foundation

public struct SFTSummary: Sendable {
    public var steps: Int
    public var finalLoss: Double
    public var evalLoss: Double?
    public var exactMatch: Double?
    public var checkpoint: String
    public var interrupted: Bool
}

/// Supervised fine-tuning: mean token NLL on completion tokens, AdamW, clipping, warmup + cosine,
/// gradient accumulation, periodic evaluation and atomic checkpoints that `resume` continues exactly.
public final class SFTTrainer {
    public let config: SFTConfig
    public let model: GPT
    let optimizer: AdamW
    let schedule: CosineSchedule
    let train: [EncodedExample]
    let evalRaw: [SFTExample]
    let eval: [EncodedExample]
    var state: TrainerState
    var sampler: EpochSampler
    let progress = Progress()
    /// Polled between steps; when it returns true the trainer checkpoints and returns.
    public var shouldStop: () -> Bool = { false }

    public var checkpointDir: String { config.outDir + "/checkpoint" }

    public init(config: SFTConfig, resume: Bool) throws {
        self.config = config
        Parallel.threads = config.threads
        BLAS.setThreads(config.threads)
        try FileManager.default.createDirectory(atPath: config.outDir, withIntermediateDirectories: true)

        let resumeDir = resume ? TrainingCheckpoint.locate(config.outDir + "/checkpoint") : nil
        if resume && resumeDir == nil {
            throw ConfigError("\(config.outDir)/checkpoint: nothing to resume (no trainer_state.json)")
        }
        if let resumeDir {
            model = try Checkpoint.load(resumeDir)
        } else if let from = config.model.initFrom {
            model = try Checkpoint.load(from)
        } else {
            model = try GPT(config: config.model.config)
            model.initializeRandom(seed: config.seed)
        }
        let ctx = model.config.nPositions
        guard config.maxLength <= ctx else {
            throw ConfigError("data.max_length (\(config.maxLength)) exceeds the model's n_positions (\(ctx))")
        }
        optimizer = AdamW(count: model.parameterCount,
                          decayRanges: model.layout.entries.filter(\.decays).map { $0.offset..<($0.offset + $0.count) },
                          hyper: .init(beta1: config.beta1, beta2: config.beta2, eps: config.eps, weightDecay: config.weightDecay))
        schedule = CosineSchedule(peak: config.lr, minLR: config.minLR, warmupSteps: config.warmupSteps, totalSteps: config.steps)

        let tr = try SFTEncoding.load(config.trainData, builtinCount: config.builtinTrainExamples, seed: config.seed, maxLength: config.maxLength)
        train = tr.encoded
        if tr.dropped > 0 { progress.note("note: dropped \(tr.dropped) training examples longer than max_length \(config.maxLength)") }
        if let e = config.evalData {
            // The built-in eval set uses a different seed than training so the two do not overlap by construction.
            let ev = try SFTEncoding.load(e, builtinCount: config.builtinEvalExamples, seed: config.seed &+ 1_000_003, maxLength: config.maxLength)
            evalRaw = ev.raw
            eval = ev.encoded
        } else {
            evalRaw = []
            eval = []
        }
        if let resumeDir {
            state = try TrainingCheckpoint.load(from: resumeDir, optimizer: optimizer)
            progress.note("resumed from \(resumeDir) at step \(state.step)")
        } else {
            state = TrainerState(step: 0, epoch: 0, cursor: 0, seed: config.seed, tokensSeen: 0, lastEvalLoss: nil)
        }
        sampler = EpochSampler(count: train.count, seed: state.seed, epoch: state.epoch, cursor: state.cursor)
    }

    /// One optimiser step over `gradAccum` micro-batches; returns (mean token loss, grad norm, tokens).
    func trainStep() -> (loss: Double, norm: Float, tokens: Int) {
        let micro = (0..<config.gradAccum).map { _ in
            SFTEncoding.batch(sampler.next(config.batchSize).map { train[$0] })
        }
        let totalWeight = micro.reduce(Float(0)) { $0 + $1.lossMask.reduce(0, +) }
        model.zeroGrad()
        var loss: Double = 0
        var tokens = 0
        for (batch, targets, lossMask) in micro {
            model.forward(batch)
            let weights = lossMask.map { $0 / max(totalWeight, 1) }
            let n = batch.batch * batch.length
            let l = targets.withUnsafeBufferPointer { t in
                weights.withUnsafeBufferPointer { w in
                    CrossEntropy.forwardBackward(logits: model.logits.baseAddress!, targets: t.baseAddress!,
                                                 weights: w.baseAddress!, dlogits: model.dLogits, n: n, v: model.config.vocabSize)
                }
            }
            loss += Double(l)
            model.backward(headsGradient: false)
            tokens += Int(batch.mask.reduce(0, +))
        }
        let norm = GradientClipping.clip(model.grads, count: model.parameterCount, maxNorm: config.maxGradNorm)
        optimizer.update(params: model.params, grads: model.grads, lr: schedule.lr(at: state.step))
        return (loss, norm, tokens)
    }

    /// Mean completion-token NLL over the eval set.
    public func evaluateLoss() -> Double? {
        guard !eval.isEmpty else { return nil }
        var total: Double = 0, weight: Double = 0
        var i = 0
        while i < eval.count {
            let chunk = Array(eval[i..<min(i + config.batchSize, eval.count)])
            i += chunk.count
            let (batch, targets, lossMask) = SFTEncoding.batch(chunk)
            model.forward(batch)
            let n = batch.batch * batch.length
            let l = targets.withUnsafeBufferPointer { t in
                lossMask.withUnsafeBufferPointer { w in
                    CrossEntropy.forwardBackward(logits: model.logits.baseAddress!, targets: t.baseAddress!,
                                                 weights: w.baseAddress!, dlogits: model.dLogits, n: n, v: model.config.vocabSize)
                }
            }
            total += Double(l)
            weight += Double(lossMask.reduce(0, +))
        }
        return total / max(weight, 1)
    }

    /// Greedy-decodes the first `evalGenerate` eval prompts and returns the exact-match rate.
    public func evaluateExactMatch() throws -> Double? {
        let k = min(config.evalGenerate, evalRaw.count)
        guard k > 0 else { return nil }
        let tok = ByteTokenizer()
        let examples = Array(evalRaw.prefix(k))
        let prompts = examples.map { [ByteTokenizer.bos] + tok.encode($0.prompt) }
        let longest = prompts.map(\.count).max()!
        let maxNew = min(config.maxLength, model.config.nPositions) - longest
        guard maxNew > 0 else { return nil }
        let gens = try Generator(model: model).generate(prompts: prompts, options: SamplingOptions(greedy: true, maxNewTokens: maxNew))
        return BuiltinSFT.exactMatch(examples, gens.map { tok.decode($0.outputIds.filter { $0 != ByteTokenizer.eos }) })
    }

    func checkpoint() throws {
        state.epoch = sampler.epoch
        state.cursor = sampler.cursor
        try TrainingCheckpoint.save(model: model, optimizer: optimizer, state: state, to: checkpointDir)
    }

    public func run() throws -> SFTSummary {
        let metrics = try MetricsLog(path: config.outDir + "/metrics.jsonl", keepUpTo: state.step)
        let start = Date()
        let startStep = state.step
        var lastLoss = Double.nan
        var exact: Double?
        var windowTokens = 0
        var windowStart = Date()
        progress.note("sft: \(model.parameterCount) parameters, \(train.count) train / \(eval.count) eval examples, "
                      + "steps \(state.step)→\(config.steps), batch \(config.batchSize)×\(config.gradAccum), threads \(config.threads), out \(config.outDir)")
        while state.step < config.steps {
            if shouldStop() {
                try checkpoint()
                progress.note("interrupted at step \(state.step): checkpoint written to \(checkpointDir); continue with --resume")
                return SFTSummary(steps: state.step, finalLoss: lastLoss, evalLoss: state.lastEvalLoss, exactMatch: exact,
                                  checkpoint: checkpointDir, interrupted: true)
            }
            let lr = schedule.lr(at: state.step)
            let (loss, norm, tokens) = trainStep()
            state.step += 1
            state.tokensSeen += tokens
            windowTokens += tokens
            lastLoss = loss
            guard loss.isFinite else {
                throw ConfigError("loss became \(loss) at step \(state.step); lower train.lr or check the data (last checkpoint is intact)")
            }
            let elapsed = Date().timeIntervalSince(windowStart)
            let tps = Double(windowTokens) / max(elapsed, 1e-9)
            metrics.write(["step": state.step, "loss": loss, "lr": Double(lr), "grad_norm": Double(norm),
                           "tokens_per_s": tps, "elapsed_s": Date().timeIntervalSince(start)])
            let done = state.step - startStep
            let eta = Date().timeIntervalSince(start) / Double(done) * Double(config.steps - state.step)
            let line = String(format: "step %d/%d  loss %.4f  lr %.2e  |g| %.2f  %.0f tok/s  ETA %@",
                              state.step, config.steps, loss, lr, norm, tps, Progress.duration(eta))
            progress.update(line, force: state.step % config.logEvery == 0 || state.step == config.steps)
            if state.step % config.logEvery == 0 {
                windowTokens = 0
                windowStart = Date()
            }
            if state.step % config.evalEvery == 0 || state.step == config.steps {
                let evalLoss = evaluateLoss()
                exact = try evaluateExactMatch()
                state.lastEvalLoss = evalLoss
                var record: [String: Any] = ["step": state.step]
                if let evalLoss { record["eval_loss"] = evalLoss }
                if let exact { record["eval_exact_match"] = exact }
                metrics.write(record)
                progress.note(String(format: "eval @ step %d: loss %@  exact match %@", state.step,
                                     evalLoss.map { String(format: "%.4f", $0) } ?? "-",
                                     exact.map { String(format: "%.1f%%", 100 * $0) } ?? "-"))
            }
            if state.step % config.checkpointEvery == 0 || state.step == config.steps {
                try checkpoint()
            }
        }
        progress.note("done: \(state.step) steps in \(Progress.duration(Date().timeIntervalSince(start))); model at \(checkpointDir)")
        return SFTSummary(steps: state.step, finalLoss: lastLoss, evalLoss: state.lastEvalLoss, exactMatch: exact,
                          checkpoint: checkpointDir, interrupted: false)
    }
}
