import BallastFormats
import Foundation

/// Kind `weights_request`, actor → learner: send me this model. The envelope carries the actor's
/// policy version.
public struct WeightsRequest: WireMessage, Equatable {
    public enum Model: String, Sendable, CaseIterable { case policy, reference, scorer }
    public static let kind = MessageKind.weightsRequest
    public var policyVersion: UInt64
    public var id: String
    public var model: Model

    public init(policyVersion: UInt64 = 0, id: String, model: Model) {
        self.policyVersion = policyVersion
        self.id = id
        self.model = model
    }

    public var payload: WirePayload { WirePayload(metadata: ["id": id, "model": model.rawValue]) }

    public init(policyVersion: UInt64, payload: WirePayload) throws {
        let r = payload.reader("weights request")
        self.init(policyVersion: policyVersion, id: try r.string("id"), model: try r.oneOf("model", Model.self))
    }
}

/// Kind `weights`, learner → actor: a model's tensors under their Hugging Face names and its
/// config.json (metadata `config`), so the payload is a model.safetensors; the envelope carries the
/// policy version (0 for the frozen reference and scorer).
public struct Weights: WireMessage {
    public static let kind = MessageKind.weights
    public var policyVersion: UInt64
    public var tensors: [(String, TensorData)]
    public var configJSON: String

    public init(policyVersion: UInt64, tensors: [(String, TensorData)], configJSON: String) {
        self.policyVersion = policyVersion
        self.tensors = tensors
        self.configJSON = configJSON
    }

    /// `format: pt` as `transformers` writes it in model.safetensors.
    public var payload: WirePayload { WirePayload(tensors: tensors, metadata: ["config": configJSON, "format": "pt"]) }

    public init(policyVersion: UInt64, payload: WirePayload) throws {
        self.init(policyVersion: policyVersion, tensors: payload.tensors, configJSON: try payload.reader("weights").string("config"))
    }
}
