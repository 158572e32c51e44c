import Foundation

/// Causal multi-head self-attention with a key padding mask.
///
/// Visibility rule (left or right padding): query i sees key j when j ≤ i and key j is not padding;
/// every query also sees itself, so no softmax row is empty. Rows at padding positions therefore
/// produce finite values that losses mask out.
public enum Attention {
    /// Where each sequence of a batch lives among the N token rows: sequence s covers rows
    /// starts[s] ..< starts[s] + lengths[s], and its probabilities for head h sit at
    /// att + attOffsets[s] + h·L² ([L, L] row-major). A padded [B, T] batch is B segments of T rows
    /// (padding masked by keyMask); a packed batch has one segment per sequence and no padding, so
    /// neither attention nor any per-token layer spends work on pad tokens.
    public struct Segments: Sendable, Equatable {
        public let starts: [Int]
        public let lengths: [Int]
        public let attOffsets: [Int]
        /// Floats of att all segments need: Σ nHead·L².
        public let attCount: Int
        /// Segment indices, longest first: the order the parallel loops take them in, so that a packed
        /// batch of uneven lengths does not end on one long straggler.
        let longestFirst: [Int]

        public init(lengths: [Int], nHead: Int) {
            var starts: [Int] = [], offsets: [Int] = [], row = 0, att = 0
            for l in lengths {
                starts.append(row)
                offsets.append(att)
                row += l
                att += nHead * l * l
            }
            self.starts = starts
            self.lengths = lengths
            self.attOffsets = offsets
            self.attCount = att
            longestFirst = lengths.indices.sorted { lengths[$0] > lengths[$1] }
        }

        /// B rows of T tokens each.
        public static func rectangular(b: Int, t: Int, nHead: Int) -> Segments {
            Segments(lengths: [Int](repeating: t, count: b), nHead: nHead)
        }

        public var tokenCount: Int { (starts.last ?? 0) + (lengths.last ?? 0) }
    }

    /// How query, key and value heads sit in a row of the fused qkv input: `heads` query heads, then
    /// `kvHeads` key heads, then `kvHeads` value heads, each `headDim` wide. Query head h reads key/value
    /// head h / (heads / kvHeads): grouped-query attention (GPT-2's multi-head attention is kvHeads = heads).
    public struct Heads: Sendable, Equatable {
        public let heads: Int, kvHeads: Int, headDim: Int

        public init(heads: Int, kvHeads: Int, headDim: Int) {
            precondition(heads > 0 && kvHeads > 0 && heads % kvHeads == 0, "query heads (\(heads)) must be a multiple of key/value heads (\(kvHeads))")
            self.heads = heads
            self.kvHeads = kvHeads
            self.headDim = headDim
        }

        /// GPT-2: nHead heads of c / nHead, keys and values per head.
        public static func multiHead(c: Int, nHead: Int) -> Heads { Heads(heads: nHead, kvHeads: nHead, headDim: c / nHead) }

        /// Width of a qkv row and of an output row.
        public var qkvWidth: Int { (heads + 2 * kvHeads) * headDim }
        public var outWidth: Int { heads * headDim }
        /// Query heads per key/value head.
        public var group: Int { heads / kvHeads }
        /// Column of query head h's key (and value) in a qkv row.
        @inline(__always) func keyColumn(_ h: Int) -> Int { (heads + h / group) * headDim }
        @inline(__always) func valueColumn(_ h: Int) -> Int { (heads + kvHeads + h / group) * headDim }
    }

    /// qkv[B,T,3C] (q | k | v, head h at columns h·hs ..< (h+1)·hs of each) → out[B,T,C];
    /// saves probabilities att[B,NH,T,T] (zero where not visible). keyMask[B,T] is 1 for tokens, 0 for padding.
    public static func forward(out: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>,
                               qkv: UnsafePointer<Float>, keyMask: UnsafePointer<Float>,
                               b: Int, t: Int, c: Int, nHead: Int, block: Int = causalBlock) {
        forward(out: out, att: att, qkv: qkv, keyMask: keyMask, segments: .rectangular(b: b, t: t, nHead: nHead), c: c, nHead: nHead,
                block: block)
    }

