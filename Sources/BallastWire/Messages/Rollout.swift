import BallastFormats
import Foundation

/// Kind `rollout`, actor → learner (PUSH/PULL): one leased batch of sampled responses with what the
/// PPO update needs. Ragged rows travel flattened with offset tensors:
///
/// tensors `tokens` I32 [Σ len] (prompt + response per row), `token_offsets` I64 [n+1],
/// `prompt_tokens` I32 [n], `logp`, `ref_logp`, `values` F64 [Σ response len], `response_offsets`
/// I64 [n+1], `scores`, `gold` F64 [n], `prompt_ids` I64 [n] (the prompt file index of each row);
/// metadata `tasks` (JSON array of n strings), `epoch`, `lease`, `actor`. The envelope carries the
/// policy version that sampled the rows.
public struct RolloutMessage: WireMessage, Equatable {
    public static let kind = MessageKind.rollout
    public var policyVersion: UInt64
    public var sequences: [[Int32]]
    public var promptTokens: [Int]
    /// Per response token: log-prob under the sampling policy and the reference, the critic's value.
    public var logp: [[Double]], refLogp: [[Double]], values: [[Double]]
    public var scores: [Double], gold: [Double]
    public var tasks: [String]
    public var promptIDs: [Int]
    public var epoch: Int, lease: Int
    public var actor: String

    public init(policyVersion: UInt64, sequences: [[Int32]], promptTokens: [Int], logp: [[Double]], refLogp: [[Double]], values: [[Double]],
                scores: [Double], gold: [Double], tasks: [String], promptIDs: [Int], epoch: Int, lease: Int, actor: String) {
        self.policyVersion = policyVersion
        self.sequences = sequences
        self.promptTokens = promptTokens
        self.logp = logp
        self.refLogp = refLogp
        self.values = values
        self.scores = scores
        self.gold = gold
        self.tasks = tasks
        self.promptIDs = promptIDs
        self.epoch = epoch
        self.lease = lease
        self.actor = actor
    }

    public var rows: Int { scores.count }

    public var payload: WirePayload {
        // Each ragged field is written row by row straight into its tensor's bytes (one copy).
        func flat<T: BitwiseCopyable>(_ rows: [[T]], _ dtype: DType) -> TensorData {
            let total = rows.reduce(0) { $0 + $1.count }
            var d = Data(capacity: total * MemoryLayout<T>.stride)
            for row in rows { row.withUnsafeBytes { d.append(contentsOf: $0) } }
            return TensorData(dtype: dtype, shape: [total], bytes: d)
        }
        func f64(_ xs: [Double]) -> TensorData { TensorData(dtype: .f64, shape: [xs.count], bytes: xs.withUnsafeBufferPointer { Data(buffer: $0) }) }
        func offsets(_ lengths: [Int]) -> [Int] { lengths.reduce(into: [0]) { $0.append($0.last! + $1) } }
        var tasksJSON: [UInt8] = []
        try? JSONText.append(tasks, to: &tasksJSON)
        return WirePayload(tensors: [
            ("tokens", flat(sequences, .i32)),
            ("token_offsets", TensorData(int64s: offsets(sequences.map(\.count)))),
            ("prompt_tokens", TensorData(int32s: promptTokens.map(Int32.init), shape: [promptTokens.count])),
            ("logp", flat(logp, .f64)),
            ("ref_logp", flat(refLogp, .f64)),
            ("values", flat(values, .f64)),
            ("response_offsets", TensorData(int64s: offsets(logp.map(\.count)))),
            ("scores", f64(scores)),
            ("gold", f64(gold)),
            ("prompt_ids", TensorData(int64s: promptIDs)),
        ], metadata: ["tasks": String(decoding: tasksJSON, as: UTF8.self), "epoch": "\(epoch)", "lease": "\(lease)", "actor": actor])
    }

    /// Checks that every array agrees with the offsets and the row count.
    public init(policyVersion: UInt64, payload: WirePayload) throws {
        let r = payload.reader("rollout")
        func need(_ name: String, _ dtype: DType) throws -> TensorData {
            let x = try r.tensor(name)
            guard x.dtype == dtype, x.shape.count == 1 else { throw r.fail(name, "must be a 1-D \(dtype.rawValue) tensor") }
            return x
        }
        let tokens = try need("tokens", .i32), logp = try need("logp", .f64), ref = try need("ref_logp", .f64), values = try need("values", .f64)
        let tokOff = try r.int64s("token_offsets"), respOff = try r.int64s("response_offsets")
        let scores = try need("scores", .f64).elements(Double.self), gold = try need("gold", .f64).elements(Double.self)
        let prompt = try need("prompt_tokens", .i32).elements(Int32.self), ids = try r.int64s("prompt_ids")
        let n = scores.count
        guard n > 0 else { throw r.fail("scores", "is empty: a rollout holds at least one row") }
        func valid(_ off: [Int], _ total: Int) -> Bool {
            off.count == n + 1 && off.first == 0 && off.last == total && zip(off, off.dropFirst()).allSatisfy { $0 <= $1 }
        }
        let responseTokens = logp.shape[0]
        guard valid(tokOff, tokens.shape[0]), valid(respOff, responseTokens), ref.shape[0] == responseTokens, values.shape[0] == responseTokens,
              gold.count == n, prompt.count == n, ids.count == n else {
            throw WireError.payload("rollout: array lengths disagree with the offsets")
        }
        let taskList: [String]? = r.optional("tasks").flatMap { text in
            guard case .array(let items)? = try? JSONText.parse(Data(text.utf8)) else { return nil }
            let names = items.compactMap { if case .string(let s) = $0 { s } else { nil } }
            return names.count == items.count ? names : nil
        }
        guard let tasks = taskList, tasks.count == n else { throw r.fail("tasks", "must be a JSON array of \(n) strings") }
        // NaN or infinite log-probs, values or scores would poison the update and then the saved weights;
        // a gold of NaN means "no gold score" and passes.
        func rows<T: BitwiseCopyable>(_ t: TensorData, _ off: [Int], _: T.Type) -> [[T]] {
            (0..<n).map { t.elements(T.self, from: off[$0], count: off[$0 + 1] - off[$0]) }
        }
        let logpRows = rows(logp, respOff, Double.self), refRows = rows(ref, respOff, Double.self), valueRows = rows(values, respOff, Double.self)
        for (name, xs) in [("logp", logpRows), ("ref_logp", refRows), ("values", valueRows), ("scores", [scores]), ("gold", [gold.filter { !$0.isNaN }])] {
            for row in xs { if let x = row.first(where: { !$0.isFinite }) { throw r.fail(name, "holds a non-finite number: \(x)") } }
        }
        let seqs = rows(tokens, tokOff, Int32.self)
        for i in 0..<n {
            let response = respOff[i + 1] - respOff[i]
            guard prompt[i] >= 1, response >= 1, Int(prompt[i]) + response == seqs[i].count else {
                throw WireError.payload("rollout: row \(i): a prompt of \(prompt[i]) and a response of \(response) tokens "
                                        + "(each at least 1) do not make its \(seqs[i].count)-token sequence")
            }
        }
        guard policyVersion <= UInt64(Int.max) else { throw r.fail("policy_version", "is out of range: \(policyVersion)") }
        self.init(policyVersion: policyVersion, sequences: seqs, promptTokens: prompt.map(Int.init), logp: logpRows,
                  refLogp: refRows, values: valueRows, scores: scores, gold: gold, tasks: tasks, promptIDs: ids,
                  epoch: try r.int("epoch"), lease: try r.int("lease"), actor: try r.string("actor"))
    }
}
