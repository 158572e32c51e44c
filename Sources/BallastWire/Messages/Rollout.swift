import BallastFormats
import Foundation

/// Kind `rollout`, actor → learner (PUSH/PULL): one leased batch of sampled responses with what the
/// PPO update needs. Ragged rows are held and sent as columns: each field flattened over all rows,
/// with offset tensors marking where each row starts, so that encoding and decoding a message are a
/// few bulk copies rather than one per row and field:
///
/// tensors `tokens` I32 [Σ len] (prompt + response per row), `token_offsets` I64 [n+1],
/// `prompt_tokens` I32 [n], `logp`, `ref_logp`, `values` F32 [Σ response len] (the models compute them in
/// F32; held as Double on either side), `response_offsets`
/// I64 [n+1], `scores`, `gold` F64 [n], `prompt_ids` I64 [n] (the prompt file index of each row),
/// `task_ids` I32 [n] (each row's task as an index into `task_names`); metadata `task_names` (JSON
/// array of the distinct task names, in order of first appearance), `epoch`, `lease`, `actor`. The
/// envelope carries the policy version that sampled the rows.
public struct RolloutMessage: WireMessage, Equatable {
    public static let kind = MessageKind.rollout
    public var policyVersion: UInt64
    /// Row r's tokens ([BOS] prompt response) are `tokens[tokenOffsets[r]..<tokenOffsets[r + 1]]`.
    public var tokens: [Int32]
    public var tokenOffsets: [Int]
    public var promptTokens: [Int]
    /// Per response token, row r's at `responseOffsets[r]..<responseOffsets[r + 1]`: log-prob under the
    /// sampling policy and the reference, the critic's value.
    public var logp: [Double], refLogp: [Double], values: [Double]
    public var responseOffsets: [Int]
    public var scores: [Double], gold: [Double]
    public var tasks: [String]
    public var promptIDs: [Int]
    public var epoch: Int, lease: Int
    public var actor: String

    /// From rows (flattened here: the one copy an actor makes).
    public init(policyVersion: UInt64, sequences: [[Int32]], promptTokens: [Int], logp: [[Double]], refLogp: [[Double]], values: [[Double]],
                scores: [Double], gold: [Double], tasks: [String], promptIDs: [Int], epoch: Int, lease: Int, actor: String) {
        let (tokens, tokenOffsets) = Ragged.flatten(sequences), (flatLogp, responseOffsets) = Ragged.flatten(logp)
        self.init(policyVersion: policyVersion, tokens: tokens, tokenOffsets: tokenOffsets, promptTokens: promptTokens, logp: flatLogp,
                  refLogp: Ragged.flatten(refLogp).column, values: Ragged.flatten(values).column, responseOffsets: responseOffsets,
                  scores: scores, gold: gold, tasks: tasks, promptIDs: promptIDs, epoch: epoch, lease: lease, actor: actor)
    }

    /// From columns, as they are held (no per-row work).
    public init(policyVersion: UInt64, tokens: [Int32], tokenOffsets: [Int], promptTokens: [Int], logp: [Double], refLogp: [Double], values: [Double],
                responseOffsets: [Int], scores: [Double], gold: [Double], tasks: [String], promptIDs: [Int], epoch: Int, lease: Int, actor: String) {
        self.policyVersion = policyVersion
        self.tokens = tokens
        self.tokenOffsets = tokenOffsets
        self.promptTokens = promptTokens
        self.logp = logp
        self.refLogp = refLogp
        self.values = values
        self.responseOffsets = responseOffsets
        self.scores = scores
        self.gold = gold
        self.tasks = tasks
        self.promptIDs = promptIDs
        self.epoch = epoch
        self.lease = lease
        self.actor = actor
    }

    public var rows: Int { scores.count }

    /// The token rows (setting them rewrites `tokens` and `tokenOffsets`).
    public var sequences: [[Int32]] {
        get { Ragged.rows(of: tokens, at: tokenOffsets) }
        set { (tokens, tokenOffsets) = Ragged.flatten(newValue) }
    }

    /// Whether no element is NaN or ±∞ (all exponent bits set), as a branch-free integer max that the
    /// compiler vectorises: an early-exit scan was a visible share of decoding a rollout.
    static func allFinite(_ xs: [Double]) -> Bool {
        let exponent: UInt64 = 0x7FF0_0000_0000_0000
        var most: UInt64 = 0
        for x in xs { most = max(most, x.bitPattern & exponent) }
        return most != exponent
    }

    /// A Double column as an F32 tensor, converted straight into the tensor's bytes.
    static func narrowed(_ xs: [Double]) -> TensorData {
        var bytes = Data(count: xs.count * 4)
        bytes.withUnsafeMutableBytes { raw in
            xs.withUnsafeBufferPointer { src in for i in src.indices { raw.storeBytes(of: Float(src[i]), toByteOffset: i * 4, as: Float.self) } }
        }
        return TensorData(dtype: .f32, shape: [xs.count], bytes: bytes)
    }

    /// An F32 tensor (a view into a received payload: not aligned) as a Double column.
    static func widened(_ t: TensorData) -> [Double] {
        let n = t.bytes.count / 4
        return [Double](unsafeUninitializedCapacity: n) { out, done in
            t.bytes.withUnsafeBytes { raw in
                for i in 0..<n { out[i] = Double(raw.loadUnaligned(fromByteOffset: i * 4, as: Float.self)) }
            }
            done = n
        }
    }

