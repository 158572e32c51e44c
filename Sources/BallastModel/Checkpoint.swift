import BallastData
import BallastFormats
import BallastTokenizers
import Foundation

/// Hugging Face-compatible checkpoint folders: `config.json` (the fields of GPT2Config, LlamaConfig or
/// Qwen2Config) and `model.safetensors` (or shards listed in `model.safetensors.index.json`) with
/// `transformers`' tensor names and layouts; a tied LM head is omitted. Scalar heads are extra
/// [1, n_embd] tensors ("score.weight" is what `*ForSequenceClassification` reads).
public enum Checkpoint {
    public static let configFile = "config.json"
    public static let weightsFile = "model.safetensors"
    /// What `save_pretrained` writes instead of `weightsFile` when it shards a model.
    public static let shardIndexFile = "model.safetensors.index.json"

    /// config.json for `cfg`, with the special-token ids of `codec` (generation stops on eos_token_id).
    public static func configJSON(_ cfg: GPTConfig, codec: TextCodec = .bytes) -> [String: Any] {
        var json = cfg.architecture.isLlamaFamily ? llamaConfigJSON(cfg) : gpt2ConfigJSON(cfg)
        json["eos_token_id"] = Int(codec.eos)
        json["pad_token_id"] = Int(codec.pad)
        if let tokenizer = codec.tokenizer {
            json["bos_token_id"] = tokenizer.prefix.first.map { Int($0) } ?? NSNull()
        } else {
            json["bos_token_id"] = Int(ByteTokenizer.bos)
        }
        return json
    }

    static func gpt2ConfigJSON(_ cfg: GPTConfig) -> [String: Any] {
        var architectures = ["GPT2LMHeadModel"]
        if cfg.scalarHeads.first == "score" { architectures = ["GPT2ForSequenceClassification"] }
        var json: [String: Any] = [
            "model_type": "gpt2",
            "architectures": architectures,
            "n_layer": cfg.nLayer, "n_head": cfg.nHead, "n_embd": cfg.nEmbd,
            "n_positions": cfg.nPositions, "n_ctx": cfg.nPositions, "vocab_size": cfg.vocabSize,
            "layer_norm_epsilon": Double(cfg.layerNormEpsilon),
            "activation_function": "gelu_new",
            "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
            "initializer_range": 0.02, "scale_attn_weights": true, "use_cache": true,
            "tie_word_embeddings": true,
            "ballast_scalar_heads": cfg.scalarHeads,
        ]
        if cfg.scalarHeads.contains("score") { json["num_labels"] = 1 }
        return json
    }

    /// LlamaConfig / Qwen2Config fields.
    static func llamaConfigJSON(_ cfg: GPTConfig) -> [String: Any] {
        let family = cfg.architecture == .qwen2 ? "Qwen2" : "Llama"
        let scored = cfg.scalarHeads.first == "score"
        var json: [String: Any] = [
            "model_type": cfg.architecture.rawValue,
            "architectures": [family + (scored ? "ForSequenceClassification" : "ForCausalLM")],
            "num_hidden_layers": cfg.nLayer, "num_attention_heads": cfg.nHead, "num_key_value_heads": cfg.nKVHead,
            "hidden_size": cfg.nEmbd, "intermediate_size": cfg.intermediateSize, "head_dim": cfg.headDim,
            "max_position_embeddings": cfg.nPositions, "vocab_size": cfg.vocabSize,
            "rms_norm_eps": Double(cfg.layerNormEpsilon), "rope_theta": cfg.ropeTheta,
            // transformers ≥ 5 reads rope_parameters, earlier versions rope_theta
            "rope_parameters": ["rope_type": "default", "rope_theta": cfg.ropeTheta] as [String: Any],
            "tie_word_embeddings": cfg.tieWordEmbeddings, "hidden_act": "silu",
            "attention_dropout": 0.0, "initializer_range": 0.02, "use_cache": true, "torch_dtype": "float32",
            "ballast_scalar_heads": cfg.scalarHeads,
        ]
        if cfg.architecture == .llama {
            json["attention_bias"] = cfg.attentionBias
            json["mlp_bias"] = false
        } else {
            json["use_sliding_window"] = false
        }
        if scored { json["num_labels"] = 1 }
        return json
    }

