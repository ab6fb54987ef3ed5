/// K environments stepped as one batch: the one boundary between a rollout worker
/// and its environments. Built-in Swift environments (``VectorEnvironment``) and
/// Gymnasium environments in Python host processes (``HostedEnvironments``) both sit
/// behind it.
///
/// Rows are split into ``groups``; a group is stepped by ``beginStep(group:actions:)``
/// and collected by ``finishStep(group:)``, so the worker can run the policy for one
/// group while another steps (one group: no overlap). Buffers are owned by the
/// environment and read by the caller between calls.
///
/// Semantics are Gymnasium's with same-step autoreset: copy i is seeded with
/// `seed + i` at ``reset()``; after a step that ends an episode, ``observations``
/// already holds the next episode's first observation and ``finalObservations``
/// the last observation of the episode that ended (what a truncated episode
/// bootstraps from).
public protocol VectorEnv: AnyObject {
  /// What the learner is told: id, options and spaces.
  var spec: EnvSpec { get }
  /// Number of copies K.
  var count: Int { get }
  /// Floats per flat observation F.
  var observationSize: Int { get }
  /// Numbers per action D: integers (1 for Discrete, the components of a
  /// MultiDiscrete) or floats (the elements of a Box).
  var actionDims: Int { get }
  /// Row ranges stepped together.
  var groups: [Range<Int>] { get }
  /// Current observations `[K, F]`.
  var observations: [Float] { get }
  /// Last observation of each episode that ended at the group's last step `[K, F]`
  /// (valid for rows whose outcome is done).
  var finalObservations: [Float] { get }
  /// The last step's outcome per copy.
  var outcomes: [StepOutcome] { get }
  /// Info keys N read at each episode's end (the run's `episode_info_keys`; 0 for
  /// built-in environments).
  var infoKeyCount: Int { get }
  /// For rows whose outcome is done: the values of the N info keys in the info of
  /// the step that ended the episode `[K, N]` (NaN for a key it lacked).
  var episodeInfo: [Float] { get }
  /// Faults so far (environment errors, restarted hosts, non-finite observations).
  var faults: EnvFaults { get }
  /// Rows one game takes: consecutive rows, one per agent, that start and end
  /// together (a PettingZoo game's agents; 1 for any other environment).
  var agentsPerGame: Int { get }
  /// Starts every copy (copy i with seed `seed + i`).
  func reset() throws
  /// Starts stepping the rows of `group` with `actions[row * D ..< (row + 1) * D]`
  /// (indices into the whole `[K, D]` array).
  func beginStep(group: Int, actions: UnsafePointer<Int32>) throws
  /// The same for a Box action space: `actions[row * D ..< (row + 1) * D]` floats,
  /// within the space's bounds.
  func beginStep(group: Int, continuousActions: UnsafePointer<Float>) throws
  /// Waits for `group`'s step; its rows of the buffers are then current.
  func finishStep(group: Int) throws
  /// Stops the environments (host processes exit); later calls fail.
  func close()
  /// Sets what to call every half second while ``finishStep(group:)`` or
  /// ``reset()`` waits for environments stepped elsewhere (env host processes),
  /// with the seconds waited so far; nil for nothing. An error it throws ends the
  /// wait and is thrown by the call that waited (the caller is stopping; the
  /// environments are then only fit to be closed). Environments stepped in the
  /// caller's thread never wait and ignore it.
  func setWaitingHandler(_ handler: ((Double) throws -> Void)?)
}

extension VectorEnv {
  public var agentsPerGame: Int { 1 }
  public var infoKeyCount: Int { 0 }
  public var episodeInfo: [Float] { [] }

  public func setWaitingHandler(_ handler: ((Double) throws -> Void)?) {}

  public func beginStep(group: Int, continuousActions: UnsafePointer<Float>) throws {
    throw SpaceError("\(spec.id) takes actions in \(spec.action), not float vectors")
  }
}

