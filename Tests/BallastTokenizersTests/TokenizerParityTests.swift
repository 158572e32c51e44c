import BallastTokenizers
import Foundation
import Testing

/// Ballast's ids against the `tokenizers` library's (tools/fixtures/make_tokenizer_fixtures.py) on
/// about 2 000 strings: the repository's text and adversarial Unicode.
@Suite("Byte-level BPE tokenizers vs Hugging Face tokenizers")
struct TokenizerParityTests {
    struct Case: Decodable {
        let text: String
        let ids: [String: [Int32]]
        let decoded: [String: String]

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: AnyKey.self)
            text = try c.decode(String.self, forKey: AnyKey("text"))
            var ids: [String: [Int32]] = [:], decoded: [String: String] = [:]
            for k in c.allKeys where k.stringValue != "text" {
                if k.stringValue.hasSuffix("_decoded") { decoded[String(k.stringValue.dropLast(8))] = try c.decode(String.self, forKey: k) }
                else { ids[k.stringValue] = try c.decode([Int32].self, forKey: k) }
            }
            self.ids = ids
            self.decoded = decoded
        }
    }

    struct AnyKey: CodingKey {
        let stringValue: String
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.path

    static let cases: [Case] = {
        let text = try! String(contentsOfFile: fixtures + "/cases.jsonl", encoding: .utf8)
        return text.split(separator: "\n").map { try! JSONDecoder().decode(Case.self, from: Data($0.utf8)) }
    }()

    @Test("ids equal the library's, with and without the post-processor; decode(encode(s)) gives back s", arguments: ["gpt2", "llama3", "qwen2"])
    func parity(style: String) throws {
        let tok = try BPETokenizer.load(directory: Self.fixtures + "/" + style)
        #expect(Self.cases.count > 2000)
        var mismatches = 0
        for c in Self.cases {
            let plain = tok.encode(c.text, addSpecialTokens: false)
            if plain != c.ids[style]! {
                mismatches += 1
                if mismatches <= 5 { Issue.record("\(style) \(c.text.debugDescription): \(plain) vs \(c.ids[style]!)") }
            }
            #expect(tok.encode(c.text) == (c.ids[style + "_special"] ?? c.ids[style]!))
            #expect(try tok.decode(plain) == (c.decoded[style] ?? c.text))
        }
        #expect(mismatches == 0)
    }

    @Test("GPT-2's vocab.json + merges.txt give the same ids as its tokenizer.json")
    func twoFileFormat() throws {
        let dir = Self.fixtures + "/gpt2"
        let a = try BPETokenizer.load(tokenizerJSON: dir + "/tokenizer.json")
        let b = try BPETokenizer.load(vocabJSON: dir + "/vocab.json", mergesTxt: dir + "/merges.txt")
        for c in Self.cases { #expect(a.encode(c.text) == b.encode(c.text)) }
    }

    @Test("special tokens: Llama 3 adds BOS, skipSpecialTokens drops it, unknown ids are an error")
    func specialTokens() throws {
        let tok = try BPETokenizer.load(directory: Self.fixtures + "/llama3")
        let bos = try #require(tok.id(of: "<|begin_of_text|>"))
        let ids = tok.encode("hello<|eot_id|>")
        let eot = try #require(tok.id(of: "<|eot_id|>"))
        #expect(ids.first == bos && ids.contains(eot))
        #expect(try tok.decode(ids, skipSpecialTokens: true) == "hello")
        #expect(try tok.decode(ids) == "<|begin_of_text|>hello<|eot_id|>")
        #expect(throws: TokenizerError.self) { try tok.decode([Int32(tok.vocabSize + 5)]) }
    }

    @Test("unsupported parts of the format are refused by name")
    func refusals() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ballast-tok-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let base = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/qwen2/tokenizer.json"))) as! [String: Any]
        func refused(_ edit: (inout [String: Any]) -> Void, mentioning word: String) throws {
            var j = base
            edit(&j)
            try JSONSerialization.data(withJSONObject: j).write(to: URL(fileURLWithPath: dir + "/tokenizer.json"))
            do {
                _ = try BPETokenizer.load(directory: dir)
                Issue.record("accepted a file with \(word)")
            } catch let e as TokenizerError {
                #expect(e.description.contains(word), "\(e)")
            }
        }
        try refused({ $0["normalizer"] = ["type": "NFKC"] }, mentioning: "NFKC")
        try refused({ j in
            var pre = j["pre_tokenizer"] as! [String: Any]
            var steps = pre["pretokenizers"] as! [[String: Any]]
            steps[0]["pattern"] = ["Regex": "\\w+|\\s+"]
            pre["pretokenizers"] = steps
            j["pre_tokenizer"] = pre
        }, mentioning: "\\w+|\\s+")
        try refused({ j in var m = j["model"] as! [String: Any]; m["byte_fallback"] = true; j["model"] = m }, mentioning: "byte_fallback")
        try refused({ $0["post_processor"] = ["type": "RobertaProcessing"] }, mentioning: "RobertaProcessing")
    }
}

@Suite("The byte tokenizer as Hugging Face files")
struct ByteTokenizerFilesTests {
    @Test("loaded back, the files encode every string as BOS + its UTF-8 bytes and decode it again")
    func roundTrip() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ballast-bytetok-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for (name, data) in try ByteTokenizerFiles.files(bos: 256, eos: 257, pad: 258, modelMaxLength: 64) {
            try data.write(to: URL(fileURLWithPath: dir + "/" + name))
        }
        let tok = try BPETokenizer.load(directory: dir)
        #expect(tok.vocabSize == 259)
        for c in TokenizerParityTests.cases.prefix(500) {
            let ids = tok.encode(c.text)
            #expect(ids == [256] + c.text.utf8.map { Int32($0) })
            #expect(try tok.decode(ids, skipSpecialTokens: true) == c.text)
        }
        #expect(tok.encode("a<eos>", addSpecialTokens: false) == [97, 257])
    }
}
