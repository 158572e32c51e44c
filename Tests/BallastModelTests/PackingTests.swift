import BallastData
import BallastModel
import BallastRandom
import Foundation
import Testing

/// Packed batches (sequences end to end, attention per sequence) must compute what padded ones do:
/// the padded layout is the one checked against PyTorch (ParityTests).
@Suite("Packed batches agree with padded ones")
struct PackingTests {
    /// A tiny model with two scalar heads, random weights (biases and LayerNorm too, so nothing is trivially 0 or 1).
    func model() throws -> GPT { try Self.makeModel() }

    static func makeModel() throws -> GPT {
        var cfg = GPTConfig.tiny
        cfg.scalarHeads = ["score", "value_head"]
        let m = try GPT(config: cfg)
        var rng = SeededRNG(seed: 5)
        for i in 0..<m.parameterCount { m.params[i] = rng.nextGaussian() * 0.1 }
        return m
    }

    func sequences() -> [[Int32]] { Self.makeSequences() }

    static func makeSequences() -> [[Int32]] {
        var rng = SeededRNG(seed: 11)
        return [17, 3, 40, 1, 25, 9].map { n in [ByteTokenizer.bos] + (1..<n).map { _ in Int32(rng.next() % 256) } }
    }

    /// Runs forward and backward with output gradients that depend only on (sequence, position), so both
    /// layouts get the same loss; returns logits and heads per real token, and every parameter gradient.
    func run(_ m: GPT, _ batch: TokenBatch, _ seqs: [[Int32]]) -> (logits: [Float], heads: [Float], grads: [Float]) {
        let v = m.config.vocabSize, h = m.config.scalarHeads.count
        m.zeroGrad()
        m.forward(batch)
        m.clearOutputGradients()
        var logits: [Float] = [], heads: [Float] = []
        for (r, s) in seqs.enumerated() {
            for i in 0..<s.count {
                let row = batch.start(ofRow: r) + i
                logits += Array(m.logits[(row * v)..<((row + 1) * v)])
                heads += (0..<h).map { m.headOutputs[row * h + $0] }
                for k in 0..<v { m.dLogits[row * v + k] = Float((r * 31 + i * 7 + k) % 13) / 13 - 0.5 }
                for k in 0..<h { m.dHeads[row * h + k] = Float((r + i + k) % 5) / 5 - 0.4 }
            }
        }
        m.backward()
        return (logits, heads, Array(UnsafeBufferPointer(start: m.grads, count: m.parameterCount)))
    }

    func maxRelative(_ a: [Float], _ b: [Float]) -> Float {
        #expect(a.count == b.count)
        let scale = max(b.map(abs).max() ?? 1, 1e-12)
        return zip(a, b).map { abs($0 - $1) }.max()! / scale
    }

    @Test("logits, heads and every gradient of a packed batch equal the padded batch's to 1e-6")
    func packedMatchesPadded() throws {
        let m = try model()
        let seqs = sequences()
        let padded = run(m, TokenBatch.rightPadded(seqs, pad: ByteTokenizer.pad), seqs)
        let packed = TokenBatch.packed(seqs)
        #expect(packed.tokens.count == seqs.map(\.count).reduce(0, +))
        let p = run(m, packed, seqs)
        #expect(maxRelative(p.logits, padded.logits) <= 1e-6)
        #expect(maxRelative(p.heads, padded.heads) <= 1e-6)
        for e in m.layout.entries {
            let r = e.offset..<(e.offset + e.count)
            let d = maxRelative(Array(p.grads[r]), Array(padded.grads[r]))
            #expect(d <= 1e-6, "\(e.name): max difference \(d) of the largest gradient")
        }
    }

    @Test("a packed sequence is computed as if it were alone: no attention crosses sequences")
    func sequencesAreIsolated() throws {
        let m = try model()
        let seqs = sequences()
        let v = m.config.vocabSize
        m.forward(TokenBatch.packed(seqs))
        let packed = TokenBatch.packed(seqs)
        let together = Array(m.logits[(packed.start(ofRow: 2) * v)..<((packed.start(ofRow: 2) + seqs[2].count) * v)])
        m.forward(TokenBatch.packed([seqs[2]]))
        let alone = Array(m.logits[0..<(seqs[2].count * v)])
        #expect(maxRelative(together, alone) <= 1e-6)
        // and the layout: rows, positions restarting per sequence
        #expect(packed.start(ofRow: 0) == 0 && packed.start(ofRow: 1) == 17 && packed.start(ofRow: 2) == 20)
        #expect(Array(packed.positions[17..<21]) == [0, 1, 2, 0])
    }

    @Test("an inference-only forward (one layer's buffers reused) gives exactly the training forward's outputs, and backward still works after it")
    func inferenceOnlyForward() throws {
        let m = try model()
        let seqs = sequences()
        let batch = TokenBatch.packed(seqs)
        let trained = run(m, batch, seqs)
        m.forward(batch, inferenceOnly: true)
        // (not bitwise: tests running beside this one change the process-wide thread counts, and with them
        // how some reductions are split)
        #expect(maxRelative(Array(m.logits), trained.logits) <= 1e-6)
        #expect(maxRelative(Array(m.headOutputs), trained.heads) <= 1e-6)
        // the training arena is kept: a training forward and backward after it give the same gradients
        #expect(maxRelative(run(m, batch, seqs).grads, trained.grads) <= 1e-6)
    }

    @Test("models sharing arenas: each one's outputs are its own, and a stale read stops instead of returning another model's")
    func sharedArenas() async throws {
        let a = try model(), b = try model()
        for i in 0..<b.parameterCount { b.params[i] *= 0.5 }
        let seqs = sequences()
        let batch = TokenBatch.packed(seqs)
        let aAlone = run(a, batch, seqs), bAlone = run(b, batch, seqs)
        b.shareArenas(with: a)
        #expect(maxRelative(run(a, batch, seqs).grads, aAlone.grads) <= 1e-6)
        #expect(maxRelative(run(b, batch, seqs).grads, bAlone.grads) <= 1e-6)
        b.forward(batch, inferenceOnly: true)
        #expect(maxRelative(Array(b.logits), bAlone.logits) <= 1e-6)
        a.forward(batch, inferenceOnly: true)
        #expect(maxRelative(Array(a.logits), aAlone.logits) <= 1e-6)
        await #expect(processExitsWith: .failure) {
            let a = try PackingTests.makeModel(), b = try PackingTests.makeModel()
            b.shareArenas(with: a)
            let batch = TokenBatch.packed(PackingTests.makeSequences())
            a.forward(batch)
            b.forward(batch)
            _ = a.logits  // b's forward has overwritten it
        }
    }
}