    /// Rows per block of the causal computation: a block of queries r0 ..< r1 only needs keys 0 ..< r1,
    /// so the products above the diagonal blocks are skipped.
    public static let causalBlock = 64

    /// qkv[N,3C] → out[N,C] per segment (see `Segments`); keyMask[N] is 1 for tokens, 0 for padding.
    public static func forward(out: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>,
                               qkv: UnsafePointer<Float>, keyMask: UnsafePointer<Float>,
                               segments: Segments, c: Int, nHead: Int, block: Int = causalBlock) {
        forward(out: out, att: att, qkv: qkv, keyMask: keyMask, segments: segments, heads: .multiHead(c: c, nHead: nHead), block: block)
    }

    /// qkv[N, heads.qkvWidth] → out[N, heads.outWidth] per segment; keyMask[N] is 1 for tokens, 0 for padding.
    ///
    /// Per (segment, head) and block of `block` query rows r0 ..< r1: S = scale·Q Kᵀ and O = P V over keys
    /// 0 ..< r1 only, as sgemm calls on strided views of qkv, run single-threaded inside our own
    /// (segment, head) parallel loop.
    public static func forward(out: UnsafeMutablePointer<Float>, att: UnsafeMutablePointer<Float>,
                               qkv: UnsafePointer<Float>, keyMask: UnsafePointer<Float>,
                               segments: Segments, heads shape: Heads, block: Int = causalBlock) {
        let hs = shape.headDim, scale = 1 / Float(hs).squareRoot(), w = shape.qkvWidth, ow = shape.outWidth
        forEachHead(segments, nHead: shape.heads) { start, t, s, h in
            let p = segments.attOffsets[s] + h * t * t
            let rows = qkv + start * w
            let q = rows + h * hs, k = rows + shape.keyColumn(h), v = rows + shape.valueColumn(h)
            forEachBlock(t, block) { r0, r1 in
                // S[r0:r1, 0:r1] = scale · Q[r0:r1, hs] · K[0:r1, hs]ᵀ
                BLAS.gemm(transB: true, m: r1 - r0, n: r1, k: hs, alpha: scale, a: q + r0 * w, lda: w, b: k, ldb: w,
                          c: att + p + r0 * t, ldc: t)
            }
            maskedSoftmaxRows(att + p, t: t, keyMask: keyMask + start)
            forEachBlock(t, block) { r0, r1 in
                // O[r0:r1, hs] = P[r0:r1, 0:r1] · V[0:r1, hs]
                BLAS.gemm(m: r1 - r0, n: hs, k: r1, a: att + p + r0 * t, lda: t, b: v, ldb: w,
                          c: out + (start + r0) * ow + h * hs, ldc: ow)
            }
        }
    }

    @inline(__always)
    static func forEachBlock(_ t: Int, _ block: Int, _ body: (_ r0: Int, _ r1: Int) -> Void) {
        var r0 = 0
        while r0 < t {
            let r1 = min(t, r0 + block)
            body(r0, r1)
            r0 = r1
        }
    }

    /// body(first row, length, segment, head) for every (segment, head) pair, in parallel over pairs
    /// with OpenBLAS single-threaded inside: the parallelism is ours, over heads (longest segments first).
    @inline(__always)
    static func forEachHead(_ seg: Segments, nHead: Int, _ body: (_ start: Int, _ t: Int, _ segment: Int, _ h: Int) -> Void) {
        let order = seg.longestFirst
        BLAS.singleThreaded {
            Parallel.forEach(order.count * nHead) { k in
                let s = order[k / nHead], h = k % nHead, t = seg.lengths[s]
                guard t > 0 else { return }
                body(seg.starts[s], t, s, h)
            }
        }
    }

