import BallastModel
import Foundation

/// Model architecture section, shared by `init`, `sft` and the benchmarks.
public struct ModelSpec: Sendable, Equatable {
    /// Checkpoint folder to start from; when set, the architecture fields must be absent.
    public var initFrom: String?
    public var config: GPTConfig

    public static func read(_ s: ConfigSection) throws -> ModelSpec {
        let initFrom = try s.string("init_from", nil)
        let architecture = ["preset", "n_layer", "n_head", "n_embd", "n_positions", "vocab_size"]
        if initFrom != nil, let clash = architecture.first(where: { s.values[$0] != nil }) {
            throw ConfigError("\(s.origin(clash)): \"\(s.full(clash))\" cannot be combined with model.init_from (the checkpoint's config.json defines the architecture)")
        }
        let preset = try s.string("preset", "small")!
        guard var cfg = GPTConfig.preset(preset) else {
            throw ConfigError("\(s.origin("preset")): unknown model preset \"\(preset)\" (known: \(GPTConfig.presetNames.joined(separator: ", ")))")
        }
        cfg.nLayer = try s.positive("n_layer", cfg.nLayer)
        cfg.nHead = try s.positive("n_head", cfg.nHead)
        cfg.nEmbd = try s.positive("n_embd", cfg.nEmbd)
        cfg.nPositions = try s.positive("n_positions", cfg.nPositions)
        cfg.vocabSize = try s.positive("vocab_size", cfg.vocabSize)
        try s.finish()
        do { try cfg.validate() } catch { throw ConfigError("\(s.document.file): \(error)") }
        return ModelSpec(initFrom: initFrom, config: cfg)
    }
}

extension GPTConfig {
    public static let presetNames = ["tiny", "small", "medium"]
    /// tiny: tests; small: the benchmark config of the foundation issue; medium: a bigger CPU model.
    public static func preset(_ name: String) -> GPTConfig? {
        switch name {
        case "tiny": return .tiny
        case "small": return .small
        case "medium": return GPTConfig(nLayer: 6, nHead: 6, nEmbd: 384, nPositions: 256, vocabSize: 259)
        default: return nil
        }
    }
}

/// Everything `ballast sft` reads from its YAML file. Field meanings are in configs/README.md.
public struct SFTConfig: Sendable {
    public var model: ModelSpec
    // data
    public var trainData: String
    public var evalData: String?
    public var builtinTrainExamples: Int
    public var builtinEvalExamples: Int
    public var maxLength: Int
    // optimisation
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
    // bookkeeping
    public var evalEvery: Int
    public var evalGenerate: Int
    public var checkpointEvery: Int
    public var logEvery: Int
    public var threads: Int
    public var outDir: String

    public static func load(_ doc: ConfigDocument) throws -> SFTConfig {
        let top = doc.top
        let model = try ModelSpec.read(try top.section("model"))
        let d = try top.section("data")
        let t = try top.section("train")
        let r = try top.section("run")
        let steps = try t.positive("steps", 1000)
        var c = SFTConfig(
            model: model,
            trainData: try d.string("train", "builtin")!,
            evalData: try d.string("eval", "builtin"),
            builtinTrainExamples: try d.positive("builtin_train_examples", 20000),
            builtinEvalExamples: try d.positive("builtin_eval_examples", 256),
            maxLength: try d.positive("max_length", 64),
            steps: steps,
            batchSize: try t.positive("batch_size", 32),
            gradAccum: try t.positive("grad_accum", 1),
            lr: try t.float("lr", 1e-3),
            minLR: try t.float("min_lr", 1e-4),
            warmupSteps: try t.int("warmup_steps", min(50, steps / 10)),
            weightDecay: try t.float("weight_decay", 0.1),
            beta1: try t.float("beta1", 0.9),
            beta2: try t.float("beta2", 0.95),
            eps: try t.float("eps", 1e-8),
            maxGradNorm: try t.float("max_grad_norm", 1.0),
            seed: UInt64(try t.int("seed", 1)),
            evalEvery: try r.positive("eval_every", 200),
            evalGenerate: try r.int("eval_generate", 64),
            checkpointEvery: try r.positive("checkpoint_every", 500),
            logEvery: try r.positive("log_every", 10),
            threads: try r.positive("threads", 2),
            outDir: try r.string("out_dir", "runs/sft")!)
        if c.evalData == "none" { c.evalData = nil }
        try d.finish()
        try t.finish()
        try r.finish()
        try top.finish()
        if c.maxLength > c.model.config.nPositions && c.model.initFrom == nil {
            throw ConfigError("\(doc.file): data.max_length (\(c.maxLength)) exceeds model.n_positions (\(c.model.config.nPositions))")
        }
        if c.warmupSteps < 0 || c.warmupSteps > c.steps {
            throw ConfigError("\(doc.file): train.warmup_steps must be in 0...train.steps")
        }
        if !(c.lr > 0) || c.minLR < 0 || c.minLR > c.lr { throw ConfigError("\(doc.file): need 0 <= train.min_lr <= train.lr and lr > 0") }
        return c
    }
}
