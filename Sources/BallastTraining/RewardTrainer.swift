import BallastConfig
import BallastData
import BallastKernels
import BallastModel
import Foundation

/// Everything `ballast train-rm` and `ballast train-am` read from their YAML files.
public struct RewardConfig: Sendable {
    public enum Kind: String, Sendable { case reward = "rm", advantage = "am" }
    public var kind: Kind
    /// Advantage Model terms (`am` section; train-am only).
    public var advantage: AdvantageLoss
    /// SFT checkpoint the reward model starts from (trunk copied, `score` head added at zero).
    public var initFrom: String
    public var trainData: String
    public var evalData: String?
    public var maxLength: Int
    /// Batches of pairs of similar length (`data.group_by_length`): same epochs, other batch composition.
    public var groupByLength = false
    public var optim: OptimConfig
    public var run: RunConfig

    public static func load(_ doc: ConfigDocument, kind: Kind = .reward) throws -> RewardConfig {
        let top = doc.top
        var am = AdvantageLoss()
        if kind == .advantage {
            let s = try top.section("am")
            am.ranking = try s.double("ranking", am.ranking)
            am.expected = try s.double("expected", am.expected)
            am.bound = try s.double("bound", am.bound)
            am.margin = try s.double("margin", am.margin)
            am.taskMean = try s.double("task_mean", am.taskMean)
            am.taskSpread = try s.double("task_spread", am.taskSpread)
            am.targetStd = try s.double("target_std", am.targetStd)
            am.momentum = try s.double("momentum", am.momentum)
            am.baselineOnly = try s.bool("baseline_only", am.baselineOnly)
            am.detachExpected = try s.bool("detach_expected", am.detachExpected)
            am.scaled = try s.bool("scale_head", am.scaled)
            am.scale = try s.double("scale", am.scale)
            try s.finish()
            guard (0..<1).contains(am.momentum) else { throw ConfigError("\(doc.file): am.momentum must be in [0, 1)") }
            if am.scaled && am.baselineOnly {
                throw ConfigError("\(doc.file): am.baseline_only applies to the unscaled form only (with scale_head: true, r already takes only the ranking gradient)")
            }
        }
        let m = try top.section("model")
        guard let initFrom = try m.string("init_from", nil) else {
            throw ConfigError("\(doc.file): model.init_from is required (the SFT checkpoint to start from)")
        }
        try m.finish()
        let d = try top.section("data")
        guard let train = try d.string("train", nil) else { throw ConfigError("\(doc.file): data.train is required (preference JSONL)") }
        var c = RewardConfig(kind: kind, advantage: am, initFrom: initFrom, trainData: train, evalData: try d.string("eval", nil),
                             maxLength: try d.positive("max_length", 128),
                             optim: try OptimConfig.read(try top.section("train"), defaultSteps: 500, defaultBatch: 16, defaultLR: 1e-4),
                             run: try RunConfig.read(try top.section("run"), defaultOut: "runs/\(kind.rawValue)", generates: false))
        if c.evalData == "none" { c.evalData = nil }
        c.groupByLength = try d.bool("group_by_length", false)
        try d.finish()
        try top.finish()
        return c
    }
}

/// Reward model training: Bradley–Terry ranking loss −log σ(r(x, y_c) − r(x, y_r)) on the `score`
/// head read at each response's EOS. Advantage Model training adds the `expected_reward_head` (and in the
/// scaled form the `advantage_scale_head`) read at the prompt's last token and optimises `AdvantageLoss`. Both run on the shared loop.
public final class RewardTrainer {
    public let config: RewardConfig
    let loop: TrainingLoop
    let train: [EncodedPair]
    let eval: [EncodedPair]
    var sampler: EpochSampler
    var taskStats: [String: AdvantageLoss.TaskStats] = [:]
    public var model: GPT { loop.model }
    public var shouldStop: () -> Bool {
        get { loop.shouldStop }
        set { loop.shouldStop = newValue }
    }

    public init(config: RewardConfig, resume: Bool, restart: Bool = false) throws {
        self.config = config
        let heads = ScoreHeads.list(advantage: config.kind == .advantage, scaled: config.advantage.scaled)
        loop = try TrainingLoop(optim: config.optim, run: config.run, resume: resume, restart: restart) {
            try Checkpoint.load(config.initFrom).withScalarHeads(heads)
        }
        guard loop.model.config.scalarHeads == heads else {
            throw ConfigError("\(config.run.outDir)/checkpoint: expected scalar heads \(heads), found \(loop.model.config.scalarHeads)")
        }
        taskStats = loop.state.taskStats ?? [:]
        if config.kind == .advantage && config.advantage.detachExpected {
            // the probe heads (every head after `score`) are clipped apart from the trunk and r
            loop.clippedApart = (1..<heads.count).map(loop.model.layout.headRange)
        }
        let maxLength = min(config.maxLength, loop.model.config.nPositions)
        let codec = loop.model.codec
        let tr = try PreferenceData.load(config.trainData, maxLength: maxLength, codec: codec)
        train = tr.encoded
        if tr.dropped > 0 { loop.progress.note("note: dropped \(tr.dropped) training pairs longer than \(maxLength) tokens") }
        eval = try config.evalData.map { try PreferenceData.load($0, maxLength: maxLength, codec: codec).encoded } ?? []
        sampler = EpochSampler(count: train.count, seed: loop.state.seed, epoch: loop.state.epoch, cursor: loop.state.cursor,
                               grouping: config.groupByLength ? .init(lengths: train.map { max($0.chosen.count, $0.rejected.count) },
                                                                      batch: config.optim.batchSize) : nil)
    }

