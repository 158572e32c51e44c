import BallastData
import BallastKernels
import Foundation

/// Per-position views of a batch of sequences.
public enum SequenceBatch {
    /// The sequences packed end to end (no padding); index outputs with `start(ofRow:)`.
    public static func make(_ seqs: [[Int32]]) -> TokenBatch { TokenBatch.packed(seqs) }

    /// log π(target) from the logits row `row` of a [rows, v] buffer.
    public static func logProb(_ logits: UnsafeBufferPointer<Float>, row: Int, v: Int, target: Int32) -> Double {
        let base = logits.baseAddress! + row * v
        return Double(base[Int(target)] - Softmax.logSumExp(base, v))
    }
}

/// Where a scorer keeps its scalar heads and how they combine into one score per response: the reward r
/// (`score`, read at the response's last token) and, for an Advantage Model, the expected reward e
/// (`expected_reward_head`) and log-scale z (`advantage_scale_head`) of its prompt (read at the prompt's
/// last token), giving a = (r − e) / exp(z), or a = r − e without a scale head.
public struct ScoreHeads: Sendable, Equatable {
    public static let names = (reward: "score", expected: "expected_reward_head", logScale: "advantage_scale_head")
    /// z is clamped to ±this when a is formed, so that no prompt scales its advantage by more than e⁴.
    public static let logScaleLimit = 4.0

    public let reward: Int
    public let expected: Int?
    public let logScale: Int?
    /// Heads per position in `headOutputs`.
    public let stride: Int

    /// nil when the model has no `score` head.
    public init?(_ config: GPTConfig) {
        guard let r = config.scalarHeads.firstIndex(of: Self.names.reward) else { return nil }
        reward = r
        expected = config.scalarHeads.firstIndex(of: Self.names.expected)
        logScale = expected == nil ? nil : config.scalarHeads.firstIndex(of: Self.names.logScale)
        stride = config.scalarHeads.count
    }

    /// The head list of a reward model, an unscaled and a scaled Advantage Model.
    public static func list(advantage: Bool, scaled: Bool) -> [String] {
        advantage ? [names.reward, names.expected] + (scaled ? [names.logScale] : []) : [names.reward]
    }

    /// What `score` returns, for logs.
    public var formula: String { expected == nil ? "reward r" : logScale == nil ? "advantage a = r - e" : "advantage a = (r - e) / exp(z)" }

    @inline(__always) public static func advantage(reward r: Double, expected e: Double, logScale z: Double?) -> Double {
        guard let z else { return r - e }
        return (r - e) * exp(-min(max(z, -logScaleLimit), logScaleLimit))
    }

    /// The prompt's part of the score: e and z at flat position `promptLast` (zeros and nil for a reward model).
    public func baseline(_ out: UnsafeBufferPointer<Float>, promptLast: Int) -> (expected: Double, logScale: Double?) {
        (expected.map { Double(out[promptLast * stride + $0]) } ?? 0, logScale.map { Double(out[promptLast * stride + $0]) })
    }

    /// r, or a for an Advantage Model, of the response ending at flat position `last` whose prompt ends at `promptLast`.
    public func score(_ out: UnsafeBufferPointer<Float>, last: Int, promptLast: Int) -> Double {
        let r = Double(out[last * stride + reward])
        guard expected != nil else { return r }
        let (e, z) = baseline(out, promptLast: promptLast)
        return Self.advantage(reward: r, expected: e, logScale: z)
    }
}

public enum Scoring {
    /// r at each sequence's last token or, for an Advantage Model, a (see `ScoreHeads`).
    public static func sequenceScores(_ scorer: GPT, sequences: [[Int32]], promptTokens: [Int], batchSize: Int = 32) -> [Double] {
        let heads = ScoreHeads(scorer.config)!
        var out: [Double] = []
        var start = 0
        while start < sequences.count {
            let chunk = Array(sequences[start..<min(start + batchSize, sequences.count)])
            let batch = SequenceBatch.make(chunk)
            scorer.forward(batch, computeLogits: false, inferenceOnly: true)
            for (k, s) in chunk.enumerated() {
                let row = batch.start(ofRow: k)
                out.append(heads.score(scorer.headOutputs, last: row + s.count - 1, promptLast: row + promptTokens[start + k] - 1))
            }
            start += chunk.count
        }
        return out
    }
}
