import ArgumentParser
import BallastCluster
import BallastDistributed
import BallastFormats
import BallastKernels
import BallastModel
import BallastRL
import BallastRandom
import BallastTraining
import BallastTransport
import BallastWire
import Foundation

/// Messages per second and MB/s of `parts` sent PUSH → PULL over tcp loopback between two threads.
/// `decode` runs the receiver's work on each message (nil: raw libzmq, bytes only).
func loopbackThroughput(messages: Int, encode: @escaping @Sendable () -> [Data], decode: (@Sendable ([Data]) throws -> Void)?) throws -> (seconds: Double, bytes: Int) {
    let ctx = try ZMQContext()
    let pull = try ctx.socket(.pull)
    try pull.bind("tcp://127.0.0.1:*")
    let push = try ctx.socket(.push)
    try push.connect(pull.lastEndpoint)
    try push.setHighWaterMarks(send: 4, receive: 4)
    try pull.setHighWaterMarks(send: 4, receive: 4)
    let sender = Thread {
        for _ in 0..<messages { _ = try? push.send(encode()) }
    }
    let t0 = DispatchTime.now().uptimeNanoseconds
    sender.start()
    var bytes = 0
    for _ in 0..<messages {
        guard let parts = try pull.receive() else { continue }
        bytes += parts.reduce(0) { $0 + $1.count }
        try decode?(parts)
    }
    return (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, bytes)
}

struct BenchTransfer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transfer",
        abstract: "Rollout, control-message and weight transfer over tcp loopback: Ballast frames (encode, send, receive, decode + validate) against raw libzmq with the same bytes.")
    @Option(help: "Rollout rows per message.") var rows = 64
    @Option(help: "Tokens per rollout row.") var tokens = 160
    @Option(help: "Model preset whose weights are sent.") var preset = "small"
    @Option var repeats = 3
    @Option(help: "Measure only this payload (rollout, consumption or weights).") var only: String?

    func run() throws {
        try failing {
            var rng = SeededRNG(seed: 3)
            let resp = tokens / 2
            let rollout = RolloutBatch(
                sequences: (0..<rows).map { _ in (0..<tokens).map { _ in Int32(rng.next() % 256) } }, promptTokens: Array(repeating: tokens - resp, count: rows),
                logp: (0..<rows).map { _ in (0..<resp).map { _ in -Double(rng.nextFloat()) } }, refLogp: (0..<rows).map { _ in (0..<resp).map { _ in -Double(rng.nextFloat()) } },
                values: (0..<rows).map { _ in Array(repeating: 0, count: resp) }, scores: Array(repeating: 0.5, count: rows), gold: Array(repeating: 1, count: rows),
                tasks: Array(repeating: "qa", count: rows), policyVersion: 3)
            guard let cfg = GPTConfig.preset(preset) else { throw ValidationError("unknown preset \(preset)") }
            let model = try GPT(config: cfg)
            model.initializeRandom(seed: 1)
            let weights = try WeightsWire.message(model, policyVersion: 1).frame(sequence: 1)
            final class Receiver: @unchecked Sendable { var value: GPT? }
            let receiver = Receiver()
            let message = RolloutMessage(rollout, promptIDs: Array(0..<rows), epoch: 0, lease: 1, actor: "bench")
            let rolloutParts = message.frame(sequence: 1).encode(), weightParts = weights.encode()
            print("message sizes: rollout \(fmt(Double(rolloutParts.payload.count) / 1e6, 3)) MB (\(rows) rows × \(tokens) tokens), weights \(fmt(Double(weightParts.payload.count) / 1e6, 2)) MB (\(preset), \(model.parameterCount) parameters)")
            print(TextTable.left("payload", 10) + TextTable.right("messages", 10) + TextTable.right("ballast MB/s", 14) + TextTable.right("raw zmq MB/s", 14) + TextTable.right("ratio", 8))
            for (name, count, make, check) in [
                ("rollout", 2000, { @Sendable () -> [Data] in
                    // from the batch, as an actor sends what it sampled
                    let (e, p) = RolloutMessage(rollout, promptIDs: Array(0..<rows), epoch: 0, lease: 1, actor: "bench").frame(sequence: 1).encode()
                    return [e, p] },
                 { @Sendable (parts: [Data]) throws in _ = RolloutBatch(try RolloutMessage(frame: try Frame.decode(envelope: parts[0], payload: parts[1]).0)) }),
                // A small control message (the coordinator's traffic: per-message costs, not bytes).
                ("consumption", 20000, { @Sendable () -> [Data] in
                    let (e, p) = Consumption(policyVersion: 3, id: "learner-0f3c", epoch: 0, promptIDs: Array(8..<16), request: "e0-l1-p8-8", step: 4).frame(sequence: 1).encode()
                    return [e, p] },
                 { @Sendable (parts: [Data]) throws in _ = try Consumption(frame: try Frame.decode(envelope: parts[0], payload: parts[1]).0) }),
                ("weights", 60, { @Sendable () -> [Data] in let (e, p) = weights.encode(); return [e, p] },
                 { @Sendable (parts: [Data]) throws in
                     // into the model, as an actor receives a new policy version
                     receiver.value = try WeightsWire.model(from: try Weights(frame: try Frame.decode(envelope: parts[0], payload: parts[1]).0),
                                                            reuse: receiver.value) }),
            ] as [(String, Int, @Sendable () -> [Data], @Sendable ([Data]) throws -> Void)] where only == nil || only == name {
                // The codec alone, on one thread: what each side adds to the bytes' trip.
                let codecRuns = max(1, count / 4)
                var t = DispatchTime.now().uptimeNanoseconds
                var parts: [Data] = []
                for _ in 0..<codecRuns { parts = make() }
                let encodeMicros = Double(DispatchTime.now().uptimeNanoseconds - t) / 1e3 / Double(codecRuns)
                t = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<codecRuns { try check(parts) }
                let decodeMicros = Double(DispatchTime.now().uptimeNanoseconds - t) / 1e3 / Double(codecRuns)
                print("\(name): encode \(fmt(encodeMicros, 1)) µs, decode \(fmt(decodeMicros, 1)) µs per message on one thread")
                let raw = name == "weights" ? [weightParts.envelope, weightParts.payload] : make()
                var ours: [Double] = [], base: [Double] = []
                for _ in 0..<repeats {
                    let a = try loopbackThroughput(messages: count, encode: make, decode: check)
                    ours.append(Double(a.bytes) / a.seconds / 1e6)
                    let b = try loopbackThroughput(messages: count, encode: { raw }, decode: nil)
                    base.append(Double(b.bytes) / b.seconds / 1e6)
                }
                let o = Bench.median(ours), r = Bench.median(base)
                print(TextTable.left(name, 10) + TextTable.right("\(count)", 10) + TextTable.right(fmt(o, 0), 14) + TextTable.right(fmt(r, 0), 14) + TextTable.right(fmt(o / r, 2), 8))
            }
            print("(medians of \(repeats); ballast = encode + CRC + send + receive + decode + validate; raw = the same bytes through libzmq only)")
        }
    }
}

