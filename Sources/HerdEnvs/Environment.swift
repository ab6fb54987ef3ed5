/// One step's outcome (the observation is written into the caller's buffer).
public struct StepOutcome: Sendable, Equatable {
  /// Reward for the action just taken.
  public var reward: Float
  /// The episode ended in a terminal state (bootstrap value 0).
  public var terminated: Bool
  /// The episode was cut by a time limit (bootstrap from the last observation).
  public var truncated: Bool

  /// An outcome.
  public init(reward: Float, terminated: Bool, truncated: Bool) {
    self.reward = reward
    self.terminated = terminated
    self.truncated = truncated
  }

  /// The episode is over, either way.
  public var done: Bool { terminated || truncated }
}

/// A reinforcement-learning environment with Gymnasium's semantics: `reset(seed:)`,
/// then `step(action)` giving observation, reward, `terminated`, `truncated`.
///
/// Observations are written into a caller-owned buffer of `observationSpace.flatSize`
/// floats, so a vectorised environment stepping thousands of times a second
/// allocates nothing. Time limits are part of the environment (`truncated`).
public protocol Environment {
  /// Observation space (a Box).
  var observationSpace: Space { get }
  /// Action space (Discrete, or a float Box).
  var actionSpace: Space { get }
  /// Starts an episode. A seed makes this and every later episode reproducible.
  mutating func reset(seed: UInt64?, observation: UnsafeMutablePointer<Float>)
  /// Takes `action` (in `0..<n` of a Discrete space) and writes the next observation.
  mutating func step(_ action: Int, observation: UnsafeMutablePointer<Float>) -> StepOutcome
  /// Takes the Box action `action[D]` (within the space's bounds: the worker clips)
  /// and writes the next observation.
  mutating func step(continuous action: UnsafePointer<Float>, observation: UnsafeMutablePointer<Float>) -> StepOutcome
}

extension Environment {
  /// Environments with one kind of action implement only its `step`.
  public mutating func step(_ action: Int, observation: UnsafeMutablePointer<Float>) -> StepOutcome {
    preconditionFailure("\(Self.self) takes Box actions (its action space is \(actionSpace))")
  }

  public mutating func step(continuous action: UnsafePointer<Float>, observation: UnsafeMutablePointer<Float>)
    -> StepOutcome
  {
    preconditionFailure("\(Self.self) takes discrete actions (its action space is \(actionSpace))")
  }
}

extension Environment {
  /// `reset` returning the observation (tests and tools).
  public mutating func reset(seed: UInt64? = nil) -> [Float] {
    var obs = [Float](repeating: 0, count: observationSpace.flatSize)
    obs.withUnsafeMutableBufferPointer { reset(seed: seed, observation: $0.baseAddress.unsafelyUnwrapped) }
    return obs
  }

  /// `step` returning the observation (tests and tools).
  public mutating func step(_ action: Int) -> (observation: [Float], outcome: StepOutcome) {
    var obs = [Float](repeating: 0, count: observationSpace.flatSize)
    let outcome = obs.withUnsafeMutableBufferPointer { step(action, observation: $0.baseAddress.unsafelyUnwrapped) }
    return (obs, outcome)
  }
}
