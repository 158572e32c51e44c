import Foundation

/// RMSNorm as Llama and Qwen2 use it: out = x / √(mean(x²) + ε) · w (no mean subtraction, no bias).
public enum RMSNorm {
    /// out[N,C]; saves rstd[N] for backward when `rstd` is given.
    public static func forward(out: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>?, inp: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, n: Int, c: Int, eps: Float) {
        Parallel.forEachChunk(n, grain: 64) { rows in
            for r in rows {
                let x = inp + r * c, o = out + r * c
                let s = 1 / (Vec.dot(x, x, c) / Float(c) + eps).squareRoot()
                for j in 0..<c { o[j] = x[j] * s * weight[j] }
                rstd?[r] = s
            }
        }
    }

    /// dinp[N,C] += ∂L/∂inp; dweight[C] += Σ_rows dout·x·rstd.
    /// With x̂ = x·s: ∂L/∂x = s·(w⊙dy − x̂·mean(w⊙dy⊙x̂)).
    public static func backward(dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                inp: UnsafePointer<Float>, weight: UnsafePointer<Float>, rstd: UnsafePointer<Float>, n: Int, c: Int) {
        // row-parallel input gradients; weight-gradient partials per worker, added in worker order (reproducible)
        let workers = max(1, min(Parallel.threads, n / 64))
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: workers * c)
        partial.initialize(repeating: 0, count: workers * c)
        defer { partial.deallocate() }
        let per = (n + workers - 1) / workers
        Parallel.forEach(workers) { w in
            let dw = partial + w * c
            let lo = w * per, hi = min(n, lo + per)
            guard lo < hi else { return }
            for r in lo..<hi {
                let x = inp + r * c, dy = dout + r * c, dx = dinp + r * c, s = rstd[r]
                var meanDX: Float = 0
                for j in 0..<c {
                    let xh = x[j] * s
                    meanDX += weight[j] * dy[j] * xh
                    dw[j] += xh * dy[j]
                }
                meanDX /= Float(c)
                for j in 0..<c { dx[j] += s * (weight[j] * dy[j] - x[j] * s * meanDX) }
            }
        }
        for w in 0..<workers { Vec.axpy(1, partial + w * c, dweight, c) }
    }
}

/// Rotary position embeddings in the "rotate half" layout of `transformers`' Llama: within each head
/// of size D, element i < D/2 pairs with i + D/2 and the pair turns by position·θ^(−2i/D).
public struct RotaryEmbedding: Sendable {
    public let headDim: Int
    /// cos and sin of position p, pair i at [p·D/2 + i], for positions 0..<maxPositions
    let cos: [Float], sin: [Float]
    public let maxPositions: Int

    public init(headDim: Int, maxPositions: Int, theta: Double) {
        precondition(headDim % 2 == 0, "rotary embeddings need an even head size")
        self.headDim = headDim
        self.maxPositions = maxPositions
        let half = headDim / 2
        var c = [Float](repeating: 0, count: maxPositions * half), s = c
        for i in 0..<half {
            // as transformers computes it: inv_freq in float32, the product in float32
            let invFreq = Float(1 / pow(theta, Double(2 * i) / Double(headDim)))
            for p in 0..<maxPositions {
                let angle = Float(p) * invFreq
                c[p * half + i] = Foundation.cos(angle)
                s[p * half + i] = Foundation.sin(angle)
            }
        }
        cos = c
        sin = s
    }

