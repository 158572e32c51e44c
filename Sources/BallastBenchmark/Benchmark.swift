import BallastData
import BallastRandom
import BallastTokenizers
import Foundation

/// The built-in multi-task benchmark (DESIGN §4): six task families with different answer styles,
/// programmatic gold scorers and simulated annotators. Five families go through the whole method; the
/// `fact` family appears only in SFT data, as a probe of forgetting.
public enum Benchmark {
    public static let families: [any TaskFamily] = [ArithmeticQA(), CodeGeneration(), Sorting(), ReverseWord(), Counting(), CapitalFacts()]
    /// The families of preference and PPO prompts.
    public static var rlFamilies: [any TaskFamily] { families.filter(\.inRL) }

    public static func family(_ name: String) -> (any TaskFamily)? { families.first { $0.name == name } }

    /// Gold score of a response: by the named task when given, else by whichever family recognises
    /// the prompt; nil when none does.
    public static func gold(prompt: String, response: String, task: String? = nil) -> Double? {
        if let task, let f = family(task) { return f.gold(prompt: prompt, response: response) }
        for f in families { if let g = f.gold(prompt: prompt, response: response) { return g } }
        return nil
    }

    /// `count` examples cycling through `families`, deterministic for `seed`; ids are "task-split-i".
    /// Completions are expert responses in the styles of `Verbosity` (mostly terse).
    public static func examples(count: Int, seed: UInt64, split: String, families: [any TaskFamily] = Benchmark.families) -> [SFTExample] {
        var rng = SeededRNG(seed: seed)
        return (0..<count).map { i in
            let f = families[i % families.count]
            let p = f.problem(&rng)
            return SFTExample(prompt: p.prompt, completion: Verbosity.styled(answer: p.answer, explanation: p.explanation, rng: &rng),
                              task: f.name, id: "\(f.name)-\(split)-\(i)")
        }
    }

    public struct Sizes: Sendable {
        public var sftTrain = 12000, sftTest = 600, rlPrompts = 3000, testPrompts = 600, forget = 600
        public var prefPrompts = 3000, prefTestPrompts = 600
        /// Write the sets in TRL's conversational form: SFT examples as {"messages": [user, assistant]},
        /// prompts as {"prompt": [user]} (for a model with a chat template).
        public var conversational = false
        public init() {}
    }

    /// Writes the benchmark's datasets into `dir`: sft_train.jsonl and sft_test.jsonl (every family,
    /// {"prompt","completion","task","id"}); prompt sets of the RL families ({"prompt","task","id"}):
    /// rl_prompts.jsonl (PPO), test_prompts.jsonl (policy evaluation), pref_prompts.jsonl and
    /// pref_test_prompts.jsonl (labelled into reward-model training and evaluation pairs),
    /// forget_candidates.jsonl (from which the expert-aligned forget set is kept: the prompts the SFT
    /// model answers with gold ≥ 0.95); and forget_sft_only.jsonl, prompts of the SFT-only families.
    /// Each split comes from its own seed stream.
    public static func writeDatasets(to dir: String, seed: UInt64, sizes: Sizes = Sizes()) throws -> [String: Int] {
        let sftOnly = families.filter { !$0.inRL }
        let splits: [(String, Int, Bool, [any TaskFamily])] = [
            ("sft_train", sizes.sftTrain, true, families), ("sft_test", sizes.sftTest, true, families),
            ("rl_prompts", sizes.rlPrompts, false, rlFamilies), ("test_prompts", sizes.testPrompts, false, rlFamilies),
            ("forget_candidates", sizes.forget, false, rlFamilies), ("pref_prompts", sizes.prefPrompts, false, rlFamilies),
            ("pref_test_prompts", sizes.prefTestPrompts, false, rlFamilies),
            ("forget_sft_only", sftOnly.isEmpty ? 0 : max(sizes.forget / rlFamilies.count, 1), false, sftOnly)]
        var written: [String: Int] = [:]
        for (k, (name, n, withCompletion, fams)) in splits.enumerated() where !fams.isEmpty {
            let rows = examples(count: n, seed: seed &* 1_000_003 &+ UInt64(k + 1), split: name, families: fams)
            let path = dir + "/\(name).jsonl"
            let user = { (row: SFTExample) in sizes.conversational ? [ChatMessage(role: "user", content: row.prompt)] : nil }
            if withCompletion {
                try JSONL.write(rows.map { r in
                    var c = r
                    c.messages = user(r).map { $0 + [ChatMessage(role: "assistant", content: r.completion)] }
                    return c
                }, to: path)
            } else {
                try JSONL.write(rows.map { PromptRecord(prompt: $0.prompt, task: $0.task!, id: $0.id!, messages: user($0)) }, to: path)
            }
            written[name] = n
        }
        return written
    }
}

