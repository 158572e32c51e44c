import ArgumentParser
import BallastBenchmark
import BallastConfig
import BallastData
import BallastFormats
import BallastKernels
import BallastModel
import BallastOptim
import BallastRL
import BallastRandom
import Foundation

/// The PPO loop a user waits for, against the loop they would otherwise run: generate (sampling, EOS
/// stopping), score, old/reference log-probs and values, then the PPO epochs over minibatches.
/// Every side runs as its own process (so peak RSS is its own) on one workload file: the same
/// weights, prompts, batch, response budget, epochs, minibatches and threads. Repetitions alternate
/// the sides, so drift on the machine falls on all of them.
struct BenchPPOStep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ppo-step",
        abstract: "Full PPO iterations (rollouts/s, response tokens/s, peak RSS) against TRL's PPOTrainer and a plain PyTorch loop.",
        discussion: """
            The workload is the built-in benchmark's: an SFT model (trained once into RUN/sft by `ballast pipeline \
            --until sft` unless --policy names one), its RL prompts, and responses that stop at EOS. The scorer and \
            critic are the SFT trunk with a zero-initialised head. The peers need `tools/install/bench-deps.sh` \
            (TRL) and `tools/install/python-deps.sh` (PyTorch, transformers).
            """)

    @Option(name: .customLong("run"), help: "Folder for the workload (SFT model, prompts, workload.json).") var runDir = "runs/bench/ppo-step"
    @Option(help: "Policy checkpoint (default: RUN/sft/checkpoint, trained first if missing).") var policy: String?
    @Option(help: "Prompts JSONL (default: RUN/data/rl_prompts.jsonl).") var prompts: String?
    @Option(name: .customLong("sft-steps"), help: "SFT steps when the policy has to be trained first.") var sftSteps = 300
    @Option var batch = 32
    @Option(name: .customLong("max-new-tokens")) var maxNewTokens = 96
    @Option var epochs = 2
    @Option var minibatches = 2
    @Option(help: "Timed PPO iterations per process.") var iterations = 4
    @Option(help: "Untimed iterations first, per process.") var warmup = 1
    @Option(help: "Processes per side, alternating.") var repeats = 3
    @Option var threads = 2
    @Option(help: "Sides to run, in order: ballast, trl, torch.") var sides = "ballast,trl,torch"
    @Option(name: .customLong("side"), help: .hidden) var sideOnly: String?
    @Option(name: .customLong("workload"), help: .hidden) var workloadFile: String?

    func validate() throws {
        guard batch > 0, batch % minibatches == 0 else { throw ValidationError("--batch must be a positive multiple of --minibatches") }
        for s in sides.split(separator: ",") where !["ballast", "trl", "torch"].contains(String(s)) {
            throw ValidationError("unknown side \(s) (known: ballast, trl, torch)")
        }
    }

    func run() throws {
        try failing {
            if let side = sideOnly {
                guard side == "ballast", let w = workloadFile else { throw ValidationError("--side ballast needs --workload") }
                let result = try PPOStepBench.runBallast(workload: try PPOStepWorkload.read(w))
                let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            let workload = try prepare()
            let file = runDir + "/workload.json"
            try workload.write(to: file)
            let chosen = sides.split(separator: ",").map(String.init)
            print("workload: \(workload.policy), \(workload.prompts.count) prompts (mean \(fmt(workload.meanPromptTokens)) tokens), batch \(batch), "
                  + "up to \(maxNewTokens) new tokens (EOS stops), \(epochs) epochs x \(minibatches) minibatches, \(threads) threads; "
                  + "\(warmup) + \(iterations) iterations per process, \(repeats) processes per side (their messages: \(runDir)/SIDE-N.log)")
            var results: [String: [[String: Any]]] = [:]
            for r in 1...repeats {
                for side in chosen {
                    let log = runDir + "/\(side)-\(r).log"
                    let out = try side == "ballast" ? runSelf(file, log: log) : Bench.runPython(script: "ppo_peer.py", [side, "--workload", file], log: log)
                    results[side, default: []].append(out)
                    print("  repeat \(r) \(side): \(fmt(out["iteration_s_median"] as? Double ?? .nan, 2)) s/iteration, "
                          + "\(fmt(out["rollouts_per_s"] as? Double ?? .nan, 2)) rollouts/s, \(fmt(out["response_tokens_per_s"] as? Double ?? .nan, 0)) response tokens/s, "
                          + "mean response \(fmt(out["mean_response_length"] as? Double ?? .nan)) tokens, peak RSS \(fmt(out["peak_rss_mb"] as? Double ?? .nan, 0)) MiB")
                }
            }
            func med(_ side: String, _ key: String) -> Double { Bench.median((results[side] ?? []).compactMap { $0[key] as? Double }) }
            print("medians over \(repeats) processes:")
            for side in chosen {
                let name = side == "ballast" ? "ballast" : side == "trl" ? "TRL \(results[side]?.first?["trl"] ?? "?") PPOTrainer" : "PyTorch loop"
                print("  \(name): \(fmt(med(side, "rollouts_per_s"), 2)) rollouts/s, \(fmt(med(side, "response_tokens_per_s"), 0)) response tokens/s, "
                      + "peak RSS \(fmt(med(side, "peak_rss_mb"), 0)) MiB")
            }
            if chosen.contains("ballast") {
                for peer in chosen where peer != "ballast" {
                    print("ratio ballast/\(peer): rollouts/s \(fmt(med("ballast", "rollouts_per_s") / med(peer, "rollouts_per_s"), 2))x, "
                          + "response tokens/s \(fmt(med("ballast", "response_tokens_per_s") / med(peer, "response_tokens_per_s"), 2))x, "
                          + "peak RSS \(fmt(med("ballast", "peak_rss_mb") / med(peer, "peak_rss_mb"), 2))x")
                }
            }
        }
    }

    /// The SFT policy (trained first when missing), a scorer with a zero score head, and the prompts.
    func prepare() throws -> PPOStepWorkload {
        let policyDir = policy ?? runDir + "/sft/checkpoint"
        let promptsFile = prompts ?? runDir + "/data/rl_prompts.jsonl"
        if !FileManager.default.fileExists(atPath: policyDir + "/config.json") || !FileManager.default.fileExists(atPath: promptsFile) {
            guard policy == nil && prompts == nil else {
                throw ConfigError("\(policyDir) or \(promptsFile) missing (leave out --policy and --prompts to make the built-in workload)")
            }
            Streams.err("bench ppo-step: making the workload in \(runDir): built-in data and a \(sftSteps)-step SFT (once; later runs reuse it)\n")
            try runSelfCommand(["pipeline", "--config", "configs/paper/main.yaml", "--set", "run_dir=\(runDir)",
                                "--set", "sft.train.steps=\(sftSteps)", "--set", "sft.run.eval_every=\(sftSteps)",
                                "--set", "sft.run.checkpoint_every=\(sftSteps)", "--until", "sft"])
        }
        let scorerDir = runDir + "/scorer"
        if !FileManager.default.fileExists(atPath: scorerDir + "/config.json") {
            try Checkpoint.save(try Checkpoint.load(policyDir).withScalarHeads(["score"]), to: scorerDir)
        }
        let records = try PromptRecord.read(promptsFile)
        // the prompts as the policy's tokenizer (and chat template) encode them, for every side
        let codec = try TextCodec.load(directory: policyDir)
        var w = PPOStepWorkload(policy: policyDir, reward: scorerDir, prompts: try records.map { try codec.promptIds(text: $0.prompt, messages: $0.messages) },
                                tasks: records.map(\.task), batch: batch, maxNewTokens: maxNewTokens, epochs: epochs,
                                minibatches: minibatches, iterations: iterations, warmup: warmup, threads: threads)
        w.promptTexts = records.map(\.prompt)
        w.eos = codec.eos
        w.pad = codec.pad
        return w
    }

    func runSelf(_ workload: String, log: String) throws -> [String: Any] {
        try Bench.runJSON(executable: Bench.selfExecutable(), ["bench", "ppo-step", "--side", "ballast", "--workload", workload], log: log)
    }

    func runSelfCommand(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Bench.selfExecutable())
        p.arguments = args
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw ConfigError("ballast \(args.joined(separator: " ")) failed with status \(p.terminationStatus)") }
    }
}

