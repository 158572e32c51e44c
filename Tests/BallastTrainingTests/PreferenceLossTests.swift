import BallastFormats
import BallastModel
import BallastTraining
import Foundation
import Testing

@Suite("Preference losses vs PyTorch (tools/fixtures/make_loss_fixtures.py)")
struct PreferenceLossTests {
    let file: SafeTensorsFile
    let chosen: [Double], rejected: [Double]

    init() throws {
        let url = try #require(Bundle.module.url(forResource: "losses", withExtension: "safetensors", subdirectory: "Fixtures"))
        let f = try SafeTensorsFile(path: url.path)
        file = f
        chosen = try Self.doubles(f, "chosen")
        rejected = try Self.doubles(f, "rejected")
    }

    func doubles(_ name: String) throws -> [Double] { try Self.doubles(file, name) }

    static func doubles(_ file: SafeTensorsFile, _ name: String) throws -> [Double] {
        try file.bytes(name).withUnsafeBytes { raw in (0..<(raw.count / 8)).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self) } }
    }

    @Test func rankingLossAndGradients() throws {
        let r = PreferenceLosses.ranking(chosen: chosen, rejected: rejected)
        #expect(abs(r.loss - (try doubles("ranking_loss")[0])) < 1e-12)
        for (a, b) in zip(r.dChosen, try doubles("ranking_d_chosen")) { #expect(abs(a - b) < 1e-14) }
        for (a, b) in zip(r.dRejected, try doubles("ranking_d_rejected")) { #expect(abs(a - b) < 1e-14) }
    }

    @Test func calibrationAndAccuracy() throws {
        #expect(abs(PreferenceLosses.expectedCalibrationError(chosen: chosen, rejected: rejected) - (try doubles("ece")[0])) < 1e-12)
        #expect(PreferenceLosses.accuracy(chosen: chosen, rejected: rejected) == (try doubles("accuracy")[0]))
    }

    @Test("ECE properties: a calibrated predictor scores near 0, an overconfident one near its gap")
    func eceProperties() {
        // Pairs whose predicted win probability is exactly the empirical rate: 75% of pairs at p = 0.75 won.
        let d = log(3.0)  // σ(d) = 0.75, σ(−d) = 0.25: both sides land in the same bins as 1 − p
        var c: [Double] = [], r: [Double] = []
        for i in 0..<100 { if i < 75 { c.append(d); r.append(0) } else { c.append(0); r.append(d) } }
        #expect(PreferenceLosses.expectedCalibrationError(chosen: c, rejected: r) < 1e-12)
        // Always 99% sure, right 60% of the time: ECE = |0.6 − 0.99| = 0.39.
        let big = log(99.0)
        c = []; r = []
        for i in 0..<100 { if i < 60 { c.append(big); r.append(0) } else { c.append(0); r.append(big) } }
        #expect(abs(PreferenceLosses.expectedCalibrationError(chosen: c, rejected: r) - 0.39) < 1e-9)
    }
}

@Suite("Advantage Model objective vs PyTorch")
struct AdvantageLossTests {
    /// The fixture's `prefix`_* inputs through `AdvantageLoss` (scaled when it has `prefix`_z), against autograd.
    func checkAgainstFixture(_ prefix: String) throws {
        let url = try #require(Bundle.module.url(forResource: "losses", withExtension: "safetensors", subdirectory: "Fixtures"))
        let f = try SafeTensorsFile(path: url.path)
        func d(_ n: String) throws -> [Double] { try PreferenceLossTests.doubles(f, prefix + "_" + n) }
        let tasks = try f.ints(prefix + "_task").map { "t\($0)" }
        let oldMean = try d("old_mean"), oldVar = try d("old_var")
        // Task 2 has no running statistics yet: it must start from mean 0, variance 1 as in the fixture.
        let old = ["t0": AdvantageLoss.TaskStats(mean: oldMean[0], variance: oldVar[0]),
                   "t1": AdvantageLoss.TaskStats(mean: oldMean[1], variance: oldVar[1])]
        let z = f.names.contains(prefix + "_z") ? try d("z") : nil
        var loss = AdvantageLoss()
        loss.scaled = z != nil
        let out = loss.compute(rChosen: try d("r_chosen"), rRejected: try d("r_rejected"), expected: try d("e"), logScale: z, tasks: tasks, stats: old)
        let names = ["ranking", "expected", "bound", "task_mean", "task_spread"] + (z == nil ? [] : ["scale"])
        let ref = try d("terms")
        for (k, name) in names.enumerated() { #expect(abs(out.terms[name]! - ref[k]) < 1e-12, "\(name): \(out.terms[name]!) vs \(ref[k])") }
        #expect(abs(out.total - ref[names.count]) < 1e-12)
        var grads = [(out.dChosen, "d_chosen"), (out.dRejected, "d_rejected"), (out.dExpected, "d_e")]
        if z != nil { grads.append((out.dLogScale, "d_z")) }
        for (ours, name) in grads {
            let theirs = try d(name)
            #expect(ours.count == theirs.count && zip(ours, theirs).allSatisfy { abs($0 - $1) < 1e-12 }, "\(name)")
        }
        let newMean = try d("new_mean"), newVar = try d("new_var")
        for t in 0..<3 {
            #expect(abs(out.stats["t\(t)"]!.mean - newMean[t]) < 1e-12)
            #expect(abs(out.stats["t\(t)"]!.variance - newVar[t]) < 1e-12)
        }
    }

    @Test("unscaled form: every term, the gradients of r_c, r_r, e and the running statistics match autograd")
    func matchesPyTorch() throws { try checkAgainstFixture("am") }

    @Test("scaled form a = (r − e)/exp(z): terms, gradients of r, e, z and running statistics match autograd")
    func scaledMatchesPyTorch() throws { try checkAgainstFixture("ams") }

    @Test("scaled form: r gets exactly the reward model's gradient; a clamped z gets none")
    func scaledRewardIsTheRewardModels() {
        let rc = [1.2, -0.3, 3.9, 0.4, -2.8], rr = [0.2, 0.5, -3.1, 0.1, 2.6], e = [0.4, -1.0, 0.2, 2.9, 0.0]
        let z = [0.3, -0.2, 9.0, 0.0, -1.1]
        let loss = AdvantageLoss()  // the scaled form is the default
        let out = loss.compute(rChosen: rc, rRejected: rr, expected: e, logScale: z, tasks: ["a", "b", "a", "c", "b"], stats: [:])
        let rm = PreferenceLosses.ranking(chosen: rc, rejected: rr)
        #expect(out.dChosen == rm.dChosen && out.dRejected == rm.dRejected)
        #expect(out.dLogScale[2] == 0, "z = 9 is past the clamp: a does not depend on it")
        #expect(out.dLogScale.enumerated().allSatisfy { $0.offset == 2 || $0.element != 0 })
        // a ranks as r does within a pair, whatever e and z are
        for i in 0..<rc.count {
            let ac = ScoreHeads.advantage(reward: rc[i], expected: e[i], logScale: z[i])
            let ar = ScoreHeads.advantage(reward: rr[i], expected: e[i], logScale: z[i])
            #expect((ac > ar) == (rc[i] > rr[i]))
        }
        #expect(abs(ScoreHeads.advantage(reward: 3, expected: 1, logScale: 9) - 2 * exp(-4)) < 1e-15)
    }

    @Test("switching a term off removes it from the total and the gradients")
    func switches() {
        var loss = AdvantageLoss()
        loss.scaled = false
        loss.expected = 0
        loss.bound = 0
        loss.taskMean = 0
        loss.taskSpread = 0
        let am = loss.compute(rChosen: [1, 3], rRejected: [0, 4], expected: [0.5, 9], tasks: ["a", "b"], stats: [:])
        let rm = PreferenceLosses.ranking(chosen: [1, 3], rejected: [0, 4])
        #expect(abs(am.total - rm.loss) < 1e-15)
        #expect(am.dExpected.allSatisfy { abs($0) < 1e-15 }, "e cancels in the ranking term")
        for (a, b) in zip(am.dChosen, rm.dChosen) { #expect(abs(a - b) < 1e-15) }
    }

    @Test("baseline_only: with the spread term off, r gets exactly the ranking gradient and e the same gradient as without it")
    func baselineOnly() {
        let rc = [1.2, -0.3, 3.9, 0.4, -2.8], rr = [0.2, 0.5, -3.1, 0.1, 2.6], e = [0.4, -1.0, 0.2, 2.9, 0.0]
        let tasks = ["a", "b", "a", "c", "b"]
        var full = AdvantageLoss()
        full.scaled = false
        full.taskSpread = 0
        var baseline = full
        baseline.baselineOnly = true
        let f = full.compute(rChosen: rc, rRejected: rr, expected: e, tasks: tasks, stats: [:])
        let b = baseline.compute(rChosen: rc, rRejected: rr, expected: e, tasks: tasks, stats: [:])
        let ranking = PreferenceLosses.ranking(chosen: rc, rejected: rr)
        for k in 0..<rc.count {
            #expect(abs(b.dChosen[k] - ranking.dChosen[k]) < 1e-15 && abs(b.dRejected[k] - ranking.dRejected[k]) < 1e-15)
            #expect(abs(b.dExpected[k] - f.dExpected[k]) < 1e-15)
        }
        #expect(zip(f.dChosen, ranking.dChosen).contains { abs($0 - $1) > 1e-6 }, "without the flag the side terms move r")
        #expect(b.total == f.total, "the flag changes where gradients go, not the loss")
    }
}
