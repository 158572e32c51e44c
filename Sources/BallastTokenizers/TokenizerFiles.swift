import Foundation

extension BPETokenizer {
    /// The tokenizer of a model folder: `tokenizer.json`, else `vocab.json` + `merges.txt`.
    public static func load(directory dir: String) throws -> BPETokenizer {
        let fm = FileManager.default
        if fm.fileExists(atPath: dir + "/tokenizer.json") { return try load(tokenizerJSON: dir + "/tokenizer.json") }
        if fm.fileExists(atPath: dir + "/vocab.json") && fm.fileExists(atPath: dir + "/merges.txt") {
            return try load(vocabJSON: dir + "/vocab.json", mergesTxt: dir + "/merges.txt")
        }
        throw TokenizerError("\(dir): no tokenizer.json, and no vocab.json + merges.txt")
    }

    /// A `tokenizers` file (format version 1.0) with a BPE model.
    public static func load(tokenizerJSON path: String) throws -> BPETokenizer {
        func fail(_ what: String) -> TokenizerError { TokenizerError("\(path): \(what)") }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch { throw fail("cannot read (\(error.localizedDescription))") }
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw fail("not a JSON object") }
        guard let model = root["model"] as? [String: Any], (model["type"] as? String ?? "BPE") == "BPE" else {
            throw fail("only BPE models are supported (model.type is \((root["model"] as? [String: Any])?["type"] ?? "missing"))")
        }
        if let d = model["dropout"] as? Double, d > 0 { throw fail("BPE dropout is not supported") }
        if model["byte_fallback"] as? Bool == true { throw fail("byte_fallback (SentencePiece-style BPE) is not supported: only byte-level BPE") }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] where !(model[key] is NSNull || model[key] == nil) {
            throw fail("model.\(key) is not supported")
        }
        guard let rawVocab = model["vocab"] as? [String: Any] else { throw fail("model.vocab is missing") }
        var vocab: [String: Int32] = [:]
        for (k, v) in rawVocab {
            guard let id = (v as? NSNumber)?.int32Value else { throw fail("model.vocab[\(k)] is not an id") }
            vocab[k] = id
        }
        var merges: [(String, String)] = []
        for (n, m) in (model["merges"] as? [Any] ?? []).enumerated() {
            if let s = m as? String {  // "a b" (older files)
                let parts = s.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw fail("merge \(n) \"\(s)\" is not two tokens") }
                merges.append((String(parts[0]), String(parts[1])))
            } else if let pair = m as? [String], pair.count == 2 {
                merges.append((pair[0], pair[1]))
            } else {
                throw fail("merge \(n) is neither \"a b\" nor [a, b]")
            }
        }
        let nfc = try normalizer(root["normalizer"], fail)
        let pattern = try preTokenizer(root["pre_tokenizer"], fail)
        var added: [AddedToken] = []
        for t in root["added_tokens"] as? [[String: Any]] ?? [] {
            guard let id = (t["id"] as? NSNumber)?.int32Value, let content = t["content"] as? String else { throw fail("an added token without id or content") }
            if t["single_word"] as? Bool == true { throw fail("added token \(content): single_word is not supported") }
            added.append(AddedToken(id: id, content: content, special: t["special"] as? Bool ?? false,
                                    lstrip: t["lstrip"] as? Bool ?? false, rstrip: t["rstrip"] as? Bool ?? false))
        }
        let (prefix, suffix) = try postProcessor(root["post_processor"], vocab: vocab, added: added, fail)
        if let dec = root["decoder"] as? [String: Any] {
            let types = ((dec["type"] as? String) == "Sequence" ? (dec["decoders"] as? [[String: Any]] ?? []) : [dec]).compactMap { $0["type"] as? String }
            guard types.allSatisfy({ $0 == "ByteLevel" }) else { throw fail("decoder \(types) is not supported (only ByteLevel)") }
        }
        return try BPETokenizer(vocab: vocab, merges: merges, ignoreMerges: model["ignore_merges"] as? Bool ?? false, pattern: pattern,
                                nfc: nfc, addedTokens: added, prefix: prefix, suffix: suffix)
    }

    /// GPT-2's two-file format; `<|endoftext|>`, when in the vocabulary, is a special token as in GPT-2.
    public static func load(vocabJSON: String, mergesTxt: String) throws -> BPETokenizer {
        guard let data = FileManager.default.contents(atPath: vocabJSON),
              let raw = try? JSONSerialization.jsonObject(with: data) as? [String: NSNumber] else {
            throw TokenizerError("\(vocabJSON): not a JSON object of token → id")
        }
        let vocab = raw.mapValues { $0.int32Value }
        guard let text = try? String(contentsOfFile: mergesTxt, encoding: .utf8) else { throw TokenizerError("\(mergesTxt): cannot read") }
        var merges: [(String, String)] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            if n == 0 && line.hasPrefix("#version") { continue }
            let parts = line.split(separator: " ")
            guard parts.count == 2 else { throw TokenizerError("\(mergesTxt): line \(n + 1) is not two tokens") }
            merges.append((String(parts[0]), String(parts[1])))
        }
        let added = vocab["<|endoftext|>"].map { [AddedToken(id: $0, content: "<|endoftext|>", special: true)] } ?? []
        return try BPETokenizer(vocab: vocab, merges: merges, ignoreMerges: false, pattern: .gpt2, nfc: false,
                                addedTokens: added, prefix: [], suffix: [])
    }

    static func normalizer(_ node: Any?, _ fail: (String) -> TokenizerError) throws -> Bool {
        guard let n = node as? [String: Any] else { return false }
        switch n["type"] as? String {
        case "NFC": return true
        case "Sequence":
            var nfc = false
            for inner in n["normalizers"] as? [Any] ?? [] { nfc = try normalizer(inner, fail) || nfc }
            return nfc
        default: throw fail("normalizer \(n["type"] ?? "?") is not supported (only NFC)")
        }
    }

    static func preTokenizer(_ node: Any?, _ fail: (String) -> TokenizerError) throws -> PreTokenizerPattern {
        guard let n = node as? [String: Any] else { throw fail("no pre_tokenizer: byte-level BPE needs one") }
        let steps = (n["type"] as? String) == "Sequence" ? (n["pretokenizers"] as? [[String: Any]] ?? []) : [n]
        var pattern: PreTokenizerPattern?
        var byteLevel = false
        for step in steps {
            switch step["type"] as? String {
            case "ByteLevel":
                if step["add_prefix_space"] as? Bool == true { throw fail("ByteLevel add_prefix_space is not supported") }
                byteLevel = true
                if step["use_regex"] as? Bool ?? true {
                    guard pattern == nil else { throw fail("two splitting patterns") }
                    pattern = .gpt2
                }
            case "Split":
                guard let regex = (step["pattern"] as? [String: Any])?["Regex"] as? String else { throw fail("Split without a Regex pattern") }
                guard let p = PreTokenizerPattern(expression: regex) else {
                    throw fail("pre-tokenizer pattern \(regex) is not supported (supported: the GPT-2, Llama 3 and Qwen2 patterns)")
                }
                guard (step["behavior"] as? String ?? "Isolated") == "Isolated", step["invert"] as? Bool != true else {
                    throw fail("Split must be Isolated and not inverted")
                }
                guard pattern == nil else { throw fail("two splitting patterns") }
                pattern = p
            default:
                throw fail("pre-tokenizer \(step["type"] ?? "?") is not supported (only Split and ByteLevel)")
            }
        }
        guard byteLevel, let pattern else { throw fail("pre-tokenizer is not byte-level with a known splitting pattern") }
        return pattern
    }

    /// Ids the post-processor adds around a single sequence.
    static func postProcessor(_ node: Any?, vocab: [String: Int32], added: [AddedToken], _ fail: (String) -> TokenizerError) throws
        -> (prefix: [Int32], suffix: [Int32]) {
        guard let n = node as? [String: Any] else { return ([], []) }
        switch n["type"] as? String {
        case "ByteLevel": return ([], [])
        case "Sequence":
            var prefix: [Int32] = [], suffix: [Int32] = []
            for inner in n["processors"] as? [Any] ?? [] {
                let (p, s) = try postProcessor(inner, vocab: vocab, added: added, fail)
                prefix = p + prefix
                suffix += s
            }
            return (prefix, suffix)
        case "TemplateProcessing":
            let specials = n["special_tokens"] as? [String: [String: Any]] ?? [:]
            var prefix: [Int32] = [], suffix: [Int32] = []
            var seenSequence = false
            for item in n["single"] as? [[String: Any]] ?? [] {
                if item["Sequence"] != nil { seenSequence = true; continue }
                guard let name = (item["SpecialToken"] as? [String: Any])?["id"] as? String,
                      let ids = (specials[name]?["ids"] as? [NSNumber])?.map(\.int32Value) else {
                    throw fail("post_processor.single has an entry that is neither a Sequence nor a known SpecialToken")
                }
                if seenSequence { suffix += ids } else { prefix += ids }
            }
            return (prefix, suffix)
        default:
            throw fail("post_processor \(n["type"] ?? "?") is not supported (ByteLevel, TemplateProcessing, Sequence)")
        }
    }
}
