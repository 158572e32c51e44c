import ArgumentParser
import BallastBenchmark
import BallastCluster
import BallastData
import BallastFormats
import BallastKernels
import BallastModel
import BallastRL
import BallastTraining
import BallastTransport
import BallastWire
import Foundation

struct SFT: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Supervised fine-tuning on {prompt, completion} JSONL (loss on completions).")
    @OptionGroup var options: TrainingOptions

    func run() throws {
        try failing {
            let cfg = try SFTConfig.load(try options.document())
            let trainer = try SFTTrainer(config: cfg, resume: options.resume, restart: options.restart)
            try runUntilStopped { stop in
                trainer.shouldStop = stop
                return try !trainer.run().interrupted
            }
        }
    }
}

struct TrainAM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-am",
        abstract: "Train an Advantage Model (r and e heads; ranking, expected-reward, bound, per-task mean and spread terms) from an SFT checkpoint.")
    @OptionGroup var options: TrainingOptions

    func run() throws { try TrainRM.train(kind: .advantage, options) }
}

struct TrainRM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-rm", abstract: "Train a Bradley–Terry reward model on {prompt, chosen, rejected} JSONL, starting from an SFT checkpoint.")
    @OptionGroup var options: TrainingOptions

    func run() throws { try Self.train(kind: .reward, options) }

    static func train(kind: RewardConfig.Kind, _ options: TrainingOptions) throws {
        try failing {
            let trainer = try RewardTrainer(config: try RewardConfig.load(try options.document(), kind: kind), resume: options.resume, restart: options.restart)
            try runUntilStopped { stop in
                trainer.shouldStop = stop
                return try !trainer.run().interrupted
            }
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
                throw FileError(path: model, problem: "no score head (ballast_scalar_heads: \(m.config.scalarHeads))")
            }
            let pairs = try PreferenceData.load(data, maxLength: min(maxLength, m.config.nPositions), codec: m.codec)
            let heads = ScoreHeads(m.config)!
            let s = PreferenceScorer.score(m, pairs.encoded, head: head)
            let tasks = pairs.encoded.map(\.task)
            let rReport = RewardReport(chosen: s.chosen, rejected: s.rejected, tasks: tasks, pairs: pairs.raw)
            print(heads.expected == nil ? "reward r (score head at EOS):" : "reward r (score head at EOS; a ranks and calibrates within a pair as r does):")
            print(rReport.table())
            var out: [String: Any] = ["r": try JSONSerialization.jsonObject(with: rReport.json())]
            if heads.expected != nil {
                let aReport = RewardReport(chosen: s.advantageChosen, rejected: s.advantageRejected, tasks: tasks, pairs: pairs.raw)
                print("\n\(heads.formula) (e\(heads.logScale == nil ? "" : " and z") read at the prompt's last token):")
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
    @Flag(help: "Rank each cluster by the score with its linear dependence on response length removed (the scorer inherits the annotators' length preference).") var lengthDebiased = false
    @Flag(help: "Share the rehearsal set's size out over the clusters in proportion to their sizes instead of --per-cluster each.") var proportional = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard clusters >= 1, perCluster >= 1 else { throw ValidationError("--clusters and --per-cluster must be at least 1") }
        guard [random, lengthDebiased, proportional].filter({ $0 }).count <= 1 else {
            throw ValidationError("--random, --length-debiased and --proportional are different selections: give one")
        }
    }

    func run() throws {
        threads.apply()
        try failing {
            let sftModel = try Checkpoint.load(sft)
            let encoderModel = try encoder.map(Checkpoint.load) ?? sftModel
            let scorer = try Checkpoint.load(am)
            let records = try PromptRecord.read(prompts)
            var job = SelectionJob()
            (job.clusters, job.perCluster, job.seed, job.maxNewTokens) = (clusters, perCluster, seed, maxNewTokens)
            job.mode = random ? .random : lengthDebiased ? .lengthDebiased : proportional ? .proportional : .selective
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
    @OptionGroup var options: TrainingOptions

    func run() throws {
        try failing {
            let trainer = try PPOTrainer(config: try options.ppo(), resume: options.resume, restart: options.restart)
            try runUntilStopped { stop in
                trainer.shouldStop = stop
                return try !trainer.run().interrupted
            }
        }
    }
}
