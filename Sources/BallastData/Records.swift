import BallastTokenizers
import Foundation

// The dataset records every stage reads and writes, in TRL's conventions, and their JSONL readers
// (errors name the file and line).

/// One SFT example in TRL's convention: {"prompt", "completion"} plus optional "task" and "id"; or
/// conversational, {"messages": [...]} (every assistant turn is trained on) or a conversational
/// prompt and completion, kept in `messages` (then `prompt` and `completion` are the first user turn
/// and the last assistant turn, for display).
public struct SFTExample: Sendable, Equatable, Codable {
    public var prompt: String
    public var completion: String
    public var task: String?
    public var id: String?
    public var messages: [ChatMessage]?
    public init(prompt: String, completion: String, task: String? = nil, id: String? = nil, messages: [ChatMessage]? = nil) {
        self.prompt = prompt
        self.completion = completion
        self.task = task
        self.id = id
        self.messages = messages
    }
}

/// Conversational fields of TRL's datasets: a list of {"role", "content"} objects.
enum Conversation {
    static func messages(_ value: Any?, file: String, line: Int, field: String) throws -> [ChatMessage]? {
        guard let list = value as? [Any] else { return nil }
        return try list.enumerated().map { k, item in
            guard let m = item as? [String: Any], let role = m["role"] as? String, let content = m["content"] as? String else {
                throw DatasetError(file: file, line: line, problem: "\(field)[\(k)] is not a {\"role\", \"content\"} message with string content")
            }
            return ChatMessage(role: role, content: content)
        }
    }

    /// The text of a one-message assistant response ([{"role": "assistant", "content": …}]).
    static func response(_ value: Any?, file: String, line: Int, field: String) throws -> String? {
        if let s = value as? String { return s }
        guard let m = try messages(value, file: file, line: line, field: field) else { return nil }
        guard m.count == 1, m[0].role == "assistant" else {
            throw DatasetError(file: file, line: line, problem: "\"\(field)\" must be one assistant message (the prompt holds the conversation before it)")
        }
        return m[0].content
    }

    /// What a conversation's prompt shows as text: its last user turn.
    static func lastUserText(_ m: [ChatMessage]) -> String { m.last { $0.role == "user" }?.content ?? m.last?.content ?? "" }
}

extension SFTExample {
    public static func read(_ path: String) throws -> [SFTExample] {
        let rows = try JSONL.readObjects(path)
        if rows.isEmpty { throw DatasetError(file: path, line: 0, problem: "no examples") }
        return try rows.map { line, obj in
            func str(_ key: String, required: Bool) throws -> String? {
                guard let v = obj[key] else {
                    if required { throw DatasetError(file: path, line: line, problem: "missing field \"\(key)\"") }
                    return nil
                }
                if let s = v as? String { return s }
                if !required, let n = v as? NSNumber { return n.stringValue }
                throw DatasetError(file: path, line: line, problem: "field \"\(key)\" must be a string")
            }
            let task = try str("task", required: false), id = try str("id", required: false)
            if let m = try Conversation.messages(obj["messages"], file: path, line: line, field: "messages") {
                guard m.contains(where: { $0.role == "assistant" }) else {
                    throw DatasetError(file: path, line: line, problem: "\"messages\" has no assistant turn to train on")
                }
                return SFTExample(prompt: Conversation.lastUserText(m), completion: m.last { $0.role == "assistant" }!.content,
                                  task: task, id: id, messages: m)
            }
            if let prompt = try Conversation.messages(obj["prompt"], file: path, line: line, field: "prompt") {
                guard let completion = try Conversation.response(obj["completion"], file: path, line: line, field: "completion") else {
                    throw DatasetError(file: path, line: line, problem: "missing field \"completion\"")
                }
                return SFTExample(prompt: Conversation.lastUserText(prompt), completion: completion, task: task, id: id,
                                  messages: prompt + [ChatMessage(role: "assistant", content: completion)])
            }
            return SFTExample(prompt: try str("prompt", required: true)!, completion: try str("completion", required: true)!,
                              task: task, id: id)
        }
    }
}

/// A prompt with its task and id (the benchmark's, or the user's own); a conversational prompt keeps
/// its turns in `messages` and its last user turn in `prompt`.
public struct PromptRecord: Codable, Sendable, Equatable {
    public var prompt: String
    public var task: String
    public var id: String
    public var messages: [ChatMessage]?
    public init(prompt: String, task: String, id: String, messages: [ChatMessage]? = nil) {
        self.prompt = prompt
        self.task = task
        self.id = id
        self.messages = messages
    }
}

extension PromptRecord {
    /// A record from one JSON object as a prompts file holds it (text or conversational prompt); nil if it is neither.
    public init?(json obj: [String: Any], defaultID: String = "") {
        let messages = try? Conversation.messages(obj["prompt"], file: "", line: 0, field: "prompt")
        guard let text = (obj["prompt"] as? String) ?? messages.map(Conversation.lastUserText) else { return nil }
        self.init(prompt: text, task: obj["task"] as? String ?? "", id: obj["id"] as? String ?? defaultID, messages: messages)
    }

