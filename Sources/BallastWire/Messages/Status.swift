import Foundation

/// Kind `status`, anyone → coordinator: the run's status (an empty payload).
public struct StatusRequest: WireMessage, Equatable {
    public static let kind = MessageKind.status
    public var policyVersion: UInt64 { 0 }
    public init() {}
    public var payload: WirePayload { WirePayload() }
    public init(policyVersion: UInt64, payload: WirePayload) throws {}
}

/// Kind `status`, coordinator → asker: the status document (`ballast status --json` prints it).
public struct StatusReply: WireMessage, Equatable {
    public static let kind = MessageKind.status
    public var policyVersion: UInt64
    public var json: String

    public init(policyVersion: UInt64, json: String) {
        self.policyVersion = policyVersion
        self.json = json
    }

    public var payload: WirePayload { WirePayload(metadata: ["json": json]) }

    public init(policyVersion: UInt64, payload: WirePayload) throws {
        self.init(policyVersion: policyVersion, json: try payload.reader("status reply").string("json"))
    }
}
