// swift-tools-version:6.0
import PackageDescription

// Release builds use the host CPU's vector units: without -target-cpu, Swift's SIMD types lower to
// scalar fmaf calls (DESIGN §7). Debug builds stay portable and quick to compile.
let fastMath: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", "native", "-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "Ballast",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "ballast", targets: ["ballast"]),
        // For tools/fuzz (the libFuzzer target for the decoder).
        .library(name: "BallastWire", targets: ["BallastWire"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // C shims: OpenBLAS's cblas.h lives under an openblas-pthread include dir, reached via pkg-config.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZMQ", path: "Sources/CZMQ", pkgConfig: "libzmq",
                       providers: [.apt(["libzmq3-dev"])]),

        // Hardware CRC-32C (SSE4.2) for the wire format and TensorBoard records.
        .target(name: "CCRC32C", path: "Sources/CCRC32C", cSettings: [.unsafeFlags(["-msse4.2", "-O3"])]),
        // Numeric core: kernels (forward + backward) on raw float buffers. No IO.
        .target(name: "BallastKernels", dependencies: ["CBLAS"], swiftSettings: fastMath),
        // Tensor containers on disk: safetensors reader/writer, JSON helpers. No model knowledge.
        .target(name: "BallastFormats", dependencies: ["CCRC32C"], swiftSettings: fastMath),
        // GPT-2 model: config, planned parameter/activation/gradient buffers, forward/backward,
        // scalar heads, KV-cache sampling, checkpoint folders.
        .target(name: "BallastModel", dependencies: ["BallastKernels", "BallastFormats"], swiftSettings: fastMath),
        // AdamW, gradient clipping, LR schedules.
        .target(name: "BallastOptim", dependencies: ["BallastKernels"], swiftSettings: fastMath),
        // Tokenizer, JSONL datasets, built-in SFT data generator.
        .target(name: "BallastData", swiftSettings: fastMath),
        // The built-in multi-task benchmark: task families, gold scorers, simulated annotators.
        .target(name: "BallastBenchmark", dependencies: ["BallastData", "BallastKernels"], swiftSettings: fastMath),
        // Reinforcement learning: PPO estimators and losses (and, next, rollouts and the PPO trainer).
        .target(name: "BallastRL", dependencies: ["BallastKernels"], swiftSettings: fastMath),
        // Training loops, YAML configs, metrics, progress, benchmarks.
        .target(name: "BallastTrain", dependencies: [
            "BallastModel", "BallastOptim", "BallastData", "BallastFormats", "BallastBenchmark", "BallastRL", "BallastWire",
            .product(name: "Yams", package: "Yams"),
        ], swiftSettings: fastMath),
        // The wire format: envelope + safetensors payload codec, free of sockets (spec in WIRE.md).
        .target(name: "BallastWire", dependencies: ["BallastFormats"], exclude: ["WIRE.md"], swiftSettings: fastMath),
        // Distributed roles' logic free of sockets: the coordinator's prompt ledger and journal.
        .target(name: "BallastCluster", dependencies: ["BallastFormats", "BallastWire", "BallastTransport"], swiftSettings: fastMath),
        // Messaging over libzmq; the only module that touches libzmq.
        .target(name: "BallastTransport", dependencies: ["CZMQ"]),
        // The coordinator's HTTP status endpoint (a minimal HTTP/1.1 server on POSIX sockets).
        .target(name: "BallastHTTP"),
        // Test doubles: an in-memory ROUTER/DEALER hub that speaks `MessageSocket`.
        .target(name: "BallastTestSupport", dependencies: ["BallastTransport"], path: "Tests/BallastTestSupport"),
        // The distributed roles as processes: learner and actor nodes over ZeroMQ (the coordinator's
        // logic lives in BallastCluster).
        .target(name: "BallastDistributed", dependencies: [
            "BallastTrain", "BallastCluster", "BallastTransport", "BallastWire", "BallastModel", "BallastBenchmark", "BallastFormats",
        ], swiftSettings: fastMath),
        .executableTarget(name: "ballast", dependencies: [
            "BallastTrain", "BallastDistributed", "BallastModel", "BallastData", "BallastBenchmark", "BallastTransport", "BallastWire", "BallastCluster",
            "BallastHTTP",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: fastMath),

        .testTarget(name: "BallastKernelsTests", dependencies: ["BallastKernels"]),
        .testTarget(name: "BallastModelTests", dependencies: ["BallastModel", "BallastOptim", "BallastFormats"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "BallastFormatsTests", dependencies: ["BallastFormats", "BallastKernels"]),
        .testTarget(name: "BallastBenchmarkTests", dependencies: ["BallastBenchmark", "BallastKernels"]),
        .testTarget(name: "BallastClusterTests", dependencies: ["BallastCluster", "BallastKernels", "BallastWire", "BallastTransport", "BallastFormats"]),
        .testTarget(name: "BallastTransportTests", dependencies: ["BallastTransport", "BallastTestSupport"]),
        .testTarget(name: "BallastDistributedTests", dependencies: ["BallastDistributed", "BallastTransport", "BallastWire", "BallastTrain", "BallastCluster"]),
        .testTarget(name: "BallastWireTests", dependencies: ["BallastWire", "BallastFormats", "BallastKernels"], resources: [.copy("Fixtures")]),
        .testTarget(name: "BallastRLTests", dependencies: ["BallastRL", "BallastFormats"], resources: [.copy("Fixtures")]),
        .testTarget(name: "BallastTrainTests", dependencies: ["BallastTrain", "BallastData", "BallastTransport", "BallastFormats", "BallastWire"],
                    resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v6]
)
