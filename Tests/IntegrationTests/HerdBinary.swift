import Foundation
import Testing

/// Runs the `herd` executable built beside the test bundle.
struct HerdBinary {
  struct Result {
    var status: Int32
    var stdout: String
    var stderr: String
  }

  static var path: String {
    // .build/<config>/HerdPackageTests.xctest -> .build/<config>/herd
    let bundle = URL(fileURLWithPath: CommandLine.arguments.first { $0.contains(".xctest") } ?? CommandLine.arguments[0])
    var dir = bundle
    while dir.pathExtension != "xctest" && dir.path != "/" { dir.deleteLastPathComponent() }
    return dir.deletingLastPathComponent().appendingPathComponent("herd").path
  }

  /// Runs `herd args...` and waits (at most `timeout` seconds, then kills it).
  static func run(_ args: [String], timeout: Double = 120) throws -> Result {
    try runCommand(path, args, timeout: timeout)
  }

  /// Runs `executable args...` (in `currentDirectory`, when given) and waits (at
  /// most `timeout` seconds, then kills it).
  static func runCommand(
    _ executable: String, _ args: [String], environment: [String: String] = [:], currentDirectory: String? = nil,
    timeout: Double = 120
  ) throws -> Result {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    if let currentDirectory { p.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
    if !environment.isEmpty {
      p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    // Output goes to files: nothing to drain while the child runs.
    let base = tempDir("out")
    let outPath = base + ".stdout"
    let errPath = base + ".stderr"
    _ = FileManager.default.createFile(atPath: outPath, contents: nil)
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    defer {
      try? FileManager.default.removeItem(atPath: outPath)
      try? FileManager.default.removeItem(atPath: errPath)
    }
    p.standardOutput = FileHandle(forWritingAtPath: outPath)
    p.standardError = FileHandle(forWritingAtPath: errPath)
    try p.run()
    let deadline = Date(timeIntervalSinceNow: timeout)
    while p.isRunning && Date() < deadline { usleep(20_000) }
    if p.isRunning {
      // Foundation sees a child as running while any descendant holds its
      // lifetime descriptor: kill, then give up waiting after 5 s.
      kill(p.processIdentifier, SIGKILL)
      let grace = Date(timeIntervalSinceNow: 5)
      while p.isRunning && Date() < grace { usleep(20_000) }
      Issue.record("\(executable) \(args.joined(separator: " ")) did not finish within \(timeout) s")
      return Result(status: -1, stdout: "", stderr: "timed out")
    }
    p.waitUntilExit()
    let outData = FileManager.default.contents(atPath: outPath) ?? Data()
    let errData = FileManager.default.contents(atPath: errPath) ?? Data()
    return Result(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
  }

  static func tempDir(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("herd-it-\(name)-\(UUID().uuidString)").path
  }

  static func json(_ path: String) throws -> [String: Any] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
  }
}
