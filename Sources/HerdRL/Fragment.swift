/// How a fragment ends, which fixes what it bootstraps from.
public enum FragmentEnd: UInt8, Sendable, Codable, CaseIterable {
  /// The episode reached a terminal state: bootstrap value 0.
  case terminated = 0
  /// The episode hit its time limit: bootstrap with V(o_n) of the same episode.
  case truncated = 1
  /// The fragment reached T steps mid-episode: bootstrap with V(o_n).
  case cut = 2
}

/// At most T consecutive steps of one episode of one env: the unit workers send.
///
/// Shapes (n = ``length`` <= T, F observation floats, A actions, S state floats):
/// `observations [(n + 1) * F]` (index n holds the bootstrap observation o_n),
/// `actions [n]`, `rewards [n]`, `behaviourLogits [n * A]`, `stateIn [S]`
/// (h then c, zeros at an episode start). It never crosses an episode boundary.
///
/// With a Box action space (a Gaussian policy, ``ActionDistribution``) the actions
/// are `actionValues [n * D]`, the unclipped samples, and `actions` holds n zeros;
/// `behaviourLogits` holds each step's `[mean | log std]` (A = 2D), and
/// `prevActionValues [D]` the action before the first step as sampled (empty:
/// zeros, as at an episode start).
public struct Fragment: Sendable, Equatable {
  /// Recurrent state before the first step (S floats; empty without a core).
  public var stateIn: [Float]
  /// Observations o_0 ... o_n, the last one the bootstrap observation (bytes for
  /// uint8 image spaces, ``ObservationData``).
  public var observations: ObservationData
  /// Actions a_0 ... a_{n-1} (zeros for Box actions).
  public var actions: [Int32]
  /// Box actions `[n, D]` as sampled (before the environment's clipping); empty
  /// for discrete actions.
  public var actionValues: [Float]
  /// Rewards r_0 ... r_{n-1} (as the environment gave them).
  public var rewards: [Float]
  /// Logits of the behaviour policy at each step.
  public var behaviourLogits: [Float]
  /// The action before the first step (0 at an episode start).
  public var prevAction: Int32
  /// Box actions: the action before the first step `[D]`, as sampled (empty, or
  /// zeros, at an episode start; the network clips it to the bounds as an input).
  public var prevActionValues: [Float]
  /// The reward before the first step (0 at an episode start).
  public var prevReward: Float
  /// How it ends.
  public var end: FragmentEnd
  /// Policy version that acted at its first step.
  public var policyVersion: Int
  /// Worker that produced it.
  public var workerID: Int
  /// The worker's random run id (a restarted worker has a new one).
  public var runID: UInt64
  /// Env index within the worker.
  public var envIndex: Int
  /// Episode id, unique within the worker's run.
  public var episodeID: UInt64
  /// Index of the first step within its episode.
  public var indexInEpisode: Int

  /// Number of steps n.
  public var length: Int { actions.count }

  /// Bytes its arrays hold (what it costs in a queue).
  public var storageBytes: Int {
    let floats =
      stateIn.count + actions.count + actionValues.count + rewards.count + behaviourLogits.count
      + prevActionValues.count
    return observations.storageBytes + 4 * floats
  }

  /// A fragment from its parts (decoders and tools; workers use ``FragmentBuilder``).
  public init(
    stateIn: [Float], observations: ObservationData, actions: [Int32], rewards: [Float], behaviourLogits: [Float],
    prevAction: Int32, prevReward: Float, end: FragmentEnd, policyVersion: Int, workerID: Int, runID: UInt64,
    envIndex: Int, episodeID: UInt64, indexInEpisode: Int, actionValues: [Float] = [], prevActionValues: [Float] = []
  ) {
    self.stateIn = stateIn
    self.actionValues = actionValues
    self.prevActionValues = prevActionValues
    self.observations = observations
    self.actions = actions
    self.rewards = rewards
    self.behaviourLogits = behaviourLogits
    self.prevAction = prevAction
    self.prevReward = prevReward
    self.end = end
    self.policyVersion = policyVersion
    self.workerID = workerID
    self.runID = runID
    self.envIndex = envIndex
    self.episodeID = episodeID
    self.indexInEpisode = indexInEpisode
  }

