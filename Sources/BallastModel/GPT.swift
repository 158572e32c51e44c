import BallastKernels
import BallastRandom
import Foundation

/// A batch of token sequences in one of two layouts:
/// - padded: `batch` rows of `length` tokens, `mask` 1 for real tokens and 0 for padding (left or
///   right). Positions come from the mask: the k-th real token of a row has position k, so left-padded
///   prompts get the same positions as unpadded ones.
/// - packed (`packedLengths` set): the sequences laid end to end with no padding; sequence r covers
///   token rows start(ofRow: r) ..< start + packedLengths[r], positions restart at 0 in each, and
///   attention stays within a sequence. `length` is the longest one.
/// Consumers index per-token outputs (logits, heads) through `start(ofRow:)`, which serves both.
public struct TokenBatch: Sendable {
    public var tokens: [Int32]
    public var mask: [Float]
    public let batch: Int
    public let length: Int
    public let packedLengths: [Int]?
    private let rowStarts: [Int]?

    public init(tokens: [Int32], mask: [Float], batch: Int, length: Int) {
        precondition(tokens.count == batch * length && mask.count == batch * length, "batch shape mismatch")
        self.tokens = tokens
        self.mask = mask
        self.batch = batch
        self.length = length
        packedLengths = nil
        rowStarts = nil
    }

    /// Sequences right-padded with `pad` to the longest one; the mask marks the real tokens.
    public static func rightPadded(_ seqs: [[Int32]], pad: Int32) -> TokenBatch {
        let t = max(seqs.map(\.count).max() ?? 1, 1)
        var tokens = [Int32](repeating: pad, count: seqs.count * t), mask = [Float](repeating: 0, count: seqs.count * t)
        for (r, s) in seqs.enumerated() {
            for (i, x) in s.enumerated() {
                tokens[r * t + i] = x
                mask[r * t + i] = 1
            }
        }
        return TokenBatch(tokens: tokens, mask: mask, batch: seqs.count, length: t)
    }

    /// Sequences end to end, no padding (every sequence must be non-empty).
    public static func packed(_ seqs: [[Int32]]) -> TokenBatch {
        precondition(!seqs.isEmpty && seqs.allSatisfy { !$0.isEmpty }, "a packed batch needs non-empty sequences")
        return TokenBatch(packed: seqs)
    }

    private init(packed seqs: [[Int32]]) {
        tokens = seqs.flatMap { $0 }
        mask = [Float](repeating: 1, count: tokens.count)
        batch = seqs.count
        length = seqs.map(\.count).max()!
        packedLengths = seqs.map(\.count)
        var starts: [Int] = [], at = 0
        for s in seqs {
            starts.append(at)
            at += s.count
        }
        rowStarts = starts
    }

    /// First token row of sequence r in `tokens` (and in every per-token output of a forward).
    @inline(__always)
    public func start(ofRow r: Int) -> Int { rowStarts?[r] ?? r * length }

    /// Position ids: per sequence 0, 1, … over its real tokens (0 at padding).
    public var positions: [Int32] {
        var out = [Int32](repeating: 0, count: tokens.count)
        if let packedLengths {
            for (r, l) in packedLengths.enumerated() {
                let s = start(ofRow: r)
                for i in 0..<l { out[s + i] = Int32(i) }
            }
            return out
        }
        for b in 0..<batch {
            var k: Int32 = 0
            for t in 0..<length where mask[b * length + t] != 0 {
                out[b * length + t] = k
                k += 1
            }
        }
        return out
    }

    /// The attention segments of this layout.
    public func segments(nHead: Int) -> Attention.Segments {
        packedLengths.map { Attention.Segments(lengths: $0, nHead: nHead) } ?? .rectangular(b: batch, t: length, nHead: nHead)
    }
}

