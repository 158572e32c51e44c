import BallastBenchmark
import BallastConfig
import BallastData
import BallastModel
import BallastRandom
import BallastTestSupport
import BallastTraining
import Foundation
import Testing

/// Writes a tiny random "SFT" checkpoint and synthetic preference data whose preferred responses are
/// recognisable (made of early letters) so that a tiny reward model can learn them in a few steps.
func rewardFixture(_ tag: String) throws -> (dir: String, sft: String, train: String, eval: String) {
    let dir = scratchDirectory(tag)
    let sft = dir + "/sft"
    let m = try GPT(config: .tiny)
    m.initializeRandom(seed: 1)
    try Checkpoint.save(m, to: sft)
    var rng = SplitMix64Test(seed: 4)
    func pairs(_ n: Int) -> [PreferencePair] {
        (0..<n).map { i in
            let good = String((0..<(3 + i % 4)).map { _ in "abc".randomElement(using: &rng)! })
            let bad = String((0..<(3 + i % 5)).map { _ in "xyz".randomElement(using: &rng)! })
            return PreferencePair(prompt: "Q\(i % 7)\n", chosen: good, rejected: bad, task: i % 2 == 0 ? "even" : "odd", id: "\(i)")
        }
    }
    try JSONL.write(pairs(200), to: dir + "/train.jsonl")
    try JSONL.write(pairs(40), to: dir + "/eval.jsonl")
    return (dir, sft, dir + "/train.jsonl", dir + "/eval.jsonl")
}

struct SplitMix64Test: RandomNumberGenerator {
    var s: UInt64
    init(seed: UInt64) { s = seed }
    mutating func next() -> UInt64 {
        s &+= 0x9E37_79B9_7F4A_7C15
        var z = s
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func rmConfig(_ f: (dir: String, sft: String, train: String, eval: String), steps: Int, extra: [String] = []) throws -> RewardConfig {
    let doc = try ConfigDocument(yaml: """
    model: {init_from: \(f.sft)}
    data: {train: \(f.train), eval: \(f.eval), max_length: 32}
    train: {steps: \(steps), batch_size: 16, lr: 3.0e-3, warmup_steps: 2, seed: 2}
    run: {out_dir: \(f.dir)/rm, eval_every: 1000, checkpoint_every: 10, log_every: 100, threads: 1}
    """, name: "rm-test.yaml")
    for e in extra { try doc.apply(override: e) }
    return try RewardConfig.load(doc)
}

@Suite("Reward model training", .serialized)
struct RewardTrainerTests {
    @Test("learns a recognisable preference; checkpoint has a score head; report is per task")
    func learns() throws {
        let f = try rewardFixture("rm-learn")
        let trainer = try RewardTrainer(config: try rmConfig(f, steps: 40), resume: false)
        let before = trainer.evaluate()
        #expect(before["eval_accuracy"] == 0.5, "zero-initialised head scores every response 0")
        let s = try trainer.run()
        #expect(s.lastEval["eval_accuracy"]! > 0.9, "\(s.lastEval)")
        #expect(s.lastEval["eval_loss"]! < 0.4)
        let rm = try Checkpoint.load(f.dir + "/rm/checkpoint")
        #expect(rm.config.scalarHeads == ["score"])
        let pairs = try PreferenceData.load(f.eval, maxLength: 32, codec: rm.codec).encoded
        let report = RewardReport(model: rm, pairs: pairs, head: 0)
        #expect(report.rows.map(\.task) == ["all", "even", "odd"])
        #expect(report.rows[0].pairs == 40 && report.rows[0].histogram.reduce(0, +) == 80)
        #expect(report.table().contains("spread of per-task mean scores"))
    }

    @Test("resume continues exactly")
    func resume() throws {
        let f = try rewardFixture("rm-resume")
        let g = try rewardFixture("rm-resume-straight")
        _ = try RewardTrainer(config: try rmConfig(g, steps: 12, extra: ["model.init_from=\(f.sft)", "data.train=\(f.train)", "data.eval=\(f.eval)"]), resume: false).run()
        let first = try RewardTrainer(config: try rmConfig(f, steps: 12), resume: false)
        var n = 0
        first.shouldStop = { n += 1; return n > 7 }
        #expect(try first.run().interrupted)
        _ = try RewardTrainer(config: try rmConfig(f, steps: 12), resume: true).run()
        let a = try Checkpoint.load(f.dir + "/rm/checkpoint"), b = try Checkpoint.load(g.dir + "/rm/checkpoint")
        #expect((0..<a.parameterCount).allSatisfy { a.params[$0] == b.params[$0] })
    }

    @Test func configErrors() throws {
        #expect(throws: ConfigError.self) { try RewardConfig.load(try ConfigDocument(yaml: "data: {train: x.jsonl}\n", name: "a.yaml")) }
        #expect(throws: ConfigError.self) { try RewardConfig.load(try ConfigDocument(yaml: "model: {init_from: m, n_layer: 2}\ndata: {train: x}\n", name: "a.yaml")) }
        let dir = scratchDirectory("rm-bad")
        try "{\"prompt\":\"p\",\"chosen\":\"a\"}\n".write(toFile: dir + "/p.jsonl", atomically: true, encoding: .utf8)
        #expect(throws: DatasetError(file: dir + "/p.jsonl", line: 1, problem: "missing field \"rejected\" (a string or one assistant message)")) {
            try PreferencePair.read(dir + "/p.jsonl")
        }
    }
}

@Suite("Advantage Model training", .serialized)
struct AdvantageTrainerTests {
    func amConfig(_ f: (dir: String, sft: String, train: String, eval: String), steps: Int, extra: [String] = []) throws -> RewardConfig {
        let doc = try ConfigDocument(yaml: """
        model: {init_from: \(f.sft)}
        data: {train: \(f.train), eval: \(f.eval), max_length: 32}
        am: {bound: 0.1, task_mean: 0.1, task_spread: 0.1}
        train: {steps: \(steps), batch_size: 16, lr: 3.0e-3, warmup_steps: 2, seed: 2}
        run: {out_dir: \(f.dir)/am, eval_every: 1000, checkpoint_every: 5, log_every: 100, threads: 1}
        """, name: "am-test.yaml")
        for e in extra { try doc.apply(override: e) }
        return try RewardConfig.load(doc, kind: .advantage)
    }

