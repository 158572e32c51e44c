import BallastKernels
import BallastFormats
import BallastRL
import BallastRandom
import Foundation
import Testing

/// Reads the float64 fixtures of tools/fixtures/make_ppo_fixtures.py as rows of [B][T].
struct PPOFixture {
    let file: SafeTensorsFile
    init() throws {
        let url = try #require(Bundle.module.url(forResource: "ppo", withExtension: "safetensors", subdirectory: "Fixtures"))
        file = try SafeTensorsFile(path: url.path)
    }
    func flat(_ n: String) throws -> [Double] {
        try file.bytes(n).withUnsafeBytes { raw in (0..<(raw.count / 8)).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self) } }
    }
    func rows(_ n: String) throws -> [[Double]] {
        let shape = try file.info(n).shape, v = try flat(n)
        return (0..<shape[0]).map { Array(v[($0 * shape[1])..<(($0 + 1) * shape[1])]) }
    }
}

func expectRowsClose(_ a: [[Double]], _ b: [[Double]], _ tol: Double = 1e-12, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(a.count == b.count, sourceLocation: sourceLocation)
    for (x, y) in zip(a, b) { for (u, v) in zip(x, y) { #expect(abs(u - v) <= tol, "\(what): \(u) vs \(v)", sourceLocation: sourceLocation) } }
}

@Suite("PPO estimators and losses vs PyTorch (tools/fixtures/make_ppo_fixtures.py)")
struct PPOMathTests {
    @Test func klEstimators() throws {
        let f = try PPOFixture()
        let logp = try f.rows("logp"), ref = try f.rows("ref_logp"), mask = try f.rows("mask")
        for (est, name) in [(PPOMath.KLEstimator.k1, "k1"), (.k2, "k2"), (.k3, "k3")] {
            let ours = logp.indices.map { b in logp[b].indices.map { t in mask[b][t] * PPOMath.kl(logp[b][t], ref[b][t], est) } }
            expectRowsClose(ours, try f.rows(name), 1e-14, name)
        }
    }

    @Test("token rewards, GAE, returns and whitening")
    func rewardsAndAdvantages() throws {
        let f = try PPOFixture()
        let c = try f.flat("constants")
        let mask = try f.rows("mask")
        let rewards = PPOMath.tokenRewards(logp: try f.rows("logp"), refLogp: try f.rows("ref_logp"), mask: mask,
                                           scores: try f.flat("scores"), beta: c[0], scoreClip: c[1])
        expectRowsClose(rewards, try f.rows("rewards"), 1e-14, "rewards")
        let (adv, ret) = PPOMath.gae(rewards: rewards, values: try f.rows("values"), mask: mask, gamma: c[2], lambda: c[3])
        expectRowsClose(adv, try f.rows("advantages"), 1e-12, "advantages")
        expectRowsClose(ret, try f.rows("returns"), 1e-12, "returns")
        expectRowsClose(PPOMath.whiten(adv, mask), try f.rows("whitened"), 1e-12, "whitened")
    }

    @Test("clipped policy and value losses with their gradients")
    func losses() throws {
        let f = try PPOFixture()
        let c = try f.flat("constants")
        let mask = try f.rows("mask")
        let p = PPOMath.policyLoss(logp: try f.rows("new_logp"), oldLogp: try f.rows("logp"), advantages: try f.rows("whitened"),
                                   mask: mask, clip: c[4])
        #expect(abs(p.loss - (try f.flat("policy_loss")[0])) < 1e-12)
        expectRowsClose(p.dLogp, try f.rows("policy_d_logp"), 1e-12, "policy gradient")
        #expect(abs(p.clipFraction - (try f.flat("clip_fraction")[0])) < 1e-12)
        #expect(p.clipFraction > 0, "the fixture exercises clipping")
        let v = PPOMath.valueLoss(values: try f.rows("new_values"), oldValues: try f.rows("values"), returns: try f.rows("returns"),
                                  mask: mask, clip: c[5])
        #expect(abs(v.loss - (try f.flat("value_loss")[0])) < 1e-12)
        expectRowsClose(v.dValues, try f.rows("value_d_values"), 1e-12, "value gradient")
    }

    @Test func entropyAndKLController() throws {
        let f = try PPOFixture()
        let logits = try f.rows("entropy_logits"), ent = try f.flat("entropy")
        for (row, e) in zip(logits, ent) { #expect(abs(PPOMath.entropy(logits: row) - e) < 1e-12) }
        let k = try f.flat("kl_controller")
        var ctl = AdaptiveKLController(beta: k[0], target: k[1], horizon: k[2])
        ctl.update(currentKL: k[3], steps: Int(k[4]))
        #expect(abs(ctl.beta - k[5]) < 1e-15)
    }
}

@Suite("Stale-rollout down-weighting")
struct DownweightTests {
    @Test("scaling a row's advantages by w > 0 scales its clipped-surrogate loss and gradient by w")
    func homogeneity() {
        var rng = SeededRNG(seed: 11)
        let rows = 4, len = 6
        func r() -> Double { Double(rng.nextFloat()) - 0.5 }
        let logp = (0..<rows).map { _ in (0..<len).map { _ in r() - 1 } }
        let old = logp.map { $0.map { $0 + r() * 0.8 } }  // ratios both inside and outside the clip range
        let adv = (0..<rows).map { _ in (0..<len).map { _ in r() * 2 } }
        let mask = (0..<rows).map { _ in [Double](repeating: 1, count: len) }
        let weights = [1.0, 0.5, 0.25, 0.125]
        let scaled = adv.enumerated().map { i, a in a.map { $0 * weights[i] } }
        for i in 0..<rows {
            // Row i alone: with its weight vs unweighted, times the weight.
            let one = PPOMath.policyLoss(logp: [logp[i]], oldLogp: [old[i]], advantages: [adv[i]], mask: [mask[i]])
            let w = PPOMath.policyLoss(logp: [logp[i]], oldLogp: [old[i]], advantages: [scaled[i]], mask: [mask[i]])
            #expect(abs(w.loss - weights[i] * one.loss) < 1e-12)
            for t in 0..<len { #expect(abs(w.dLogp[0][t] - weights[i] * one.dLogp[0][t]) < 1e-12) }
            #expect(w.clipFraction == one.clipFraction)
        }
    }
}
