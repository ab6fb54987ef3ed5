import HerdMath
import HerdNN

/// What one learner step reports.
public struct LearnerStepStats: Sendable {
  public var terms: ImpalaLoss.Terms
  /// Global gradient norm before clipping.
  public var gradNorm: Float
  public var learningRate: Float
  /// Timesteps trained in this step (valid steps).
  public var timesteps: Int
  /// Policy lag of each fragment: learner version minus the fragment's.
  public var lags: [Int]
  /// The update was skipped because the gradient was not finite.
  public var skipped: Bool
}

/// The learner: owns the master parameters and the optimiser, and turns batches of
/// fragments into updates.
public final class Learner {
  public let config: TrainingConfig
  public let network: PolicyNetwork
  public let parameters: Parameters
  public let optimizer: Optimizer
  /// Policy version: the number of updates applied.
  public private(set) var version = 0
  /// Env steps trained so far (drives the learning-rate schedule).
  public var trainedSteps = 0
  let workspace = TrainingWorkspace()
  let settings: ImpalaLoss.Settings
  let schedule: LinearDecay

  /// A learner with freshly initialised parameters (PyTorch's defaults) from `config.seed`.
  public init(config: TrainingConfig, network: PolicyNetwork) {
    self.config = config
    self.network = network
    var rng = SeededGenerator(seed: config.seed)
    parameters = Parameters(layout: network.layout, rng: &rng)
    optimizer =
      config.optimizer == "adam"
      ? Adam(count: network.layout.count, beta1: config.adam_beta1, beta2: config.adam_beta2, eps: config.adam_epsilon)
      : RMSProp(count: network.layout.count, alpha: config.rmsprop_alpha, eps: config.rmsprop_epsilon, momentum: config.momentum)
    settings = ImpalaLoss.Settings(config)
    schedule = LinearDecay(initial: config.lr, final: config.lr_final, totalSteps: config.lr_decay_env_steps)
  }

  /// Sets the version after restoring a checkpoint.
  public func restore(version: Int, trainedSteps: Int) {
    self.version = version
    self.trainedSteps = trainedSteps
  }

  /// One update: batch -> forward -> V-trace -> loss -> backward -> clip -> optimiser.
  ///
  /// - Throws: ``BatchError`` for fragments that do not fit the model.
  public func step(_ fragments: [Fragment]) throws -> LearnerStepStats {
    // Batch: [N, T+1, F] and friends.
    let batch = try Batch(
      fragments: fragments, maxLength: config.max_seq_len, observationSize: network.observationSize,
      actionCount: network.actionCount, stateSize: network.stateSize)
    // Forward over every fragment from its stored state.
    try network.forward(parameters, batch: batch, ws: workspace)
    // V-trace targets (constants), then the loss and its gradient at the heads.
    let targets = ImpalaLoss.targets(batch: batch, ws: workspace, settings: settings)
    let terms = ImpalaLoss.evaluate(batch: batch, ws: workspace, targets: targets, settings: settings)
    // Backward through heads, core (BPTT within fragments) and encoder.
    parameters.zeroGrads()
    network.backward(parameters, ws: workspace)
    // Clip; a non-finite gradient skips the update.
    let lr = schedule.rate(at: trainedSteps)
    var stats = LearnerStepStats(
      terms: terms, gradNorm: 0, learningRate: lr, timesteps: batch.validSteps,
      lags: batch.policyVersions.map { version - $0 }, skipped: false)
    do {
      stats.gradNorm = try GradientClipping.clipGlobalNorm(parameters.grads, maxNorm: config.grad_clip)
    } catch {
      stats.skipped = true
      stats.gradNorm = .nan
      return stats
    }
    // Optimiser: a new policy version.
    optimizer.step(parameters, lr: lr)
    version += 1
    trainedSteps += batch.validSteps
    return stats
  }
}
