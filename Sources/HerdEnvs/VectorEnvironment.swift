/// K copies of an environment stepped together, with automatic reset.
///
/// Copy i is seeded with `seed + i` at the first reset. After a step that ends an
/// episode, `observations` already holds the next episode's first observation and
/// `finalObservations` holds the last observation of the episode that ended (what a
/// truncated episode bootstraps from). Observations `[K, F]` are contiguous rows.
public final class VectorEnvironment {
  /// Number of copies K.
  public let count: Int
  /// Floats per observation F.
  public let observationSize: Int
  /// Actions per copy A.
  public let actionCount: Int
  /// Current observations `[K, F]`.
  public private(set) var observations: [Float]
  /// Last observation of each episode that ended at the last step `[K, F]`
  /// (valid for rows where `outcomes[i].done`).
  public private(set) var finalObservations: [Float]
  /// The last step's outcome per copy.
  public private(set) var outcomes: [StepOutcome]
  private var envs: [any Environment]
  private let seed: UInt64

  /// K copies from `make(i)`, seeded `seed + i` at ``reset()``.
  public init(count: Int, seed: UInt64, make: (Int) -> any Environment) {
    precondition(count >= 1, "VectorEnvironment needs at least one copy")
    self.count = count
    self.seed = seed
    envs = (0..<count).map(make)
    observationSize = envs[0].observationSpace.size
    actionCount = envs[0].actionSpace.size
    observations = [Float](repeating: 0, count: count * observationSize)
    finalObservations = observations
    outcomes = [StepOutcome](repeating: StepOutcome(reward: 0, terminated: false, truncated: false), count: count)
  }

  /// Starts every copy (copy i with seed `seed + i`).
  public func reset() {
    let f = observationSize
    observations.withUnsafeMutableBufferPointer { obs in
      for i in 0..<count { envs[i].reset(seed: seed &+ UInt64(i), observation: obs.baseAddress.unsafelyUnwrapped + i * f) }
    }
  }

  /// Steps copy i with `actions[i]`; copies whose episode ended start a new one.
  public func step(_ actions: UnsafePointer<Int32>) {
    let f = observationSize
    observations.withUnsafeMutableBufferPointer { obsBuf in
      finalObservations.withUnsafeMutableBufferPointer { finBuf in
        let obs = obsBuf.baseAddress.unsafelyUnwrapped
        let fin = finBuf.baseAddress.unsafelyUnwrapped
        for i in 0..<count {
          let o = obs + i * f
          let outcome = envs[i].step(Int(actions[i]), observation: o)
          outcomes[i] = outcome
          if outcome.done {
            (fin + i * f).update(from: o, count: f)
            envs[i].reset(seed: nil, observation: o)
          }
        }
      }
    }
  }
}
