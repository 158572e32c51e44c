import BallastBenchmark
import BallastConfig
import BallastData
import BallastKernels
import BallastModel
import BallastRandom
import Foundation

/// Builds preference pairs the way real pipelines do: a panel of samplers (checkpoints of the SFT
/// stage at several temperatures) answers every prompt once each, every two distinct responses of a
/// prompt are compared (K·(K−1)/2 comparisons for K samplers), and the task's simulated annotator
/// chooses. Identical responses and declared ties are dropped and counted.
public struct PreferenceLabeler {
    public struct Sampler {
        public var name: String
        public var policy: GPT
        public var temperature: Float
        public init(name: String, policy: GPT, temperature: Float) {
            self.name = name
            self.policy = policy
            self.temperature = temperature
        }
    }

    public var maxNewTokens = 32
    public var annotator = Annotator()
    public var batchPrompts = 32
    public var seed: UInt64 = 0

    public init() {}

    public struct Result {
        public var pairs: [PreferencePair]
        /// Comparisons skipped because both responses were identical, and declared ties.
        public var identical: Int
        public var ties: Int
        /// Mean gold of each sampler's responses, per task.
        public var meanGold: [String: [String: Double]]
    }

    /// `progress(done, total)` is called after each batch of prompts.
    public func label(panel: [Sampler], prompts: [PromptRecord], progress: (Int, Int) -> Void = { _, _ in }) throws -> Result {
        guard panel.count >= 2 else { throw ConfigError("the labelling panel needs at least two samplers") }
        let codec = panel[0].policy.codec
        guard panel.allSatisfy({ $0.policy.codec.sameText(as: codec) }) else {
            throw ConfigError("the labelling panel's models must share one tokenizer")
        }
        var rng = SeededRNG(seed: seed ^ 0x1AB)
        var pairs: [PreferencePair] = []
        var identical = 0, ties = 0
        var goldSum: [String: [String: Double]] = [:], goldCount: [String: Int] = [:]
        var start = 0
        while start < prompts.count {
            let chunk = Array(prompts[start..<min(start + batchPrompts, prompts.count)])
            for p in chunk where Benchmark.family(p.task) == nil {
                throw DatasetError(file: "prompts", line: 0, problem: "unknown task \"\(p.task)\" for prompt id \(p.id) (the annotator is per benchmark task)")
            }
            let ids = try chunk.map { try codec.promptIds(text: $0.prompt, messages: $0.messages) }
            // texts[s][i]: sampler s's response to prompt i.
            var texts: [[String]] = []
            for (s, sampler) in panel.enumerated() {
                var opts = SamplingOptions(temperature: sampler.temperature, maxNewTokens: maxNewTokens)
                opts.seed = seed &+ UInt64(start) &* 31 &+ UInt64(s)
                opts.maxNewTokens = min(opts.maxNewTokens, sampler.policy.config.nPositions - (ids.map(\.count).max() ?? 0))
                let gens = try Generator(model: sampler.policy).generate(prompts: ids, options: opts)
                texts.append(gens.map { codec.decodeResponse($0.outputIds) })
            }
            for (i, p) in chunk.enumerated() {
                let fam = Benchmark.family(p.task)!
                for (s, sampler) in panel.enumerated() {
                    goldSum[sampler.name, default: [:]][p.task, default: 0] += fam.gold(prompt: p.prompt, response: texts[s][i]) ?? 0
                }
                goldCount[p.task, default: 0] += 1
                var k = 0
                for a in 0..<panel.count {
                    for b in (a + 1)..<panel.count {
                        defer { k += 1 }
                        if texts[a][i] == texts[b][i] { identical += 1; continue }
                        switch annotator.judge(task: fam, prompt: p.prompt, texts[a][i], texts[b][i], rng: &rng) {
                        case .tie: ties += 1
                        case .preferred(let c, let r, let prob):
                            pairs.append(PreferencePair(prompt: p.prompt, chosen: c, rejected: r, task: p.task, id: "\(p.id)-\(k)", annotatorP: prob,
                                                                promptMessages: p.messages))
                        }
                    }
                }
            }
            start += chunk.count
            progress(start, prompts.count)
        }
        let meanGold = goldSum.mapValues { perTask in Dictionary(uniqueKeysWithValues: perTask.map { ($0.key, $0.value / Double(goldCount[$0.key]!)) }) }
        return Result(pairs: pairs, identical: identical, ties: ties, meanGold: meanGold)
    }
}
