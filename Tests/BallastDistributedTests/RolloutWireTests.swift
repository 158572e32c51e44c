import BallastDistributed
import BallastFormats
import BallastModel
import BallastRL
import BallastWire
import Foundation
import Testing

@Suite("Rollout batches over the wire")
struct RolloutWireTests {
    func batch() -> RolloutBatch {
        RolloutBatch(sequences: [[256, 1, 2, 9, 8, 257], [256, 5, 7]], promptTokens: [3, 2],
                     logp: [[-0.1, -0.2, -0.3], [-1.5]], refLogp: [[-0.2, -0.2, -0.25], [-1.0]], values: [[0.1, 0.2, 0.3], [0.7]],
                     scores: [1.25, -0.5], gold: [1, .nan], tasks: ["qa", "sort"], policyVersion: 9)
    }

    func message() -> RolloutMessage { RolloutMessage(batch(), promptIDs: [11, 4], epoch: 2, lease: 5, actor: "actor-1") }

    @Test("encode → bytes → decode gives the same batch")
    func roundTrip() throws {
        let b = batch()
        let (env, payload) = message().frame(sequence: 4).encode()
        let decoded = try RolloutMessage(frame: try Frame.decode(envelope: env, payload: payload).0)
        let back = RolloutBatch(decoded)
        #expect(back.sequences == [[256, 1, 2, 9, 8, 257], [256, 5, 7]] && back.promptTokens == b.promptTokens)
        // Per-token numbers travel as F32 (the models compute them in F32), scores and gold as F64.
        func f32(_ xs: [Double]) -> [Double] { xs.map { Double(Float($0)) } }
        #expect(back.responseRows(back.logp) == [f32([-0.1, -0.2, -0.3]), [-1.5]] && back.logp == f32(b.logp) && back.responseOffsets == [0, 3, 4])
        #expect(back.refLogp == f32(b.refLogp) && back.values == f32(b.values) && back.scores == b.scores && back.tasks == b.tasks)
        #expect(back.gold[0] == 1 && back.gold[1].isNaN && back.policyVersion == 9)
        #expect(decoded.promptIDs == [11, 4] && decoded.epoch == 2 && decoded.lease == 5 && decoded.actor == "actor-1")
    }

    @Test("tasks travel as indices into the distinct names, in order of first appearance")
    func taskIndices() throws {
        var b = RolloutBatch.gather([(batch(), 0), (batch(), 1), (batch(), 0)])
        b.tasks = ["sort", "qa", "sort"]
        let frame = RolloutMessage(b, promptIDs: [1, 2, 3], epoch: 0, lease: 1, actor: "a").frame(sequence: 1)
        #expect(frame.metadata["task_names"] == #"["sort","qa"]"#)
        #expect(frame.tensors.first { $0.0 == "task_ids" }?.1.elements(Int32.self) == [0, 1, 0])
        #expect(try RolloutMessage(frame: frame).tasks == ["sort", "qa", "sort"])
    }

    @Test("gathering rows keeps each row whole, in the order asked, at the oldest policy version")
    func gather() {
        var newer = batch()
        newer.policyVersion = 12
        let g = RolloutBatch.gather([(newer, 1), (batch(), 0), (newer, 1)])
        #expect(g.sequences == [[256, 5, 7], [256, 1, 2, 9, 8, 257], [256, 5, 7]] && g.promptTokens == [2, 3, 2])
        #expect(g.responseRows(g.refLogp) == [[-1.0], [-0.2, -0.2, -0.25], [-1.0]] && g.responseRows(g.values) == [[0.7], [0.1, 0.2, 0.3], [0.7]])
        #expect(g.scores == [-0.5, 1.25, -0.5] && g.tasks == ["sort", "qa", "sort"] && g.policyVersion == 9 && g.responseLengths == [1, 3, 1])
        #expect(RolloutBatch.gather([]).count == 0)
    }

