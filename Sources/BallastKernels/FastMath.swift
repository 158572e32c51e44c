/// Vectorised exp and tanh. libm's scalar expf/tanhf dominated profiles (GELU, softmax); these keep
/// float32 accuracy (a couple of ulp for exp) while running 16 lanes at a time.
public enum FastMath {
    // exp(x) = 2^n · e^r with n = round(x·log2 e), r = x − n·ln 2 (ln 2 split in two for precision),
    // e^r from a degree-6 minimax polynomial on |r| ≤ ln2/2 (Cephes expf coefficients).
    @inline(__always)
    public static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let xc = clamp(x, -87.3, 88.7)
        // Adding 1.5·2^23 rounds to the nearest integer and leaves it in the low mantissa bits, which
        // avoids the stdlib's generic (slow) float→int vector conversion.
        let magic = SIMD16<Float>(repeating: 12_582_912)
        let shifted = xc * 1.442_695_04 + magic
        let n = shifted - magic
        var r = xc - n * 0.693_359_375
        r = r + n * 2.121_944_4e-4
        var p = SIMD16<Float>(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_59e-2
        p = p * r + 1.666_666_55e-1
        p = p * r + 5.000_000_12e-1
        p = p * (r * r) + r + 1
        let ni = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000
        let bits = (ni &+ 127) &<< 23
        // Below the clamp (including −∞ for hidden attention keys) the result is exactly 0.
        return (p * unsafeBitCast(bits, to: SIMD16<Float>.self)).replacing(with: 0, where: x .< -87.3)
    }

    /// tanh(u) = (e^{2u} − 1)/(e^{2u} + 1), with u clamped to ±9 where tanh is 1 to float precision.
    @inline(__always)
    public static func tanh(_ u: SIMD16<Float>) -> SIMD16<Float> {
        let e = exp(2 * clamp(u, -9, 9))
        return (e - 1) / (e + 1)
    }

    /// Lane-wise clamp through compare-and-blend (the stdlib's `clamped` runs lane by lane).
    @inline(__always)
    public static func clamp(_ x: SIMD16<Float>, _ lo: Float, _ hi: Float) -> SIMD16<Float> {
        let l = SIMD16<Float>(repeating: lo), h = SIMD16<Float>(repeating: hi)
        return x.replacing(with: l, where: x .< l).replacing(with: h, where: x .> h)
    }

    @inline(__always)
    public static func exp(_ x: Float) -> Float { exp(SIMD16(repeating: x))[0] }

    @inline(__always)
    public static func tanh(_ x: Float) -> Float { tanh(SIMD16(repeating: x))[0] }

    /// x[i] = exp(x[i] − shift) for i < n; returns Σ x[i].
    @inline(__always)
    public static func expShiftedInPlace(_ x: UnsafeMutablePointer<Float>, _ n: Int, shift: Float) -> Float {
        let raw = UnsafeMutableRawPointer(x)
        let s = SIMD16<Float>(repeating: shift)
        var acc = SIMD16<Float>()
        var i = 0
        while i + 16 <= n {
            let v = exp(raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) - s)
            raw.storeBytes(of: v, toByteOffset: i * 4, as: SIMD16<Float>.self)
            acc += v
            i += 16
        }
        if i < n {
            var tail = SIMD16<Float>(repeating: -.infinity)
            for j in i..<n { tail[j - i] = x[j] }
            let v = exp(tail - s)
            for j in i..<n { x[j] = v[j - i]; acc[j - i] += v[j - i] }
        }
        return acc.sum()
    }
}
