import BallastBenchmark
import BallastData
import BallastModel
import Foundation

/// A preference pair tokenised as two sequences, prompt then response and its end token (the byte
/// tokenizer's [BOS] prompt response [EOS]).
public struct EncodedPair: Sendable {
    public let chosen: [Int32]
    public let rejected: [Int32]
    /// BOS + prompt tokens; the prompt's last token is at index promptTokens − 1.
    public let promptTokens: Int
    public let task: String
}

public enum PreferenceData {
    /// Each response after the prompt, as the model's codec encodes them (and as generation produces them).
    public static func encode(_ p: PreferencePair, codec: TextCodec) throws -> EncodedPair {
        let prompt = try codec.promptIds(text: p.prompt, messages: p.promptMessages)
        return EncodedPair(chosen: prompt + codec.responseIds(p.chosen), rejected: prompt + codec.responseIds(p.rejected),
                           promptTokens: prompt.count, task: p.task ?? "default")
    }

    /// Rows 0..<B are the chosen sequences, B..<2B the rejected ones, packed. `last[i]` is the
    /// token row of sequence i's last token (EOS, where scores are read, as
    /// GPT2ForSequenceClassification does); `promptLast[i]` of its last prompt token.
    public static func batch(_ pairs: [EncodedPair]) -> (TokenBatch, last: [Int], promptLast: [Int]) {
        let seqs = pairs.map(\.chosen) + pairs.map(\.rejected)
        let batch = TokenBatch.packed(seqs)
        let last = seqs.indices.map { batch.start(ofRow: $0) + seqs[$0].count - 1 }
        let promptLast = seqs.indices.map { batch.start(ofRow: $0) + pairs[$0 % pairs.count].promptTokens - 1 }
        return (batch, last, promptLast)
    }

    /// Loads and encodes a preference file, dropping pairs longer than `maxLength` tokens.
    public static func load(_ path: String, maxLength: Int, codec: TextCodec) throws -> (raw: [PreferencePair], encoded: [EncodedPair], dropped: Int) {
        var raw: [PreferencePair] = [], enc: [EncodedPair] = []
        let all = try PreferencePair.read(path)
        for (k, p) in all.enumerated() {
            let e: EncodedPair
            do { e = try encode(p, codec: codec) } catch { throw DatasetError(file: path, line: k + 1, problem: "\(error)") }
            if max(e.chosen.count, e.rejected.count) <= maxLength {
                raw.append(p)
                enc.append(e)
            }
        }
        if enc.isEmpty { throw DatasetError(file: path, line: 0, problem: "no pair fits in max_length \(maxLength) tokens") }
        return (raw, enc, all.count - enc.count)
    }
}

/// Scores of chosen and rejected responses under a model's scalar head `head` (read at EOS) and, for an
/// Advantage Model, their advantages a (see `ScoreHeads`; a ranks within a pair exactly as r does).
public enum PreferenceScorer {
    public struct Scores {
        public var chosen: [Double] = [], rejected: [Double] = []
        /// a of chosen and rejected; empty unless the model has an expected-reward head.
        public var advantageChosen: [Double] = [], advantageRejected: [Double] = []
    }

    public static func score(_ model: GPT, _ pairs: [EncodedPair], head: Int = 0, batchSize: Int = 32) -> Scores {
        var s = Scores()
        let heads = ScoreHeads(model.config).flatMap { $0.expected == nil ? nil : $0 }
        let h = model.config.scalarHeads.count
        var i = 0
        while i < pairs.count {
            let chunk = Array(pairs[i..<min(i + batchSize, pairs.count)])
            i += chunk.count
            let (batch, last, promptLast) = PreferenceData.batch(chunk)
            model.forward(batch, computeLogits: false, inferenceOnly: true)
            let out = model.headOutputs
            for k in 0..<chunk.count {
                let rc = Double(out[last[k] * h + head]), rr = Double(out[last[chunk.count + k] * h + head])
                s.chosen.append(rc)
                s.rejected.append(rr)
                if let heads {
                    let (e, z) = heads.baseline(out, promptLast: promptLast[k])
                    s.advantageChosen.append(ScoreHeads.advantage(reward: rc, expected: e, logScale: z))
                    s.advantageRejected.append(ScoreHeads.advantage(reward: rr, expected: e, logScale: z))
                }
            }
        }
        return s
    }
}