/// The coordinator benchmark's learner: counts leased prompts in consumption reports of `batch` ids (one
/// epoch per report), as the learner counts each step's batch.
struct SimulatedLearner {
    let batch: Int
    var unreported: (epoch: Int, ids: [Int]) = (0, [])

    /// The reports (encoded frames) that `ids`, just leased in `epoch`, complete.
    mutating func consumed(_ ids: [Int], epoch: Int) -> [(envelope: Data, payload: Data)] {
        var out: [(envelope: Data, payload: Data)] = []
        func report(_ ids: [Int], _ epoch: Int) { out.append(Consumption(policyVersion: 0, id: "learner", epoch: epoch, promptIDs: ids).frame().encode()) }
        if epoch != unreported.epoch, !unreported.ids.isEmpty {
            report(unreported.ids, unreported.epoch)
            unreported.ids = []
        }
        unreported.epoch = epoch
        unreported.ids += ids
        while unreported.ids.count >= batch {
            report(Array(unreported.ids.prefix(batch)), epoch)
            unreported.ids.removeFirst(batch)
        }
        return out
    }
}

struct BenchCoordinator: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Coordinator capacity: simulated actors lease and complete prompts against a real coordinator (ROUTER over tcp loopback, fsync'd journal): leases/s and latency percentiles.")
    @Option(help: "Simulated actors (one DEALER socket each).") var actors = 64
    @Option(help: "Seconds to run.") var seconds = 5.0
    @Option(help: "Prompts per lease.") var lease = 8
    @Option(help: "Prompts in the run's prompt set.") var prompts = 4096
    @Option(help: "Compact the journal into a snapshot every this many records (0: never, to compare).") var compactEvery = 10_000
    @Option(help: "Journal file (written and flushed to disk once per group of messages).") var journal = NSTemporaryDirectory() + "ballast-bench-coordinator.journal"
    @Option(help: "Open loop: lease requests offered per second over all actors (default: closed loop, each actor always waiting on one).") var rate: Double?
    @Option(help: "Seconds between the coordinator's expiry passes (0: after every group, as before the fifty-millisecond default), to compare.") var tickInterval = CoordinatorService.tickInterval
    @Option(help: "Prompts per consumption report. One learner socket counts the leased prompts in reports of this many, as the learner counts each step's batch (32: the quickstart's batch). The lease size sends one report per lease, the load of earlier sessions.") var consumptionBatch = 32

    /// The coordinator's own cost without sockets: the closed loop's messages (every actor's lease
    /// request, then the learner's consumption reports) handled by `CoordinatorService` in groups of
    /// `actors` + reports, each group committed to the journal file as `serve` does. What the socket
    /// run adds on top is ZeroMQ, TCP and the simulated actors sharing the two cores.
    func coreAlone(epochs: Int, compaction: Int) throws {
        try? FileManager.default.removeItem(atPath: journal)
        let ledger = try PromptLedger(promptCount: prompts, shards: 8, epochs: epochs, journal: FileJournal(path: journal), compactEvery: compaction)
        let service = CoordinatorService(ledger: ledger, heartbeatTimeout: 1e9, leaseTimeout: 1e9)
        let peers = (0..<actors).map { Data("sim-\($0)".utf8) }
        let requests = (0..<actors).map { i in LeaseRequest(id: "sim-\(i)", capacity: lease).frame().encode() }
        var learner = SimulatedLearner(batch: consumptionBatch)
        var reports: [[Data]] = []
        var handleNs: UInt64 = 0, commitNs: UInt64 = 0, messages = 0, leases = 0, groups = 0
        let start = Date()
        while Date().timeIntervalSince(start) < min(seconds, 2) {
            let group = (0..<actors).map { [peers[$0], requests[$0].envelope, requests[$0].payload] } + reports
            reports.removeAll()
            let t0 = DispatchTime.now().uptimeNanoseconds
            ledger.beginGroup()
            var answers: [[Data]] = []
            for parts in group { if let out = try service.handle(parts, now: 0) { answers.append(out) } }
            let t1 = DispatchTime.now().uptimeNanoseconds
            try ledger.commitGroup()
            commitNs += DispatchTime.now().uptimeNanoseconds - t1
            handleNs += t1 - t0
            messages += group.count
            groups += 1
            for out in answers.prefix(actors) {
                let answer = try LeaseReply(frame: try Frame.decode(envelope: out[0], payload: out[1]).0)
                guard let grant = answer.grant else { continue }
                leases += 1
                reports += learner.consumed(grant.promptIDs, epoch: answer.epoch).map { [Data("learner".utf8), $0.envelope, $0.payload] }
            }
        }
        let busy = Double(handleNs + commitNs) / 1e9
        print("core alone (no sockets): \(messages) messages (\(leases) leases) in \(groups) groups: "
              + "handling \(fmt(Double(handleNs) / 1e3 / Double(messages), 1)) µs per message, journal commit \(fmt(Double(commitNs) / 1e3 / Double(groups), 0)) µs per group; "
              + "\(fmt(Double(leases) / busy, 0)) leases/s of coordinator time")
    }

    func run() throws {
        try failing {
            if let rate, !(rate > 0) { throw ValidationError("--rate must be > 0") }
            try? FileManager.default.removeItem(atPath: journal)
            defer { try? FileManager.default.removeItem(atPath: journal) }
            guard prompts > 0, actors > 0, lease > 0, consumptionBatch > 0, compactEvery >= 0 else {
                throw ValidationError("--prompts, --actors, --lease and --consumption-batch must be > 0, --compact-every >= 0")
            }
            let compaction = compactEvery == 0 ? Int.max : compactEvery
            let epochs = max(2, 100_000_000 / prompts)  // enough that the run never runs out of work
            try coreAlone(epochs: epochs, compaction: compaction)
            try? FileManager.default.removeItem(atPath: journal)
            let ledger = try PromptLedger(promptCount: prompts, shards: 8, epochs: epochs, journal: FileJournal(path: journal), compactEvery: compaction)
            let service = CoordinatorService(ledger: ledger, heartbeatTimeout: 1e9, leaseTimeout: 1e9)
            let ctx = try ZMQContext()
            let router = try ctx.socket(.router)
            try router.setReceiveTimeout(ms: 50)
            try router.bind("tcp://127.0.0.1:*")
            let endpoint = router.lastEndpoint
            final class Flag: @unchecked Sendable { var stop = false }
            let flag = Flag()
            let server = Thread { try? service.serve(router, clock: { Date().timeIntervalSince1970 }, shouldStop: { flag.stop }, tickInterval: tickInterval) }
            server.start()
            var sockets: [ZMQSocket] = []
            for i in 0..<actors {
                let s = try ctx.socket(.dealer)
                try s.setRoutingID("sim-\(i)")
                try s.connect(endpoint)
                sockets.append(s)
            }
            // The learner: counts leased prompts with the coordinator in reports of `consumptionBatch` (one
            // journal record each way, as in a real run), without waiting for the answers, so the client
            // never blocks on one socket while others have replies.
            let learner = try ctx.socket(.dealer)
            try learner.setRoutingID("learner")
            try learner.connect(endpoint)
            sockets.append(learner)
            var counting = SimulatedLearner(batch: consumptionBatch)
            func consumed(_ ids: [Int], epoch: Int) throws {
                for r in counting.consumed(ids, epoch: epoch) { try learner.send([r.envelope, r.payload]) }
            }
            var sentAt = [UInt64](repeating: 0, count: actors)
            var latencies: [Double] = []
            // An actor's ready request is the same message every time: encoded once, as a real actor could.
            let readyFrames = (0..<actors).map { i in LeaseRequest(id: "sim-\(i)", capacity: lease).frame().encode() }
            func ready(_ i: Int) throws {
                sentAt[i] = DispatchTime.now().uptimeNanoseconds
                try sockets[i].send([readyFrames[i].envelope, readyFrames[i].payload])
            }
            // Closed loop (no --rate): every actor always has one request in flight, which measures capacity;
            // its latency is then only queueing (64 requests / throughput). Open loop (--rate R): requests
            // are due every 1/R s and go out from an idle actor; latency counts from when a request was due,
            // so a coordinator that falls behind is charged for the wait (no coordinated omission).
            let interval = rate.map { 1e9 / $0 } ?? 0
            var idle = Array((0..<actors).reversed())
            var nextDue = Double(DispatchTime.now().uptimeNanoseconds)
            func sendDue() throws {
                let now = Double(DispatchTime.now().uptimeNanoseconds)
                while nextDue <= now, let i = idle.popLast() {
                    try ready(i)
                    sentAt[i] = UInt64(nextDue)
                    nextDue += interval
                }
            }
            if rate == nil { while let i = idle.popLast() { try ready(i) } } else { try sendDue() }
            let start = Date()
            var leases = 0
            while Date().timeIntervalSince(start) < seconds {
                // The open loop wakes at least every millisecond (not spinning: it shares two cores with the
                // coordinator); requests due meanwhile leave together, charged from their due times.
                let wait = rate == nil || idle.isEmpty ? 100 : max(1, Int((nextDue - Double(DispatchTime.now().uptimeNanoseconds)) / 1e6))
                for i in try ZMQSocket.poll(sockets, timeoutMS: wait) {
                    while let parts = try sockets[i].receiveNow(), parts.count == 2 {
                        guard i < actors else { continue }  // the answer to a report: nothing waits on it
                        latencies.append(Double(DispatchTime.now().uptimeNanoseconds - sentAt[i]) / 1e6)
                        let answer = try LeaseReply(frame: try Frame.decode(envelope: parts[0], payload: parts[1]).0)
                        if let grant = answer.grant {
                            leases += 1
                            try consumed(grant.promptIDs, epoch: answer.epoch)
                        }
                        if rate == nil { try ready(i) } else { idle.append(i) }
                    }
                }
                if rate != nil { try sendDue() }
            }
            let elapsed = Date().timeIntervalSince(start)
            flag.stop = true
            latencies.sort()
            func pct(_ q: Double) -> Double { latencies.isEmpty ? .nan : latencies[min(latencies.count - 1, Int(q * Double(latencies.count)))] }
            print((rate.map { "open loop at \(fmt($0, 0)) requests/s: " } ?? "closed loop: ") + "\(actors) simulated actors, leases of \(lease) prompts, a consumption report per \(consumptionBatch) prompts, journal with group commit (\(service.groups) fsync'd groups, \(fmt(Double(service.groupedMessages) / Double(max(service.groups, 1)), 1)) messages each): \(leases) leases in \(fmt(elapsed, 1)) s = \(fmt(Double(leases) / elapsed, 0)) leases/s "
                  + "(\(fmt(Double(leases * lease) / elapsed, 0)) prompts/s); ready→lease latency p50 \(fmt(pct(0.5), 2)) ms, p99 \(fmt(pct(0.99), 2)) ms")
            Thread.sleep(forTimeInterval: 0.2)
            // What a restarted coordinator pays before it answers anyone: replaying the journal just written.
            let records = try FileJournal(path: journal).records().count
            let replayStart = Date()
            let replayed = try PromptLedger(promptCount: prompts, shards: 8, epochs: epochs, journal: FileJournal(path: journal), compactEvery: compaction)
            let replaySeconds = Date().timeIntervalSince(replayStart)
            let statusStart = Date()
            _ = CoordinatorService(ledger: replayed).status(now: 0)
            let bytes = (try? FileManager.default.attributesOfItem(atPath: journal)[.size] as? Int) ?? 0
            print("\(prompts) prompts: journal compacted \(ledger.compactions) times, now \(records) records (\(fmt(Double(bytes) / 1e6, 2)) MB); "
                  + "replay \(fmt(replaySeconds, 2)) s (completed \(replayed.completed)); "
                  + "one status \(fmt(Date().timeIntervalSince(statusStart) * 1000, 1)) ms; peak RSS \(fmt(Bench.peakRSSMiB(), 0)) MiB")
        }
    }
}
