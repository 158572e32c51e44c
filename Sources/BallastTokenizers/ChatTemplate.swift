import Foundation

/// One turn of a conversation, as TRL's conversational datasets hold it.
public struct ChatMessage: Sendable, Equatable, Codable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A conversation rendered and tokenized as `transformers`' `apply_chat_template` does: the template
/// renders the text, which is tokenized without the post-processor's special tokens.
public struct RenderedChat: Sendable, Equatable {
    public var text: String
    public var ids: [Int32]
    /// 1 for the tokens of assistant turns (what SFT trains on), 0 elsewhere; see `ChatTemplate.render`.
    public var assistantMask: [Float]
}

/// A model's chat template (Jinja, from `tokenizer_config.json`'s `chat_template` or `chat_template.jinja`)
/// with the special-token strings it refers to.
public struct ChatTemplate: Sendable {
    public let source: String
    /// bos_token, eos_token, pad_token, unk_token … → their text, as templates see them.
    public let specialTokens: [String: String]
    let template: JinjaTemplate

    public init(source: String, bosToken: String = "", eosToken: String = "", specialTokens: [String: String] = [:]) throws {
        do { template = try JinjaTemplate(source) } catch let e as JinjaTemplate.Failure {
            throw TokenizerError("chat template: \(e.description)")
        }
        self.source = source
        // only the tokens a tokenizer has: an unset one is undefined to the template, as in transformers
        var tokens = specialTokens.filter { !$0.value.isEmpty }
        if !bosToken.isEmpty { tokens["bos_token"] = tokens["bos_token"] ?? bosToken }
        if !eosToken.isEmpty { tokens["eos_token"] = tokens["eos_token"] ?? eosToken }
        self.specialTokens = tokens
    }

    /// The template of a tokenizer folder: `chat_template.jinja`, else `tokenizer_config.json`'s
    /// `chat_template` (a string, or a list of named templates of which "default" is taken); nil if none.
    public static func load(directory dir: String) throws -> ChatTemplate? {
        var config: [String: Any] = [:]
        let configPath = dir + "/tokenizer_config.json"
        if let data = FileManager.default.contents(atPath: configPath) {
            guard let c = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw TokenizerError("\(configPath): not a JSON object") }
            config = c
        }
        func token(_ key: String) -> String {
            if let s = config[key] as? String { return s }
            return (config[key] as? [String: Any])?["content"] as? String ?? ""
        }
        var source: String?
        if let data = FileManager.default.contents(atPath: dir + "/chat_template.jinja") {
            source = String(decoding: data, as: UTF8.self)
        } else if let s = config["chat_template"] as? String {
            source = s
        } else if let list = config["chat_template"] as? [[String: Any]] {
            guard let d = list.first(where: { $0["name"] as? String == "default" })?["template"] as? String else {
                throw TokenizerError("\(configPath): chat_template is a list without a \"default\" template")
            }
            source = d
        }
        guard let source else { return nil }
        var specials: [String: String] = [:]
        for key in ["bos_token", "eos_token", "pad_token", "unk_token", "sep_token", "cls_token", "mask_token"] { specials[key] = token(key) }
        do { return try ChatTemplate(source: source, specialTokens: specials) } catch let e as TokenizerError {
            throw TokenizerError("\(dir): \(e.description)")
        }
    }

    /// The template's text for `messages`; with `addGenerationPrompt`, followed by what opens an assistant turn.
    public func text(_ messages: [ChatMessage], addGenerationPrompt: Bool) throws -> String {
        let list: JinjaTemplate.Value = .list(messages.map { .dict(["role": .string($0.role), "content": .string($0.content)]) })
        do {
            // as transformers passes them: tools and documents None, the special tokens by name
            var context: [String: JinjaTemplate.Value] = ["messages": list, "add_generation_prompt": .bool(addGenerationPrompt),
                                                          "tools": .none, "documents": .none]
            for (name, token) in specialTokens { context[name] = .string(token) }
            return try template.render(context)
        } catch let e as JinjaTemplate.Failure {
            throw TokenizerError("chat template: \(e.description)")
        }
    }

    /// Text, ids and assistant mask of a conversation. An assistant turn's text is what lies between the
    /// conversation before it rendered with the generation prompt and the conversation through it: the
    /// turn's content and what closes it (ChatML's `<|im_end|>\n`, Llama 3's `<|eot_id|>`), which is what
    /// the model must learn to produce and stop with. A token is an assistant token when any of its
    /// characters is, as `transformers` marks the characters of `{% generation %}` blocks.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = false, tokenizer: BPETokenizer) throws -> RenderedChat {
        let text = try self.text(messages, addGenerationPrompt: addGenerationPrompt)
        let (ids, offsets) = tokenizer.encodeWithOffsets(text)
        var mask = [Float](repeating: 0, count: ids.count)
        let whole = Array(text.unicodeScalars)
        for (i, m) in messages.enumerated() where m.role == "assistant" {
            let before = Array(try self.text(Array(messages[..<i]), addGenerationPrompt: true).unicodeScalars)
            let through = Array(try self.text(Array(messages[...i]), addGenerationPrompt: false).unicodeScalars)
            guard whole.starts(with: through), through.starts(with: before) else {
                throw TokenizerError("chat template: the conversation up to message \(i) does not render as a prefix of the whole, so its assistant tokens cannot be located")
            }
            for (k, r) in offsets.enumerated() where r.lowerBound < through.count && r.upperBound > before.count { mask[k] = 1 }
        }
        return RenderedChat(text: text, ids: ids, assistantMask: mask)
    }
}
