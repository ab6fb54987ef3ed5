import Foundation
import HerdMath
import Synchronization

/// Counters and windows shared by workers (episodes, env steps) and the learner
/// (updates, losses, lag), read as a snapshot by progress output. Thread-safe.
public final class RunStats: Sendable {
  private struct State {
    var returns: [Float] = []
    var lengths: [Int] = []
    /// The policy version of each episode in `returns` (-1: unknown).
    var versions: [Int] = []
    var episodes = 0
    var envSteps = 0
    var lags: [Int] = []
    var lagNext = 0
    var lastEnvStepsAt: ContinuousClock.Instant?
    var droppedStale = 0
    var skippedUpdates = 0
    /// Per info key, its finite values at episode ends, oldest first.
    var info: [[Float]] = []
  }
  private let state = Mutex(State())
  /// Episodes in the mean-return window.
  public let window: Int
  /// Fragments in the policy-lag window.
  public let lagWindow: Int
  /// The run's `episode_info_keys`: each has a mean over the last `window`
  /// episodes that reported it.
  public let infoKeys: [String]

  /// Stats with a mean-return window of `window` episodes and policy-lag percentiles
  /// over the last `lagWindow` trained fragments.
  public init(window: Int = 100, lagWindow: Int = 1000, infoKeys: [String] = []) {
    self.window = window
    self.lagWindow = max(1, lagWindow)
    self.infoKeys = infoKeys
    state.withLock { $0.info = [[Float]](repeating: [], count: infoKeys.count) }
  }

  /// Records a finished episode.
  public func record(_ e: EpisodeRecord) {
    let window = self.window
    state.withLock { s in
      s.returns.append(e.envReturn)
      s.lengths.append(e.length)
      s.versions.append(e.policyVersion ?? -1)
      s.episodes += 1
      if s.returns.count > 4 * window {
        s.returns.removeFirst(s.returns.count - window)
        s.lengths.removeFirst(s.lengths.count - window)
        s.versions.removeFirst(s.versions.count - window)
      }
      // A record with another count of info values (a worker of another config) is
      // not mixed in; a value that is not finite (a key the episode lacked) is skipped.
      if e.info.count == s.info.count {
        for (k, v) in e.info.enumerated() where v.isFinite {
          s.info[k].append(v)
          if s.info[k].count > 4 * window { s.info[k].removeFirst(s.info[k].count - window) }
        }
      }
    }
  }

  /// Starts the counters from a checkpoint's values, and the mean-return window
  /// from the returns and lengths of its episodes (oldest first; the newest
  /// `window` are kept).
  public func restore(envSteps: Int, episodes: Int, recentReturns: [Float] = [], recentLengths: [Int] = []) {
    precondition(recentReturns.count == recentLengths.count, "one length per return")
    let window = self.window
    state.withLock { s in
      s.envSteps = envSteps
      s.episodes = episodes
      s.returns = Array(recentReturns.suffix(window))
      s.lengths = Array(recentLengths.suffix(window))
      s.versions = [Int](repeating: -1, count: s.returns.count)
    }
  }

  /// Each info key's values in its window, oldest first, by key (what a checkpoint
  /// keeps so that a resumed run's means go on).
  public func recentInfo() -> [String: [Float]] {
    let window = self.window
    return state.withLock { s in
      Dictionary(uniqueKeysWithValues: zip(infoKeys, s.info).map { ($0, Array($1.suffix(window))) })
    }
  }

  /// Starts each info key's window from `values` (oldest first; keys this run does
  /// not record are left out, the newest `window` kept).
  public func restoreInfo(_ values: [String: [Float]]) {
    let window = self.window
    state.withLock { s in
      for (k, key) in infoKeys.enumerated() { s.info[k] = Array((values[key] ?? []).filter(\.isFinite).suffix(window)) }
    }
  }

  /// The returns and lengths of the episodes in the mean-return window, oldest
  /// first (what a checkpoint keeps so that a resumed run's mean goes on).
  public func recentEpisodes() -> (returns: [Float], lengths: [Int]) {
    let window = self.window
    return state.withLock { s in (Array(s.returns.suffix(window)), Array(s.lengths.suffix(window))) }
  }

