import ArgumentParser
import BallastConfig
import BallastData
import BallastFormats
import BallastKernels
import BallastModel
import BallastRandom
import BallastWire
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks against PyTorch on the same config, batch and threads (medians and ratios).",
        subcommands: [BenchTrain.self, BenchGenerate.self, BenchPPOStep.self, BenchTokenize.self, BenchSgemm.self, BenchWire.self, BenchTransfer.self, BenchCoordinator.self])
}

struct BenchModelOptions: ParsableArguments {
    @Option(help: "Architecture preset.") var preset = "small"
    @Option(help: "gpt2, llama or qwen2: the preset's shape as that architecture (the Llama family as `ballast init --architecture` makes it), against transformers' GPT2LMHeadModel, LlamaForCausalLM or Qwen2ForCausalLM.") var architecture = "gpt2"
    @Option(help: "Threads for both Ballast and PyTorch.") var threads = 2
    @Flag(name: .customLong("no-torch"), help: "Skip the PyTorch side.") var noTorch = false

    func validate() throws {
        guard GPTConfig.preset(preset) != nil else { throw ValidationError("unknown preset \(preset) (known: \(GPTConfig.presetNames.joined(separator: ", ")))") }
        guard Architecture(rawValue: architecture) != nil else {
            throw ValidationError("unknown architecture \(architecture) (known: \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
    }

    func config() throws -> GPTConfig {
        guard let c = GPTConfig.preset(preset), let a = Architecture(rawValue: architecture) else { throw ValidationError("unknown preset \(preset)") }
        return c.converted(to: a)
    }

    func torchArgs(_ c: GPTConfig) -> [String] {
        ["--architecture", c.architecture.rawValue, "--n-layer", "\(c.nLayer)", "--n-head", "\(c.nHead)", "--n-kv-head", "\(c.nKVHead)",
         "--n-embd", "\(c.nEmbd)", "--intermediate-size", "\(c.intermediateSize)", "--n-positions", "\(c.nPositions)",
         "--vocab-size", "\(c.vocabSize)", "--threads", "\(threads)"]
    }

    /// What the config line of a report says about the architecture.
    static func describe(_ c: GPTConfig) -> String {
        let family = c.architecture.isLlamaFamily ? " n_kv_head \(c.nKVHead) intermediate \(c.intermediateSize)" : ""
        return "\(c.architecture.rawValue): n_layer \(c.nLayer) n_head \(c.nHead)\(family) n_embd \(c.nEmbd) vocab \(c.vocabSize)"
    }

    func apply() {
        Parallel.threads = threads
        BLAS.setThreads(threads)
    }
}

func fmt(_ x: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", x) }

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Forward + backward + AdamW tokens/s, MFU and peak memory.")
    @OptionGroup var opts: BenchModelOptions
    @Option var batch = 16
    @Option var seq = 128
    @Option var steps = 20
    @Option var warmup = 3

    func run() throws {
        opts.apply()
        try failing {
            let cfg = try opts.config()
            let peak = Bench.sgemmGFlops()
            let r = try Bench.train(config: cfg, batch: batch, seq: seq, steps: steps, warmup: warmup)
            print("config: \(BenchModelOptions.describe(cfg)), T \(seq), batch \(batch), threads \(opts.threads), \(r.params) params")
            print("sgemm peak (1536^3, best of 12): \(fmt(peak)) GFLOP/s")
            print("ballast: step \(fmt(Bench.median(r.stepMs))) ms median, \(fmt(r.tokensPerSecond, 0)) tokens/s, "
                  + "\(fmt(r.modelGFlops)) model GFLOP/s = \(fmt(100 * r.modelGFlops / peak))% of sgemm peak, peak RSS \(fmt(r.peakRSSMiB)) MiB")
            guard !opts.noTorch else { return }
            let py = try Bench.runPython(["train"] + opts.torchArgs(cfg) + ["--seq", "\(seq)", "--batch", "\(batch)",
                                                                            "--steps", "\(steps)", "--warmup", "\(warmup)"])
            let ptps = py["tokens_per_s"] as? Double ?? .nan
            let prss = py["peak_rss_mb"] as? Double ?? .nan
            let imp = py["rss_after_import_mb"] as? Double ?? .nan
            print("pytorch \(py["torch"] ?? "?") (\(py["attn"] ?? "?") attention): step \(fmt(py["step_ms_median"] as? Double ?? .nan)) ms median, "
                  + "\(fmt(ptps, 0)) tokens/s, peak RSS \(fmt(prss)) MiB (\(fmt(imp)) MiB after import)")
            print("ratio ballast/pytorch: speed \(fmt(r.tokensPerSecond / ptps, 2))x, peak memory \(fmt(r.peakRSSMiB / prss, 2))x")
        }
    }
}

struct BenchGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "KV-cache decoding, new tokens/s, against transformers generate.",
        discussion: """
        Default: greedy decoding of exactly --new-tokens tokens from a random-initialised --preset model.         With --sample: temperature-1 sampling without top-k/top-p that stops each row at EOS, from a trained         --policy on real --prompts (both sides start from the same first --batch prompts; lengths follow the         model, so throughput counts the tokens each side actually generated, up to and including EOS).
        """)
    @OptionGroup var opts: BenchModelOptions
    @Option var batch = 32
    @Option(name: .customLong("prompt-len")) var promptLen = 16
    @Option(name: .customLong("new-tokens")) var newTokens = 64
    @Option var repeats = 5
    @Flag(help: "Sampling with EOS stopping from a trained policy (--policy, --prompts).") var sample = false
    @Option(help: "--sample: policy checkpoint.") var policy = "runs/bench/ppo-step/sft/checkpoint"
    @Option(help: "--sample: prompts JSONL.") var prompts = "runs/bench/ppo-step/data/rl_prompts.jsonl"
    @Option(name: .customLong("max-new-tokens"), help: "--sample: response budget.") var maxNewTokens = 96

