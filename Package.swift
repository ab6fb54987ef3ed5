// swift-tools-version:6.1
// Herd: an IMPALA-style distributed actor-learner for recurrent policies.
//
// The targets are the architecture diagram; docs/ARCHITECTURE.md says what each
// holds, which threads and channels it runs, and the shapes it moves.
// Dependencies point one way:
//   C shims -> HerdMath -> HerdNN -> HerdEnvs/HerdRL -> HerdWire
//           -> HerdStats -> HerdLearner/HerdWorker -> herd
import PackageDescription

#if canImport(Glibc)
  import Glibc
#endif

// MARK: - Code generation for the numeric core

/// `-target-cpu haswell` (AVX2 + FMA vectors for SIMD8<Float>) when the build host
/// has AVX2 and FMA: the elementwise kernels run twice as wide as on baseline x86-64.
/// `HERD_PORTABLE=1 swift build` builds for baseline x86-64 instead (for binaries
/// copied to older machines).
func numericSettings() -> [SwiftSetting] {
  #if os(Linux) && arch(x86_64)
    if getenv("HERD_PORTABLE") != nil { return [] }
    guard let f = fopen("/proc/cpuinfo", "r") else { return [] }
    defer { fclose(f) }
    var line = [CChar](repeating: 0, count: 8192)
    while fgets(&line, Int32(line.count), f) != nil {
      let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
      if text.hasPrefix("flags") {
        let flags = Set(text.split(separator: " ").map(String.init))
        return flags.contains("avx2") && flags.contains("fma") ? [.unsafeFlags(["-target-cpu", "haswell"])] : []
      }
    }
  #endif
  return []
}

// MARK: - Public modules

let publicTargets: [Target] = [
  .target(
    name: "HerdMath",
    dependencies: ["COpenBLAS"],
    path: "Sources/HerdMath",
    swiftSettings: numericSettings()
  ),
  .target(
    name: "HerdNN",
    dependencies: ["HerdMath"],
    path: "Sources/HerdNN",
    swiftSettings: numericSettings()
  ),
  .target(
    name: "HerdEnvs",
    dependencies: ["HerdMath", "CLinux"],
    path: "Sources/HerdEnvs"
  ),
  .target(
    name: "HerdRL",
    dependencies: ["HerdMath", "HerdNN", "HerdEnvs", .product(name: "Logging", package: "swift-log")],
    path: "Sources/HerdRL",
    swiftSettings: numericSettings()
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

// MARK: - Implementation details (system-library shims)

let shimTargets: [Target] = [
  // Debian's libzmq3-dev: `#include <zmq.h>`, link -lzmq.
  .systemLibrary(name: "CZeroMQ", path: "Sources/CZeroMQ"),
  // Debian's libopenblas-dev: CBLAS through `<cblas.h>`, link -lopenblas
  // (not -lblas: only libopenblas exports openblas_set_num_threads).
  .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
  // memfd_create (glibc, needs _GNU_SOURCE): the env host's shared memory.
  .systemLibrary(name: "CLinux", path: "Sources/CLinux"),
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
    dependencies: ["herd", "HerdNN", "HerdWire", "HerdRL", "HerdStats", "HerdLearner", "HerdTestSupport"],
    path: "Tests/IntegrationTests"
  ),
  .testTarget(
    name: "HerdStatsTests",
    dependencies: ["HerdStats", "HerdLearner", "HerdRL", "HerdWire", "HerdTestSupport"],
    path: "Tests/HerdStatsTests"
  ),
  .testTarget(
    name: "HerdLearnerTests",
    dependencies: ["HerdLearner", "HerdStats", "HerdRL", "HerdWire", "HerdNN", "HerdTestSupport"],
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
  targets: publicTargets + shimTargets + testTargets
)
