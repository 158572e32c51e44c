import BallastData
import BallastKernels
import BallastRandom
import Foundation

/// How to pick each next token.
public struct SamplingOptions: Sendable, Equatable {
    /// Argmax decoding; ignores temperature, top-k and top-p.
    public var greedy = false
    public var temperature: Float = 1
    /// Keep only the k most likely tokens (0 = off).
    public var topK = 0
    /// Keep the smallest set of most likely tokens whose probability reaches p (1 = off).
    public var topP: Float = 1
    public var maxNewTokens = 64
    public var seed: UInt64 = 0
    /// Stop a row when it emits `eosId`; with false, every row produces exactly maxNewTokens.
    /// `eosId` and `padId` default (nil) to the model's codec: its end-of-response token and padding.
    public var stopAtEOS = true
    public var eosId: Int32?
    public var padId: Int32?

    public init(greedy: Bool = false, temperature: Float = 1, topK: Int = 0, topP: Float = 1, maxNewTokens: Int = 64,
                seed: UInt64 = 0, stopAtEOS: Bool = true, eosId: Int32? = nil, padId: Int32? = nil) {
        self.greedy = greedy
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.maxNewTokens = maxNewTokens
        self.seed = seed
        self.stopAtEOS = stopAtEOS
        self.eosId = eosId
        self.padId = padId
    }

    public func validate() throws {
        if !greedy && !(temperature > 0) { throw GenerationError.invalid("temperature must be > 0, got \(temperature)") }
        if topK < 0 { throw GenerationError.invalid("top_k must be >= 0, got \(topK)") }
        if !(topP > 0 && topP <= 1) { throw GenerationError.invalid("top_p must be in (0, 1], got \(topP)") }
        if maxNewTokens < 1 { throw GenerationError.invalid("max_new_tokens must be >= 1, got \(maxNewTokens)") }
    }
}

public enum GenerationError: Error, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self { case .invalid(let m): return m }
    }
}

/// One generated continuation.
public struct Generation: Sendable, Equatable {
    public var promptIds: [Int32]
    /// Generated ids, including the final EOS when the row stopped on it.
    public var outputIds: [Int32]
    /// log π(token | prefix) of each generated token under the model's unmodified distribution
    /// (temperature 1, no top-k/top-p), which is what PPO's ratio needs.
    public var logprobs: [Float]
    public var stoppedAtEOS: Bool
}

/// Batched incremental decoding with a per-layer KV cache. Prompts of different lengths are left-padded
/// so that every row's next token sits in the same cache slot.
public final class Generator: @unchecked Sendable {
    public let model: GPT

    public init(model: GPT) { self.model = model }

    public func generate(prompts: [[Int32]], options: SamplingOptions) throws -> [Generation] {
        try options.validate()
        let cfg = model.config
        let b = prompts.count
        guard b > 0 else { return [] }
        guard let tp = prompts.map(\.count).max(), prompts.allSatisfy({ !$0.isEmpty }) else {
            throw GenerationError.invalid("every prompt needs at least one token")
        }
        for p in prompts {
            if let bad = p.first(where: { $0 < 0 || Int($0) >= cfg.vocabSize }) {
                throw GenerationError.invalid("token id \(bad) outside the vocabulary of \(cfg.vocabSize)")
            }
        }
        guard tp + options.maxNewTokens <= cfg.nPositions else {
            throw GenerationError.invalid("prompt (\(tp) tokens) + max_new_tokens (\(options.maxNewTokens)) exceeds n_positions \(cfg.nPositions)")
        }
        let state = DecodeState.reusing(model.decodeState, config: cfg, batch: b, capacity: tp + options.maxNewTokens, chunk: tp)
        model.decodeState = state
        let capacity = state.capacity
        var rng = SeededRNG(seed: options.seed)

        // Prefill: left-padded prompts.
        let eos = options.eosId ?? model.codec.eos, pad = options.padId ?? model.codec.pad
        var tokens = [Int32](repeating: pad, count: b * tp)
        var positions = [Int32](repeating: 0, count: b * tp)
        var realCount = [Int32](repeating: 0, count: b)
        for (r, p) in prompts.enumerated() {
            let pad = tp - p.count
            for (i, t) in p.enumerated() {
                tokens[r * tp + pad + i] = t
                positions[r * tp + pad + i] = Int32(i)
                state.keyMask[r * capacity + pad + i] = 1
            }
            realCount[r] = Int32(p.count)
        }
        state.step(model: model, tokens: tokens, positions: positions, tNew: tp, start: 0)

        var results = prompts.map { Generation(promptIds: $0, outputIds: [], logprobs: [], stoppedAtEOS: false) }
        let v = cfg.vocabSize
        // The rows still generating, in prompt order: row j of the logits belongs to prompt live[j]. A
        // finished row leaves the batch (its cache stays where it is, addressed through `live`), so a
        // step costs what the running rows cost, not what the longest row holds up. Sampling visits the
        // running rows in prompt order as before, so the random stream per row is unchanged.
        var live = Array(0..<b)
        for k in 0..<options.maxNewTokens {
            var finished = false
            for (j, r) in live.enumerated() {
                let row = state.logits + j * v
                let tok = Sampler.pick(row, v, options, &rng)
                let lp = row[Int(tok)] - Softmax.logSumExp(row, v)
                results[r].outputIds.append(tok)
                results[r].logprobs.append(lp)
                if options.stopAtEOS && tok == eos {
                    results[r].stoppedAtEOS = true
                    finished = true
                }
            }
            if finished { live.removeAll { results[$0].stoppedAtEOS } }
            if k == options.maxNewTokens - 1 || live.isEmpty { break }
            let slot = tp + k
            var next = [Int32](), nextPos = [Int32](), cacheRows = [Int32]()
            for r in live {
                next.append(results[r].outputIds.last!)
                nextPos.append(realCount[r])
                cacheRows.append(Int32(r))
                realCount[r] += 1
                state.keyMask[r * capacity + slot] = 1
            }
            state.step(model: model, tokens: next, positions: nextPos, tNew: 1, start: slot, cacheRows: cacheRows)
        }
        return results
    }
}