    /// Reads {"prompt","task","id"} JSONL (prompts of the built-in benchmark or the user's own).
    public static func read(_ path: String) throws -> [PromptRecord] {
        try JSONL.readObjects(path).map { line, obj in
            let messages = try Conversation.messages(obj["prompt"], file: path, line: line, field: "prompt")
            guard let p = (obj["prompt"] as? String) ?? messages.map(Conversation.lastUserText) else {
                throw DatasetError(file: path, line: line, problem: "missing field \"prompt\" (a string or a list of messages)")
            }
            guard let t = obj["task"] as? String else { throw DatasetError(file: path, line: line, problem: "missing string field \"task\" (the annotator is per task)") }
            return PromptRecord(prompt: p, task: t, id: (obj["id"] as? String) ?? "\(line)", messages: messages)
        }
    }
}

/// A preference pair in TRL's convention.
public struct PreferencePair: Codable, Sendable, Equatable {
    public var prompt: String
    public var chosen: String
    public var rejected: String
    public var task: String?
    public var id: String?
    /// The simulated annotator's probability of this choice (chosen ≻ rejected), when the pair was
    /// labelled by one: the Bayes ceiling of the labels is the mean of max(p, 1 − p).
    public var annotatorP: Double?
    /// A conversational prompt's turns (`prompt` then holds its last user turn).
    public var promptMessages: [ChatMessage]?
    public init(prompt: String, chosen: String, rejected: String, task: String?, id: String?, annotatorP: Double? = nil,
                promptMessages: [ChatMessage]? = nil) {
        self.promptMessages = promptMessages
        self.prompt = prompt
        self.chosen = chosen
        self.rejected = rejected
        self.task = task
        self.id = id
        self.annotatorP = annotatorP
    }

    enum CodingKeys: String, CodingKey {
        case prompt, chosen, rejected, task, id
        case annotatorP = "annotator_p"
        case promptMessages = "prompt_messages"  // decoding only; written as "prompt"
    }
}

extension PreferencePair {
    /// Reads {"prompt","chosen","rejected"} JSONL (optional "task", "id"); errors name file and line.
    public static func read(_ path: String) throws -> [PreferencePair] {
        let rows = try JSONL.readObjects(path)
        if rows.isEmpty { throw DatasetError(file: path, line: 0, problem: "no preference pairs") }
        return try rows.map { line, obj in
            func response(_ k: String) throws -> String {
                guard let s = try Conversation.response(obj[k], file: path, line: line, field: k) else {
                    throw DatasetError(file: path, line: line, problem: "missing field \"\(k)\" (a string or one assistant message)")
                }
                return s
            }
            let messages = try Conversation.messages(obj["prompt"], file: path, line: line, field: "prompt")
            guard let prompt = (obj["prompt"] as? String) ?? messages.map(Conversation.lastUserText) else {
                throw DatasetError(file: path, line: line, problem: "missing field \"prompt\" (a string or a list of messages)")
            }
            return PreferencePair(prompt: prompt, chosen: try response("chosen"), rejected: try response("rejected"),
                                  task: obj["task"] as? String, id: obj["id"] as? String, annotatorP: obj["annotator_p"] as? Double,
                                  promptMessages: messages)
        }
    }
}

// Written in TRL's form: a conversational record's prompt (or whole conversation) as its list of
// messages, so that what Ballast writes (labelled pairs, selected prompts, rehearsal sets) reads back
// and loads in TRL alike.
extension SFTExample {
    enum Keys: String, CodingKey { case prompt, completion, task, id, messages }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        if let messages {
            try c.encode(messages, forKey: .messages)
        } else {
            try c.encode(prompt, forKey: .prompt)
            try c.encode(completion, forKey: .completion)
        }
        try c.encodeIfPresent(task, forKey: .task)
        try c.encodeIfPresent(id, forKey: .id)
    }
}

extension PromptRecord {
    enum Keys: String, CodingKey { case prompt, task, id }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        if let messages { try c.encode(messages, forKey: .prompt) } else { try c.encode(prompt, forKey: .prompt) }
        try c.encode(task, forKey: .task)
        try c.encode(id, forKey: .id)
    }
}

extension PreferencePair {
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if let promptMessages {
            try c.encode(promptMessages, forKey: .prompt)
            try c.encode([ChatMessage(role: "assistant", content: chosen)], forKey: .chosen)
            try c.encode([ChatMessage(role: "assistant", content: rejected)], forKey: .rejected)
        } else {
            try c.encode(prompt, forKey: .prompt)
            try c.encode(chosen, forKey: .chosen)
            try c.encode(rejected, forKey: .rejected)
        }
        try c.encodeIfPresent(task, forKey: .task)
        try c.encodeIfPresent(id, forKey: .id)
        try c.encodeIfPresent(annotatorP, forKey: .annotatorP)
    }
}
