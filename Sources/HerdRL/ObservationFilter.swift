/// RLlib's `observation_filter`: `NoFilter`, or `MeanStdFilter`, which keeps a
/// running mean and variance of every observation feature a worker sees (Welford)
/// and hands the policy `clip((o - mean) / (std + 1e-8), -10, 10)`.
///
/// Workers filter before acting and store filtered observations in fragments, so
/// the learner trains on exactly the inputs the actor saw and needs no filter of
/// its own. Each worker keeps its own statistics (they converge to the same values).
/// It matters: StatelessCartPole's positions are ~0.05 in scale, and without it the
/// LSTM never learned to tell velocities apart (mean return stayed near 20).
public struct ObservationFilter: Sendable, Equatable {
  /// Whether the filter does anything.
  public let enabled: Bool
  /// Observations seen.
  public private(set) var count: Double = 0
  private var mean: [Double]
  private var m2: [Double]

  /// A filter for `features` floats; `kind` is `NoFilter` or `MeanStdFilter`.
  public init(kind: ObservationFilterKind, features: Int) {
    enabled = kind == .MeanStdFilter
    mean = [Double](repeating: 0, count: features)
    m2 = mean
  }

  /// Adds `rows` observations `[rows, F]` to the statistics.
  public mutating func update(_ obs: UnsafePointer<Float>, rows: Int) {
    guard enabled else { return }
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

  /// Writes the filtered `[rows, F]` observations into `out` (a copy when disabled).
  public func apply(_ obs: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) {
    let f = mean.count
    guard enabled, count > 1 else {
      out.update(from: obs, count: rows * f)
      return
    }
    for k in 0..<f {
      let std = (m2[k] / (count - 1)).squareRoot()
      let scale = 1 / (std + 1e-8)
      for r in 0..<rows {
        let v = (Double(obs[r * f + k]) - mean[k]) * scale
        out[r * f + k] = Float(max(-10, min(10, v)))
      }
    }
  }
}
