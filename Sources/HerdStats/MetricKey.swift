/// The metric names, one set for `/stats`, `/history` and each `progress.jsonl`
/// record (cleanrl-style namespaces: `losses/pg`, `policy_lag/p95`). `/metrics`
/// spells them the Prometheus way (`herd_loss{term="pg"}`).
public enum MetricKey {
  public static let wallSeconds = "run/wall_seconds"
  public static let envStepsSampled = "env_steps/sampled"
  public static let envStepsTrained = "env_steps/trained"
  public static let envStepsReused = "env_steps/reused"
  public static let sampleReuse = "learner/sample_reuse"
  public static let updates = "learner/updates"
  public static let policyVersion = "learner/policy_version"
  public static let episodes = "episodes/total"
  public static let episodesWindow = "episodes/window"
  public static let returnMean = "episode_return/mean"
  public static let returnMin = "episode_return/min"
  public static let returnMax = "episode_return/max"
  public static let lengthMean = "episode_length/mean"
  public static let sampledPerSecond = "throughput/sampled_per_second"
  public static let trainedPerSecond = "throughput/trained_per_second"
  public static let lossPG = "losses/pg"
  public static let lossBaseline = "losses/baseline"
  public static let lossEntropy = "losses/entropy"
  public static let entropy = "learner/entropy"
  public static let gradNorm = "learner/grad_norm"
  public static let learningRate = "learner/lr"
  public static let entropyCoeff = "learner/entropy_coeff"
  public static let meanRho = "learner/mean_rho"
  public static let clippedFraction = "learner/clipped_fraction"
  public static let skippedUpdates = "learner/skipped_updates"
  public static let lagP50 = "policy_lag/p50"
  public static let lagP95 = "policy_lag/p95"
  public static let lagMax = "policy_lag/max"
  public static let queueDepth = "queue/depth"
  public static let queueBytes = "queue/bytes"
  public static let replayFragments = "replay/fragments"
  public static let replayBytes = "replay/bytes"
  public static let droppedStale = "dropped/stale_policy"
  public static let diskError = "run/disk_error"
  /// An `episode_info_keys` entry's mean (`progress.jsonl` and TensorBoard; `/stats`
  /// has them under `episode_info`).
  public static func episodeInfo(_ key: String) -> String { "episode_info/\(key)" }
  /// The latest evaluation's figures (`evaluation_interval_env_steps`): in each
  /// `progress.jsonl` record after it, and in TensorBoard once per evaluation, at
  /// the env steps of the weights it evaluated.
  public static let evaluationReturnMean = "evaluation/return_mean"
  public static let evaluationReturnStd = "evaluation/return_std"
  public static let evaluationReturnMin = "evaluation/return_min"
  public static let evaluationReturnMax = "evaluation/return_max"
  public static let evaluationLengthMean = "evaluation/length_mean"
  public static let evaluationEnvSteps = "evaluation/env_steps"
  public static let evaluationPolicyVersion = "evaluation/policy_version"
  public static let evaluationEpisodes = "evaluation/episodes"
  public static let evaluationSeconds = "evaluation/seconds"
  public static let evaluations = "evaluation/count"
  public static let evaluationGreedy = "evaluation/greedy"
  /// The prefix of every evaluation key.
  public static let evaluationPrefix = "evaluation/"
  /// An `episode_info_keys` entry's mean over an evaluation's episodes.
  public static func evaluationInfo(_ key: String) -> String { "evaluation/info/\(key)" }
}
