import Foundation

/// Ballast's byte tokenizer (byte b is token b, then BOS, EOS, PAD) written as Hugging Face tokenizer
/// files, so that `AutoTokenizer.from_pretrained` on a Ballast checkpoint gives Ballast's ids: a
/// byte-level BPE whose vocabulary spells each byte at its own id, with no merges, the specials as added
/// tokens and a template that starts every sequence with BOS.
public enum ByteTokenizerFiles {
    /// tokenizer.json, tokenizer_config.json and special_tokens_map.json.
    public static func files(bos: Int32, eos: Int32, pad: Int32, modelMaxLength: Int) throws -> [String: Data] {
        let names = [(bos, "<bos>"), (eos, "<eos>"), (pad, "<pad>")]
        var vocab: [String: Int] = [:]
        for b in 0..<256 { vocab[ByteLevel.spell([UInt8(b)])] = b }
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true]
        let bosItem: [String: Any] = ["SpecialToken": ["id": "<bos>", "type_id": 0]]
        let tokenizer: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(),
            "added_tokens": names.map { id, name -> [String: Any] in
                ["id": Int(id), "content": name, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true]
            },
            "normalizer": NSNull(),
            "pre_tokenizer": byteLevel,
            "post_processor": [
                "type": "TemplateProcessing",
                "single": [bosItem, ["Sequence": ["id": "A", "type_id": 0]]],
                "pair": [bosItem, ["Sequence": ["id": "A", "type_id": 0]], bosItem, ["Sequence": ["id": "B", "type_id": 1]]],
                "special_tokens": ["<bos>": ["id": "<bos>", "ids": [Int(bos)], "tokens": ["<bos>"]]],
            ] as [String: Any],
            "decoder": byteLevel,
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                      "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": [String]()] as [String: Any],
        ]
        let specials: [String: Any] = ["bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>"]
        var config = specials
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        config["model_max_length"] = modelMaxLength
        config["clean_up_tokenization_spaces"] = false
        func json(_ o: Any) throws -> Data { try JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys]) }
        return ["tokenizer.json": try json(tokenizer), "tokenizer_config.json": try json(config), "special_tokens_map.json": try json(specials)]
    }
}
