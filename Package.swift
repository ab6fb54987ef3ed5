// swift-tools-version:6.1
// Herd: an IMPALA-style distributed actor-learner for recurrent policies.
//
// The targets are the architecture diagram; docs/ARCHITECTURE.md says what each
// holds, which threads and channels it runs, and the shapes it moves.
// Dependencies point one way:
//   C shims -> HerdMath -> HerdNN -> HerdEnvs/HerdRL -> HerdWire
//           -> HerdStats -> HerdLearner/HerdWorker -> herd
import PackageDescription

// MARK: - Code generation for the numeric core
//
// No compiler flags here: a package with unsafeFlags cannot be depended on by
// version, and a manifest that read the build host's CPU would make binaries that
// crash on older ones. The numeric kernels are Swift SIMD8<Float>; built for a CPU
// with AVX2 and FMA they run 8 floats per instruction instead of 4 (rollout
// inference measured 18% faster). `make` passes `-Xswiftc -target-cpu -Xswiftc
// haswell` when the build host has both (not with HERD_PORTABLE=1); a program that
// depends on Herd chooses the same way on its own command line.

// MARK: - Public modules

let publicTargets: [Target] = [
  .target(
    name: "HerdMath",
    dependencies: ["COpenBLAS", "CVector", "CHostCPU"],
    path: "Sources/HerdMath"
  ),
  .target(
    name: "HerdNN",
    dependencies: ["HerdMath", "CVector"],
    path: "Sources/HerdNN"
  ),
  .target(
    name: "HerdEnvs",
    dependencies: ["HerdMath", "CLinux"],
    path: "Sources/HerdEnvs"
  ),
  .target(
    name: "HerdRL",
    dependencies: ["HerdMath", "HerdNN", "HerdEnvs", .product(name: "Logging", package: "swift-log")],
    path: "Sources/HerdRL"
  ),
  .target(
    name: "HerdWire",
    dependencies: [
      "CZeroMQ", "HerdMath", "HerdRL",
      .product(name: "SwiftProtobuf", package: "swift-protobuf"),
    ],
    path: "Sources/HerdWire"
  ),
  // The stats endpoint: Hummingbird on SwiftNIO (idle and read timeouts, no thread
  // per connection), the /stats JSON, /metrics through swift-prometheus, the dashboard.
  .target(
    name: "HerdStats",
    dependencies: [
      "HerdWire", "HerdRL", "HerdMath",
      .product(name: "Hummingbird", package: "hummingbird"),
      .product(name: "Prometheus", package: "swift-prometheus"),
      .product(name: "Logging", package: "swift-log"),
      .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      .product(name: "UnixSignals", package: "swift-service-lifecycle"),
    ],
    path: "Sources/HerdStats"
  ),
  // The learner daemon: train loop, intake, publishing, checkpoints, run directory,
  // stats board and endpoint; startable from code.
  .target(
    name: "HerdLearner",
    dependencies: [
      "HerdWire", "HerdRL", "HerdEnvs", "HerdMath", "HerdNN", "HerdStats",
      .product(name: "Logging", package: "swift-log"),
      .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
    ],
    path: "Sources/HerdLearner"
  ),
  .target(
    name: "HerdWorker",
    dependencies: ["HerdWire", "HerdRL", "HerdEnvs", "HerdMath", .product(name: "Logging", package: "swift-log")],
    path: "Sources/HerdWorker"
  ),

  // Exports a trained policy for use without Herd: safetensors with PyTorch names,
  // a JSON sidecar, and ONNX written by hand (no protoc, no Python).
  .target(
    name: "HerdExport",
    dependencies: ["HerdLearner", "HerdRL", "HerdEnvs", "HerdNN"],
    path: "Sources/HerdExport"
  ),

  .executableTarget(
    name: "herd",
    dependencies: [
      "HerdMath",
      "HerdNN",
      "HerdEnvs",
      "HerdRL",
      "HerdWire",
      "HerdLearner",
      "HerdWorker",
      "HerdStats",
      "HerdExport",
      .product(name: "ArgumentParser", package: "swift-argument-parser"),
      .product(name: "Logging", package: "swift-log"),
    ],
    path: "Sources/herd"
  ),
]

// MARK: - The example program

// The modules of the `Herd` library product.
let libraryModules = ["HerdMath", "HerdNN", "HerdEnvs", "HerdRL", "HerdLearner", "HerdExport"]

