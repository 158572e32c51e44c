import BallastData
import BallastKernels

/// The decoder-only architectures Ballast runs, by their `transformers` `model_type`.
public enum Architecture: String, Sendable, Codable, CaseIterable {
    /// LayerNorm, learned positions, GELU MLP, multi-head attention with biases, tied embeddings.
    case gpt2
    /// RMSNorm, rotary positions, SwiGLU MLP, grouped-query attention, no biases (unless
    /// `attention_bias`), tied or untied embeddings.
    case llama
    /// Llama with biases on the q, k and v projections.
    case qwen2

    /// Whether the network is the Llama family's (RMSNorm, RoPE, SwiGLU, GQA).
    public var isLlamaFamily: Bool { self != .gpt2 }
}

/// Network hyper-parameters: the fields of `transformers`' GPT2Config, LlamaConfig and Qwen2Config that
/// shape the network. Names follow GPT-2 (n_layer, n_head, n_embd, n_positions); the Llama family's
/// extra fields have their own.
public struct GPTConfig: Equatable, Sendable, Codable {
    public var architecture: Architecture = .gpt2
    public var nLayer: Int
    public var nHead: Int
    public var nEmbd: Int
    public var nPositions: Int
    public var vocabSize: Int
    /// LayerNorm's ε (GPT-2) or RMSNorm's (`rms_norm_eps`, Llama family).
    public var layerNormEpsilon: Float
    /// Llama family: key/value heads (grouped-query attention; nHead for plain multi-head).
    public var nKVHead: Int
    /// Llama family: the SwiGLU hidden width (GPT-2's MLP is always 4·n_embd).
    public var intermediateSize: Int
    /// Llama family: the rotary base θ.
    public var ropeTheta: Double = 10_000
    /// Llama family: false gives a separate `lm_head` (GPT-2 always ties it to the token embedding).
    public var tieWordEmbeddings = true
    /// Llama: biases on q, k, v and o (`attention_bias`); Qwen2 always has q, k, v biases and no o bias.
    public var attentionBias = false
    /// Scalar heads on the final hidden state, by tensor stem: "score" (reward, as in
    /// GPT2ForSequenceClassification), "value_head" (critic), "expected_reward_head" (AM's e-head).
    /// Each is a [1, n_embd] weight without bias.
    public var scalarHeads: [String]

    public init(nLayer: Int, nHead: Int, nEmbd: Int, nPositions: Int, vocabSize: Int,
                layerNormEpsilon: Float = 1e-5, scalarHeads: [String] = []) {
        self.nKVHead = nHead
        self.intermediateSize = 4 * nEmbd
        self.nLayer = nLayer
        self.nHead = nHead
        self.nEmbd = nEmbd
        self.nPositions = nPositions
        self.vocabSize = vocabSize
        self.layerNormEpsilon = layerNormEpsilon
        self.scalarHeads = scalarHeads
    }

    public enum Invalid: Error, CustomStringConvertible {
        case field(String)
        public var description: String {
            switch self { case .field(let m): return "invalid model config: \(m)" }
        }
    }

    public func validate() throws {
        for (name, v) in [("n_layer", nLayer), ("n_head", nHead), ("n_embd", nEmbd),
                          ("n_positions", nPositions), ("vocab_size", vocabSize)] where v <= 0 {
            throw Invalid.field("\(name) must be positive, got \(v)")
        }
        if nEmbd % nHead != 0 { throw Invalid.field("n_embd (\(nEmbd)) must be divisible by n_head (\(nHead))") }
        if architecture.isLlamaFamily {
            if nKVHead <= 0 || nHead % nKVHead != 0 {
                throw Invalid.field("num_attention_heads (\(nHead)) must be a positive multiple of num_key_value_heads (\(nKVHead))")
            }
            if intermediateSize <= 0 { throw Invalid.field("intermediate_size must be positive, got \(intermediateSize)") }
            if headDim % 2 != 0 { throw Invalid.field("rotary positions need an even head size, got \(headDim)") }
            if !(ropeTheta > 0) { throw Invalid.field("rope_theta must be positive, got \(ropeTheta)") }
        } else if nKVHead != nHead || intermediateSize != 4 * nEmbd || !tieWordEmbeddings || attentionBias {
            throw Invalid.field("gpt2 has n_head key/value heads, a 4·n_embd MLP, tied embeddings and its own biases")
        }
        if Set(scalarHeads).count != scalarHeads.count { throw Invalid.field("scalar head names repeat: \(scalarHeads)") }
    }

