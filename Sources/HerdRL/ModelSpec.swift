/// What a worker must know to build the learner's model and check what it sends:
/// sizes only, no weights. The learner builds it from its config; a worker gets it
/// in its admission (over ZeroMQ, the welcome's `ModelSpec` message).
public struct ModelSpec: Sendable, Equatable, CustomStringConvertible {
  /// Environment id.
  public var env: String
  /// F: observation features.
  public var observationSize: Int
  /// A: logits per step (the sum of the action heads).
  public var actionCount: Int
  /// The categorical heads' sizes ([A] for a Discrete action space, [1] for Box actions).
  public var actionHeads: [Int]
  /// Floats per Box action D (a Gaussian policy, A = 2D); 0 for discrete actions.
  public var actionDims: Int
  /// Recurrent state floats per sequence (2H for an LSTM, H for a GRU, 0 feed-forward).
  public var stateSize: Int
  /// T: the most steps in a fragment.
  public var maxSeqLen: Int
  /// Floats in the flat weight blob.
  public var parameterCount: Int

  public init(
    env: String, observationSize: Int, actionCount: Int, actionHeads: [Int]? = nil, stateSize: Int, maxSeqLen: Int,
    parameterCount: Int, actionDims: Int = 0
  ) {
    self.actionDims = actionDims
    self.env = env
    self.observationSize = observationSize
    self.actionCount = actionCount
    self.actionHeads = actionHeads ?? [actionCount]
    self.stateSize = stateSize
    self.maxSeqLen = maxSeqLen
    self.parameterCount = parameterCount
  }

  /// The spec of `network` trained with `config`.
  public init(config: TrainingConfig, network: PolicyNetwork) {
    self.init(
      env: config.env, observationSize: network.observationSize, actionCount: network.actionCount,
      actionHeads: network.heads.sizes, stateSize: network.stateSize, maxSeqLen: config.max_seq_len,
      parameterCount: network.layout.count, actionDims: network.distribution.actionWidth)
  }

  public var description: String {
    "\(env): F \(observationSize), A \(actionCount)\(actionDims > 0 ? " (Gaussian over \(actionDims) dims)" : "")\(actionHeads.count > 1 ? " in heads \(actionHeads)" : ""), state \(stateSize), T \(maxSeqLen), \(parameterCount) parameters"
  }
}