// Examples/Cue uses Herd as a library, and Examples/Package.swift is the package a
// user would write for it (a dependency on the `Herd` product). The same source is
// also a target here, with exactly that product's modules as dependencies, so that
// `make test` builds it in its one build: building the example package compiled
// every dependency a second time (7.5 of 26 minutes of CI on a slow machine).
// `make test` still checks the example package's manifest against this one.
let exampleTargets: [Target] = [
  .executableTarget(
    name: "cue",
    dependencies: libraryModules.map { .target(name: $0) },
    path: "Examples/Cue"
  )
]

// MARK: - Implementation details (system-library shims)

let shimTargets: [Target] = [
  // Debian's libzmq3-dev: `#include <zmq.h>`, link -lzmq.
  .systemLibrary(name: "CZeroMQ", path: "Sources/CZeroMQ"),
  // Debian's libopenblas-dev: CBLAS through `<cblas.h>`, link -lopenblas
  // (not -lblas: only libopenblas exports openblas_set_num_threads).
  .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
  // memfd_create (glibc, needs _GNU_SOURCE): the env host's shared memory.
  .systemLibrary(name: "CLinux", path: "Sources/CLinux"),
  // A header of vector operations (a vector square root) that Swift's own spelling
  // does not compile to one instruction on Linux; no library.
  .systemLibrary(name: "CVector", path: "Sources/CVector"),
  // The CPU features a build uses and the host has: C compiled for any x86-64, so
  // that a binary built for a newer CPU says what is missing instead of dying of
  // SIGILL (`-Xswiftc -target-cpu` reaches Swift only).
  .target(name: "CHostCPU", path: "Sources/CHostCPU"),
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
    name: "HerdWireTests",
    dependencies: ["HerdWire", "HerdRL", "HerdMath", "HerdTestSupport"],
    path: "Tests/HerdWireTests"
  ),
  .testTarget(
    name: "HerdEnvsTests",
    dependencies: ["HerdEnvs", "HerdMath", "HerdTestSupport"],
    path: "Tests/HerdEnvsTests"
  ),
  .testTarget(
    name: "HerdRLTests",
    dependencies: ["HerdRL", "HerdNN", "HerdEnvs", "HerdMath", "HerdTestSupport"],
    path: "Tests/HerdRLTests"
  ),
  // Runs the real `herd` binary (built beside the tests) on small budgets.
  .testTarget(
    name: "IntegrationTests",
    dependencies: ["herd", "HerdMath", "HerdNN", "HerdWire", "HerdRL", "HerdStats", "HerdLearner", "HerdTestSupport"],
    path: "Tests/IntegrationTests"
  ),
  .testTarget(
    name: "HerdStatsTests",
    dependencies: ["HerdStats", "HerdLearner", "HerdRL", "HerdWire", "HerdTestSupport"],
    path: "Tests/HerdStatsTests"
  ),
  .testTarget(
    name: "HerdLearnerTests",
    dependencies: [
      "HerdLearner", "HerdStats", "HerdRL", "HerdWire", "HerdWorker", "HerdNN", "HerdEnvs", "HerdMath", "HerdTestSupport",
    ],
    path: "Tests/HerdLearnerTests"
  ),
  .testTarget(
    name: "HerdExportTests",
    dependencies: ["HerdExport", "HerdLearner", "HerdRL", "HerdNN", "HerdEnvs", "HerdTestSupport"],
    path: "Tests/HerdExportTests"
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
    // Herd as a library: environments (and registering your own), the config, the
    // policy and the algorithm, the learner daemon startable from code, trained
    // policies that act (`Policy`), and export.
    .library(name: "Herd", targets: libraryModules),
    // The numerical core alone (layers with BPTT, optimisers, archives).
    .library(name: "HerdNN", targets: ["HerdNN"]),
  ],
  dependencies: [
    // CLI parsing; ~10 s of a clean debug build.
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    // The protobuf runtime for the committed generated code (no build plugin: it
    // would compile protoc from C++ on every clean build); ~18 s of a clean build.
    .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    // The stats endpoint's HTTP server (SwiftNIO underneath). Without its default
    // traits: swift-configuration and full Foundation are not needed here.
    .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
    // Logs with levels (--log-level), /metrics, ordered shutdown on SIGTERM/SIGINT.
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
  ],
  targets: publicTargets + exampleTargets + shimTargets + testTargets
)
