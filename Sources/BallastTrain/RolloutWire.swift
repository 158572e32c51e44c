import BallastFormats
import BallastWire
import Foundation

/// Rollout batches as wire frames (kind `rollout`): ragged rows flattened with offset tensors, so that
/// actors can ship exactly what `PPOUpdater.update` consumes.
///
/// tensors: `tokens` I32 [Σ len], `token_offsets` I64 [n+1], `prompt_tokens` I32 [n],
/// `logp`, `ref_logp`, `values` F64 [Σ response len], `response_offsets` I64 [n+1], `scores`, `gold` F64 [n];
/// metadata: `tasks` (JSON array of strings). The envelope carries the policy version.
extension RolloutBatch {
    public func frame(sequence: UInt64) -> Frame {
        func f64(_ xs: [Double], _ shape: [Int]) -> TensorData { TensorData(dtype: .f64, shape: shape, bytes: xs.withUnsafeBufferPointer { Data(buffer: $0) }) }
        func offsets(_ lengths: [Int]) -> [Int] { lengths.reduce(into: [0]) { $0.append($0.last! + $1) } }
        let flatTokens = sequences.flatMap { $0 }
        let total = logp.reduce(0) { $0 + $1.count }
        let tasksJSON = String(decoding: (try? JSONSerialization.data(withJSONObject: tasks)) ?? Data("[]".utf8), as: UTF8.self)
        return Frame(kind: .rollout, sequence: sequence, policyVersion: UInt64(policyVersion), tensors: [
            ("tokens", TensorData(int32s: flatTokens, shape: [flatTokens.count])),
            ("token_offsets", TensorData(int64s: offsets(sequences.map(\.count)))),
            ("prompt_tokens", TensorData(int32s: promptTokens.map(Int32.init), shape: [count])),
            ("logp", f64(logp.flatMap { $0 }, [total])),
            ("ref_logp", f64(refLogp.flatMap { $0 }, [total])),
            ("values", f64(values.flatMap { $0 }, [total])),
            ("response_offsets", TensorData(int64s: offsets(logp.map(\.count)))),
            ("scores", f64(scores, [count])),
            ("gold", f64(gold, [count])),
        ], metadata: ["tasks": tasksJSON])
    }

    public struct FrameError: Error, CustomStringConvertible {
        public let problem: String
        public var description: String { "rollout frame: \(problem)" }
    }

    /// Rebuilds a batch from a decoded frame, checking that every array agrees with the offsets.
    public init(frame: Frame) throws {
        guard frame.kind == .rollout else { throw FrameError(problem: "kind is \(frame.kind), expected rollout") }
        let t = Dictionary(frame.tensors.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
        func need(_ name: String, _ dtype: DType) throws -> TensorData {
            guard let x = t[name] else { throw FrameError(problem: "missing tensor \(name)") }
            guard x.dtype == dtype, x.shape.count == 1 else { throw FrameError(problem: "\(name) must be 1-D \(dtype.rawValue)") }
            return x
        }
        func doubles(_ name: String) throws -> [Double] { try need(name, .f64).bytes.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) } }
        func ints64(_ name: String) throws -> [Int] { try need(name, .i64).int64s! }
        func ints32(_ name: String) throws -> [Int32] { try need(name, .i32).bytes.withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) } }
        let tokens = try ints32("tokens"), tokOff = try ints64("token_offsets"), respOff = try ints64("response_offsets")
        let logp = try doubles("logp"), ref = try doubles("ref_logp"), values = try doubles("values")
        let scores = try doubles("scores"), gold = try doubles("gold"), prompt = try ints32("prompt_tokens")
        let n = scores.count
        func valid(_ off: [Int], _ total: Int) -> Bool {
            off.count == n + 1 && off.first == 0 && off.last == total && zip(off, off.dropFirst()).allSatisfy { $0 <= $1 }
        }
        guard valid(tokOff, tokens.count), valid(respOff, logp.count), ref.count == logp.count, values.count == logp.count,
              gold.count == n, prompt.count == n else {
            throw FrameError(problem: "array lengths disagree with the offsets")
        }
        guard let data = frame.metadata["tasks"]?.data(using: .utf8), let tasks = try? JSONSerialization.jsonObject(with: data) as? [String],
              tasks.count == n else { throw FrameError(problem: "metadata tasks must be a JSON array of \(n) strings") }
        func rows<T>(_ xs: [T], _ off: [Int]) -> [[T]] { (0..<n).map { Array(xs[off[$0]..<off[$0 + 1]]) } }
        let seqs = rows(tokens, tokOff)
        for i in 0..<n where Int(prompt[i]) + (respOff[i + 1] - respOff[i]) != seqs[i].count {
            throw FrameError(problem: "row \(i): prompt + response lengths do not add up to the sequence")
        }
        self.init(sequences: seqs, promptTokens: prompt.map(Int.init), logp: rows(logp, respOff), refLogp: rows(ref, respOff),
                  values: rows(values, respOff), scores: scores, gold: gold, tasks: tasks, policyVersion: Int(frame.policyVersion))
    }
}
