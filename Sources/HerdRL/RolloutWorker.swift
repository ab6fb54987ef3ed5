import HerdEnvs
import HerdMath
import HerdNN

/// One finished episode, as a worker reports it.
public struct EpisodeRecord: Sendable, Equatable {
  public var workerID: Int
  public var envReturn: Float
  public var length: Int

  public init(workerID: Int, envReturn: Float, length: Int) {
    self.workerID = workerID
    self.envReturn = envReturn
    self.length = length
  }
}

/// The rollout side: K environments stepped as one batch with a recurrent state
/// per env, recording fragments as it goes (DESIGN.md "Rollout").
///
/// Each step: act (one batched forward for the K observations with each env's
/// carried state, sample actions) -> step the envs -> record -> send finished
/// fragments. An env whose episode ended starts the next step from zero state and
/// zero previous action/reward.
public final class RolloutWorker {
  public let network: PolicyNetwork
  public let workerID: Int
  /// Random per run: a restarted worker has a new one.
  public let runID: UInt64
  public let envs: VectorEnvironment
  let parameters: Parameters
  /// Policy version of the weights in use.
  public private(set) var policyVersion = 0
  let maxLength: Int
  var rng: SeededGenerator
  let ws = PolicyWorkspace()
  var h: [Float]
  var c: [Float]
  var prevActions: [Int32]
  var prevRewards: [Float]
  var actions: [Int32]
  var builders: [FragmentBuilder]
  var episodeIDs: [UInt64]
  var stepInEpisode: [Int]
  var episodeReturns: [Float]
  var openingState: [[Float]]
  /// The worker's observation filter (see ``ObservationFilter``).
  public private(set) var filter: ObservationFilter
  var filtered: [Float]
  var filteredBootstrap: [Float]
  var nextEpisodeID: UInt64 = 0
  /// Env steps taken.
  public private(set) var envSteps = 0

  /// A worker for `config` with env seeds `seed * 1000 + i` and its own sampling RNG;
  /// `runID` identifies the process session (drawn from the seed when nil).
  public init(config: TrainingConfig, network: PolicyNetwork, workerID: Int, seed: UInt64, runID: UInt64? = nil) throws {
    self.network = network
    self.workerID = workerID
    var rng = SeededGenerator(seed: seed &* 7919 &+ UInt64(workerID))
    self.runID = runID ?? rng.next()
    self.rng = rng
    let k = config.num_envs_per_worker
    envs = VectorEnvironment(
      count: k, seed: seed &* 1000 &+ UInt64(workerID) &* 100_000, make: try EnvironmentFactory.maker(config))
    parameters = Parameters(layout: network.layout)
    maxLength = config.max_seq_len
    let hs = network.core?.hiddenSize ?? 0
    h = [Float](repeating: 0, count: k * hs)
    c = h
    prevActions = [Int32](repeating: 0, count: k)
    prevRewards = [Float](repeating: 0, count: k)
    actions = prevActions
    builders = (0..<k).map { _ in
      FragmentBuilder(
        maxLength: config.max_seq_len, observationSize: network.observationSize, actionCount: network.actionCount)
    }
    episodeIDs = (0..<k).map { UInt64($0) }
    nextEpisodeID = UInt64(k)
    stepInEpisode = [Int](repeating: 0, count: k)
    episodeReturns = [Float](repeating: 0, count: k)
    openingState = [[Float]](repeating: [], count: k)
    filter = ObservationFilter(kind: config.observation_filter, features: network.observationSize)
    filtered = [Float](repeating: 0, count: k * network.observationSize)
    filteredBootstrap = [Float](repeating: 0, count: network.observationSize)
    envs.reset()
  }

  /// Replaces the weights (between steps) with policy `version`.
  public func setWeights(_ blob: [Float], version: Int) throws {
    try parameters.load(flatValues: blob)
    policyVersion = version
  }

