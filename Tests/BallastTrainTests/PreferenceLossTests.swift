import BallastFormats
import BallastTrain
import Foundation
import Testing

@Suite("Preference losses vs PyTorch (tools/make_loss_fixtures.py)")
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
