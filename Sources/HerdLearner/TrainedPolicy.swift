import Foundation
import HerdEnvs
import HerdNN
import HerdRL

/// A trained policy read back from a checkpoint: the config it was trained with,
/// its environment's spec, its network and its weights (the observation filter's
/// statistics included).
public struct TrainedPolicy: Sendable {
  public var config: TrainingConfig
  public var spec: EnvSpec
  public var network: PolicyNetwork
  public var weights: [Float]
  public var policyVersion: Int
  /// The env steps of the run when the file was written (nil when it does not say).
  public var envSteps: Int? = nil
  /// The checkpoint file read.
  public var source: String

  /// Reads `path`: a run directory (its `checkpoint.herd`) or a checkpoint file.
  /// The config comes from the checkpoint's metadata; the spec from `env_spec.json`
  /// beside it, else from the environment itself (`host` starts an env host for a
  /// gym:ID environment).
  ///
  /// - Throws: ``RunDirectoryError`` naming what is missing or does not fit.
  public static func load(_ path: String, host: EnvHostSettings = EnvHostSettings()) throws -> TrainedPolicy {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      throw RunDirectoryError("\(path) does not exist: give a run directory or its checkpoint.herd")
    }
    let file = isDirectory.boolValue ? (path as NSString).appendingPathComponent("checkpoint.herd") : path
    guard FileManager.default.fileExists(atPath: file) else {
      let best = (path as NSString).appendingPathComponent("best.herd")
      let instead =
        isDirectory.boolValue && FileManager.default.fileExists(atPath: best)
        ? "; its best policy so far is there: give \(best)" : ""
      throw RunDirectoryError("\(path) has no checkpoint.herd (has the run written its first checkpoint?)\(instead)")
    }
    let archive = try TensorArchive.read(from: file)
    guard let text = archive.metadata[CheckpointKey.config], !text.isEmpty,
      let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
    else { throw RunDirectoryError("\(file) holds no training config in its metadata: not a Herd checkpoint") }
    // The checkpoint holds every key its Herd knew. A key it lacks is newer than the
    // run, so the run behaved as that key's library default, not as whatever the
    // environment's tuned defaults say today (the Pendulums' vf_share_layers).
    var base = TrainingConfig()
    base.env = object["env"] as? String ?? base.env
    let config = try TrainingConfig.decode(json: Data(text.utf8), over: base, source: file)
    // The run's env_spec.json: beside the file, or for a milestone
    // (RUN/milestones/N.herd) in the run folder above it.
    let folder = (file as NSString).deletingLastPathComponent
    let specFile = [folder, (folder as NSString).deletingLastPathComponent]
      .map { ($0 as NSString).appendingPathComponent("env_spec.json") }
      .prefix((folder as NSString).lastPathComponent == RunDirectory.milestoneFolder ? 2 : 1)
      .first { FileManager.default.fileExists(atPath: $0) }
    let spec: EnvSpec
    if let specFile, let json = try? String(contentsOfFile: specFile, encoding: .utf8) {
      spec = try EnvSpec(json: json.trimmingCharacters(in: .whitespacesAndNewlines))
    } else {
      spec = try EnvironmentFactory.spec(config, host: host)
    }
    let network = try PolicyNetwork(config: config, spec: spec)
    let parameters = Parameters(layout: network.layout)
    do {
      try parameters.restore(from: archive, source: file)
    } catch {
      throw RunDirectoryError(
        "\(file) does not fit the model its config and environment spec (\(spec.observation) -> \(spec.action)) describe: \(error)"
      )
    }
    return TrainedPolicy(
      config: config, spec: spec, network: network, weights: parameters.flatValues,
      policyVersion: Int(archive.metadata[CheckpointKey.policyVersion] ?? "") ?? 0,
      envSteps: archive.metadata[CheckpointKey.envSteps].flatMap { Int($0) }, source: file)
  }
}

/// A trained policy ready to act from code, one step at a time, for `rows`
/// environments at once: the caller holds the recurrent state and passes it in and
/// out, as Herd's workers do.
///
/// ```swift
/// let policy = try Policy(TrainedPolicy.load("runs/demo"))
/// var state = policy.initialState(rows: 1)          // and again at every episode start
/// let step = policy.step(observations: obs, state: &state, prevActions: [0], prevRewards: [0])
/// let action = policy.greedy(step.logits)[0]
/// ```
/// It computes the same bits as the rollout workers (``PolicyNetwork/step``).
public final class Policy {
  public let trained: TrainedPolicy
  private let parameters: Parameters
  private let workspace = PolicyWorkspace()

