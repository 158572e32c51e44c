import BallastBenchmark
import BallastConfig
import BallastData
import BallastEvaluation
import BallastFormats
import BallastModel
import BallastRL
import BallastTraining
import Foundation

/// `ballast pipeline`: the whole method in one process — benchmark data, SFT, preference labelling,
/// RM and AM training, selective-rehearsal selection, PPO for each arm (RM-PPO, AM-PPO,
/// AM-PPO + rehearsal), evaluation. Each stage's section is that stage's own config (same keys as
/// configs/sft-*.yaml etc.) without the paths, which the pipeline fills in under `run_dir`. A stage
/// that finished leaves RUN/.done-STAGE and is skipped on the next invocation; an interrupted trainer
/// resumes from its checkpoint.
public final class Pipeline {
    let doc: ConfigDocument
    public let runDir: String
    let progress = Progress()
    public var shouldStop: () -> Bool = { false }
    /// Stop after this stage (the paper experiments share data, SFT and labels across seeds).
    public var until: String?
    let threads: Int

    public struct Arm: Sendable { public var name: String; public var scorer: String; public var rehearsal: Bool }
    public static let arms = [Arm(name: "rm-ppo", scorer: "rm", rehearsal: false), Arm(name: "am-ppo", scorer: "am", rehearsal: false),
                              Arm(name: "am-ppo-sr", scorer: "am", rehearsal: true)]

    static let sections: Set<String> = ["run_dir", "threads", "data", "sft", "label", "rm", "am", "select", "ppo", "eval"]

    /// The labelling panel: the final SFT model at each of `temperatures`, plus the SFT snapshot at
    /// `earlyStep` (0 = none) at `earlyTemperature`.
    struct LabelPlan {
        var labeler: PreferenceLabeler
        var temperatures: [Float]
        var earlyStep: Int
        var earlyTemperature: Float
    }

    public init(doc: ConfigDocument) throws {
        self.doc = doc
        let top = doc.top
        runDir = try top.string("run_dir", "runs/pipeline")!
        threads = try top.positive("threads", 2)
        for key in doc.topLevelKeys where !Self.sections.contains(key) {
            throw ConfigError("\(doc.file): unknown key \"\(key)\" (sections: \(Self.sections.sorted().joined(separator: ", ")))")
        }
        // Validate every stage's section up front so that a typo fails now, not an hour in.
        _ = try sftConfig(); _ = try rewardConfig(.reward); _ = try rewardConfig(.advantage)
        for arm in Self.arms { _ = try ppoConfig(arm) }
        _ = try labelOptions(); _ = try selectOptions(); _ = try evalOptions(); _ = try dataSizes()
    }

    var data: String { runDir + "/data" }

    func section(_ name: String, _ paths: [String]) throws -> ConfigDocument {
        let sub = ConfigDocument(root: try doc.subtree(name), name: "\(doc.file) [\(name)]")
        try sub.fill(paths)
        return sub
    }

    func sftConfig() throws -> SFTConfig {
        let early = try labelOptions().earlyStep
        return try SFTConfig.load(try section("sft", ["data.train=\(data)/sft_train.jsonl", "data.eval=\(data)/sft_test.jsonl",
                                                      "run.out_dir=\(runDir)/sft", "run.threads=\(threads)"]
                                                + (early > 0 ? ["run.snapshot_every=\(early)"] : [])))
    }

    func rewardConfig(_ kind: RewardConfig.Kind) throws -> RewardConfig {
        try RewardConfig.load(try section(kind.rawValue, ["model.init_from=\(runDir)/sft/checkpoint", "data.train=\(data)/prefs_train.jsonl",
                                                          "data.eval=\(data)/prefs_test.jsonl", "run.out_dir=\(runDir)/\(kind.rawValue)",
                                                          "run.threads=\(threads)"]), kind: kind)
    }

    func ppoConfig(_ arm: Arm) throws -> PPOConfig { try PPOConfig.load(try ppoDocument(arm)) }