/// A decoder-only transformer, GPT-2 or Llama family (`config.architecture`; the Llama blocks are in
/// LlamaBlocks.swift), with optional scalar heads. Parameters, gradients and activations each live in
/// one planned allocation; forward keeps what backward needs, backward accumulates into `grads`.
public final class GPT: @unchecked Sendable {
    public let config: GPTConfig
    public let layout: ParameterLayout
    /// The Llama family's rotary table, for positions 0 ..< n_positions.
    let rotary: RotaryEmbedding?
    /// How this model reads and writes text; a checkpoint's comes from its tokenizer files and is saved with it.
    public var codec: TextCodec = .bytes
    /// Flat parameters in `layout` order.
    public let params: UnsafeMutablePointer<Float>
    private var gradStorage: UnsafeMutablePointer<Float>?
    /// Flat gradients, same layout. Allocated on first use so that inference-only models skip it.
    public var grads: UnsafeMutablePointer<Float> {
        if let g = gradStorage { return g }
        let g = UnsafeMutablePointer<Float>.allocate(capacity: layout.count)
        g.initialize(repeating: 0, count: layout.count)
        gradStorage = g
        return g
    }
    /// The arena of the last forward: the training one (every layer kept for backward) or the inference
    /// one (one layer's buffers reused by every layer: a forward-only pass needs ~1/nLayer of the memory).
    var acts: Activations?
    /// Where this model's activations and backward scratch live; models whose passes never interleave
    /// (PPO's policy, reference, critic and scorer) share one set (`shareArenas(with:)`).
    public private(set) var arenas = ActivationArenas()
    /// The last generate call's KV caches, reused by the next one (Generator; one generate at a time per model).
    var decodeState: DecodeState?

    /// Frees the KV caches kept for the next generate call: for a loop that generates once and then
    /// trains, where holding them would add to the training step's peak memory.
    public func releaseDecodeCaches() { decodeState = nil }

    /// Makes this model use `other`'s activation arenas: one set of buffers for several models of the same
    /// shape. Only for models used strictly one after another: a model's outputs (logits, heads,
    /// gradients buffers) are valid until another model sharing the arenas runs a forward, and reading
    /// them after that stops the process instead of returning the other model's numbers.
    public func shareArenas(with other: GPT) {
        arenas = other.arenas
        acts = nil
    }

    public init(config: GPTConfig) throws {
        try config.validate()
        self.config = config
        self.layout = ParameterLayout(config)
        rotary = config.architecture.isLlamaFamily
            ? RotaryEmbedding(headDim: config.headDim, maxPositions: config.nPositions, theta: config.ropeTheta) : nil
        params = .allocate(capacity: layout.count)
        params.initialize(repeating: 0, count: layout.count)
    }

    deinit {
        params.deallocate()
        gradStorage?.deallocate()
    }

    public var parameterCount: Int { layout.count }

    public func zeroGrad() {
        grads.update(repeating: 0, count: layout.count)
    }

    /// GPT-2's initialisation: N(0, 0.02) weights and embeddings, residual output projections scaled by
    /// 1/√(2·n_layer), zero biases, unit norm gains. The Llama family's (`transformers`' `_init_weights`)
    /// is the same without the residual scaling.
    public func initializeRandom(seed: UInt64) {
        var rng = SeededRNG(seed: seed)
        let residualStd = 0.02 / Float(2 * config.nLayer).squareRoot()
        let gains = Set(layout.blocks.flatMap { [$0.ln1w, $0.ln2w] } + [layout.lnfW])
        for e in layout.entries {
            let p = params + e.offset
            if gains.contains(e.offset) {
                p.update(repeating: 1, count: e.count)
            } else if e.shape.count == 1 {
                p.update(repeating: 0, count: e.count)
            } else {
                let std: Float = e.name.hasSuffix("c_proj.weight") ? residualStd : 0.02
                for i in 0..<e.count { p[i] = rng.nextGaussian() * std }
            }
        }
    }

    public func tensor(_ name: String) -> UnsafeMutableBufferPointer<Float>? {
        guard let e = layout.entry(named: name) else { return nil }
        return UnsafeMutableBufferPointer(start: params + e.offset, count: e.count)
    }

    // MARK: Forward