    /// What sizes activation, scratch and KV-cache buffers (scalar heads and context aside): models that
    /// agree on it can run in the same buffers.
    var bufferShape: [Int] { [nLayer, nHead, nEmbd, vocabSize, nKVHead, intermediateSize, architecture.isLlamaFamily ? 1 : 0] }

    /// Width of an attention head.
    public var headDim: Int { nEmbd / nHead }
    /// How the heads sit in a fused q|k|v row.
    public var attentionHeads: Attention.Heads { Attention.Heads(heads: nHead, kvHeads: nKVHead, headDim: headDim) }
    /// Width of the MLP's first projection's output (GPT-2: 4C; Llama family: gate and up, 2I) and of its
    /// activation (4C; I).
    var mlpInWidth: Int { architecture.isLlamaFamily ? 2 * intermediateSize : 4 * nEmbd }
    var mlpHiddenWidth: Int { architecture.isLlamaFamily ? intermediateSize : 4 * nEmbd }

    /// This shape (layers, heads, width, context, vocabulary, heads) as `architecture`. Into the Llama
    /// family with the choices small Llama-architecture models make (SmolLM2, Qwen2.5-0.5B): half as many
    /// key/value heads as query heads (when the count is even), a SwiGLU width of 8/3·n_embd rounded up
    /// to a multiple of 32 (the FLOPs of GPT-2's 4·n_embd GELU MLP), tied embeddings, θ = 10 000.
    /// Into GPT-2, the derived fields (key/value heads, MLP width) follow the shape, so a GPT-2 config
    /// whose heads or width were edited is made consistent again.
    public func converted(to architecture: Architecture) -> GPTConfig {
        if architecture == .gpt2 {
            return GPTConfig(nLayer: nLayer, nHead: nHead, nEmbd: nEmbd, nPositions: nPositions, vocabSize: vocabSize,
                             scalarHeads: scalarHeads)
        }
        guard architecture != self.architecture else { return self }
        return .llama(architecture, nLayer: nLayer, nHead: nHead, nKVHead: nHead % 2 == 0 ? nHead / 2 : nHead, nEmbd: nEmbd,
                      intermediateSize: (8 * nEmbd / 3 + 31) / 32 * 32, nPositions: nPositions, vocabSize: vocabSize,
                      tieWordEmbeddings: true, scalarHeads: scalarHeads)
    }

    /// A Llama-family config (`transformers` defaults for what is not given).
    public static func llama(_ architecture: Architecture = .llama, nLayer: Int, nHead: Int, nKVHead: Int, nEmbd: Int,
                             intermediateSize: Int, nPositions: Int, vocabSize: Int, rmsNormEps: Float = 1e-6,
                             ropeTheta: Double = 10_000, tieWordEmbeddings: Bool = false, attentionBias: Bool = false,
                             scalarHeads: [String] = []) -> GPTConfig {
        var c = GPTConfig(nLayer: nLayer, nHead: nHead, nEmbd: nEmbd, nPositions: nPositions, vocabSize: vocabSize,
                          layerNormEpsilon: rmsNormEps, scalarHeads: scalarHeads)
        c.architecture = architecture
        c.nKVHead = nKVHead
        c.intermediateSize = intermediateSize
        c.ropeTheta = ropeTheta
        c.tieWordEmbeddings = tieWordEmbeddings
        c.attentionBias = architecture == .qwen2 || attentionBias
        return c
    }

