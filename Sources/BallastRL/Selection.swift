import BallastBenchmark
import BallastConfig
import BallastData
import BallastFormats
import BallastModel
import BallastTokenizers
import BallastTraining
import Foundation

/// One example of the rehearsal set: the prompt with the SFT model's response, its cluster and score.
public struct RehearsalExample: Codable, Sendable, Equatable {
    public var prompt: String
    public var completion: String
    public var task: String
    public var id: String
    public var cluster: Int
    public var score: Double
    /// A conversational prompt's turns and the response: written as TRL's {"messages"} (read back as SFT).
    public var messages: [ChatMessage]? = nil

    enum CodingKeys: String, CodingKey { case prompt, completion, task, id, cluster, score, messages }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if let messages { try c.encode(messages, forKey: .messages) } else {
            try c.encode(prompt, forKey: .prompt)
            try c.encode(completion, forKey: .completion)
        }
        try c.encode(task, forKey: .task)
        try c.encode(id, forKey: .id)
        try c.encode(cluster, forKey: .cluster)
        try c.encode(score, forKey: .score)
    }
}

/// A PPO prompt after selection, with its cluster.
public struct ClusteredPrompt: Codable, Sendable, Equatable {
    public var prompt: String
    public var task: String
    public var id: String
    public var cluster: Int
    /// A conversational prompt's turns: written as TRL's list-of-messages "prompt".
    public var messages: [ChatMessage]? = nil

    enum CodingKeys: String, CodingKey { case prompt, task, id, cluster, messages }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if let messages { try c.encode(messages, forKey: .prompt) } else { try c.encode(prompt, forKey: .prompt) }
        try c.encode(task, forKey: .task)
        try c.encode(id, forKey: .id)
        try c.encode(cluster, forKey: .cluster)
    }
}

/// `ballast select`: SFT responses for the PPO prompts, embeddings (mean-pooled final hidden state of
/// the encoder over [BOS] prompt response [EOS]), scores by the advantage model (its a, see `ScoreHeads`;
/// r for a plain reward model), k-means clusters, top-k per cluster as the rehearsal set.
public struct SelectionJob {
    public var clusters = 16
    public var perCluster = 8
    public var seed: UInt64 = 0
    public var maxNewTokens = 48
    public var batchSize = 32
    /// How the rehearsal set is chosen.
    public enum Mode: String, Sendable, CaseIterable {
        /// Each cluster's top `perCluster` by score (the paper's selection).
        case selective
        /// Ablation: a random subset of the same size, ignoring clusters and scores.
        case random
        /// Each cluster's top `perCluster` by score with its linear dependence on response length removed
        /// (`SelectiveRehearsal.lengthDebiased`): the scorer inherits the annotators' length preference.
        case lengthDebiased = "length-debiased"
        /// Each cluster's top by score, the clusters' shares of the same total in proportion to their
        /// sizes: k-means can give a uniform task one cluster and a varied one many.
        case proportional
    }
    public var mode = Mode.selective

    public init() {}

    public struct Output {
        public var rehearsal: [RehearsalExample]
        public var ppo: [ClusteredPrompt]
        public var summary: [String: Any]
    }

