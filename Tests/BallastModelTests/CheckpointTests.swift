import BallastFormats
import BallastModel
import BallastTestSupport
import Foundation
import Testing

@Suite("Checkpoint folders")
struct CheckpointTests {
    @Test("save then load gives identical parameters and config, heads included")
    func roundTrip() throws {
        let dir = scratchDirectory()
        let m = try GPT(config: GPTConfig(nLayer: 2, nHead: 2, nEmbd: 16, nPositions: 32, vocabSize: 259, scalarHeads: ["score", "value_head"]))
        m.initializeRandom(seed: 4)
        try Checkpoint.save(m, to: dir)
        let back = try Checkpoint.load(dir)
        #expect(back.config == m.config)
        #expect((0..<m.parameterCount).allSatisfy { back.params[$0] == m.params[$0] })
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/config.json"))) as! [String: Any]
        #expect(json["model_type"] as? String == "gpt2")
        #expect(json["n_embd"] as? Int == 16)
        #expect(json["activation_function"] as? String == "gelu_new")
        let st = try SafeTensorsFile(path: dir + "/model.safetensors")
        #expect(try st.info("transformer.h.0.attn.c_attn.weight").shape == [16, 48])
        #expect(try st.info("score.weight").shape == [1, 16])
        #expect(st.tensors["lm_head.weight"] == nil, "tied head is not stored")
        #expect(try !FileManager.default.contentsOfDirectory(atPath: dir).contains { $0.contains(".tmp") }, "no temporary files left")
    }

    @Test("config.json that disagrees with the tensors is rejected, naming the tensor")
    func configMismatch() throws {
        let dir = scratchDirectory()
        let m = try GPT(config: GPTConfig(nLayer: 1, nHead: 2, nEmbd: 16, nPositions: 32, vocabSize: 259))
        try Checkpoint.save(m, to: dir)
        let path = dir + "/config.json"
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        json["n_embd"] = 32
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
        let e = try #require(throws: FileError.self) { try Checkpoint.load(dir) }
        #expect(e.description.contains("transformer.wte.weight"))
        #expect(e.description.contains("[259, 16]"))

        json["n_embd"] = 16
        json["n_layer"] = 2
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
        let missing = try #require(throws: FileError.self) { try Checkpoint.load(dir) }
        #expect(missing.description.contains("transformer.h.1.ln_1.weight") && missing.description.contains("missing"))

        json["n_layer"] = 1
        json["n_head"] = 3
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
        let heads = try #require(throws: FileError.self) { try Checkpoint.load(dir) }
        #expect(heads.description.contains("divisible"))
    }

    @Test("a folder without model.safetensors or config.json says what is missing")
    func missingFiles() throws {
        let dir = scratchDirectory()
        let e = try #require(throws: FileError.self) { try Checkpoint.load(dir) }
        #expect(e.description.contains("config.json"))
    }
}
