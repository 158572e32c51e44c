import BallastFormats
import BallastModel
import BallastWire
import Foundation

/// Models as `Weights` messages: the checkpoint's tensors under their GPT-2 names and its
/// config.json, so the payload is exactly a model.safetensors and an actor without a shared
/// filesystem can rebuild the model.
public enum WeightsWire {
    /// `withTokenizer` adds the model's tokenizer files (a BPE model's; none for the byte tokenizer) to the
    /// config as "ballast_tokenizer_files": sent with the reference and scorer, once per actor, not with
    /// every policy version.
    public static func message(_ model: GPT, policyVersion: UInt64, withTokenizer: Bool = false) throws -> Weights {
        var json = Checkpoint.configJSON(model.config, codec: model.codec)
        if withTokenizer && !model.codec.files.isEmpty {
            json[tokenizerKey] = model.codec.files.mapValues { String(decoding: $0, as: UTF8.self) }
        }
        let config = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
        let tensors = model.layout.entries.map { e in
            (e.name, TensorData(floats: UnsafeBufferPointer(start: model.params + e.offset, count: e.count), shape: e.shape))
        }
        return Weights(policyVersion: policyVersion, tensors: tensors, configJSON: String(decoding: config, as: UTF8.self))
    }

    /// The model the message carries, its tensors copied straight from the received payload into the
    /// parameters (each checked against the shipped config). `reuse`, when it has the same config, is
    /// overwritten in place instead of allocating a new model (an actor's policy, version after version).
    public static func model(from weights: Weights, reuse: GPT? = nil) throws -> GPT {
        let name = "weights frame (policy version \(weights.policyVersion))"
        let cfg = try Checkpoint.config(json: Data(weights.configJSON.utf8), path: name)
        let codec = try tokenizer(in: weights.configJSON, name: name)
        func fail(_ problem: String) -> FileError { FileError(path: name, problem: problem) }
        var byName: [String: TensorData] = [:]
        for (n, t) in weights.tensors {
            guard byName.updateValue(t, forKey: n) == nil else { throw fail("tensor \"\(n)\" appears twice") }
        }
        let model = try reuse.flatMap { $0.config == cfg ? $0 : nil } ?? GPT(config: cfg)
        // check everything before the first byte is written: a bad frame must leave a reused model intact
        let entries = try model.layout.entries.map { e -> (ParameterLayout.Entry, TensorData) in
            guard let t = byName.removeValue(forKey: e.name) else { throw fail("tensor \"\(e.name)\" is missing (config.json implies it)") }
            guard t.dtype == .f32, t.shape == e.shape else {
                throw fail("tensor \"\(e.name)\" is \(t.dtype.rawValue) \(t.shape), config.json implies F32 \(e.shape)")
            }
            return (e, t)
        }
        if let extra = byName.keys.sorted().first { throw fail("unexpected tensor \"\(extra)\" (not implied by config.json)") }
        for (e, t) in entries {
            t.bytes.withUnsafeBytes { raw in UnsafeMutableRawPointer(model.params + e.offset).copyMemory(from: raw.baseAddress!, byteCount: raw.count) }
        }
        if let codec { model.codec = codec }
        return model
    }

    static let tokenizerKey = "ballast_tokenizer_files"

    /// The codec of the tokenizer files a frame's config carries, read through a temporary folder (the
    /// loader reads folders); nil when it carries none.
    static func tokenizer(in configJSON: String, name: String) throws -> TextCodec? {
        guard let json = (try? JSONSerialization.jsonObject(with: Data(configJSON.utf8))) as? [String: Any],
              let files = json[tokenizerKey] else { return nil }
        guard let texts = files as? [String: String], texts.keys.allSatisfy(TextCodec.fileNames.contains) else {
            throw FileError(path: name, problem: "\(tokenizerKey) must map tokenizer file names (\(TextCodec.fileNames.joined(separator: ", "))) to their text")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ballast-tokenizer-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (file, text) in texts { try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/" + file)) }
        do { return try TextCodec.load(directory: dir) } catch { throw FileError(path: name, problem: "its tokenizer: \(error)") }
    }
}
