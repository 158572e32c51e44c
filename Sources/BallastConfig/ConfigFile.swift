import Foundation
import Yams

/// A configuration problem, naming the file (or `--set`) and the key.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A YAML config as nested dictionaries, with `--set a.b=value` overrides applied on top. Typed
/// readers mark keys as used; `ConfigSection.finish()` rejects any key nobody read, so a typo is an
/// error that names the key and the file rather than a silently ignored setting.
public final class ConfigDocument {
    public let file: String
    var root: [String: Any]
    /// Dotted keys that came from the command line, to name the right culprit in errors.
    var overridden: Set<String> = []

    public convenience init(file: String) throws {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw ConfigError("\(file): cannot read config file")
        }
        try self.init(yaml: text, name: file)
    }

    public init(yaml: String, name: String) throws {
        file = name
        let loaded: Any?
        do { loaded = try Yams.load(yaml: yaml) } catch {
            throw ConfigError("\(name): invalid YAML (\(error))")
        }
        if loaded == nil {
            root = [:]
        } else if let dict = loaded as? [String: Any] {
            root = dict
        } else {
            throw ConfigError("\(name): the top level must be a mapping of keys to values")
        }
    }

    /// A document made from a section of another one (the pipeline's per-stage sections).
    public init(root: [String: Any], name: String) {
        file = name
        self.root = root
    }

    /// The top-level keys, for a reader that checks which sections a document may have.
    public var topLevelKeys: [String] { Array(root.keys) }

    /// Sets `key=value` assignments as if the file said them (the pipeline's paths into its run
    /// folder): errors about them name the file, not `--set`.
    public func fill(_ assignments: [String]) throws {
        let fromCommandLine = overridden
        for a in assignments { try apply(override: a) }
        overridden = fromCommandLine
    }

    /// The raw mapping under a top-level key (empty when absent).
    public func subtree(_ key: String) throws -> [String: Any] {
        guard let v = root[key] else { return [:] }
        guard let d = v as? [String: Any] else { throw ConfigError("\(file): \"\(key)\" must be a mapping") }
        return d
    }

    /// Applies `key.path=value`; the value is parsed as a YAML scalar (numbers, booleans, null, strings).
    public func apply(override: String) throws {
        guard let eq = override.firstIndex(of: "=") else {
            throw ConfigError("--set \(override): expected key=value")
        }
        let key = String(override[..<eq]).trimmingCharacters(in: .whitespaces)
        let raw = String(override[override.index(after: eq)...])
        guard !key.isEmpty else { throw ConfigError("--set \(override): empty key") }
        let parsed: Any? = (try? Yams.load(yaml: raw)) ?? nil
        let value: Any = parsed ?? (raw.isEmpty ? NSNull() : raw)
        let parts = key.split(separator: ".").map(String.init)
        func set(_ dict: inout [String: Any], _ i: Int) throws {
            if i == parts.count - 1 {
                dict[parts[i]] = value
                return
            }
            var child = dict[parts[i]] as? [String: Any] ?? [:]
            if dict[parts[i]] != nil && !(dict[parts[i]] is [String: Any]) && !(dict[parts[i]] is NSNull) {
                throw ConfigError("--set \(key): \(parts[0...i].joined(separator: ".")) is not a section")
            }
            try set(&child, i + 1)
            dict[parts[i]] = child
        }
        try set(&root, 0)
        overridden.insert(key)
    }

    public var top: ConfigSection { ConfigSection(document: self, path: "", values: root) }
}

public final class ConfigSection {
    public let document: ConfigDocument
    public let path: String
    public let values: [String: Any]
    private var used: Set<String> = []

    init(document: ConfigDocument, path: String, values: [String: Any]) {
        self.document = document
        self.path = path
        self.values = values
    }

    public func full(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    public func origin(_ key: String) -> String {
        document.overridden.contains(full(key)) ? "--set \(full(key))" : document.file
    }

    func raw(_ key: String) -> Any? {
        used.insert(key)
        guard let v = values[key], !(v is NSNull) else { return nil }
        return v
    }

    func typeError(_ key: String, _ expected: String) -> ConfigError {
        ConfigError("\(origin(key)): \"\(full(key))\" must be \(expected), got \(String(describing: values[key]!))")
    }

    public func int(_ key: String, _ fallback: Int) throws -> Int {
        guard let v = raw(key) else { return fallback }
        if let i = v as? Int { return i }
        if let d = v as? Double, d == d.rounded() { return Int(d) }
        throw typeError(key, "an integer")
    }

    public func double(_ key: String, _ fallback: Double) throws -> Double {
        guard let v = raw(key) else { return fallback }
        if let d = v as? Double { return d }
        if let i = v as? Int { return Double(i) }
        if let s = v as? String, let d = Double(s) { return d }  // YAML 1.1 reads "1e-3" as a string
        throw typeError(key, "a number")
    }

    public func float(_ key: String, _ fallback: Float) throws -> Float { Float(try double(key, Double(fallback))) }

    public func bool(_ key: String, _ fallback: Bool) throws -> Bool {
        guard let v = raw(key) else { return fallback }
        if let b = v as? Bool { return b }
        throw typeError(key, "true or false")
    }

    public func string(_ key: String, _ fallback: String?) throws -> String? {
        guard let v = raw(key) else { return fallback }
        if let s = v as? String { return s }
        if let i = v as? Int { return String(i) }
        if let d = v as? Double { return String(d) }
        throw typeError(key, "a string")
    }

    /// A list of numbers: a YAML sequence, or a comma-separated string (as `--set key=0.7,1.0` gives).
    public func numbers(_ key: String, _ fallback: [Double]) throws -> [Double] {
        guard let v = raw(key) else { return fallback }
        let items: [Any] = (v as? [Any]) ?? ((v as? String)?.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } ?? [v])
        return try items.map { item in
            if let d = item as? Double { return d }
            if let i = item as? Int { return Double(i) }
            if let s = item as? String, let d = Double(s) { return d }
            throw typeError(key, "a list of numbers")
        }
    }

    public func positive(_ key: String, _ fallback: Int) throws -> Int {
        let v = try int(key, fallback)
        if v <= 0 { throw ConfigError("\(origin(key)): \"\(full(key))\" must be positive, got \(v)") }
        return v
    }

    /// A nested mapping; an absent key gives an empty section (all defaults).
    public func section(_ key: String) throws -> ConfigSection {
        guard let v = raw(key) else { return ConfigSection(document: document, path: full(key), values: [:]) }
        guard let d = v as? [String: Any] else { throw typeError(key, "a mapping") }
        return ConfigSection(document: document, path: full(key), values: d)
    }

    /// Rejects keys that no reader asked for.
    public func finish() throws {
        for key in values.keys.sorted() where !used.contains(key) {
            throw ConfigError("\(origin(key)): unknown key \"\(full(key))\"")
        }
    }
}

extension ConfigDocument {
    /// The document (overrides applied) as YAML, for handing a resolved config to child processes.
    public func yaml() throws -> String { try Yams.dump(object: root, sortKeys: true) }

    /// Whether the top level has `key` (tells a pipeline config from a single-stage one).
    public func hasKey(_ key: String) -> Bool { root[key] != nil }
}
