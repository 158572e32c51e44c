import ArgumentParser
import BallastBenchmark
import BallastCluster
import BallastData
import BallastFormats
import BallastKernels
import BallastModel
import BallastTrain
import BallastTransport
import BallastWire
import Foundation

@main
enum Entry {
    static func main() {
        OpenBLASEnvironment.ensureShortSpin()
        Ballast.main()
    }
}

struct Ballast: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ballast",
        abstract: "RLHF with an Advantage Model and Selective Rehearsal, on the CPU.",
        subcommands: [Init.self, Generate.self, Forward.self, SFT.self, TrainRM.self, TrainAM.self, EvalRM.self, Select.self, PPOCommand.self, EvalPolicy.self, CurveCommand.self, PipelineCommand.self, ReportCommand.self, WireCommand.self, CoordinatorCommand.self, LearnerCommand.self, ActorCommand.self, LaunchCommand.self, StatusCommand.self, KeysCommand.self, DataCommand.self, BenchCommand.self])
}

/// Thread count shared by commands: --threads, else BALLAST_THREADS, else the core count.
struct ThreadOptions: ParsableArguments {
    @Option(help: "Compute threads (OpenBLAS and Ballast's kernels). Default: BALLAST_THREADS or all cores.")
    var threads: Int?

    func apply() {
        let n = threads ?? ProcessInfo.processInfo.environment["BALLAST_THREADS"].flatMap(Int.init)
            ?? ProcessInfo.processInfo.activeProcessorCount
        Parallel.threads = max(1, n)
        BLAS.setThreads(max(1, n))
    }
}

/// Errors that reach the user as one clear line and exit status 1.
func failing<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as ValidationError { throw e } catch let e as ExitCode { throw e } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode.failure
    }
}

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a randomly initialised model as a checkpoint folder.")
    @Option(help: "Take the architecture from the `model` section of this YAML config (presets and flags below override it).") var config: String?
    @Option(name: .customLong("set"), help: "Override a field of --config, e.g. --set model.n_layer=6 (repeatable).") var overrides: [String] = []
    @Option(help: "Architecture preset: tiny, small, medium.") var preset: String?
    @Option(name: .customLong("n-layer")) var nLayer: Int?
    @Option(name: .customLong("n-head")) var nHead: Int?
    @Option(name: .customLong("n-embd")) var nEmbd: Int?
    @Option(name: .customLong("n-positions")) var nPositions: Int?
    @Option(name: .customLong("vocab-size")) var vocabSize: Int?
    @Option(name: .customLong("head"), help: "Add a scalar head (score, value_head, expected_reward_head); repeatable.") var heads: [String] = []
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @Option(help: "Output checkpoint folder.") var out: String

    func run() throws {
        try failing {
            var cfg: GPTConfig
            if let config {
                let doc = try ConfigDocument(file: config)
                for o in overrides { try doc.apply(override: o) }
                let spec = try ModelSpec.read(try doc.top.section("model"))
                if let from = spec.initFrom { throw ConfigError("\(config): model.init_from (\(from)) names an existing model; init writes a new one") }
                cfg = spec.config
            } else {
                cfg = .small
            }
            if let preset {
                guard let p = GPTConfig.preset(preset) else { throw ValidationError("unknown preset \(preset)") }
                cfg = p
            }
            if let nLayer { cfg.nLayer = nLayer }
            if let nHead { cfg.nHead = nHead }
            if let nEmbd { cfg.nEmbd = nEmbd }
            if let nPositions { cfg.nPositions = nPositions }
            if let vocabSize { cfg.vocabSize = vocabSize }
            cfg.scalarHeads = heads
            let model = try GPT(config: cfg)
            model.initializeRandom(seed: seed)
            try Checkpoint.save(model, to: out)
            print("wrote \(out): \(model.parameterCount) parameters (n_layer \(cfg.nLayer), n_head \(cfg.nHead), n_embd \(cfg.nEmbd), n_positions \(cfg.nPositions), vocab \(cfg.vocabSize))")
        }
    }
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Continue a prompt with a checkpoint (KV-cache decoding).")
    @Option(help: "Checkpoint folder.") var model: String
    @Option(help: "Prompt text; encoded as <bos> followed by its UTF-8 bytes.") var prompt: String
    @Flag(help: "Argmax decoding.") var greedy = false
    @Option var temperature: Float = 1
    @Option(name: .customLong("top-k")) var topK = 0
    @Option(name: .customLong("top-p")) var topP: Float = 1
    @Option(name: .customLong("max-new-tokens")) var maxNewTokens = 64
    @Option(help: "Number of samples of the prompt to draw as one batch.") var samples = 1
    @Option var seed: UInt64 = 0
    @Flag(help: "Print JSON: prompt_ids, output_ids, text, logprobs.") var json = false
    @OptionGroup var threads: ThreadOptions

    func run() throws {
        threads.apply()
        try failing {
            let m = try Checkpoint.load(model)
            let tok = ByteTokenizer()
            let ids = [ByteTokenizer.bos] + tok.encode(prompt)
            let opts = SamplingOptions(greedy: greedy, temperature: temperature, topK: topK, topP: topP,
                                       maxNewTokens: min(maxNewTokens, m.config.nPositions - ids.count), seed: seed)
            guard opts.maxNewTokens >= 1 else {
                throw GenerationError.invalid("prompt of \(ids.count) tokens leaves no room in n_positions \(m.config.nPositions)")
            }
            let gens = try Generator(model: m).generate(prompts: Array(repeating: ids, count: max(samples, 1)), options: opts)
            for g in gens {
                let text = tok.decode(g.outputIds)
                if json {
                    let obj: [String: Any] = ["prompt_ids": g.promptIds.map(Int.init), "output_ids": g.outputIds.map(Int.init),
                                              "text": text, "logprobs": g.logprobs.map(Double.init), "stopped_at_eos": g.stoppedAtEOS]
                    let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                } else {
                    print(prompt + text)
                }
            }
        }
    }
}

struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a checkpoint on token ids and write logits (and scalar heads) as safetensors.",
        discussion: "Input JSON: {\"tokens\": [[ids...], ...], \"mask\": [[1|0, ...], ...]} (rectangular; mask optional).")
    @Option(help: "Checkpoint folder.") var model: String
    @Option(help: "Input JSON file.") var input: String
    @Option(help: "Output .safetensors file: logits [B,T,V], heads [B,T,H].") var out: String
    @OptionGroup var threads: ThreadOptions

    func run() throws {
        threads.apply()
        try failing {
            let m = try Checkpoint.load(model)
            guard let data = FileManager.default.contents(atPath: input),
                  let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let rows = obj["tokens"] as? [[Int]], let first = rows.first, !first.isEmpty else {
                throw DatasetError(file: input, line: 0, problem: "expected {\"tokens\": [[ids...], ...]} with at least one token")
            }
            let masks = obj["mask"] as? [[Double]] ?? rows.map { $0.map { _ in 1.0 } }
            let t = first.count
            guard rows.allSatisfy({ $0.count == t }), masks.count == rows.count, masks.allSatisfy({ $0.count == t }) else {
                throw DatasetError(file: input, line: 0, problem: "tokens and mask must be rectangular and of the same shape")
            }
            for r in rows { if let bad = r.first(where: { $0 < 0 || $0 >= m.config.vocabSize }) {
                throw DatasetError(file: input, line: 0, problem: "token id \(bad) outside the vocabulary of \(m.config.vocabSize)")
            } }
            guard t <= m.config.nPositions else {
                throw DatasetError(file: input, line: 0, problem: "length \(t) exceeds n_positions \(m.config.nPositions)")
            }
            let batch = TokenBatch(tokens: rows.flatMap { $0.map(Int32.init) }, mask: masks.flatMap { $0.map(Float.init) },
                                   batch: rows.count, length: t)
            m.forward(batch)
            var tensors: [(String, TensorData)] = [("logits", TensorData(floats: m.logits, shape: [rows.count, t, m.config.vocabSize]))]
            if !m.config.scalarHeads.isEmpty {
                tensors.append(("heads", TensorData(floats: m.headOutputs, shape: [rows.count, t, m.config.scalarHeads.count])))
            }
            try SafeTensorsWriter.write(tensors, to: out)
        }
    }
}

