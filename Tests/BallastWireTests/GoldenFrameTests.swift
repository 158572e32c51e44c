import BallastFormats
import BallastWire
import Foundation
import Testing

/// One value of every typed message, as the processes send them. Their encodings are committed under
/// Fixtures/golden (envelope + payload): the fixtures were written by the hand-built frames the
/// coordinator, learner and actor sent before the typed messages existed, so a match proves the bytes
/// on the wire unchanged, and any later change to them fails here.
enum GoldenMessages {
    static let endpoints = LearnerEndpoints(rollouts: "tcp://10.0.0.2:5556", weights: "tcp://10.0.0.2:5557", notices: "tcp://10.0.0.2:5558")
    static let settings = RunSettings(temperature: 1, maxNewTokens: 96, responsesPerPrompt: 1, leaseSize: 16, seed: 1, heartbeatInterval: 1)
    static let stats = LearnerStats(step: 7, queue: 16, queueCapacity: 48, dropped: 3, downweighted: 0, checkpoint: "step 5", busy: 0.987,
                                    rolloutsPerSecond: 16.44, errors: 0)
    static let progress = RunProgress(finished: false, epoch: 1, completed: 224, budget: 1280)
    static let promptsJSON = #"[{"id":"3","prompt":"Q: What is 2 + 3?\nA:\n","task":"qa"},{"id":"8","prompt":"Reverse: abc\n","task":"reverse"}]"#

