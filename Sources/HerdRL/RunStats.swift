import Foundation
import HerdMath

/// Counters and windows shared by workers (episodes, env steps) and the learner
/// (updates, losses, lag), read as a snapshot by progress output. Thread-safe.
public final class RunStats: @unchecked Sendable {
  private let lock = SpinlessLock()
  private var returns: [Float] = []
  private var lengths: [Int] = []
  private var windowStart = 0
  private var episodes = 0
  private var envSteps = 0
  private var lags: [Int] = []
  private var droppedStale = 0
  private var skippedUpdates = 0
  /// Episodes in the mean-return window.
  public let window: Int

  /// Stats with a mean-return window of `window` episodes.
  public init(window: Int = 100) { self.window = window }

  /// Records a finished episode.
  public func record(_ e: EpisodeRecord) {
    lock.withLock {
      returns.append(e.envReturn)
      lengths.append(e.length)
      episodes += 1
      if returns.count > 4 * window {
        returns.removeFirst(returns.count - window)
        lengths.removeFirst(lengths.count - window)
      }
    }
  }

  /// Starts the counters from a checkpoint's values.
  public func restore(envSteps: Int, episodes: Int) {
    lock.withLock {
      self.envSteps = envSteps
      self.episodes = episodes
    }
  }

  /// Adds sampled env steps.
  public func addEnvSteps(_ n: Int) { lock.withLock { envSteps += n } }
  /// Records the policy lags of a trained batch (kept for percentiles until the next snapshot).
  public func recordLags(_ l: [Int]) { lock.withLock { lags += l } }
  /// Counts fragments dropped for being older than `max_policy_lag`.
  public func addDroppedStale(_ n: Int) { lock.withLock { droppedStale += n } }
  /// Counts updates skipped for a non-finite gradient.
  public func addSkippedUpdate() { lock.withLock { skippedUpdates += 1 } }

  /// A consistent copy of everything, resetting the lag sample.
  public func snapshot() -> Snapshot { take(resetLags: true) }

  /// A consistent copy of everything, keeping the lag sample.
  public func snapshotPeek() -> Snapshot { take(resetLags: false) }

  private func take(resetLags: Bool) -> Snapshot {
    lock.withLock {
      let recent = returns.suffix(window)
      let recentLengths = lengths.suffix(window)
      let sortedLags = resetLags ? lags.sorted() : []  // percentiles only for progress records
      func pct(_ q: Double) -> Int {
        sortedLags.isEmpty ? 0 : sortedLags[min(sortedLags.count - 1, Int(q * Double(sortedLags.count)))]
      }
      let s = Snapshot(
        episodes: episodes, envSteps: envSteps,
        meanReturn: recent.isEmpty ? nil : recent.reduce(0, +) / Float(recent.count),
        minReturn: recent.min(), maxReturn: recent.max(),
        meanLength: recentLengths.isEmpty ? nil : Float(recentLengths.reduce(0, +)) / Float(recentLengths.count),
        windowEpisodes: recent.count, lagP50: pct(0.5), lagP95: pct(0.95), lagMax: sortedLags.last ?? 0,
        droppedStale: droppedStale, skippedUpdates: skippedUpdates)
      if resetLags { lags.removeAll(keepingCapacity: true) }
      return s
    }
  }

  /// A point-in-time copy of the stats.
  public struct Snapshot: Sendable {
    public var episodes: Int
    public var envSteps: Int
    /// Mean return over the last `window` episodes (nil before the first).
    public var meanReturn: Float?
    public var minReturn: Float?
    public var maxReturn: Float?
    public var meanLength: Float?
    /// Episodes the mean covers (up to the window).
    public var windowEpisodes: Int
    public var lagP50: Int
    public var lagP95: Int
    public var lagMax: Int
    public var droppedStale: Int
    public var skippedUpdates: Int
  }
}