/// Token choice from one row of logits.
public enum Sampler {
    /// Sampling from the whole distribution in O(V): with no top-k or top-p cut there is no candidate
    /// set to rank, so no sort: one vectorised pass for the probabilities and their mass, one scan in
    /// token order to draw (one uniform per token, as the ranked path draws).
    static func pickFull(_ logits: UnsafePointer<Float>, _ v: Int, temperature: Float, _ rng: inout SeededRNG) -> Int32 {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: v) { buf in
            let probs = buf.baseAddress!
            let invT = 1 / temperature
            for j in 0..<v { probs[j] = logits[j] * invT }
            let mass = FastMath.expShiftedInPlace(probs, v, shift: Vec.max(probs, v))
            var u = rng.nextFloat() * mass
            var last = 0
            for j in 0..<v where probs[j] > 0 {
                u -= probs[j]
                if u < 0 { return Int32(j) }
                last = j
            }
            return Int32(last)
        }
    }

    public static func pick(_ logits: UnsafePointer<Float>, _ v: Int, _ o: SamplingOptions, _ rng: inout SeededRNG) -> Int32 {
        if o.greedy {
            var best = 0
            for j in 1..<v where logits[j] > logits[best] { best = j }
            return Int32(best)
        }
        if (o.topK == 0 || o.topK >= v) && o.topP >= 1 { return pickFull(logits, v, temperature: o.temperature, &rng) }
        // Probabilities at the given temperature, most likely first.
        var order = Array(0..<v)
        let invT = 1 / o.temperature
        let m = Vec.max(logits, v)
        var probs = (0..<v).map { expf((logits[$0] - m) * invT) }
        order.sort { probs[$0] > probs[$1] || (probs[$0] == probs[$1] && $0 < $1) }
        var keep = v
        if o.topK > 0 && o.topK < v {
            // Ties with the k-th value stay in, as in Hugging Face's TopKLogitsWarper.
            let threshold = probs[order[o.topK - 1]]
            keep = o.topK
            while keep < v && probs[order[keep]] == threshold { keep += 1 }
        }
        let total = order.prefix(keep).reduce(Float(0)) { $0 + probs[$1] }
        if o.topP < 1 {
            var cum: Float = 0
            var n = 0
            while n < keep {
                cum += probs[order[n]] / total
                n += 1
                if cum >= o.topP { break }
            }
            keep = n
        }
        for j in keep..<v { probs[order[j]] = 0 }
        let mass = order.prefix(keep).reduce(Float(0)) { $0 + probs[$1] }
        var u = rng.nextFloat() * mass
        for j in order.prefix(keep) {
            u -= probs[j]
            if u < 0 { return Int32(j) }
        }
        return Int32(order[keep - 1])
    }
}

/// Buffers for incremental decoding: KV cache per layer, key mask, one chunk of activations.
/// KV caches and per-step buffers of one generate call, kept by the model for the next call (a rollout
/// loop would otherwise allocate and zero tens of MB per call). Reused when it is large enough; only the
/// key mask needs clearing: cache slots a row has not written are masked, so stale keys are never read.
final class DecodeState {
    /// Rows, cache slots per row and prefill tokens per row it was allocated for.
    let allocatedRows: Int, capacity: Int, chunk: Int, c: Int
    /// Rows of the current call (≤ allocatedRows).
    private(set) var b: Int
    private let shape: [Int]

