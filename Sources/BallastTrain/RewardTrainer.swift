import BallastData
import BallastKernels
import BallastModel
import Foundation

/// Everything `ballast train-rm` reads from its YAML file.
public struct RewardConfig: Sendable {
    /// SFT checkpoint the reward model starts from (trunk copied, `score` head added at zero).
    public var initFrom: String
    public var trainData: String
    public var evalData: String?
    public var maxLength: Int
    public var optim: OptimConfig
    public var run: RunConfig

    public static func load(_ doc: ConfigDocument) throws -> RewardConfig {
        let top = doc.top
        let m = try top.section("model")
        guard let initFrom = try m.string("init_from", nil) else {
            throw ConfigError("\(doc.file): model.init_from is required (the SFT checkpoint to start from)")
        }
        try m.finish()
        let d = try top.section("data")
        guard let train = try d.string("train", nil) else { throw ConfigError("\(doc.file): data.train is required (preference JSONL)") }
        var c = RewardConfig(initFrom: initFrom, trainData: train, evalData: try d.string("eval", nil),
                             maxLength: try d.positive("max_length", 128),
                             optim: try OptimConfig.read(try top.section("train"), defaultSteps: 500, defaultBatch: 16, defaultLR: 1e-4),
                             run: try RunConfig.read(try top.section("run"), defaultOut: "runs/rm", generates: false))
        if c.evalData == "none" { c.evalData = nil }
        try d.finish()
        try top.finish()
        return c
    }
}

/// Reward model training: Bradley–Terry ranking loss −log σ(r(x, y_c) − r(x, y_r)) on the `score`
/// head read at each response's EOS, on top of the shared training loop.
public final class RewardTrainer {
    public let config: RewardConfig
    let loop: TrainingLoop
    let train: [EncodedPair]
    let eval: [EncodedPair]
    var sampler: EpochSampler
    public var model: GPT { loop.model }
    public var shouldStop: () -> Bool {
        get { loop.shouldStop }
        set { loop.shouldStop = newValue }
    }

    public init(config: RewardConfig, resume: Bool) throws {
        self.config = config
        loop = try TrainingLoop(name: "rm", optim: config.optim, run: config.run, resume: resume) {
            try Checkpoint.load(config.initFrom).withScalarHeads(["score"])
        }
        guard loop.model.config.scalarHeads.first == "score" else {
            throw ConfigError("\(config.run.outDir)/checkpoint: expected a reward model with a score head")
        }
        let maxLength = min(config.maxLength, loop.model.config.nPositions)
        let tr = try PreferenceData.load(config.trainData, maxLength: maxLength)
        train = tr.encoded
        if tr.dropped > 0 { loop.progress.note("note: dropped \(tr.dropped) training pairs longer than \(maxLength) tokens") }
        eval = try config.evalData.map { try PreferenceData.load($0, maxLength: maxLength).encoded } ?? []
        sampler = EpochSampler(count: train.count, seed: loop.state.seed, epoch: loop.state.epoch, cursor: loop.state.cursor)
    }

    func trainStep() -> StepResult {
        var loss = 0.0, correct = 0.0, tokens = 0
        let accum = config.optim.gradAccum
        for _ in 0..<accum {
            let pairs = sampler.next(config.optim.batchSize).map { train[$0] }
            let (batch, last, _) = PreferenceData.batch(pairs)
            model.forward(batch, computeLogits: false)
            let out = model.headOutputs, h = model.config.scalarHeads.count, b = pairs.count
            let chosen = (0..<b).map { Double(out[last[$0] * h]) }, rejected = (0..<b).map { Double(out[last[b + $0] * h]) }
            let r = PreferenceLosses.ranking(chosen: chosen, rejected: rejected)
            model.clearOutputGradients()
            for k in 0..<b {
                model.dHeads[last[k] * h] = Float(r.dChosen[k] / Double(accum))
                model.dHeads[last[b + k] * h] = Float(r.dRejected[k] / Double(accum))
            }
            model.backward(logitsGradient: false)
            loss += r.loss / Double(accum)
            correct += PreferenceLosses.accuracy(chosen: chosen, rejected: rejected) / Double(accum)
            tokens += Int(batch.mask.reduce(0, +))
        }
        return StepResult(loss: loss, tokens: tokens, metrics: ["accuracy": correct])
    }

    public func evaluate() -> [String: Double] {
        guard !eval.isEmpty else { return [:] }
        let (c, r) = PreferenceScorer.score(model, eval, batchSize: config.optim.batchSize)
        return ["eval_loss": PreferenceLosses.ranking(chosen: c, rejected: r).loss,
                "eval_accuracy": PreferenceLosses.accuracy(chosen: c, rejected: r),
                "eval_ece": PreferenceLosses.expectedCalibrationError(chosen: c, rejected: r)]
    }

    public func run() throws -> LoopSummary {
        loop.progress.note("train-rm: \(model.parameterCount) parameters from \(config.initFrom), \(train.count) train / \(eval.count) eval pairs, "
                           + "steps \(loop.state.step)→\(config.optim.steps), batch \(config.optim.batchSize) pairs, out \(config.run.outDir)")
        return try loop.train(step: trainStep, evaluate: evaluate, syncState: { state in
            state.epoch = self.sampler.epoch
            state.cursor = self.sampler.cursor
        })
    }
}
