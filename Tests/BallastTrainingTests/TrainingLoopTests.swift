import BallastConfig
import BallastModel
import BallastTestSupport
import Foundation
import Testing
@testable import BallastTraining

@Suite("Training loop")
struct TrainingLoopTests {
    func loop(_ tag: String, steps: Int) throws -> TrainingLoop {
        let optim = OptimConfig(steps: steps, batchSize: 1, gradAccum: 1, lr: 1e-2, minLR: 1e-2, warmupSteps: 0, weightDecay: 0,
                                beta1: 0.9, beta2: 0.95, eps: 1e-8, maxGradNorm: 1, seed: 1)
        let run = RunConfig(outDir: scratchDirectory(tag) + "/run", evalEvery: 1000, evalGenerate: 0, checkpointEvery: 1000, logEvery: 1000, threads: 1)
        return try TrainingLoop(optim: optim, run: run, resume: false) {
            let m = try GPT(config: .tiny)
            m.initializeRandom(seed: 3)
            return m
        }
    }

    func parameters(_ m: GPT) -> [Float] { Array(UnsafeBufferPointer(start: m.params, count: m.parameterCount)) }

    /// Before the fix a NaN gradient went through clipping (min(maxNorm / NaN, 1) is NaN, so nothing was
    /// scaled) into AdamW and every weight became NaN; a NaN loss updated the weights, then stopped the run.
    @Test("a step with a non-finite gradient or loss is skipped and counted; the weights stay finite and the run goes on")
    func skipsNonFiniteUpdates() throws {
        let l = try loop("loop-nan", steps: 6)
        var calls = 0
        var before: [[Float]] = []
        let summary = try l.train(step: {
            before.append(parameters(l.model))
            calls += 1
            for i in 0..<l.model.parameterCount { l.model.grads[i] = 0.01 }
            if calls == 3 { l.model.grads[7] = .nan }
            return StepResult(loss: calls == 5 ? .infinity : 1, tokens: 1)
        }, evaluate: { [:] }, syncState: { _ in })
        #expect(summary.steps == 6 && !summary.interrupted)
        let after = parameters(l.model)
        #expect(after.allSatisfy { $0.isFinite })
        #expect(before[3] == before[2] && before[5] == before[4])  // steps 3 and 5 changed nothing
        #expect(before[2] != before[1] && after != before[5])      // the others did
        let records = try String(contentsOfFile: l.run.outDir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(records.filter { $0["skipped_update"] != nil }.map { $0["step"] as? Int } == [3, 5])
        #expect(records.last { $0["loss"] != nil }?["skipped_updates"] as? Int == 2)
        let saved = try Checkpoint.load(summary.checkpoint)
        #expect(parameters(saved) == after)
    }

    @Test("non-finite steps in a row stop the run with a clear error and save nothing")
    func stopsAfterRepeatedNonFiniteSteps() throws {
        let l = try loop("loop-nan-stop", steps: 20)
        let start = parameters(l.model)
        #expect(throws: ConfigError.self) {
            _ = try l.train(step: { StepResult(loss: .nan, tokens: 1) }, evaluate: { [:] }, syncState: { _ in })
        }
        #expect(l.state.step == TrainingLoop.maxConsecutiveSkips && parameters(l.model) == start)
        #expect(!FileManager.default.fileExists(atPath: l.checkpointDir))
    }
}

@Suite("Metrics log")
struct MetricsLogTests {
    /// Before the fix FileHandle.write trapped on a full disk and ended the process without a checkpoint.
    @Test("a metrics write on a full disk is counted, not a crash")
    func fullDisk() throws {
        let log = try MetricsLog(path: scratchDirectory("metrics-full") + "/metrics.jsonl")
        let full = open("/dev/full", O_WRONLY)
        try #require(full >= 0)
        defer { close(full) }
        #expect(dup2(full, log.handle.fileDescriptor) >= 0)
        log.write(["step": 1, "loss": 0.5])
        log.write(["step": 2, "loss": 0.4])
        #expect(log.writeFailures == 2)
    }
}