    /// `previous` when it fits this call (its key mask cleared), else a new state.
    static func reusing(_ previous: DecodeState?, config: GPTConfig, batch: Int, capacity: Int, chunk: Int) -> DecodeState {
        if let s = previous, s.shape == config.bufferShape, s.allocatedRows >= batch,
           s.capacity >= capacity, s.allocatedRows * s.chunk >= batch * chunk {
            s.b = batch
            s.keyMask.update(repeating: 0, count: s.allocatedRows * s.capacity)
            return s
        }
        return DecodeState(config: config, batch: batch, capacity: capacity, chunk: chunk)
    }
    let keyMask: UnsafeMutablePointer<Float>
    let kCache: [UnsafeMutablePointer<Float>], vCache: [UnsafeMutablePointer<Float>]
    /// `hidden` is the Llama family's SwiGLU output [n, I] (GPT-2 applies GELU in place in `fch`).
    let x, ln, qkv, atty, fch, hidden, lnf, stats, logits: UnsafeMutablePointer<Float>
    let tok: UnsafeMutablePointer<Int32>, pos: UnsafeMutablePointer<Int32>, rowMap: UnsafeMutablePointer<Int32>
    private var owned: [UnsafeMutablePointer<Float>] = []

    init(config: GPTConfig, batch: Int, capacity: Int, chunk: Int) {
        b = batch
        allocatedRows = batch
        shape = config.bufferShape
        // Rounded up to whole 16-key blocks for the transposed key cache.
        let capacity = (capacity + 15) / 16 * 16
        self.capacity = capacity
        self.chunk = chunk
        c = config.nEmbd
        let n = batch * chunk
        var owned: [UnsafeMutablePointer<Float>] = []
        func alloc(_ k: Int) -> UnsafeMutablePointer<Float> {
            let p = zeroedFloats(k)
            owned.append(p)
            return p
        }
        let heads = config.attentionHeads, kvWidth = heads.kvHeads * heads.headDim
        keyMask = alloc(batch * capacity)
        kCache = (0..<config.nLayer).map { _ in alloc(batch * capacity * kvWidth) }
        vCache = (0..<config.nLayer).map { _ in alloc(batch * capacity * kvWidth) }
        x = alloc(n * c)
        ln = alloc(n * c)
        qkv = alloc(n * heads.qkvWidth)
        atty = alloc(n * heads.outWidth)
        fch = alloc(n * config.mlpInWidth)
        hidden = alloc(config.architecture.isLlamaFamily ? n * config.mlpHiddenWidth : 0)
        lnf = alloc(batch * c)
        stats = alloc(2 * batch)
        logits = alloc(batch * config.vocabSize)
        tok = .allocate(capacity: n)
        pos = .allocate(capacity: n)
        rowMap = .allocate(capacity: batch)
        self.owned = owned
    }

    deinit {
        for p in owned { free(p) }
        tok.deallocate()
        pos.deallocate()
        rowMap.deallocate()
    }

    /// Runs `tNew` new tokens per row (cache slots start ..< start+tNew) and leaves the logits of each
    /// row's last new token in `logits` [rows,V]. `cacheRows` runs only some rows: row j of `tokens`
    /// uses cache row cacheRows[j] (nil: all B rows, in order).
    func step(model: GPT, tokens: [Int32], positions: [Int32], tNew: Int, start: Int, cacheRows: [Int32]? = nil) {
        let cfg = model.config, L = model.layout, p = model.params
        let b = cacheRows?.count ?? self.b
        precondition(b <= self.b && tokens.count == b * tNew && positions.count == b * tNew)
        let n = b * tNew
        tokens.withUnsafeBufferPointer { tok.update(from: $0.baseAddress!, count: n) }
        positions.withUnsafeBufferPointer { pos.update(from: $0.baseAddress!, count: n) }
        cacheRows?.withUnsafeBufferPointer { rowMap.update(from: $0.baseAddress!, count: b) }
        Embedding.forward(out: x, tokens: tok, positions: pos, wte: p + L.wte, wpe: L.wpe.map { p + $0 }, n: n, c: c)
        let rows = cacheRows == nil ? nil : UnsafePointer(rowMap)
        if cfg.architecture.isLlamaFamily {
            llamaBlocks(model: model, n: n, b: b, tNew: tNew, start: start, cacheRows: rows)
        } else {
            gpt2Blocks(model: model, n: n, b: b, tNew: tNew, start: start, cacheRows: rows)
        }
        for r in 0..<b {
            let last = x + (r * tNew + tNew - 1) * c
            if cfg.architecture.isLlamaFamily {
                RMSNorm.forward(out: lnf + r * c, rstd: nil, inp: last, weight: p + L.lnfW, n: 1, c: c, eps: cfg.layerNormEpsilon)
            } else {
                LayerNorm.forward(out: lnf + r * c, mean: stats + r, rstd: stats + b + r, inp: last,
                                  weight: p + L.lnfW, bias: p + L.lnfB!, n: 1, c: c, eps: cfg.layerNormEpsilon)
            }
        }
        // A few rows: waking OpenBLAS's second thread costs more than it saves.
        BLAS.singleThreaded {
            BLAS.gemm(transB: true, m: b, n: cfg.vocabSize, k: c, a: lnf, lda: c, b: p + model.lmHeadOffset, ldb: c,
                      c: logits, ldc: cfg.vocabSize)
        }
    }

