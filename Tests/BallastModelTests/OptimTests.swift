import BallastModel
import BallastOptim
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
}
