import ArgumentParser
import BallastBenchmark
import BallastCluster
import BallastData
import BallastEvaluation
import BallastFormats
import BallastKernels
import BallastModel
import BallastTraining
import BallastTransport
import BallastWire
import Foundation

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
    @Flag(help: "TRL's conversational form: SFT as {\"messages\"}, prompts as lists of messages (for a model with a chat template).") var conversational = false

    func run() throws {
        try failing {
            var sizes = Benchmark.Sizes()
            sizes.conversational = conversational
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
            let records = try PromptRecord.read(candidates)
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

    var temperatureList: [Float]? {
        let values = temperatures.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
        return values.allSatisfy { $0 != nil && $0! > 0 } && !values.isEmpty ? values.map { $0! } : nil
    }

    func validate() throws {
        guard temperatureList != nil else { throw ValidationError("--temperatures must be positive numbers, comma-separated") }
        guard (0...1).contains(flipRate), tieMargin >= 0 else { throw ValidationError("--flip-rate must be in [0, 1] and --tie-margin >= 0") }
    }

    func run() throws {
        threads.apply()
        try failing {
            let temps = temperatureList!
            let model = try Checkpoint.load(policy)
            var panel = temps.map { PreferenceLabeler.Sampler(name: "policy@T\($0)", policy: model, temperature: $0) }
            if let early { panel.append(.init(name: "early@T\(earlyTemperature)", policy: try Checkpoint.load(early), temperature: earlyTemperature)) }
            let records = try PromptRecord.read(prompts)
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
