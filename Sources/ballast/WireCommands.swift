import ArgumentParser
import BallastBenchmark
import BallastCluster
import BallastConfig
import BallastData
import BallastFormats
import BallastKernels
import BallastModel
import BallastTransport
import BallastWire
import Foundation

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