    /// Runs the network on `batch`. Logits [B,T,V] are computed when `computeLogits` (skip them for
    /// reward models); scalar heads [B·T, H] always. Read results with `logits`, `headOutputs`.
    /// With `inferenceOnly`, nothing is kept for backward (use it for scoring and evaluation passes).
    public func forward(_ batch: TokenBatch, computeLogits: Bool = true, inferenceOnly: Bool = false) {
        let t = batch.length, segments = batch.segments(nHead: config.nHead)
        precondition(t <= config.nPositions, "sequence length \(t) exceeds n_positions \(config.nPositions)")
        let n = batch.tokens.count
        let a = arenas.activations(for: config, tokens: n, att: segments.attCount, inferenceOnly: inferenceOnly)
        a.owner = ObjectIdentifier(self)
        acts = a
        a.setShape(segments)
        a.computedLogits = computeLogits
        let c = config.nEmbd, cfg = config, p = params
        batch.tokens.withUnsafeBufferPointer { a.tokens.update(from: $0.baseAddress!, count: n) }
        batch.mask.withUnsafeBufferPointer { a.mask.update(from: $0.baseAddress!, count: n) }
        batch.positions.withUnsafeBufferPointer { a.positions.update(from: $0.baseAddress!, count: n) }
        for i in 0..<n {
            let tok = Int(a.tokens[i])
            precondition(tok >= 0 && tok < cfg.vocabSize, "token id \(tok) outside vocabulary of \(cfg.vocabSize)")
        }

        Embedding.forward(out: a.encoded, tokens: a.tokens, positions: a.positions,
                          wte: p + layout.wte, wpe: layout.wpe.map { p + $0 }, n: n, c: c)
        if cfg.architecture.isLlamaFamily { forwardLlamaBlocks(a) } else { forwardGPT2Blocks(a) }
        let last = a.layer(cfg.nLayer - 1).res3
        if cfg.architecture.isLlamaFamily {
            RMSNorm.forward(out: a.lnf, rstd: a.lnfRstd, inp: last, weight: p + layout.lnfW, n: n, c: c, eps: cfg.layerNormEpsilon)
        } else {
            LayerNorm.forward(out: a.lnf, mean: a.lnfMean, rstd: a.lnfRstd, inp: last,
                              weight: p + layout.lnfW, bias: p + layout.lnfB!, n: n, c: c, eps: cfg.layerNormEpsilon)
        }
        if computeLogits {
            // logits[N,V] = lnf[N,C] · Wᵀ, W the LM head [V,C] (tied: wte)
            BLAS.gemm(transB: true, m: n, n: cfg.vocabSize, k: c, a: a.lnf, lda: c, b: p + lmHeadOffset, ldb: c,
                      c: a.logits, ldc: cfg.vocabSize)
        }
        let nh = cfg.scalarHeads.count
        if nh > 0 {
            // heads[N,H] = lnf[N,C] · W_headsᵀ, one dot per (row, head): unlike a GEMM, whose kernel depends on H,
            // each head's output does not depend on which other heads the model has (see `backward`)
            let lnf = a.lnf, heads = a.heads, w = p + layout.heads
            Parallel.forEachChunk(n, grain: 256) { rows in
                for i in rows { for h in 0..<nh { heads[i * nh + h] = Vec.dot(lnf + i * c, w + h * c, c) } }
            }
        }
    }

    /// Where the LM head's [V, C] weights are: `lm_head` when untied, else the token embedding.
    var lmHeadOffset: Int { layout.lmHead ?? layout.wte }

