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
        update(params: params, grads: grads, lr: lr, gradScale: 1)
    }

    /// Gradient clipping (torch.nn.utils.clip_grad_norm_) and the update in one pass over the buffers:
    /// the global norm first, then each gradient scaled by the clipping coefficient as it is read
    /// (the gradient buffer itself is left unscaled). Returns the norm before clipping; a non-finite
    /// norm skips the update (the caller counts it). Same numbers as `clip` then `update`.
    ///
    /// `clippedApart` ranges (disjoint) are clipped each by its own norm and the rest by the norm of the
    /// rest, as separate clip_grad_norm_ calls per parameter group would: a probe head whose gradient
    /// sends nothing into the trunk should not shrink the trunk's step either. The returned norm is still
    /// that of the whole buffer.
    @discardableResult
    public func clippedUpdate(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, lr: Float, maxGradNorm: Float,
                              clippedApart: [Range<Int>] = []) -> Float {
        let norm = GradientClipping.globalNorm(grads, count: count)
        guard norm.isFinite else { return norm }
        var scales: [(range: Range<Int>, scale: Float)] = []
        var restRanges: [Range<Int>] = [], at = 0
        for r in clippedApart.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            scales.append((r, GradientClipping.coefficient(norm: GradientClipping.globalNorm(grads + r.lowerBound, count: r.count),
                                                           maxNorm: maxGradNorm)))
            if r.lowerBound > at { restRanges.append(at..<r.lowerBound) }
            at = max(at, r.upperBound)
        }
        if at < count { restRanges.append(at..<count) }
        // the rest's norm summed as globalNorm sums it: with the apart ranges at the end of the buffer, it is
        // bit for bit the norm of a model without them
        let rest = clippedApart.isEmpty ? norm : GradientClipping.norm(grads, ranges: restRanges)
        update(params: params, grads: grads, lr: lr, gradScale: GradientClipping.coefficient(norm: rest, maxNorm: maxGradNorm), apart: scales)
        return norm
    }

    /// Decay, moments and step for every parameter in one parallel pass; g = grads[i]·gradScale, or the
    /// scale of the `apart` range (sorted, disjoint) that holds i.
    func update(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, lr: Float, gradScale: Float,
                apart: [(range: Range<Int>, scale: Float)] = []) {
        step += 1
        let h = hyper
        let bc1 = 1 - Float(pow(Double(h.beta1), Double(step)))
        let bc2 = 1 - Float(pow(Double(h.beta2), Double(step)))
        let stepSize = lr / bc1
        let bc2Sqrt = bc2.squareRoot()
        let decay = 1 - lr * h.weightDecay
        let m = self.m, v = self.v
        // the decay spans, cut where an `apart` range begins or ends, each with its gradient scale
        var spans: [(range: Range<Int>, decays: Bool, scale: Float)] = []
        for span in decaySpans {
            var at = span.range.lowerBound
            for a in apart where a.range.overlaps(span.range) {
                let inside = a.range.clamped(to: span.range)
                if inside.lowerBound > at { spans.append((at..<inside.lowerBound, span.decays, gradScale)) }
                spans.append((inside, span.decays, a.scale))
                at = inside.upperBound
            }
            if at < span.range.upperBound { spans.append((at..<span.range.upperBound, span.decays, gradScale)) }
        }
        Parallel.forEachChunk(count, grain: 1 << 15) { range in
            for span in spans where span.range.overlaps(range) {  // the spans in this chunk
                let d = span.decays && h.weightDecay != 0 ? decay : 1
                let scale = span.scale
                for i in span.range.clamped(to: range) {
                    let g = grads[i] * scale
                    let p = params[i] * d
                    let mi = h.beta1 * m[i] + (1 - h.beta1) * g
                    let vi = h.beta2 * v[i] + (1 - h.beta2) * g * g
                    m[i] = mi
                    v[i] = vi
                    let denom = vi.squareRoot() / bc2Sqrt + h.eps
                    params[i] = p - stepSize * (mi / denom)
                }
            }
        }
    }

    /// 0..<count cut into spans that do or do not receive weight decay, in order.
    private lazy var decaySpans: [(range: Range<Int>, decays: Bool)] = {
        var spans: [(range: Range<Int>, decays: Bool)] = [], at = 0
        for r in decayRanges.sorted(by: { $0.lowerBound < $1.lowerBound }) where !r.isEmpty {
            if r.lowerBound > at { spans.append((at..<r.lowerBound, false)) }
            spans.append((max(r.lowerBound, at)..<r.upperBound, true))
            at = max(at, r.upperBound)
        }
        if at < count { spans.append((at..<count, false)) }
        return spans
    }()
}

public enum GradientClipping {
    /// L2 norm over the whole flat gradient: per 4096-float block a float dot product, the blocks summed
    /// in order in double precision (blocks in parallel; the result does not depend on the thread count).
    public static func globalNorm(_ grads: UnsafePointer<Float>, count: Int) -> Float {
        Float(sumOfSquares(grads, count: count).squareRoot())
    }

    /// The L2 norm over several ranges of the buffer, each summed as `globalNorm` sums a buffer.
    public static func norm(_ grads: UnsafePointer<Float>, ranges: [Range<Int>]) -> Float {
        Float(ranges.reduce(0) { $0 + sumOfSquares(grads + $1.lowerBound, count: $1.count) }.squareRoot())
    }

    static func sumOfSquares(_ grads: UnsafePointer<Float>, count: Int) -> Double {
        let blocks = (count + 4095) / 4096
        var partial = [Double](repeating: 0, count: blocks)
        partial.withUnsafeMutableBufferPointer { out in
            let o = out.baseAddress!
            Parallel.forEachChunk(blocks, grain: 64) { range in
                for b in range { o[b] = Double(Vec.dot(grads + b * 4096, grads + b * 4096, min(4096, count - b * 4096))) }
            }
        }
        return partial.reduce(0, +)
    }

    /// torch.nn.utils.clip_grad_norm_'s coefficient: maxNorm / (norm + 1e-6), clamped to 1.
    public static func coefficient(norm: Float, maxNorm: Float) -> Float { min(maxNorm / (norm + 1e-6), 1) }

    /// Scales gradients so their global norm is at most `maxNorm`. Returns the norm before clipping.
    @discardableResult
    public static func clip(_ grads: UnsafeMutablePointer<Float>, count: Int, maxNorm: Float) -> Float {
        let norm = globalNorm(grads, count: count)
        let coef = coefficient(norm: norm, maxNorm: maxNorm)
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
