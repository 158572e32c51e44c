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
        // Buffers of 1 MiB and more (activation arenas, KV caches, checkpoints) get their own mappings,
        // returned to the system when freed. glibc otherwise raises this threshold after the first such
        // free and serves later ones from the heap, where a grown arena leaves its old one behind as RSS.
        // (mallopt is declared in malloc.h, which Glibc's module does not export; M_MMAP_THRESHOLD is -3.)
        if let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") {  // RTLD_DEFAULT
            let mallopt = unsafeBitCast(sym, to: (@convention(c) (Int32, Int32) -> Int32).self)
            _ = mallopt(-3, 1 << 20)
        }
        Streams.ignoreBrokenPipes()  // a closed log pipe (an SSH drop) must not kill a node before its checkpoint
        Ballast.main()
    }
}

struct Ballast: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ballast",
        abstract: "RLHF with an Advantage Model and Selective Rehearsal, on the CPU.",
        subcommands: [Init.self, Generate.self, Forward.self, SFT.self, TrainRM.self, TrainAM.self, EvalRM.self, Select.self, PPOCommand.self, EvalPolicy.self, CurveCommand.self, PipelineCommand.self, ReportCommand.self, WireCommand.self, CoordinatorCommand.self, LearnerCommand.self, ActorCommand.self, LaunchCommand.self, StatusCommand.self, KeysCommand.self, DataCommand.self, TokenizeCommand.self, BenchCommand.self])
}