/// Simulated annotator (AlpacaFarm-style): Bradley–Terry on the difference of the answers' quality
/// (the answer line's score, `TaskFamily.score`) with the task's noise τ, plus a documented preference
/// for longer responses:
///   z = (s_a − s_b)/τ_task + β·(len_a − len_b)/10   (len in characters),
/// P(a ≻ b) = σ(z). The annotators judge correctness and are swayed by length, but do not see the
/// verbosity cost the gold charges (`Verbosity.penalty`): that is the gap between labels and gold that
/// PPO on their reward model can exploit (β = 0 is the control). A comparison with |z| < `tieMargin`
/// is declared a tie (dropped by the pair builder and counted); with probability `flipRate` the
/// annotator's choice is flipped.
public struct Annotator: Sendable {
    /// β, per 10 characters of length difference (0 = no length bias: the control).
    public var lengthBias: Double
    public var tieMargin: Double
    public var flipRate: Double
    public init(lengthBias: Double = 0, tieMargin: Double = 0, flipRate: Double = 0) {
        self.lengthBias = lengthBias
        self.tieMargin = tieMargin
        self.flipRate = flipRate
    }

    /// The preference logit z of `first` over `second`.
    public func logit(task: any TaskFamily, prompt: String, first: String, second: String) -> Double {
        let sa = task.score(prompt: prompt, answer: Text.firstLine(first)) ?? 0
        let sb = task.score(prompt: prompt, answer: Text.firstLine(second)) ?? 0
        return (sa - sb) / task.annotatorNoise + lengthBias * Double(first.count - second.count) / 10
    }

    /// P(first is chosen), flips included.
    public func probabilityFirstWins(task: any TaskFamily, prompt: String, first: String, second: String) -> Double {
        let p = 1 / (1 + exp(-logit(task: task, prompt: prompt, first: first, second: second)))
        return (1 - flipRate) * p + flipRate * (1 - p)
    }

    public enum Judgement: Equatable {
        case tie
        /// chosen, rejected, and the probability of this choice.
        case preferred(chosen: String, rejected: String, probability: Double)
    }

    public func judge(task: any TaskFamily, prompt: String, _ a: String, _ b: String, rng: inout SeededRNG) -> Judgement {
        if abs(logit(task: task, prompt: prompt, first: a, second: b)) < tieMargin { return .tie }
        let p = probabilityFirstWins(task: task, prompt: prompt, first: a, second: b)
        return rng.nextDouble() < p ? .preferred(chosen: a, rejected: b, probability: p) : .preferred(chosen: b, rejected: a, probability: 1 - p)
    }

    /// Returns (chosen, rejected); a tie is decided by a coin.
    public func choose(task: any TaskFamily, prompt: String, _ a: String, _ b: String, rng: inout SeededRNG) -> (String, String) {
        rng.nextDouble() < probabilityFirstWins(task: task, prompt: prompt, first: a, second: b) ? (a, b) : (b, a)
    }
}
