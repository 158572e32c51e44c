import BallastData
import BallastTokenizers
import Foundation

/// How a model turns text into ids and back: Ballast's byte tokenizer (the built-in benchmark's), or the
/// Hugging Face BPE tokenizer and chat template of its folder. Every stage encodes through the model's
/// codec, so one pipeline serves both.
///
/// A prompt is a plain text or a conversation. With a chat template both are rendered by it with the
/// generation prompt (a plain text as one user turn); without one, a plain text is encoded with the
/// tokenizer's own special tokens (the byte tokenizer's BOS). A response is its tokens, then the
/// end-of-turn token (`eos`): exactly what generation produces, so a reward model scores rollouts in the
/// form it was trained on.
public final class TextCodec: @unchecked Sendable {
    /// nil: the byte tokenizer.
    public let tokenizer: BPETokenizer?
    public let chat: ChatTemplate?
    /// Ends a response: generation stops on it (the byte tokenizer's EOS; a chat model's end of turn).
    public let eos: Int32
    public let pad: Int32
    /// The tokenizer files a checkpoint of this model carries (empty: the byte tokenizer's are written).
    public let files: [String: Data]
    /// Why the folder's chat template cannot be used (a construct outside the supported subset): the
    /// model still loads, and what needs the template says this instead of rendering without it.
    public let chatProblem: String?

    public static let bytes = TextCodec()

    private init() {
        tokenizer = nil
        chat = nil
        eos = ByteTokenizer.eos
        pad = ByteTokenizer.pad
        files = [:]
        chatProblem = nil
    }