    /// Rotates x[N, H, D] in place, row r at position positions[r]; `inverse` turns the other way
    /// (the backward pass: the rotation is orthogonal, so its gradient is the inverse rotation).
    public func apply(_ x: UnsafeMutablePointer<Float>, positions: UnsafePointer<Int32>, n: Int, heads: Int, rowStride: Int,
                      inverse: Bool = false) {
        let half = headDim / 2
        cos.withUnsafeBufferPointer { cb in
            sin.withUnsafeBufferPointer { sb in
                let cp = cb.baseAddress!, sp = sb.baseAddress!
                Parallel.forEachChunk(n, grain: 64) { rows in
                    for r in rows {
                        let p = Int(positions[r])
                        precondition(p >= 0 && p < maxPositions, "position \(p) beyond the rotary table (\(maxPositions))")
                        let cr = cp + p * half, sr = sp + p * half
                        for h in 0..<heads {
                            let v = x + r * rowStride + h * headDim
                            for i in 0..<half {
                                let a = v[i], b = v[i + half], co = cr[i], si = inverse ? -sr[i] : sr[i]
                                v[i] = a * co - b * si
                                v[i + half] = b * co + a * si
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The gated MLP activation of Llama and Qwen2: h = silu(gate) ⊙ up, 16 lanes at a time with the
/// vectorised exp (libm's scalar exp made it a third of a Llama training step).
public enum SwiGLU {
    typealias V = SIMD16<Float>

    @inline(__always) static func sigmoid(_ x: V) -> V { 1 / (1 + FastMath.exp(-x)) }

    /// 16 floats from p, or the m < 16 there are (the rest 0).
    @inline(__always) static func load(_ p: UnsafePointer<Float>, _ m: Int) -> V {
        if m == 16 { return UnsafeRawPointer(p).loadUnaligned(as: V.self) }
        var v = V()
        for j in 0..<m { v[j] = p[j] }
        return v
    }

    @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>, _ m: Int) {
        if m == 16 { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self); return }
        for j in 0..<m { p[j] = v[j] }
    }

    /// out[k] = silu(gate[k]) · up[k] for k < n (pointers with any stride between calls).
    @inline(__always)
    static func forwardSpan(_ out: UnsafeMutablePointer<Float>, _ gate: UnsafePointer<Float>, _ up: UnsafePointer<Float>, _ n: Int) {
        var k = 0
        while k < n {
            let m = min(16, n - k)
            let g = load(gate + k, m), u = load(up + k, m)
            store(g * sigmoid(g) * u, out + k, m)
            k += 16
        }
    }

    /// dgate[k], dup[k] (written) from dout[k].
    @inline(__always)
    static func backwardSpan(_ dgate: UnsafeMutablePointer<Float>, _ dup: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
                             _ gate: UnsafePointer<Float>, _ up: UnsafePointer<Float>, _ n: Int) {
        var k = 0
        while k < n {
            let m = min(16, n - k)
            let g = load(gate + k, m), u = load(up + k, m), dy = load(dout + k, m)
            let s = sigmoid(g)
            store(dy * g * s, dup + k, m)
            store(dy * u * s * (1 + g * (1 - s)), dgate + k, m)
            k += 16
        }
    }

    public static func forward(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, n: Int) {
        Parallel.forEachChunk(n, grain: 1 << 14) { range in
            forwardSpan(out + range.lowerBound, gate + range.lowerBound, up + range.lowerBound, range.count)
        }
    }

    /// dgate = dout·up·silu'(gate), dup = dout·silu(gate) (written, not accumulated).
    public static func backward(dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                gate: UnsafePointer<Float>, up: UnsafePointer<Float>, n: Int) {
        Parallel.forEachChunk(n, grain: 1 << 14) { range in
            let o = range.lowerBound
            backwardSpan(dgate + o, dup + o, dout + o, gate + o, up + o, range.count)
        }
    }

    /// Row-wise form for a fused gate|up projection: gateUp[N, 2I] holds gate in columns 0 ..< I and up
    /// in I ..< 2I of each row; out[N, I] = silu(gate) ⊙ up.
    public static func forward(out: UnsafeMutablePointer<Float>, gateUp: UnsafePointer<Float>, n: Int, width i: Int) {
        Parallel.forEachChunk(n, grain: max(1, (1 << 14) / max(i, 1))) { rows in
            for r in rows { forwardSpan(out + r * i, gateUp + r * 2 * i, gateUp + r * 2 * i + i, i) }
        }
    }

    /// dgateUp[N, 2I] (written) from dout[N, I] and the fused gateUp[N, 2I].
    public static func backward(dgateUp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, gateUp: UnsafePointer<Float>,
                                n: Int, width i: Int) {
        Parallel.forEachChunk(n, grain: max(1, (1 << 14) / max(i, 1))) { rows in
            for r in rows {
                let gu = gateUp + r * 2 * i, d = dgateUp + r * 2 * i
                backwardSpan(d, d + i, dout + r * i, gu, gu + i, i)
            }
        }
    }
}
