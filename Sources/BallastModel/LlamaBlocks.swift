import BallastKernels

/// The Llama family's blocks (Llama, Qwen2): x += o_proj(attn(RoPE(qkv(RMSNorm(x)))));
/// x += down(silu(gate) ⊙ up)(RMSNorm(x)). Weights are `nn.Linear`'s [out, in]; q, k, v (and gate, up) are
/// one fused projection because the layout stores them one after another.
extension GPT {
    func forwardLlamaBlocks(_ a: Activations) {
        let cfg = config, p = params, n = a.n, c = cfg.nEmbd, i = cfg.intermediateSize
        let heads = cfg.attentionHeads, qkvWidth = heads.qkvWidth, rotary = rotary!
        for l in 0..<cfg.nLayer {
            let w = layout.blocks[l]
            let la = a.layer(l)
            let resIn = l == 0 ? a.encoded : a.layer(l - 1).res3
            // Norm outputs go to one shared buffer; backward recomputes them.
            RMSNorm.forward(out: a.ln, rstd: la.ln1Rstd, inp: resIn, weight: p + w.ln1w, n: n, c: c, eps: cfg.layerNormEpsilon)
            // qkv[N, (H + 2·KV)·D] = ln · [Wq; Wk; Wv]ᵀ (+ b); then q and k (adjacent heads) turn by position
            LinearOutIn.forward(out: la.qkv, inp: a.ln, weight: p + w.attnW, bias: w.attnB.map { p + $0 }, n: n, inC: c, outC: qkvWidth)
            rotary.apply(la.qkv, positions: a.positions, n: n, heads: heads.heads + heads.kvHeads, rowStride: qkvWidth)
            Attention.forward(out: la.atty, att: la.att, qkv: la.qkv, keyMask: a.mask, segments: a.segments, heads: heads)
            la.res2.update(from: resIn, count: n * c)
            LinearOutIn.forward(out: la.res2, inp: la.atty, weight: p + w.attnProjW, bias: w.attnProjB.map { p + $0 },
                                n: n, inC: heads.outWidth, outC: c, accumulate: true)
            RMSNorm.forward(out: a.ln, rstd: la.ln2Rstd, inp: la.res2, weight: p + w.ln2w, n: n, c: c, eps: cfg.layerNormEpsilon)
            // fch[N, 2I] = ln · [Wgate; Wup]ᵀ; h[N, I] = silu(gate) ⊙ up; res3 = res2 + h · Wdownᵀ
            LinearOutIn.forward(out: la.fch, inp: a.ln, weight: p + w.fcW, bias: nil, n: n, inC: c, outC: 2 * i)
            SwiGLU.forward(out: a.gelu, gateUp: la.fch, n: n, width: i)
            la.res3.update(from: la.res2, count: n * c)
            LinearOutIn.forward(out: la.res3, inp: a.gelu, weight: p + w.fcProjW, bias: nil, n: n, inC: i, outC: c, accumulate: true)
        }
    }

    /// Backward through the blocks: ∂L/∂(last residual) in `s.dres` in, ∂L/∂(embedding output) out.
    func backwardLlamaBlocks(_ a: Activations, _ s: BackwardScratch) {
        let p = params, g = grads, cfg = config, n = a.n, c = cfg.nEmbd, i = cfg.intermediateSize
        let heads = cfg.attentionHeads, qkvWidth = heads.qkvWidth, rotary = rotary!
        let dres = s.dres, dln = s.dln
        for l in stride(from: cfg.nLayer - 1, through: 0, by: -1) {
            let w = layout.blocks[l]
            let la = a.layer(l)
            let resIn = l == 0 ? a.encoded : a.layer(l - 1).res3
            // MLP, recomputing h = silu(gate) ⊙ up rather than keeping it per layer
            SwiGLU.forward(out: a.gelu, gateUp: la.fch, n: n, width: i)
            LinearOutIn.backward(dinp: s.dmlp, dweight: g + w.fcProjW, dbias: nil, dout: dres, inp: a.gelu, weight: p + w.fcProjW,
                                 n: n, inC: i, outC: c, overwriteInput: true)
            SwiGLU.backward(dgateUp: s.dfch, dout: s.dmlp, gateUp: la.fch, n: n, width: i)
            RMSNorm.forward(out: s.ln, rstd: nil, inp: la.res2, weight: p + w.ln2w, n: n, c: c, eps: cfg.layerNormEpsilon)
            LinearOutIn.backward(dinp: dln, dweight: g + w.fcW, dbias: nil, dout: s.dfch, inp: s.ln, weight: p + w.fcW,
                                 n: n, inC: c, outC: 2 * i, overwriteInput: true)
            RMSNorm.backward(dinp: dres, dweight: g + w.ln2w, dout: dln, inp: la.res2, weight: p + w.ln2w, rstd: la.ln2Rstd, n: n, c: c)
            // Attention; ∂L/∂atty reuses the dln buffer, free until the qkv projection's backward
            let datty = dln
            LinearOutIn.backward(dinp: datty, dweight: g + w.attnProjW, dbias: w.attnProjB.map { g + $0 }, dout: dres,
                                 inp: la.atty, weight: p + w.attnProjW, n: n, inC: heads.outWidth, outC: c, overwriteInput: true)
            s.dqkv.update(repeating: 0, count: n * qkvWidth)
            Attention.backward(dqkv: s.dqkv, dout: datty, qkv: la.qkv, att: la.att, segments: a.segments, heads: heads)
            // the rotation is orthogonal: its gradient turns q's and k's gradients back
            rotary.apply(s.dqkv, positions: a.positions, n: n, heads: heads.heads + heads.kvHeads, rowStride: qkvWidth, inverse: true)
            RMSNorm.forward(out: s.ln, rstd: nil, inp: resIn, weight: p + w.ln1w, n: n, c: c, eps: cfg.layerNormEpsilon)
            LinearOutIn.backward(dinp: dln, dweight: g + w.attnW, dbias: w.attnB.map { g + $0 }, dout: s.dqkv, inp: s.ln,
                                 weight: p + w.attnW, n: n, inC: c, outC: qkvWidth, overwriteInput: true)
            RMSNorm.backward(dinp: dres, dweight: g + w.ln1w, dout: dln, inp: resIn, weight: p + w.ln1w, rstd: la.ln1Rstd, n: n, c: c)
        }
    }
}
