import BallastKernels
import Foundation

/// AdamW with PyTorch's semantics (torch.optim.AdamW, foreach=False): decoupled weight decay
/// p ← p − lr·λ·p, then bias-corrected Adam with ε added after the corrected √v.
/// Works on one flat parameter buffer; `decayMask` ranges say where weight decay applies.
public final class AdamW: @unchecked Sendable {
    public struct Hyper: Sendable, Equatable, Codable {
        public var beta1: Float = 0.9
        public var beta2: Float = 0.999
        public var eps: Float = 1e-8
        public var weightDecay: Float = 0.01
        public init(beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0.01) {
            self.beta1 = beta1
            self.beta2 = beta2
            self.eps = eps
            self.weightDecay = weightDecay
        }
    }

    public let count: Int
    public var hyper: Hyper
    /// First and second moments, same layout as the parameters.
    public let m: UnsafeMutablePointer<Float>
    public let v: UnsafeMutablePointer<Float>
    /// Steps taken so far (PyTorch's `state["step"]`).
    public var step: Int = 0
    /// Ranges of the flat buffer that receive weight decay (matrices).
    public let decayRanges: [Range<Int>]

    public init(count: Int, decayRanges: [Range<Int>], hyper: Hyper = Hyper()) {
        self.count = count
        self.hyper = hyper
        self.decayRanges = decayRanges
        m = .allocate(capacity: count)
        v = .allocate(capacity: count)
        m.initialize(repeating: 0, count: count)
        v.initialize(repeating: 0, count: count)
    }

    deinit {
        m.deallocate()
        v.deallocate()
    }

    /// One update of `params` from `grads` at learning rate `lr`.
    public func update(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, lr: Float) {
        step += 1
        let h = hyper
        let bc1 = 1 - Float(pow(Double(h.beta1), Double(step)))
        let bc2 = 1 - Float(pow(Double(h.beta2), Double(step)))
        let stepSize = lr / bc1
        let bc2Sqrt = bc2.squareRoot()
        let decay = 1 - lr * h.weightDecay
        for r in decayRanges where h.weightDecay != 0 {
            for i in r { params[i] *= decay }
        }
        let m = self.m, v = self.v
        Parallel.forEachChunk(count, grain: 1 << 15) { range in
            for i in range {
                let g = grads[i]
                let mi = h.beta1 * m[i] + (1 - h.beta1) * g
                let vi = h.beta2 * v[i] + (1 - h.beta2) * g * g
                m[i] = mi
                v[i] = vi
                let denom = vi.squareRoot() / bc2Sqrt + h.eps
                params[i] -= stepSize * (mi / denom)
            }
        }
    }
}

public enum GradientClipping {
    /// L2 norm over the whole flat gradient.
    public static func globalNorm(_ grads: UnsafePointer<Float>, count: Int) -> Float {
        var acc: Double = 0
        var i = 0
        while i < count {
            let n = min(4096, count - i)
            acc += Double(Vec.dot(grads + i, grads + i, n))
            i += n
        }
        return Float(acc.squareRoot())
    }

    /// Scales gradients so their global norm is at most `maxNorm` (torch.nn.utils.clip_grad_norm_:
    /// coefficient maxNorm / (norm + 1e-6), clamped to 1). Returns the norm before clipping.
    @discardableResult
    public static func clip(_ grads: UnsafeMutablePointer<Float>, count: Int, maxNorm: Float) -> Float {
        let norm = globalNorm(grads, count: count)
        let coef = min(maxNorm / (norm + 1e-6), 1)
        if coef < 1 { for i in 0..<count { grads[i] *= coef } }
        return norm
    }
}

/// Linear warmup then cosine decay to `minLR`.
/// lr(s) = peak·(s+1)/warmup for s < warmup; afterwards
/// minLR + ½(peak − minLR)(1 + cos(π·progress)), progress = (s − warmup)/(total − warmup) clamped to [0,1].
public struct CosineSchedule: Sendable, Equatable {
    public var peak: Float
    public var minLR: Float
    public var warmupSteps: Int
    public var totalSteps: Int

    public init(peak: Float, minLR: Float = 0, warmupSteps: Int = 0, totalSteps: Int) {
        self.peak = peak
        self.minLR = minLR
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
    }

    public func lr(at step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step + 1) / Float(warmupSteps) }
        let span = max(totalSteps - warmupSteps, 1)
        let progress = min(max(Float(step - warmupSteps) / Float(span), 0), 1)
        return minLR + 0.5 * (peak - minLR) * (1 + cosf(Float.pi * progress))
    }
}