    /// Row i of scores[T,T] becomes softmax over the keys query i sees; hidden entries are exactly 0.
    /// Only entries j ≤ i are read (those above the diagonal blocks were never computed).
    @inline(__always)
    static func maskedSoftmaxRows(_ scores: UnsafeMutablePointer<Float>, t: Int, keyMask: UnsafePointer<Float>) {
        for i in 0..<t {
            let row = scores + i * t
            var m = -Float.infinity
            for j in 0...i {
                if j == i || keyMask[j] != 0 {
                    if row[j] > m { m = row[j] }
                } else {
                    row[j] = -.infinity
                }
            }
            let inv = 1 / FastMath.expShiftedInPlace(row, i + 1, shift: m)
            for j in 0...i { row[j] *= inv }
            if i + 1 < t { (row + i + 1).update(repeating: 0, count: t - i - 1) }
        }
    }

    /// dqkv[B,T,3C] += gradients of q, k, v given dout[B,T,C] and the saved probabilities.
    public static func backward(dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                qkv: UnsafePointer<Float>, att: UnsafePointer<Float>,
                                b: Int, t: Int, c: Int, nHead: Int, block: Int = causalBlock) {
        backward(dqkv: dqkv, dout: dout, qkv: qkv, att: att, segments: .rectangular(b: b, t: t, nHead: nHead), c: c, nHead: nHead,
                 block: block)
    }

    /// dqkv[N,3C] += gradients of q, k, v given dout[N,C] and the saved probabilities, per segment.
    public static func backward(dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                qkv: UnsafePointer<Float>, att: UnsafePointer<Float>,
                                segments: Segments, c: Int, nHead: Int, block: Int = causalBlock) {
        backward(dqkv: dqkv, dout: dout, qkv: qkv, att: att, segments: segments, heads: .multiHead(c: c, nHead: nHead), block: block)
    }

