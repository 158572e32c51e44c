// swift-tools-version:6.0
// libFuzzer target for the wire decoder; built and run by tools/fuzz/run.sh (not part of the main build:
// a libFuzzer executable has no main of its own).
import PackageDescription

let package = Package(
    name: "BallastFuzz",
    dependencies: [.package(name: "Ballast", path: "../..")],
    targets: [
        .executableTarget(name: "FuzzWire", dependencies: [.product(name: "BallastWire", package: "Ballast")],
                          swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
    ]
)
