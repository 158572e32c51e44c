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

    /// Rebuilds the model in memory, checking every tensor against the shipped config.
    public static func model(from weights: Weights) throws -> GPT {
        let name = "weights frame (policy version \(weights.policyVersion))"
        let cfg = try Checkpoint.config(json: Data(weights.configJSON.utf8), path: name)
        let file = try SafeTensorsFile(data: SafeTensorsWriter.encode(weights.tensors, metadata: [:]), name: name)
        return try Checkpoint.model(config: cfg, weights: file, path: name)
    }
}
