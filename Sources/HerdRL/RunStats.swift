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
  private var lagNext = 0
  private var lastEnvStepsAt: ContinuousClock.Instant?
  private var droppedStale = 0
  private var skippedUpdates = 0
  /// Episodes in the mean-return window.
  public let window: Int
  /// Fragments in the policy-lag window.
  public let lagWindow: Int

  /// Stats with a mean-return window of `window` episodes and policy-lag percentiles
  /// over the last `lagWindow` trained fragments.
  public init(window: Int = 100, lagWindow: Int = 1000) {
    self.window = window
    self.lagWindow = max(1, lagWindow)
  }

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

  /// Adds sampled env steps (a fragment batch arrived).
  public func addEnvSteps(_ n: Int) {
    let now = ContinuousClock.now
    lock.withLock {
      envSteps += n
      lastEnvStepsAt = now
    }
  }
  /// Records the policy lags of a trained batch (the window keeps the last `lagWindow`).
  public func recordLags(_ l: [Int]) {
    lock.withLock {
      for x in l {
        if lags.count < lagWindow {
          lags.append(x)
        } else {
          lags[lagNext] = x
        }
        lagNext = (lagNext + 1) % lagWindow
      }
    }
  }
  /// Counts fragments dropped for being older than `max_policy_lag`.
  public func addDroppedStale(_ n: Int) { lock.withLock { droppedStale += n } }
  /// Counts updates skipped for a non-finite gradient.
  public func addSkippedUpdate() { lock.withLock { skippedUpdates += 1 } }

  /// A consistent copy of everything; `lags: false` skips the percentiles (cheap,
  /// for the trainer's stop checks).
  public func snapshot(lags withLags: Bool = true) -> Snapshot {
    lock.withLock {
      let recent = returns.suffix(window)
      let recentLengths = lengths.suffix(window)
      let sortedLags = withLags ? lags.sorted() : []
      func pct(_ q: Double) -> Int {
        sortedLags.isEmpty ? 0 : sortedLags[min(sortedLags.count - 1, Int(q * Double(sortedLags.count)))]
      }
      return Snapshot(
        episodes: episodes, envSteps: envSteps,
        meanReturn: recent.isEmpty ? nil : recent.reduce(0, +) / Float(recent.count),
        minReturn: recent.min(), maxReturn: recent.max(),
        meanLength: recentLengths.isEmpty ? nil : Float(recentLengths.reduce(0, +)) / Float(recentLengths.count),
        windowEpisodes: recent.count, lagP50: pct(0.5), lagP95: pct(0.95), lagMax: sortedLags.last ?? 0,
        droppedStale: droppedStale, skippedUpdates: skippedUpdates,
        secondsSinceEnvSteps: lastEnvStepsAt.map { ($0.duration(to: .now)).seconds })
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
    /// Seconds since env steps last arrived (nil before the first).
    public var secondsSinceEnvSteps: Double?
  }
}

extension Duration {
  /// The duration in seconds.
  public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
