import BallastFormats
import BallastKernels
import BallastModel
import BallastTestSupport
import Foundation
import Testing

/// The Llama family beyond the parity of one step (ParityTests): decoding against `transformers`' greedy
/// `generate`, the KV cache against a full forward, checkpoints both ways.
@Suite("Llama and Qwen2 models")
struct LlamaTests {
    @Test("greedy generation equals transformers' generate token for token, prompts of different lengths batched",
          arguments: ["parity_llama", "parity_qwen2", "parity_llama_bias"])
    func greedyMatchesTransformers(_ fixture: String) throws {
        let f = try ParityFixture(fixture)
        let m = try f.model()
        let prompts = try (0..<2).map { try f.file.ints("prompt.\($0)").map { Int32($0) } }
        let expected = try (0..<2).map { try f.file.ints("generated.\($0)").map { Int32($0) } }
        let out = try Generator(model: m).generate(prompts: prompts, options: SamplingOptions(greedy: true, maxNewTokens: 12))
        for i in 0..<2 { #expect(out[i].outputIds == expected[i], "prompt \(i)") }
    }

    @Test("KV-cache decoding gives the log-probabilities of a full forward over prompt and output",
          arguments: ["parity_llama", "parity_qwen2", "parity_llama_bias"])
    func cacheEqualsFullForward(_ fixture: String) throws {
        let f = try ParityFixture(fixture)
        let m = try f.model()
        let prompts: [[Int32]] = [[256, 5, 9], [256, 40, 41, 42, 43, 44, 45, 46, 47]]
        let out = try Generator(model: m).generate(prompts: prompts, options: SamplingOptions(temperature: 1, maxNewTokens: 10, seed: 3))
        m.forward(TokenBatch.packed(zip(prompts, out).map { $0 + $1.outputIds }), inferenceOnly: true)
        let v = m.config.vocabSize, logits = m.logits.baseAddress!
        var start = 0
        for (p, g) in zip(prompts, out) {
            for (k, tok) in g.outputIds.enumerated() {
                let row = logits + (start + p.count - 1 + k) * v
                let full = row[Int(tok)] - Softmax.logSumExp(row, v)
                #expect(abs(full - g.logprobs[k]) < 1e-4, "token \(k): cached \(g.logprobs[k]) vs full \(full)")
            }
            start += p.count + g.outputIds.count
        }
    }

    @Test("a sharded bfloat16 checkpoint saved by transformers loads, every weight the bf16 rounding of the original")
    func shardedBF16Loads() throws {
        let f = try ParityFixture("parity_llama")
        let dir = try #require(Bundle.module.url(forResource: "llama_sharded_bf16", withExtension: nil, subdirectory: "Fixtures")).path
        #expect(!FileManager.default.fileExists(atPath: dir + "/model.safetensors"), "the fixture is sharded")
        let m = try Checkpoint.load(dir)
        #expect(m.config.architecture == .llama && m.config.nKVHead == 2 && m.config.ropeTheta == 500_000 && !m.config.tieWordEmbeddings)
        for e in m.layout.entries {
            let original = try f.file.floats("param." + e.name)
            for i in 0..<e.count {
                // round to nearest even at 16 bits, as torch's .to(torch.bfloat16)
                let bits = original[i].bitPattern
                let rounded = Float(bitPattern: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) & 0xFFFF_0000)
                #expect(m.params[e.offset + i] == rounded, "\(e.name)[\(i)]")
                if m.params[e.offset + i] != rounded { break }
            }
        }
    }

    @Test("save then load keeps a Llama model (untied head, GQA, biases, heads) and writes transformers' config fields",
          arguments: [Architecture.llama, .qwen2])
    func roundTrip(_ arch: Architecture) throws {
        let dir = scratchDirectory()
        let cfg = GPTConfig.llama(arch, nLayer: 2, nHead: 4, nKVHead: 2, nEmbd: 16, intermediateSize: 24, nPositions: 32, vocabSize: 259,
                                  ropeTheta: 1e6, tieWordEmbeddings: arch == .qwen2, scalarHeads: ["score", "value_head"])
        let m = try GPT(config: cfg)
        m.initializeRandom(seed: 5)
        try Checkpoint.save(m, to: dir)
        let back = try Checkpoint.load(dir)
        #expect(back.config == m.config)
        #expect((0..<m.parameterCount).allSatisfy { back.params[$0] == m.params[$0] })
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/config.json"))) as! [String: Any]
        #expect(json["model_type"] as? String == arch.rawValue)
        #expect(json["num_key_value_heads"] as? Int == 2 && json["intermediate_size"] as? Int == 24)
        #expect((json["architectures"] as? [String])?.first == (arch == .qwen2 ? "Qwen2ForSequenceClassification" : "LlamaForSequenceClassification"))
        let st = try SafeTensorsFile(path: dir + "/model.safetensors")
        #expect(try st.info("model.layers.0.self_attn.k_proj.weight").shape == [8, 16])
        #expect(try st.info("model.layers.1.mlp.down_proj.weight").shape == [16, 24])
        #expect((st.tensors["model.layers.0.self_attn.q_proj.bias"] != nil) == (arch == .qwen2))
        #expect((st.tensors["lm_head.weight"] != nil) == (arch == .llama), "the untied head is stored, a tied one is not")
    }

    @Test("configs Ballast cannot run exactly are refused with the reason")
    func unsupportedConfigs() throws {
        func problem(_ fields: [String: Any]) -> String {
            var json: [String: Any] = ["model_type": "llama", "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
                                       "hidden_size": 16, "intermediate_size": 24, "max_position_embeddings": 32, "vocab_size": 259]
            json.merge(fields) { $1 }
            do {
                _ = try Checkpoint.config(json: try JSONSerialization.data(withJSONObject: json), path: "config.json")
                return ""
            } catch { return "\(error)" }
        }
        #expect(problem([:]) == "")
        #expect(problem(["rope_scaling": ["rope_type": "llama3", "factor": 8.0]]).contains("rope_scaling"))
        #expect(problem(["rope_parameters": ["rope_type": "yarn", "rope_theta": 1e4]]).contains("yarn"))
        #expect(problem(["num_key_value_heads": 3]).contains("multiple"))
        #expect(problem(["hidden_act": "gelu"]).contains("silu"))
        #expect(problem(["head_dim": 8]).contains("head_dim"))
        #expect(problem(["model_type": "mistral"]).contains("mistral") && problem(["model_type": "mistral"]).contains("qwen2"))
        #expect(problem(["model_type": "qwen2", "use_sliding_window": true]).contains("sliding"))
    }
}