    func ppoDocument(_ arm: Arm) throws -> ConfigDocument {
        try section("ppo", ["models.policy=\(runDir)/sft/checkpoint", "models.critic=\(runDir)/rm/checkpoint",
                                               "models.scorer=\(runDir)/\(arm.scorer)/checkpoint",
                                               "data.prompts=\(runDir)/select/ppo_prompts.jsonl",
                                               "data.rehearsal=" + (arm.rehearsal ? "\(runDir)/select/rehearsal.jsonl" : "none"),
                                               "run.out_dir=\(runDir)/\(arm.name)", "run.threads=\(threads)"])
    }

    /// When set, each PPO arm runs as a distributed job instead of in this process: it gets the arm's
    /// resolved PPO config (written to RUN/ARM/ppo.yaml), whether to resume, and returns false when stopped.
    public var distributedPPO: ((_ arm: String, _ configFile: String, _ resume: Bool) throws -> Bool)?

    func labelOptions() throws -> LabelPlan {
        let s = try section("label", []).top
        var l = PreferenceLabeler()
        l.maxNewTokens = try s.positive("max_new_tokens", 64)
        l.annotator = Annotator(lengthBias: try s.double("length_bias", 1.0), tieMargin: try s.double("tie_margin", 1.0),
                                flipRate: try s.double("flip_rate", 0))
        l.seed = UInt64(try s.int("seed", 1))
        let plan = LabelPlan(labeler: l, temperatures: try s.numbers("temperatures", [0.7, 1.0, 1.3]).map(Float.init),
                             earlyStep: try s.int("early_step", 0), earlyTemperature: try s.float("early_temperature", 1))
        try s.finish()
        guard plan.temperatures.count + (plan.earlyStep > 0 ? 1 : 0) >= 2 else {
            throw ConfigError("\(doc.file): the labelling panel needs at least two samplers (label.temperatures, label.early_step)")
        }
        guard plan.temperatures.allSatisfy({ $0 > 0 }), plan.earlyTemperature > 0, plan.earlyStep >= 0 else {
            throw ConfigError("\(doc.file): label temperatures must be positive and label.early_step >= 0")
        }
        guard (0...1).contains(l.annotator.flipRate), l.annotator.tieMargin >= 0 else {
            throw ConfigError("\(doc.file): label.flip_rate must be in [0, 1] and label.tie_margin >= 0")
        }
        return plan
    }

    func selectOptions() throws -> SelectionJob {
        let s = try section("select", []).top
        var j = SelectionJob()
        j.clusters = try s.positive("clusters", 16)
        j.perCluster = try s.positive("per_cluster", 16)
        j.seed = UInt64(try s.int("seed", 0))
        j.maxNewTokens = try s.positive("max_new_tokens", 48)
        let mode = try s.string("mode", "selective")!
        guard let m = SelectionJob.Mode(rawValue: mode) else {
            throw ConfigError("\(doc.file): select.mode must be one of \(SelectionJob.Mode.allCases.map(\.rawValue).joined(separator: ", ")), not \(mode)")
        }
        j.mode = m
        try s.finish()
        return j
    }

    func evalOptions() throws -> PolicyEvaluation {
        let s = try section("eval", []).top
        var e = PolicyEvaluation()
        e.tieEpsilon = try s.double("tie_epsilon", 0.05)
        e.maxNewTokens = try s.positive("max_new_tokens", 64)
        e.samplesPerPrompt = try s.positive("samples_per_prompt", 2)
        try s.finish()
        return e
    }

    func dataSizes() throws -> (Benchmark.Sizes, UInt64) {
        let s = try section("data", []).top
        var z = Benchmark.Sizes()
        z.sftTrain = try s.positive("sft_train", z.sftTrain)
        z.sftTest = try s.positive("sft_test", z.sftTest)
        z.rlPrompts = try s.positive("rl_prompts", z.rlPrompts)
        z.testPrompts = try s.positive("test_prompts", z.testPrompts)
        z.forget = try s.positive("forget", z.forget)
        z.prefPrompts = try s.positive("pref_prompts", z.prefPrompts)
        z.prefTestPrompts = try s.positive("pref_test_prompts", z.prefTestPrompts)
        z.conversational = try s.bool("conversational", false)
        let seed = UInt64(try s.int("seed", 1))
        try s.finish()
        return (z, seed)
    }

