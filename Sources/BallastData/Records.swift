import Foundation

// The dataset records every stage reads and writes, in TRL's conventions, and their JSONL readers
// (errors name the file and line).

/// One SFT example in TRL's convention: {"prompt", "completion"} plus optional "task" and "id".
public struct SFTExample: Sendable, Equatable, Codable {
    public var prompt: String
    public var completion: String
    public var task: String?
    public var id: String?
    public init(prompt: String, completion: String, task: String? = nil, id: String? = nil) {
        self.prompt = prompt
        self.completion = completion
        self.task = task
        self.id = id
    }
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
            return SFTExample(prompt: try str("prompt", required: true)!, completion: try str("completion", required: true)!,
                              task: try str("task", required: false), id: try str("id", required: false))
        }
    }
}

/// A prompt with its task and id (the benchmark's, or the user's own).
public struct PromptRecord: Codable, Sendable, Equatable {
    public var prompt: String
    public var task: String
    public var id: String
    public init(prompt: String, task: String, id: String) {
        self.prompt = prompt
        self.task = task
        self.id = id
    }
}

extension PromptRecord {
    /// Reads {"prompt","task","id"} JSONL (prompts of the built-in benchmark or the user's own).
    public static func read(_ path: String) throws -> [PromptRecord] {
        try JSONL.readObjects(path).map { line, obj in
            guard let p = obj["prompt"] as? String else { throw DatasetError(file: path, line: line, problem: "missing string field \"prompt\"") }
            guard let t = obj["task"] as? String else { throw DatasetError(file: path, line: line, problem: "missing string field \"task\" (the annotator is per task)") }
            return PromptRecord(prompt: p, task: t, id: (obj["id"] as? String) ?? "\(line)")
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
    public init(prompt: String, chosen: String, rejected: String, task: String?, id: String?, annotatorP: Double? = nil) {
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
    }
}

extension PreferencePair {
    /// Reads {"prompt","chosen","rejected"} JSONL (optional "task", "id"); errors name file and line.
    public static func read(_ path: String) throws -> [PreferencePair] {
        let rows = try JSONL.readObjects(path)
        if rows.isEmpty { throw DatasetError(file: path, line: 0, problem: "no preference pairs") }
        return try rows.map { line, obj in
            func str(_ k: String) throws -> String {
                guard let s = obj[k] as? String else { throw DatasetError(file: path, line: line, problem: "missing string field \"\(k)\"") }
                return s
            }
            return PreferencePair(prompt: try str("prompt"), chosen: try str("chosen"), rejected: try str("rejected"),
                                  task: obj["task"] as? String, id: obj["id"] as? String, annotatorP: obj["annotator_p"] as? Double)
        }
    }
}