struct SFT: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Supervised fine-tuning on {prompt, completion} JSONL (loss on completions).")
    @Option(help: "YAML config (see configs/).") var config: String
    @Option(name: .customLong("set"), help: "Override a config field, e.g. --set train.lr=3e-4 (repeatable).") var overrides: [String] = []
    @Flag(help: "Continue from RUN/checkpoint.") var resume = false

    func run() throws {
        try failing {
            let doc = try ConfigDocument(file: config)
            for o in overrides { try doc.apply(override: o) }
            let cfg = try SFTConfig.load(doc)
            let trainer = try SFTTrainer(config: cfg, resume: resume)
            let stop = StopSignal.install()
            trainer.shouldStop = { stop.requested }
            let summary = try trainer.run()
            if summary.interrupted { throw ExitCode(130) }
        }
    }
}

struct TrainAM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-am",
        abstract: "Train an Advantage Model (r and e heads; ranking, expected-reward, bound, per-task mean and spread terms) from an SFT checkpoint.")
    @Option(help: "YAML config (see configs/am-benchmark.yaml).") var config: String
    @Option(name: .customLong("set"), help: "Override a config field, e.g. --set am.bound=0 (repeatable).") var overrides: [String] = []
    @Flag(help: "Continue from RUN/checkpoint.") var resume = false

    func run() throws {
        var rm = TrainRM()
        rm.config = config
        rm.overrides = overrides
        rm.resume = resume
        try rm.train(kind: .advantage)
    }
}

struct TrainRM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-rm", abstract: "Train a Bradley–Terry reward model on {prompt, chosen, rejected} JSONL, starting from an SFT checkpoint.")
    @Option(help: "YAML config (see configs/rm-benchmark.yaml).") var config: String
    @Option(name: .customLong("set"), help: "Override a config field (repeatable).") var overrides: [String] = []
    @Flag(help: "Continue from RUN/checkpoint.") var resume = false

    func run() throws { try train(kind: .reward) }

    func train(kind: RewardConfig.Kind) throws {
        try failing {
            let doc = try ConfigDocument(file: config)
            for o in overrides { try doc.apply(override: o) }
            let trainer = try RewardTrainer(config: try RewardConfig.load(doc, kind: kind), resume: resume)
            let stop = StopSignal.install()
            trainer.shouldStop = { stop.requested }
            if try trainer.run().interrupted { throw ExitCode(130) }
        }
    }
}

struct EvalRM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval-rm", abstract: "Ranking accuracy, ECE and per-task score distributions of a reward model on preference pairs.")
    @Option(help: "Reward model checkpoint (with a score head).") var model: String
    @Option(help: "Preference JSONL.") var data: String
    @Option(name: .customLong("max-length")) var maxLength = 128
    @Option(help: "Also write the report as JSON here.") var json: String?
    @OptionGroup var threads: ThreadOptions

    func run() throws {
        threads.apply()
        try failing {
            let m = try Checkpoint.load(model)
            guard let head = m.config.scalarHeads.firstIndex(of: "score") else {
                throw CheckpointError(path: model, problem: "no score head (ballast_scalar_heads: \(m.config.scalarHeads))")
            }
            let pairs = try PreferenceData.load(data, maxLength: min(maxLength, m.config.nPositions))
            let expectedHead = m.config.scalarHeads.firstIndex(of: "expected_reward_head")
            let s = PreferenceScorer.score(m, pairs.encoded, head: head, expectedHead: expectedHead)
            let tasks = pairs.encoded.map(\.task)
            let rReport = RewardReport(chosen: s.chosen, rejected: s.rejected, tasks: tasks, pairs: pairs.raw)
            print(expectedHead == nil ? "reward r (score head at EOS):" : "reward r (score head at EOS; accuracy and ECE are the same for a = r - e):")
            print(rReport.table())
            var out: [String: Any] = ["r": try JSONSerialization.jsonObject(with: rReport.json())]
            if expectedHead != nil {
                let aReport = RewardReport(chosen: zip(s.chosen, s.expected).map { $0 - $1 },
                                           rejected: zip(s.rejected, s.expected).map { $0 - $1 }, tasks: tasks, pairs: pairs.raw)
                print("\nadvantage a = r - e (e: expected_reward_head at the prompt's last token):")
                print(aReport.table())
                out["a"] = try JSONSerialization.jsonObject(with: aReport.json())
            }
            if let json {
                try AtomicFile.write(try JSONSerialization.data(withJSONObject: out, options: [.prettyPrinted, .sortedKeys]), to: json)
            }
        }
    }
}