    /// Writes `config.json` and `model.safetensors` into `dir` (created if needed), each atomically.
    public static func save(_ model: GPT, to dir: String, extraMetadata: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let json = try JSONSerialization.data(withJSONObject: configJSON(model.config, codec: model.codec), options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write(json, to: dir + "/" + configFile)
        var tensors: [(String, TensorData)] = []
        for e in model.layout.entries {
            tensors.append((e.name, TensorData(floats: UnsafeBufferPointer(start: model.params + e.offset, count: e.count), shape: e.shape)))
        }
        var meta = extraMetadata
        meta["format"] = "pt"
        try SafeTensorsWriter.write(tensors, metadata: meta, to: dir + "/" + weightsFile)
        // the model's tokenizer files (the byte tokenizer's, as Hugging Face files: AutoTokenizer.from_pretrained(dir)
        // gives Ballast's ids), so that the folder is complete on its own
        let files = model.codec.files.isEmpty
            ? try ByteTokenizerFiles.files(bos: ByteTokenizer.bos, eos: ByteTokenizer.eos, pad: ByteTokenizer.pad, modelMaxLength: model.config.nPositions)
            : model.codec.files
        for (name, data) in files {
            // unchanged across a run's checkpoints: written (and fsynced) only when missing or different
            if FileManager.default.contents(atPath: dir + "/" + name) != data { try AtomicFile.write(data, to: dir + "/" + name) }
        }
    }

    /// Reads `config.json` into a GPTConfig, checking the fields Ballast relies on.
    public static func loadConfig(_ dir: String) throws -> GPTConfig {
        let path = dir + "/" + configFile
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FileError(path: path, problem: "missing (a checkpoint folder needs config.json and model.safetensors)")
        }
        return try config(json: data, path: path)
    }

