import BallastBenchmark
import BallastData
import BallastKernels
import BallastModel
import Foundation

/// Builds preference pairs the way real pipelines do: sample K responses per prompt from a policy,
/// pair them (1st with 2nd, 3rd with 4th, …), and let the task's simulated annotator choose.
public struct PreferenceLabeler {
    public var samplesPerPrompt = 4
    public var sampling = SamplingOptions(temperature: 1, maxNewTokens: 32)
    public var annotator = Annotator()
    public var batchPrompts = 16
    public var seed: UInt64 = 0

    public init() {}

    public struct Result {
        public var pairs: [PreferencePair]
        /// Pairs skipped because both responses were identical.
        public var identical: Int
        public var meanGold: [String: Double]
    }

    /// `progress(done, total)` is called after each batch of prompts.
    public func label(policy: GPT, prompts: [PromptRecord], progress: (Int, Int) -> Void = { _, _ in }) throws -> Result {
        precondition(samplesPerPrompt >= 2 && samplesPerPrompt % 2 == 0, "samples per prompt must be even and >= 2")
        let tok = ByteTokenizer()
        let gen = Generator(model: policy)
        var rng = SeededRNG(seed: seed ^ 0x1AB)
        var pairs: [PreferencePair] = []
        var identical = 0
        var goldSum: [String: Double] = [:], goldCount: [String: Int] = [:]
        var start = 0
        while start < prompts.count {
            let chunk = Array(prompts[start..<min(start + batchPrompts, prompts.count)])
            var ids: [[Int32]] = []
            for p in chunk {
                guard Benchmark.family(p.task) != nil else {
                    throw DatasetError(file: "prompts", line: 0, problem: "unknown task \"\(p.task)\" for prompt id \(p.id) (the annotator is per benchmark task)")
                }
                let x = [ByteTokenizer.bos] + tok.encode(p.prompt)
                ids.append(contentsOf: Array(repeating: x, count: samplesPerPrompt))
            }
            var opts = sampling
            opts.seed = seed &+ UInt64(start)
            opts.maxNewTokens = min(opts.maxNewTokens, policy.config.nPositions - (ids.map(\.count).max() ?? 0))
            let gens = try gen.generate(prompts: ids, options: opts)
            for (i, p) in chunk.enumerated() {
                let fam = Benchmark.family(p.task)!
                let texts = (0..<samplesPerPrompt).map { k in
                    tok.decode(gens[i * samplesPerPrompt + k].outputIds.filter { $0 != ByteTokenizer.eos })
                }
                for t in texts {
                    goldSum[p.task, default: 0] += fam.gold(prompt: p.prompt, response: t) ?? 0
                    goldCount[p.task, default: 0] += 1
                }
                for k in stride(from: 0, to: samplesPerPrompt, by: 2) {
                    if texts[k] == texts[k + 1] { identical += 1; continue }
                    let (c, r) = annotator.choose(task: fam, prompt: p.prompt, texts[k], texts[k + 1], rng: &rng)
                    pairs.append(PreferencePair(prompt: p.prompt, chosen: c, rejected: r, task: p.task, id: "\(p.id)-\(k / 2)"))
                }
            }
            start += chunk.count
            progress(start, prompts.count)
        }
        return Result(pairs: pairs, identical: identical,
                      meanGold: Dictionary(uniqueKeysWithValues: goldSum.map { ($0.key, $0.value / Double(goldCount[$0.key]!)) }))
    }

    /// Reads {"prompt","task","id"} JSONL (prompts of the built-in benchmark or the user's own).
    public static func readPrompts(_ path: String) throws -> [PromptRecord] {
        try JSONL.readObjects(path).map { line, obj in
            guard let p = obj["prompt"] as? String else { throw DatasetError(file: path, line: line, problem: "missing string field \"prompt\"") }
            guard let t = obj["task"] as? String else { throw DatasetError(file: path, line: line, problem: "missing string field \"task\" (the annotator is per task)") }
            return PromptRecord(prompt: p, task: t, id: (obj["id"] as? String) ?? "\(line)")
        }
    }
}
