import Foundation

/// Causal multi-head self-attention with a key padding mask.
///
/// Visibility rule (left or right padding): query i sees key j when j ≤ i and key j is not padding;
/// every query also sees itself, so no softmax row is empty. Rows at padding positions therefore
/// produce finite values that losses mask out.
public enum Attention {
    /// qkv[B,T,3C] (q | k | v, head h at columns h·hs ..< (h+1)·hs of each) → out[B,T,C];
    /// saves probabilities att[B,NH,T,T] (zero where not visible). keyMask[B,T] is 1 for tokens, 0 for padding.
    public static func forward(out: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>,
                               qkv: UnsafePointer<Float>, keyMask: UnsafePointer<Float>,
                               b: Int, t: Int, c: Int, nHead: Int) {
        let hs = c / nHead
        let scale = 1 / Float(hs).squareRoot()
        let c3 = 3 * c
        Parallel.forEach(b * nHead) { bh in
            let bi = bh / nHead, h = bh % nHead
            let base = qkv + bi * t * c3
            let mask = keyMask + bi * t
            for i in 0..<t {
                let q = base + i * c3 + h * hs
                let row = att + (bh * t + i) * t
                var m = -Float.infinity
                for j in 0...i {
                    if j == i || mask[j] != 0 {
                        let s = Vec.dot(q, base + j * c3 + c + h * hs, hs) * scale
                        row[j] = s
                        if s > m { m = s }
                    }
                }
                // Hidden keys get −∞ so the vectorised exp maps them to exactly 0.
                for j in 0...i where !(j == i || mask[j] != 0) { row[j] = -.infinity }
                let sum = FastMath.expShiftedInPlace(row, i + 1, shift: m)
                let inv = 1 / sum
                let o = out + (bi * t + i) * c + h * hs
                o.update(repeating: 0, count: hs)
                for j in 0...i {
                    row[j] *= inv
                    if row[j] != 0 { Vec.axpy(row[j], base + j * c3 + 2 * c + h * hs, o, hs) }
                }
                if i + 1 < t { (row + i + 1).update(repeating: 0, count: t - i - 1) }
            }
        }
    }

    /// dqkv[B,T,3C] += gradients of q, k, v given dout[B,T,C] and the saved probabilities.
    public static func backward(dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                qkv: UnsafePointer<Float>, att: UnsafePointer<Float>,
                                b: Int, t: Int, c: Int, nHead: Int) {
        let hs = c / nHead
        let scale = 1 / Float(hs).squareRoot()
        let c3 = 3 * c
        Parallel.forEach(b * nHead) { bh in
            let bi = bh / nHead, h = bh % nHead
            let base = qkv + bi * t * c3
            let dbase = dqkv + bi * t * c3
            withUnsafeTemporaryAllocation(of: Float.self, capacity: t) { dpBuf in
                let dp = dpBuf.baseAddress!
                for i in 0..<t {
                    let row = att + (bh * t + i) * t
                    let dy = dout + (bi * t + i) * c + h * hs
                    var s: Float = 0
                    for j in 0...i where row[j] != 0 {
                        let v = base + j * c3 + 2 * c + h * hs
                        dp[j] = Vec.dot(dy, v, hs)
                        s += row[j] * dp[j]
                        Vec.axpy(row[j], dy, dbase + j * c3 + 2 * c + h * hs, hs)
                    }
                    let q = base + i * c3 + h * hs
                    let dq = dbase + i * c3 + h * hs
                    for j in 0...i where row[j] != 0 {
                        let ds = row[j] * (dp[j] - s) * scale
                        Vec.axpy(ds, base + j * c3 + c + h * hs, dq, hs)
                        Vec.axpy(ds, q, dbase + j * c3 + c + h * hs, hs)
                    }
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