    func run() throws {
        opts.apply()
        try failing {
            if sample { return try runSampling() }
            let cfg = try opts.config()
            let r = try Bench.generate(config: cfg, batch: batch, promptLength: promptLen, newTokens: newTokens, repeats: repeats)
            print("config: \(BenchModelOptions.describe(cfg)), batch \(batch), prompt \(promptLen), new tokens \(newTokens), threads \(opts.threads)")
            print("ballast: \(fmt(Bench.median(r.runMs))) ms median, \(fmt(r.newTokensPerSecond, 0)) new tokens/s")
            guard !opts.noTorch else { return }
            let py = try Bench.runPython(["generate"] + opts.torchArgs(cfg) + ["--batch", "\(batch)", "--prompt-len", "\(promptLen)",
                                                                               "--new-tokens", "\(newTokens)", "--repeats", "\(repeats)"])
            let ptps = py["new_tokens_per_s"] as? Double ?? .nan
            print("transformers generate: \(fmt(py["ms_median"] as? Double ?? .nan)) ms median, \(fmt(ptps, 0)) new tokens/s")
            print("ratio ballast/transformers: \(fmt(r.newTokensPerSecond / ptps, 2))x")
        }
    }

    func runSampling() throws {
        guard FileManager.default.fileExists(atPath: policy + "/config.json") else {
            throw ConfigError("\(policy): no checkpoint (train one, or run `ballast bench ppo-step` once to make runs/bench/ppo-step)")
        }
        let records = Array(try PromptRecord.read(prompts).prefix(batch))
        guard records.count == batch else { throw ConfigError("\(prompts): fewer than \(batch) prompts") }
        let model = try Checkpoint.load(policy)
        let ids = try records.map { try model.codec.promptIds(text: $0.prompt, messages: $0.messages) }
        let gen = Generator(model: model)
        var rates: [Double] = [], lengths: [Double] = []
        for r in 0...repeats {
            let opts = SamplingOptions(temperature: 1, maxNewTokens: maxNewTokens, seed: UInt64(r), stopAtEOS: true)
            let t0 = DispatchTime.now().uptimeNanoseconds
            let out = try gen.generate(prompts: ids, options: opts)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            let tokens = out.reduce(0) { $0 + $1.outputIds.count }
            if r > 0 {  // the first call warms up
                rates.append(Double(tokens) / seconds)
                lengths.append(Double(tokens) / Double(batch))
            }
        }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("ballast-bench-sample-prompts.json").path
        try JSONSerialization.data(withJSONObject: ids.map { $0.map(Int.init) }).write(to: URL(fileURLWithPath: file))
        print("policy \(policy), \(batch) prompts of \(prompts) (mean \(fmt(Double(ids.reduce(0) { $0 + $1.count }) / Double(batch))) tokens), "
              + "temperature 1, up to \(maxNewTokens) new tokens, EOS stops, \(opts.threads) threads, median of \(repeats)")
        let ours = Bench.median(rates)
        print("ballast: \(fmt(ours, 0)) new tokens/s, mean response \(fmt(Bench.median(lengths))) tokens")
        guard !opts.noTorch else { return }
        let py = try Bench.runPython(["sample", "--model", policy, "--prompts-json", file, "--max-new-tokens", "\(maxNewTokens)",
                                      "--repeats", "\(repeats)", "--threads", "\(opts.threads)"])
        let theirs = py["new_tokens_per_s"] as? Double ?? .nan
        print("transformers generate(do_sample=True): \(fmt(theirs, 0)) new tokens/s, mean response \(fmt(py["mean_new_tokens"] as? Double ?? .nan)) tokens")
        print("ratio ballast/transformers: \(fmt(ours / theirs, 2))x")
    }
}

struct BenchSgemm: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sgemm", abstract: "Measured OpenBLAS sgemm GFLOP/s (the MFU denominator).")
    @Option var threads = 2
    @Option var size = 1536

    func run() throws {
        Parallel.threads = threads
        BLAS.setThreads(threads)
        print("sgemm \(size)^3, \(threads) threads: \(fmt(Bench.sgemmGFlops(size: size))) GFLOP/s (best of 12)")
    }
}

struct BenchWire: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "wire", abstract: "Wire codec throughput: encode and decode (with validation and checksums) of a weights-sized frame, GB/s.")
    @Option(help: "Payload size in MiB.") var mib = 64
    @Option var repeats = 5

    func run() throws {
        try failing {
            let n = mib << 18  // floats
            var rng = SeededRNG(seed: 1)
            let values = (0..<n).map { _ in rng.nextFloat() }
            let frame = Frame(kind: .weights, sequence: 1, policyVersion: 1,
                              tensors: [("w", TensorData(floats: values, shape: [n]))], metadata: ["config": "{}"])
            var enc: [Double] = [], dec: [Double] = []
            var parts = frame.encode()
            for _ in 0..<repeats {
                var t0 = DispatchTime.now().uptimeNanoseconds
                parts = frame.encode()
                enc.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                t0 = DispatchTime.now().uptimeNanoseconds
                _ = try Frame.decode(envelope: parts.envelope, payload: parts.payload)
                dec.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            let bytes = Double(parts.payload.count)
            print("payload \(mib) MiB: encode \(fmt(bytes / Bench.median(enc) / 1e9, 2)) GB/s, decode+validate \(fmt(bytes / Bench.median(dec) / 1e9, 2)) GB/s (medians of \(repeats))")
        }
    }
}
