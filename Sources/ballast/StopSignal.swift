import ArgumentParser
import Foundation
import Synchronization

/// SIGINT/SIGTERM request a graceful stop: the trainer finishes its step, checkpoints and exits.
/// A second signal exits at once.
final class StopSignal: Sendable {
    private let flag = Atomic<Int>(0)
    var requested: Bool { flag.load(ordering: .relaxed) > 0 }

    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []

    static func install() -> StopSignal {
        let s = StopSignal()
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            src.setEventHandler {
                if s.flag.add(1, ordering: .relaxed).newValue > 1 { exit(130) }
                FileHandle.standardError.write(Data("\nstopping after this step (signal again to quit now)\n".utf8))
            }
            src.resume()
            sources.append(src)
        }
        return s
    }
}

/// Runs a long job that SIGINT/SIGTERM stop gracefully: `job` gets the stop check and returns whether
/// it ran to the end; a stopped job exits 130, the shell's code for an interrupt.
func runUntilStopped(_ job: (@escaping () -> Bool) throws -> Bool) throws {
    let stop = StopSignal.install()
    if try !job({ stop.requested }) { throw ExitCode(130) }
}