    /// A config.json's content as a GPTConfig; `path` names it in errors.
    public static func config(json data: Data, path: String) throws -> GPTConfig {
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw FileError(path: path, problem: "not a JSON object")
        }
        func int(_ key: String, _ alt: String? = nil) throws -> Int {
            if let v = json[key] as? Int { return v }
            if let alt, let v = json[alt] as? Int { return v }
            throw FileError(path: path, problem: "missing integer field \"\(key)\"")
        }
        func double(_ key: String, _ fallback: Double) -> Double {
            if let v = json[key] as? Double { return v }
            if let v = json[key] as? Int { return Double(v) }
            return fallback
        }
        func bool(_ key: String, _ fallback: Bool) -> Bool { (json[key] as? Bool) ?? fallback }
        let modelType = json["model_type"] as? String ?? "gpt2"
        guard let architecture = Architecture(rawValue: modelType) else {
            throw FileError(path: path, problem: "model_type is \"\(modelType)\"; Ballast reads \(Architecture.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var heads = json["ballast_scalar_heads"] as? [String] ?? []
        if heads.isEmpty, (json["architectures"] as? [String])?.contains(where: { $0.hasSuffix("ForSequenceClassification") }) == true {
            heads = ["score"]
        }
        var cfg: GPTConfig
        if architecture.isLlamaFamily {
            if let act = json["hidden_act"] as? String, act != "silu" {
                throw FileError(path: path, problem: "hidden_act \"\(act)\" unsupported (the Llama family uses silu)")
            }
            // RoPE: transformers ≥ 5 writes rope_parameters {rope_type, rope_theta}; earlier versions rope_theta
            // and rope_scaling. Only the default (unscaled) rotation is implemented.
            var ropeTheta = double("rope_theta", 10_000)
            if let rope = json["rope_parameters"] as? [String: Any] {
                let type = rope["rope_type"] as? String ?? "default"
                guard type == "default" else {
                    throw FileError(path: path, problem: "rope_parameters.rope_type \"\(type)\" unsupported: Ballast implements the default RoPE only")
                }
                if let t = rope["rope_theta"] as? Double { ropeTheta = t } else if let t = rope["rope_theta"] as? Int { ropeTheta = Double(t) }
            }
            if let scaling = json["rope_scaling"], !(scaling is NSNull) {
                throw FileError(path: path, problem: "rope_scaling \(scaling) unsupported: Ballast implements plain RoPE (rope_scaling null)")
            }
            if bool("mlp_bias", false) { throw FileError(path: path, problem: "mlp_bias true unsupported (Llama's MLP has no biases)") }
            if bool("use_sliding_window", false) {
                throw FileError(path: path, problem: "use_sliding_window true unsupported: Ballast attends over the whole context")
            }
            let nHead = try int("num_attention_heads"), nEmbd = try int("hidden_size")
            if let d = json["head_dim"] as? Int, d != nEmbd / nHead {
                throw FileError(path: path, problem: "head_dim \(d) differs from hidden_size / num_attention_heads (\(nEmbd / nHead)): unsupported")
            }
            cfg = .llama(architecture, nLayer: try int("num_hidden_layers"), nHead: nHead,
                         nKVHead: (json["num_key_value_heads"] as? Int) ?? nHead, nEmbd: nEmbd,
                         intermediateSize: try int("intermediate_size"), nPositions: try int("max_position_embeddings"),
                         vocabSize: try int("vocab_size"), rmsNormEps: Float(double("rms_norm_eps", 1e-6)),
                         ropeTheta: ropeTheta, tieWordEmbeddings: bool("tie_word_embeddings", false),
                         attentionBias: bool("attention_bias", false), scalarHeads: heads)
        } else {
            if let act = json["activation_function"] as? String, !["gelu_new", "gelu_pytorch_tanh"].contains(act) {
                throw FileError(path: path, problem: "activation_function \"\(act)\" unsupported (GPT-2 uses gelu_new)")
            }
            cfg = GPTConfig(nLayer: try int("n_layer"), nHead: try int("n_head"), nEmbd: try int("n_embd"),
                            nPositions: try int("n_positions", "n_ctx"), vocabSize: try int("vocab_size"),
                            layerNormEpsilon: Float(double("layer_norm_epsilon", 1e-5)), scalarHeads: heads)
        }
        do { try cfg.validate() } catch { throw FileError(path: path, problem: "\(error)") }
        return cfg
    }

    /// Loads a checkpoint folder written by Ballast or by `transformers` (`save_pretrained` of a GPT-2,
    /// Llama or Qwen2 model, one file or shards, any float dtype). Every tensor the config implies must
    /// be present with the implied shape.
    public static func load(_ dir: String) throws -> GPT {
        let cfg = try loadConfig(dir)
        let path = dir + "/" + weightsFile, index = dir + "/" + shardIndexFile
        let m: GPT
        if FileManager.default.fileExists(atPath: path) {
            m = try model(config: cfg, weights: try SafeTensorsFile(path: path), path: path)
        } else {
            guard FileManager.default.fileExists(atPath: index) else {
                throw FileError(path: path, problem: "missing (a checkpoint folder needs config.json and model.safetensors or \(shardIndexFile))")
            }
            m = try model(config: cfg, weights: try ShardedWeights(index: index), path: index)
        }
        do { m.codec = try TextCodec.load(directory: dir) } catch { throw FileError(path: dir, problem: "\(error)") }
        guard m.codec.vocabSize <= cfg.vocabSize else {
            throw FileError(path: dir, problem: "the tokenizer has \(m.codec.vocabSize) ids but the model's vocab_size is \(cfg.vocabSize)")
        }
        return m
    }

    /// The model `cfg` with its tensors from `file` (a model.safetensors, on disk or in memory).
    public static func model(config cfg: GPTConfig, weights file: SafeTensorsFile, path: String) throws -> GPT {
        try model(config: cfg, weights: ShardedWeights(single: file), path: path)
    }

    static func model(config cfg: GPTConfig, weights file: ShardedWeights, path: String) throws -> GPT {
        let model = try GPT(config: cfg)
        var used = Set<String>()
        // transformers saves *LMHeadModel / *ForCausalLM with a "transformer." / "model." prefix and the
        // base model without it.
        let prefix = cfg.architecture.isLlamaFamily ? "model." : "transformer."
        for e in model.layout.entries {
            let candidates = [e.name, e.name.hasPrefix(prefix) ? String(e.name.dropFirst(prefix.count)) : e.name]
            guard let name = candidates.first(where: { file.shape($0) != nil }) else {
                throw FileError(path: path, problem: "tensor \"\(e.name)\" is missing (config.json implies it)")
            }
            let shape = file.shape(name)!
            guard shape == e.shape else {
                throw FileError(path: path, problem: "tensor \"\(name)\" has shape \(shape) but config.json implies \(e.shape)")
            }
            let values = try file.floats(name)
            values.withUnsafeBufferPointer { (model.params + e.offset).update(from: $0.baseAddress!, count: e.count) }
            used.insert(name)
        }
        for name in file.names where !used.contains(name) {
            // buffers older transformers versions saved: GPT-2's causal masks, Llama's rotary frequencies
            if name.hasSuffix(".attn.bias") || name.hasSuffix(".attn.masked_bias") || name.hasSuffix("rotary_emb.inv_freq") { continue }
            if name == "lm_head.weight" && model.layout.lmHead == nil {
                let head = try file.floats(name)
                let wte = UnsafeBufferPointer(start: model.params + model.layout.wte, count: cfg.vocabSize * cfg.nEmbd)
                if head.count != wte.count || zip(head, wte).contains(where: { $0 != $1 }) {
                    throw FileError(path: path, problem: "lm_head.weight differs from the token embedding, but config.json ties them"
                                    + (cfg.architecture.isLlamaFamily ? " (tie_word_embeddings)" : ": GPT-2 needs tied embeddings"))
                }
                continue
            }
            throw FileError(path: path, problem: "unexpected tensor \"\(name)\" (not implied by config.json)")
        }
        return model
    }
}

/// The tensors of one model.safetensors or of the shards a `model.safetensors.index.json` lists.
struct ShardedWeights {
    private var fileOf: [String: SafeTensorsFile] = [:]

