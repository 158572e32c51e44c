/// out[M,N] (+)= x[M,K] · w[K,N] for small M (decoding: one row per sequence). OpenBLAS repacks the
/// whole weight matrix on every call, which for M ≈ 32 costs as much as the arithmetic; this kernel
/// streams w directly: 4-row × 64-column register blocks (16 AVX-512 accumulators), columns split
/// across threads.
public enum SmallGemm {
    /// Below this many rows `Linear` uses this kernel instead of sgemm.
    public static let maxRows = 64

    public static func multiply(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                                m: Int, k: Int, n: Int, accumulate: Bool) {
        let wide = n / 64
        // Column blocks of 64, then 16, then single columns, each for all rows.
        Parallel.forEachChunk(wide, grain: 2) { blocks in
            for cb in blocks { block64(out, x, w, m, k, n, col: cb * 64, accumulate) }
        }
        var col = wide * 64
        while col + 16 <= n {
            block16(out, x, w, m, k, n, col: col, accumulate)
            col += 16
        }
        while col < n {
            for r in 0..<m {
                var s: Float = 0
                for kk in 0..<k { s += x[r * k + kk] * w[kk * n + col] }
                out[r * n + col] = accumulate ? out[r * n + col] + s : s
            }
            col += 1
        }
    }

    typealias V = SIMD16<Float>

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }

    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>, _ accumulate: Bool) {
        let raw = UnsafeMutableRawPointer(p)
        raw.storeBytes(of: accumulate ? v + raw.loadUnaligned(as: V.self) : v, as: V.self)
    }

    @inline(__always)
    static func block64(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                        _ m: Int, _ k: Int, _ n: Int, col: Int, _ accumulate: Bool) {
        var r = 0
        while r + 4 <= m {
            var a00 = V(), a01 = V(), a02 = V(), a03 = V(), a10 = V(), a11 = V(), a12 = V(), a13 = V()
            var a20 = V(), a21 = V(), a22 = V(), a23 = V(), a30 = V(), a31 = V(), a32 = V(), a33 = V()
            let x0 = x + r * k, x1 = x0 + k, x2 = x1 + k, x3 = x2 + k
            for kk in 0..<k {
                let wr = w + kk * n + col
                let w0 = load(wr), w1 = load(wr + 16), w2 = load(wr + 32), w3 = load(wr + 48)
                let b0 = V(repeating: x0[kk]), b1 = V(repeating: x1[kk]), b2 = V(repeating: x2[kk]), b3 = V(repeating: x3[kk])
                a00.addProduct(b0, w0); a01.addProduct(b0, w1); a02.addProduct(b0, w2); a03.addProduct(b0, w3)
                a10.addProduct(b1, w0); a11.addProduct(b1, w1); a12.addProduct(b1, w2); a13.addProduct(b1, w3)
                a20.addProduct(b2, w0); a21.addProduct(b2, w1); a22.addProduct(b2, w2); a23.addProduct(b2, w3)
                a30.addProduct(b3, w0); a31.addProduct(b3, w1); a32.addProduct(b3, w2); a33.addProduct(b3, w3)
            }
            let o0 = out + r * n + col, o1 = o0 + n, o2 = o1 + n, o3 = o2 + n
            store(a00, o0, accumulate); store(a01, o0 + 16, accumulate); store(a02, o0 + 32, accumulate); store(a03, o0 + 48, accumulate)
            store(a10, o1, accumulate); store(a11, o1 + 16, accumulate); store(a12, o1 + 32, accumulate); store(a13, o1 + 48, accumulate)
            store(a20, o2, accumulate); store(a21, o2 + 16, accumulate); store(a22, o2 + 32, accumulate); store(a23, o2 + 48, accumulate)
            store(a30, o3, accumulate); store(a31, o3 + 16, accumulate); store(a32, o3 + 32, accumulate); store(a33, o3 + 48, accumulate)
            r += 4
        }
        while r < m {
            var a0 = V(), a1 = V(), a2 = V(), a3 = V()
            let xr = x + r * k
            for kk in 0..<k {
                let wr = w + kk * n + col
                let b = V(repeating: xr[kk])
                a0.addProduct(b, load(wr)); a1.addProduct(b, load(wr + 16)); a2.addProduct(b, load(wr + 32)); a3.addProduct(b, load(wr + 48))
            }
            let o = out + r * n + col
            store(a0, o, accumulate); store(a1, o + 16, accumulate); store(a2, o + 32, accumulate); store(a3, o + 48, accumulate)
            r += 1
        }
    }

    @inline(__always)
    static func block16(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                        _ m: Int, _ k: Int, _ n: Int, col: Int, _ accumulate: Bool) {
        for r in 0..<m {
            var a = V()
            let xr = x + r * k
            for kk in 0..<k { a.addProduct(V(repeating: xr[kk]), load(w + kk * n + col)) }
            store(a, out + r * n + col, accumulate)
        }
    }
}
