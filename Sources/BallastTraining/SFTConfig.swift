import BallastConfig
import BallastModel
import Foundation

/// Model architecture section, shared by `init`, `sft` and the benchmarks.
public struct ModelSpec: Sendable, Equatable {
    /// Checkpoint folder to start from; when set, the architecture fields must be absent.
    public var initFrom: String?
    public var config: GPTConfig
    /// A Hugging Face tokenizer folder for a new model (the byte tokenizer when nil); `vocab_size` then
    /// defaults to the tokenizer's.
    public var tokenizer: String?

    /// The codec a new model of this spec uses.
    public func codec() throws -> TextCodec {
        do { return try tokenizer.map { try TextCodec.load(directory: $0) } ?? .bytes } catch { throw ConfigError("model.tokenizer: \(error)") }
    }

    public static func read(_ s: ConfigSection) throws -> ModelSpec {
        let initFrom = try s.string("init_from", nil)
        let shapeKeys = ["architecture", "preset", "n_layer", "n_head", "n_embd", "n_positions", "vocab_size",
                         "n_kv_head", "intermediate_size", "rope_theta", "tie_word_embeddings", "tokenizer"]
        if initFrom != nil, let clash = shapeKeys.first(where: { s.values[$0] != nil }) {
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
        let tokenizer = try s.string("tokenizer", nil)
        var tokenizerIDs = 0
        if let tokenizer {
            let codec: TextCodec
            do { codec = try TextCodec.load(directory: tokenizer) } catch { throw ConfigError("\(s.origin("tokenizer")): \(error)") }
            tokenizerIDs = codec.vocabSize
            cfg.vocabSize = codec.vocabSize
        }
        cfg.vocabSize = try s.positive("vocab_size", cfg.vocabSize)
        if cfg.vocabSize < tokenizerIDs {
            throw ConfigError("\(s.origin("vocab_size")): vocab_size \(cfg.vocabSize) is smaller than the tokenizer's \(tokenizerIDs) ids")
        }
        let name = try s.string("architecture", "gpt2")!
        guard let architecture = Architecture(rawValue: name) else {
            throw ConfigError("\(s.origin("architecture")): unknown architecture \"\(name)\" (known: \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        cfg = cfg.converted(to: architecture)
        let llamaKeys = ["n_kv_head", "intermediate_size", "rope_theta", "tie_word_embeddings"]
        if architecture.isLlamaFamily {
            cfg.nKVHead = try s.positive("n_kv_head", cfg.nKVHead)
            cfg.intermediateSize = try s.positive("intermediate_size", cfg.intermediateSize)
            cfg.ropeTheta = try s.double("rope_theta", cfg.ropeTheta)
            cfg.tieWordEmbeddings = try s.bool("tie_word_embeddings", cfg.tieWordEmbeddings)
        } else if let key = llamaKeys.first(where: { s.values[$0] != nil }) {
            throw ConfigError("\(s.origin(key)): \"\(s.full(key))\" applies to architecture llama or qwen2, not gpt2")
        }
        try s.finish()
        do { try cfg.validate() } catch { throw ConfigError("\(s.document.file): \(error)") }
        return ModelSpec(initFrom: initFrom, config: cfg, tokenizer: tokenizer)
    }
}

/// Everything `ballast sft` reads from its YAML file. Field meanings are in configs/README.md.
public struct SFTConfig: Sendable {
    public var model: ModelSpec
    public var trainData: String
    public var evalData: String?
    public var builtinTrainExamples: Int
    public var builtinEvalExamples: Int
    public var maxLength: Int
    /// Batches of examples of similar length (`data.group_by_length`): same epochs, other batch composition.
    public var groupByLength = false
    public var optim: OptimConfig
    public var run: RunConfig

    public static func load(_ doc: ConfigDocument) throws -> SFTConfig {
        let top = doc.top
        let model = try ModelSpec.read(try top.section("model"))
        let d = try top.section("data")
        var c = SFTConfig(
            model: model,
            trainData: try d.string("train", "builtin")!,
            evalData: try d.string("eval", "builtin"),
            builtinTrainExamples: try d.positive("builtin_train_examples", 20000),
            builtinEvalExamples: try d.positive("builtin_eval_examples", 256),
            maxLength: try d.positive("max_length", 64),
            optim: try OptimConfig.read(try top.section("train")),
            run: try RunConfig.read(try top.section("run"), defaultOut: "runs/sft", generates: true, snapshots: true))
        if c.evalData == "none" { c.evalData = nil }
        c.groupByLength = try d.bool("group_by_length", false)
        try d.finish()
        try top.finish()
        if c.maxLength > c.model.config.nPositions && c.model.initFrom == nil {
            throw ConfigError("\(doc.file): data.max_length (\(c.maxLength)) exceeds model.n_positions (\(c.model.config.nPositions))")
        }
        return c
    }
}
