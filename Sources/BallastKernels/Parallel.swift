import Foundation

/// Splits elementwise work over the process's compute threads. OpenBLAS keeps its own pool; our own
/// kernels use Dispatch so that both cores work on layer norms, GELU and attention.
public enum Parallel {
    /// Threads our own kernels use. Set once at start-up (from `--threads` / BALLAST_THREADS).
    nonisolated(unsafe) public static var threads: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Calls `body` on disjoint sub-ranges of `0..<count`, in parallel when each chunk has at least
    /// `grain` items. The chunks are contiguous so results do not depend on the thread count.
    @inline(__always)
    public static func forEachChunk(_ count: Int, grain: Int, _ body: (Range<Int>) -> Void) {
        let workers = min(threads, max(1, count / max(grain, 1)))
        if workers <= 1 {
            body(0..<count)
            return
        }
        let per = (count + workers - 1) / workers
        forEach(workers) { w in
            let lo = w * per
            let hi = min(count, lo + per)
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Runs `body(0..<iterations)` across threads. Kernels pass raw pointers to disjoint slices, which
    /// Swift cannot prove safe; the box states that the caller guarantees it.
    @inline(__always)
    public static func forEach(_ iterations: Int, _ body: (Int) -> Void) {
        if iterations == 1 || threads == 1 {
            for i in 0..<iterations { body(i) }
            return
        }
        withoutActuallyEscaping(body) { escapable in
            let box = UncheckedBox(escapable)
            DispatchQueue.concurrentPerform(iterations: iterations) { i in box.value(i) }
        }
    }
}

private struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ v: T) { value = v }
}

/// SIMD helpers on raw float pointers. Reductions keep 16-wide partial sums: Swift does not reassociate
/// float adds, so a scalar loop would not vectorise.
public enum Vec {
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
        var i = 0
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        while i + 32 <= n {
            acc0.addProduct(ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self),
                            rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self))
            acc1.addProduct(ra.loadUnaligned(fromByteOffset: (i + 16) * 4, as: SIMD16<Float>.self),
                            rb.loadUnaligned(fromByteOffset: (i + 16) * 4, as: SIMD16<Float>.self))
            i += 32
        }
        if i + 16 <= n {
            acc0.addProduct(ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self),
                            rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self))
            i += 16
        }
        var s = (acc0 + acc1).sum()
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }

    @inline(__always)
    public static func sum(_ a: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD16<Float>()
        var i = 0
        let ra = UnsafeRawPointer(a)
        while i + 16 <= n {
            acc += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
        var s = acc.sum()
        while i < n { s += a[i]; i += 1 }
        return s
    }

    /// out = a + b
    @inline(__always)
    public static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, _ n: Int) {
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b), ro = UnsafeMutableRawPointer(out)
        var i = 0
        while i + 16 <= n {
            ro.storeBytes(of: ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
                          + rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self), toByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
        while i < n { out[i] = a[i] + b[i]; i += 1 }
    }

    /// Σ (a[i] − m)², with 16-wide partial sums.
    @inline(__always)
    public static func squaredDeviation(_ a: UnsafePointer<Float>, mean m: Float, _ n: Int) -> Float {
        var acc = SIMD16<Float>()
        let ra = UnsafeRawPointer(a), mv = SIMD16<Float>(repeating: m)
        var i = 0
        while i + 16 <= n {
            let d = ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) - mv
            acc.addProduct(d, d)
            i += 16
        }
        var s = acc.sum()
        while i < n { let d = a[i] - m; s += d * d; i += 1 }
        return s
    }

    /// y += alpha * x
    @inline(__always)
    public static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        let rx = UnsafeRawPointer(x), ry = UnsafeMutableRawPointer(y)
        let va = SIMD16<Float>(repeating: alpha)
        var i = 0
        while i + 16 <= n {
            var vy = ry.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            vy.addProduct(va, rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self))
            ry.storeBytes(of: vy, toByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
        while i < n { y[i] += alpha * x[i]; i += 1 }
    }

    /// y = alpha * x
    @inline(__always)
    public static func scale(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n { y[i] = alpha * x[i] }
    }

    @inline(__always)
    public static func max(_ a: UnsafePointer<Float>, _ n: Int) -> Float {
        var m = -Float.infinity
        for i in 0..<n where a[i] > m { m = a[i] }
        return m
    }
}