    @Test("inconsistent frames are rejected with a reason")
    func rejects() throws {
        func rejected(_ edit: (inout Frame) -> Void) -> Bool {
            var f = message().frame(sequence: 1)
            edit(&f)
            do { _ = try RolloutMessage(frame: f); return false } catch let e as WireError { return e.label == "bad_payload" } catch { return false }
        }
        #expect(rejected { $0.tensors.removeAll { $0.0 == "values" } })
        #expect(rejected { $0.metadata["task_names"] = "[\"qa\"]" }, "row 2's task index 1 names no task")
        #expect(rejected { $0.metadata["task_names"] = "[\"qa\", 3]" })
        #expect(rejected { $0.tensors = $0.tensors.map { $0.0 == "task_ids" ? ($0.0, TensorData(int32s: [0, -1], shape: [2])) : $0 } })
        #expect(rejected { $0.tensors = $0.tensors.map { $0.0 == "task_ids" ? ($0.0, TensorData(int32s: [0], shape: [1])) : $0 } })
        #expect(rejected { $0.tensors.removeAll { $0.0 == "task_ids" } })
        #expect(rejected { $0.tensors = $0.tensors.map { $0.0 == "prompt_tokens" ? ($0.0, TensorData(int32s: [4, 2], shape: [2])) : $0 } })
        #expect(rejected { $0.tensors = $0.tensors.map { $0.0 == "prompt_ids" ? ($0.0, TensorData(int64s: [1])) : $0 } })
        #expect(rejected { $0.metadata["epoch"] = nil })
        #expect(rejected { $0.policyVersion = UInt64(Int.max) + 1 })
        #expect(rejected { $0.kind = .heartbeat })
        // Values that would trip the trainer or poison the weights (before the fix these decoded).
        func f64(_ name: String, _ xs: [Double]) -> (inout Frame) -> Void {
            { f in f.tensors = f.tensors.map { $0.0 == name ? ($0.0, TensorData(dtype: .f64, shape: [xs.count], bytes: xs.withUnsafeBufferPointer { Data(buffer: $0) })) : $0 } }
        }
        func f32(_ name: String, _ xs: [Float]) -> (inout Frame) -> Void {
            { f in f.tensors = f.tensors.map { $0.0 == name ? ($0.0, TensorData(floats: xs, shape: [xs.count])) : $0 } }
        }
        #expect(rejected(f32("logp", [-0.1, .nan, -0.3, -1.5])))
        #expect(rejected(f32("values", [0.1, 0.2, .infinity, 0.7])))
        #expect(!rejected(f32("values", [0.1, 0.2, 0.3, 0.7])), "the F32 edit alone is accepted")
        #expect(rejected(f64("logp", [-0.1, -0.2, -0.3, -1.5])), "per-token numbers are F32")
        #expect(rejected(f64("scores", [-.infinity, 1])))
        #expect(rejected(f64("gold", [1, .infinity])))
        #expect(!rejected(f64("gold", [.nan, .nan])))  // NaN gold: no gold score for the row
        // A zero-length prompt (the response's first token would be read at position -1) or response.
        #expect(rejected { f in
            f.tensors = f.tensors.map { t -> (String, TensorData) in
                switch t.0 {
                case "prompt_tokens": return (t.0, TensorData(int32s: [0, 2], shape: [2]))
                case "tokens": return (t.0, TensorData(int32s: [9, 8, 7, 256, 5, 7], shape: [6]))
                case "token_offsets": return (t.0, TensorData(int64s: [0, 3, 6]))
                default: return t
                }
            }
        })
        #expect(rejected { f in
            f.tensors = f.tensors.map { t -> (String, TensorData) in
                switch t.0 {
                case "prompt_tokens": return (t.0, TensorData(int32s: [6, 2], shape: [2]))
                case "logp", "ref_logp", "values": return (t.0, TensorData(floats: [0], shape: [1]))
                case "response_offsets": return (t.0, TensorData(int64s: [0, 0, 1]))
                default: return t
                }
            }
        })
        #expect(!rejected { _ in })
    }
}