    /// GPT-2 blocks: x += attn(LN(x)); x += MLP(LN(x)), GELU MLP of width 4C.
    private func forwardGPT2Blocks(_ a: Activations) {
        let cfg = config, p = params, n = a.n, c = cfg.nEmbd
        for l in 0..<cfg.nLayer {
            let w = layout.blocks[l]
            let la = a.layer(l)
            let resIn = l == 0 ? a.encoded : a.layer(l - 1).res3
            // LayerNorm outputs go to one shared buffer; backward recomputes them (saves 2C floats per token per layer).
            LayerNorm.forward(out: a.ln, mean: la.ln1Mean, rstd: la.ln1Rstd, inp: resIn,
                              weight: p + w.ln1w, bias: p + w.ln1b!, n: n, c: c, eps: cfg.layerNormEpsilon)
            Linear.forward(out: la.qkv, inp: a.ln, weight: p + w.attnW, bias: p + w.attnB!, n: n, inC: c, outC: 3 * c)
            Attention.forward(out: la.atty, att: la.att, qkv: la.qkv, keyMask: a.mask, segments: a.segments, c: c, nHead: cfg.nHead)
            GPT.residualLinear(out: la.res2, residual: resIn, inp: la.atty, weight: p + w.attnProjW,
                               bias: p + w.attnProjB!, n: n, inC: c, outC: c)
            LayerNorm.forward(out: a.ln, mean: la.ln2Mean, rstd: la.ln2Rstd, inp: la.res2,
                              weight: p + w.ln2w, bias: p + w.ln2b!, n: n, c: c, eps: cfg.layerNormEpsilon)
            Linear.forward(out: la.fch, inp: a.ln, weight: p + w.fcW, bias: p + w.fcB!, n: n, inC: c, outC: 4 * c)
            GELU.forward(out: a.gelu, inp: la.fch, n: n * 4 * c)
            GPT.residualLinear(out: la.res3, residual: la.res2, inp: a.gelu, weight: p + w.fcProjW,
                               bias: p + w.fcProjB!, n: n, inC: 4 * c, outC: c)
        }
    }

    /// out[N,OC] = residual + inp · W + b, without a temporary.
    static func residualLinear(out: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>,
                               inp: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                               n: Int, inC: Int, outC: Int) {
        Parallel.forEachChunk(n, grain: 64) { rows in
            for r in rows { Vec.add(residual + r * outC, bias, into: out + r * outC, outC) }
        }
        Linear.multiply(out: out, inp: inp, weight: weight, n: n, inC: inC, outC: outC, accumulate: true)
    }

    /// Logits of the last forward: [N, V] row-major, N token rows (B·T padded; see TokenBatch.start(ofRow:)).
    public var logits: UnsafeBufferPointer<Float> {
        let a = lastActivations()
        precondition(a.computedLogits, "forward ran with computeLogits: false")
        return UnsafeBufferPointer(start: a.logits, count: a.n * config.vocabSize)
    }

    /// Scalar head outputs of the last forward: [B·T, H] row-major (H = config.scalarHeads.count).
    public var headOutputs: UnsafeBufferPointer<Float> {
        let a = lastActivations()
        return UnsafeBufferPointer(start: a.heads, count: a.n * config.scalarHeads.count)
    }

    /// Output of scalar head `head` at token t of sequence b of the last forward.
    public func head(_ head: Int, b: Int, t: Int) -> Float {
        let a = lastActivations()
        return a.heads[(a.segments.starts[b] + t) * config.scalarHeads.count + head]
    }

    /// Final hidden states (after ln_f) of the last forward: [N, C] (see TokenBatch.start(ofRow:)).
    public var hiddenStates: UnsafeBufferPointer<Float> {
        let a = lastActivations()
        return UnsafeBufferPointer(start: a.lnf, count: a.n * config.nEmbd)
    }

    /// Buffer for ∂L/∂logits [N,V], filled by the caller's loss before `backward()`.
    public var dLogits: UnsafeMutablePointer<Float> { ensureScratch().dlogits }
    /// Buffer for ∂L/∂heads [N, H], filled by the caller's loss before `backward()`.
    public var dHeads: UnsafeMutablePointer<Float> { ensureScratch().dheads }

    /// Zeroes `dLogits` and `dHeads` for the current batch shape.
    public func clearOutputGradients() {
        let a = lastActivations(), s = ensureScratch()
        let n = a.n
        s.dlogits.update(repeating: 0, count: n * config.vocabSize)
        if !config.scalarHeads.isEmpty { s.dheads.update(repeating: 0, count: n * config.scalarHeads.count) }
    }

