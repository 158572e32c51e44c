import BallastModel
import Foundation

/// The Advantage Model objective (DESIGN §1 reconstruction; the report's exact Eqs. 5–9 are not
/// available). Per pair: reward r at each response's EOS, expected reward e at the prompt's last token,
/// advantage a = r − e (the unscaled form; the scaled form below divides by exp(z)). Terms (each with its
/// own coefficient; 0 switches it off):
///
/// | term | definition (batch means) |
/// |---|---|
/// | ranking | −log σ(r_c − r_r) (= −log σ(a_c − a_r): e cancels within a pair) |
/// | expected | (e − stopgrad((r_c + r_r)/2))² |
/// | bound | softplus(|a| − m) over both responses, m = 2.5 |
/// | task mean | mean over the batch's tasks of μ_t², μ_t = β·μ_t(old) + (1 − β)·mean of a over task t in the batch |
/// | task spread | mean over the batch's tasks of (√v_t − σ*)², v_t = β·v_t(old) + (1 − β)·variance of a over task t in the batch |
/// | scale (scaled only) | z + a²/(2σ*²) over both responses: the Gaussian log-likelihood of r under N(e, (σ*·exp z)²) |
///
/// Old running statistics are constants (no gradient); after the step they become μ_t and v_t.
///
/// The scaled form (`scaled`, the recipe) adds a log-scale z read at the prompt's last token and uses
/// a = (r − e) / exp(z). Then r takes only the ranking gradient: e and z, which depend on the prompt
/// alone, take every regulating term. Within one prompt a ranks as r does, and e and z carry the per-task
/// offsets and scales the regulating terms ask for. With `detachExpected` as well (e and z probes of the
/// trunk, their gradients clipped apart from it by `RewardTrainer`), the trunk and r train bit for bit as
/// a reward model's of the same seed (tools/paper/README.md, the fourth round of pilots).
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
    /// a = (r − e) / exp(z) with a log-scale head z, and r shaped by the ranking term alone.
    public var scaled = true
    /// Coefficient of the scale term (scaled form only).
    public var scale = 1.0
    /// Unscaled form only: the bound and task-mean terms (which a per-prompt baseline can satisfy) move only
    /// e; their gradients with respect to r are dropped, so r is shaped by the ranking and spread terms alone.
    public var baselineOnly = false
    /// When set, the prompt's heads (e, and z in the scaled form) are probes of the trunk's features: their
    /// terms train the heads' weights but send no gradient into the shared trunk, which r's terms alone shape.
    public var detachExpected = true

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
        /// Gradients of z (scaled form; empty otherwise).
        public var dLogScale: [Double]
        /// Running statistics after this batch.
        public var stats: [String: TaskStats]
    }

    /// Loss and gradients for B pairs: r of chosen and rejected responses, e (and in the scaled form z) of
    /// their prompt, task names. A task seen for the first time starts from mean 0 and variance targetStd².
    public func compute(rChosen rc: [Double], rRejected rr: [Double], expected e: [Double], logScale z: [Double]? = nil,
                        tasks: [String], stats old: [String: TaskStats]) -> Output {
        precondition(scaled == (z != nil), "the scaled form needs z, the unscaled form none")
        let b = rc.count
        let nb = Double(b)
        var dc = [Double](repeating: 0, count: b), dr = dc, de = dc, dz = z == nil ? [] : dc
        var terms: [String: Double] = [:]
        @inline(__always) func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }
        @inline(__always) func softplus(_ x: Double) -> Double { x > 20 ? x : log1p(exp(x)) }
        // a of pair i's chosen (k = 0) and rejected (k = 1) response, and its derivatives with respect to r, e, z
        let zc = z.map { $0.map { min(max($0, -ScoreHeads.logScaleLimit), ScoreHeads.logScaleLimit) } }
        let inverseScale = zc.map { $0.map { exp(-$0) } } ?? [Double](repeating: 1, count: b)
        let adv = (0..<b).map { i in [rc[i], rr[i]].map { ($0 - e[i]) * inverseScale[i] } }
        // Side-term gradients with respect to a: `offset` from bound and task mean, `spread` from the spread term.
        var gOffset = [[Double]](repeating: [0, 0], count: b), gSpread = gOffset

        // ranking (on r: e and z depend on the prompt only)
        var lRank = 0.0
        for i in 0..<b {
            let delta = rc[i] - rr[i]
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
            for k in 0..<2 {
                let a = adv[i][k]
                lBound += softplus(abs(a) - margin) / (2 * nb)
                gOffset[i][k] += sigmoid(abs(a) - margin) * (a >= 0 ? 1 : -1) / (2 * nb) * bound
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
            let values = idx.flatMap { adv[$0] }
            let n = Double(values.count)
            let bm = values.reduce(0, +) / n
            let bv = values.reduce(0) { $0 + ($1 - bm) * ($1 - bm) } / n
            let mu = momentum * prev.mean + (1 - momentum) * bm
            let v = momentum * prev.variance + (1 - momentum) * bv
            let sd = v.squareRoot()
            lMean += mu * mu / nt
            lSpread += (sd - targetStd) * (sd - targetStd) / nt
            // d/da_k of the task terms
            let dMu = 2 * mu / nt * (1 - momentum) / n * taskMean
            let dV = sd > 0 ? (sd - targetStd) / sd / nt * (1 - momentum) * 2 / n * taskSpread : 0
            for i in idx {
                for k in 0..<2 {
                    gOffset[i][k] += dMu
                    gSpread[i][k] += dV * (adv[i][k] - bm)
                }
            }
            newStats[task] = TaskStats(mean: mu, variance: v)
        }
        terms["task_mean"] = lMean
        terms["task_spread"] = lSpread

        // scale: its z-gradient is 1 − a²/σ*² per response (a itself depends on z); e and r get none
        var lScale = 0.0
        if scaled {
            let v2 = targetStd * targetStd
            for i in 0..<b {
                for k in 0..<2 {
                    let a = adv[i][k]
                    lScale += (zc![i] + a * a / (2 * v2)) / (2 * nb)
                    if abs(z![i]) < ScoreHeads.logScaleLimit { dz[i] += (1 - a * a / v2) / (2 * nb) * scale }
                }
            }
            terms["scale"] = lScale
        }

        // chain the side terms through a = (r − e)·exp(−z)
        for i in 0..<b {
            for k in 0..<2 {
                let g = gOffset[i][k] + gSpread[i][k]
                let toR = scaled ? 0 : baselineOnly ? gSpread[i][k] : g
                if k == 0 { dc[i] += toR * inverseScale[i] } else { dr[i] += toR * inverseScale[i] }
                de[i] -= g * inverseScale[i]
                if scaled, abs(z![i]) < ScoreHeads.logScaleLimit { dz[i] -= g * adv[i][k] }
            }
        }
        let total = ranking * lRank + expected * lExp + bound * lBound + taskMean * lMean + taskSpread * lSpread + (scaled ? scale * lScale : 0)
        return Output(total: total, terms: terms, dChosen: dc, dRejected: dr, dExpected: de, dLogScale: dz, stats: newStats)
    }
}