struct Select: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Selective Rehearsal: cluster PPO prompts (with SFT responses) and keep each cluster's top-k by AM score as the rehearsal set.")
    @Option(help: "SFT checkpoint (writes the responses; default encoder).") var sft: String
    @Option(help: "Advantage (or reward) model checkpoint that scores the responses.") var am: String
    @Option(help: "Checkpoint whose mean-pooled final hidden state embeds each example (default: --sft).") var encoder: String?
    @Option(help: "PPO prompts JSONL {\"prompt\",\"task\",\"id\"}.") var prompts: String
    @Option(help: "Output folder: rehearsal.jsonl, ppo_prompts.jsonl, clusters.json.") var out: String
    @Option var clusters = 16
    @Option(name: .customLong("per-cluster")) var perCluster = 8
    @Option var seed: UInt64 = 0
    @Option(name: .customLong("max-new-tokens")) var maxNewTokens = 48
    @Flag(help: "Ablation: a random rehearsal subset of the same size instead of each cluster's top-k.") var random = false
    @OptionGroup var threads: ThreadOptions

    func run() throws {
        threads.apply()
        try failing {
            guard clusters >= 1, perCluster >= 1 else { throw ValidationError("--clusters and --per-cluster must be at least 1") }
            let sftModel = try Checkpoint.load(sft)
            let encoderModel = try encoder.map(Checkpoint.load) ?? sftModel
            let scorer = try Checkpoint.load(am)
            let records = try PreferenceLabeler.readPrompts(prompts)
            var job = SelectionJob()
            (job.clusters, job.perCluster, job.seed, job.maxNewTokens, job.randomSubset) = (clusters, perCluster, seed, maxNewTokens, random)
            let progress = Progress()
            let result = try job.run(sft: sftModel, encoder: encoderModel, scorer: scorer, prompts: records) { progress.update($0, force: false) }
            try JSONL.write(result.rehearsal, to: out + "/rehearsal.jsonl")
            try JSONL.write(result.ppo, to: out + "/ppo_prompts.jsonl")
            try AtomicFile.write(try JSONSerialization.data(withJSONObject: result.summary, options: [.prettyPrinted, .sortedKeys]), to: out + "/clusters.json")
            progress.note("wrote \(out)/rehearsal.jsonl (\(result.rehearsal.count)), \(out)/ppo_prompts.jsonl (\(result.ppo.count)), \(out)/clusters.json")
        }
    }
}

struct PPOCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ppo",
        abstract: "PPO (KL penalty, GAE, clipped policy and value losses) with optional selective-rehearsal NLL, scored by an RM or AM.")
    @Option(help: "YAML config (see configs/ppo-benchmark.yaml).") var config: String
    @Option(name: .customLong("set"), help: "Override a config field, e.g. --set ppo.rehearsal_coef=0 (repeatable).") var overrides: [String] = []
    @Flag(help: "Continue from RUN/checkpoint and RUN/critic.") var resume = false

    func run() throws {
        try failing {
            let doc = try ConfigDocument(file: config)
            for o in overrides { try doc.apply(override: o) }
            let trainer = try PPOTrainer(config: try PPOConfig.load(doc), resume: resume)
            let stop = StopSignal.install()
            trainer.shouldStop = { stop.requested }
            if try trainer.run().interrupted { throw ExitCode(130) }
        }
    }
}

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
            var sets = [("test", try PreferenceLabeler.readPrompts(prompts))]
            if let forget { sets.append(("forget", try PreferenceLabeler.readPrompts(forget))) }
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