    /// Number of trainable parameters (tied LM head counted once).
    public var parameterCount: Int { ParameterLayout(self).count }

    /// Model FLOPs per token for forward + backward (6N plus attention, as in the PaLM appendix),
    /// for a sequence length T.
    public func trainingFlopsPerToken(seqLen t: Int) -> Double {
        let n = Double(parameterCount - (architecture.isLlamaFamily ? 0 : nPositions * nEmbd))
        return 6 * n + 6 * Double(nLayer * t * nEmbd)
    }

    // The presets, the only place model sizes are named (configs say `preset: small`).
    /// Unit tests.
    public static let tiny = GPTConfig(nLayer: 2, nHead: 2, nEmbd: 32, nPositions: 64, vocabSize: ByteTokenizer.vocabSize)
    /// The built-in benchmark's model.
    public static let small = GPTConfig(nLayer: 4, nHead: 4, nEmbd: 256, nPositions: 256, vocabSize: ByteTokenizer.vocabSize)
    /// A bigger CPU model.
    public static let medium = GPTConfig(nLayer: 6, nHead: 6, nEmbd: 384, nPositions: 256, vocabSize: ByteTokenizer.vocabSize)
    public static let presetNames = ["tiny", "small", "medium"]

    public static func preset(_ name: String) -> GPTConfig? {
        switch name {
        case "tiny": return .tiny
        case "small": return .small
        case "medium": return .medium
        default: return nil
        }
    }
}