    /// The activations of this model's last forward (stops if another model sharing the arenas ran since).
    func lastActivations() -> Activations {
        guard let a = acts else { preconditionFailure("no forward has run on this model") }
        precondition(a.owner == ObjectIdentifier(self), "another model sharing this model's arenas ran a forward since; its outputs are gone")
        return a
    }

    func ensureScratch() -> BackwardScratch {
        let a = lastActivations()
        if let s = arenas.scratch, s.capacityTokens >= a.n, s.headsWidth >= config.scalarHeads.count, s.shape == config.bufferShape { return s }
        let s = BackwardScratch(config: config, tokens: a.capacityTokens, headsWidth: max(config.scalarHeads.count, arenas.scratch?.headsWidth ?? 0))
        arenas.scratch = s
        return s
    }

    // MARK: Backward

    /// Accumulates parameter gradients into `grads` from ∂L/∂logits (`dLogits`, used when
    /// `logitsGradient`) and ∂L/∂heads (`dHeads`, used when the model has heads and `headsGradient`).
    /// Heads listed in `detachedHeads` train their own weights but pass no gradient into the trunk
    /// (a linear probe of the final features), so their loss cannot reshape what the other outputs read;
    /// their columns of `dHeads` are zeroed on the way.
    public func backward(logitsGradient: Bool = true, headsGradient: Bool = true, detachedHeads: [Int] = []) {
        let a = lastActivations(), s = ensureScratch(), p = params, g = grads, cfg = config
        precondition(a.layerSlots == cfg.nLayer, "backward needs a forward without inferenceOnly")
        let n = a.n, c = cfg.nEmbd, v = cfg.vocabSize, nh = cfg.scalarHeads.count
        let dres = s.dres, dln = s.dln
        dln.update(repeating: 0, count: n * c)
        if logitsGradient {
            precondition(a.computedLogits, "backward through logits needs forward(computeLogits: true)")
            // dlnf[N,C] += dlogits[N,V] · W[V,C];  dW[V,C] += dlogitsᵀ · lnf (W the LM head, tied: wte)
            BLAS.gemm(m: n, n: c, k: v, a: s.dlogits, lda: v, b: p + lmHeadOffset, ldb: c, beta: 1, c: dln, ldc: c)
            BLAS.gemm(transA: true, m: v, n: c, k: n, a: s.dlogits, lda: v, b: a.lnf, ldb: c, beta: 1,
                      c: g + lmHeadOffset, ldc: c)
        }
        if nh > 0 && headsGradient {
            // dheadW[H,C] += dheadsᵀ · lnf;  dlnf[N,C] += dheads[N,H] · headW[H,C] over the heads not detached.
            // Row by row, skipping zero gradients, so a head that is absent, detached or without gradient
            // leaves the trunk's gradient bit for bit as it would be without it (a GEMM's kernel depends on H).
            for h in detachedHeads { precondition((0..<nh).contains(h), "detached head \(h) out of range 0..<\(nh)") }
            let dheads = s.dheads, lnf = a.lnf, w = p + layout.heads, dw = g + layout.heads
            let attached = (0..<nh).filter { !detachedHeads.contains($0) }
            Parallel.forEachChunk(nh, grain: 1) { heads in
                for h in heads { for i in 0..<n where dheads[i * nh + h] != 0 { Vec.axpy(dheads[i * nh + h], lnf + i * c, dw + h * c, c) } }
            }
            Parallel.forEachChunk(n, grain: 256) { rows in
                for i in rows { for h in attached where dheads[i * nh + h] != 0 { Vec.axpy(dheads[i * nh + h], w + h * c, dln + i * c, c) } }
            }
        }
        dres.update(repeating: 0, count: n * c)
        let last = a.layer(cfg.nLayer - 1).res3
        if cfg.architecture.isLlamaFamily {
            RMSNorm.backward(dinp: dres, dweight: g + layout.lnfW, dout: dln, inp: last, weight: p + layout.lnfW,
                             rstd: a.lnfRstd, n: n, c: c)
            backwardLlamaBlocks(a, s)
        } else {
            LayerNorm.backward(dinp: dres, dweight: g + layout.lnfW, dbias: g + layout.lnfB!, dout: dln,
                               inp: last, weight: p + layout.lnfW, mean: a.lnfMean, rstd: a.lnfRstd, n: n, c: c)
            backwardGPT2Blocks(a, s)
        }
        Embedding.backward(dwte: g + layout.wte, dwpe: layout.wpe.map { g + $0 }, dout: dres, tokens: a.tokens,
                           positions: a.positions, n: n, c: c)
    }