    init(single file: SafeTensorsFile) {
        for name in file.names { fileOf[name] = file }
    }

    /// Reads the index's `weight_map` (tensor → shard file) and opens every shard it names.
    init(index path: String) throws {
        guard let data = FileManager.default.contents(atPath: path),
              let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let map = json["weight_map"] as? [String: String] else {
            throw FileError(path: path, problem: "not a safetensors index (a JSON object with a \"weight_map\" of tensor to file)")
        }
        let dir = (path as NSString).deletingLastPathComponent
        var shards: [String: SafeTensorsFile] = [:]
        for shard in Set(map.values).sorted() {
            guard !shard.contains("/") else { throw FileError(path: path, problem: "shard \"\(shard)\" is not a file name in the folder") }
            shards[shard] = try SafeTensorsFile(path: dir + "/" + shard)
        }
        for (name, shard) in map {
            guard shards[shard]!.tensors[name] != nil else {
                throw FileError(path: dir + "/" + shard, problem: "tensor \"\(name)\" listed in \(Checkpoint.shardIndexFile) is not in this shard")
            }
            fileOf[name] = shards[shard]
        }
    }

    var names: [String] { fileOf.keys.sorted() }
    func shape(_ name: String) -> [Int]? { fileOf[name]?.tensors[name]?.shape }
    func floats(_ name: String) throws -> [Float] { try fileOf[name]!.floats(name) }
}
