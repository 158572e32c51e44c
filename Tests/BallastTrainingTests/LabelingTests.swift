import BallastBenchmark
import BallastConfig
import BallastData
import BallastKernels
import BallastModel
import BallastRandom
import BallastTestSupport
import BallastTraining
import Foundation
import Testing

@Suite("Preference pairs: the panel builder, label baselines and learnability", .serialized)
struct LabelingTests {
    func prompts(_ n: Int) -> [PromptRecord] {
        Benchmark.examples(count: n, seed: 3, split: "p", families: Benchmark.rlFamilies).map { PromptRecord(prompt: $0.prompt, task: $0.task!, id: $0.id!) }
    }

    @Test("every two distinct panel answers of a prompt are compared once; identical and tied ones are dropped and counted")
    func panelComparisons() throws {
        let m = try GPT(config: .tiny)
        m.initializeRandom(seed: 2)
        let panel = [PreferenceLabeler.Sampler(name: "a", policy: m, temperature: 0.5), .init(name: "b", policy: m, temperature: 1),
                     .init(name: "c", policy: m, temperature: 1.5)]
        var labeler = PreferenceLabeler()
        labeler.maxNewTokens = 6
        labeler.annotator = Annotator(lengthBias: 0.5, tieMargin: 0.3)
        labeler.seed = 5
        let ps = prompts(20)
        let r = try labeler.label(panel: panel, prompts: ps)
        #expect(r.pairs.count + r.identical + r.ties == ps.count * 3, "K = 3 samplers give 3 comparisons per prompt")
        #expect(r.ties > 0 && !r.pairs.isEmpty)
        #expect(Set(r.pairs.compactMap(\.id)).count == r.pairs.count, "pair ids are unique")
        for pair in r.pairs {
            let fam = Benchmark.family(pair.task!)!
            #expect(pair.chosen != pair.rejected)
            #expect(abs(labeler.annotator.logit(task: fam, prompt: pair.prompt, first: pair.chosen, second: pair.rejected)) >= 0.3, "ties are dropped")
            let p = labeler.annotator.probabilityFirstWins(task: fam, prompt: pair.prompt, first: pair.chosen, second: pair.rejected)
            #expect(abs(pair.annotatorP! - p) < 1e-12, "the recorded probability is the annotator's")
        }
        let again = try labeler.label(panel: panel, prompts: ps)
        #expect(again.pairs == r.pairs, "seeded")
        var other = labeler
        other.seed = 6
        #expect(try other.label(panel: panel, prompts: ps).pairs != r.pairs, "another seed, other samples")
        #expect(throws: ConfigError.self) { try labeler.label(panel: [panel[0]], prompts: ps) }
    }

    @Test("label baselines: Bayes ceiling is the mean of max(p, 1 - p), longer-wins counts equal lengths half, length-matched pairs")
    func baselines() {
        let pairs = [PreferencePair(prompt: "x", chosen: "aaaa", rejected: "a", task: "t", id: nil, annotatorP: 0.9),
                     PreferencePair(prompt: "x", chosen: "b", rejected: "bbbb", task: "t", id: nil, annotatorP: 0.3),
                     PreferencePair(prompt: "x", chosen: "cc", rejected: "dd", task: "t", id: nil, annotatorP: 0.6)]
        let rep = RewardReport(chosen: [1, 1, 0], rejected: [0, 2, 1], tasks: ["t", "t", "t"], pairs: pairs)
        let l = rep.labels!
        #expect(abs(l.bayesCeiling! - (0.9 + 0.7 + 0.6) / 3) < 1e-12)
        #expect(abs(l.longerWins - (1 + 0 + 0.5) / 3) < 1e-12)
        #expect(l.lengthMatchedPairs == 1 && l.lengthMatchedAccuracy == 0)
        let unlabelled = RewardReport(chosen: [1], rejected: [0], tasks: ["t"], pairs: [PreferencePair(prompt: "x", chosen: "a", rejected: "b", task: nil, id: nil)])
        #expect(unlabelled.labels!.bayesCeiling == nil, "no ceiling without the annotator's probabilities")
    }

    @Test("learnability: benchmark pairs relabelled \"longer wins\" are learnt to >= 95% test accuracy by a tiny reward model")
    func longerWinsIsLearnable() throws {
        let dir = scratchDirectory("longer-wins")
        let m = try GPT(config: GPTConfig(nLayer: 2, nHead: 2, nEmbd: 32, nPositions: 128, vocabSize: 259))
        m.initializeRandom(seed: 1)
        try Checkpoint.save(m, to: dir + "/sft")
        var rng = SeededRNG(seed: 9)
        func pairs(_ n: Int, seed: UInt64) -> [PreferencePair] {
            Benchmark.examples(count: n, seed: seed, split: "l", families: Benchmark.rlFamilies).map { e in
                let p = Benchmark.family(e.task!)!.problem(&rng)
                let short = p.answer, long = p.answer + "\n" + p.explanation + (rng.nextDouble() < 0.5 ? "\n" + Verbosity.fillers[0] : "")
                let swap = rng.nextDouble() < 0.5
                return PreferencePair(prompt: e.prompt, chosen: swap ? long : short, rejected: swap ? short : long, task: e.task, id: e.id)
            }.map { p in p.chosen.count >= p.rejected.count ? p : PreferencePair(prompt: p.prompt, chosen: p.rejected, rejected: p.chosen, task: p.task, id: p.id) }
        }
        try JSONL.write(pairs(300, seed: 1), to: dir + "/train.jsonl")
        try JSONL.write(pairs(200, seed: 2), to: dir + "/eval.jsonl")
        let doc = try ConfigDocument(yaml: """
        model: {init_from: \(dir)/sft}
        data: {train: \(dir)/train.jsonl, eval: \(dir)/eval.jsonl, max_length: 128}
        train: {steps: 40, batch_size: 16, lr: 3.0e-3, warmup_steps: 5, seed: 2}
        run: {out_dir: \(dir)/rm, eval_every: 1000, checkpoint_every: 1000, log_every: 1000, threads: 1}
        """, name: "longer-wins.yaml")
        let trainer = try RewardTrainer(config: try RewardConfig.load(doc), resume: false)
        _ = try trainer.run()
        let accuracy = trainer.evaluate()["eval_accuracy"]!
        #expect(accuracy >= 0.95, "accuracy \(accuracy)")
    }
}