  /// One step of all K envs; finished fragments go to `emit`, finished episodes to `episode`.
  public func step(emit: (Fragment) -> Void, episode: (EpisodeRecord) -> Void) {
    let k = envs.count
    let f = network.observationSize
    let a = network.actionCount
    let hs = network.core?.hiddenSize ?? 0
    // The state a fragment starts from is the state before its first step: keep a
    // copy for envs about to open one (the forward updates the state in place).
    let stateSize = network.stateSize
    let cells = network.core?.stateCount ?? 0
    for i in 0..<k where builders[i].count == 0 {
      openingState[i] = Array(h[(i * hs)..<((i + 1) * hs)]) + (cells == 2 ? Array(c[(i * hs)..<((i + 1) * hs)]) : [])
    }
    // Filter the observations (the policy and the fragments see filtered ones).
    envs.observations.withPointer { raw in
      filter.update(raw, rows: k)
      filtered.withMutablePointer { filter.apply(raw, rows: k, into: $0) }
    }
    // Act: one batched forward with each env's carried state, then sample.
    let obsBefore = filtered
    obsBefore.withPointer { obs in
      prevActions.withUnsafeBufferPointer { pa in
        prevRewards.withPointer { pr in
          h.withMutablePointer { ph in
            c.withMutablePointer { pc in
              network.step(
                parameters, obs: obs, prevActions: pa.baseAddress.unsafelyUnwrapped, prevRewards: pr, rows: k, h: ph,
                c: pc, ws: ws)
            }
          }
        }
      }
    }
    let logits = ws.logits.pointer
    for i in 0..<k { actions[i] = Int32(sampleCategorical(logits + i * a, count: a, rng: &rng)) }
    // Step the envs (auto-reset).
    actions.withUnsafeBufferPointer { envs.step($0.baseAddress.unsafelyUnwrapped) }
    envSteps += k
    // Record; close fragments at episode ends and at T steps.
    obsBefore.withPointer { obs in
      for i in 0..<k {
        let outcome = envs.outcomes[i]
        builders[i].record(observation: obs + i * f, action: actions[i], logits: logits + i * a, reward: outcome.reward)
        {
          FragmentOrigin(
            stateIn: openingState[i].count == stateSize ? openingState[i] : [Float](repeating: 0, count: stateSize),
            prevAction: prevActions[i], prevReward: prevRewards[i], policyVersion: policyVersion, workerID: workerID,
            runID: runID, envIndex: i, episodeID: episodeIDs[i], indexInEpisode: stepInEpisode[i])
        }
        stepInEpisode[i] += 1
        episodeReturns[i] += outcome.reward
        if outcome.done {
          envs.finalObservations.withPointer { fin in
            filteredBootstrap.withMutablePointer { filter.apply(fin + i * f, rows: 1, into: $0) }
          }
          filteredBootstrap.withPointer { b in
            if let fr = builders[i].finish(bootstrap: b, end: outcome.terminated ? .terminated : .truncated) {
              emit(fr)
            }
          }
          episode(EpisodeRecord(workerID: workerID, envReturn: episodeReturns[i], length: stepInEpisode[i]))
          // New episode: zero state, zero previous action and reward.
          for j in 0..<hs {
            h[i * hs + j] = 0
            c[i * hs + j] = 0
          }
          prevActions[i] = 0
          prevRewards[i] = 0
          episodeReturns[i] = 0
          stepInEpisode[i] = 0
          episodeIDs[i] = nextEpisodeID
          nextEpisodeID += 1
        } else {
          prevActions[i] = actions[i]
          prevRewards[i] = outcome.reward
          if builders[i].count == maxLength {
            envs.observations.withPointer { next in
              filteredBootstrap.withMutablePointer { filter.apply(next + i * f, rows: 1, into: $0) }
            }
            filteredBootstrap.withPointer { b in
              if let fr = builders[i].finish(bootstrap: b, end: .cut) { emit(fr) }
            }
          }
        }
      }
    }
  }
}

/// Samples an index from softmax(`logits[count]`) with `rng`.
@inlinable
public func sampleCategorical<G: RandomNumberGenerator>(_ logits: UnsafePointer<Float>, count: Int, rng: inout G) -> Int
{
  var m = -Float.infinity
  for j in 0..<count { m = max(m, logits[j]) }
  var total: Float = 0
  for j in 0..<count { total += expf(logits[j] - m) }
  var u = rng.nextUnitFloat() * total
  for j in 0..<count {
    u -= expf(logits[j] - m)
    if u < 0 { return j }
  }
  return count - 1
}

#if canImport(Glibc)
  import Glibc
#endif
