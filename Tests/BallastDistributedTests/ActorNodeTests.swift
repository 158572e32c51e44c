import BallastDistributed
import BallastModel
import BallastTransport
import BallastWire
import Foundation
import Testing

/// A real `ActorNode` over loopback sockets against a scripted coordinator and learner.
@Suite("Actor node over sockets")
struct ActorNodeTests {
    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        func set() { lock.withLock { value = true } }
        var isSet: Bool { lock.withLock { value } }
    }

    /// The learner process asked for weights dies before answering and a new one takes its ports.
    /// Before the fix the actor waited out the whole 120 s request timeout (it saw the learner test
    /// hang for two minutes after a kill right after a resume).
    @Test("a weights request that died with a learner process is sent again once the new process announces itself")
    func resendsWeightsRequestToReplacedLearner() throws {
        let ctx = try ZMQContext()
        let coordinator = try ctx.socket(.router), weights = try ctx.socket(.router)
        let notices = try ctx.socket(.pub), rollouts = try ctx.socket(.pull)
        for s in [coordinator, weights, notices, rollouts] { try s.bind("tcp://127.0.0.1:*") }
        let endpoints = LearnerEndpoints(rollouts: rollouts.lastEndpoint, weights: weights.lastEndpoint, notices: notices.lastEndpoint)
        let settings = RunSettings(temperature: 1, maxNewTokens: 4, responsesPerPrompt: 1, leaseSize: 2, seed: 1, heartbeatInterval: 0.2)
        let model = try GPT(config: GPTConfig(nLayer: 1, nHead: 2, nEmbd: 16, nPositions: 32, vocabSize: 259))

        nonisolated(unsafe) let actor = try ActorNode(coordinator: coordinator.lastEndpoint, id: "a")  // used by its thread only once started
        let stop = Flag(), finished = Flag()
        actor.shouldStop = { stop.isSet }
        let thread = Thread {
            _ = try? actor.run()
            finished.set()
        }
        thread.start()
        defer {
            stop.set()
            while !finished.isSet { Thread.sleep(forTimeInterval: 0.05) }
        }

        var sequence: UInt64 = 0
        func reply(_ socket: ZMQSocket, _ peer: Data, _ message: some WireMessage) throws {
            sequence += 1
            let (e, p) = message.frame(sequence: sequence).encode()
            _ = try socket.send([peer, e, p])
        }
        // The learner process publishing now, and the version it announces.
        var incarnation = "A", version: UInt64 = 3
        var answering = true
        var policyRequests: [(at: Date, incarnation: String)] = []
        var lastNotice = Date.distantPast
        let deadline = Date().addingTimeInterval(30)
        var replacedAt: Date?
        while Date() < deadline {
            if Date().timeIntervalSince(lastNotice) > 0.1 {
                sequence += 1
                let (e, p) = VersionNotice(policyVersion: version, finished: false, incarnation: incarnation).frame(sequence: sequence).encode()
                _ = try notices.send([e, p])
                lastNotice = Date()
            }
            for i in try ZMQSocket.poll([coordinator, weights], timeoutMS: 20) {
                let socket = i == 0 ? coordinator : weights
                guard let parts = try socket.receiveNow(), parts.count == 3 else { continue }
                let frame = try Frame.decode(envelope: parts[1], payload: parts[2]).0
                if socket === coordinator {
                    switch frame.kind {
                    case .hello: try reply(coordinator, parts[0], ActorWelcome(policyVersion: version, state: .ok, learner: .init(endpoints: endpoints, settings: settings)))
                    case .ready: try reply(coordinator, parts[0], LeaseReply(policyVersion: version, epoch: 0, finished: false))  // no work: keep the actor idle
                    default: break  // heartbeats
                    }
                    continue
                }
                let request = try WeightsRequest(frame: frame)
                if request.model == .policy { policyRequests.append((Date(), incarnation)) }
                if answering { try reply(weights, parts[0], try WeightsWire.message(model, policyVersion: request.model == .policy ? version : 0)) }
            }
            if policyRequests.count == 1 && incarnation == "A" {
                // The actor holds version 3. Process B takes over from an older checkpoint (version 2),
                // and dies holding the actor's request for it.
                incarnation = "B"; version = 2; answering = false
            } else if policyRequests.count == 2 && incarnation == "B" && replacedAt == nil {
                Thread.sleep(forTimeInterval: 0.5)
                incarnation = "C"; answering = true; replacedAt = Date()
            } else if policyRequests.count == 3 {
                break
            }
        }
        #expect(policyRequests.map(\.incarnation) == ["A", "B", "C"])
        if let replacedAt, policyRequests.count == 3 {
            let waited = policyRequests[2].at.timeIntervalSince(replacedAt)
            #expect(waited < 5, "the request was sent again \(waited) s after the new process announced itself")
        }
    }
}
