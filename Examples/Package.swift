// swift-tools-version:6.1
// Programs that use Herd as a library. They depend on the Herd package one folder up
// by path; your own package would use
//   .package(url: "https://github.com/OWNER/herd", from: "0.1.0")
// and the same product.
import Foundation
import PackageDescription

// A path dependency is named after its folder, whatever the clone is called.
let herd = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

let package = Package(
  name: "HerdExamples",
  platforms: [.macOS(.v14)],
  dependencies: [.package(path: herd.path)],
  targets: [
    // A custom Swift environment trained from code, then run by its trained policy.
    .executableTarget(
      name: "cue",
      dependencies: [.product(name: "Herd", package: herd.lastPathComponent)],
      path: "Cue"
    )
  ]
)
