import Foundation
import HerdNN

/// `reward_scaling`: the learner's running statistics of the discounted return
/// `R_t = gamma R_{t-1} + r_t` (0 before an episode's first step), and the scale
/// `1 / sqrt(var(R) + 1e-8)` the rewards it trains on are multiplied by (as Stable
/// Baselines' VecNormalize and Gymnasium's NormalizeReward do, without their
/// clipping).
///
/// The learner sees each env's episode as a chain of fragments. It carries `R`
/// from one fragment of a stream (a worker run's env) to the next when the next
/// continues the same episode where the last one ended; a fragment that does not
/// (its predecessor was dropped as stale) starts from 0, which only adds a few
/// short-return samples. Only new fragments are counted, once.
public struct ReturnStatistics: Codable, Sendable, Equatable {
  /// Returns counted.
  public private(set) var count: Double = 0
  public private(set) var mean: Double = 0
  /// Sum of squared deviations (Welford).
  public private(set) var m2: Double = 0
  /// Discount.
  public let gamma: Double

  struct Stream: Sendable, Equatable {
    var episodeID: UInt64
    var nextIndex: Int
    var discounted: Double
  }
  /// Per (run id, env index): where its last fragment left off. Not saved.
  var streams: [StreamKey: Stream] = [:]

  struct StreamKey: Hashable, Sendable {
    var runID: UInt64
    var envIndex: Int
  }

  enum CodingKeys: String, CodingKey { case count, mean, m2, gamma }

  /// Empty statistics for discount `gamma`.
  public init(gamma: Float) { self.gamma = Double(gamma) }

  /// The variance of the returns counted (0 before two).
  public var variance: Double { count >= 2 ? m2 / count : 0 }

  /// What rewards are multiplied by: 1 until two returns are counted.
  public var scale: Float { count >= 2 ? Float(1 / (variance + 1e-8).squareRoot()) : 1 }

  /// Adds one return.
  public mutating func add(_ x: Double) {
    count += 1
    let d = x - mean
    mean += d / count
    m2 += d * (x - mean)
  }

  /// Counts the discounted return after every step of `fragment`.
  public mutating func update(_ fragment: Fragment) {
    let key = StreamKey(runID: fragment.runID, envIndex: fragment.envIndex)
    var r = 0.0
    if let s = streams[key], s.episodeID == fragment.episodeID, s.nextIndex == fragment.indexInEpisode {
      r = s.discounted
    }
    for reward in fragment.rewards {
      r = gamma * r + Double(reward)
      add(r)
    }
    if fragment.end == .cut {
      streams[key] = Stream(
        episodeID: fragment.episodeID, nextIndex: fragment.indexInEpisode + fragment.length, discounted: r)
    } else {
      streams[key] = nil
    }
  }

  /// JSON for a checkpoint's metadata.
  public func json() throws -> String { String(decoding: try JSONEncoder().encode(self), as: UTF8.self) }

  /// Statistics read back from ``json()``.
  public init(json: String) throws {
    let s = try JSONDecoder().decode(Self.self, from: Data(json.utf8))
    guard s.count >= 0, s.m2 >= 0, s.mean.isFinite, s.gamma >= 0 else {
      throw NNError.badParameterFile(path: "checkpoint", reason: "return statistics \(json) are not valid")
    }
    self = s
  }
}