struct PipelineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "The whole method in one process: data, SFT, labelling, RM and AM, selection, PPO arms (RM, AM, AM + rehearsal), evaluation. Resumable.")
    @Option(help: "Pipeline YAML (see configs/quickstart.yaml).") var config: String
    @Option(name: .customLong("set"), help: "Override a field, e.g. --set ppo.train.steps=10 (repeatable).") var overrides: [String] = []
    @Option(help: "Stop after this stage: data, sft, label, rm, am, select, rm-ppo, am-ppo, am-ppo-sr, eval.") var until: String?

    func run() throws {
        try failing {
            let doc = try ConfigDocument(file: config)
            for o in overrides { try doc.apply(override: o) }
            let p = try Pipeline(doc: doc)
            let stages = ["data", "sft", "label", "rm", "am", "select"] + Pipeline.arms.map(\.name) + ["eval"]
            if let until, !stages.contains(until) { throw ValidationError("--until must be one of \(stages.joined(separator: ", "))") }
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

struct WireCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wire", abstract: "Wire-format tools (spec: Sources/BallastWire/WIRE.md).", subcommands: [WireSample.self, WireDecode.self])
}

struct WireSample: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample", abstract: "Write a sample rollout frame (envelope + payload) to a file, for readers written from the spec.")
    @Option(help: "Output file.") var out: String

    func run() throws {
        try failing {
            let message = RolloutMessage(policyVersion: 12, sequences: [[256, 72, 105, 257], [256, 79, 107, 33, 257]], promptTokens: [2, 2],
                                         logp: [[-0.5, -1.25], [-0.125, -2, -0.75]], refLogp: [[-0.5, -1], [-0.25, -2, -0.5]],
                                         values: [[0.25, 0.5], [0, 0.125, -0.25]], scores: [1.5, -0.25], gold: [1, 0], tasks: ["qa", "reverse"],
                                         promptIDs: [4, 9], epoch: 0, lease: 7, actor: "actor-0")
            try AtomicFile.write(message.frame(sequence: 3).encodeContiguous(), to: out)
            print("wrote \(out): rollout frame, sequence 3, policy version 12, 2 rows (WIRE.md, kind 5)")
        }
    }
}

struct WireDecode: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "decode", abstract: "Validate and describe a frame stored in a file.")
    @Argument var file: String

    func run() throws {
        try failing {
            guard let data = FileManager.default.contents(atPath: file) else { throw ConfigError("\(file): cannot read") }
            let (frame, _) = try Frame.decode(contiguous: data)
            print("kind \(frame.kind) sequence \(frame.sequence) policy_version \(frame.policyVersion) metadata \(frame.metadata.sorted { $0.key < $1.key })")
            for (name, t) in frame.tensors { print("  \(name): \(t.dtype.rawValue) \(t.shape)") }
        }
    }
}

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "data", abstract: "Datasets.", subcommands: [BenchmarkData.self, ForgetData.self, LabelData.self, BuiltinSFTData.self])
}

struct BenchmarkData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write the built-in multi-task benchmark: sft_train, sft_test, rl_prompts, test_prompts, forget_candidates, forget_sft_only, pref_prompts, pref_test_prompts (JSONL).")
    @Option(help: "Output folder.") var out: String
    @Option var seed: UInt64 = 1
    @Option(name: .customLong("sft-train")) var sftTrain = 12000
    @Option(name: .customLong("sft-test")) var sftTest = 600
    @Option(name: .customLong("rl-prompts")) var rlPrompts = 3000
    @Option(name: .customLong("test-prompts")) var testPrompts = 600
    @Option(help: "Forget-set candidates (the expert-aligned forget set keeps those the SFT model answers well: `ballast data forget`).") var forget = 600
    @Option(name: .customLong("pref-prompts")) var prefPrompts = 3000
    @Option(name: .customLong("pref-test-prompts")) var prefTestPrompts = 600

    func run() throws {
        try failing {
            var sizes = Benchmark.Sizes()
            (sizes.sftTrain, sizes.sftTest, sizes.rlPrompts, sizes.testPrompts, sizes.forget) = (sftTrain, sftTest, rlPrompts, testPrompts, forget)
            (sizes.prefPrompts, sizes.prefTestPrompts) = (prefPrompts, prefTestPrompts)
            let counts = try Benchmark.writeDatasets(to: out, seed: seed, sizes: sizes)
            for (name, n) in counts.sorted(by: { $0.key < $1.key }) { print("\(out)/\(name).jsonl: \(n)") }
            print("tasks: \(Benchmark.families.map(\.name).joined(separator: ", "))")
        }
    }
}

struct ForgetData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forget",
        abstract: "Keep the candidate prompts that the SFT model already answers well (greedy gold >= 0.95): the expert-aligned forget set.")
    @Option(help: "SFT checkpoint folder.") var sft: String
    @Option(help: "Candidate prompts JSONL (forget_candidates.jsonl of `data generate`).") var candidates: String
    @Option(help: "Output JSONL (forget.jsonl).") var out: String
    @Option(name: .customLong("max-new-tokens")) var maxNewTokens = 64
    @OptionGroup var threads: ThreadOptions

    func run() throws {
        threads.apply()
        try failing {
            let records = try PreferenceLabeler.readPrompts(candidates)
            let kept = try PolicyEvaluation(maxNewTokens: maxNewTokens).expertAligned(sft: try Checkpoint.load(sft), candidates: records)
            try JSONL.write(kept, to: out)
            print("wrote \(out): \(kept.count) of \(records.count) candidates answered with gold >= \(PolicyEvaluation.expertGold)")
        }
    }
}

