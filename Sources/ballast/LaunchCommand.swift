import ArgumentParser
import BallastFormats
import BallastPipeline
import BallastRL
import BallastTraining
import Foundation

struct LaunchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "launch", abstract: "Start a distributed run (multi-node runs: see cluster/README.md).", subcommands: [LaunchLocal.self])
}

/// Children of `launch local`, with their output prefixed and interleaved by line.
final class Child: @unchecked Sendable {
    let name: String
    let process = Process()
    let lock = NSLock()
    var pending = Data()

    init(name: String, arguments: [String], threads: Int) throws {
        self.name = name
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_NUM_THREADS"] = "\(threads)"
        env["BALLAST_THREADS"] = "\(threads)"
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        pipe.fileHandleForReading.readabilityHandler = { [self] h in
            let chunk = h.availableData
            lock.lock()
            defer { lock.unlock() }
            if chunk.isEmpty { flush(final: true); return }
            pending.append(chunk)
            flush(final: false)
        }
        try process.run()
    }

    /// Writes complete lines as "name | line"; a node's own "[name] " prefix is not repeated.
    func flush(final: Bool) {
        while let nl = pending.firstIndex(where: { $0 == 0x0A || $0 == 0x0D }) {
            emit(pending[pending.startIndex..<nl])
            pending.removeSubrange(pending.startIndex...nl)
        }
        if final && !pending.isEmpty { emit(pending[...]); pending.removeAll() }
    }

    func emit(_ bytes: Data) {
        var line = String(decoding: bytes, as: UTF8.self)
        if line.isEmpty { return }
        if line.hasPrefix("[\(name)] ") { line.removeFirst(name.count + 3) }
        let padded = name.padding(toLength: 11, withPad: " ", startingAt: 0)
        Streams.out("\(padded) | \(line)\n")
    }

