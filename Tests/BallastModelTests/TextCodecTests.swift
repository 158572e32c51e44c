import BallastData
import BallastFormats
import BallastModel
import BallastTestSupport
import BallastTokenizers
import Foundation
import Testing

/// The tokenizer folder of the README's worked example (tools/make_example_tokenizer.py).
let chatTokenizerDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../configs/chat-example/tokenizer").standardized.path

@Suite("Text codecs: the byte tokenizer, or a folder's BPE tokenizer and chat template")
struct TextCodecTests {
    @Test("a folder with a BPE tokenizer gives its codec; Ballast's byte tokenizer files give the byte codec")
    func loading() throws {
        let chat = try TextCodec.load(directory: chatTokenizerDir)
        let bpe = try #require(chat.tokenizer)
        #expect(chat.chat != nil && chat.eos == bpe.id(of: "<|im_end|>") && chat.pad == bpe.id(of: "<|endoftext|>"))
        #expect(chat.files.keys.sorted() == ["tokenizer.json", "tokenizer_config.json"])
        let dir = scratchDirectory("codec-bytes")
        try Checkpoint.save(try GPT(config: .tiny), to: dir)
        let bytes = try TextCodec.load(directory: dir)
        #expect(bytes.tokenizer == nil && bytes.eos == ByteTokenizer.eos && bytes.files.isEmpty)
        #expect(try TextCodec.load(directory: scratchDirectory("codec-none")).tokenizer == nil)
    }

    @Test("prompts go through the chat template; a response is its tokens and the end of turn; decoding drops it")
    func encoding() throws {
        let c = try TextCodec.load(directory: chatTokenizerDir)
        let tokenizer = try #require(c.tokenizer), chat = try #require(c.chat)
        let prompt = "Sort ascending: 4 39 28\n"
        #expect(try c.promptIds(prompt) == chat.render([ChatMessage(role: "user", content: prompt)], addGenerationPrompt: true, tokenizer: tokenizer).ids)
        let text = try tokenizer.decode(try c.promptIds(prompt))
        #expect(text.hasPrefix("<|im_start|>system\n") && text.hasSuffix("<|im_end|>\n<|im_start|>assistant\n"))
        #expect(c.responseIds("4 28 39") == tokenizer.encode("4 28 39", addSpecialTokens: false) + [c.eos])
        #expect(c.decodeResponse(c.responseIds("4 28 39 naïve")) == "4 28 39 naïve")
        // a conversation trains on the assistant turns: their content and their <|im_end|>\n
        let turns = [ChatMessage(role: "user", content: "Q: 2+2?"), ChatMessage(role: "assistant", content: "4"),
                     ChatMessage(role: "user", content: "and 3+3?"), ChatMessage(role: "assistant", content: "6")]
        let (ids, trained) = try c.conversation(turns)
        let trainedText = try tokenizer.decode(zip(ids, trained).filter { $0.1 == 1 }.map(\.0))
        #expect(trainedText == "4<|im_end|>\n6<|im_end|>\n")
        // the byte codec has no template: conversations are refused with the reason
        #expect(throws: TokenizerError.self) { try TextCodec.bytes.conversation(turns) }
        #expect(try TextCodec.bytes.promptIds("ab") == [ByteTokenizer.bos, 97, 98])
    }

    @Test("a checkpoint carries its tokenizer: config.json's special ids follow it, loading gives the same codec")
    func checkpoints() throws {
        let codec = try TextCodec.load(directory: chatTokenizerDir)
        var cfg = GPTConfig.tiny.converted(to: .llama)
        cfg.vocabSize = codec.vocabSize
        let m = try GPT(config: cfg)
        m.codec = codec
        let dir = scratchDirectory("codec-ckpt")
        try Checkpoint.save(m, to: dir)
        let back = try Checkpoint.load(dir)
        #expect(back.codec.files == codec.files && back.codec.eos == codec.eos)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/config.json"))) as! [String: Any]
        #expect(json["eos_token_id"] as? Int == Int(codec.eos) && json["pad_token_id"] as? Int == Int(codec.pad))
        // a vocabulary smaller than the tokenizer's is refused
        var small = cfg
        small.vocabSize = 300
        let tooSmall = try GPT(config: small)
        tooSmall.codec = codec
        let bad = scratchDirectory("codec-small")
        try Checkpoint.save(tooSmall, to: bad)
        let e = try #require(throws: FileError.self) { try Checkpoint.load(bad) }
        #expect(e.description.contains("vocab_size"))
    }

    /// A copy of the example tokenizer folder with `config` merged into its tokenizer_config.json.
    func folder(_ name: String, config: [String: Any], extra: [String: String] = [:]) throws -> String {
        let dir = scratchDirectory(name)
        try FileManager.default.copyItem(atPath: chatTokenizerDir + "/tokenizer.json", toPath: dir + "/tokenizer.json")
        var c = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: chatTokenizerDir + "/tokenizer_config.json"))) as! [String: Any]
        for (k, v) in config { c[k] = v is NSNull ? nil : v }
        try JSONSerialization.data(withJSONObject: c).write(to: URL(fileURLWithPath: dir + "/tokenizer_config.json"))
        for (file, text) in extra { try text.write(toFile: dir + "/" + file, atomically: true, encoding: .utf8) }
        return dir
    }

    @Test("found in review: a base model's eos differs from its template's end of turn; a template outside the subset does not block loading")
    func reviewFindings() throws {
        let example = try TextCodec.load(directory: chatTokenizerDir), tok = try #require(example.tokenizer)
        // Qwen2.5 base: eos_token <|endoftext|>, the template closes turns with <|im_end|>: responses end (and stop) there
        let base = try TextCodec.load(directory: try folder("codec-base", config: ["eos_token": "<|endoftext|>"]))
        #expect(base.eos == tok.id(of: "<|im_end|>"))
        // no eos in tokenizer_config.json: special_tokens_map.json, then config.json's eos_token_id
        let mapped = try TextCodec.load(directory: try folder("codec-map", config: ["eos_token": NSNull(), "chat_template": NSNull()],
                                                              extra: ["special_tokens_map.json": #"{"eos_token": "<|endoftext|>"}"#]))
        #expect(mapped.eos == tok.id(of: "<|endoftext|>") && mapped.chat == nil)
        let fromConfig = try TextCodec.load(directory: try folder("codec-config", config: ["eos_token": NSNull(), "chat_template": NSNull()],
                                                                  extra: ["config.json": #"{"eos_token_id": [7, 8]}"#]))
        #expect(fromConfig.eos == 7)
        // a template with a macro: the folder loads, prompts say why they cannot be rendered
        let macro = try TextCodec.load(directory: try folder("codec-macro", config: ["chat_template": "{% macro f() %}x{% endmacro %}"]))
        let e = try #require(throws: TokenizerError.self) { try macro.promptIds("hi") }
        #expect(e.description.contains("macro"))
        // ids a padded vocabulary has beyond the tokenizer's spell nothing instead of emptying the text
        #expect(example.decodeResponse(tok.encode("4 28", addSpecialTokens: false) + [Int32(tok.vocabSize + 5), example.eos]) == "4 28")
    }
}