    /// The tokenizer files a checkpoint folder may hold.
    public static let fileNames = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                                   "vocab.json", "merges.txt"]

    init(tokenizer: BPETokenizer, chat: ChatTemplate?, chatProblem: String?, eos: Int32, pad: Int32, files: [String: Data]) {
        self.tokenizer = tokenizer
        self.chat = chat
        self.chatProblem = chatProblem
        self.eos = eos
        self.pad = pad
        self.files = files
    }

    /// The codec of a model folder: the byte tokenizer when the folder has no tokenizer files or has
    /// Ballast's byte tokenizer files; else its BPE tokenizer, chat template and special tokens.
    /// The token that ends a response (`eos`): with a chat template, the special token the template closes
    /// an assistant turn with (a base model's eos_token often differs: Qwen2.5's <|endoftext|> against its
    /// template's <|im_end|>); else eos_token from tokenizer_config.json, special_tokens_map.json or
    /// config.json's eos_token_id. pad: pad_token, else eos.
    public static func load(directory dir: String) throws -> TextCodec {
        let fm = FileManager.default
        guard fm.fileExists(atPath: dir + "/tokenizer.json") || fm.fileExists(atPath: dir + "/vocab.json") else { return .bytes }
        let tokenizer = try BPETokenizer.load(directory: dir)
        if isByteTokenizer(tokenizer) { return .bytes }
        var files: [String: Data] = [:]
        for name in fileNames { if let d = fm.contents(atPath: dir + "/" + name) { files[name] = d } }
        func json(_ data: Data?) -> [String: Any] { data.flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] } ?? [:] }
        let config = json(files["tokenizer_config.json"]), map = json(files["special_tokens_map.json"])
        let modelConfig = json(fm.contents(atPath: dir + "/config.json"))
        func special(_ key: String) throws -> Int32? {
            for source in [config, map] {
                let content = (source[key] as? String) ?? ((source[key] as? [String: Any])?["content"] as? String)
                guard let content else { continue }
                guard let id = tokenizer.id(of: content) else { throw TokenizerError("\(dir): \(key) \"\(content)\" is not a token of tokenizer.json") }
                return id
            }
            let fromModel = (modelConfig[key + "_id"] as? Int) ?? (modelConfig[key + "_id"] as? [Int])?.first
            return fromModel.map { Int32($0) }
        }
        var chat: ChatTemplate?, chatProblem: String?
        do { chat = try ChatTemplate.load(directory: dir) } catch { chatProblem = "\(error)" }
        var eos = try special("eos_token")
        if let chat, let end = try? endOfTurn(chat, tokenizer) { eos = end }
        guard let eos else {
            throw TokenizerError("\(dir): no eos_token (tokenizer_config.json, special_tokens_map.json or config.json): Ballast needs it to end responses and stop generation")
        }
        return TextCodec(tokenizer: tokenizer, chat: chat, chatProblem: chatProblem, eos: eos, pad: try special("pad_token") ?? eos, files: files)
    }

    /// The added token a template puts right after an assistant turn's content, if any.
    static func endOfTurn(_ chat: ChatTemplate, _ tokenizer: BPETokenizer) throws -> Int32? {
        let probe = "Ballast probe 7"
        let turns = [ChatMessage(role: "user", content: "Hi"), ChatMessage(role: "assistant", content: probe)]
        let before = try chat.text(Array(turns.prefix(1)), addGenerationPrompt: true)
        let through = try chat.text(turns, addGenerationPrompt: false)
        guard through.hasPrefix(before), let content = through.range(of: probe, range: through.index(through.startIndex, offsetBy: before.count)..<through.endIndex) else {
            return nil
        }
        let after = tokenizer.encode(String(through[content.upperBound...]), addSpecialTokens: false)
        guard let first = after.first, tokenizer.isAddedToken(first) else { return nil }
        return first
    }

    /// Ballast's byte tokenizer written as Hugging Face files (ByteTokenizerFiles): no merges, the bytes at
    /// their own ids, <bos> <eos> <pad> at 256–258.
    static func isByteTokenizer(_ t: BPETokenizer) -> Bool {
        t.vocabSize == ByteTokenizer.vocabSize && t.model.mergeCount == 0 && t.id(of: "<bos>") == ByteTokenizer.bos
            && t.id(of: "<eos>") == ByteTokenizer.eos && t.id(of: "<pad>") == ByteTokenizer.pad
    }

    /// Whether `other` reads and writes text exactly as this codec does (same tokenizer files and end
    /// token): models that exchange token ids (policy, reference, critic, scorer) must agree.
    public func sameText(as other: TextCodec) -> Bool { files == other.files && eos == other.eos }

    /// Smallest vocabulary a model needs for this codec.
    public var vocabSize: Int { tokenizer?.vocabSize ?? ByteTokenizer.vocabSize }

    /// Ids of a plain-text prompt (see the type's comment).
    public func promptIds(_ text: String) throws -> [Int32] {
        guard let tokenizer else { return [ByteTokenizer.bos] + ByteTokenizer().encode(text) }
        if let chatProblem { throw TokenizerError(chatProblem) }  // a chat model's prompts need its template
        if let chat { return try chat.render([ChatMessage(role: "user", content: text)], addGenerationPrompt: true, tokenizer: tokenizer).ids }
        return tokenizer.encode(text, addSpecialTokens: true)
    }

    /// Ids of a conversation to be continued by the assistant (needs a chat template).
    public func promptIds(messages: [ChatMessage]) throws -> [Int32] {
        let (tokenizer, chat) = try chatParts()
        return try chat.render(messages, addGenerationPrompt: true, tokenizer: tokenizer).ids
    }

    /// Ids of a record's prompt: its conversation when it has one, else its text.
    public func promptIds(text: String, messages: [ChatMessage]?) throws -> [Int32] {
        if let messages { return try promptIds(messages: messages) }
        return try promptIds(text)
    }

    /// A response's tokens followed by `eos`.
    public func responseIds(_ text: String) -> [Int32] {
        guard let tokenizer else { return ByteTokenizer().encode(text) + [eos] }
        return tokenizer.encode(text, addSpecialTokens: false) + [eos]
    }

    /// A whole conversation for SFT: its ids and which of them are assistant tokens (trained on).
    public func conversation(_ messages: [ChatMessage]) throws -> (ids: [Int32], assistant: [Float]) {
        let (tokenizer, chat) = try chatParts()
        let r = try chat.render(messages, addGenerationPrompt: false, tokenizer: tokenizer)
        return (r.ids, r.assistantMask)
    }

    /// The text of generated ids, without the final `eos` and without special tokens.
    public func decodeResponse(_ ids: [Int32]) -> String {
        let body = ids.last == eos ? Array(ids.dropLast()) : ids
        guard let tokenizer else { return ByteTokenizer().decode(body) }
        // ids a padded vocabulary has beyond the tokenizer's (Qwen pads to a multiple of 128) spell nothing
        return (try? tokenizer.decode(body.filter(tokenizer.knows), skipSpecialTokens: true)) ?? ""
    }

    private func chatParts() throws -> (BPETokenizer, ChatTemplate) {
        if let chatProblem { throw TokenizerError(chatProblem) }
        guard let tokenizer, let chat else {
            throw TokenizerError(tokenizer == nil
                ? "conversational data needs a model with a BPE tokenizer and a chat template; this model uses the byte tokenizer"
                : "conversational data needs a chat template; the model's tokenizer folder has none (tokenizer_config.json chat_template or chat_template.jinja)")
        }
        return (tokenizer, chat)
    }
}
