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

    /// Rebuilds the model, checking every tensor against the shipped config.
    public static func model(from weights: Weights) throws -> GPT {
        let dir = NSTemporaryDirectory() + "ballast-weights-\(getpid())-\(weights.policyVersion)-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try AtomicFile.write(Data(weights.configJSON.utf8), to: dir + "/" + Checkpoint.configFile)
        try SafeTensorsWriter.write(weights.tensors, metadata: ["format": "pt"], to: dir + "/" + Checkpoint.weightsFile)
        return try Checkpoint.load(dir)
    }
}