    public func run(sft: GPT, encoder: GPT, scorer: GPT, prompts: [PromptRecord], progress: (String) -> Void = { _ in }) throws -> Output {
        guard let heads = ScoreHeads(scorer.config) else {
            throw FileError(path: "scorer", problem: "needs a score head (a reward or advantage model)")
        }
        let codec = sft.codec
        for m in [encoder, scorer] where !m.codec.sameText(as: codec) || m.config.vocabSize != sft.config.vocabSize {
            throw ConfigError("the encoder and scorer must share the SFT model's tokenizer and vocabulary (they read its token ids)")
        }
        let promptIDs = try prompts.map { try codec.promptIds(text: $0.prompt, messages: $0.messages) }
        var responses: [String] = []
        var start = 0
        while start < prompts.count {
            let ids = Array(promptIDs[start..<min(start + batchSize, prompts.count)])
            let room = sft.config.nPositions - (ids.map(\.count).max() ?? 0)
            let gens = try Generator(model: sft).generate(prompts: ids, options: SamplingOptions(greedy: true, maxNewTokens: min(maxNewTokens, room)))
            responses += gens.map { codec.decodeResponse($0.outputIds) }
            start += ids.count
            progress("sft responses \(start)/\(prompts.count)")
        }
        // prompt then response and its end token: the form the scorer was trained on and scores rollouts in
        let examples = zip(promptIDs, responses).map { ids, r in EncodedExample(tokens: ids + codec.responseIds(r), promptTokens: ids.count) }
        var embeddings: [[Double]] = [], scores: [Double] = []
        start = 0
        while start < examples.count {
            let chunk = Array(examples[start..<min(start + batchSize, examples.count)])
            let (batch, _, _) = SFTEncoding.batch(chunk)
            encoder.forward(batch, computeLogits: false, inferenceOnly: true)
            let hidden = encoder.hiddenStates, c = encoder.config.nEmbd
            for (r, e) in chunk.enumerated() {
                var v = [Double](repeating: 0, count: c)
                for i in 0..<e.tokens.count { for j in 0..<c { v[j] += Double(hidden[(batch.start(ofRow: r) + i) * c + j]) } }
                embeddings.append(v.map { $0 / Double(e.tokens.count) })
            }
            scorer.forward(batch, computeLogits: false, inferenceOnly: true)
            for (r, e) in chunk.enumerated() {
                let row = batch.start(ofRow: r)
                scores.append(heads.score(scorer.headOutputs, last: row + e.tokens.count - 1, promptLast: row + e.promptTokens - 1))
            }
            start += chunk.count
            progress("embedded and scored \(start)/\(examples.count)")
        }
        // The length the scorer saw: response tokens and the end token.
        let (debiased, lengthSlope) = SelectiveRehearsal.lengthDebiased(scores: scores, lengths: examples.map { $0.tokens.count - $0.promptTokens })
        var sel = SelectiveRehearsal.select(embeddings: embeddings, scores: mode == .lengthDebiased ? debiased : scores, clusters: clusters,
                                            perCluster: perCluster, seed: seed, proportional: mode == .proportional)
        if mode == .random { sel = SelectiveRehearsal.randomSubset(of: sel, seed: seed) }
        let rehearsal = sel.rehearsal.map { i in
            RehearsalExample(prompt: prompts[i].prompt, completion: responses[i], task: prompts[i].task, id: prompts[i].id,
                             cluster: sel.cluster[i], score: scores[i],
                             messages: prompts[i].messages.map { $0 + [ChatMessage(role: "assistant", content: responses[i])] })
        }
        let ppo = sel.ppo.map { ClusteredPrompt(prompt: prompts[$0].prompt, task: prompts[$0].task, id: prompts[$0].id, cluster: sel.cluster[$0],
                                                messages: prompts[$0].messages) }
        var perClusterSummary: [[String: Any]] = []
        for c in sel.sizes.indices {
            let members = prompts.indices.filter { sel.cluster[$0] == c }
            let s = members.map { scores[$0] }
            var tasks: [String: Int] = [:]
            for m in members { tasks[prompts[m].task, default: 0] += 1 }
            let chosen = rehearsal.filter { $0.cluster == c }.map(\.score)
            let gold = members.map { Benchmark.gold(prompt: prompts[$0].prompt, response: responses[$0], task: prompts[$0].task) ?? .nan }
            perClusterSummary.append(["cluster": c, "size": members.count, "selected": chosen.count, "tasks": tasks,
                                      "score_mean": s.reduce(0, +) / Double(max(s.count, 1)), "score_min": s.min() ?? 0, "score_max": s.max() ?? 0,
                                      "selected_score_min": chosen.min() ?? 0,
                                      "gold_mean": gold.filter { !$0.isNaN }.reduce(0, +) / Double(max(gold.filter { !$0.isNaN }.count, 1))])
        }
        let summary: [String: Any] = ["clusters": perClusterSummary, "examples": prompts.count, "rehearsal": rehearsal.count,
                                      "ppo_prompts": ppo.count, "per_cluster": perCluster, "seed": seed,
                                      "mode": mode.rawValue, "score_per_response_token": lengthSlope]
        return Output(rehearsal: rehearsal, ppo: ppo, summary: summary)
    }
}
