import BallastKernels
import Testing

@Suite("sgemm wrapper")
struct MatmulTests {
    /// Naive row-major reference for op(A)·op(B).
    func reference(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, ta: Bool, tb: Bool) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var s: Float = 0
            for p in 0..<k { s += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]) }
            c[i * n + j] = s
        } }
        return c
    }

    @Test("all four transpose combinations, with alpha and beta", arguments: [(false, false), (true, false), (false, true), (true, true)])
    func transposes(ta: Bool, tb: Bool) {
        let m = 5, n = 3, k = 4
        let a = randoms(m * k, seed: 1), b = randoms(k * n, seed: 2), c0 = randoms(m * n, seed: 3)
        var c = c0
        BLAS.gemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 2, a: a, lda: ta ? m : k, b: b, ldb: tb ? k : n,
                  beta: 0.5, c: &c, ldc: n)
        let ref = reference(a, b, m: m, n: n, k: k, ta: ta, tb: tb)
        for i in 0..<(m * n) { #expect(abs(c[i] - (2 * ref[i] + 0.5 * c0[i])) < 1e-5) }
    }

    @Test func batched() {
        let count = 3, m = 2, n = 4, k = 3
        let a = randoms(count * m * k, seed: 4), b = randoms(count * k * n, seed: 5)
        var c = [Float](repeating: 0, count: count * m * n)
        BLAS.gemmBatched(count: count, m: m, n: n, k: k, a: a, lda: k, strideA: m * k, b: b, ldb: n, strideB: k * n,
                         c: &c, ldc: n, strideC: m * n)
        for i in 0..<count {
            let ref = reference(Array(a[(i * m * k)..<((i + 1) * m * k)]), Array(b[(i * k * n)..<((i + 1) * k * n)]),
                                m: m, n: n, k: k, ta: false, tb: false)
            for j in 0..<(m * n) { #expect(abs(c[i * m * n + j] - ref[j]) < 1e-5) }
        }
    }
}

@Suite("small-M matmul kernel")
struct SmallGemmTests {
    @Test("matches sgemm for ragged shapes, overwrite and accumulate", arguments: [(1, 3, 5), (4, 16, 64), (7, 33, 150), (32, 256, 768), (5, 8, 96)])
    func matchesSgemm(m: Int, k: Int, n: Int) {
        let x = randoms(m * k, seed: 21), w = randoms(k * n, seed: 22), c0 = randoms(m * n, seed: 23)
        for accumulate in [false, true] {
            var ref = c0, out = c0
            BLAS.gemm(m: m, n: n, k: k, a: x, lda: k, b: w, ldb: n, beta: accumulate ? 1 : 0, c: &ref, ldc: n)
            SmallGemm.multiply(out: &out, x: x, w: w, m: m, k: k, n: n, accumulate: accumulate)
            for i in 0..<(m * n) { #expect(abs(out[i] - ref[i]) < 1e-4 * max(1, abs(ref[i])), "[\(m),\(k),\(n)] index \(i)") }
        }
    }
}