struct LabelData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "label",
        abstract: "Answer every prompt once with each sampler of a panel (SFT-stage checkpoints at several temperatures), compare every two distinct answers, and write the pairs chosen by the simulated annotators.")
    @Option(help: "Policy checkpoint folder (usually the final SFT model).") var policy: String
    @Option(help: "Prompts JSONL {\"prompt\",\"task\",\"id\"}.") var prompts: String
    @Option(help: "Output JSONL of {\"prompt\",\"chosen\",\"rejected\",\"task\",\"id\",\"annotator_p\"}.") var out: String
    @Option(help: "Sampling temperatures of --policy in the panel, comma-separated.") var temperatures = "0.7,1.0,1.3"
    @Option(help: "An earlier SFT checkpoint that joins the panel.") var early: String?
    @Option(name: .customLong("early-temperature")) var earlyTemperature: Float = 1
    @Option(name: .customLong("max-new-tokens")) var maxNewTokens = 64
    @Option(name: .customLong("length-bias"), help: "Annotator preference for longer responses, per 10 characters (0 = none: the control).") var lengthBias = 1.0
    @Option(name: .customLong("tie-margin"), help: "Comparisons with |preference logit| below this are ties, dropped.") var tieMargin = 1.0
    @Option(name: .customLong("flip-rate"), help: "Probability that the annotator's choice is flipped.") var flipRate = 0.0
    @Option var seed: UInt64 = 0
    @OptionGroup var threads: ThreadOptions

    func run() throws {
        threads.apply()
        try failing {
            let temps = try temperatures.split(separator: ",").map { t -> Float in
                guard let v = Float(t.trimmingCharacters(in: .whitespaces)), v > 0 else { throw ValidationError("--temperatures must be positive numbers, comma-separated") }
                return v
            }
            guard (0...1).contains(flipRate), tieMargin >= 0 else { throw ValidationError("--flip-rate must be in [0, 1] and --tie-margin >= 0") }
            let model = try Checkpoint.load(policy)
            var panel = temps.map { PreferenceLabeler.Sampler(name: "policy@T\($0)", policy: model, temperature: $0) }
            if let early { panel.append(.init(name: "early@T\(earlyTemperature)", policy: try Checkpoint.load(early), temperature: earlyTemperature)) }
            let records = try PreferenceLabeler.readPrompts(prompts)
            var labeler = PreferenceLabeler()
            labeler.maxNewTokens = maxNewTokens
            labeler.annotator = Annotator(lengthBias: lengthBias, tieMargin: tieMargin, flipRate: flipRate)
            labeler.seed = seed
            let progress = Progress()
            let result = try labeler.label(panel: panel, prompts: records) { done, total in
                progress.update("labelling: \(done)/\(total) prompts", force: done == total || done % 256 < labeler.batchPrompts)
            }
            try JSONL.write(result.pairs, to: out)
            progress.note("wrote \(result.pairs.count) pairs to \(out) (\(result.identical) identical and \(result.ties) tied comparisons dropped)")
            for (sampler, perTask) in result.meanGold.sorted(by: { $0.key < $1.key }) {
                print("  \(sampler) mean gold: " + perTask.sorted { $0.key < $1.key }.map { String(format: "%@ %.3f", $0.key, $0.value) }.joined(separator: ", "))
            }
        }
    }
}

struct BuiltinSFTData: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sft", abstract: "Write the built-in SFT dataset as JSONL (train.jsonl, eval.jsonl).")
    @Option(help: "Output folder.") var out: String
    @Option var train = 20000
    @Option var eval = 256
    @Option var seed: UInt64 = 1

    func run() throws {
        try failing {
            try JSONL.write(BuiltinSFT.generate(count: train, seed: seed), to: out + "/train.jsonl")
            try JSONL.write(BuiltinSFT.generate(count: eval, seed: seed &+ 1_000_003), to: out + "/eval.jsonl")
            print("wrote \(out)/train.jsonl (\(train)) and \(out)/eval.jsonl (\(eval)); tasks: \(BuiltinSFT.tasks.joined(separator: ", "))")
        }
    }
}