    var running: Bool { process.isRunning }
    func terminate() { if process.isRunning { kill(process.processIdentifier, SIGTERM) } }
    func kill9() { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

func say(_ line: String) { Streams.out("launch      | \(line)\n") }

/// Coordinator + learner + N actors on this host for one PPO config.
struct LocalCluster {
    var actors: Int
    var learnerThreads: Int
    var actorThreads: Int
    var shouldStop: () -> Bool

    struct Failure: Error, CustomStringConvertible { let description: String }

    /// Returns true when the run completed, false when stopped by a signal; throws when a process died.
    func run(configFile: String, resume: Bool) throws -> Bool {
        let config = try ConfigOptions.ppo(configFile, [])
        let journal = config.cluster.journal ?? config.run.outDir + "/coordinator.journal"
        try FileManager.default.createDirectory(atPath: config.run.outDir, withIntermediateDirectories: true)
        if !resume { try? FileManager.default.removeItem(atPath: journal) }  // a fresh run must not replay an old run's accounting
        say("coordinator \(config.cluster.coordinator), learner (\(learnerThreads) thread(s)), \(actors) actor(s) (\(actorThreads) thread(s) each)"
              + (config.cluster.http.map { "; status on http://\($0)/" } ?? ""))
        let coordinator = try Child(name: "coordinator", arguments: ["coordinator", "--config", configFile], threads: 1)
        let learner = try Child(name: "learner", arguments: ["learner", "--config", configFile, "--set", "run.threads=\(learnerThreads)"] + (resume ? ["--resume"] : []),
                                threads: learnerThreads)
        var children = [coordinator, learner]
        for i in 0..<actors {
            children.append(try Child(name: "actor-\(i)", arguments: ["actor", "--coordinator", config.cluster.coordinator, "--id", "actor-\(i)",
                                                                        "--threads", "\(actorThreads)"] + (config.cluster.curveKeys.map { ["--curve-keys", $0] } ?? []),
                                      threads: actorThreads))
        }
        func stopAll(grace: Double) {
            for c in children { c.terminate() }
            let deadline = Date().addingTimeInterval(grace)
            while children.contains(where: \.running) && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
            for c in children { c.kill9() }
            for c in children { c.process.waitUntilExit() }
        }
        while true {
            Thread.sleep(forTimeInterval: 0.05)  // a check costs microseconds; a coarse one was a tenth of a short run's tail
            if shouldStop() {
                say("stopping every process (the learner writes a checkpoint)")
                stopAll(grace: 120)
                return false
            }
            if !learner.running && learner.process.terminationStatus == 0 {
                // The run is complete: actors learn it from the coordinator and exit; then stop the coordinator.
                let deadline = Date().addingTimeInterval(10)
                while children.dropFirst(2).contains(where: \.running) && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
                stopAll(grace: 10)
                say("run complete (\(config.run.outDir))")
                return true
            }
            if let dead = children.first(where: { !$0.running && ($0.process.terminationStatus != 0 || $0 === coordinator || $0 === learner) }) {
                let why = dead.process.terminationReason == .uncaughtSignal ? "was killed by signal \(dead.process.terminationStatus)"
                                                                             : "exited with status \(dead.process.terminationStatus)"
                say("\(dead.name) \(why) unexpectedly; stopping the others")
                stopAll(grace: 60)
                throw Failure(description: "\(dead.name) \(why)")
            }
        }
    }
}

struct LaunchLocal: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "local",
        abstract: "Single-host multi-process run: coordinator, learner and N actors as separate processes over ZeroMQ on loopback.",
        discussion: """
        FILE is either a PPO config with a cluster: section (one distributed PPO run) or a pipeline config \
        (configs/quickstart.yaml): then data, SFT, labelling, RM, AM and selection run in this process and each \
        PPO arm runs distributed (pipelines resume by themselves; --resume and --restart are for a PPO config). \
        Output is prefixed by process; Ctrl-C stops everything with a final checkpoint; a process that dies \
        unexpectedly stops the run with a non-zero exit.
        """)
    @Option(help: "Number of actor processes.") var actors = 2
    @OptionGroup var options: TrainingOptions
    @Option(name: .customLong("learner-threads"), help: "Compute threads of the learner (default: every core).") var learnerThreads: Int?
    @Option(name: .customLong("actor-threads"), help: "Compute threads per actor (default: every core).") var actorThreads: Int?

    func validate() throws {
        guard actors >= 1 else { throw ValidationError("--actors must be at least 1") }
    }

    func run() throws {
        try failing {
            // Every process may use every core: the learner waits for rollouts while actors sample and actors
            // wait on back-pressure while it trains, so a fixed share leaves cores idle (on 2 cores, 1 actor:
            // 0.72x the single process with one thread each, 0.84-0.97x with all cores; tools/bench/distributed.sh).
            let share = ProcessInfo.processInfo.activeProcessorCount
            let stop = StopSignal.install()
            let cluster = LocalCluster(actors: actors, learnerThreads: learnerThreads ?? share, actorThreads: actorThreads ?? share,
                                       shouldStop: { stop.requested })
            let doc = try options.document()
            if doc.hasKey("run_dir") {
                let pipeline = try Pipeline(doc: doc)
                pipeline.shouldStop = { stop.requested }
                pipeline.distributedPPO = { _, file, resume in try cluster.run(configFile: file, resume: resume) }
                guard try pipeline.run() else { throw ExitCode(130) }
            } else {
                let c = try PPOConfig.load(doc)
                try RunDirectory.prepare(c.run.outDir, resume: options.resume, restart: options.restart,
                                         marks: ["checkpoint", "critic", "coordinator.journal"])
                try FileManager.default.createDirectory(atPath: c.run.outDir, withIntermediateDirectories: true)
                let file = c.run.outDir + "/launch.yaml"
                try AtomicFile.write(Data(try doc.yaml().utf8), to: file)
                guard try cluster.run(configFile: file, resume: options.resume) else { throw ExitCode(130) }
            }
        }
    }
}