    func trainStep() -> StepResult {
        var loss = 0.0, correct = 0.0, tokens = 0
        var terms: [String: Double] = [:]
        let accum = config.optim.gradAccum
        for _ in 0..<accum {
            let pairs = sampler.next(config.optim.batchSize).map { train[$0] }
            let (batch, last, promptLast) = PreferenceData.batch(pairs)
            model.forward(batch, computeLogits: false)
            let out = model.headOutputs, h = model.config.scalarHeads.count, b = pairs.count
            let chosen = (0..<b).map { Double(out[last[$0] * h]) }, rejected = (0..<b).map { Double(out[last[b + $0] * h]) }
            model.clearOutputGradients()
            let scale = 1 / Double(accum)
            if config.kind == .advantage {
                let e = (0..<b).map { Double(out[promptLast[$0] * h + 1]) }
                let z = config.advantage.scaled ? (0..<b).map { Double(out[promptLast[$0] * h + 2]) } : nil
                let r = config.advantage.compute(rChosen: chosen, rRejected: rejected, expected: e, logScale: z, tasks: pairs.map(\.task), stats: taskStats)
                taskStats = r.stats
                for k in 0..<b {
                    model.dHeads[last[k] * h] = Float(r.dChosen[k] * scale)
                    model.dHeads[last[b + k] * h] = Float(r.dRejected[k] * scale)
                    model.dHeads[promptLast[k] * h + 1] = Float(r.dExpected[k] * scale)
                    if config.advantage.scaled { model.dHeads[promptLast[k] * h + 2] = Float(r.dLogScale[k] * scale) }
                }
                loss += r.total * scale
                for (name, v) in r.terms { terms[name, default: 0] += v * scale }
            } else {
                let r = PreferenceLosses.ranking(chosen: chosen, rejected: rejected)
                for k in 0..<b {
                    model.dHeads[last[k] * h] = Float(r.dChosen[k] * scale)
                    model.dHeads[last[b + k] * h] = Float(r.dRejected[k] * scale)
                }
                loss += r.loss * scale
            }
            model.backward(logitsGradient: false, detachedHeads: config.kind == .advantage && config.advantage.detachExpected ? Array(1..<h) : [])
            correct += PreferenceLosses.accuracy(chosen: chosen, rejected: rejected) / Double(accum)
            tokens += Int(batch.mask.reduce(0, +))
        }
        var metrics = ["accuracy": correct]
        for (k, v) in terms { metrics["am_" + k] = v }
        return StepResult(loss: loss, tokens: tokens, metrics: metrics)
    }

    public func evaluate() -> [String: Double] {
        guard !eval.isEmpty else { return [:] }
        let s = PreferenceScorer.score(model, eval, batchSize: config.optim.batchSize)
        let (c, r) = (s.chosen, s.rejected)
        var m = ["eval_loss": PreferenceLosses.ranking(chosen: c, rejected: r).loss,
                 "eval_accuracy": PreferenceLosses.accuracy(chosen: c, rejected: r),
                 "eval_ece": PreferenceLosses.expectedCalibrationError(chosen: c, rejected: r)]
        let tasks = eval.map(\.task)
        m["eval_r_task_mean_spread"] = RewardReport(chosen: c, rejected: r, tasks: tasks).taskMeanSpread
        if config.kind == .advantage {
            m["eval_a_task_mean_spread"] = RewardReport(chosen: s.advantageChosen, rejected: s.advantageRejected, tasks: tasks).taskMeanSpread
        }
        return m
    }

    public func run() throws -> LoopSummary {
        loop.progress.note("train-\(config.kind.rawValue): \(model.parameterCount) parameters from \(config.initFrom), \(train.count) train / \(eval.count) eval pairs, "
                           + "steps \(loop.state.step)→\(config.optim.steps), batch \(config.optim.batchSize) pairs, out \(config.run.outDir)")
        return try loop.train(step: trainStep, evaluate: evaluate, syncState: { state in
            state.epoch = self.sampler.epoch
            state.cursor = self.sampler.cursor
            state.taskStats = self.config.kind == .advantage ? self.taskStats : nil
        })
    }
}