  /// Adds sampled env steps (a fragment batch arrived).
  public func addEnvSteps(_ n: Int) {
    let now = ContinuousClock.now
    state.withLock { s in
      s.envSteps += n
      s.lastEnvStepsAt = now
    }
  }
  /// Records the policy lags of a trained batch (the window keeps the last `lagWindow`).
  public func recordLags(_ l: [Int]) {
    let lagWindow = self.lagWindow
    state.withLock { s in
      for x in l {
        if s.lags.count < lagWindow {
          s.lags.append(x)
        } else {
          s.lags[s.lagNext] = x
        }
        s.lagNext = (s.lagNext + 1) % lagWindow
      }
    }
  }
  /// Counts fragments dropped for being older than `max_policy_lag`.
  public func addDroppedStale(_ n: Int) { state.withLock { $0.droppedStale += n } }
  /// Counts updates skipped for a non-finite gradient.
  public func addSkippedUpdates(_ n: Int) { if n > 0 { state.withLock { $0.skippedUpdates += n } } }

  /// A consistent copy of everything; `lags: false` skips the percentiles (cheap,
  /// for the trainer's stop checks).
  public func snapshot(lags withLags: Bool = true) -> Snapshot {
    let window = self.window
    return state.withLock { s in
      let recent = s.returns.suffix(window)
      let recentLengths = s.lengths.suffix(window)
      let versions = s.versions.suffix(window).filter { $0 >= 0 }.sorted()
      let sortedLags = withLags ? s.lags.sorted() : []
      func pct(_ q: Double) -> Int {
        sortedLags.isEmpty ? 0 : sortedLags[min(sortedLags.count - 1, Int(q * Double(sortedLags.count)))]
      }
      let info = zip(infoKeys, s.info).map { key, values in
        let recent = values.suffix(window)
        return InfoMean(
          key: key, mean: recent.isEmpty ? nil : recent.reduce(0, +) / Float(recent.count), episodes: recent.count)
      }
      return Snapshot(
        episodes: s.episodes, envSteps: s.envSteps,
        meanReturn: recent.isEmpty ? nil : recent.reduce(0, +) / Float(recent.count),
        minReturn: recent.min(), maxReturn: recent.max(),
        meanLength: recentLengths.isEmpty ? nil : Float(recentLengths.reduce(0, +)) / Float(recentLengths.count),
        windowEpisodes: recent.count, windowPolicyVersion: versions.isEmpty ? nil : versions[versions.count / 2],
        windowOldestPolicyVersion: versions.first,
        lagP50: pct(0.5), lagP95: pct(0.95), lagMax: sortedLags.last ?? 0,
        droppedStale: s.droppedStale, skippedUpdates: s.skippedUpdates,
        secondsSinceEnvSteps: s.lastEnvStepsAt.map { ($0.duration(to: .now)).seconds }, episodeInfo: info)
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
    /// The median policy version those episodes were played with (the upper median
    /// for an even count; nil when none is known): the weights the mean judges.
    public var windowPolicyVersion: Int? = nil
    /// The oldest policy version among them (nil when none is known).
    public var windowOldestPolicyVersion: Int? = nil
    public var lagP50: Int
    public var lagP95: Int
    public var lagMax: Int
    public var droppedStale: Int
    public var skippedUpdates: Int
    /// Seconds since env steps last arrived (nil before the first).
    public var secondsSinceEnvSteps: Double?
    /// Each `episode_info_keys` entry's mean, in the config's order.
    public var episodeInfo: [InfoMean] = []
  }

  /// The mean of one info key over the last `window` episodes that reported it.
  public struct InfoMean: Sendable, Equatable {
    public var key: String
    /// nil before an episode reported it.
    public var mean: Float?
    /// Episodes the mean covers (up to the window).
    public var episodes: Int
  }
}

extension Duration {
  /// The duration in seconds.
  public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