/// Where each named tensor lives in the single flat parameter buffer (llm.c's "one planned allocation").
/// Names and shapes are `transformers`': GPT-2's Conv1D weights are [in, out]; the Llama family's
/// `nn.Linear` weights are [out, in], with q, k, v (and gate, up) stored one after another so that each
/// group is one fused matrix.
public struct ParameterLayout: Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let shape: [Int]
        public let offset: Int
        public var count: Int { shape.reduce(1, *) }
        /// Weight decay applies to matrices only (rank ≥ 2), never to biases or norm gains.
        public var decays: Bool { shape.count >= 2 }
    }

    /// Offsets of one transformer block's tensors; the biases (and LayerNorm shifts) a family lacks are nil.
    public struct Block: Sendable {
        /// The norms before attention and before the MLP.
        public let ln1w: Int, ln1b: Int?, ln2w: Int, ln2b: Int?
        /// The fused q|k|v projection (GPT-2 c_attn [C, 3C]; Llama q_proj, k_proj, v_proj [out, C]) and
        /// the output projection (c_proj [C, C]; o_proj [C, C]).
        public let attnW: Int, attnB: Int?, attnProjW: Int, attnProjB: Int?
        /// The MLP's first projection (c_fc [C, 4C]; gate_proj then up_proj [I, C] each) and second
        /// (c_proj [4C, C]; down_proj [C, I]).
        public let fcW: Int, fcB: Int?, fcProjW: Int, fcProjB: Int?
    }

    public private(set) var entries: [Entry] = []
    public private(set) var count = 0
    /// Token embedding; GPT-2's position embedding; the final norm's gain and (GPT-2) shift.
    public let wte: Int, wpe: Int?, lnfW: Int, lnfB: Int?
    /// The untied LM head [V, C] (Llama family with tie_word_embeddings false); nil when it is `wte`.
    public let lmHead: Int?
    /// Offset of the first scalar head; the heads are stored consecutively as a [H, C] matrix.
    public let heads: Int
    /// The parameters of scalar head h ([1, C]).
    public func headRange(_ h: Int) -> Range<Int> { heads + h * headWidth ..< heads + (h + 1) * headWidth }
    let headWidth: Int
    public let blocks: [Block]

    public init(_ cfg: GPTConfig) {
        let c = cfg.nEmbd
        headWidth = c
        var entries: [Entry] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int]) -> Int {
            let e = Entry(name: name, shape: shape, offset: offset)
            entries.append(e)
            offset += e.count
            return e.offset
        }
        var blocks: [Block] = []
        if cfg.architecture.isLlamaFamily {
            let d = cfg.headDim, q = cfg.nHead * d, kv = cfg.nKVHead * d, i = cfg.intermediateSize
            wte = add("model.embed_tokens.weight", [cfg.vocabSize, c])
            wpe = nil
            for l in 0..<cfg.nLayer {
                let p = "model.layers.\(l)."
                let ln1 = add(p + "input_layernorm.weight", [c])
                let qkv = add(p + "self_attn.q_proj.weight", [q, c])
                _ = add(p + "self_attn.k_proj.weight", [kv, c])
                _ = add(p + "self_attn.v_proj.weight", [kv, c])
                var qkvBias: Int?
                if cfg.attentionBias {
                    qkvBias = add(p + "self_attn.q_proj.bias", [q])
                    _ = add(p + "self_attn.k_proj.bias", [kv])
                    _ = add(p + "self_attn.v_proj.bias", [kv])
                }
                let o = add(p + "self_attn.o_proj.weight", [c, q])
                let oBias = cfg.architecture == .llama && cfg.attentionBias ? add(p + "self_attn.o_proj.bias", [c]) : nil
                let ln2 = add(p + "post_attention_layernorm.weight", [c])
                let gateUp = add(p + "mlp.gate_proj.weight", [i, c])
                _ = add(p + "mlp.up_proj.weight", [i, c])
                let down = add(p + "mlp.down_proj.weight", [c, i])
                blocks.append(Block(ln1w: ln1, ln1b: nil, ln2w: ln2, ln2b: nil, attnW: qkv, attnB: qkvBias, attnProjW: o, attnProjB: oBias,
                                    fcW: gateUp, fcB: nil, fcProjW: down, fcProjB: nil))
            }
            lnfW = add("model.norm.weight", [c])
            lnfB = nil
            lmHead = cfg.tieWordEmbeddings ? nil : add("lm_head.weight", [cfg.vocabSize, c])
        } else {
            wte = add("transformer.wte.weight", [cfg.vocabSize, c])
            wpe = add("transformer.wpe.weight", [cfg.nPositions, c])
            for l in 0..<cfg.nLayer {
                let p = "transformer.h.\(l)."
                blocks.append(Block(
                    ln1w: add(p + "ln_1.weight", [c]), ln1b: add(p + "ln_1.bias", [c]),
                    ln2w: add(p + "ln_2.weight", [c]), ln2b: add(p + "ln_2.bias", [c]),
                    attnW: add(p + "attn.c_attn.weight", [c, 3 * c]), attnB: add(p + "attn.c_attn.bias", [3 * c]),
                    attnProjW: add(p + "attn.c_proj.weight", [c, c]), attnProjB: add(p + "attn.c_proj.bias", [c]),
                    fcW: add(p + "mlp.c_fc.weight", [c, 4 * c]), fcB: add(p + "mlp.c_fc.bias", [4 * c]),
                    fcProjW: add(p + "mlp.c_proj.weight", [4 * c, c]), fcProjB: add(p + "mlp.c_proj.bias", [c])))
            }
            lnfW = add("transformer.ln_f.weight", [c])
            lnfB = add("transformer.ln_f.bias", [c])
            lmHead = nil
        }
        self.blocks = blocks
        heads = offset
        for h in cfg.scalarHeads { _ = add("\(h).weight", [1, c]) }
        self.entries = entries
        self.count = offset
    }

    public func entry(named name: String) -> Entry? { entries.first { $0.name == name } }

    /// Where weight decay applies in the flat buffer: the matrices (AdamW's `decayRanges`).
    public var decayRanges: [Range<Int>] { entries.filter(\.decays).map { $0.offset..<($0.offset + $0.count) } }
}
