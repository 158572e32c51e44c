import ArgumentParser
import BallastBenchmark
import BallastCluster
import BallastConfig
import BallastData
import BallastFormats
import BallastKernels
import BallastModel
import BallastTraining
import BallastTransport
import BallastWire
import Foundation

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a randomly initialised model as a checkpoint folder.")
    @Option(help: "Take the architecture from the `model` section of this YAML config (presets and flags below override it).") var config: String?
    @Option(name: .customLong("set"), help: "Override a field of --config, e.g. --set model.n_layer=6 (repeatable).") var overrides: [String] = []
    @Option(help: "Architecture preset: tiny, small, medium.") var preset: String?
    @Option(name: .customLong("n-layer")) var nLayer: Int?
    @Option(name: .customLong("n-head")) var nHead: Int?
    @Option(name: .customLong("n-embd")) var nEmbd: Int?
    @Option(name: .customLong("n-positions")) var nPositions: Int?
    @Option(name: .customLong("vocab-size")) var vocabSize: Int?
    @Option(help: "gpt2, llama or qwen2 (the Llama family: RMSNorm, RoPE, SwiGLU, grouped-query attention).") var architecture: String?
    @Option(name: .customLong("n-kv-head"), help: "Llama family: key/value heads.") var nKVHead: Int?
    @Option(name: .customLong("intermediate-size"), help: "Llama family: SwiGLU width.") var intermediateSize: Int?
    @Flag(name: .customLong("untied"), help: "Llama family: a separate LM head instead of the token embedding.") var untied = false
    @Option(help: "A Hugging Face tokenizer folder (tokenizer.json, tokenizer_config.json with eos_token and chat_template): the model uses it instead of the byte tokenizer, its vocab_size defaults to the tokenizer's, and the checkpoint carries its files.") var tokenizer: String?
    @Option(name: .customLong("head"), help: "Add a scalar head (score, value_head, expected_reward_head); repeatable.") var heads: [String] = []
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Output checkpoint folder.") var out: String

    func run() throws {
        try failing {
            var cfg: GPTConfig
            var specTokenizer: String?
            if let config {
                let doc = try ConfigOptions.document(config, overrides)
                let spec = try ModelSpec.read(try doc.top.section("model"))
                if let from = spec.initFrom { throw ConfigError("\(config): model.init_from (\(from)) names an existing model; init writes a new one") }
                cfg = spec.config
                specTokenizer = spec.tokenizer
            } else {
                cfg = .small
            }
            if let preset {
                guard let p = GPTConfig.preset(preset) else { throw ValidationError("unknown preset \(preset)") }
                cfg = p
            }
            if let nLayer { cfg.nLayer = nLayer }
            if let nHead { cfg.nHead = nHead }
            if let nEmbd { cfg.nEmbd = nEmbd }
            if let nPositions { cfg.nPositions = nPositions }
            let tokenizerDir = tokenizer ?? specTokenizer
            let codec = try tokenizerDir.map { try TextCodec.load(directory: $0) } ?? .bytes
            if tokenizer != nil { cfg.vocabSize = vocabSize ?? codec.vocabSize }
            if let vocabSize { cfg.vocabSize = vocabSize }
            guard cfg.vocabSize >= codec.vocabSize else { throw ValidationError("vocab size \(cfg.vocabSize) is smaller than the tokenizer's \(codec.vocabSize) ids") }
            var target = cfg.architecture
            if let architecture {
                guard let a = Architecture(rawValue: architecture) else {
                    throw ValidationError("unknown architecture \(architecture) (known: \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                target = a
            }
            cfg = cfg.converted(to: target)
            if nKVHead != nil || intermediateSize != nil || untied {
                guard cfg.architecture.isLlamaFamily else { throw ValidationError("--n-kv-head, --intermediate-size and --untied need --architecture llama or qwen2") }
                if let nKVHead { cfg.nKVHead = nKVHead }
                if let intermediateSize { cfg.intermediateSize = intermediateSize }
                if untied { cfg.tieWordEmbeddings = false }
            }
            cfg.scalarHeads = heads
            let model = try GPT(config: cfg)
            model.codec = codec
            model.initializeRandom(seed: seed)
            try Checkpoint.save(model, to: out)
            let family = cfg.architecture.isLlamaFamily
                ? ", n_kv_head \(cfg.nKVHead), intermediate \(cfg.intermediateSize), \(cfg.tieWordEmbeddings ? "tied" : "untied")" : ""
            print("wrote \(out): \(cfg.architecture.rawValue), \(model.parameterCount) parameters (n_layer \(cfg.nLayer), n_head \(cfg.nHead), n_embd \(cfg.nEmbd), n_positions \(cfg.nPositions), vocab \(cfg.vocabSize)\(family))")
        }
    }
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Continue a prompt with a checkpoint (KV-cache decoding).")
    @Option(help: "Checkpoint folder.") var model: String
    @Option(help: "Prompt text, encoded by the model's tokenizer (the byte tokenizer: <bos> and the UTF-8 bytes; with a chat template: one user turn and the generation prompt).") var prompt: String
    @Flag(help: "Argmax decoding.") var greedy = false
    @Option var temperature: Float = 1
    @Option(name: .customLong("top-k")) var topK = 0
    @Option(name: .customLong("top-p")) var topP: Float = 1
    @Option(name: .customLong("max-new-tokens")) var maxNewTokens = 64
    @Option(help: "Number of samples of the prompt to draw as one batch.") var samples = 1
    @Option var seed: UInt64 = 0
    @Flag(help: "Print JSON: prompt_ids, output_ids, text, logprobs.") var json = false
    @OptionGroup var threads: ThreadOptions

    func run() throws {
        threads.apply()
        try failing {
            let m = try Checkpoint.load(model)
            let ids = try m.codec.promptIds(prompt)
            let opts = SamplingOptions(greedy: greedy, temperature: temperature, topK: topK, topP: topP,
                                       maxNewTokens: min(maxNewTokens, m.config.nPositions - ids.count), seed: seed)
            guard opts.maxNewTokens >= 1 else {
                throw GenerationError.invalid("prompt of \(ids.count) tokens leaves no room in n_positions \(m.config.nPositions)")
            }
            let gens = try Generator(model: m).generate(prompts: Array(repeating: ids, count: max(samples, 1)), options: opts)
            for g in gens {
                let text = m.codec.decodeResponse(g.outputIds)
                if json {
                    let obj: [String: Any] = ["prompt_ids": g.promptIds.map(Int.init), "output_ids": g.outputIds.map(Int.init),
                                              "text": text, "logprobs": g.logprobs.map(Double.init), "stopped_at_eos": g.stoppedAtEOS]
                    let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                } else {
                    print(prompt + text)
                }
            }
        }
    }
}

struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a checkpoint on token ids and write logits (and scalar heads) as safetensors.",
        discussion: "Input JSON: {\"tokens\": [[ids...], ...], \"mask\": [[1|0, ...], ...]} (rectangular; mask optional).")
    @Option(help: "Checkpoint folder.") var model: String
    @Option(help: "Input JSON file.") var input: String
    @Option(help: "Output .safetensors file: logits [B,T,V], heads [B,T,H].") var out: String
    @OptionGroup var threads: ThreadOptions

    func run() throws {
        threads.apply()
        try failing {
            let m = try Checkpoint.load(model)
            guard let data = FileManager.default.contents(atPath: input),
                  let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let rows = obj["tokens"] as? [[Int]], let first = rows.first, !first.isEmpty else {
                throw DatasetError(file: input, line: 0, problem: "expected {\"tokens\": [[ids...], ...]} with at least one token")
            }
            let masks = obj["mask"] as? [[Double]] ?? rows.map { $0.map { _ in 1.0 } }
            let t = first.count
            guard rows.allSatisfy({ $0.count == t }), masks.count == rows.count, masks.allSatisfy({ $0.count == t }) else {
                throw DatasetError(file: input, line: 0, problem: "tokens and mask must be rectangular and of the same shape")
            }
            for r in rows { if let bad = r.first(where: { $0 < 0 || $0 >= m.config.vocabSize }) {
                throw DatasetError(file: input, line: 0, problem: "token id \(bad) outside the vocabulary of \(m.config.vocabSize)")
            } }
            guard t <= m.config.nPositions else {
                throw DatasetError(file: input, line: 0, problem: "length \(t) exceeds n_positions \(m.config.nPositions)")
            }
            let batch = TokenBatch(tokens: rows.flatMap { $0.map(Int32.init) }, mask: masks.flatMap { $0.map(Float.init) },
                                   batch: rows.count, length: t)
            m.forward(batch, inferenceOnly: true)
            var tensors: [(String, TensorData)] = [("logits", TensorData(floats: m.logits, shape: [rows.count, t, m.config.vocabSize]))]
            if !m.config.scalarHeads.isEmpty {
                tensors.append(("heads", TensorData(floats: m.headOutputs, shape: [rows.count, t, m.config.scalarHeads.count])))
            }
            try SafeTensorsWriter.write(tensors, to: out)
        }
    }
}