    @Test("learns the preference with r, e and z heads, keeps running task statistics, resumes exactly")
    func learnsAndResumes() throws {
        let f = try rewardFixture("am-learn")
        let s = try RewardTrainer(config: try amConfig(f, steps: 30), resume: false).run()
        #expect(s.lastEval["eval_accuracy"]! > 0.9, "\(s.lastEval)")
        #expect(s.lastEval["eval_a_task_mean_spread"] != nil)
        let am = try Checkpoint.load(f.dir + "/am/checkpoint")
        #expect(am.config.scalarHeads == ["score", "expected_reward_head", "advantage_scale_head"])
        let state = try JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: URL(fileURLWithPath: f.dir + "/am/checkpoint/trainer_state.json")))
        #expect(Set(state.taskStats!.keys) == ["even", "odd"])

        let g = try rewardFixture("am-split")
        let first = try RewardTrainer(config: try amConfig(g, steps: 12, extra: ["model.init_from=\(f.sft)", "data.train=\(f.train)", "data.eval=\(f.eval)"]), resume: false)
        var n = 0
        first.shouldStop = { n += 1; return n > 7 }
        #expect(try first.run().interrupted)
        _ = try RewardTrainer(config: try amConfig(g, steps: 12, extra: ["model.init_from=\(f.sft)", "data.train=\(f.train)", "data.eval=\(f.eval)"]), resume: true).run()
        let h = try rewardFixture("am-straight")
        _ = try RewardTrainer(config: try amConfig(h, steps: 12, extra: ["model.init_from=\(f.sft)", "data.train=\(f.train)", "data.eval=\(f.eval)"]), resume: false).run()
        let a = try Checkpoint.load(g.dir + "/am/checkpoint"), b = try Checkpoint.load(h.dir + "/am/checkpoint")
        #expect((0..<a.parameterCount).allSatisfy { a.params[$0] == b.params[$0] }, "resume is exact, running statistics included")
    }

    @Test("the scaled AM with probe heads trains its trunk and r bit for bit as the reward model of the same seed")
    func trunkIsTheRewardModels() throws {
        let f = try rewardFixture("am-equals-rm")
        _ = try RewardTrainer(config: try rmConfig(f, steps: 15), resume: false).run()
        _ = try RewardTrainer(config: try amConfig(f, steps: 15), resume: false).run()  // same seed, same batches
        let rm = try Checkpoint.load(f.dir + "/rm/checkpoint"), am = try Checkpoint.load(f.dir + "/am/checkpoint")
        var differing: [String] = []
        for e in rm.layout.entries {
            let o = try #require(am.layout.entry(named: e.name))
            if !(0..<e.count).allSatisfy({ rm.params[e.offset + $0] == am.params[o.offset + $0] }) { differing.append(e.name) }
        }
        #expect(differing.isEmpty, "tensors that differ from the RM's: \(differing)")
        // the probes did train
        let z = try #require(am.layout.entry(named: "advantage_scale_head.weight"))
        #expect((0..<z.count).contains { am.params[z.offset + $0] != 0 })
    }

    @Test func amSectionIsValidated() throws {
        let f = try rewardFixture("am-cfg")
        #expect(throws: ConfigError.self) { try amConfig(f, steps: 2, extra: ["am.bund=1"]) }
        #expect(throws: ConfigError.self) { try amConfig(f, steps: 2, extra: ["am.momentum=1.5"]) }
        #expect(throws: ConfigError.self) { try amConfig(f, steps: 2, extra: ["am.baseline_only=true"]) }
        #expect(try amConfig(f, steps: 2, extra: ["am.baseline_only=true", "am.scale_head=false"]).advantage.baselineOnly)
        // The am section belongs to train-am only.
        let doc = try ConfigDocument(yaml: "model: {init_from: m}\ndata: {train: t}\nam: {bound: 0}\n", name: "rm.yaml")
        #expect(throws: ConfigError("rm.yaml: unknown key \"am\"")) { try RewardConfig.load(doc) }
    }
}
