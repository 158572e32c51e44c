import BallastData
import BallastFormats
import BallastTokenizers
import Foundation

/// Hugging Face-compatible checkpoint folders: `config.json` (GPT2Config fields) and
/// `model.safetensors` (GPT-2 tensor names, Conv1D weights [in, out], tied LM head omitted).
/// Scalar heads are extra [1, n_embd] tensors ("score.weight" is what GPT2ForSequenceClassification reads).
public enum Checkpoint {
    public static let configFile = "config.json"
    public static let weightsFile = "model.safetensors"

    /// Tensors that Hugging Face may write and Ballast does not need (causal-mask buffers, the tied head).
    static let ignorable = ["lm_head.weight"]

    public static func configJSON(_ cfg: GPTConfig) -> [String: Any] {
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
            "bos_token_id": Int(ByteTokenizer.bos), "eos_token_id": Int(ByteTokenizer.eos), "pad_token_id": Int(ByteTokenizer.pad),
            "ballast_scalar_heads": cfg.scalarHeads,
        ]
        if cfg.scalarHeads.contains("score") { json["num_labels"] = 1 }
        return json
    }

    /// Writes `config.json` and `model.safetensors` into `dir` (created if needed), each atomically.
    public static func save(_ model: GPT, to dir: String, extraMetadata: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let json = try JSONSerialization.data(withJSONObject: configJSON(model.config), options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write(json, to: dir + "/" + configFile)
        var tensors: [(String, TensorData)] = []
        for e in model.layout.entries {
            tensors.append((e.name, TensorData(floats: UnsafeBufferPointer(start: model.params + e.offset, count: e.count), shape: e.shape)))
        }
        var meta = extraMetadata
        meta["format"] = "pt"
        try SafeTensorsWriter.write(tensors, metadata: meta, to: dir + "/" + weightsFile)
        // the byte tokenizer as Hugging Face files: AutoTokenizer.from_pretrained(dir) gives Ballast's ids
        for (name, data) in try ByteTokenizerFiles.files(bos: ByteTokenizer.bos, eos: ByteTokenizer.eos, pad: ByteTokenizer.pad,
                                                         modelMaxLength: model.config.nPositions) {
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
        if let mt = json["model_type"] as? String, mt != "gpt2" {
            throw FileError(path: path, problem: "model_type is \"\(mt)\", Ballast reads gpt2 only")
        }
        if let act = json["activation_function"] as? String, !["gelu_new", "gelu_pytorch_tanh"].contains(act) {
            throw FileError(path: path, problem: "activation_function \"\(act)\" unsupported (GPT-2 uses gelu_new)")
        }
        let eps = (json["layer_norm_epsilon"] as? Double).map(Float.init) ?? 1e-5
        var heads = json["ballast_scalar_heads"] as? [String] ?? []
        if heads.isEmpty, (json["architectures"] as? [String])?.contains("GPT2ForSequenceClassification") == true {
            heads = ["score"]
        }
        let cfg = GPTConfig(nLayer: try int("n_layer"), nHead: try int("n_head"), nEmbd: try int("n_embd"),
                            nPositions: try int("n_positions", "n_ctx"), vocabSize: try int("vocab_size"),
                            layerNormEpsilon: eps, scalarHeads: heads)
        do { try cfg.validate() } catch { throw FileError(path: path, problem: "\(error)") }
        return cfg
    }

    /// Loads a checkpoint folder written by Ballast or by `transformers` (`save_pretrained` of a GPT-2
    /// model). Every tensor the config implies must be present with the implied shape.
    public static func load(_ dir: String) throws -> GPT {
        let cfg = try loadConfig(dir)
        let path = dir + "/" + weightsFile
        guard FileManager.default.fileExists(atPath: path) else {
            throw FileError(path: path, problem: "missing (a checkpoint folder needs config.json and model.safetensors)")
        }
        return try model(config: cfg, weights: try SafeTensorsFile(path: path), path: path)
    }

    /// The model `cfg` with its tensors from `file` (a model.safetensors, on disk or in memory).
    public static func model(config cfg: GPTConfig, weights file: SafeTensorsFile, path: String) throws -> GPT {
        let model = try GPT(config: cfg)
        var used = Set<String>()
        for e in model.layout.entries {
            // transformers saves GPT2LMHeadModel with "transformer." and GPT2Model without it.
            let candidates = [e.name, e.name.hasPrefix("transformer.") ? String(e.name.dropFirst("transformer.".count)) : e.name]
            guard let name = candidates.first(where: { file.tensors[$0] != nil }) else {
                throw FileError(path: path, problem: "tensor \"\(e.name)\" is missing (config.json implies it)")
            }
            let info = file.tensors[name]!
            guard info.shape == e.shape else {
                throw FileError(path: path, problem: "tensor \"\(name)\" has shape \(info.shape) but config.json implies \(e.shape)")
            }
            let values = try file.floats(name)
            values.withUnsafeBufferPointer { (model.params + e.offset).update(from: $0.baseAddress!, count: e.count) }
            used.insert(name)
        }
        for name in file.names where !used.contains(name) {
            if name.hasSuffix(".attn.bias") || name.hasSuffix(".attn.masked_bias") { continue }
            if ignorable.contains(name) {
                let head = try file.floats(name)
                let wte = UnsafeBufferPointer(start: model.params + model.layout.wte, count: cfg.vocabSize * cfg.nEmbd)
                if head.count != wte.count || zip(head, wte).contains(where: { $0 != $1 }) {
                    throw FileError(path: path, problem: "lm_head.weight differs from wte: Ballast needs tied embeddings")
                }
                continue
            }
            throw FileError(path: path, problem: "unexpected tensor \"\(name)\" (not implied by config.json)")
        }
        return model
    }
}
