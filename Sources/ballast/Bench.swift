import BallastConfig
import BallastKernels
import BallastModel
import BallastOptim
import BallastRandom
import Foundation

/// Measurements behind `ballast bench`. Timings are medians over repeated runs.
public enum Bench {
    public static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        guard !s.isEmpty else { return .nan }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// Peak resident set size of this process in MiB (VmHWM).
    public static func peakRSSMiB() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return .nan }
        for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? .nan
            return kb / 1024
        }
        return .nan
    }

    /// Best-of-N GFLOP/s of a square sgemm (the machine's practical peak for our matmuls).
    public static func sgemmGFlops(size n: Int = 1536, repeats: Int = 12) -> Double {
        let a = UnsafeMutablePointer<Float>.allocate(capacity: n * n), b = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        var rng = SeededRNG(seed: 1)
        for i in 0..<(n * n) { a[i] = rng.nextFloat(); b[i] = rng.nextFloat() }
        c.initialize(repeating: 0, count: n * n)
        var best = 0.0
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            BLAS.gemm(m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, c: c, ldc: n)
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            best = max(best, 2 * Double(n * n * n) / dt / 1e9)
        }
        return best
    }

    public struct TrainResult: Sendable {
        public var stepMs: [Double]
        public var tokensPerSecond: Double
        public var modelGFlops: Double
        public var peakRSSMiB: Double
        public var params: Int
    }

    /// Forward + backward + clipping + AdamW on random tokens, timed per step after `warmup` steps.
    public static func train(config: GPTConfig, batch: Int, seq: Int, steps: Int, warmup: Int, seed: UInt64 = 0) throws -> TrainResult {
        let model = try GPT(config: config)
        model.initializeRandom(seed: seed)
        let opt = AdamW(count: model.parameterCount,
                        decayRanges: model.layout.decayRanges,
                        hyper: .init(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1))
        var rng = SeededRNG(seed: seed)
        let n = batch * seq
        let tokens = (0..<n).map { _ in Int32(rng.next() % 256) }
        let tb = TokenBatch(tokens: tokens, mask: [Float](repeating: 1, count: n), batch: batch, length: seq)
        var targets = [Int32](repeating: -1, count: n)
        for b in 0..<batch { for t in 0..<(seq - 1) { targets[b * seq + t] = tokens[b * seq + t + 1] } }
        let weights = targets.map { $0 >= 0 ? Float(1) / Float(batch * (seq - 1)) : 0 }
        var times: [Double] = []
        for i in 0..<(warmup + steps) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            model.zeroGrad()
            model.forward(tb)
            targets.withUnsafeBufferPointer { t in
                weights.withUnsafeBufferPointer { w in
                    _ = CrossEntropy.forwardBackward(logits: model.logits.baseAddress!, targets: t.baseAddress!, weights: w.baseAddress!,
                                                     dlogits: model.dLogits, n: n, v: config.vocabSize)
                }
            }
            model.backward(headsGradient: false)
            opt.clippedUpdate(params: model.params, grads: model.grads, lr: 1e-4, maxGradNorm: 1)
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            if i >= warmup { times.append(dt) }
        }
        let med = median(times)
        let tps = Double(n) / (med / 1000)
        return TrainResult(stepMs: times, tokensPerSecond: tps,
                           modelGFlops: tps * config.trainingFlopsPerToken(seqLen: seq) / 1e9,
                           peakRSSMiB: peakRSSMiB(), params: model.parameterCount)
    }

    public struct GenerateResult: Sendable {
        public var runMs: [Double]
        public var newTokensPerSecond: Double
    }

    /// Greedy KV-cache decoding of `newTokens` tokens for `batch` random prompts (no early stop).
    public static func generate(config: GPTConfig, batch: Int, promptLength: Int, newTokens: Int, repeats: Int, seed: UInt64 = 0) throws -> GenerateResult {
        let model = try GPT(config: config)
        model.initializeRandom(seed: seed)
        var rng = SeededRNG(seed: seed)
        let prompts = (0..<batch).map { _ in [Int32(256)] + (1..<promptLength).map { _ in Int32(rng.next() % 256) } }
        let gen = Generator(model: model)
        let opts = SamplingOptions(greedy: true, maxNewTokens: newTokens, stopAtEOS: false)
        _ = try gen.generate(prompts: prompts, options: opts)
        var times: [Double] = []
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = try gen.generate(prompts: prompts, options: opts)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        return GenerateResult(runMs: times, newTokensPerSecond: Double(batch * newTokens) / (median(times) / 1000))
    }

    /// Runs `python3 tools/bench/SCRIPT ARGS` and parses its single JSON line.
    public static func runPython(script: String = "torch_peer.py", _ args: [String], log: String? = nil) throws -> [String: Any] {
        let path = toolsDirectory() + "/bench/" + script
        guard FileManager.default.fileExists(atPath: path) else {
            throw ConfigError("\(path) not found: run from the repository root or set BALLAST_TOOLS")
        }
        return try runJSON(executable: "/usr/bin/env", ["python3", path] + args, log: log,
                           hint: "is torch installed? tools/install/python-deps.sh; for TRL, tools/install/bench-deps.sh")
    }

    /// Runs a peer process and parses the last line of its stdout as a JSON object. Its stderr goes to
    /// `log` when given (libraries are chatty; the file is named on failure), else passes through.
    public static func runJSON(executable: String, _ args: [String], log: String? = nil, hint: String = "") throws -> [String: Any] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        if let log {
            FileManager.default.createFile(atPath: log, contents: nil)
            p.standardError = FileHandle(forWritingAtPath: log)
        }
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let command = ([executable] + args).joined(separator: " ")
        guard p.terminationStatus == 0 else {
            throw ConfigError("\(command) failed with status \(p.terminationStatus)" + (log.map { "; its messages are in \($0)" } ?? "")
                              + (hint.isEmpty ? "" : " (\(hint))"))
        }
        let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw ConfigError("could not parse the output of \(command): \(line)")
        }
        return obj
    }

    /// This binary, for benchmarks that run a side in a process of its own.
    public static func selfExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    public static func toolsDirectory() -> String {
        if let env = ProcessInfo.processInfo.environment["BALLAST_TOOLS"] { return env }
        return FileManager.default.currentDirectoryPath + "/tools"
    }
}
