import Foundation

/// Token embedding, plus a learned position embedding when `wpe` is given (GPT-2; Llama has none).
public enum Embedding {
    /// out[N,C] = wte[tokens[n], :] (+ wpe[positions[n], :])
    public static func forward(out: UnsafeMutablePointer<Float>, tokens: UnsafePointer<Int32>,
                               positions: UnsafePointer<Int32>, wte: UnsafePointer<Float>,
                               wpe: UnsafePointer<Float>?, n: Int, c: Int) {
        for i in 0..<n {
            let o = out + i * c, t = wte + Int(tokens[i]) * c
            if let wpe {
                let p = wpe + Int(positions[i]) * c
                for j in 0..<c { o[j] = t[j] + p[j] }
            } else {
                o.update(from: t, count: c)
            }
        }
    }

    /// dwte[tokens[n]] += dout[n]; dwpe[positions[n]] += dout[n]
    public static func backward(dwte: UnsafeMutablePointer<Float>, dwpe: UnsafeMutablePointer<Float>?,
                                dout: UnsafePointer<Float>, tokens: UnsafePointer<Int32>,
                                positions: UnsafePointer<Int32>, n: Int, c: Int) {
        for i in 0..<n {
            Vec.axpy(1, dout + i * c, dwte + Int(tokens[i]) * c, c)
            if let dwpe { Vec.axpy(1, dout + i * c, dwpe + Int(positions[i]) * c, c) }
        }
    }
}

public enum LayerNorm {
    /// out[N,C] = (inp - mean) * rstd * w + b; saves mean[N], rstd[N] for backward.
    public static func forward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                               rstd: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                               n: Int, c: Int, eps: Float = 1e-5, saveStats: Bool = true) {
        Parallel.forEachChunk(n, grain: 64) { rows in
            for r in rows {
                let x = inp + r * c, o = out + r * c
                let m = Vec.sum(x, c) / Float(c)
                let s = 1 / (Vec.squaredDeviation(x, mean: m, c) / Float(c) + eps).squareRoot()
                for j in 0..<c { o[j] = (x[j] - m) * s * weight[j] + bias[j] }
                if saveStats {
                    mean[r] = m
                    rstd[r] = s
                }
            }
        }
    }

    /// dinp[N,C] += ∂L/∂inp; dweight[C] += Σ dout·x̂; dbias[C] += Σ dout.
    public static func backward(dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>,
                                dbias: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, n: Int, c: Int) {
        // Input gradients are row-independent and run in parallel; the weight/bias reductions run
        // per thread into private accumulators, added in chunk order so results are reproducible.
        let workers = max(1, min(Parallel.threads, n / 64))
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: workers * 2 * c)
        partial.initialize(repeating: 0, count: workers * 2 * c)
        defer { partial.deallocate() }
        let per = (n + workers - 1) / workers
        Parallel.forEach(workers) { w in
            let dw = partial + w * 2 * c, db = dw + c
            let lo = w * per, hi = min(n, lo + per)
            guard lo < hi else { return }
            for r in lo..<hi {
                let x = inp + r * c, dy = dout + r * c, dx = dinp + r * c
                let m = mean[r], s = rstd[r]
                var meanD: Float = 0, meanDX: Float = 0
                for j in 0..<c {
                    let xh = (x[j] - m) * s
                    let dn = weight[j] * dy[j]
                    meanD += dn
                    meanDX += dn * xh
                    db[j] += dy[j]
                    dw[j] += xh * dy[j]
                }
                meanD /= Float(c)
                meanDX /= Float(c)
                for j in 0..<c {
                    let xh = (x[j] - m) * s
                    dx[j] += (weight[j] * dy[j] - meanD - xh * meanDX) * s
                }
            }
        }
        for w in 0..<workers {
            Vec.axpy(1, partial + w * 2 * c, dweight, c)
            Vec.axpy(1, partial + w * 2 * c + c, dbias, c)
        }
    }
}

/// GELU, tanh approximation (GPT-2's "gelu_new").
public enum GELU {
    static let k: Float = (2 / Float.pi).squareRoot()

    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, n: Int) {
        Parallel.forEachChunk(n, grain: 1 << 16) { r in
            let ri = UnsafeRawPointer(inp), ro = UnsafeMutableRawPointer(out)
            var i = r.lowerBound
            while i + 16 <= r.upperBound {
                let x = ri.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
                let x3: SIMD16<Float> = x * x * x
                let t = FastMath.tanh(k * (x + 0.044715 * x3))
                let y: SIMD16<Float> = 0.5 * x * (1 + t)
                ro.storeBytes(of: y, toByteOffset: i * 4, as: SIMD16<Float>.self)
                i += 16
            }
            while i < r.upperBound {
                let x = inp[i]
                out[i] = 0.5 * x * (1 + FastMath.tanh(k * (x + 0.044715 * x * x * x)))
                i += 1
            }
        }
    }

    /// gelu'(x) lane-wise.
    @inline(__always)
    static func derivative(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let x2: SIMD16<Float> = x * x
        let inner: SIMD16<Float> = k * (x + 0.044715 * x2 * x)
        let t = FastMath.tanh(inner)
        let sech2: SIMD16<Float> = 1 - t * t
        let dInner: SIMD16<Float> = k * (1 + 0.134145 * x2)
        let left: SIMD16<Float> = 0.5 * (1 + t)
        return left + 0.5 * x * sech2 * dInner
    }

    /// dinp[i] += dout[i] · gelu'(inp[i])
    public static func backward(dinp: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                                dout: UnsafePointer<Float>, n: Int) {
        Parallel.forEachChunk(n, grain: 1 << 14) { r in
            let ri = UnsafeRawPointer(inp), rg = UnsafeRawPointer(dout), rd = UnsafeMutableRawPointer(dinp)
            var i = r.lowerBound
            while i + 16 <= r.upperBound {
                let x = ri.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
                var d = rd.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
                d.addProduct(derivative(x), rg.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self))
                rd.storeBytes(of: d, toByteOffset: i * 4, as: SIMD16<Float>.self)
                i += 16
            }
            while i < r.upperBound {
                dinp[i] += derivative(SIMD16(repeating: inp[i]))[0] * dout[i]
                i += 1
            }
        }
    }
}

