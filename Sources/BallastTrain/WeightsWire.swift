import BallastFormats
import BallastModel
import BallastWire
import Foundation

/// Policy weights as a `weights` frame: the checkpoint's tensors under their GPT-2 names and its
/// config.json under metadata "config" — the payload is exactly a model.safetensors, so an actor
/// without a shared filesystem can rebuild the model (or save the payload as a checkpoint).
public enum WeightsWire {
    public static func frame(_ model: GPT, sequence: UInt64, policyVersion: UInt64) throws -> Frame {
        let config = try JSONSerialization.data(withJSONObject: Checkpoint.configJSON(model.config), options: [.sortedKeys])
        let tensors = model.layout.entries.map { e in
            (e.name, TensorData(floats: UnsafeBufferPointer(start: model.params + e.offset, count: e.count), shape: e.shape))
        }
        return Frame(kind: .weights, sequence: sequence, policyVersion: policyVersion, tensors: tensors,
                     metadata: ["config": String(decoding: config, as: UTF8.self), "format": "pt"])
    }

    /// Rebuilds the model, checking every tensor against the shipped config.
    public static func model(from frame: Frame) throws -> GPT {
        guard frame.kind == .weights, let cfgText = frame.metadata["config"] else {
            throw CheckpointError(path: "weights frame \(frame.sequence)", problem: "not a weights frame with a config")
        }
        let dir = NSTemporaryDirectory() + "ballast-weights-\(getpid())-\(frame.sequence)-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try AtomicFile.write(Data(cfgText.utf8), to: dir + "/" + Checkpoint.configFile)
        try SafeTensorsWriter.write(frame.tensors, metadata: ["format": "pt"], to: dir + "/" + Checkpoint.weightsFile)
        return try Checkpoint.load(dir)
    }
}