    /// Backward through the GPT-2 blocks: ∂L/∂(last residual) in `s.dres` in, ∂L/∂(embedding output) out.
    private func backwardGPT2Blocks(_ a: Activations, _ s: BackwardScratch) {
        let p = params, g = grads, cfg = config, n = a.n, c = cfg.nEmbd
        let dres = s.dres, dln = s.dln
        for l in stride(from: cfg.nLayer - 1, through: 0, by: -1) {
            let w = layout.blocks[l]
            let la = a.layer(l)
            let resIn = l == 0 ? a.encoded : a.layer(l - 1).res3
            // MLP: res3 = res2 + gelu(fch)·Wp + bp; recompute gelu(fch) rather than keep it per layer.
            GELU.forward(out: a.gelu, inp: la.fch, n: n * 4 * c)
            Linear.backward(dinp: s.dfch, dweight: g + w.fcProjW, dbias: g + w.fcProjB!, dout: dres,
                            inp: a.gelu, weight: p + w.fcProjW, n: n, inC: 4 * c, outC: c, overwriteInput: true)
            GELU.backwardInPlace(s.dfch, inp: la.fch, n: n * 4 * c)
            LayerNorm.forward(out: s.ln, mean: s.stats, rstd: s.stats, inp: la.res2, weight: p + w.ln2w, bias: p + w.ln2b!,
                              n: n, c: c, eps: cfg.layerNormEpsilon, saveStats: false)
            Linear.backward(dinp: dln, dweight: g + w.fcW, dbias: g + w.fcB!, dout: s.dfch,
                            inp: s.ln, weight: p + w.fcW, n: n, inC: c, outC: 4 * c, overwriteInput: true)
            LayerNorm.backward(dinp: dres, dweight: g + w.ln2w, dbias: g + w.ln2b!, dout: dln, inp: la.res2,
                               weight: p + w.ln2w, mean: la.ln2Mean, rstd: la.ln2Rstd, n: n, c: c)
            // Attention: res2 = resIn + atty·Wo + bo
            // ∂L/∂atty reuses the dln buffer, which is free until the qkv projection's backward.
            let datty = dln
            Linear.backward(dinp: datty, dweight: g + w.attnProjW, dbias: g + w.attnProjB!, dout: dres,
                            inp: la.atty, weight: p + w.attnProjW, n: n, inC: c, outC: c, overwriteInput: true)
            s.dqkv.update(repeating: 0, count: n * 3 * c)
            Attention.backward(dqkv: s.dqkv, dout: datty, qkv: la.qkv, att: la.att, segments: a.segments, c: c, nHead: cfg.nHead)
            LayerNorm.forward(out: s.ln, mean: s.stats, rstd: s.stats, inp: resIn, weight: p + w.ln1w, bias: p + w.ln1b!,
                              n: n, c: c, eps: cfg.layerNormEpsilon, saveStats: false)
            Linear.backward(dinp: dln, dweight: g + w.attnW, dbias: g + w.attnB!, dout: s.dqkv,
                            inp: s.ln, weight: p + w.attnW, n: n, inC: c, outC: 3 * c, overwriteInput: true)
            LayerNorm.backward(dinp: dres, dweight: g + w.ln1w, dbias: g + w.ln1b!, dout: dln, inp: resIn,
                               weight: p + w.ln1w, mean: la.ln1Mean, rstd: la.ln1Rstd, n: n, c: c)
        }
    }
}

