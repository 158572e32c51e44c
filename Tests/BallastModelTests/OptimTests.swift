import BallastModel
import BallastOptim
import BallastRandom
import Foundation
import Testing

@Suite("Optimiser pieces")
struct OptimTests {
    @Test("warmup is linear, then cosine reaches min_lr at the last step")
    func schedule() {
        let s = CosineSchedule(peak: 1e-3, minLR: 1e-4, warmupSteps: 10, totalSteps: 110)
        #expect(abs(s.lr(at: 0) - 1e-4) < 1e-9)
        #expect(abs(s.lr(at: 4) - 5e-4) < 1e-9)
        #expect(s.lr(at: 9) == 1e-3)
        #expect(abs(s.lr(at: 10) - 1e-3) < 1e-9)
        #expect(abs(s.lr(at: 60) - 5.5e-4) < 1e-7, "half way down the cosine")
        #expect(abs(s.lr(at: 110) - 1e-4) < 1e-9)
        #expect(abs(s.lr(at: 500) - 1e-4) < 1e-9, "clamped after the end")
        for t in 10..<110 { #expect(s.lr(at: t + 1) <= s.lr(at: t)) }
    }

    @Test("clipping scales to max_norm only when above it")
    func clipping() {
        var g: [Float] = [3, 4]
        let n = GradientClipping.clip(&g, count: 2, maxNorm: 1)
        #expect(n == 5)
        #expect(abs(g[0] - 0.6) < 1e-6 && abs(g[1] - 0.8) < 1e-6)
        var small: [Float] = [0.3, 0.4]
        GradientClipping.clip(&small, count: 2, maxNorm: 1)
        #expect(small == [0.3, 0.4])
    }

    @Test("AdamW: first step moves each weight by lr·sign(g) and decays matrices only")
    func firstStep() {
        let opt = AdamW(count: 4, decayRanges: [0..<2], hyper: .init(beta1: 0.9, beta2: 0.999, eps: 0, weightDecay: 0.5))
        var p: [Float] = [1, -1, 1, -1]
        let g: [Float] = [2, -3, 0.5, 7]
        opt.update(params: &p, grads: g, lr: 0.1)
        // decay: p·(1 − lr·λ) = p·0.95 on the first two; Adam's bias-corrected first step is lr·sign(g).
        let expected: [Float] = [0.95 - 0.1, -0.95 + 0.1, 1 - 0.1, -1 - 0.1]
        for i in 0..<4 { #expect(abs(p[i] - expected[i]) < 1e-6, "index \(i): \(p[i]) vs \(expected[i])") }
        #expect(opt.step == 1)
    }

    @Test("the fused clip + decay + AdamW pass gives exactly what clip then update gives, over steps, spans and a non-finite gradient")
    func fusedClippedUpdate() {
        let count = 100_003  // several parallel chunks and decay spans that do not align with them
        let decay = [0..<40_000, 40_100..<70_000, 99_000..<100_003]
        var rng = SeededRNG(seed: 3)
        let start = (0..<count).map { _ in rng.nextGaussian() }
        var separate = start, fused = start
        let a = AdamW(count: count, decayRanges: decay, hyper: .init(weightDecay: 0.1))
        let b = AdamW(count: count, decayRanges: decay, hyper: .init(weightDecay: 0.1))
        for step in 0..<4 {
            var g = (0..<count).map { _ in rng.nextGaussian() * (step == 2 ? 0.001 : 1) }  // step 2: below the clip
            let fusedNorm = b.clippedUpdate(params: &fused, grads: g, lr: 0.01, maxGradNorm: 1)
            let norm = GradientClipping.clip(&g, count: count, maxNorm: 1)
            a.update(params: &separate, grads: g, lr: 0.01)
            #expect(fusedNorm == norm)
            #expect(fused == separate, "step \(step)")
        }
        var bad = [Float](repeating: 0, count: count)
        bad[7] = .nan
        let before = fused
        #expect(!b.clippedUpdate(params: &fused, grads: bad, lr: 0.01, maxGradNorm: 1).isFinite)
        #expect(fused == before && b.step == 4, "a non-finite gradient leaves weights and step count alone")
    }

    @Test("ranges clipped apart: each moves as under its own clip_grad_norm_, the rest as if those ranges were absent")
    func clippedApart() {
        let count = 50_000, apart = [30_000..<30_256, 49_000..<50_000]  // the second crosses the end of a decay span
        let decay = [0..<49_500]
        var rng = SeededRNG(seed: 5)
        let start = (0..<count).map { _ in rng.nextGaussian() }
        var together = start
        let opt = AdamW(count: count, decayRanges: decay, hyper: .init(weightDecay: 0.1))
        // references: the rest with the apart ranges' gradients zeroed, and each range as its own buffer
        var rest = start
        let restOpt = AdamW(count: count, decayRanges: decay, hyper: .init(weightDecay: 0.1))
        var pieces = apart.map { Array(start[$0]) }
        let pieceOpts = apart.map { r in AdamW(count: r.count, decayRanges: decay.map { $0.clamped(to: r) }.filter { !$0.isEmpty }
                                                .map { $0.lowerBound - r.lowerBound ..< $0.upperBound - r.lowerBound },
                                              hyper: .init(weightDecay: 0.1)) }
        for step in 0..<3 {
            var g = (0..<count).map { _ in rng.nextGaussian() * 0.02 }
            for i in apart[0] { g[i] *= Float(50 * (step + 1)) }  // a probe head whose gradient dwarfs the rest
            let norm = opt.clippedUpdate(params: &together, grads: g, lr: 0.01, maxGradNorm: 1, clippedApart: apart)
            #expect(norm == GradientClipping.globalNorm(g, count: count))
            var zeroed = g
            for r in apart { for i in r { zeroed[i] = 0 } }
            restOpt.clippedUpdate(params: &rest, grads: zeroed, lr: 0.01, maxGradNorm: 1)
            for (k, r) in apart.enumerated() { pieceOpts[k].clippedUpdate(params: &pieces[k], grads: Array(g[r]), lr: 0.01, maxGradNorm: 1) }
            for i in 0..<count where !apart.contains(where: { $0.contains(i) }) {
                #expect(abs(together[i] - rest[i]) <= 1e-6 * max(1, abs(rest[i])), "step \(step) index \(i)")
            }
            for (k, r) in apart.enumerated() {
                for i in r { #expect(abs(together[i] - pieces[k][i - r.lowerBound]) <= 1e-6 * max(1, abs(together[i])), "step \(step) index \(i)") }
            }
        }
    }
}