/// The work every side of `bench ppo-step` does, as the JSON file the peers read.
struct PPOStepWorkload {
    var policy: String
    var reward: String
    var prompts: [[Int32]]
    /// The prompts' text (the Ballast side builds its prompt records from it).
    var promptTexts: [String] = []
    var tasks: [String]
    /// The policy's end and padding tokens (the byte tokenizer's unless its folder has another).
    var eos = ByteTokenizer.eos, pad = ByteTokenizer.pad
    var batch: Int, maxNewTokens: Int, epochs: Int, minibatches: Int, iterations: Int, warmup: Int, threads: Int
    var temperature = 1.0, lr = 1e-6, criticLR = 5e-5, klCoef = 0.05, clip = 0.2, valueClip = 0.2
    var gamma = 1.0, lambda = 0.95, maxGradNorm = 1.0, seed = 1

    var meanPromptTokens: Double { Double(prompts.reduce(0) { $0 + $1.count }) / Double(max(prompts.count, 1)) }

    func write(to path: String) throws {
        let obj: [String: Any] = [
            "policy": policy, "reward": reward, "prompts": prompts.map { $0.map(Int.init) }, "tasks": tasks,
            "batch": batch, "max_new_tokens": maxNewTokens, "temperature": temperature,
            "prompt_texts": promptTexts, "eos": Int(eos), "pad": Int(pad), "epochs": epochs, "minibatches": minibatches,
            "lr": lr, "critic_lr": criticLR, "kl_coef": klCoef, "clip": clip, "value_clip": valueClip, "gamma": gamma,
            "lambda": lambda, "max_grad_norm": maxGradNorm, "iterations": iterations, "warmup": warmup, "threads": threads, "seed": seed,
        ]
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), to: path)
    }

    static func read(_ path: String) throws -> PPOStepWorkload {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard let o = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw ConfigError("\(path): not a JSON object") }
        func int(_ k: String) throws -> Int {
            guard let v = o[k] as? Int else { throw ConfigError("\(path): \(k) missing or not an integer") }
            return v
        }
        func double(_ k: String) throws -> Double {
            guard let v = o[k] as? Double else { throw ConfigError("\(path): \(k) missing or not a number") }
            return v
        }
        guard let policy = o["policy"] as? String, let reward = o["reward"] as? String, let prompts = o["prompts"] as? [[Int]],
              let tasks = o["tasks"] as? [String], !prompts.isEmpty, tasks.count == prompts.count
        else { throw ConfigError("\(path): policy, reward, prompts and tasks are required") }
        var w = PPOStepWorkload(policy: policy, reward: reward, prompts: prompts.map { $0.map { Int32($0) } }, tasks: tasks,
                                batch: try int("batch"), maxNewTokens: try int("max_new_tokens"), epochs: try int("epochs"),
                                minibatches: try int("minibatches"), iterations: try int("iterations"), warmup: try int("warmup"),
                                threads: try int("threads"))
        w.temperature = try double("temperature")
        w.lr = try double("lr")
        w.criticLR = try double("critic_lr")
        w.klCoef = try double("kl_coef")
        w.clip = try double("clip")
        w.valueClip = try double("value_clip")
        w.gamma = try double("gamma")
        w.lambda = try double("lambda")
        w.maxGradNorm = try double("max_grad_norm")
        w.seed = try int("seed")
        w.eos = Int32(try int("eos"))
        w.pad = Int32(try int("pad"))
        // older workload files have no texts: their prompts are the byte tokenizer's <bos> + bytes
        w.promptTexts = o["prompt_texts"] as? [String] ?? w.prompts.map { ByteTokenizer().decode(Array($0.dropFirst())) }
        guard w.promptTexts.count == w.prompts.count else { throw ConfigError("\(path): prompt_texts and prompts differ in length") }
        return w
    }
}