/// Forward activations for up to `capacityTokens` token rows, carved from one allocation.
final class Activations: @unchecked Sendable {
    struct Layer {
        // Per token: qkv (GPT-2 3C), atty C, res2 C, fch (the MLP's first projection: GPT-2 4C, Llama 2I),
        // res3 C and norm statistics; per (segment, h): att L×L.
        let ln1Mean, ln1Rstd, qkv, atty, att, res2, ln2Mean, ln2Rstd, fch, res3: UnsafeMutablePointer<Float>
    }

    let capacityTokens: Int
    /// Floats of attention probabilities the arena holds per layer (Σ over segments of nHead·L²).
    let attCapacity: Int
    private(set) var n = 0
    private(set) var segments = Attention.Segments(lengths: [], nHead: 1)
    var computedLogits = true
    /// The model whose forward last wrote here.
    var owner: ObjectIdentifier?
    /// Scalar-head outputs per token the arena has room for.
    let headsWidth: Int
    let storage: UnsafeMutablePointer<Float>
    let tokens: UnsafeMutablePointer<Int32>
    let positions: UnsafeMutablePointer<Int32>
    let mask: UnsafeMutablePointer<Float>
    /// `gelu` holds the MLP's activation (GPT-2: GELU [N, 4C]; Llama: SwiGLU [N, I]).
    let encoded, ln, lnf, lnfMean, lnfRstd, logits, heads, gelu: UnsafeMutablePointer<Float>
    private var layers: [Layer] = []
    let config: GPTConfig

    /// Per-layer buffers held: nLayer for training; 1 for a forward-only pass, whose layers all reuse it
    /// (layer l reads its input from the slot's res3 and has written res2 before res3 is overwritten).
    let layerSlots: Int

    init(config: GPTConfig, tokens n: Int, att: Int, layerSlots: Int, headsWidth: Int) {
        self.config = config
        let c = config.nEmbd, qkvWidth = config.attentionHeads.qkvWidth
        capacityTokens = n
        attCapacity = att
        self.layerSlots = layerSlots
        self.headsWidth = headsWidth
        let perLayer = n * (qkvWidth + 3 * c + config.mlpInWidth + 4) + attCapacity
        let total = n * (1 + 3 * c + 2 + config.vocabSize + headsWidth + config.mlpHiddenWidth) + layerSlots * perLayer
        storage = zeroedFloats(total)
        tokens = .allocate(capacity: n)
        positions = .allocate(capacity: n)
        var cursor = storage
        func take(_ k: Int) -> UnsafeMutablePointer<Float> { defer { cursor += k }; return cursor }
        mask = take(n)
        encoded = take(n * c)
        ln = take(n * c)
        lnf = take(n * c)
        lnfMean = take(n)
        lnfRstd = take(n)
        logits = take(n * config.vocabSize)
        heads = take(n * headsWidth)
        gelu = take(n * config.mlpHiddenWidth)
        for _ in 0..<layerSlots {
            layers.append(Layer(ln1Mean: take(n), ln1Rstd: take(n), qkv: take(n * qkvWidth),
                                atty: take(n * c), att: take(attCapacity), res2: take(n * c),
                                ln2Mean: take(n), ln2Rstd: take(n), fch: take(n * config.mlpInWidth), res3: take(n * c)))
        }
        precondition(cursor - storage == total)
    }

    deinit {
        free(storage)
        tokens.deallocate()
        positions.deallocate()
    }

    func setShape(_ segments: Attention.Segments) {
        precondition(segments.tokenCount <= capacityTokens && segments.attCount <= attCapacity)
        self.segments = segments
        n = segments.tokenCount
    }

    func layer(_ l: Int) -> Layer { layers[layerSlots == 1 ? 0 : l] }
}