    /// (fixture name, sequence, message)
    static let all: [(String, UInt64, any WireMessage)] = [
        ("learner-hello", 4, LearnerHello(policyVersion: 7, endpoints: endpoints, settings: settings, stats: stats)),
        ("learner-welcome", 2, LearnerWelcome(policyVersion: 7, progress: progress)),
        ("actor-hello", 1, ActorHello(policyVersion: 3, id: "actor-0", host: "node-1")),
        ("actor-welcome", 3, ActorWelcome(policyVersion: 7, state: .ok, learner: .init(endpoints: endpoints, settings: settings))),
        ("actor-welcome-wait", 1, ActorWelcome(policyVersion: 0, state: .wait, learner: nil)),
        ("lease-request", 5, LeaseRequest(policyVersion: 3, id: "actor-0", capacity: 16)),
        ("lease", 6, LeaseReply(policyVersion: 7, epoch: 1, grant: .init(lease: 12, promptIDs: [3, 8], promptsJSON: promptsJSON))),
        ("lease-finished", 9, LeaseReply(policyVersion: 7, epoch: 2, finished: true)),
        ("heartbeat", 11, Heartbeat(id: "actor-0", rollouts: 320, version: 3, rate: 12.3456)),
        ("consumption", 8, Consumption(policyVersion: 7, id: "learner", epoch: 1, promptIDs: [3, 8], request: "e1-l12-p3-2")),
        ("consumption-release", 9, Consumption(policyVersion: 7, id: "learner", epoch: 1, promptIDs: [4], release: true)),
        ("consumption-reply", 10, ConsumptionReply(policyVersion: 7, accepted: [3, 8], progress: progress)),
        ("version-notice", 12, VersionNotice(policyVersion: 8, finished: false)),
        ("weights-request", 2, WeightsRequest(policyVersion: 3, id: "actor-0", model: .policy)),
        ("weights", 13, Weights(policyVersion: 8, tensors: [("wte.weight", TensorData(floats: [0.5, -1, 2, 0.25], shape: [2, 2]))],
                                configJSON: #"{"model_type":"gpt2","n_embd":2}"#)),
        ("status-request", 1, StatusRequest()),
        ("status-reply", 14, StatusReply(policyVersion: 7, json: #"{"epoch":1,"finished":false}"#)),
        ("rollout", 21, RolloutMessage(policyVersion: 6, sequences: [[256, 72, 105, 257], [256, 79, 257]], promptTokens: [2, 2],
                                       logp: [[-0.5, -0.25], [-1.5]], refLogp: [[-0.75, -0.5], [-1]], values: [[0.125, 0.25], [0.5]],
                                       scores: [1.5, -0.5], gold: [1, 0], tasks: ["qa", "reverse"], promptIDs: [3, 8], epoch: 1, lease: 12,
                                       actor: "actor-0")),
    ]

    static func fixture(_ name: String) throws -> Data {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: "frame", subdirectory: "Fixtures/golden"))
        return try Data(contentsOf: url)
    }
}

@Suite("Typed wire messages")
struct GoldenFrameTests {
    @Test("every message encodes to its committed golden frame, byte for byte")
    func golden() throws {
        // A deliberate wire change rewrites the fixtures it names (BALLAST_REWRITE_GOLDEN=rollout,lease),
        // to be committed with the change and its WIRE.md entry.
        let rewrite = Set((ProcessInfo.processInfo.environment["BALLAST_REWRITE_GOLDEN"] ?? "").split(separator: ",").map(String.init))
        for (name, sequence, message) in GoldenMessages.all where rewrite.contains(name) {
            let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/golden")
            try message.frame(sequence: sequence).encodeContiguous().write(to: dir.appendingPathComponent("\(name).frame"))
        }
        for (name, sequence, message) in GoldenMessages.all where !rewrite.contains(name) {
            #expect(message.frame(sequence: sequence).encodeContiguous() == (try GoldenMessages.fixture(name)), "\(name)")
        }
    }

    /// Decodes a frame as `M` and encodes it again.
    static func reencode<M: WireMessage>(_ frame: Frame, like _: M) throws -> Data { try M(frame: frame).frame(sequence: frame.sequence).encodeContiguous() }

    @Test("each golden frame decodes as its type and re-encodes to the same bytes")
    func roundTrip() throws {
        for (name, _, message) in GoldenMessages.all {
            let bytes = try GoldenMessages.fixture(name)
            let (frame, _) = try Frame.decode(contiguous: bytes)
            #expect(try Self.reencode(frame, like: message) == bytes, "\(name)")
        }
        // Field by field for the messages whose values survive the text encoding exactly.
        let welcome = ActorWelcome(policyVersion: 7, state: .ok, learner: .init(endpoints: GoldenMessages.endpoints, settings: GoldenMessages.settings))
        #expect(try ActorWelcome(frame: welcome.frame()) == welcome)
        let lease = LeaseReply(policyVersion: 1, epoch: 3, grant: .init(lease: 9, promptIDs: [5, 1], promptsJSON: nil))
        #expect(try LeaseReply(frame: lease.frame()) == lease)
        let release = Consumption(policyVersion: 2, id: "learner", epoch: 0, promptIDs: [7], release: true)
        #expect(try Consumption(frame: release.frame()) == release)
        #expect(try Hello(frame: GoldenMessages.all[0].2.frame()) == .learner(GoldenMessages.all[0].2 as! LearnerHello))
        var hello = GoldenMessages.all[0].2 as! LearnerHello
        hello.incarnation = .init(id: "0f3c", checkpointStep: 40)
        hello.flow = .init(batchPrompts: 32, maxPolicyLag: 2)
        #expect(try LearnerHello(frame: hello.frame()) == hello)
    }

    @Test("a message of another kind, or missing a field, is a bad payload naming the key")
    func rejects() throws {
        func problem(_ body: () throws -> Void) -> String? {
            do { try body(); return nil } catch let e as WireError { return e.label == "bad_payload" ? e.description : "wrong error \(e)" } catch { return "\(error)" }
        }
        #expect(problem { _ = try Heartbeat(frame: VersionNotice(policyVersion: 1, finished: false).frame()) }?.contains("expected a heartbeat") == true)
        var beat = Heartbeat(id: "a", rollouts: 1, version: 0, rate: 1).frame()
        beat.metadata["version"] = nil
        #expect(problem { _ = try Heartbeat(frame: beat) }?.contains("version is missing") == true)
        beat.metadata["version"] = "1"
        beat.metadata["rate"] = "-inf"
        #expect(problem { _ = try Heartbeat(frame: beat) }?.contains("rate is not a finite number") == true)
        var notice = VersionNotice(policyVersion: 1, finished: true).frame()
        notice.metadata["finished"] = "yes"
        #expect(problem { _ = try VersionNotice(frame: notice) }?.contains("must be 0 or 1") == true)
        var request = WeightsRequest(id: "a", model: .scorer).frame()
        request.metadata["model"] = "critic"
        #expect(problem { _ = try WeightsRequest(frame: request) }?.contains("model has an unknown value") == true)
        var welcome = ActorWelcome(policyVersion: 0, state: .wait, learner: nil).frame()
        welcome.metadata["state"] = "ok"
        #expect(problem { _ = try ActorWelcome(frame: welcome) }?.contains("rollouts is missing") == true)
        var hello = (GoldenMessages.all[0].2 as! LearnerHello)
        hello.flow = .init(batchPrompts: 32, maxPolicyLag: 2)
        var flow = hello.frame()
        flow.metadata["flow.batch_prompts"] = "0"
        #expect(problem { _ = try LearnerHello(frame: flow) }?.contains("flow.batch_prompts must be in 1...") == true)
        flow.metadata["flow.batch_prompts"] = "32"
        flow.metadata["flow.max_policy_lag"] = "\(Int.max)"  // (lag + 1) × batch would overflow at the coordinator
        #expect(problem { _ = try LearnerHello(frame: flow) }?.contains("flow.max_policy_lag must be in 0...") == true)
        flow.metadata["flow.max_policy_lag"] = nil
        #expect(problem { _ = try LearnerHello(frame: flow) }?.contains("flow.max_policy_lag is missing") == true)
        var lease = LeaseReply(policyVersion: 0, epoch: 0, grant: .init(lease: 1, promptIDs: [1], promptsJSON: nil)).frame()
        lease.tensors = []
        #expect(problem { _ = try LeaseReply(frame: lease) }?.contains("prompt_ids (tensor) is missing") == true)
    }
}

@Suite("WIRE.md against the typed messages")
struct WireSpecTests {
    /// The kinds table's rows, keyed by type name: (kind number, the row's text).
    static func rows() throws -> [String: (kind: Int, text: String)] {
        let spec = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Sources/BallastWire/WIRE.md")
        let text = try String(contentsOf: spec, encoding: .utf8)
        var out: [String: (Int, String)] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("| ") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 4, let kind = Int(cells[0]), cells[2].hasPrefix("`") else { continue }
            out[cells[2].trimmingCharacters(in: CharacterSet(charactersIn: "`"))] = (kind, cells[3])
        }
        return out
    }

    @Test("every type has a row with its kind, and the row names every key and tensor the type writes")
    func specMatchesTypes() throws {
        let rows = try Self.rows()
        for (name, _, message) in GoldenMessages.all {
            let type = String(describing: Swift.type(of: message))
            let row = try #require(rows[type], "WIRE.md has no row for \(type)")
            #expect(row.kind == Int(Swift.type(of: message).kind.rawValue), "\(type)")
            let p = message.payload
            for key in Array(p.metadata.keys) + p.tensors.map(\.0) where !(type == "Weights" && !p.metadata.keys.contains(key)) {
                #expect(row.text.contains("`\(key)`"), "WIRE.md's \(type) row does not name `\(key)` (\(name))")
            }
        }
        #expect(Set(rows.keys) == Set(GoldenMessages.all.map { String(describing: type(of: $0.2)) }), "rows without a golden message")
    }
}
