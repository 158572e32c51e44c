import Foundation

/// Losses and estimators on reward-model scores, on plain arrays so that they can be checked against
/// PyTorch fixtures (tools/fixtures/make_loss_fixtures.py) independently of the network.
public enum PreferenceLosses {
    @inline(__always) static func softplus(_ x: Double) -> Double { x > 20 ? x : log1p(exp(x)) }
    @inline(__always) static func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }

    /// Bradley–Terry ranking loss: mean_b −log σ(chosen_b − rejected_b), with its gradients.
    public static func ranking(chosen: [Double], rejected: [Double]) -> (loss: Double, dChosen: [Double], dRejected: [Double]) {
        let n = Double(chosen.count)
        var loss = 0.0
        var dc = [Double](repeating: 0, count: chosen.count), dr = dc
        for i in chosen.indices {
            let delta = chosen[i] - rejected[i]
            loss += softplus(-delta) / n
            let g = -sigmoid(-delta) / n
            dc[i] = g
            dr[i] = -g
        }
        return (loss, dc, dr)
    }

    /// Expected calibration error of pairwise preferences, 10 equal-width bins. Each pair enters twice,
    /// as (p, 1) and (1 − p, 0) with p = σ(chosen − rejected), so that bins compare predicted
    /// probabilities with observed win rates on both sides of 0.5. Returns ECE in [0, 1].
    public static func expectedCalibrationError(chosen: [Double], rejected: [Double], bins: Int = 10) -> Double {
        var count = [Double](repeating: 0, count: bins), conf = count, hits = count
        func add(_ p: Double, _ y: Double) {
            let b = min(bins - 1, Int(p * Double(bins)))
            count[b] += 1
            conf[b] += p
            hits[b] += y
        }
        for i in chosen.indices {
            let p = sigmoid(chosen[i] - rejected[i])
            add(p, 1)
            add(1 - p, 0)
        }
        let total = count.reduce(0, +)
        guard total > 0 else { return 0 }
        var ece = 0.0
        for b in 0..<bins where count[b] > 0 {
            ece += count[b] / total * abs(hits[b] / count[b] - conf[b] / count[b])
        }
        return ece
    }

    /// Fraction of pairs with chosen scored above rejected (ties count half).
    public static func accuracy(chosen: [Double], rejected: [Double]) -> Double {
        guard !chosen.isEmpty else { return 0 }
        let s = zip(chosen, rejected).reduce(0.0) { $0 + ($1.0 > $1.1 ? 1 : $1.0 == $1.1 ? 0.5 : 0) }
        return s / Double(chosen.count)
    }
}