    /// dqkv[N, qkvWidth] += gradients of q, k, v given dout[N, outWidth] and the saved probabilities, per segment.
    /// Per (segment, h), block of query rows r0 ..< r1 against keys 0 ..< r1: dP = dO Vᵀ, dV += Pᵀ dO,
    /// dS = P ⊙ (dP − rowsum(P ⊙ dP)), dQ += scale·dS K, dK += scale·dSᵀ Q. The query heads that share a
    /// key/value head run in one task, one after another, since they add into the same dK and dV.
    public static func backward(dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                qkv: UnsafePointer<Float>, att: UnsafePointer<Float>,
                                segments: Segments, heads shape: Heads, block: Int = causalBlock) {
        let hs = shape.headDim, scale = 1 / Float(hs).squareRoot(), w = shape.qkvWidth, ow = shape.outWidth
        forEachHead(segments, nHead: shape.kvHeads) { start, t, s, g in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: t * t) { buf in
                let ds = buf.baseAddress!
                for h in g * shape.group ..< (g + 1) * shape.group {
                    let rows = qkv + start * w, drows = dqkv + start * w
                    let q = rows + h * hs, k = rows + shape.keyColumn(h), v = rows + shape.valueColumn(h)
                    let dq = drows + h * hs, dk = drows + shape.keyColumn(h), dv = drows + shape.valueColumn(h)
                    let dO = dout + start * ow + h * hs
                    let p = att + segments.attOffsets[s] + h * t * t
                    forEachBlock(t, block) { r0, r1 in
                        let n = r1 - r0, dsb = ds + r0 * t, pb = p + r0 * t, dOb = dO + r0 * ow
                        // dP[r0:r1, 0:r1] = dO[r0:r1, hs] · V[0:r1, hs]ᵀ
                        BLAS.gemm(transB: true, m: n, n: r1, k: hs, a: dOb, lda: ow, b: v, ldb: w, c: dsb, ldc: t)
                        // dV[0:r1, hs] += P[r0:r1, 0:r1]ᵀ · dO[r0:r1, hs]
                        BLAS.gemm(transA: true, m: r1, n: hs, k: n, a: pb, lda: t, b: dOb, ldb: ow, beta: 1, c: dv, ldc: w)
                        for i in r0..<r1 {
                            let pr = p + i * t, dr = ds + i * t
                            let dot = Vec.dot(pr, dr, i + 1)
                            for j in 0...i { dr[j] = pr[j] * (dr[j] - dot) * scale }
                            if i + 1 < r1 { (dr + i + 1).update(repeating: 0, count: r1 - i - 1) }
                        }
                        // dQ[r0:r1, hs] += dS[r0:r1, 0:r1] · K[0:r1, hs] ;  dK[0:r1, hs] += dS[r0:r1, 0:r1]ᵀ · Q[r0:r1, hs]
                        BLAS.gemm(m: n, n: hs, k: r1, a: dsb, lda: t, b: k, ldb: w, beta: 1, c: dq + r0 * w, ldc: w)
                        BLAS.gemm(transA: true, m: r1, n: hs, k: n, a: dsb, lda: t, b: q + r0 * w, ldb: w, beta: 1, c: dk, ldc: w)
                    }
                }
            }
        }
    }

    /// Incremental attention for decoding, multi-head (GPT-2): see the `heads:` form.
    public static func forwardCached(out: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>,
                                     kCacheT: UnsafeMutablePointer<Float>, vCache: UnsafeMutablePointer<Float>,
                                     keyMask: UnsafePointer<Float>, b: Int, tNew: Int, start: Int,
                                     capacity s: Int, c: Int, nHead: Int, cacheRows: UnsafePointer<Int32>? = nil) {
        forwardCached(out: out, qkv: qkv, kCacheT: kCacheT, vCache: vCache, keyMask: keyMask, b: b, tNew: tNew, start: start,
                      capacity: s, heads: .multiHead(c: c, nHead: nHead), cacheRows: cacheRows)
    }

    /// Incremental attention for decoding. qkv[B,Tn,qkvWidth] holds the new tokens, which occupy cache
    /// slots start ..< start+Tn. Their keys are first written to kCacheT [B,KV,S/16,hs,16] (keys in
    /// blocks of 16, transposed within the block, so that one query scores 16 keys per vector with no
    /// horizontal sums, and a new key lands in cache lines the previous step touched) and values to vCache
    /// [B,KV,S,hs]; then each new query attends over slots 0 ... its own under the same visibility
    /// rule, with keyMask[B,S] marking real tokens. `s` must be a multiple of 16. out[B,Tn,outWidth].
    /// One task per (row, key/value head) serves the query heads of its group.
    /// `cacheRows` (B entries) maps row bi of qkv/out to its row of the cache and mask, so that a decode
    /// step can run only the rows still generating; nil is the identity.
    public static func forwardCached(out: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>,
                                     kCacheT: UnsafeMutablePointer<Float>, vCache: UnsafeMutablePointer<Float>,
                                     keyMask: UnsafePointer<Float>, b: Int, tNew: Int, start: Int,
                                     capacity s: Int, heads shape: Heads, cacheRows: UnsafePointer<Int32>? = nil) {
        precondition(s % 16 == 0, "cache capacity must be a multiple of 16")
        let hs = shape.headDim, kvHeads = shape.kvHeads
        let scale = 1 / Float(hs).squareRoot()
        let w = shape.qkvWidth, ow = shape.outWidth
        typealias V = SIMD16<Float>
        Parallel.forEach(b * kvHeads) { bg in
            let bi = bg / kvHeads, g = bg % kvHeads
            let ci = cacheRows.map { Int($0[bi]) } ?? bi
            let kt = kCacheT + (ci * kvHeads + g) * s * hs, vc = vCache + (ci * kvHeads + g) * s * hs
            let mask = keyMask + ci * s
            let kColumn = (shape.heads + g) * hs, vColumn = (shape.heads + kvHeads + g) * hs
            for i in 0..<tNew {
                let src = qkv + (bi * tNew + i) * w
                let slot = start + i
                let dst = kt + (slot / 16) * hs * 16 + slot % 16
                for d in 0..<hs { dst[d * 16] = src[kColumn + d] }
                (vc + (start + i) * hs).update(from: src + vColumn, count: hs)
            }
            for h in g * shape.group ..< (g + 1) * shape.group {
                withUnsafeTemporaryAllocation(of: Float.self, capacity: s) { buf in
                    let row = buf.baseAddress!
                    let rawRow = UnsafeMutableRawPointer(row)
                    for i in 0..<tNew {
                        let q = qkv + (bi * tNew + i) * w + h * hs
                        let me = start + i
                        let width = (me / 16 + 1) * 16
                        // row[j] = scale · q · k_j for 16 keys at a time
                        for j0 in stride(from: 0, to: width, by: 16) {
                            // Four partial sums break the FMA latency chain.
                            var a0 = V(), a1 = V(), a2 = V(), a3 = V()
                            let block = UnsafeRawPointer(kt + j0 * hs)
                            var d = 0
                            while d + 4 <= hs {
                                a0.addProduct(V(repeating: q[d]), block.loadUnaligned(fromByteOffset: d * 64, as: V.self))
                                a1.addProduct(V(repeating: q[d + 1]), block.loadUnaligned(fromByteOffset: (d + 1) * 64, as: V.self))
                                a2.addProduct(V(repeating: q[d + 2]), block.loadUnaligned(fromByteOffset: (d + 2) * 64, as: V.self))
                                a3.addProduct(V(repeating: q[d + 3]), block.loadUnaligned(fromByteOffset: (d + 3) * 64, as: V.self))
                                d += 4
                            }
                            while d < hs {
                                a0.addProduct(V(repeating: q[d]), block.loadUnaligned(fromByteOffset: d * 64, as: V.self))
                                d += 1
                            }
                            rawRow.storeBytes(of: ((a0 + a1) + (a2 + a3)) * scale, toByteOffset: j0 * 4, as: V.self)
                        }
                        var m = -Float.infinity
                        for j in 0..<width {
                            if j == me || (j < me && mask[j] != 0) {
                                if row[j] > m { m = row[j] }
                            } else {
                                row[j] = -.infinity
                            }
                        }
                        let inv = 1 / FastMath.expShiftedInPlace(row, width, shift: m)
                        let o = out + (bi * tNew + i) * ow + h * hs
                        var d0 = 0
                        // 64 columns at a time: four independent accumulators per key.
                        while d0 + 64 <= hs {
                            var a0 = V(), a1 = V(), a2 = V(), a3 = V()
                            for j in 0...me where row[j] != 0 {
                                let pj = V(repeating: row[j])
                                let vr = UnsafeRawPointer(vc + j * hs + d0)
                                a0.addProduct(pj, vr.loadUnaligned(fromByteOffset: 0, as: V.self))
                                a1.addProduct(pj, vr.loadUnaligned(fromByteOffset: 64, as: V.self))
                                a2.addProduct(pj, vr.loadUnaligned(fromByteOffset: 128, as: V.self))
                                a3.addProduct(pj, vr.loadUnaligned(fromByteOffset: 192, as: V.self))
                            }
                            let or = UnsafeMutableRawPointer(o + d0)
                            or.storeBytes(of: a0 * inv, toByteOffset: 0, as: V.self)
                            or.storeBytes(of: a1 * inv, toByteOffset: 64, as: V.self)
                            or.storeBytes(of: a2 * inv, toByteOffset: 128, as: V.self)
                            or.storeBytes(of: a3 * inv, toByteOffset: 192, as: V.self)
                            d0 += 64
                        }
                        while d0 + 16 <= hs {
                            var acc = V()
                            for j in 0...me where row[j] != 0 {
                                acc.addProduct(V(repeating: row[j]), UnsafeRawPointer(vc + j * hs + d0).loadUnaligned(as: V.self))
                            }
                            UnsafeMutableRawPointer(o + d0).storeBytes(of: acc * inv, as: V.self)
                            d0 += 16
                        }
                        while d0 < hs {
                            var acc: Float = 0
                            for j in 0...me { acc += row[j] * vc[j * hs + d0] }
                            o[d0] = acc * inv
                            d0 += 1
                        }
                    }
                }
            }
        }
    }
}