extension GELU {
    /// d[i] = d[i] · gelu'(inp[i]): turns ∂L/∂gelu(x) into ∂L/∂x without a second buffer.
    public static func backwardInPlace(_ d: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, n: Int) {
        Parallel.forEachChunk(n, grain: 1 << 14) { r in
            let ri = UnsafeRawPointer(inp), rd = UnsafeMutableRawPointer(d)
            var i = r.lowerBound
            while i + 16 <= r.upperBound {
                let x = ri.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
                let g = rd.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
                rd.storeBytes(of: g * derivative(x), toByteOffset: i * 4, as: SIMD16<Float>.self)
                i += 16
            }
            while i < r.upperBound {
                d[i] *= derivative(SIMD16(repeating: inp[i]))[0]
                i += 1
            }
        }
    }
}

/// Row-wise softmax and log-softmax.
public enum Softmax {
    /// out[N,V] = softmax(inp[N,V]) row-wise. `out` may alias `inp`.
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, n: Int, v: Int) {
        for r in 0..<n {
            let x = inp + r * v, o = out + r * v
            let m = Vec.max(x, v)
            var s: Float = 0
            for j in 0..<v { let e = expf(x[j] - m); o[j] = e; s += e }
            let inv = 1 / s
            for j in 0..<v { o[j] *= inv }
        }
    }

    /// dinp[N,V] += p ⊙ (dout − Σ p·dout) for p = softmax output.
    public static func backward(dinp: UnsafeMutablePointer<Float>, probs: UnsafePointer<Float>,
                                dout: UnsafePointer<Float>, n: Int, v: Int) {
        for r in 0..<n {
            let p = probs + r * v, dy = dout + r * v, dx = dinp + r * v
            let s = Vec.dot(p, dy, v)
            for j in 0..<v { dx[j] += p[j] * (dy[j] - s) }
        }
    }

    /// log Σ exp(x) of one row, stable.
    @inline(__always)
    public static func logSumExp(_ x: UnsafePointer<Float>, _ v: Int) -> Float {
        let m = Vec.max(x, v)
        let shift = SIMD16<Float>(repeating: m)
        let raw = UnsafeRawPointer(x)
        var acc = SIMD16<Float>()
        var j = 0
        while j + 16 <= v {
            acc += FastMath.exp(raw.loadUnaligned(fromByteOffset: j * 4, as: SIMD16<Float>.self) - shift)
            j += 16
        }
        var s = acc.sum()
        while j < v { s += FastMath.exp(x[j] - m); j += 1 }
        return m + logf(s)
    }
}

/// Fused softmax + cross-entropy over rows of logits.
public enum CrossEntropy {
    /// For each row n: loss_n = −log softmax(logits_n)[target_n]; returns Σ_n weight_n · loss_n and
    /// writes dlogits_n = weight_n · (softmax(logits_n) − onehot(target_n)). Rows with weight 0 get a
    /// zero gradient (padding, prompt tokens). `dlogits` may alias `logits`. `losses` (optional) gets
    /// the per-row unweighted loss.
    @discardableResult
    public static func forwardBackward(logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>,
                                       weights: UnsafePointer<Float>, dlogits: UnsafeMutablePointer<Float>,
                                       losses: UnsafeMutablePointer<Float>? = nil, n: Int, v: Int) -> Float {
        let rowLoss = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { rowLoss.deallocate() }
        Parallel.forEachChunk(n, grain: 16) { rows in
            for r in rows {
                let x = logits + r * v, d = dlogits + r * v
                let w = weights[r]
                let t = Int(targets[r])
                if w == 0 || t < 0 {
                    let nll: Float = (t >= 0 && t < v) ? Softmax.logSumExp(x, v) - x[t] : 0
                    rowLoss[r] = nll
                    d.update(repeating: 0, count: v)
                    continue
                }
                let m = Vec.max(x, v)
                var s: Float = 0
                for j in 0..<v { s += expf(x[j] - m) }
                let lse = m + logf(s)
                rowLoss[r] = lse - x[t]
                let inv = 1 / s
                for j in 0..<v { d[j] = w * expf(x[j] - m) * inv }
                d[t] -= w
            }
        }
        var total: Float = 0
        for r in 0..<n { total += weights[r] * rowLoss[r] }
        if let losses { losses.update(from: rowLoss, count: n) }
        return total
    }
}

/// Means over a mask, and their gradients.
public enum MaskedMean {
    /// Σ mask·x / max(Σ mask, 1)
    public static func forward(_ x: UnsafePointer<Float>, mask: UnsafePointer<Float>, n: Int) -> Float {
        let count = Vec.sum(mask, n)
        return Vec.dot(x, mask, n) / max(count, 1)
    }

    /// dx[i] += dout · mask[i] / max(Σ mask, 1)
    public static func backward(dx: UnsafeMutablePointer<Float>, dout: Float, mask: UnsafePointer<Float>, n: Int) {
        let scale = dout / max(Vec.sum(mask, n), 1)
        Vec.axpy(scale, mask, dx, n)
    }
}
