import ArgumentParser
import BallastBenchmark
import BallastCluster
import BallastConfig
import BallastData
import BallastEvaluation
import BallastFormats
import BallastKernels
import BallastModel
import BallastPipeline
import BallastTraining
import BallastTransport
import BallastWire
import Foundation

struct EvalPolicy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Compare a policy with the SFT model on test prompts and the forget set: win/lose/tie by the gold scorer, gold and proxy scores, KL, length.")
    @Option(help: "Policy checkpoint (e.g. RUN/checkpoint of ballast ppo).") var policy: String
    @Option(help: "SFT checkpoint: the baseline and the KL reference.") var sft: String
    @Option(help: "Reward or advantage model for the proxy score (optional).") var scorer: String?
    @Option(help: "Test prompts JSONL {\"prompt\",\"task\",\"id\"}.") var prompts: String
    @Option(help: "Forget set JSONL (expert-aligned held-out examples; their prompts are used).") var forget: String?
    @Option(name: .customLong("tie-epsilon")) var tieEpsilon = 0.05
    @Option(name: .customLong("max-new-tokens")) var maxNewTokens = 48
    @Option(help: "Write the tables as JSON here.") var json: String?
    @OptionGroup var threads: ThreadOptions

    func run() throws {
        threads.apply()
        try failing {
            let pol = try Checkpoint.load(policy), base = try Checkpoint.load(sft), reference = try Checkpoint.load(sft)
            let sc = try scorer.map(Checkpoint.load)
            var ev = PolicyEvaluation()
            ev.tieEpsilon = tieEpsilon
            ev.maxNewTokens = maxNewTokens
            var out: [String: Any] = [:]
            var sets = [("test", try PromptRecord.read(prompts))]
            if let forget { sets.append(("forget", try PromptRecord.read(forget))) }
            for (name, records) in sets {
                let rows = try ev.compare(policy: pol, sft: base, reference: reference, scorer: sc, prompts: records)
                print("\(name) set (\(records.count) prompts), policy vs SFT:")
                print(PolicyEvaluation.table(rows))
                out[name] = try JSONSerialization.jsonObject(with: JSONEncoder().encode(rows))
            }
            if let json { try AtomicFile.write(try JSONSerialization.data(withJSONObject: out, options: [.prettyPrinted, .sortedKeys]), to: json) }
        }
    }
}

struct CurveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "curve",
        abstract: "Evaluate a PPO run along training (step 0 = SFT, every snapshot, the final policy): sampled gold, proxy and sequence KL on the test prompts, greedy win/lose against SFT on the test and forget sets; writes PPO_DIR/curve.jsonl.")
    @Option(name: .customLong("ppo-dir"), help: "The PPO run folder (run.out_dir, with snapshots/ and checkpoint/).") var ppoDir: String
    @Option(help: "SFT checkpoint: the baseline and the KL reference.") var sft: String
    @Option(help: "The run's scorer (reward or advantage model) for the proxy score.") var scorer: String
    @Option(help: "Benchmark data folder (test_prompts.jsonl, forget.jsonl, forget_sft_only.jsonl).") var data: String
    @Option(name: .customLong("final-step"), help: "The run's last step (default: the checkpoint's).") var finalStep: Int?
    @Option(name: .customLong("samples-per-prompt")) var samplesPerPrompt = 2
    @Option(name: .customLong("tie-epsilon")) var tieEpsilon = 0.05
    @Option(name: .customLong("max-new-tokens")) var maxNewTokens = 64
    @OptionGroup var threads: ThreadOptions

    func run() throws {
        threads.apply()
        try failing {
            var ev = PolicyEvaluation(maxNewTokens: maxNewTokens)
            ev.tieEpsilon = tieEpsilon
            ev.samplesPerPrompt = samplesPerPrompt
            let step: Int
            if let finalStep { step = finalStep } else {
                guard let dir = TrainingCheckpoint.locate(ppoDir + "/checkpoint"),
                      let data = FileManager.default.contents(atPath: dir + "/trainer_state.json") else {
                    throw ValidationError("\(ppoDir)/checkpoint has no trainer_state.json: give --final-step")
                }
                step = try JSONDecoder().decode(TrainerState.self, from: data).step
            }
            let sets = try PolicyEvaluation.CurveSets(dataDir: data) { print($0) }
            _ = try ev.curve(ppoDir: ppoDir, finalStep: step, sft: try Checkpoint.load(sft), scorer: try Checkpoint.load(scorer), sets: sets) { print($0) }
            print("wrote \(ppoDir)/curve.jsonl")
        }
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Write RUN_DIR/report.html: score distributions, PPO curves, win/lose/tie bars (inline SVG).")
    @Argument(help: "A pipeline run folder (run_dir of ballast pipeline).") var runDir: String
    @Option(help: "Output HTML path (default RUN_DIR/report.html).") var out: String?

    func run() throws {
        try failing {
            guard FileManager.default.fileExists(atPath: runDir) else { throw ConfigError("\(runDir): no such run folder") }
            print("wrote \(try RunReport.write(runDir: runDir, to: out))")
        }
    }
}

struct PipelineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "The whole method in one process: data, SFT, labelling, RM and AM, selection, PPO arms (RM, AM, AM + rehearsal), evaluation. Resumable.")
    @OptionGroup var options: ConfigOptions
    @Option(help: "Stop after this stage: data, sft, label, rm, am, select, rm-ppo, am-ppo, am-ppo-sr, eval.") var until: String?

    func validate() throws {
        let stages = ["data", "sft", "label", "rm", "am", "select"] + Pipeline.arms.map(\.name) + ["eval"]
        if let until, !stages.contains(until) { throw ValidationError("--until must be one of \(stages.joined(separator: ", "))") }
    }

    func run() throws {
        try failing {
            let p = try Pipeline(doc: try options.document())
            p.until = until
            let stop = StopSignal.install()
            p.shouldStop = { stop.requested }
            if try !p.run() {
                FileHandle.standardError.write(Data("stopped; run the same command again to continue\n".utf8))
                throw ExitCode(130)
            }
        }
    }
}