  /// A fragment with float observations.
  public init(
    stateIn: [Float], observations: [Float], actions: [Int32], rewards: [Float], behaviourLogits: [Float],
    prevAction: Int32, prevReward: Float, end: FragmentEnd, policyVersion: Int, workerID: Int, runID: UInt64,
    envIndex: Int, episodeID: UInt64, indexInEpisode: Int, actionValues: [Float] = [], prevActionValues: [Float] = []
  ) {
    self.init(
      stateIn: stateIn, observations: ObservationData(observations), actions: actions, rewards: rewards,
      behaviourLogits: behaviourLogits, prevAction: prevAction, prevReward: prevReward, end: end,
      policyVersion: policyVersion, workerID: workerID, runID: runID, envIndex: envIndex, episodeID: episodeID,
      indexInEpisode: indexInEpisode, actionValues: actionValues, prevActionValues: prevActionValues)
  }
}

/// Records one env's steps into fragments of at most T steps.
public struct FragmentBuilder: Sendable {
  /// T.
  public let maxLength: Int
  let observationSize: Int
  let actionCount: Int
  let actionWidth: Int
  let observationBytes: Bool
  var current: Fragment?

  /// A builder for fragments of at most `maxLength` steps; `actionWidth` D > 0 for
  /// Box actions of D floats. With `observationBytes` (a uint8 image space) the
  /// observations are kept as bytes.
  public init(
    maxLength: Int, observationSize: Int, actionCount: Int, actionWidth: Int = 0, observationBytes: Bool = false
  ) {
    self.observationBytes = observationBytes
    self.maxLength = maxLength
    self.observationSize = observationSize
    self.actionCount = actionCount
    self.actionWidth = actionWidth
  }

  /// Steps recorded in the open fragment.
  public var count: Int { current?.length ?? 0 }

  /// Records one step: the observation acted on, the action, its logits and the
  /// reward it got. `origin` is asked only when this step opens a fragment.
  /// Box actions come as `actionValues[D]` (with `action` 0).
  public mutating func record(
    observation: UnsafePointer<Float>, action: Int32, actionValues: UnsafePointer<Float>? = nil,
    logits: UnsafePointer<Float>, reward: Float, origin: () -> FragmentOrigin
  ) {
    if current == nil {
      let o = origin()
      var f = Fragment(
        stateIn: o.stateIn, observations: ObservationData(empty: observationBytes), actions: [], rewards: [], behaviourLogits: [],
        prevAction: o.prevAction, prevReward: o.prevReward, end: .cut, policyVersion: o.policyVersion,
        workerID: o.workerID, runID: o.runID, envIndex: o.envIndex, episodeID: o.episodeID,
        indexInEpisode: o.indexInEpisode, prevActionValues: o.prevActionValues)
      f.observations.reserveCapacity((maxLength + 1) * observationSize)
      f.actions.reserveCapacity(maxLength)
      f.rewards.reserveCapacity(maxLength)
      f.behaviourLogits.reserveCapacity(maxLength * actionCount)
      f.actionValues.reserveCapacity(maxLength * actionWidth)
      current = f
    }
    if let actionValues, actionWidth > 0 {
      current?.actionValues.append(contentsOf: UnsafeBufferPointer(start: actionValues, count: actionWidth))
    }
    current?.observations.append(observation, count: observationSize)
    current?.actions.append(action)
    current?.rewards.append(reward)
    current?.behaviourLogits.append(contentsOf: UnsafeBufferPointer(start: logits, count: actionCount))
  }

  /// Closes the open fragment with its bootstrap observation and end, and returns it.
  public mutating func finish(bootstrap: UnsafePointer<Float>, end: FragmentEnd) -> Fragment? {
    guard var f = current else { return nil }
    f.observations.append(bootstrap, count: observationSize)
    f.end = end
    current = nil
    return f
  }
}

/// Where a fragment starts: who produced it and the inputs before its first step.
public struct FragmentOrigin: Sendable {
  public var stateIn: [Float]
  public var prevAction: Int32
  /// Box actions: the previous action `[D]` as sampled (empty: zeros).
  public var prevActionValues: [Float]
  public var prevReward: Float
  public var policyVersion: Int
  public var workerID: Int
  public var runID: UInt64
  public var envIndex: Int
  public var episodeID: UInt64
  public var indexInEpisode: Int

  public init(
    stateIn: [Float], prevAction: Int32, prevReward: Float, policyVersion: Int, workerID: Int, runID: UInt64,
    envIndex: Int, episodeID: UInt64, indexInEpisode: Int, prevActionValues: [Float] = []
  ) {
    self.stateIn = stateIn
    self.prevAction = prevAction
    self.prevActionValues = prevActionValues
    self.prevReward = prevReward
    self.policyVersion = policyVersion
    self.workerID = workerID
    self.runID = runID
    self.envIndex = envIndex
    self.episodeID = episodeID
    self.indexInEpisode = indexInEpisode
  }
}
