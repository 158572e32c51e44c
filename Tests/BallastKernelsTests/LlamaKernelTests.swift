import BallastFormats
import BallastKernels
import Foundation
import Testing

/// RMSNorm, rotary embeddings and SwiGLU against PyTorch (tools/fixtures/make_llama_kernel_fixtures.py).
@Suite("Llama kernels vs PyTorch")
struct LlamaKernelTests {
    let f: SafeTensorsFile

    init() throws {
        let url = try #require(Bundle.module.url(forResource: "llama_kernels", withExtension: "safetensors", subdirectory: "Fixtures"))
        f = try SafeTensorsFile(path: url.path)
    }

    func close(_ a: [Float], _ b: [Float], _ tol: Float, _ what: String) {
        #expect(a.count == b.count, "\(what): \(a.count) vs \(b.count) values")
        let worst = zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
        #expect(worst <= tol, "\(what): worst relative error \(worst)")
    }

    @Test("RMSNorm forward and backward")
    func rmsnorm() throws {
        let x = try f.floats("rmsnorm_x"), w = try f.floats("rmsnorm_w"), dy = try f.floats("rmsnorm_dout")
        let n = 6, c = 40
        var out = [Float](repeating: 0, count: n * c), rstd = [Float](repeating: 0, count: n)
        RMSNorm.forward(out: &out, rstd: &rstd, inp: x, weight: w, n: n, c: c, eps: 1e-6)
        close(out, try f.floats("rmsnorm_out"), 1e-6, "out")
        var dx = [Float](repeating: 0, count: n * c), dw = [Float](repeating: 0, count: c)
        RMSNorm.backward(dinp: &dx, dweight: &dw, dout: dy, inp: x, weight: w, rstd: rstd, n: n, c: c)
        close(dx, try f.floats("rmsnorm_dx"), 1e-5, "dx")
        close(dw, try f.floats("rmsnorm_dw"), 1e-5, "dw")
    }

    @Test("rotary embeddings: forward, and the inverse rotation is the backward pass")
    func rope() throws {
        let positions = try f.ints("rope_positions").map(Int32.init)
        var q = try f.floats("rope_q")
        let rope = RotaryEmbedding(headDim: 16, maxPositions: 128, theta: 10_000)
        rope.apply(&q, positions: positions, n: 5, heads: 3, rowStride: 48)
        close(q, try f.floats("rope_out"), 1e-5, "rotated")
        var d = try f.floats("rope_dout")
        rope.apply(&d, positions: positions, n: 5, heads: 3, rowStride: 48, inverse: true)
        close(d, try f.floats("rope_dq"), 1e-5, "dq")
    }

    @Test("SwiGLU forward and backward")
    func swiglu() throws {
        let g = try f.floats("swiglu_gate"), u = try f.floats("swiglu_up"), dy = try f.floats("swiglu_dout")
        var out = [Float](repeating: 0, count: g.count), dg = out, du = out
        SwiGLU.forward(out: &out, gate: g, up: u, n: g.count)
        close(out, try f.floats("swiglu_out"), 1e-6, "out")
        SwiGLU.backward(dgate: &dg, dup: &du, dout: dy, gate: g, up: u, n: g.count)
        close(dg, try f.floats("swiglu_dgate"), 1e-5, "dgate")
        close(du, try f.floats("swiglu_dup"), 1e-6, "dup")
    }
}
