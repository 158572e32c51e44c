import BallastConfig
import BallastModel
import BallastTestSupport
import BallastTraining
import Foundation
import Testing

func tinyConfig(out: String, steps: Int, extra: [String] = []) throws -> SFTConfig {
    let doc = try ConfigDocument(yaml: """
    model: {preset: tiny}
    data: {builtin_train_examples: 300, builtin_eval_examples: 16, max_length: 40}
    train: {steps: \(steps), batch_size: 8, lr: 3.0e-3, warmup_steps: 2, seed: 5}
    run: {out_dir: \(out), eval_every: 1000, eval_generate: 4, checkpoint_every: 3, log_every: 100, threads: 1}
    """, name: "test.yaml")
    for e in extra { try doc.apply(override: e) }
    return try SFTConfig.load(doc)
}

@Suite("SFT trainer", .serialized)
struct SFTTrainerTests {
    @Test("loss falls on the built-in data; metrics, checkpoint and eval are written")
    func learns() throws {
        let out = scratchDirectory("sft-learn")
        let trainer = try SFTTrainer(config: try tinyConfig(out: out, steps: 30, extra: ["run.eval_every=30"]), resume: false)
        let before = trainer.evaluateLoss()!
        let summary = try trainer.run()
        #expect(summary.steps == 30)
        #expect(summary.evalLoss! < before * 0.75, "eval loss \(before) → \(summary.evalLoss!)")
        let lines = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 31, "30 step records + 1 eval record")
        let last = try JSONSerialization.jsonObject(with: Data(lines.last!.utf8)) as! [String: Any]
        #expect(last["eval_loss"] != nil && last["eval_exact_match"] != nil)
        let model = try Checkpoint.load(out + "/checkpoint")
        #expect(model.config == GPTConfig.tiny)
        #expect(FileManager.default.fileExists(atPath: out + "/checkpoint/optimizer.safetensors"))
    }

    @Test("stopping and resuming gives exactly the parameters of an uninterrupted run")
    func resumeIsExact() throws {
        let straight = scratchDirectory("sft-straight"), split = scratchDirectory("sft-split")
        _ = try SFTTrainer(config: try tinyConfig(out: straight, steps: 8), resume: false).run()

        let first = try SFTTrainer(config: try tinyConfig(out: split, steps: 8), resume: false)
        var calls = 0
        first.shouldStop = { calls += 1; return calls > 5 }  // stop after 5 steps, like a SIGINT
        let s1 = try first.run()
        #expect(s1.interrupted && s1.steps == 5)
        let s2 = try SFTTrainer(config: try tinyConfig(out: split, steps: 8), resume: true).run()
        #expect(!s2.interrupted && s2.steps == 8)

        let a = try Checkpoint.load(straight + "/checkpoint"), b = try Checkpoint.load(split + "/checkpoint")
        #expect((0..<a.parameterCount).allSatisfy { a.params[$0] == b.params[$0] }, "resumed parameters differ")
        let steps = try String(contentsOfFile: split + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .filter { $0["loss"] != nil }.compactMap { $0["step"] as? Int }
        #expect(steps == Array(1...8), "metrics hold each step once after a resume")
    }

    @Test("--resume without a checkpoint and bad datasets fail with clear errors")
    func failures() throws {
        let out = scratchDirectory("sft-fail")
        let e = try #require(throws: ConfigError.self) { try SFTTrainer(config: try tinyConfig(out: out, steps: 2), resume: true) }
        #expect(e.message.contains("nothing to resume"))
        #expect(throws: (any Error).self) {
            try SFTTrainer(config: try tinyConfig(out: out, steps: 2, extra: ["data.train=/nonexistent.jsonl"]), resume: false)
        }
        #expect(throws: ConfigError.self) { try tinyConfig(out: out, steps: 2, extra: ["data.max_length=1000"]) }
    }
}

@Suite("Gradient accumulation", .serialized)
struct AccumulationTests {
    @Test("batch 4 × 2 accumulation steps equals one batch of 8")
    func accumulationMatchesLargeBatch() throws {
        let a = scratchDirectory("accum-a"), b = scratchDirectory("accum-b")
        _ = try SFTTrainer(config: try tinyConfig(out: a, steps: 3, extra: ["train.batch_size=8", "train.grad_accum=1"]), resume: false).run()
        _ = try SFTTrainer(config: try tinyConfig(out: b, steps: 3, extra: ["train.batch_size=4", "train.grad_accum=2"]), resume: false).run()
        let ma = try Checkpoint.load(a + "/checkpoint"), mb = try Checkpoint.load(b + "/checkpoint")
        var worst: Float = 0
        for i in 0..<ma.parameterCount { worst = max(worst, abs(ma.params[i] - mb.params[i])) }
        #expect(worst < 2e-5, "max parameter difference \(worst)")
        // And differs from a genuinely different run (guards against a test that cannot fail).
        let c = scratchDirectory("accum-c")
        _ = try SFTTrainer(config: try tinyConfig(out: c, steps: 3, extra: ["train.batch_size=4", "train.grad_accum=1"]), resume: false).run()
        let mc = try Checkpoint.load(c + "/checkpoint")
        #expect((0..<ma.parameterCount).contains { abs(ma.params[$0] - mc.params[$0]) > 1e-4 })
    }

    @Test("model.init_from cannot be combined with architecture fields")
    func initFromClash() throws {
        let e = try #require(throws: ConfigError.self) {
            try tinyConfig(out: "/tmp/x", steps: 1, extra: ["model.init_from=/some/ckpt"])
        }
        #expect(e.message.contains("model.preset") && e.message.contains("init_from"))
    }
}
