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

public enum Scoring {
    /// r at each sequence's last token, minus e at its last prompt token when the model has an
    /// expected-reward head (the Advantage Model's a = r − e).
    public static func sequenceScores(_ scorer: GPT, sequences: [[Int32]], promptTokens: [Int], batchSize: Int = 32) -> [Double] {
        let hr = scorer.config.scalarHeads.firstIndex(of: "score")!, he = scorer.config.scalarHeads.firstIndex(of: "expected_reward_head")
        let h = scorer.config.scalarHeads.count
        var out: [Double] = []
        var start = 0
        while start < sequences.count {
            let chunk = Array(sequences[start..<min(start + batchSize, sequences.count)])
            let batch = SequenceBatch.make(chunk)
            scorer.forward(batch, computeLogits: false, inferenceOnly: true)
            for (k, s) in chunk.enumerated() {
                let r = Double(scorer.headOutputs[(batch.start(ofRow: k) + s.count - 1) * h + hr])
                let e = he.map { Double(scorer.headOutputs[(batch.start(ofRow: k) + promptTokens[start + k] - 1) * h + $0]) } ?? 0
                out.append(r - e)
            }
            start += chunk.count
        }
        return out
    }
}
