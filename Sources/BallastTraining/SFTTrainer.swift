import BallastConfig
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

/// Supervised fine-tuning: mean token NLL on completion tokens (and EOS), with periodic evaluation
/// (loss and greedy exact match) on top of the shared training loop.
public final class SFTTrainer {
    public let config: SFTConfig
    let loop: TrainingLoop
    let train: [EncodedExample]
    let evalRaw: [SFTExample]
    let eval: [EncodedExample]
    var sampler: EpochSampler
    public var model: GPT { loop.model }
    /// Polled between steps; when it returns true the trainer checkpoints and returns.
    public var shouldStop: () -> Bool {
        get { loop.shouldStop }
        set { loop.shouldStop = newValue }
    }

    public init(config: SFTConfig, resume: Bool, restart: Bool = false) throws {
        self.config = config
        loop = try TrainingLoop(optim: config.optim, run: config.run, resume: resume, restart: restart) {
            if let from = config.model.initFrom { return try Checkpoint.load(from) }
            let m = try GPT(config: config.model.config)
            m.codec = try config.model.codec()
            m.initializeRandom(seed: config.optim.seed)
            return m
        }
        let ctx = loop.model.config.nPositions
        guard config.maxLength <= ctx else {
            throw ConfigError("data.max_length (\(config.maxLength)) exceeds the model's n_positions (\(ctx))")
        }
        let seed = config.optim.seed
        let codec = loop.model.codec
        let tr = try SFTEncoding.load(config.trainData, builtinCount: config.builtinTrainExamples, seed: seed, maxLength: config.maxLength,
                                      codec: codec)
        train = tr.encoded
        if tr.dropped > 0 { loop.progress.note("note: dropped \(tr.dropped) training examples longer than max_length \(config.maxLength)") }
        if let e = config.evalData {
            // The built-in eval set uses a different seed than training so the two do not overlap by construction.
            let ev = try SFTEncoding.load(e, builtinCount: config.builtinEvalExamples, seed: seed &+ 1_000_003, maxLength: config.maxLength,
                                          codec: codec)
            evalRaw = ev.raw
            eval = ev.encoded
        } else {
            evalRaw = []
            eval = []
        }
        sampler = EpochSampler(count: train.count, seed: loop.state.seed, epoch: loop.state.epoch, cursor: loop.state.cursor,
                               grouping: config.groupByLength ? .init(lengths: train.map(\.tokens.count), batch: config.optim.batchSize) : nil)
    }

    /// Gradients of one optimiser step over `gradAccum` micro-batches (mean over all completion tokens).
    func trainStep() -> StepResult {
        let micro = (0..<config.optim.gradAccum).map { _ in
            SFTEncoding.batch(sampler.next(config.optim.batchSize).map { train[$0] })
        }
        let totalWeight = micro.reduce(Float(0)) { $0 + $1.lossMask.reduce(0, +) }
        var loss: Double = 0
        var tokens = 0
        for (batch, targets, lossMask) in micro {
            model.forward(batch)
            let weights = lossMask.map { $0 / max(totalWeight, 1) }
            loss += Double(nll(batch, targets, weights))
            model.backward(headsGradient: false)
            tokens += Int(batch.mask.reduce(0, +))
        }
        return StepResult(loss: loss, tokens: tokens)
    }

    /// Σ weight·NLL over the last forward's logits; leaves ∂/∂logits in the model's buffer.
    func nll(_ batch: TokenBatch, _ targets: [Int32], _ weights: [Float]) -> Float {
        targets.withUnsafeBufferPointer { t in
            weights.withUnsafeBufferPointer { w in
                CrossEntropy.forwardBackward(logits: model.logits.baseAddress!, targets: t.baseAddress!, weights: w.baseAddress!,
                                             dlogits: model.dLogits, n: batch.tokens.count, v: model.config.vocabSize)
            }
        }
    }

    /// Mean completion-token NLL over the eval set.
    public func evaluateLoss() -> Double? {
        guard !eval.isEmpty else { return nil }
        var total: Double = 0, weight: Double = 0
        var i = 0
        while i < eval.count {
            let chunk = Array(eval[i..<min(i + config.optim.batchSize, eval.count)])
            i += chunk.count
            let (batch, targets, lossMask) = SFTEncoding.batch(chunk)
            model.forward(batch)
            total += Double(nll(batch, targets, lossMask))
            weight += Double(lossMask.reduce(0, +))
        }
        return total / max(weight, 1)
    }

    /// Greedy-decodes the first `eval_generate` eval prompts and returns the exact-match rate.
    public func evaluateExactMatch() throws -> Double? {
        let k = min(config.run.evalGenerate, evalRaw.count)
        guard k > 0 else { return nil }
        let codec = model.codec
        let examples = Array(evalRaw.prefix(k))
        // a conversation's prompt is everything before its last assistant turn
        let prompts = try examples.map { e in
            try codec.promptIds(text: e.prompt, messages: e.messages.map { m in Array(m[..<(m.lastIndex { $0.role == "assistant" } ?? m.count)]) })
        }
        let maxNew = min(config.maxLength, model.config.nPositions) - prompts.map(\.count).max()!
        guard maxNew > 0 else { return nil }
        let gens = try Generator(model: model).generate(prompts: prompts, options: SamplingOptions(greedy: true, maxNewTokens: maxNew))
        return BuiltinSFT.exactMatch(examples, gens.map { codec.decodeResponse($0.outputIds) })
    }

    public func run() throws -> SFTSummary {
        loop.progress.note("sft: \(model.parameterCount) parameters, \(train.count) train / \(eval.count) eval examples, "
                           + "steps \(loop.state.step)→\(config.optim.steps), batch \(config.optim.batchSize)×\(config.optim.gradAccum), "
                           + "threads \(config.run.threads), out \(config.run.outDir)")
        let s = try loop.train(step: trainStep, evaluate: {
            var m: [String: Double] = [:]
            if let l = self.evaluateLoss() { m["eval_loss"] = l }
            if let e = try self.evaluateExactMatch() { m["eval_exact_match"] = e }
            return m
        }, syncState: { state in
            state.epoch = self.sampler.epoch
            state.cursor = self.sampler.cursor
        })
        return SFTSummary(steps: s.steps, finalLoss: s.finalLoss, evalLoss: loop.state.lastEvalLoss,
                          exactMatch: s.lastEval["eval_exact_match"], checkpoint: s.checkpoint, interrupted: s.interrupted)
    }
}