enum PPOStepBench {
    /// Ballast's side: `ballast ppo`'s own rollout (RolloutMaker) and update (PPOUpdater) on the workload.
    static func runBallast(workload w: PPOStepWorkload) throws -> [String: Any] {
        Parallel.threads = w.threads
        BLAS.setThreads(w.threads)
        let rssStart = Bench.peakRSSMiB()
        let policy = try Checkpoint.load(w.policy), reference = try Checkpoint.load(w.policy)
        let scorer = try Checkpoint.load(w.reward), critic = try Checkpoint.load(w.reward).withScalarHeads(["value_head"])
        for m in [reference, scorer, critic] { m.shareArenas(with: policy) }  // as PPOTrainer does
        let hyper = AdamW.Hyper(weightDecay: 0)
        func optimizer(_ m: GPT) -> AdamW {
            AdamW(count: m.parameterCount, decayRanges: m.layout.decayRanges, hyper: hyper)
        }
        let policyOpt = optimizer(policy), criticOpt = optimizer(critic)
        var ppo = PPOHyper()
        ppo.klCoef = w.klCoef
        ppo.scoreClip = nil
        ppo.gamma = w.gamma
        ppo.lambda = w.lambda
        ppo.clip = w.clip
        ppo.valueClip = w.valueClip
        ppo.epochs = w.epochs
        ppo.minibatch = w.batch / w.minibatches
        ppo.rehearsalCoef = 0
        let records = zip(w.promptTexts, w.tasks).enumerated().map { i, p in PromptRecord(prompt: p.0, task: p.1, id: "\(i)") }
        var seconds: [Double] = [], rolloutSeconds: [Double] = [], tokens: [Int] = [], eos = 0, rows = 0
        for it in 0..<(w.warmup + w.iterations) {
            let start = (it * w.batch) % records.count
            let batch = (0..<w.batch).map { records[(start + $0) % records.count] }
            var sampling = SamplingOptions(temperature: Float(w.temperature), maxNewTokens: w.maxNewTokens)
            sampling.seed = UInt64(w.seed) &+ UInt64(it) &* 7919
            var rng = SeededRNG(seed: UInt64(w.seed) ^ UInt64(it))
            let t0 = DispatchTime.now().uptimeNanoseconds
            let rollout = try RolloutMaker.make(policy: policy, reference: reference, critic: critic, scorer: scorer, prompts: batch,
                                                sampling: sampling, policyVersion: it)
            let t1 = DispatchTime.now().uptimeNanoseconds
            _ = PPOUpdater(hyper: ppo).update(rollout: rollout, policy: policy, critic: critic, policyOpt: policyOpt, criticOpt: criticOpt,
                                              lr: Float(w.lr), criticLR: Float(w.criticLR), beta: w.klCoef, maxGradNorm: Float(w.maxGradNorm),
                                              nextRehearsal: { nil }, rng: &rng)
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            guard it >= w.warmup else { continue }
            seconds.append(dt)
            rolloutSeconds.append(Double(t1 - t0) / 1e9)
            tokens.append(rollout.responseLengths.reduce(0, +))
            eos += (0..<rollout.count).filter { rollout.sequence($0).last == policy.codec.eos }.count
            rows += rollout.count
        }
        let median = Bench.median(seconds)
        return ["mode": "ballast", "threads": w.threads, "iterations": w.iterations, "iteration_s": seconds, "iteration_s_median": median, "rollout_s": rolloutSeconds,
                "rollouts_per_s": Double(w.batch) / median, "response_tokens": tokens,
                "response_tokens_per_s": Double(tokens.reduce(0, +)) / seconds.reduce(0, +),
                "mean_response_length": Double(tokens.reduce(0, +)) / Double(max(rows, 1)), "eos_fraction": Double(eos) / Double(max(rows, 1)),
                "peak_rss_mb": Bench.peakRSSMiB(), "rss_after_import_mb": rssStart]
    }
}