    private func gpt2Blocks(model: GPT, n: Int, b: Int, tNew: Int, start: Int, cacheRows: UnsafePointer<Int32>?) {
        let cfg = model.config, L = model.layout, p = model.params
        for l in 0..<cfg.nLayer {
            let w = L.blocks[l]
            LayerNorm.forward(out: ln, mean: stats, rstd: stats + b, inp: x, weight: p + w.ln1w, bias: p + w.ln1b!,
                              n: n, c: c, eps: cfg.layerNormEpsilon, saveStats: false)
            Linear.forward(out: qkv, inp: ln, weight: p + w.attnW, bias: p + w.attnB!, n: n, inC: c, outC: 3 * c)
            Attention.forwardCached(out: atty, qkv: qkv, kCacheT: kCache[l], vCache: vCache[l], keyMask: keyMask,
                                    b: b, tNew: tNew, start: start, capacity: capacity, c: c, nHead: cfg.nHead, cacheRows: cacheRows)
            GPT.residualLinear(out: x, residual: x, inp: atty, weight: p + w.attnProjW, bias: p + w.attnProjB!,
                               n: n, inC: c, outC: c)
            LayerNorm.forward(out: ln, mean: stats, rstd: stats + b, inp: x, weight: p + w.ln2w, bias: p + w.ln2b!,
                              n: n, c: c, eps: cfg.layerNormEpsilon, saveStats: false)
            Linear.forward(out: fch, inp: ln, weight: p + w.fcW, bias: p + w.fcB!, n: n, inC: c, outC: 4 * c)
            GELU.forward(out: fch, inp: fch, n: n * 4 * c)
            GPT.residualLinear(out: x, residual: x, inp: fch, weight: p + w.fcProjW, bias: p + w.fcProjB!,
                               n: n, inC: 4 * c, outC: c)
        }
    }

    private func llamaBlocks(model: GPT, n: Int, b: Int, tNew: Int, start: Int, cacheRows: UnsafePointer<Int32>?) {
        let cfg = model.config, L = model.layout, p = model.params, i = cfg.intermediateSize
        let heads = cfg.attentionHeads, rotary = model.rotary!
        for l in 0..<cfg.nLayer {
            let w = L.blocks[l]
            RMSNorm.forward(out: ln, rstd: nil, inp: x, weight: p + w.ln1w, n: n, c: c, eps: cfg.layerNormEpsilon)
            LinearOutIn.forward(out: qkv, inp: ln, weight: p + w.attnW, bias: w.attnB.map { p + $0 }, n: n, inC: c, outC: heads.qkvWidth)
            rotary.apply(qkv, positions: pos, n: n, heads: heads.heads + heads.kvHeads, rowStride: heads.qkvWidth)
            Attention.forwardCached(out: atty, qkv: qkv, kCacheT: kCache[l], vCache: vCache[l], keyMask: keyMask,
                                    b: b, tNew: tNew, start: start, capacity: capacity, heads: heads, cacheRows: cacheRows)
            LinearOutIn.forward(out: x, inp: atty, weight: p + w.attnProjW, bias: w.attnProjB.map { p + $0 },
                                n: n, inC: heads.outWidth, outC: c, accumulate: true)
            RMSNorm.forward(out: ln, rstd: nil, inp: x, weight: p + w.ln2w, n: n, c: c, eps: cfg.layerNormEpsilon)
            LinearOutIn.forward(out: fch, inp: ln, weight: p + w.fcW, bias: nil, n: n, inC: c, outC: 2 * i)
            SwiGLU.forward(out: hidden, gateUp: fch, n: n, width: i)
            LinearOutIn.forward(out: x, inp: hidden, weight: p + w.fcProjW, bias: nil, n: n, inC: i, outC: c, accumulate: true)
        }
    }
}
