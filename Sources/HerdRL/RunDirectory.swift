import Foundation
import HerdNN

/// A run's folder: `config.json` (the config used), `progress.jsonl` (one JSON
/// object per progress interval), `checkpoint.herd` (parameters, optimiser state,
/// counters and config; written atomically) and `summary.json` at the end.
public final class RunDirectory {
  /// The folder.
  public let path: String
  private var progress: FileHandle?

  /// Creates the folder (and parents) and opens `progress.jsonl` for appending.
  public init(path: String) throws {
    self.path = path
    do {
      try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    } catch {
      throw ConfigError("--run-dir \(path): cannot create it (\(error.localizedDescription))")
    }
    let progressPath = file("progress.jsonl")
    if !FileManager.default.fileExists(atPath: progressPath) {
      _ = FileManager.default.createFile(atPath: progressPath, contents: nil)
    }
    progress = FileHandle(forWritingAtPath: progressPath)
    progress?.seekToEndOfFile()
  }

  deinit { try? progress?.close() }

  /// Path of a file in the run folder.
  public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

  /// Writes `text` to `name` atomically (temporary file, then rename).
  public func writeAtomically(_ name: String, _ text: String) throws {
    let url = URL(fileURLWithPath: file(name))
    try Data(text.utf8).write(to: url, options: .atomic)
  }

  /// Appends one record to `progress.jsonl`.
  public func appendProgress(_ record: [String: Any]) {
    guard
      let data = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys, .withoutEscapingSlashes])
    else { return }
    progress?.write(data + Data("\n".utf8))
  }

  /// Writes `checkpoint.herd`: parameters, optimiser state, and `metadata`.
  public func writeCheckpoint(_ learner: Learner, metadata: [String: String]) throws {
    var meta = metadata
    meta["policy_version"] = String(learner.version)
    meta["trained_steps"] = String(learner.trainedSteps)
    meta["config"] = (try? learner.config.prettyJSON()) ?? ""
    try learner.parameters.archive(optimizer: learner.optimizer, metadata: meta).write(to: file("checkpoint.herd"))
  }
}

/// JSON helpers: finite numbers or null.
public func jsonNumber(_ x: Float?) -> Any {
  guard let x, x.isFinite else { return NSNull() }
  return Double(x)
}