/// A training arena, an inference arena and backward scratch, grown on demand to the largest batch
/// seen, with head room once they grow, so that a run settles instead of reallocating at every new record length.
public final class ActivationArenas: @unchecked Sendable {
    var training: Activations?
    var inference: Activations?
    var scratch: BackwardScratch?

    public init() {}

    func activations(for config: GPTConfig, tokens n: Int, att: Int, inferenceOnly: Bool) -> Activations {
        let current = inferenceOnly ? inference : training
        let heads = config.scalarHeads.count
        let keep = current.flatMap { $0.config.bufferShape == config.bufferShape ? $0 : nil }
        if let a = keep, a.capacityTokens >= n, a.attCapacity >= att, a.headsWidth >= heads { return a }
        // The first arena is exact (a fixed-shape loop wastes nothing); a size that has to grow gets 25%
        // head room, and no size shrinks.
        func size(_ need: Int, _ have: Int?) -> Int { guard let have else { return need }; return have >= need ? have : need + need / 4 }
        let a = Activations(config: config, tokens: size(n, keep?.capacityTokens), att: size(att, keep?.attCapacity),
                            layerSlots: inferenceOnly ? 1 : config.nLayer, headsWidth: max(heads, keep?.headsWidth ?? 0))
        if inferenceOnly { inference = a } else { training = a }
        return a
    }
}

/// Gradient buffers for backward; one layer's worth, reused from the top layer down.
final class BackwardScratch: @unchecked Sendable {
    let capacityTokens: Int
    let headsWidth: Int
    let shape: [Int]
    let storage: UnsafeMutablePointer<Float>
    /// `dmlp` is ∂L/∂(Llama's SwiGLU output) [N, I] (GPT-2 takes the GELU's gradient in place in `dfch`).
    let dres, dln, ln, stats, dqkv, dfch, dmlp, dlogits, dheads: UnsafeMutablePointer<Float>

    init(config: GPTConfig, tokens n: Int, headsWidth: Int) {
        capacityTokens = n
        self.headsWidth = headsWidth
        shape = config.bufferShape
        let c = config.nEmbd, qkvWidth = config.attentionHeads.qkvWidth
        let mlp = config.architecture.isLlamaFamily ? config.mlpHiddenWidth : 0
        let total = n * (c + c + c + qkvWidth + config.mlpInWidth + mlp + config.vocabSize + max(headsWidth, 1)) + 1
        storage = zeroedFloats(total)
        var cursor = storage
        func take(_ k: Int) -> UnsafeMutablePointer<Float> { defer { cursor += k }; return cursor }
        dres = take(n * c)
        dln = take(n * c)
        ln = take(n * c)
        stats = take(1)
        dqkv = take(n * qkvWidth)
        dfch = take(n * config.mlpInWidth)
        dmlp = take(n * mlp)
        dlogits = take(n * config.vocabSize)
        dheads = take(n * max(headsWidth, 1))
    }

    deinit { free(storage) }
}

extension GPT {
    /// A copy of this model with the given scalar heads: trunk tensors (and heads present in both) are
    /// copied by name, new heads start at zero so initial scores are 0 for every input.
    public func withScalarHeads(_ heads: [String]) throws -> GPT {
        var cfg = config
        cfg.scalarHeads = heads
        let m = try GPT(config: cfg)
        m.codec = codec
        for e in m.layout.entries {
            guard let src = layout.entry(named: e.name), src.shape == e.shape else { continue }
            (m.params + e.offset).update(from: params + src.offset, count: e.count)
        }
        return m
    }
}

/// `count` zeroed floats from calloc (free with `free`). Large blocks come straight from the kernel
/// already zero, so pages are only touched, and counted in RSS, when a pass first writes them: an
/// arena or KV cache sized for the longest batch costs only what the batches actually use.
func zeroedFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
    guard let raw = calloc(max(count, 1), MemoryLayout<Float>.stride) else { fatalError("out of memory allocating \(count) floats") }
    return raw.bindMemory(to: Float.self, capacity: max(count, 1))
}
