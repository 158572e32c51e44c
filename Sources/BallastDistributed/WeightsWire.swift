import BallastFormats
import BallastModel
import BallastWire
import Foundation

/// Models as `Weights` messages: the checkpoint's tensors under their GPT-2 names and its
/// config.json, so the payload is exactly a model.safetensors and an actor without a shared
/// filesystem can rebuild the model.
public enum WeightsWire {
    public static func message(_ model: GPT, policyVersion: UInt64) throws -> Weights {
        let config = try JSONSerialization.data(withJSONObject: Checkpoint.configJSON(model.config), options: [.sortedKeys])
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
        return model
    }
}
