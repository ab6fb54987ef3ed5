import ArgumentParser
import Foundation
import HerdMath
import HerdRL
import HerdLearner
import HerdStats
import Synchronization

/// Writes a line to standard error (progress and diagnostics; stdout stays for
/// results). While a ``ProgressDisplay`` is shown, the line goes above its status bar.
func printError(_ line: String) {
  if let display = ProgressDisplay.current.value {
    display.log(line)
  } else {
    writeWhole(2, line + "\n")
  }
}

/// Writes `bytes` whole to file descriptor `fd`, giving up quietly on an error: a
/// reader that went away (`herd train | head`: EPIPE) or a closed terminal (EIO)
/// must not stop a run before its final checkpoint, and Foundation's
/// `FileHandle.write` traps on either.
func writeWhole(_ fd: Int32, _ bytes: some Collection<UInt8>) {
  let bytes = Array(bytes)
  var offset = 0
  while offset < bytes.count {
    let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
    if n > 0 {
      offset += n
    } else if n < 0 && errno == EINTR {
      continue
    } else {
      return
    }
  }
}

func writeWhole(_ fd: Int32, _ text: String) { writeWhole(fd, text.utf8) }

/// A `--seed` value: a whole number from 0 to 2^64 - 1 (ArgumentParser alone
/// says only that `-1` is invalid, not what would be valid).
func seedArgument(_ text: String) throws -> UInt64 {
  guard let seed = UInt64(text) else { throw ValidationError("a seed is a whole number from 0 to \(UInt64.max)") }
  return seed
}

/// A failure at run time (not a usage error): printed as "Error: ..." with exit
/// status 1 and no usage line.
/// This program's path, for starting children of it (`herd worker`, `herd train`):
/// the kernel's link to the running executable, else argv[0].
func ownExecutable() -> String {
  (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
}

struct CommandFailure: Error, CustomStringConvertible {
  let description: String
  init(_ d: String) { description = d }
}

/// A lock-protected optional value shared across threads.
final class SharedSlot<T: Sendable>: Sendable {
  private let stored = Mutex<T?>(nil)
  var value: T? {
    get { stored.withLock { $0 } }
    set { stored.withLock { $0 = newValue } }
  }
}

/// The status bar `herd train` keeps at the bottom of a terminal: a bar toward the
/// stop criterion, the mean return, env steps, steps/s and elapsed time, redrawn
/// twice a second from the trainer's published status; log lines scroll above it.
/// Only on a terminal (stderr is a TTY) and without --quiet.
final class ProgressDisplay: @unchecked Sendable {
  /// The display on screen, if any (``printError`` writes through it).
  static let current = SharedSlot<ProgressDisplay>()

  private let statusLine = Mutex("")
  private let board: StatusBoard
  private let stop: StopCriteria
  private let done = StopFlag()
  private var thread: JoinableThread?

  init(board: StatusBoard, stop: StopCriteria) {
    self.board = board
    self.stop = stop
  }

  /// Shows a display for `board` when stderr is a terminal; nil otherwise.
  static func show(board: StatusBoard, stop: StopCriteria) -> ProgressDisplay? {
    guard isatty(STDERR_FILENO) == 1 else { return nil }
    let d = ProgressDisplay(board: board, stop: stop)
    current.value = d
    d.thread = JoinableThread(name: "herd-progress") { [d] in
      while !d.done.isSet {
        d.redraw()
        d.done.wait(seconds: 0.5)
      }
    }
    return d
  }

  /// Writes `line` above the status bar.
  func log(_ line: String) {
    statusLine.withLock { write("\r\u{1B}[2K" + line + "\n" + $0) }
  }

  /// Removes the bar and restores plain output.
  func finish() {
    if done.isSet { return }
    done.set()
    thread?.join()
    ProgressDisplay.current.value = nil
    statusLine.withLock { _ in write("\r\u{1B}[2K") }
  }

  private func redraw() {
    guard let s = board.status else { return }
    let line = Self.render(s, stop: stop, width: Int(ProcessInfo.processInfo.environment["COLUMNS"] ?? "") ?? 100)
    statusLine.withLock {
      $0 = line
      write("\r\u{1B}[2K" + line)
    }
  }

  private func write(_ s: String) { writeWhole(2, s) }

  /// The status bar for `s`: the fraction is the furthest of the stop criteria
  /// (steps, seconds, or the mean return over the target when both are positive,
  /// the training episodes' or the latest evaluation's).
  static func render(_ s: TrainerStatus, stop: StopCriteria, width: Int) -> String {
    var fraction = 0.0
    if let n = stop.envSteps { fraction = max(fraction, Double(s.stats.envSteps) / Double(n)) }
    if let t = stop.seconds { fraction = max(fraction, s.wallSeconds / t) }
    if let r = stop.reward, r > 0, let m = s.stats.meanReturn, m > 0 { fraction = max(fraction, Double(m / r)) }
    if let r = stop.evaluationReward, r > 0, let m = s.evaluation?.returnMean, m > 0 {
      fraction = max(fraction, m / Double(r))
    }
    fraction = min(1, fraction)
    let barWidth = 20
    let filled = Int((fraction * Double(barWidth)).rounded(.down))
    let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: barWidth - filled)
    let ret = s.stats.meanReturn.map { String(format: "%.1f", $0) } ?? "-"
    let target = stop.reward.map { String(format: " / %g", $0) } ?? ""
    // The latest evaluation, when the run evaluates (and its target).
    let evaluationTarget = stop.evaluationReward.map { String(format: " / %g", $0) } ?? ""
    let evaluation =
      s.evaluation.map { "  eval " + ($0.returnMean.map { String(format: "%.1f", $0) } ?? "-") + evaluationTarget }
      ?? ""
    let t = Int(s.wallSeconds)
    let line = String(
      format: "%@ %3d%%  return %@%@%@  steps %@  %@/s  updates %d  lag %d  %d:%02d",
      bar, Int(fraction * 100), ret, target, evaluation, Int(s.stats.envSteps).formatted(),
      Int(s.sampledPerSecond).formatted(), s.updates, s.stats.lagP50, t / 60, t % 60)
    return String(line.prefix(max(20, width - 1)))
  }
}

/// Splits bytes from a child's stderr into lines and prints each through
/// ``printError`` (the partial last line waits for its end). The child filters
/// its own lines by the `--log-level` it was given.
final class LineForwarder: Sendable {
  private let pending = Mutex<[UInt8]>([])
  /// The last line that began with "Error:" (a child's fatal error), if any.
  private let error = Mutex<String?>(nil)
  var lastError: String? { error.withLock { $0 } }

  func feed(_ data: Data) {
    let lines = pending.withLock { pending -> [String] in
      if data.isEmpty {  // end of file: flush what is left
        defer { pending = [] }
        return pending.isEmpty ? [] : [String(decoding: pending, as: UTF8.self)]
      }
      pending += data
      var out: [String] = []
      while let nl = pending.firstIndex(of: 10) {
        out.append(String(decoding: pending[..<nl], as: UTF8.self))
        pending.removeSubrange(...nl)
      }
      return out
    }
    if let e = lines.last(where: { $0.hasPrefix("Error:") }) { error.withLock { $0 = e } }
    for l in lines { printError(l) }
  }
}
