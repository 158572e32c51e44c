import Foundation

/// OpenBLAS worker threads busy-wait for 2^28 cycles (about 70 ms) after every sgemm before they sleep.
/// Between sgemm calls our own kernels run on both cores, so those spinning workers steal half the
/// machine: measured 15–20% of a training step. OpenBLAS reads OPENBLAS_THREAD_TIMEOUT only when the
/// library loads, so when it is unset we set it to the minimum (2^4 cycles) and re-execute ourselves
/// once. Set OPENBLAS_THREAD_TIMEOUT yourself to choose another value (no re-exec then).
enum OpenBLASEnvironment {
    static func ensureShortSpin() {
        guard getenv("OPENBLAS_THREAD_TIMEOUT") == nil else { return }
        setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1)
        var argv = CommandLine.arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", argv)
        // exec failed (no /proc?): carry on with the default spin; only speed is affected.
    }
}
