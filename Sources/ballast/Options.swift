import ArgumentParser
import BallastConfig
import BallastKernels
import BallastRL
import BallastFormats
import Foundation

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
        Streams.err("error: \(error)\n")
        throw ExitCode.failure
    }
}

/// `--config FILE` and repeatable `--set key=value` overrides, shared by every command that reads a
/// YAML config (configs/README.md documents the keys of each section).
struct ConfigOptions: ParsableArguments {
    @Option(help: "YAML config (configs/ has one per command; configs/README.md lists every key).") var config: String
    @Option(name: .customLong("set"), help: "Override a config field, e.g. --set train.lr=3e-4 (repeatable).") var overrides: [String] = []

    /// The config file with the overrides applied.
    func document() throws -> ConfigDocument { try Self.document(config, overrides) }

    /// The file read as a PPO config (the distributed roles' `cluster:` section included).
    func ppo() throws -> PPOConfig { try Self.ppo(config, overrides) }

    static func document(_ file: String, _ overrides: [String]) throws -> ConfigDocument {
        let doc = try ConfigDocument(file: file)
        for o in overrides { try doc.apply(override: o) }
        return doc
    }

    static func ppo(_ file: String, _ overrides: [String]) throws -> PPOConfig { try PPOConfig.load(try document(file, overrides)) }
}

/// `ConfigOptions` and `--resume`: the commands that train (a stopped run continues from its checkpoint).
struct TrainingOptions: ParsableArguments {
    @OptionGroup var config: ConfigOptions
    @Flag(help: "Continue a stopped run from RUN/checkpoint (and RUN/critic for PPO).") var resume = false
    @Flag(help: "Start over where a run already is: the old run folder is moved aside to RUN.replaced-N, not deleted.") var restart = false

    func validate() throws {
        if resume && restart { throw ValidationError("--resume and --restart exclude each other") }
    }

    func document() throws -> ConfigDocument { try config.document() }
    func ppo() throws -> PPOConfig { try config.ppo() }
}
