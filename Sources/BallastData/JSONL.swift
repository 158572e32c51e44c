import BallastFormats
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
        // fsync'd before the rename: a stage's done-marker, written after this, must never outlive its data.
        try AtomicFile.write(out, to: path)
    }
}