    public var payload: WirePayload {
        func tensor<T: BitwiseCopyable>(_ xs: [T], _ dtype: DType) -> TensorData {
            TensorData(dtype: dtype, shape: [xs.count], bytes: xs.withUnsafeBufferPointer { Data(buffer: $0) })
        }
        // Tasks as indices into the few distinct names: per-row text in the header was a third of the
        // decoding time (a JSON array escaped inside the JSON header, then parsed twice).
        var names: [String] = [], index: [String: Int32] = [:]
        let taskIDs = tasks.map { task in
            if let i = index[task] { return i }
            names.append(task)
            index[task] = Int32(names.count - 1)
            return Int32(names.count - 1)
        }
        var namesJSON: [UInt8] = [0x5B]
        for (i, name) in names.enumerated() {
            if i > 0 { namesJSON.append(0x2C) }
            JSONText.appendQuoted(name, to: &namesJSON)
        }
        namesJSON.append(0x5D)
        return WirePayload(tensors: [
            ("tokens", tensor(tokens, .i32)),
            ("token_offsets", TensorData(int64s: tokenOffsets)),
            ("prompt_tokens", tensor(promptTokens.map(Int32.init), .i32)),
            ("logp", Self.narrowed(logp)),
            ("ref_logp", Self.narrowed(refLogp)),
            ("values", Self.narrowed(values)),
            ("response_offsets", TensorData(int64s: responseOffsets)),
            ("scores", tensor(scores, .f64)),
            ("gold", tensor(gold, .f64)),
            ("prompt_ids", TensorData(int64s: promptIDs)),
            ("task_ids", tensor(taskIDs, .i32)),
        ], metadata: ["task_names": String(decoding: namesJSON, as: UTF8.self), "epoch": "\(epoch)", "lease": "\(lease)", "actor": actor])
    }

    /// Checks that every array agrees with the offsets and the row count.
    public init(policyVersion: UInt64, payload: WirePayload) throws {
        let r = payload.reader("rollout")
        func need(_ name: String, _ dtype: DType) throws -> TensorData {
            let x = try r.tensor(name)
            guard x.dtype == dtype, x.shape.count == 1 else { throw r.fail(name, "must be a 1-D \(dtype.rawValue) tensor") }
            return x
        }
        let tokens = try need("tokens", .i32).elements(Int32.self)
        func perToken(_ name: String) throws -> [Double] { Self.widened(try need(name, .f32)) }
        let logp = try perToken("logp"), ref = try perToken("ref_logp"), values = try perToken("values")
        let tokOff = try r.int64s("token_offsets"), respOff = try r.int64s("response_offsets")
        let scores = try need("scores", .f64).elements(Double.self), gold = try need("gold", .f64).elements(Double.self)
        let prompt = try need("prompt_tokens", .i32).elements(Int32.self), ids = try r.int64s("prompt_ids")
        let n = scores.count
        guard n > 0 else { throw r.fail("scores", "is empty: a rollout holds at least one row") }
        func valid(_ off: [Int], _ total: Int) -> Bool {
            off.count == n + 1 && off.first == 0 && off.last == total && zip(off, off.dropFirst()).allSatisfy { $0 <= $1 }
        }
        guard valid(tokOff, tokens.count), valid(respOff, logp.count), ref.count == logp.count, values.count == logp.count,
              gold.count == n, prompt.count == n, ids.count == n else {
            throw WireError.payload("rollout: array lengths disagree with the offsets")
        }
        let names: [String]? = r.optional("task_names").flatMap { text in
            guard case .array(let items)? = try? JSONText.parse(Data(text.utf8)) else { return nil }
            let names = items.compactMap { if case .string(let s) = $0 { s } else { nil } }
            return names.count == items.count ? names : nil
        }
        guard let names else { throw r.fail("task_names", "must be a JSON array of strings") }
        let taskIDs = try need("task_ids", .i32).elements(Int32.self)
        guard taskIDs.count == n else { throw r.fail("task_ids", "must hold one index per row (\(n))") }
        if let bad = taskIDs.first(where: { $0 < 0 || Int($0) >= names.count }) {
            throw r.fail("task_ids", "holds \(bad), not an index into the \(names.count) task names")
        }
        // NaN or infinite log-probs, values or scores would poison the update and then the saved weights;
        // a gold of NaN means "no gold score" and passes.
        for (name, xs) in [("logp", logp), ("ref_logp", ref), ("values", values), ("scores", scores)] where !Self.allFinite(xs) {
            throw r.fail(name, "holds a non-finite number: \(xs.first { !$0.isFinite }!)")
        }
        if let x = gold.first(where: { $0.isInfinite }) { throw r.fail("gold", "holds a non-finite number: \(x)") }
        for i in 0..<n {
            let response = respOff[i + 1] - respOff[i], length = tokOff[i + 1] - tokOff[i]
            guard prompt[i] >= 1, response >= 1, Int(prompt[i]) + response == length else {
                throw WireError.payload("rollout: row \(i): a prompt of \(prompt[i]) and a response of \(response) tokens "
                                        + "(each at least 1) do not make its \(length)-token sequence")
            }
        }
        guard policyVersion <= UInt64(Int.max) else { throw r.fail("policy_version", "is out of range: \(policyVersion)") }
        self.init(policyVersion: policyVersion, tokens: tokens, tokenOffsets: tokOff, promptTokens: prompt.map(Int.init), logp: logp, refLogp: ref,
                  values: values, responseOffsets: respOff, scores: scores, gold: gold, tasks: taskIDs.map { names[Int($0)] }, promptIDs: ids,
                  epoch: try r.int("epoch"), lease: try r.int("lease"), actor: try r.string("actor"))
    }
}
