import BallastConfig
import BallastData
import BallastModel
import BallastTestSupport
import BallastTokenizers
import BallastTraining
import Foundation
import Testing

@Suite("Conversational datasets in TRL's conventions")
struct ConversationalDataTests {
    static let tokenizerDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../configs/chat-example/tokenizer").standardized.path

    func write(_ lines: [String], _ name: String) throws -> String {
        let path = scratchDirectory("conv") + "/" + name
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("messages, conversational prompt/completion, prompts and pairs are read, encoded with the chat template and written back as TRL's")
    func roundTrip() throws {
        let codec = try TextCodec.load(directory: Self.tokenizerDir)
        let sft = try SFTExample.read(try write([
            #"{"messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}, {"role": "user", "content": "3+3?"}, {"role": "assistant", "content": "6"}], "task": "qa"}"#,
            #"{"prompt": [{"role": "user", "content": "Reverse abc"}], "completion": [{"role": "assistant", "content": "cba"}]}"#,
        ], "sft.jsonl"))
        #expect(sft[0].messages?.count == 5 && sft[0].prompt == "3+3?" && sft[0].completion == "6")
        #expect(sft[1].messages?.map(\.role) == ["user", "assistant"] && sft[1].completion == "cba")
        let e = try SFTEncoding.encode(sft[0], codec: codec)
        let (_, targets, loss) = SFTEncoding.batch([e])
        let trained = try codec.tokenizer!.decode(zip(targets, loss).filter { $0.1 == 1 }.map(\.0))
        #expect(trained == "4<|im_end|>\n6<|im_end|>\n", "the loss covers the assistant turns only")

        let pairs = try PreferencePair.read(try write([
            #"{"prompt": [{"role": "user", "content": "Sort: b a"}], "chosen": [{"role": "assistant", "content": "a b"}], "rejected": [{"role": "assistant", "content": "b a"}], "task": "sort"}"#,
        ], "pairs.jsonl"))
        let p = try PreferenceData.encode(pairs[0], codec: codec)
        #expect(p.chosen == (try codec.promptIds(messages: pairs[0].promptMessages!)) + codec.responseIds("a b"))
        let prompts = try PromptRecord.read(try write([#"{"prompt": [{"role": "user", "content": "Count the r's"}], "task": "count"}"#], "prompts.jsonl"))
        #expect(prompts[0].prompt == "Count the r's" && prompts[0].messages?.count == 1)

        // written back in TRL's form and read again unchanged
        let dir = scratchDirectory("conv-out")
        try JSONL.write(sft, to: dir + "/sft.jsonl")
        try JSONL.write(pairs, to: dir + "/pairs.jsonl")
        try JSONL.write(prompts, to: dir + "/prompts.jsonl")
        #expect(try SFTExample.read(dir + "/sft.jsonl").map(\.messages) == sft.map(\.messages))
        #expect(try PreferencePair.read(dir + "/pairs.jsonl") == pairs)
        #expect(try PromptRecord.read(dir + "/prompts.jsonl") == prompts)
        let line = try String(contentsOfFile: dir + "/pairs.jsonl", encoding: .utf8)
        #expect(line.contains(#""chosen":[{"#), "chosen is one assistant message, as TRL writes it")
    }

    @Test("malformed conversations are refused with file, line and reason; a byte-tokenizer model refuses them too")
    func errors() throws {
        let noAssistant = try write([#"{"messages": [{"role": "user", "content": "hi"}]}"#], "a.jsonl")
        #expect(throws: DatasetError(file: noAssistant, line: 1, problem: "\"messages\" has no assistant turn to train on")) { try SFTExample.read(noAssistant) }
        let badMessage = try write([#"{"messages": [{"role": "user"}]}"#], "b.jsonl")
        #expect(throws: DatasetError.self) { try SFTExample.read(badMessage) }
        let twoTurns = try write([#"{"prompt": [{"role": "user", "content": "x"}], "chosen": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}], "rejected": "c"}"#], "c.jsonl")
        #expect(throws: DatasetError.self) { try PreferencePair.read(twoTurns) }
        let conv = try write([#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}"#], "d.jsonl")
        let e = try #require(throws: DatasetError.self) { try SFTEncoding.load(conv, builtinCount: 0, seed: 0, maxLength: 64, codec: .bytes) }
        #expect(e.description.contains("chat template") && e.description.contains("d.jsonl:1"))
    }

    @Test("model.architecture and model.tokenizer: a Llama of the preset's shape sized to the tokenizer; mismatches refused")
    func modelSection() throws {
        func load(_ model: String) throws -> SFTConfig { try SFTConfig.load(try ConfigDocument(yaml: "model: {\(model)}\n", name: "m.yaml")) }
        let c = try load("preset: tiny, architecture: llama, tokenizer: \(Self.tokenizerDir)")
        let codec = try TextCodec.load(directory: Self.tokenizerDir)
        #expect(c.model.config.architecture == .llama && c.model.config.nKVHead == 1 && c.model.config.vocabSize == codec.vocabSize)
        #expect(c.model.tokenizer == Self.tokenizerDir)
        let q = try load("preset: tiny, architecture: qwen2, n_head: 4, n_kv_head: 2, intermediate_size: 64, rope_theta: 1000000")
        #expect(q.model.config.attentionBias && q.model.config.nKVHead == 2 && q.model.config.intermediateSize == 64 && q.model.config.ropeTheta == 1e6)
        // GPT-2 edited by heads or width stays consistent (derived fields follow)
        #expect(try load("preset: tiny, n_head: 4, n_embd: 64").model.config.intermediateSize == 256)
        #expect(throws: ConfigError.self) { try load("preset: tiny, n_kv_head: 1") }            // a Llama key on gpt2
        #expect(throws: ConfigError.self) { try load("preset: tiny, architecture: mamba") }
        #expect(throws: ConfigError.self) { try load("architecture: llama, tokenizer: \(Self.tokenizerDir), vocab_size: 300") }
        #expect(throws: ConfigError.self) { try load("init_from: x, architecture: llama") }
    }
}
