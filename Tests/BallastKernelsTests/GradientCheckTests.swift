import BallastKernels
import BallastRandom
import Testing

/// Finite-difference checks: every kernel's backward against central differences of its forward,
/// on the scalar L = Σ r ⊙ out with a fixed random r.
func randoms(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var rng = SeededRNG(seed: seed)
    return (0..<n).map { _ in rng.nextGaussian() * scale }
}

func numericGradient(_ x: inout [Float], eps: Float = 1e-2, _ loss: ([Float]) -> Double) -> [Float] {
    var g = [Float](repeating: 0, count: x.count)
    for i in x.indices {
        let saved = x[i]
        x[i] = saved + eps
        let up = loss(x)
        x[i] = saved - eps
        let down = loss(x)
        x[i] = saved
        g[i] = Float((up - down) / Double(2 * eps))
    }
    return g
}

func weightedSum(_ out: [Float], _ r: [Float]) -> Double {
    zip(out, r).reduce(0) { $0 + Double($1.0) * Double($1.1) }
}

func expectGradientsClose(_ analytic: [Float], _ numeric: [Float], tol: Float = 2e-2, _ what: String,
                          sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(analytic.count == numeric.count)
    let scale = max(numeric.map(abs).max() ?? 0, 1e-3)
    let worst = zip(analytic, numeric).map { abs($0 - $1) }.max() ?? 0
    #expect(worst <= tol * scale, "\(what): max |analytic − numeric| = \(worst), gradient scale \(scale)", sourceLocation: sourceLocation)
    // A wrong backward that returns zeros must not pass: the check needs a non-trivial gradient.
    #expect(scale > 1e-3, "\(what): gradient is trivially small", sourceLocation: sourceLocation)
}

