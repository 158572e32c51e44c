import Foundation

/// Causal multi-head self-attention with a key padding mask.
///
/// Visibility rule (left or right padding): query i sees key j when j ≤ i and key j is not padding;
/// every query also sees itself, so no softmax row is empty. Rows at padding positions therefore
/// produce finite values that losses mask out.
public enum Attention {
    /// qkv[B,T,3C] (q | k | v, head h at columns h·hs ..< (h+1)·hs of each) → out[B,T,C];
    /// saves probabilities att[B,NH,T,T] (zero where not visible). keyMask[B,T] is 1 for tokens, 0 for padding.
    ///
    /// Per (b, h): S = scale·Q Kᵀ and O = P V are sgemm calls on strided views of qkv (ld = 3C), run
    /// single-threaded inside our own (b, h) parallel loop.
    public static func forward(out: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>,
                               qkv: UnsafePointer<Float>, keyMask: UnsafePointer<Float>,
                               b: Int, t: Int, c: Int, nHead: Int) {
        let hs = c / nHead
        let scale = 1 / Float(hs).squareRoot()
        let c3 = 3 * c
        BLAS.singleThreaded {
            Parallel.forEach(b * nHead) { bh in
                let bi = bh / nHead, h = bh % nHead
                let q = qkv + bi * t * c3 + h * hs
                let p = att + bh * t * t
                // S[T,T] = scale · Q[T,hs] · K[T,hs]ᵀ
                BLAS.gemm(transB: true, m: t, n: t, k: hs, alpha: scale, a: q, lda: c3, b: q + c, ldb: c3, c: p, ldc: t)
                maskedSoftmaxRows(p, t: t, keyMask: keyMask + bi * t)
                // O[T,hs] = P[T,T] · V[T,hs]
                BLAS.gemm(m: t, n: hs, k: t, a: p, lda: t, b: q + 2 * c, ldb: c3, c: out + bi * t * c + h * hs, ldc: c)
            }
        }
    }

    /// Row i of scores[T,T] becomes softmax over the keys query i sees; hidden entries are exactly 0.
    @inline(__always)
    static func maskedSoftmaxRows(_ scores: UnsafeMutablePointer<Float>, t: Int, keyMask: UnsafePointer<Float>) {
        for i in 0..<t {
            let row = scores + i * t
            var m = -Float.infinity
            for j in 0..<t {
                if j == i || (j < i && keyMask[j] != 0) {
                    if row[j] > m { m = row[j] }
                } else {
                    row[j] = -.infinity
                }
            }
            let inv = 1 / FastMath.expShiftedInPlace(row, t, shift: m)
            for j in 0...i { row[j] *= inv }
        }
    }

    /// dqkv[B,T,3C] += gradients of q, k, v given dout[B,T,C] and the saved probabilities.
    /// Per (b, h): dP = dO Vᵀ, dV += Pᵀ dO, dS = P ⊙ (dP − rowsum(P ⊙ dP)), dQ += scale·dS K, dK += scale·dSᵀ Q.
    public static func backward(dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                qkv: UnsafePointer<Float>, att: UnsafePointer<Float>,
                                b: Int, t: Int, c: Int, nHead: Int) {
        let hs = c / nHead
        let scale = 1 / Float(hs).squareRoot()
        let c3 = 3 * c
        BLAS.singleThreaded {
            Parallel.forEach(b * nHead) { bh in
                let bi = bh / nHead, h = bh % nHead
                let q = qkv + bi * t * c3 + h * hs
                let dq = dqkv + bi * t * c3 + h * hs
                let dO = dout + bi * t * c + h * hs
                let p = att + bh * t * t
                withUnsafeTemporaryAllocation(of: Float.self, capacity: t * t) { buf in
                    let ds = buf.baseAddress!
                    // dP[T,T] = dO[T,hs] · V[T,hs]ᵀ
                    BLAS.gemm(transB: true, m: t, n: t, k: hs, a: dO, lda: c, b: q + 2 * c, ldb: c3, c: ds, ldc: t)
                    // dV[T,hs] += Pᵀ · dO
                    BLAS.gemm(transA: true, m: t, n: hs, k: t, a: p, lda: t, b: dO, ldb: c, beta: 1, c: dq + 2 * c, ldc: c3)
                    for i in 0..<t {
                        let pr = p + i * t, dr = ds + i * t
                        let dot = Vec.dot(pr, dr, i + 1)
                        for j in 0...i { dr[j] = pr[j] * (dr[j] - dot) * scale }
                        if i + 1 < t { (dr + i + 1).update(repeating: 0, count: t - i - 1) }
                    }
                    // dQ[T,hs] += dS · K ;  dK[T,hs] += dSᵀ · Q
                    BLAS.gemm(m: t, n: hs, k: t, a: ds, lda: t, b: q + c, ldb: c3, beta: 1, c: dq, ldc: c3)
                    BLAS.gemm(transA: true, m: t, n: hs, k: t, a: ds, lda: t, b: q, ldb: c3, beta: 1, c: dq + c, ldc: c3)
                }
            }
        }
    }

    /// Incremental attention for decoding. qkv[B,Tn,3C] holds the new tokens, which occupy cache
    /// slots start ..< start+Tn. Their keys and values are first written to kCache/vCache
    /// [B,NH,S,hs]; then each new query attends over slots 0 ... its own under the same visibility rule,
    /// with keyMask[B,S] marking real tokens. out[B,Tn,C].
    public static func forwardCached(out: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>,
                                     kCache: UnsafeMutablePointer<Float>, vCache: UnsafeMutablePointer<Float>,
                                     keyMask: UnsafePointer<Float>, b: Int, tNew: Int, start: Int,
                                     capacity s: Int, c: Int, nHead: Int) {
        let hs = c / nHead
        let scale = 1 / Float(hs).squareRoot()
        let c3 = 3 * c
        Parallel.forEach(b * nHead) { bh in
            let bi = bh / nHead, h = bh % nHead
            let kc = kCache + bh * s * hs, vc = vCache + bh * s * hs
            let mask = keyMask + bi * s
            for i in 0..<tNew {
                let src = qkv + (bi * tNew + i) * c3 + h * hs
                (kc + (start + i) * hs).update(from: src + c, count: hs)
                (vc + (start + i) * hs).update(from: src + 2 * c, count: hs)
            }
            withUnsafeTemporaryAllocation(of: Float.self, capacity: start + tNew) { buf in
                let row = buf.baseAddress!
                for i in 0..<tNew {
                    let q = qkv + (bi * tNew + i) * c3 + h * hs
                    let me = start + i
                    var m = -Float.infinity
                    for j in 0...me {
                        if j == me || mask[j] != 0 {
                            let sc = Vec.dot(q, kc + j * hs, hs) * scale
                            row[j] = sc
                            if sc > m { m = sc }
                        }
                    }
                    for j in 0...me where !(j == me || mask[j] != 0) { row[j] = -.infinity }
                    let sum = FastMath.expShiftedInPlace(row, me + 1, shift: m)
                    let inv = 1 / sum
                    let o = out + (bi * tNew + i) * c + h * hs
                    o.update(repeating: 0, count: hs)
                    for j in 0...me where row[j] != 0 {
                        Vec.axpy(row[j] * inv, vc + j * hs, o, hs)
                    }
                }
            }
        }
    }
}
