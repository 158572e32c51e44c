import BallastFormats
import BallastModel
import BallastTrain
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

    @Test("encode → bytes → decode gives the same batch")
    func roundTrip() throws {
        let b = batch()
        let (env, payload) = b.frame(sequence: 4).encode()
        let (frame, _) = try Frame.decode(envelope: env, payload: payload)
        let back = try RolloutBatch(frame: frame)
        #expect(back.sequences == b.sequences && back.promptTokens == b.promptTokens && back.logp == b.logp)
        #expect(back.refLogp == b.refLogp && back.values == b.values && back.scores == b.scores && back.tasks == b.tasks)
        #expect(back.gold[0] == 1 && back.gold[1].isNaN && back.policyVersion == 9)
    }

    @Test("inconsistent frames are rejected with a reason")
    func rejects() throws {
        var f = batch().frame(sequence: 1)
        f.tensors.removeAll { $0.0 == "values" }
        #expect(throws: RolloutBatch.FrameError.self) { try RolloutBatch(frame: f) }
        var g = batch().frame(sequence: 1)
        g.metadata["tasks"] = "[\"qa\"]"
        #expect(throws: RolloutBatch.FrameError.self) { try RolloutBatch(frame: g) }
        var h = batch().frame(sequence: 1)
        h.tensors = h.tensors.map { $0.0 == "prompt_tokens" ? ($0.0, TensorData(int32s: [4, 2], shape: [2])) : $0 }
        #expect(throws: RolloutBatch.FrameError.self) { try RolloutBatch(frame: h) }
        #expect(throws: RolloutBatch.FrameError.self) { try RolloutBatch(frame: Frame(kind: .heartbeat, sequence: 1)) }
    }
}

@Suite("Weights over the wire")
struct WeightsWireTests {
    @Test("a model survives encode → bytes → decode exactly, heads included")
    func roundTrip() throws {
        let m = try GPT(config: GPTConfig(nLayer: 1, nHead: 2, nEmbd: 16, nPositions: 32, vocabSize: 259, scalarHeads: ["value_head"]))
        m.initializeRandom(seed: 3)
        let (env, payload) = try WeightsWire.frame(m, sequence: 5, policyVersion: 11).encode()
        let (frame, file) = try Frame.decode(envelope: env, payload: payload)
        #expect(frame.policyVersion == 11 && file?.tensors["transformer.wte.weight"]?.shape == [259, 16])
        let back = try WeightsWire.model(from: frame)
        #expect(back.config == m.config)
        #expect((0..<m.parameterCount).allSatisfy { back.params[$0] == m.params[$0] })
        var broken = frame
        broken.tensors.removeLast()
        #expect(throws: CheckpointError.self) { try WeightsWire.model(from: broken) }
    }
}