@Suite("Kernel gradients vs finite differences")
struct GradientCheckTests {
    @Test func linear() {
        let n = 5, ic = 7, oc = 6
        var x = randoms(n * ic, seed: 1), w = randoms(ic * oc, seed: 2), b = randoms(oc, seed: 3)
        let r = randoms(n * oc, seed: 4)
        func run(_ x: [Float], _ w: [Float], _ b: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: n * oc)
            Linear.forward(out: &out, inp: x, weight: w, bias: b, n: n, inC: ic, outC: oc)
            return out
        }
        var dx = [Float](repeating: 0, count: n * ic), dw = [Float](repeating: 0, count: ic * oc), db = [Float](repeating: 0, count: oc)
        Linear.backward(dinp: &dx, dweight: &dw, dbias: &db, dout: r, inp: x, weight: w, n: n, inC: ic, outC: oc)
        let (w0, b0, x0) = (w, b, x)
        expectGradientsClose(dx, numericGradient(&x) { weightedSum(run($0, w0, b0), r) }, "linear dx")
        expectGradientsClose(dw, numericGradient(&w) { weightedSum(run(x0, $0, b0), r) }, "linear dw")
        expectGradientsClose(db, numericGradient(&b) { weightedSum(run(x0, w0, $0), r) }, "linear db")
    }

    @Test func layerNorm() {
        let n = 70, c = 12  // n > 64 so the parallel path with per-thread partial sums runs
        var x = randoms(n * c, seed: 5), w = randoms(c, seed: 6), b = randoms(c, seed: 7)
        let r = randoms(n * c, seed: 8)
        func run(_ x: [Float], _ w: [Float], _ b: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: n * c), mean = [Float](repeating: 0, count: n), rstd = mean
            LayerNorm.forward(out: &out, mean: &mean, rstd: &rstd, inp: x, weight: w, bias: b, n: n, c: c)
            return out
        }
        var out = [Float](repeating: 0, count: n * c), mean = [Float](repeating: 0, count: n), rstd = mean
        LayerNorm.forward(out: &out, mean: &mean, rstd: &rstd, inp: x, weight: w, bias: b, n: n, c: c)
        var dx = [Float](repeating: 0, count: n * c), dw = [Float](repeating: 0, count: c), db = dw
        LayerNorm.backward(dinp: &dx, dweight: &dw, dbias: &db, dout: r, inp: x, weight: w, mean: mean, rstd: rstd, n: n, c: c)
        let (w0, b0, x0) = (w, b, x)
        expectGradientsClose(dx, numericGradient(&x, eps: 3e-3) { weightedSum(run($0, w0, b0), r) }, "layernorm dx")
        expectGradientsClose(dw, numericGradient(&w) { weightedSum(run(x0, $0, b0), r) }, "layernorm dw")
        expectGradientsClose(db, numericGradient(&b) { weightedSum(run(x0, w0, $0), r) }, "layernorm db")
    }

    @Test func gelu() {
        let n = 37  // exercises the 16-wide body and the scalar tail
        var x = randoms(n, seed: 9, scale: 2)
        let r = randoms(n, seed: 10)
        var dx = [Float](repeating: 0, count: n)
        GELU.backward(dinp: &dx, inp: x, dout: r, n: n)
        var inPlace = r
        GELU.backwardInPlace(&inPlace, inp: x, n: n)
        #expect(inPlace == dx, "in-place variant agrees with the accumulating one")
        expectGradientsClose(dx, numericGradient(&x, eps: 1e-3) { x in
            var out = [Float](repeating: 0, count: n)
            GELU.forward(out: &out, inp: x, n: n)
            return weightedSum(out, r)
        }, "gelu")
    }

    @Test("attention with left and right padding, in causal blocks of 3 rows and in one block",
          arguments: [[1, 1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1, 1]] as [[Float]], [3, 64])
    func attention(maskRow: [Float], block: Int) {
        let b = 2, t = 7, c = 8, nh = 2
        var qkv = randoms(b * t * 3 * c, seed: 11)
        let mask = [Float](repeating: 1, count: t) + maskRow
        let r = randoms(b * t * c, seed: 12)
        func run(_ qkv: [Float], block: Int = block) -> ([Float], [Float]) {
            // the attention buffer starts as garbage: blocks above the diagonal are never written before the softmax
            var out = [Float](repeating: 0, count: b * t * c), att = [Float](repeating: .nan, count: b * nh * t * t)
            Attention.forward(out: &out, att: &att, qkv: qkv, keyMask: mask, b: b, t: t, c: c, nHead: nh, block: block)
            return (out, att)
        }
        let (out, att) = run(qkv)
        var d = [Float](repeating: 0, count: qkv.count)
        Attention.backward(dqkv: &d, dout: r, qkv: qkv, att: att, b: b, t: t, c: c, nHead: nh, block: block)
        expectGradientsClose(d, numericGradient(&qkv, eps: 3e-3) { weightedSum(run($0).0, r) }, "attention dqkv")
        // blocks change which products are computed, not the result
        let (whole, wholeAtt) = run(qkv, block: t)
        var dWhole = [Float](repeating: 0, count: qkv.count)
        Attention.backward(dqkv: &dWhole, dout: r, qkv: qkv, att: wholeAtt, b: b, t: t, c: c, nHead: nh, block: t)
        #expect(zip(out, whole).allSatisfy { abs($0 - $1) < 1e-6 } && zip(att, wholeAtt).allSatisfy { abs($0 - $1) < 1e-6 })
        #expect(zip(d, dWhole).allSatisfy { abs($0 - $1) < 1e-5 })
        // Padding keys get zero probability from every other query; rows still sum to one.
        for bh in 0..<(b * nh) {
            let bi = bh / nh
            for i in 0..<t {
                let row = att[(bh * t + i) * t ..< (bh * t + i + 1) * t]
                #expect(abs(row.reduce(0, +) - 1) < 1e-5)
                for j in 0..<t where j != i && (j > i || mask[bi * t + j] == 0) { #expect(row[row.startIndex + j] == 0) }
            }
        }
    }

    @Test func softmax() {
        let n = 3, v = 21
        var x = randoms(n * v, seed: 13)
        let r = randoms(n * v, seed: 14)
        var p = [Float](repeating: 0, count: n * v)
        Softmax.forward(out: &p, inp: x, n: n, v: v)
        var dx = [Float](repeating: 0, count: n * v)
        Softmax.backward(dinp: &dx, probs: p, dout: r, n: n, v: v)
        expectGradientsClose(dx, numericGradient(&x, eps: 1e-3) { x in
            var p = [Float](repeating: 0, count: n * v)
            Softmax.forward(out: &p, inp: x, n: n, v: v)
            return weightedSum(p, r)
        }, "softmax")
    }

    @Test func crossEntropy() {
        let n = 4, v = 19
        var x = randoms(n * v, seed: 15, scale: 2)
        let targets: [Int32] = [3, 0, 18, -1]
        let weights: [Float] = [0.5, 0.25, 0.25, 0]
        var d = [Float](repeating: 0, count: n * v)
        var losses = [Float](repeating: 0, count: n)
        let loss = CrossEntropy.forwardBackward(logits: x, targets: targets, weights: weights, dlogits: &d, losses: &losses, n: n, v: v)
        // Reference loss in Double.
        var ref = 0.0
        for r in 0..<3 {
            let row = x[r * v ..< (r + 1) * v].map(Double.init)
            let m = row.max()!
            let lse = m + Foundation.log(row.map { Foundation.exp($0 - m) }.reduce(0, +))
            ref += Double(weights[r]) * (lse - row[Int(targets[r])])
        }
        #expect(abs(Double(loss) - ref) < 1e-5)
        #expect(d[(n - 1) * v ..< n * v].allSatisfy { $0 == 0 }, "ignored row has zero gradient")
        expectGradientsClose(d, numericGradient(&x, eps: 1e-3) { x in
            var scratch = [Float](repeating: 0, count: n * v)
            return Double(CrossEntropy.forwardBackward(logits: x, targets: targets, weights: weights, dlogits: &scratch, n: n, v: v))
        }, "cross-entropy")
    }

    @Test func embedding() {
        let n = 6, c = 4, v = 5, p = 8
        var wte = randoms(v * c, seed: 16), wpe = randoms(p * c, seed: 17)
        let tokens: [Int32] = [1, 4, 1, 0, 2, 1], positions: [Int32] = [0, 1, 2, 0, 1, 7]
        let r = randoms(n * c, seed: 18)
        func run(_ a: [Float], _ b: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: n * c)
            Embedding.forward(out: &out, tokens: tokens, positions: positions, wte: a, wpe: b, n: n, c: c)
            return out
        }
        var dwte = [Float](repeating: 0, count: v * c), dwpe = [Float](repeating: 0, count: p * c)
        Embedding.backward(dwte: &dwte, dwpe: &dwpe, dout: r, tokens: tokens, positions: positions, n: n, c: c)
        let (te, pe) = (wte, wpe)
        expectGradientsClose(dwte, numericGradient(&wte) { weightedSum(run($0, pe), r) }, "embedding wte")
        expectGradientsClose(dwpe, numericGradient(&wpe) { weightedSum(run(te, $0), r) }, "embedding wpe")
    }

    @Test func maskedMean() {
        var x = randoms(9, seed: 19)
        let mask: [Float] = [1, 0, 1, 1, 0, 0, 1, 1, 0]
        let m = MaskedMean.forward(x, mask: mask, n: 9)
        let ref = zip(x, mask).reduce(Float(0)) { $0 + $1.0 * $1.1 } / 5
        #expect(abs(m - ref) < 1e-6)
        var dx = [Float](repeating: 0, count: 9)
        MaskedMean.backward(dx: &dx, dout: 2, mask: mask, n: 9)
        expectGradientsClose(dx, numericGradient(&x) { Double(2 * MaskedMean.forward($0, mask: mask, n: 9)) }, "masked mean")
    }

    @Test("vectorised exp and tanh agree with libm")
    func fastMath() {
        var worstExp: Float = 0, worstTanh: Float = 0
        for i in -2000...2000 {
            let x = Float(i) * 0.04
            worstExp = max(worstExp, abs(FastMath.exp(x) - Foundation.exp(x)) / Foundation.exp(x))
            worstTanh = max(worstTanh, abs(FastMath.tanh(x) - Foundation.tanh(x)))
        }
        #expect(worstExp < 5e-7)
        #expect(worstTanh < 5e-7)
        #expect(FastMath.exp(-Float.infinity) == 0)
    }
}

import Foundation