    func done(_ stage: String) -> Bool { FileManager.default.fileExists(atPath: runDir + "/.done-" + stage) }
    func markDone(_ stage: String) throws { try AtomicFile.write("done\n", to: runDir + "/.done-" + stage) }
    func hasCheckpoint(_ dir: String) -> Bool { TrainingCheckpoint.locate(dir + "/checkpoint") != nil }

    /// Runs the remaining stages; returns false when stopped by a signal (resume by running again).
    public func run() throws -> Bool {
        try FileManager.default.createDirectory(atPath: runDir, withIntermediateDirectories: true)
        let start = Date()
        var stageStart = Date()
        var reachedUntil = false
        func stage(_ name: String, _ body: () throws -> Bool) throws -> Bool {
            if reachedUntil { return true }
            defer { if name == until { reachedUntil = true } }
            if done(name) { progress.note("[\(name)] already done, skipped"); return true }
            if shouldStop() { return false }
            stageStart = Date()
            progress.note("[\(name)] starting (pipeline elapsed \(Progress.duration(Date().timeIntervalSince(start))))")
            guard try body() else { return false }
            try markDone(name)
            progress.note("[\(name)] done in \(Progress.duration(Date().timeIntervalSince(stageStart)))")
            return true
        }
        guard try stage("data", {
            let (sizes, seed) = try dataSizes()
            _ = try Benchmark.writeDatasets(to: data, seed: seed, sizes: sizes)
            return true
        }) else { return false }
        guard try stage("sft", {
            let t = try SFTTrainer(config: try sftConfig(), resume: hasCheckpoint(runDir + "/sft"))
            t.shouldStop = shouldStop
            return !(try t.run().interrupted)
        }) else { return false }
        guard try stage("forget", {
            // The expert-aligned forget set: candidate prompts the SFT model already answers well.
            let sft = try Checkpoint.load(runDir + "/sft/checkpoint")
            let candidates = try PromptRecord.read("\(data)/forget_candidates.jsonl")
            let kept = try PolicyEvaluation(maxNewTokens: try evalOptions().maxNewTokens).expertAligned(sft: sft, candidates: candidates)
            try JSONL.write(kept, to: "\(data)/forget.jsonl")
            progress.note("forget set: \(kept.count) of \(candidates.count) candidates answered by SFT with gold >= \(PolicyEvaluation.expertGold)")
            return true
        }) else { return false }
        guard try stage("label", {
            let plan = try labelOptions()
            let sft = try Checkpoint.load(runDir + "/sft/checkpoint")
            var panel = plan.temperatures.map { PreferenceLabeler.Sampler(name: "sft@T\($0)", policy: sft, temperature: $0) }
            if plan.earlyStep > 0 {
                let early = try Checkpoint.load("\(runDir)/sft/snapshots/step-\(plan.earlyStep)")
                panel.append(PreferenceLabeler.Sampler(name: "sft-step\(plan.earlyStep)@T\(plan.earlyTemperature)", policy: early, temperature: plan.earlyTemperature))
            }
            var summary: [String: Any] = ["panel": panel.map(\.name)]
            for (split, (prompts, out)) in [("pref_prompts", "prefs_train"), ("pref_test_prompts", "prefs_test")].enumerated() {
                var labeler = plan.labeler
                labeler.seed = plan.labeler.seed &* 7_919 &+ UInt64(split)  // each split its own seed
                let r = try labeler.label(panel: panel, prompts: try PromptRecord.read("\(data)/\(prompts).jsonl")) { d, n in
                    self.progress.update("labelling \(prompts): \(d)/\(n)", force: false)
                }
                try JSONL.write(r.pairs, to: "\(data)/\(out).jsonl")
                progress.note("\(out): \(r.pairs.count) pairs (\(r.identical) identical and \(r.ties) tied comparisons dropped)")
                summary[out] = ["pairs": r.pairs.count, "identical": r.identical, "ties": r.ties, "mean_gold": r.meanGold]
            }
            try AtomicFile.write(try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys]), to: "\(data)/labels.json")
            return true
        }) else { return false }
        for kind in [RewardConfig.Kind.reward, .advantage] {
            guard try stage(kind.rawValue, {
                let t = try RewardTrainer(config: try rewardConfig(kind), resume: hasCheckpoint("\(runDir)/\(kind.rawValue)"))
                t.shouldStop = shouldStop
                guard !(try t.run().interrupted) else { return false }
                let pairs = try PreferenceData.load("\(data)/prefs_test.jsonl", maxLength: t.model.config.nPositions, codec: t.model.codec)
                let s = PreferenceScorer.score(t.model, pairs.encoded)
                let tasks = pairs.encoded.map(\.task)
                var out: [String: Any] = ["r": try JSONSerialization.jsonObject(with: RewardReport(chosen: s.chosen, rejected: s.rejected, tasks: tasks, pairs: pairs.raw).json())]
                if kind == .advantage {
                    let a = RewardReport(chosen: s.advantageChosen, rejected: s.advantageRejected, tasks: tasks, pairs: pairs.raw)
                    out["a"] = try JSONSerialization.jsonObject(with: a.json())
                }
                try AtomicFile.write(try JSONSerialization.data(withJSONObject: out, options: [.prettyPrinted, .sortedKeys]),
                                     to: "\(runDir)/\(kind.rawValue)/eval.json")
                return true
            }) else { return false }
        }
        guard try stage("select", {
            let sft = try Checkpoint.load(runDir + "/sft/checkpoint"), am = try Checkpoint.load(runDir + "/am/checkpoint")
            let r = try selectOptions().run(sft: sft, encoder: sft, scorer: am, prompts: try PromptRecord.read("\(data)/rl_prompts.jsonl")) {
                self.progress.update($0, force: false)
            }
            try JSONL.write(r.rehearsal, to: "\(runDir)/select/rehearsal.jsonl")
            try JSONL.write(r.ppo, to: "\(runDir)/select/ppo_prompts.jsonl")
            try AtomicFile.write(try JSONSerialization.data(withJSONObject: r.summary, options: [.prettyPrinted, .sortedKeys]), to: "\(runDir)/select/clusters.json")
            return true
        }) else { return false }
        for arm in Self.arms {
            guard try stage(arm.name, {
                if let distributedPPO {
                    let file = "\(runDir)/\(arm.name)/ppo.yaml"
                    try FileManager.default.createDirectory(atPath: "\(runDir)/\(arm.name)", withIntermediateDirectories: true)
                    try AtomicFile.write(Data(try ppoDocument(arm).yaml().utf8), to: file)
                    return try distributedPPO(arm.name, file, hasCheckpoint("\(runDir)/\(arm.name)"))
                }
                let t = try PPOTrainer(config: try ppoConfig(arm), resume: hasCheckpoint("\(runDir)/\(arm.name)"))
                t.shouldStop = shouldStop
                return !(try t.run().interrupted)
            }) else { return false }
        }
        guard try stage("eval", {
            let sft = try Checkpoint.load(runDir + "/sft/checkpoint")
            let ev = try evalOptions()
            let sets = try PolicyEvaluation.CurveSets(dataDir: data) { self.progress.note($0) }
            let sftSamples = try ev.sample(sft, sets.test, seed: PolicyEvaluation.curveSeed)
            var out: [String: Any] = [:]
            for arm in Self.arms {
                let scorer = try Checkpoint.load("\(runDir)/\(arm.scorer)/checkpoint")
                let r = try ev.curve(ppoDir: "\(runDir)/\(arm.name)", finalStep: try ppoConfig(arm).optim.steps, sft: sft, scorer: scorer,
                                     sets: sets, sftSamples: sftSamples) { self.progress.note("\(arm.name) \($0)") }
                out[arm.name] = r.final.merging(["curve": r.curve]) { a, _ in a }
            }
            try AtomicFile.write(try JSONSerialization.data(withJSONObject: out, options: [.prettyPrinted, .sortedKeys]), to: "\(runDir)/eval.json")
            return true
        }) else { return false }
        if let until, until != "eval" {
            progress.note("stopped after [\(until)] as asked (\(Progress.duration(Date().timeIntervalSince(start)))): \(runDir)")
        } else {
            progress.note("pipeline complete in \(Progress.duration(Date().timeIntervalSince(start))): \(runDir)")
        }
        return true
    }
}