  /// Per-row recurrent state: `h` and `c` `[rows, W]` (W = `network.stateWidth`: H, or
  /// 2H as `[policy ; value]` with the value's own core; `c` unused by a GRU, both
  /// empty without a core).
  public struct State: Sendable, Equatable {
    public var rows: Int
    public var h: [Float]
    public var c: [Float]

    /// Zeroes row `row` (an episode starts there).
    public mutating func reset(row: Int) {
      let hs = h.count / max(1, rows)
      for k in 0..<hs {
        h[row * hs + k] = 0
        c[row * hs + k] = 0
      }
    }
  }

  /// One step's output: logits `[rows, A]` (a Gaussian's `[mean | log std]`) and values `[rows]`.
  public struct Output: Sendable {
    public var logits: [Float]
    public var values: [Float]
  }

  public init(_ trained: TrainedPolicy) throws {
    self.trained = trained
    parameters = Parameters(layout: trained.network.layout)
    try parameters.load(flatValues: trained.weights)
  }

  public var network: PolicyNetwork { trained.network }

  /// The state at an episode start (zeros) for `rows` environments.
  public func initialState(rows: Int = 1) -> State {
    let n = rows * network.stateWidth
    return State(rows: rows, h: [Float](repeating: 0, count: n), c: [Float](repeating: 0, count: n))
  }

  /// One step: `observations` `[rows, F]` raw (the policy filters them),
  /// `prevActions` and `prevRewards` `[rows]` (0 at episode starts); `state` is updated.
  /// A Box policy trained with the previous action reads `prevActionValues`
  /// `[rows, D]` instead of `prevActions`: the actions the environments took, or
  /// as sampled (the policy clips them to the bounds; zeros at episode starts).
  public func step(
    observations: [Float], state: inout State, prevActions: [Int32], prevActionValues: [Float] = [],
    prevRewards: [Float]
  ) -> Output {
    let rows = state.rows
    let net = network
    precondition(observations.count == rows * net.observationSize, "observations: \(observations.count) floats for \(rows) rows of \(net.observationSize)")
    precondition(prevActions.count == rows && prevRewards.count == rows, "one previous action and reward per row")
    let d = net.usePrevAction ? net.distribution.actionWidth : 0
    precondition(
      d == 0 || prevActionValues.count == rows * d,
      "this policy reads the previous Box action: prevActionValues needs \(rows) x \(d) floats, "
        + "not \(prevActionValues.count)")
    var scratchH: Float = 0
    var scratchC: Float = 0
    prevActionValues.withUnsafeBufferPointer { pav in
      let values = d > 0 ? pav.baseAddress : nil
      if state.h.isEmpty {
        net.step(
          parameters, obs: observations, prevActions: prevActions, prevActionValues: values, prevRewards: prevRewards,
          rows: rows, h: &scratchH, c: &scratchC, ws: workspace)
      } else {
        net.step(
          parameters, obs: observations, prevActions: prevActions, prevActionValues: values, prevRewards: prevRewards,
          rows: rows, h: &state.h, c: &state.c, ws: workspace)
      }
    }
    return Output(
      logits: Array(UnsafeBufferPointer(start: workspace.logits.pointer, count: rows * net.actionCount)),
      values: Array(UnsafeBufferPointer(start: workspace.values.pointer, count: rows)))
  }

  /// A Gaussian policy's (Box actions) greedy actions: each row's mean `[rows, D]`,
  /// to be clipped to the action space's bounds as the workers do.
  public func means(_ output: Output) -> [Float] {
    guard case .gaussian(let d, _) = network.distribution else {
      preconditionFailure("means(_:) is for Gaussian policies; this one is \(network.distribution)")
    }
    let a = network.actionCount
    return (0..<(output.logits.count / a)).flatMap { r in output.logits[(r * a)..<(r * a + d)] }
  }

  /// Each row's action with every head's most likely component (categorical policies).
  public func greedy(_ logits: [Float]) -> [Int32] {
    precondition(!network.distribution.isContinuous, "greedy(_:) is for categorical policies: use means(_:)")
    let heads = network.heads
    let a = network.actionCount
    return logits.withUnsafeBufferPointer { l in
      (0..<(l.count / a)).map { r in
        Int32((0..<heads.count).reduce(0) { $0 + heads.mostLikely(l.baseAddress! + r * a, head: $1) * heads.strides[$1] })
      }
    }
  }
}
