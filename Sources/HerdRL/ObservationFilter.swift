import Foundation
import HerdNN

/// RLlib's `observation_filter`: `NoFilter`, or `MeanStdFilter`, which normalises
/// every observation feature by running statistics: the policy sees
/// `clip((o - mean) * scale, -10, 10)` with `scale = 1 / (std + 1e-8)`.
///
/// The filter is part of the model. Its mean and scale are two parameters of the
/// policy (`obs_filter.mean` and `obs_filter.scale`, never trained: no gradient
/// reaches them), so they travel with every weight broadcast, sit in every
/// checkpoint and go out with an export. Workers act with the filter of the weights
/// they hold and record raw observations. The learner keeps the statistics
/// (``ObservationStatistics``), updated from the raw observations of every batch it
/// trains on, and the filter each recent version was published with: it filters
/// each fragment with its worker's filter, so it trains on the inputs the actor saw.
/// (Filtering old fragments with the newest statistics instead made
/// StatelessCartPole stop learning: a seed that reaches 475 in 15 s got nowhere in
/// 600 s.)
///
/// It matters: StatelessCartPole's positions are ~0.05 in scale, and without it the
/// LSTM never learned to tell velocities apart (mean return stayed near 20).
public enum ObservationFilter {
  /// Writes `clip((x - mean) * scale, -10, 10)` for `rows` rows of `features` floats.
  /// Workers and the learner both use this function, so they compute the same bits.
  @inlinable
  public static func apply(
    _ x: UnsafePointer<Float>, mean: UnsafePointer<Float>, scale: UnsafePointer<Float>, rows: Int, features f: Int,
    into out: UnsafeMutablePointer<Float>
  ) {
    for r in 0..<rows {
      let src = x + r &* f
      let dst = out + r &* f
      for k in 0..<f { dst[k] = min(10, max(-10, (src[k] - mean[k]) * scale[k])) }
    }
  }
}

/// The running mean and variance of each observation feature (Welford, in
/// doubles), kept by the learner from the raw observations it trains on.
public struct ObservationStatistics: Sendable, Equatable, Codable {
  /// Observations seen.
  public private(set) var count: Double = 0
  private(set) var mean: [Double]
  private(set) var m2: [Double]

  /// Empty statistics for `features` floats.
  public init(features: Int) {
    mean = [Double](repeating: 0, count: features)
    m2 = mean
  }

  /// Features per observation.
  public var features: Int { mean.count }

  /// Adds `rows` observations `[rows, F]`.
  public mutating func update(_ obs: UnsafePointer<Float>, rows: Int) {
    let f = mean.count
    for r in 0..<rows {
      count += 1
      for k in 0..<f {
        let x = Double(obs[r * f + k])
        let d = x - mean[k]
        mean[k] += d / count
        m2[k] += d * (x - mean[k])
      }
    }
  }

  /// The filter's parameters: mean and scale `1 / (std + 1e-8)` (sample standard
  /// deviation); the identity (0 and 1) until two observations have been seen.
  public func write(mean meanOut: UnsafeMutablePointer<Float>, scale scaleOut: UnsafeMutablePointer<Float>) {
    for k in 0..<mean.count {
      if count > 1 {
        meanOut[k] = Float(mean[k])
        scaleOut[k] = Float(1 / ((m2[k] / (count - 1)).squareRoot() + 1e-8))
      } else {
        meanOut[k] = 0
        scaleOut[k] = 1
      }
    }
  }

  /// JSON for a checkpoint's metadata.
  public func json() throws -> String {
    String(decoding: try JSONEncoder().encode(self), as: UTF8.self)
  }

  /// Statistics read back from ``json()``; `features` must match.
  public init(json: String, features: Int) throws {
    let s = try JSONDecoder().decode(Self.self, from: Data(json.utf8))
    guard s.mean.count == features, s.m2.count == features, s.count >= 0 else {
      throw NNError.badParameterFile(
        path: "checkpoint", reason: "observation statistics have \(s.mean.count) features, the model \(features)")
    }
    self = s
  }
}
