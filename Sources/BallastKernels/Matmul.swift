import CBLAS

/// Row-major matrix products through OpenBLAS.
public enum BLAS {
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// Runs `body` with OpenBLAS limited to one thread, for sgemm calls made from our own parallel
    /// loops (many small products in parallel beat each small product split across cores).
    @inline(__always)
    public static func singleThreaded(_ body: () -> Void) {
        let saved = openblas_get_num_threads()
        if saved == 1 { body(); return }
        openblas_set_num_threads(1)
        body()
        openblas_set_num_threads(saved)
    }

    /// C[m,n] = alpha * op(A)[m,k] · op(B)[k,n] + beta * C. Row-major; `lda`, `ldb`, `ldc` are the
    /// row strides of A, B, C as stored (A is [k,m] when `transA`).
    @inline(__always)
    public static func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                            alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// `count` independent products C_i = alpha op(A_i) op(B_i) + beta C_i with fixed strides between
    /// the operands of consecutive products.
    public static func gemmBatched(transA: Bool = false, transB: Bool = false, count: Int, m: Int, n: Int, k: Int,
                                   alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, strideA: Int,
                                   b: UnsafePointer<Float>, ldb: Int, strideB: Int,
                                   beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, strideC: Int) {
        for i in 0..<count {
            gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                 a: a + i * strideA, lda: lda, b: b + i * strideB, ldb: ldb,
                 beta: beta, c: c + i * strideC, ldc: ldc)
        }
    }
}

/// GPT-2 "Conv1D" linear layer: weight stored [in, out] (Hugging Face layout), y = x W + b.
public enum Linear {
    /// out[N,OC] = inp[N,IC] · w[IC,OC] + bias[OC]
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               n: Int, inC: Int, outC: Int) {
        if let bias {
            Parallel.forEachChunk(n, grain: 64) { rows in
                for r in rows { (out + r * outC).update(from: bias, count: outC) }
            }
        }
        multiply(out: out, inp: inp, weight: weight, n: n, inC: inC, outC: outC, accumulate: bias != nil)
    }

    /// out[N,OC] (+)= inp[N,IC] · w[IC,OC]: sgemm, or the small-M kernel for a few rows (decoding).
    @inline(__always)
    public static func multiply(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                n: Int, inC: Int, outC: Int, accumulate: Bool) {
        if n <= SmallGemm.maxRows {
            SmallGemm.multiply(out: out, x: inp, w: weight, m: n, k: inC, n: outC, accumulate: accumulate)
        } else {
            BLAS.gemm(m: n, n: outC, k: inC, a: inp, lda: inC, b: weight, ldb: outC,
                      beta: accumulate ? 1 : 0, c: out, ldc: outC)
        }
    }

    /// dinp[N,IC] += dout · wᵀ (or = with `overwriteInput`, which saves zeroing it first);
    /// dweight[IC,OC] += inpᵀ · dout;  dbias[OC] += Σ_n dout. `dinp` may be nil when the input needs no gradient.
    public static func backward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>,
                                dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                                inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                n: Int, inC: Int, outC: Int, overwriteInput: Bool = false) {
        if let dinp {
            BLAS.gemm(transB: true, m: n, n: inC, k: outC, a: dout, lda: outC, b: weight, ldb: outC,
                      beta: overwriteInput ? 0 : 1, c: dinp, ldc: inC)
        }
        BLAS.gemm(transA: true, m: inC, n: outC, k: n, a: inp, lda: inC, b: dout, ldb: outC,
                  beta: 1, c: dweight, ldc: outC)
        if let dbias { columnSums(dout, n: n, width: outC, into: dbias) }
    }

    /// into[W] += Σ_rows x[N,W]: columns split across threads, each column summed in row order (the
    /// result does not depend on the thread count).
    public static func columnSums(_ x: UnsafePointer<Float>, n: Int, width: Int, into: UnsafeMutablePointer<Float>) {
        Parallel.forEachChunk(width, grain: max(64, width / max(Parallel.threads, 1))) { cols in
            for r in 0..<n { Vec.axpy(1, x + r * width + cols.lowerBound, into + cols.lowerBound, cols.count) }
        }
    }
}

/// PyTorch `nn.Linear` layer: weight stored [out, in] (Llama's projections, as `transformers` saves them),
/// y = x Wᵀ + b. Keeping the checkpoint's layout lets fused projections be plain views: q, k and v
/// weights stored one after another are one [(q+k+v), in] matrix, as are gate and up.
public enum LinearOutIn {
    /// out[N,OC] (+)= inp[N,IC] · w[OC,IC]ᵀ (+ bias[OC])
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               n: Int, inC: Int, outC: Int, accumulate: Bool = false) {
        if n <= SmallGemm.maxRows {
            // a few rows (decoding): one dot per (row, output), weights streamed once per call
            Parallel.forEachChunk(outC, grain: 64) { cols in
                for o in cols {
                    let wr = weight + o * inC, b = bias?[o] ?? 0
                    for r in 0..<n {
                        let y = Vec.dot(inp + r * inC, wr, inC) + b
                        out[r * outC + o] = accumulate ? out[r * outC + o] + y : y
                    }
                }
            }
            return
        }
        if let bias {
            Parallel.forEachChunk(n, grain: 64) { rows in
                for r in rows {
                    if accumulate { Vec.axpy(1, bias, out + r * outC, outC) } else { (out + r * outC).update(from: bias, count: outC) }
                }
            }
        }
        BLAS.gemm(transB: true, m: n, n: outC, k: inC, a: inp, lda: inC, b: weight, ldb: inC,
                  beta: (accumulate || bias != nil) ? 1 : 0, c: out, ldc: outC)
    }

    /// dinp[N,IC] += dout · w (or = with `overwriteInput`); dweight[OC,IC] += doutᵀ · inp;
    /// dbias[OC] += Σ_n dout.
    public static func backward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>,
                                dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                                inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                n: Int, inC: Int, outC: Int, overwriteInput: Bool = false) {
        if let dinp {
            BLAS.gemm(m: n, n: inC, k: outC, a: dout, lda: outC, b: weight, ldb: inC,
                      beta: overwriteInput ? 0 : 1, c: dinp, ldc: inC)
        }
        BLAS.gemm(transA: true, m: outC, n: inC, k: n, a: dout, lda: outC, b: inp, ldb: inC,
                  beta: 1, c: dweight, ldc: inC)
        if let dbias { Linear.columnSums(dout, n: n, width: outC, into: dbias) }
    }
}