/// Environment faults a worker counts and reports (the learner's `/stats`).
public struct EnvFaults: Sendable, Equatable {
  /// Steps that raised: the episode ended (truncated) and the environment was made again.
  public var stepErrors = 0
  /// Host processes that died and were started again.
  public var hostRestarts = 0
  /// Observations with NaN or infinity: the episode ended (truncated) and was reset.
  public var nonFiniteObservations = 0
  public init(stepErrors: Int = 0, hostRestarts: Int = 0, nonFiniteObservations: Int = 0) {
    self.stepErrors = stepErrors
    self.hostRestarts = hostRestarts
    self.nonFiniteObservations = nonFiniteObservations
  }
}

/// K copies of a Swift ``Environment`` stepped together, with automatic reset, in
/// one group (stepping is synchronous: ``beginStep(group:actions:)`` does it).
/// Observations `[K, F]` are contiguous rows.
public final class VectorEnvironment: VectorEnv {
  public let spec: EnvSpec
  public let count: Int
  public let observationSize: Int
  public let actionDims: Int
  /// Whether actions are float vectors (a Box action space).
  public let continuous: Bool
  public var groups: [Range<Int>] { [0..<count] }
  public private(set) var observations: [Float]
  public private(set) var finalObservations: [Float]
  public private(set) var outcomes: [StepOutcome]
  public var faults: EnvFaults { EnvFaults() }
  private var envs: [any Environment]
  private let seed: UInt64

  /// K copies from `make(i)`, seeded `seed + i` at ``reset()``; `id` and `config`
  /// name them in the spec.
  public init(count: Int, seed: UInt64, id: String = "", config: String = "{}", make: (Int) -> any Environment) {
    precondition(count >= 1, "VectorEnvironment needs at least one copy")
    self.count = count
    self.seed = seed
    envs = (0..<count).map(make)
    spec = EnvSpec(id: id, config: config, observation: envs[0].observationSpace, action: envs[0].actionSpace)
    observationSize = envs[0].observationSpace.flatSize
    continuous = (try? envs[0].actionSpace.continuousAction()) != nil
    actionDims = continuous ? envs[0].actionSpace.flatSize : 1
    observations = [Float](repeating: 0, count: count * observationSize)
    finalObservations = observations
    outcomes = [StepOutcome](repeating: StepOutcome(reward: 0, terminated: false, truncated: false), count: count)
  }

  public func reset() {
    let f = observationSize
    observations.withUnsafeMutableBufferPointer { obs in
      for i in 0..<count { envs[i].reset(seed: seed &+ UInt64(i), observation: obs.baseAddress.unsafelyUnwrapped + i * f) }
    }
  }

  public func beginStep(group: Int, actions: UnsafePointer<Int32>) {
    precondition(!continuous, "\(spec.id) takes float actions")
    step(actions)
  }

  public func beginStep(group: Int, continuousActions: UnsafePointer<Float>) {
    precondition(continuous, "\(spec.id) takes discrete actions")
    let d = actionDims
    stepEach { i, o in envs[i].step(continuous: continuousActions + i * d, observation: o) }
  }
  public func finishStep(group: Int) {}
  public func close() {}

  /// Steps copy i with `actions[i]`; copies whose episode ended start a new one.
  public func step(_ actions: UnsafePointer<Int32>) {
    stepEach { i, o in envs[i].step(Int(actions[i]), observation: o) }
  }

  /// Steps every copy with `take(i, observation row)`; copies whose episode ended start a new one.
  private func stepEach(_ take: (Int, UnsafeMutablePointer<Float>) -> StepOutcome) {
    let f = observationSize
    observations.withUnsafeMutableBufferPointer { obsBuf in
      finalObservations.withUnsafeMutableBufferPointer { finBuf in
        let obs = obsBuf.baseAddress.unsafelyUnwrapped
        let fin = finBuf.baseAddress.unsafelyUnwrapped
        for i in 0..<count {
          let o = obs + i * f
          let outcome = take(i, o)
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
