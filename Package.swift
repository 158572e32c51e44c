// swift-tools-version:6.0
import PackageDescription

// Release builds use the host CPU's vector units: without -target-cpu, Swift's SIMD types lower to
// scalar fmaf calls (DESIGN §7). Debug builds stay portable and quick to compile.
let fastMath: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", "native", "-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

// Linux only: OpenBLAS and libzmq come from apt through pkg-config (tools/install/deps.sh).
let package = Package(
    name: "Ballast",
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

        // Hardware CRC-32C (SSE4.2 crc32, PCLMUL to join streams) for the wire format and TensorBoard records.
        .target(name: "CCRC32C", path: "Sources/CCRC32C", cSettings: [.unsafeFlags(["-msse4.2", "-mpclmul", "-O3"])]),
        // Seeded random generators (xoshiro256**, SplitMix64): reproducible runs, no BLAS needed.
        .target(name: "BallastRandom", swiftSettings: fastMath),
        // Numeric core: kernels (forward + backward) on raw float buffers. No IO.
        .target(name: "BallastKernels", dependencies: ["CBLAS"], swiftSettings: fastMath),
        // Tensor containers on disk: safetensors reader/writer, TensorBoard records, atomic files.
        .target(name: "BallastFormats", dependencies: ["CCRC32C"], swiftSettings: fastMath),
        // Dataset records (SFT examples, prompts, preference pairs) and their JSONL readers; the byte
        // tokenizer and its special tokens; the built-in SFT data.
        .target(name: "BallastData", dependencies: ["BallastFormats", "BallastRandom", "BallastTokenizers"], swiftSettings: fastMath),
        // Hugging Face byte-level BPE tokenizers (tokenizer.json, vocab.json + merges.txt): pre-tokenizer
        // patterns of GPT-2, Llama 3 and Qwen2, added tokens, post-processor templates, decoding.
        .target(name: "BallastTokenizers", swiftSettings: fastMath),
        // GPT-2 model: config and presets, planned parameter/activation/gradient buffers, forward/backward,
        // scalar heads, sequence scoring, KV-cache sampling, checkpoint folders.
        .target(name: "BallastModel", dependencies: ["BallastKernels", "BallastFormats", "BallastData", "BallastRandom", "BallastTokenizers"], swiftSettings: fastMath),
        // AdamW, gradient clipping, LR schedules.
        .target(name: "BallastOptim", dependencies: ["BallastKernels"], swiftSettings: fastMath),
        // The built-in multi-task benchmark: task families, gold scorers, simulated annotators.
        .target(name: "BallastBenchmark", dependencies: ["BallastData", "BallastRandom", "BallastTokenizers"], swiftSettings: fastMath),
        // YAML config files (documents, sections, overrides, errors naming file and key) and the cluster config.
        .target(name: "BallastConfig", dependencies: [.product(name: "Yams", package: "Yams")], swiftSettings: fastMath),
        // Supervised stages: the training loop, run files (checkpoints, metrics, progress), SFT, preference
        // labelling, reward-model and Advantage-Model training and their losses and reports.
        .target(name: "BallastTraining", dependencies: [
            "BallastConfig", "BallastModel", "BallastOptim", "BallastData", "BallastFormats", "BallastBenchmark", "BallastKernels", "BallastRandom",
        ], swiftSettings: fastMath),
        // Reinforcement learning: PPO maths, rollouts, the PPO trainer, selective rehearsal (clustering
        // and selection of the rehearsal set), over-optimisation fits.
        .target(name: "BallastRL", dependencies: [
            "BallastTraining", "BallastConfig", "BallastModel", "BallastOptim", "BallastData", "BallastBenchmark", "BallastKernels", "BallastRandom", "BallastFormats",
            "BallastTokenizers",
        ], swiftSettings: fastMath),
        // Evaluation of policies against SFT (win/lose, gold, KL curves, forget sets) and the HTML run report.
        .target(name: "BallastEvaluation", dependencies: [
            "BallastRL", "BallastTraining", "BallastModel", "BallastData", "BallastBenchmark", "BallastFormats", "BallastRandom",
        ], swiftSettings: fastMath),
        // The whole method in one process, stage by stage, resumable (`ballast pipeline`).
        .target(name: "BallastPipeline", dependencies: [
            "BallastEvaluation", "BallastRL", "BallastTraining", "BallastConfig", "BallastModel", "BallastData", "BallastBenchmark", "BallastFormats",
        ], swiftSettings: fastMath),
        // The wire format: envelope + safetensors payload codec and the typed messages, free of sockets (spec in WIRE.md).
        .target(name: "BallastWire", dependencies: ["BallastFormats"], exclude: ["WIRE.md"], swiftSettings: fastMath),
        // Distributed roles' logic free of sockets: the coordinator's prompt ledger and journal.
        .target(name: "BallastCluster", dependencies: ["BallastFormats", "BallastWire", "BallastTransport"], swiftSettings: fastMath),
        // Messaging over libzmq; the only module that touches libzmq.
        .target(name: "BallastTransport", dependencies: ["CZMQ"]),
        // The coordinator's HTTP status endpoint (a minimal HTTP/1.1 server on POSIX sockets).
        .target(name: "BallastHTTP"),
        // Test doubles: an in-memory ROUTER/DEALER hub that speaks `MessageSocket`.
        .target(name: "BallastTestSupport", dependencies: ["BallastTransport"], path: "Tests/BallastTestSupport"),
        // The three process drivers over ZeroMQ (coordinator, learner, actor: thin loops around the
        // socket-free cores), the actor's and learner's cores, and rollouts/weights ↔ wire messages.
        .target(name: "BallastDistributed", dependencies: [
            "BallastRL", "BallastTraining", "BallastConfig", "BallastCluster", "BallastTransport", "BallastHTTP", "BallastWire", "BallastModel",
            "BallastBenchmark", "BallastFormats", "BallastData",
        ], swiftSettings: fastMath),
        .executableTarget(name: "ballast", dependencies: [
            "BallastPipeline", "BallastEvaluation", "BallastRL", "BallastTraining", "BallastConfig", "BallastDistributed", "BallastModel",
            "BallastOptim", "BallastKernels", "BallastData", "BallastBenchmark", "BallastTransport", "BallastWire", "BallastCluster",
            "BallastHTTP", "BallastFormats", "BallastRandom", "BallastTokenizers",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: fastMath),

        .testTarget(name: "BallastKernelsTests", dependencies: ["BallastKernels", "BallastRandom", "BallastFormats"], resources: [.copy("Fixtures")]),
        .testTarget(name: "BallastModelTests", dependencies: ["BallastTestSupport", "BallastModel", "BallastOptim", "BallastFormats", "BallastRandom", "BallastData"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "BallastFormatsTests", dependencies: ["BallastFormats", "BallastKernels", "BallastRandom"]),
        .testTarget(name: "BallastBenchmarkTests", dependencies: ["BallastBenchmark", "BallastData", "BallastRandom"]),
        .testTarget(name: "BallastClusterTests", dependencies: ["BallastCluster", "BallastKernels", "BallastWire", "BallastTransport", "BallastFormats", "BallastRandom", "BallastTestSupport"]),
        .testTarget(name: "BallastTransportTests", dependencies: ["BallastTransport", "BallastTestSupport"]),
        .testTarget(name: "BallastHTTPTests", dependencies: ["BallastHTTP"]),
        .testTarget(name: "BallastDistributedTests", dependencies: [
            "BallastDistributed", "BallastTransport", "BallastWire", "BallastRL", "BallastTraining", "BallastCluster", "BallastModel", "BallastFormats",
        ]),
        .testTarget(name: "BallastWireTests", dependencies: ["BallastWire", "BallastFormats", "BallastKernels", "BallastRandom"], resources: [.copy("Fixtures")]),
        .testTarget(name: "BallastRLTests", dependencies: ["BallastRL", "BallastFormats", "BallastRandom"], resources: [.copy("Fixtures")]),
        .testTarget(name: "BallastTokenizersTests", dependencies: ["BallastTokenizers"], resources: [.copy("Fixtures")]),
        .testTarget(name: "BallastTrainingTests", dependencies: ["BallastTestSupport", 
            "BallastTraining", "BallastConfig", "BallastRL", "BallastPipeline", "BallastData", "BallastBenchmark", "BallastModel", "BallastTransport",
            "BallastFormats", "BallastKernels", "BallastRandom",
        ], resources: [.copy("Fixtures")]),
        .testTarget(name: "BallastEvaluationTests", dependencies: ["BallastTestSupport", 
            "BallastEvaluation", "BallastRL", "BallastTraining", "BallastModel", "BallastOptim", "BallastData", "BallastBenchmark", "BallastKernels", "BallastRandom",
        ]),
    ],
    swiftLanguageModes: [.v6]
)
