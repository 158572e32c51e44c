import Foundation

/// PPO's estimators and losses on plain per-token arrays, so that each can be checked against PyTorch
/// (tools/fixtures/make_ppo_fixtures.py). Conventions follow TRL/OpenRLHF: rows are responses, `mask` marks real
/// response tokens, and every mean is over masked tokens of the whole batch.
public enum PPOMath {
    public enum KLEstimator: String, Sendable, CaseIterable {
        /// logπ − logπ_ref
        case k1
        /// ½(logπ − logπ_ref)²
        case k2
        /// (π_ref/π − 1) − log(π_ref/π)
        case k3
    }

    public static func kl(_ logp: Double, _ refLogp: Double, _ estimator: KLEstimator) -> Double {
        let d = logp - refLogp
        switch estimator {
        case .k1: return d
        case .k2: return 0.5 * d * d
        case .k3: return (exp(-d) - 1) + d
        }
    }

    /// Per-token rewards: −β·KL at every response token plus the clipped sequence score on the last one.
    /// `lastIndex[b]` is row b's last real token.
    public static func tokenRewards(logp: [[Double]], refLogp: [[Double]], mask: [[Double]], scores: [Double],
                                    beta: Double, scoreClip: Double?, estimator: KLEstimator = .k1) -> [[Double]] {
        logp.indices.map { b in
            var r = logp[b].indices.map { t in mask[b][t] > 0 ? -beta * kl(logp[b][t], refLogp[b][t], estimator) : 0 }
            if let last = mask[b].lastIndex(where: { $0 > 0 }) {
                let s = scoreClip.map { min(max(scores[b], -$0), $0) } ?? scores[b]
                r[last] += s
            }
            return r
        }
    }

    /// Generalised advantage estimation per row over masked tokens (V beyond the last token is 0):
    /// δ_t = r_t + γ·V_{t+1} − V_t, A_t = δ_t + γλ·A_{t+1}; returns R_t = A_t + V_t.
    public static func gae(rewards: [[Double]], values: [[Double]], mask: [[Double]], gamma: Double = 1, lambda: Double = 0.95)
        -> (advantages: [[Double]], returns: [[Double]]) {
        var adv = rewards.map { $0.map { _ in 0.0 } }, ret = adv
        for b in rewards.indices {
            var next = 0.0, nextValue = 0.0
            for t in stride(from: rewards[b].count - 1, through: 0, by: -1) where mask[b][t] > 0 {
                let delta = rewards[b][t] + gamma * nextValue - values[b][t]
                next = delta + gamma * lambda * next
                adv[b][t] = next
                ret[b][t] = next + values[b][t]
                nextValue = values[b][t]
            }
        }
        return (adv, ret)
    }

    /// Masked mean of all entries.
    public static func maskedMean(_ x: [[Double]], _ mask: [[Double]]) -> Double {
        var s = 0.0, n = 0.0
        for b in x.indices { for t in x[b].indices { s += x[b][t] * mask[b][t]; n += mask[b][t] } }
        return s / max(n, 1)
    }

    /// (x − mean)/√(var + 1e-8) over masked entries, with the unbiased variance (TRL's masked_whiten).
    /// Unmasked entries become 0.
    public static func whiten(_ x: [[Double]], _ mask: [[Double]]) -> [[Double]] {
        let mean = maskedMean(x, mask)
        var ss = 0.0, n = 0.0
        for b in x.indices { for t in x[b].indices where mask[b][t] > 0 { ss += (x[b][t] - mean) * (x[b][t] - mean); n += 1 } }
        let variance = n > 1 ? ss / (n - 1) : 0
        let inv = 1 / (variance + 1e-8).squareRoot()
        return x.indices.map { b in x[b].indices.map { t in mask[b][t] > 0 ? (x[b][t] - mean) * inv : 0 } }
    }

    /// Clipped surrogate: masked mean of max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε)), ρ = exp(logp − oldLogp).
    /// Returns the loss, ∂loss/∂logp and the fraction of tokens where clipping was active.
    public static func policyLoss(logp: [[Double]], oldLogp: [[Double]], advantages: [[Double]], mask: [[Double]], clip eps: Double = 0.2)
        -> (loss: Double, dLogp: [[Double]], clipFraction: Double) {
        let n = max(mask.reduce(0) { $0 + $1.reduce(0, +) }, 1)
        var loss = 0.0, clipped = 0.0
        var d = logp.map { $0.map { _ in 0.0 } }
        for b in logp.indices {
            for t in logp[b].indices where mask[b][t] > 0 {
                let ratio = exp(logp[b][t] - oldLogp[b][t]), a = advantages[b][t]
                let l1 = -a * ratio, l2 = -a * min(max(ratio, 1 - eps), 1 + eps)
                // torch.max picks the first argument on ties; the gradient flows through l1 unless l2 is larger.
                if l2 > l1 {
                    loss += l2 / n
                    clipped += 1
                    // l2's gradient is zero where the clip is active (ratio outside [1−ε, 1+ε]), else it equals l1's.
                    if ratio >= 1 - eps && ratio <= 1 + eps { d[b][t] = -a * ratio / n }
                } else {
                    loss += l1 / n
                    d[b][t] = -a * ratio / n
                }
            }
        }
        return (loss, d, clipped / n)
    }

    /// Clipped value loss: ½·masked mean of max((v − R)², (v_old + clip(v − v_old, ±ε) − R)²).
    public static func valueLoss(values: [[Double]], oldValues: [[Double]], returns: [[Double]], mask: [[Double]], clip eps: Double = 0.2)
        -> (loss: Double, dValues: [[Double]]) {
        let n = max(mask.reduce(0) { $0 + $1.reduce(0, +) }, 1)
        var loss = 0.0
        var d = values.map { $0.map { _ in 0.0 } }
        for b in values.indices {
            for t in values[b].indices where mask[b][t] > 0 {
                let v = values[b][t], old = oldValues[b][t], r = returns[b][t]
                let diff = v - old
                let vc = old + min(max(diff, -eps), eps)
                let l1 = (v - r) * (v - r), l2 = (vc - r) * (vc - r)
                if l2 > l1 {
                    loss += 0.5 * l2 / n
                    if diff > -eps && diff < eps { d[b][t] = (vc - r) / n }
                } else {
                    loss += 0.5 * l1 / n
                    d[b][t] = (v - r) / n
                }
            }
        }
        return (loss, d)
    }

    /// Entropy of a categorical distribution given by logits.
    public static func entropy(logits: [Double]) -> Double {
        let m = logits.max() ?? 0
        let z = logits.reduce(0) { $0 + exp($1 - m) }
        let lse = m + log(z)
        return -logits.reduce(0) { $0 + exp($1 - lse) * ($1 - lse) }
    }
}

/// Ziegler et al.'s adaptive KL controller: β ← β·(1 + clip(KL/target − 1, ±0.2)·n/horizon).
public struct AdaptiveKLController: Codable, Sendable, Equatable {
    public var beta: Double
    public var target: Double
    public var horizon: Double

    public init(beta: Double, target: Double, horizon: Double) {
        self.beta = beta
        self.target = target
        self.horizon = horizon
    }

    public mutating func update(currentKL: Double, steps: Int) {
        let err = min(max(currentKL / target - 1, -0.2), 0.2)
        beta *= 1 + err * Double(steps) / horizon
    }
}
