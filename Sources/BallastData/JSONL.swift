import Foundation

/// A malformed dataset line: names the file, the 1-based line and the problem.
public struct DatasetError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let line: Int
    public let problem: String
    public init(file: String, line: Int, problem: String) {
        self.file = file
        self.line = line
        self.problem = problem
    }
    public var description: String { line > 0 ? "\(file):\(line): \(problem)" : "\(file): \(problem)" }
}

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

public enum JSONL {
    /// Parses every non-blank line of `path` as a JSON object.
    public static func readObjects(_ path: String) throws -> [(line: Int, object: [String: Any])] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DatasetError(file: path, line: 0, problem: "cannot read file")
        }
        var out: [(Int, [String: Any])] = []
        var lineNo = 0
        for raw in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNo += 1
            if raw.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            guard let obj = try? JSONSerialization.jsonObject(with: Data(raw)) else {
                throw DatasetError(file: path, line: lineNo, problem: "not valid JSON")
            }
            guard let dict = obj as? [String: Any] else {
                throw DatasetError(file: path, line: lineNo, problem: "expected a JSON object")
            }
            out.append((lineNo, dict))
        }
        return out
    }

    public static func readSFT(_ path: String) throws -> [SFTExample] {
        let rows = try readObjects(path)
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

    public static func write<T: Encodable>(_ rows: [T], to path: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var out = Data()
        for r in rows {
            out.append(try enc.encode(r))
            out.append(0x0A)
        }
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        try out.write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
