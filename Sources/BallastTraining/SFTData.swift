import BallastData
import BallastKernels
import BallastModel
import BallastRandom
import Foundation

/// A tokenised SFT example: prompt then completion and its end token (the byte tokenizer's
/// [BOS] prompt completion [EOS]), the loss on the completion; or a whole conversation, the loss on its
/// assistant turns.
public struct EncodedExample: Sendable {
    public let tokens: [Int32]
    /// Number of leading tokens before the first trained one.
    public let promptTokens: Int
    /// Per token, whether it is trained on (predicted); nil: every token from `promptTokens` on.
    public let trained: [Float]?

    public init(tokens: [Int32], promptTokens: Int, trained: [Float]? = nil) {
        self.tokens = tokens
        self.promptTokens = promptTokens
        self.trained = trained
    }
}

public enum SFTEncoding {
    /// `e` through the model's codec: a conversation by its chat template (assistant turns trained), a
    /// prompt/completion pair as prompt ids then response ids.
    public static func encode(_ e: SFTExample, codec: TextCodec) throws -> EncodedExample {
        if let messages = e.messages {
            let (ids, assistant) = try codec.conversation(messages)
            return EncodedExample(tokens: ids, promptTokens: assistant.firstIndex(of: 1) ?? ids.count, trained: assistant)
        }
        let p = try codec.promptIds(e.prompt)
        return EncodedExample(tokens: p + codec.responseIds(e.completion), promptTokens: p.count)
    }

    /// Packed batch (no padding) with next-token targets; `lossMask` is 1 where the target is a completion token.
    public static func batch(_ examples: [EncodedExample]) -> (TokenBatch, targets: [Int32], lossMask: [Float]) {
        let batch = TokenBatch.packed(examples.map(\.tokens))
        var targets = [Int32](repeating: -1, count: batch.tokens.count)
        var lossMask = [Float](repeating: 0, count: batch.tokens.count)
        for (r, e) in examples.enumerated() {
            let start = batch.start(ofRow: r)
            for i in 0..<(e.tokens.count - 1) {
                targets[start + i] = e.tokens[i + 1]
                if let trained = e.trained { lossMask[start + i] = trained[i + 1] } else if i + 1 >= e.promptTokens { lossMask[start + i] = 1 }
            }
        }
        return (batch, targets, lossMask)
    }

    /// Loads a dataset ("builtin" or a JSONL path), dropping examples longer than `maxLength` tokens.
    public static func load(_ source: String, builtinCount: Int, seed: UInt64, maxLength: Int,
                            codec: TextCodec) throws -> (raw: [SFTExample], encoded: [EncodedExample], dropped: Int) {
        let raw = source == "builtin" ? BuiltinSFT.generate(count: builtinCount, seed: seed) : try SFTExample.read(source)
        var kept: [SFTExample] = [], enc: [EncodedExample] = []
        for (k, e) in raw.enumerated() {
            let x: EncodedExample
            do { x = try encode(e, codec: codec) } catch { throw DatasetError(file: source, line: k + 1, problem: "\(error)") }
            if x.tokens.count <= maxLength {
                kept.append(e)
                enc.append(x)
            }
        }
        if enc.isEmpty {
            throw DatasetError(file: source, line: 0, problem: "no example fits in max_length \(maxLength) tokens")
        }
        return (kept, enc, raw.count - enc.count)
    }
}

/// Deterministic epoch order: a fresh permutation per epoch from (seed, epoch), so a resumed run sees
/// the same sequence of batches as an uninterrupted one.
public struct EpochSampler: Sendable {
    /// Batches of rows of similar length (what `transformers`' `group_by_length` does): each epoch's
    /// shuffled order is cut into windows of `window` batches of `batch`; each window is sorted by
    /// length, cut into batches and the batches shuffled. Written when batches were padded (it raised
    /// the real-token share from about half to 85–96%); batches are now packed, so it only changes
    /// which examples train together, which the recipes' results were measured with.
    public struct LengthGrouping: Sendable {
        public var lengths: [Int]
        public var batch: Int
        public var window: Int
        public init(lengths: [Int], batch: Int, window: Int = 32) {
            self.lengths = lengths
            self.batch = max(1, batch)
            self.window = max(1, window)
        }
    }

    public let count: Int
    public let seed: UInt64
    public let grouping: LengthGrouping?
    public private(set) var epoch: Int
    public private(set) var cursor: Int
    private var order: [Int]

    /// The order depends only on (seed, epoch, grouping), so a resumed sampler continues exactly.
    public init(count: Int, seed: UInt64, epoch: Int = 0, cursor: Int = 0, grouping: LengthGrouping? = nil) {
        precondition(grouping.map { $0.lengths.count == count } ?? true, "one length per row")
        self.count = count
        self.seed = seed
        self.grouping = grouping
        self.epoch = epoch
        self.cursor = cursor
        order = EpochSampler.permutation(count, seed: seed, epoch: epoch, grouping: grouping)
    }

    static func permutation(_ n: Int, seed: UInt64, epoch: Int, grouping: LengthGrouping? = nil) -> [Int] {
        var rng = SeededRNG(seed: seed &* 0x9E37_79B9 &+ UInt64(epoch))
        var p = Array(0..<n)
        for i in stride(from: n - 1, to: 0, by: -1) {
            p.swapAt(i, Int(rng.next() % UInt64(i + 1)))
        }
        guard let g = grouping else { return p }
        var grouped: [Int] = []
        grouped.reserveCapacity(n)
        let span = g.batch * g.window
        for start in stride(from: 0, to: n, by: span) {
            let window = p[start..<min(start + span, n)].sorted { (g.lengths[$0], $0) < (g.lengths[$1], $1) }
            var batches = stride(from: 0, to: window.count, by: g.batch).map { Array(window[$0..<min($0 + g.batch, window.count)]) }
            for i in stride(from: batches.count - 1, to: 0, by: -1) {
                batches.swapAt(i, Int(rng.next() % UInt64(i + 1)))
            }
            grouped += batches.joined()
        }
        return grouped
    }

    public mutating func next(_ k: Int) -> [Int] {
        var out: [Int] = []
        while out.count < k {
            if cursor == count {
                epoch += 1
                cursor = 0
                order = EpochSampler.permutation(count, seed: seed, epoch: epoch, grouping: grouping)
            }
            out.append(order[cursor])
            cursor += 1
        }
        return out
    }
}
