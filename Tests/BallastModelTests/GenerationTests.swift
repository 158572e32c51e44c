import BallastKernels
import BallastModel
import BallastRandom
import Foundation
import Testing

/// A tiny model with large random weights, so that greedy outputs vary from token to token.
func spikyModel(seed: UInt64 = 3, nEmbd: Int = 32, nHead: Int = 2) throws -> GPT {
    let m = try GPT(config: GPTConfig(nLayer: 2, nHead: nHead, nEmbd: nEmbd, nPositions: 64, vocabSize: 259))
    m.initializeRandom(seed: seed)
    for i in 0..<m.parameterCount { m.params[i] *= 8 }
    return m
}

func logSoftmax(_ row: UnsafeBufferPointer<Float>.SubSequence, _ j: Int) -> Float {
    let m = row.max()!
    let lse = m + log(row.reduce(Float(0)) { $0 + exp($1 - m) })
    return row[row.startIndex + j] - lse
}

@Suite("KV-cache generation")
struct GenerationTests {
    /// Head sizes 16, 64 and 40 cover the cached-attention kernel's 16-wide, 64-wide and scalar paths.
    @Test("incremental decoding equals a full forward pass, for left-padded batches",
          arguments: [(32, 2), (128, 2), (80, 2)])
    func cacheMatchesFullForward(nEmbd: Int, nHead: Int) throws {
        let m = try spikyModel(nEmbd: nEmbd, nHead: nHead)
        if nEmbd > 32 { for i in 0..<m.parameterCount { m.params[i] *= 0.5 } }
        let prompts: [[Int32]] = [[256, 10, 20, 30, 40], [256, 7], [256, 1, 2, 3]]
        let gens = try Generator(model: m).generate(prompts: prompts, options: SamplingOptions(greedy: true, maxNewTokens: 12, stopAtEOS: false))
        let v = m.config.vocabSize
        for (p, g) in zip(prompts, gens) {
            #expect(g.outputIds.count == 12)
            #expect(Set(g.outputIds).count > 2, "outputs should vary for this test to mean something")
            let seq = p + g.outputIds.dropLast()
            m.forward(TokenBatch(tokens: seq, mask: [Float](repeating: 1, count: seq.count), batch: 1, length: seq.count))
            let logits = m.logits
            for (k, tok) in g.outputIds.enumerated() {
                let row = logits[(p.count - 1 + k) * v ..< (p.count + k) * v]
                let argmax = row.indices.max { row[$0] < row[$1] }! - row.startIndex
                #expect(Int32(argmax) == tok, "row \(p) step \(k)")
                #expect(abs(logSoftmax(row, Int(tok)) - g.logprobs[k]) < 1e-4)
            }
        }
        // Batching with padding changes nothing: each prompt alone gives the same continuation.
        for (p, g) in zip(prompts, gens) {
            let alone = try Generator(model: m).generate(prompts: [p], options: SamplingOptions(greedy: true, maxNewTokens: 12, stopAtEOS: false))
            #expect(alone[0].outputIds == g.outputIds)
        }
    }

    @Test("a model's reused KV cache (after larger and smaller calls, longer and shorter prompts) gives what a fresh model gives")
    func reusedCacheMatchesFresh() throws {
        let used = try spikyModel()
        let calls: [[[Int32]]] = [
            [[256, 1, 2, 3, 4, 5, 6, 7, 8], [256, 9], [256, 10, 11], [256, 12, 13, 14]],  // large first: later calls reuse it
            [[256, 40], [256, 41, 42]],
            [[256, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60]],  // longer prompt than before: still fits the same rows × chunk
            [[256, 1, 2, 3, 4, 5, 6, 7, 8], [256, 9], [256, 10, 11], [256, 12, 13, 14], [256, 15], [256, 16]],  // grows
        ]
        for (k, prompts) in calls.enumerated() {
            let options = SamplingOptions(temperature: 1.2, maxNewTokens: 10 + k, seed: UInt64(k))
            let reused = try Generator(model: used).generate(prompts: prompts, options: options)
            let fresh = try Generator(model: spikyModel()).generate(prompts: prompts, options: options)
            #expect(reused == fresh, "call \(k)")
        }
    }

    @Test("sampling is deterministic for a seed and varies across seeds")
    func seeded() throws {
        let m = try spikyModel()
        let gen = Generator(model: m)
        let prompts: [[Int32]] = Array(repeating: [256, 65, 66], count: 4)
        func run(_ seed: UInt64) throws -> [[Int32]] {
            try gen.generate(prompts: prompts, options: SamplingOptions(temperature: 1.5, maxNewTokens: 16, seed: seed, stopAtEOS: false)).map(\.outputIds)
        }
        #expect(try run(1) == run(1))
        #expect(try run(1) != run(2))
        let rows = try run(5)
        #expect(Set(rows.map { $0.map(String.init).joined(separator: ",") }).count > 1, "rows of one batch draw different samples")
    }

