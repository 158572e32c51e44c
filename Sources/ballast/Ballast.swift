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
        // The heap keeps 64 MiB of free space at its top instead of trimming it back at every free: without
        // it, the many medium blocks of a message round trip (frames, ZeroMQ's buffers) came back as fresh
        // pages to fault in and zero each time (`perf` on `bench transfer`: page faults and clear_page on
        // top). Measured: a 13 MB weights frame 343 → 1 062–1 329 MB/s, `bench ppo-step` peak RSS 292 →
        // 302 MiB at the same speed.
        // (mallopt is declared in malloc.h, which Glibc's module does not export; M_MMAP_THRESHOLD is -3,
        // M_TOP_PAD -2.)
        if let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") {  // RTLD_DEFAULT
            let mallopt = unsafeBitCast(sym, to: (@convention(c) (Int32, Int32) -> Int32).self)
            _ = mallopt(-3, 1 << 20)
            if getenv("MALLOC_TOP_PAD_") == nil { _ = mallopt(-2, 64 << 20) }
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