@Suite("Weights over the wire")
struct WeightsWireTests {
    @Test("a model survives encode → bytes → decode exactly, heads included")
    func roundTrip() throws {
        let m = try GPT(config: GPTConfig(nLayer: 1, nHead: 2, nEmbd: 16, nPositions: 32, vocabSize: 259, scalarHeads: ["value_head"]))
        m.initializeRandom(seed: 3)
        let (env, payload) = try WeightsWire.message(m, policyVersion: 11).frame(sequence: 5).encode()
        let (frame, file) = try Frame.decode(envelope: env, payload: payload)
        #expect(frame.policyVersion == 11 && file?.tensors["transformer.wte.weight"]?.shape == [259, 16])
        let weights = try Weights(frame: frame)
        let back = try WeightsWire.model(from: weights)
        #expect(back.config == m.config)
        #expect((0..<m.parameterCount).allSatisfy { back.params[$0] == m.params[$0] })
        var broken = weights
        broken.tensors.removeLast()
        #expect(throws: FileError.self) { try WeightsWire.model(from: broken) }
    }

    @Test("a later version overwrites a reused model in place; a bad frame leaves it as it was")
    func reuse() throws {
        let cfg = GPTConfig(nLayer: 1, nHead: 2, nEmbd: 16, nPositions: 32, vocabSize: 259)
        let a = try GPT(config: cfg), b = try GPT(config: cfg)
        a.initializeRandom(seed: 1)
        b.initializeRandom(seed: 2)
        func weights(_ m: GPT) throws -> Weights {
            let (env, payload) = try WeightsWire.message(m, policyVersion: 3).frame(sequence: 1).encode()
            return try Weights(frame: try Frame.decode(envelope: env, payload: payload).0)
        }
        let held = try WeightsWire.model(from: try weights(a))
        let again = try WeightsWire.model(from: try weights(b), reuse: held)
        #expect(again === held, "same config: no new model")
        #expect((0..<b.parameterCount).allSatisfy { held.params[$0] == b.params[$0] })
        var wrong = try weights(a)
        wrong.tensors[0].1 = TensorData(floats: [Float](repeating: 0, count: 7), shape: [7])
        #expect(throws: FileError.self) { try WeightsWire.model(from: wrong, reuse: held) }
        #expect((0..<b.parameterCount).allSatisfy { held.params[$0] == b.params[$0] }, "checked before anything was written")
        var extra = try weights(a)
        extra.tensors.append(("surplus", TensorData(floats: [1], shape: [1])))
        #expect(throws: FileError.self) { try WeightsWire.model(from: extra) }
        let other = try GPT(config: GPTConfig(nLayer: 2, nHead: 2, nEmbd: 16, nPositions: 32, vocabSize: 259))
        #expect(try WeightsWire.model(from: try weights(a), reuse: other) !== other, "another config: a new model")
    }

    @Test("reference and scorer frames carry a BPE model's tokenizer, policy frames do not")
    func tokenizerTravels() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../configs/chat-example/tokenizer").standardized.path
        let codec = try TextCodec.load(directory: dir)
        var cfg = GPTConfig(nLayer: 1, nHead: 2, nEmbd: 16, nPositions: 32, vocabSize: codec.vocabSize).converted(to: .llama)
        cfg.scalarHeads = []
        let m = try GPT(config: cfg)
        m.codec = codec
        func roundTrip(_ withTokenizer: Bool) throws -> GPT {
            let (env, payload) = try WeightsWire.message(m, policyVersion: 0, withTokenizer: withTokenizer).frame(sequence: 1).encode()
            return try WeightsWire.model(from: try Weights(frame: try Frame.decode(envelope: env, payload: payload).0))
        }
        let reference = try roundTrip(true)
        #expect(reference.codec.files == codec.files && reference.codec.eos == codec.eos && reference.codec.chat != nil)
        #expect(try roundTrip(false).codec.tokenizer == nil, "policy versions do not resend the tokenizer")
    }
}
