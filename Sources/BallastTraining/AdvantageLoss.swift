import Foundation

/// The Advantage Model objective (DESIGN §1 reconstruction; the report's exact Eqs. 5–9 are not
/// available). Per pair: reward r at each response's EOS, expected reward e at the prompt's last token,
/// advantage a = r − e. Terms (each with its own coefficient; 0 switches it off):
///
/// | term | definition (batch means) |
/// |---|---|
/// | ranking | −log σ(a_c − a_r) (= −log σ(r_c − r_r): e cancels within a pair) |
/// | expected | (e − stopgrad((r_c + r_r)/2))² |
/// | bound | softplus(|a| − m) over both responses, m = 2.5 |
/// | task mean | mean over the batch's tasks of μ_t², μ_t = β·μ_t(old) + (1 − β)·mean of a over task t in the batch |
/// | task spread | mean over the batch's tasks of (√v_t − σ*)², v_t = β·v_t(old) + (1 − β)·variance of a over task t in the batch |
///
/// Old running statistics are constants (no gradient); after the step they become μ_t and v_t.
public struct AdvantageLoss: Sendable, Equatable {
    public var ranking = 1.0
    public var expected = 1.0
    public var bound = 0.1
    public var margin = 2.5
    public var taskMean = 0.1
    public var taskSpread = 0.1
    public var targetStd = 1.0
    /// β of the running per-task statistics.
    public var momentum = 0.9
    /// When set, the bound and task-mean terms (which a per-prompt baseline can satisfy) move only e:
    /// their gradients with respect to r are dropped, so r is shaped by the ranking and spread terms alone.
    public var baselineOnly = false
    /// When set, the expected-reward head is a probe of the trunk's features: its terms train the head's
    /// weights but send no gradient into the shared trunk, which the ranking (and r's side terms) alone shape.
    public var detachExpected = false

    public init() {}

    /// Running mean and variance of the advantage per task.
    public struct TaskStats: Codable, Sendable, Equatable {
        public var mean: Double
        public var variance: Double
        public init(mean: Double, variance: Double) {
            self.mean = mean
            self.variance = variance
        }
    }

    public struct Output {
        public var total: Double
        public var terms: [String: Double]
        public var dChosen: [Double]
        public var dRejected: [Double]
        public var dExpected: [Double]
        /// Running statistics after this batch.
        public var stats: [String: TaskStats]
    }

    /// Loss and gradients for B pairs: r of chosen and rejected responses, e of their prompt, task names.
    /// A task seen for the first time starts from mean 0 and variance targetStd².
    public func compute(rChosen rc: [Double], rRejected rr: [Double], expected e: [Double], tasks: [String],
                        stats old: [String: TaskStats]) -> Output {
        let b = rc.count
        let nb = Double(b)
        var dc = [Double](repeating: 0, count: b), dr = dc, de = dc
        var terms: [String: Double] = [:]
        @inline(__always) func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }
        @inline(__always) func softplus(_ x: Double) -> Double { x > 20 ? x : log1p(exp(x)) }

        // ranking
        var lRank = 0.0
        for i in 0..<b {
            let delta = (rc[i] - e[i]) - (rr[i] - e[i])
            lRank += softplus(-delta) / nb
            let g = -sigmoid(-delta) / nb * ranking
            dc[i] += g
            dr[i] -= g
        }
        terms["ranking"] = lRank

        // expected reward
        var lExp = 0.0
        for i in 0..<b {
            let target = (rc[i] + rr[i]) / 2
            lExp += (e[i] - target) * (e[i] - target) / nb
            de[i] += 2 * (e[i] - target) / nb * expected
        }
        terms["expected"] = lExp

        // bound on |a| over all 2B responses
        var lBound = 0.0
        for i in 0..<b {
            for (a, isChosen) in [(rc[i] - e[i], true), (rr[i] - e[i], false)] {
                lBound += softplus(abs(a) - margin) / (2 * nb)
                let g = sigmoid(abs(a) - margin) * (a >= 0 ? 1 : -1) / (2 * nb) * bound
                if !baselineOnly { if isChosen { dc[i] += g } else { dr[i] += g } }
                de[i] -= g
            }
        }
        terms["bound"] = lBound

        // per-task running mean and spread of a
        var byTask: [String: [Int]] = [:]
        for i in 0..<b { byTask[tasks[i], default: []].append(i) }
        let nt = Double(byTask.count)
        var lMean = 0.0, lSpread = 0.0
        var newStats = old
        for (task, idx) in byTask {
            let prev = old[task] ?? TaskStats(mean: 0, variance: targetStd * targetStd)
            // the task's advantages: chosen then rejected of each pair
            let adv = idx.flatMap { [rc[$0] - e[$0], rr[$0] - e[$0]] }
            let n = Double(adv.count)
            let bm = adv.reduce(0, +) / n
            let bv = adv.reduce(0) { $0 + ($1 - bm) * ($1 - bm) } / n
            let mu = momentum * prev.mean + (1 - momentum) * bm
            let v = momentum * prev.variance + (1 - momentum) * bv
            let sd = v.squareRoot()
            lMean += mu * mu / nt
            lSpread += (sd - targetStd) * (sd - targetStd) / nt
            // d/da_k of the task terms
            let dMu = 2 * mu / nt * (1 - momentum) / n * taskMean
            let dV = sd > 0 ? (sd - targetStd) / sd / nt * (1 - momentum) * 2 / n * taskSpread : 0
            for i in idx {
                for (a, isChosen) in [(rc[i] - e[i], true), (rr[i] - e[i], false)] {
                    let g = dMu + dV * (a - bm)
                    let toR = baselineOnly ? dV * (a - bm) : g
                    if isChosen { dc[i] += toR } else { dr[i] += toR }
                    de[i] -= g
                }
            }
            newStats[task] = TaskStats(mean: mu, variance: v)
        }
        terms["task_mean"] = lMean
        terms["task_spread"] = lSpread
        let total = ranking * lRank + expected * lExp + bound * lBound + taskMean * lMean + taskSpread * lSpread
        return Output(total: total, terms: terms, dChosen: dc, dRejected: dr, dExpected: de, stats: newStats)
    }
}
