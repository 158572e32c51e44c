import BallastData
import BallastKernels
import Foundation

/// A prompt of the benchmark, with its task and id.
public struct PromptRecord: Codable, Sendable, Equatable {
    public var prompt: String
    public var task: String
    public var id: String
    public init(prompt: String, task: String, id: String) {
        self.prompt = prompt
        self.task = task
        self.id = id
    }
}

/// A preference pair in TRL's convention.
public struct PreferencePair: Codable, Sendable, Equatable {
    public var prompt: String
    public var chosen: String
    public var rejected: String
    public var task: String?
    public var id: String?
    public init(prompt: String, chosen: String, rejected: String, task: String?, id: String?) {
        self.prompt = prompt
        self.chosen = chosen
        self.rejected = rejected
        self.task = task
        self.id = id
    }
}

/// The built-in multi-task benchmark (DESIGN §4): six task families with different answer styles,
/// programmatic gold scorers and simulated annotators.
public enum Benchmark {
    public static let families: [any TaskFamily] = [ArithmeticQA(), CodeGeneration(), Sorting(), ReverseWord(), Counting(), CapitalFacts()]

    public static func family(_ name: String) -> (any TaskFamily)? { families.first { $0.name == name } }

    /// Gold score of a response: by the named task when given, else by whichever family recognises
    /// the prompt; nil when none does.
    public static func gold(prompt: String, response: String, task: String? = nil) -> Double? {
        if let task, let f = family(task) { return f.gold(prompt: prompt, response: response) }
        for f in families { if let g = f.gold(prompt: prompt, response: response) { return g } }
        return nil
    }

    /// `count` examples cycling through the families, deterministic for `seed`; ids are "task-split-i".
    public static func examples(count: Int, seed: UInt64, split: String) -> [SFTExample] {
        var rng = SeededRNG(seed: seed)
        return (0..<count).map { i in
            let f = families[i % families.count]
            let (p, e) = f.sample(&rng)
            return SFTExample(prompt: p, completion: e, task: f.name, id: "\(f.name)-\(split)-\(i)")
        }
    }

    public struct Sizes: Sendable {
        public var sftTrain = 12000, sftTest = 600, rlPrompts = 3000, testPrompts = 600, forget = 600
        public var prefPrompts = 3000, prefTestPrompts = 600
        public init() {}
    }

    /// Writes the benchmark's datasets into `dir`: sft_train.jsonl and sft_test.jsonl
    /// ({"prompt","completion","task","id"}); prompt sets ({"prompt","task","id"}) rl_prompts.jsonl (PPO),
    /// test_prompts.jsonl (policy evaluation), pref_prompts.jsonl and pref_test_prompts.jsonl (to be
    /// labelled into reward-model training and evaluation pairs); forget.jsonl (held-out expert-aligned
    /// examples). Each split comes from its own seed stream.
    public static func writeDatasets(to dir: String, seed: UInt64, sizes: Sizes = Sizes()) throws -> [String: Int] {
        let splits: [(String, Int, Bool)] = [("sft_train", sizes.sftTrain, true), ("sft_test", sizes.sftTest, true),
                                             ("rl_prompts", sizes.rlPrompts, false), ("test_prompts", sizes.testPrompts, false),
                                             ("forget", sizes.forget, true), ("pref_prompts", sizes.prefPrompts, false),
                                             ("pref_test_prompts", sizes.prefTestPrompts, false)]
        var written: [String: Int] = [:]
        for (k, (name, n, withCompletion)) in splits.enumerated() {
            let rows = examples(count: n, seed: seed &* 1_000_003 &+ UInt64(k + 1), split: name)
            let path = dir + "/\(name).jsonl"
            if withCompletion {
                try JSONL.write(rows, to: path)
            } else {
                try JSONL.write(rows.map { PromptRecord(prompt: $0.prompt, task: $0.task!, id: $0.id!) }, to: path)
            }
            written[name] = n
        }
        return written
    }
}

/// Simulated annotator: Bradley–Terry on the gold difference with the task's noise, plus an optional
/// documented bias towards longer responses: P(a ≻ b) = σ((g_a − g_b)/τ_task + β·(len_a − len_b)/10).
public struct Annotator: Sendable {
    /// β, per 10 characters of length difference (0 = no length bias).
    public var lengthBias: Double
    public init(lengthBias: Double = 0) { self.lengthBias = lengthBias }

    public func probabilityFirstWins(task: any TaskFamily, prompt: String, first: String, second: String) -> Double {
        let ga = task.gold(prompt: prompt, response: first) ?? 0, gb = task.gold(prompt: prompt, response: second) ?? 0
        let z = (ga - gb) / task.annotatorNoise + lengthBias * Double(first.count - second.count) / 10
        return 1 / (1 + exp(-z))
    }

    /// Returns (chosen, rejected).
    public func choose(task: any TaskFamily, prompt: String, _ a: String, _ b: String, rng: inout SeededRNG) -> (String, String) {
        rng.nextDouble() < probabilityFirstWins(task: task, prompt: prompt, first: a, second: b) ? (a, b) : (b, a)
    }
}