    @Test("EOS stops a row and length limits hold")
    func stopping() throws {
        let m = try spikyModel()
        let greedy = try Generator(model: m).generate(prompts: [[256, 1]], options: SamplingOptions(greedy: true, maxNewTokens: 6, stopAtEOS: false))[0]
        // Declare the third greedy token to be EOS: generation must stop right after emitting it.
        let eos = greedy.outputIds[2]
        try #require(!greedy.outputIds[0..<2].contains(eos), "the spiky model's greedy run must not repeat its third token earlier: \(greedy.outputIds)")
        let g = try Generator(model: m).generate(prompts: [[256, 1]], options: SamplingOptions(greedy: true, maxNewTokens: 6, eosId: eos))[0]
        #expect(g.outputIds == Array(greedy.outputIds[0...2]))
        #expect(g.stoppedAtEOS)
        #expect(throws: GenerationError.self) {
            try Generator(model: m).generate(prompts: [[256, 1]], options: SamplingOptions(maxNewTokens: 100))
        }
    }

    @Test("rows that stop early leave the batch; the others continue exactly as if alone")
    func finishedRowsLeaveTheBatch() throws {
        let m = try spikyModel()
        let prompts: [[Int32]] = [[256, 10, 20, 30, 40], [256, 7], [256, 1, 2, 3], [256, 99, 5], [256, 42]]
        let full = try Generator(model: m).generate(prompts: prompts, options: SamplingOptions(greedy: true, maxNewTokens: 12, stopAtEOS: false))
        // The EOS id: a token some rows emit early and at least one row never emits, so rows leave the
        // batch at different steps while another runs to the limit.
        let counts = Dictionary(full.flatMap { Set($0.outputIds) }.map { ($0, 1) }, uniquingKeysWith: +)
        let eos = try #require(counts.filter { $0.value >= 2 && $0.value < prompts.count }.keys.min(), "no token shared by some rows only")
        let stopped = try Generator(model: m).generate(prompts: prompts, options: SamplingOptions(greedy: true, maxNewTokens: 12, eosId: eos))
        let ends = stopped.map(\.outputIds.count)
        #expect(Set(ends).count >= 2 && ends.contains(12), "rows should stop at different steps: \(ends)")
        for (k, (f, g)) in zip(full, stopped).enumerated() {
            let cut = f.outputIds.firstIndex(of: eos).map { $0 + 1 } ?? f.outputIds.count
            #expect(g.outputIds == Array(f.outputIds[..<cut]), "row \(k)")
            #expect(g.stoppedAtEOS == (cut < f.outputIds.count || f.outputIds.last == eos))
            for (a, b) in zip(g.logprobs, f.logprobs) { #expect(abs(a - b) < 1e-4, "row \(k)") }
            let alone = try Generator(model: m).generate(prompts: [prompts[k]], options: SamplingOptions(greedy: true, maxNewTokens: 12, eosId: eos))[0]
            #expect(alone.outputIds == g.outputIds, "row \(k)")
        }
    }

    @Test("top-k and top-p keep exactly the documented candidates")
    func filtering() {
        // probabilities 0.5, 0.3, 0.15, 0.05
        let logits: [Float] = [0.5, 0.3, 0.15, 0.05].map { log($0) }
        var rng = SeededRNG(seed: 9)
        func draws(_ o: SamplingOptions) -> Set<Int32> {
            Set((0..<2000).map { _ in logits.withUnsafeBufferPointer { Sampler.pick($0.baseAddress!, 4, o, &rng) } })
        }
        #expect(draws(SamplingOptions()) == [0, 1, 2, 3])
        #expect(draws(SamplingOptions(topK: 2)) == [0, 1])
        #expect(draws(SamplingOptions(topP: 0.7)) == [0, 1])
        #expect(draws(SamplingOptions(topP: 0.85)) == [0, 1, 2])
        #expect(draws(SamplingOptions(topK: 1)) == [0])
        #expect(draws(SamplingOptions(greedy: true)) == [0])
        // Frequencies follow the probabilities (0.5 / 0.3 / 0.15 / 0.05) within sampling error.
        var counts = [Int](repeating: 0, count: 4)
        for _ in 0..<20000 { counts[Int(logits.withUnsafeBufferPointer { Sampler.pick($0.baseAddress!, 4, SamplingOptions(), &rng) })] += 1 }
        for (c, p) in zip(counts, [0.5, 0.3, 0.15, 0.05]) { #expect(abs(Double(c) / 20000 - p) < 0.015) }
    }
}
