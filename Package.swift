// swift-tools-version:6.0
// Herd: an IMPALA-style distributed actor-learner for recurrent policies.
//
// The targets are the architecture diagram (../shared/DESIGN.md, "Layout").
// Dependencies point one way:
//   C shims -> HerdMath -> HerdNN -> HerdRL/HerdEnvs -> HerdWire
//           -> HerdLearner/HerdWorker/HerdStats -> herd
import PackageDescription

// MARK: - Public modules

let publicTargets: [Target] = [
  .target(
    name: "HerdMath",
    dependencies: ["COpenBLAS"],
    path: "Sources/HerdMath"
  ),
  .target(
    name: "HerdNN",
    dependencies: ["HerdMath"],
    path: "Sources/HerdNN"
  ),
  .executableTarget(
    name: "herd",
    dependencies: [
      "HerdMath",
      "HerdNN",
      .product(name: "ArgumentParser", package: "swift-argument-parser"),
    ],
    path: "Sources/herd"
  ),
]

// MARK: - Implementation details (system-library shims)

let shimTargets: [Target] = [
  // Debian's libzmq3-dev: `#include <zmq.h>`, link -lzmq.
  .systemLibrary(name: "CZeroMQ", path: "Sources/CZeroMQ"),
  // Debian's libopenblas-dev: CBLAS through `<cblas.h>`, link -lopenblas
  // (not -lblas: only libopenblas exports openblas_set_num_threads).
  .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
]

// MARK: - Tests

let testTargets: [Target] = [
  .target(
    name: "HerdTestSupport",
    dependencies: ["HerdMath"],
    path: "Tests/HerdTestSupport"
  ),
  .testTarget(
    name: "HerdMathTests",
    dependencies: ["HerdMath", "HerdTestSupport"],
    path: "Tests/HerdMathTests"
  ),
  .testTarget(
    name: "HerdNNTests",
    dependencies: ["HerdNN", "HerdMath", "HerdTestSupport"],
    path: "Tests/HerdNNTests"
  ),
]

let package = Package(
  name: "Herd",
  platforms: [.macOS(.v14)],
  products: [
    .executable(name: "herd", targets: ["herd"]),
    .library(name: "HerdNN", targets: ["HerdNN"]),
  ],
  dependencies: [
    // CLI parsing; ~10 s of a clean debug build.
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
  ],
  targets: publicTargets + shimTargets + testTargets
)
