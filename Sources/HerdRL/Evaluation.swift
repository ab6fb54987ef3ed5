import Foundation
import HerdEnvs

/// Runs a trained policy for a number of episodes and reports their returns and
/// lengths (`herd eval`).
///
/// K environments step together with the rollout worker's own code, so the policy
/// acts exactly as it did in training: each env carries its recurrent state and
/// previous action and reward through its episode, and they reset to zero when an
/// episode starts. To not favour short episodes, env i runs a fixed quota of
/// episodes (N / K, the first N mod K envs one more) and its later ones are ignored.
public struct Evaluation: Sendable {
  /// Returns and lengths, in the order the episodes ended.
  public var returns: [Float] = []
  public var lengths: [Int] = []
  /// The env each episode ran in.
  public var envIndices: [Int] = []
  /// Each episode's values of the config's `episode_info_keys` (NaN for a key it
  /// lacked; empty rows without the keys).
  public var info: [[Float]] = []
  /// Env steps taken (including the ignored episodes' steps).
  public var envSteps = 0
  /// Whether every asked-for episode finished (false when stopped early).
  public var complete = false

  /// Statistics of `xs`: mean, population standard deviation, min, max.
  public struct Summary: Sendable, Equatable, Codable {
    public var mean: Double
    public var std: Double
    public var min: Double
    public var max: Double

    public init(mean: Double, std: Double, min: Double, max: Double) {
      self.mean = mean
      self.std = std
      self.min = min
      self.max = max
    }

    /// The statistics of `xs`.
    public init(_ xs: [Double]) {
      let n = Double(Swift.max(xs.count, 1))
      mean = xs.reduce(0, +) / n
      let m = mean
      std = (xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / n).squareRoot()
      min = xs.min() ?? .nan
      max = xs.max() ?? .nan
    }
  }

  public var returnSummary: Summary { Summary(returns.map(Double.init)) }
  public var lengthSummary: Summary { Summary(lengths.map(Double.init)) }

  /// The statistics of info key `k` (an index into `episode_info_keys`) over the
  /// episodes that had it, and how many did.
  public func infoSummary(_ k: Int) -> (summary: Summary, episodes: Int) {
    let xs = info.compactMap { k < $0.count && $0[k].isFinite ? Double($0[k]) : nil }
    return (Summary(xs), xs.count)
  }

  /// Episodes each of `envs` environments runs for `episodes` in all.
  public static func quotas(episodes: Int, envs: Int) -> [Int] {
    (0..<envs).map { episodes / envs + ($0 < episodes % envs ? 1 : 0) }
  }

  /// Runs `weights` (a flat parameter blob of `network`) on `envs` for `episodes`
  /// episodes: greedy (each head's most likely action) or sampled with `seed`.
  /// With an `opponent` (weights of `opponentNetwork`, or of `network` when nil)
  /// in a game of several agents, it plays every seat but one (``RolloutWorker``).
  /// `progress` hears each counted episode; `stop` ends the run early.
  public static func run(
    config: TrainingConfig, network: PolicyNetwork, weights: [Float], envs: any VectorEnv, episodes: Int,
    greedy: Bool, seed: UInt64, opponent: [Float]? = nil, opponentNetwork: PolicyNetwork? = nil,
    stop: StopFlag? = nil, progress: (Evaluation) -> Void = { _ in }
  ) throws -> Evaluation {
    precondition(episodes >= 1)
    let worker = try RolloutWorker(
      config: config, network: network, envs: envs, workerID: 0, seed: seed, opponent: opponent,
      opponentNetwork: opponentNetwork)
    try worker.setWeights(weights, version: 0)
    worker.greedy = greedy
    // Told to stop while an env host is busy (a slow or hung environment): stop
    // without waiting for its step.
    if let stop { envs.setWaitingHandler { _ in if stop.isSet { throw StoppedWhileWaiting() } } }
    defer {
      worker.drain()
      envs.setWaitingHandler(nil)
    }
    var quota = quotas(episodes: episodes, envs: envs.count)
    var result = Evaluation()
    while result.returns.count < episodes && stop?.isSet != true {
      do {
        try worker.step(emit: { _ in }) { e in
          guard quota[e.envIndex] > 0 else { return }
          quota[e.envIndex] -= 1
          result.returns.append(e.envReturn)
          result.lengths.append(e.length)
          result.envIndices.append(e.envIndex)
          result.info.append(e.info)
          progress(result)
        }
      } catch is StoppedWhileWaiting {
        break
      }
      result.envSteps = worker.envSteps
    }
    result.complete = result.returns.count == episodes
    return result
  }
}
