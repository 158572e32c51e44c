import BallastData

/// GPT-2 hyper-parameters (the fields of Hugging Face's GPT2Config that shape the network).
public struct GPTConfig: Equatable, Sendable, Codable {
    public var nLayer: Int
    public var nHead: Int
    public var nEmbd: Int
    public var nPositions: Int
    public var vocabSize: Int
    public var layerNormEpsilon: Float
    /// Scalar heads on the final hidden state, by tensor stem: "score" (reward, as in
    /// GPT2ForSequenceClassification), "value_head" (critic), "expected_reward_head" (AM's e-head).
    /// Each is a [1, n_embd] weight without bias.
    public var scalarHeads: [String]

    public init(nLayer: Int, nHead: Int, nEmbd: Int, nPositions: Int, vocabSize: Int,
                layerNormEpsilon: Float = 1e-5, scalarHeads: [String] = []) {
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
        if Set(scalarHeads).count != scalarHeads.count { throw Invalid.field("scalar head names repeat: \(scalarHeads)") }
    }

    /// What sizes activation, scratch and KV-cache buffers (scalar heads and context aside): models that
    /// agree on it can run in the same buffers.
    var bufferShape: [Int] { [nLayer, nHead, nEmbd, vocabSize] }

    /// Number of trainable parameters (tied LM head counted once).
    public var parameterCount: Int { ParameterLayout(self).count }

    /// Model FLOPs per token for forward + backward (6N plus attention, as in the PaLM appendix),
    /// for a sequence length T.
    public func trainingFlopsPerToken(seqLen t: Int) -> Double {
        let n = Double(parameterCount - nPositions * nEmbd)
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
/// Names and shapes are Hugging Face GPT-2's; Conv1D weights are [in, out].
public struct ParameterLayout: Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let shape: [Int]
        public let offset: Int
        public var count: Int { shape.reduce(1, *) }
        /// Weight decay applies to matrices only (rank ≥ 2), never to biases or LayerNorm gains.
        public var decays: Bool { shape.count >= 2 }
    }

    /// Offsets of one transformer block's tensors.
    public struct Block: Sendable {
        public let ln1w, ln1b, attnW, attnB, attnProjW, attnProjB, ln2w, ln2b, fcW, fcB, fcProjW, fcProjB: Int
    }

    public private(set) var entries: [Entry] = []
    public private(set) var count = 0
    public let wte: Int, wpe: Int, lnfW: Int, lnfB: Int
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
        wte = add("transformer.wte.weight", [cfg.vocabSize, c])
        wpe = add("transformer.wpe.weight", [cfg.nPositions, c])
        var blocks: [Block] = []
        for l in 0..<cfg.nLayer {
            let p = "transformer.h.\(l)."
            blocks.append(Block(
                ln1w: add(p + "ln_1.weight", [c]), ln1b: add(p + "ln_1.bias", [c]),
                attnW: add(p + "attn.c_attn.weight", [c, 3 * c]), attnB: add(p + "attn.c_attn.bias", [3 * c]),
                attnProjW: add(p + "attn.c_proj.weight", [c, c]), attnProjB: add(p + "attn.c_proj.bias", [c]),
                ln2w: add(p + "ln_2.weight", [c]), ln2b: add(p + "ln_2.bias", [c]),
                fcW: add(p + "mlp.c_fc.weight", [c, 4 * c]), fcB: add(p + "mlp.c_fc.bias", [4 * c]),
                fcProjW: add(p + "mlp.c_proj.weight", [4 * c, c]), fcProjB: add(p + "mlp.c_proj.bias", [c])))
        }
        self.blocks = blocks
        lnfW = add("transformer.ln_f.weight", [c])
        lnfB = add("transformer.ln_f.bias", [c])
        heads = offset
        for h in cfg.scalarHeads { _ = add("\(h).weight", [1, c]) }
        self.entries = entries
        self.count = offset
    }

    public func entry(named name: String) -> Entry? { entries.first { $0.name == name } }

    /// Where weight decay applies in the flat buffer: the matrices (AdamW's `decayRanges`).
    public var decayRanges: [Range<Int>] { entries.filter(\.decays).map { $0.offset..<($0.offset + $0.count) } }
}
