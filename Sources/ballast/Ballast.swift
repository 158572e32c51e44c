import ArgumentParser
import BallastBenchmark
import BallastCluster
import BallastData
import BallastFormats
import BallastKernels
import BallastModel
import BallastTransport
import BallastWire
import Foundation

@main
enum Entry {
    static func main() {
        OpenBLASEnvironment.ensureShortSpin()
        Streams.ignoreBrokenPipes()  // a closed log pipe (an SSH drop) must not kill a node before its checkpoint
        Ballast.main()
    }
}

struct Ballast: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ballast",
        abstract: "RLHF with an Advantage Model and Selective Rehearsal, on the CPU.",
        subcommands: [Init.self, Generate.self, Forward.self, SFT.self, TrainRM.self, TrainAM.self, EvalRM.self, Select.self, PPOCommand.self, EvalPolicy.self, CurveCommand.self, PipelineCommand.self, ReportCommand.self, WireCommand.self, CoordinatorCommand.self, LearnerCommand.self, ActorCommand.self, LaunchCommand.self, StatusCommand.self, KeysCommand.self, DataCommand.self, BenchCommand.self])
}
