import Foundation
import HerdRL

/// What `GET /stats` returns: flat, namespaced keys (`losses/pg`, `policy_lag/p95`)
/// that stay stable across versions, every key always present (`null` when there is
/// no value yet), plus `dropped` (every reason, zeros included), `endpoints` and one
/// row per worker. `herd stats` decodes the same type.
public struct StatsDocument: Codable, Sendable, Equatable {
  public var schema = 1
  public var env: String
  /// A random id of this learner process: it changes when the learner restarts.
  public var runID: String
  public var runDir: String
  /// `training`, `starting`, `stalled` or `stopped`.
  public var status: String
  /// Why the status is what it is (the /healthz reason).
  public var statusReason: String
  public var uptimeSeconds: Double
  public var policyVersion: Int
  public var updates: Int
  public var envStepsSampled: Int
  public var envStepsTrained: Int
  /// Timesteps trained again (passes after the first, the idle learner's reuse).
  public var envStepsReused = 0
  /// Bytes the fragments in the learner's queue hold.
  public var queueBytes = 0
  /// Fragments in the replay buffer, and the bytes they hold (0 without replay).
  public var replayFragments = 0
  public var replayBytes = 0
  /// (trained + reused) / trained: 1 when every sample is trained on once.
  public var sampleReuse: Double = 1
  public var sampledPerSecond: Double
  public var trainedPerSecond: Double
  public var episodes: Int
  /// Episodes in the return window (up to 100).
  public var episodesWindow: Int
  @ExplicitNull public var returnMean: Float?
  @ExplicitNull public var returnMin: Float?
  @ExplicitNull public var returnMax: Float?
  @ExplicitNull public var lengthMean: Float?
  @ExplicitNull public var lossPG: Float?
  @ExplicitNull public var lossBaseline: Float?
  @ExplicitNull public var lossEntropy: Float?
  @ExplicitNull public var entropy: Float?
  @ExplicitNull public var gradNorm: Float?
  @ExplicitNull public var learningRate: Float?
  /// The latest update's entropy bonus weight (`entropy_coeff` as decayed).
  @ExplicitNull public var entropyCoeff: Float? = nil
  @ExplicitNull public var meanRho: Float?
  /// The fraction of the latest update's steps whose policy gradient the clip zeroed.
  @ExplicitNull public var clippedFraction: Float? = nil
  public var skippedUpdates: Int
  public var lagP50: Int
  public var lagP95: Int
  public var lagMax: Int
  public var queueDepth: Int
  public var queueCapacity: Int
  @ExplicitNull public var secondsSinceFragments: Double?
  /// Seconds the trainer has run (the time axis of `/history` and `progress.jsonl`).
  public var wallSeconds: Double
  /// The last failed write to the run directory (e.g. the disk is full); null while writes succeed.
  @ExplicitNull public var diskError: String?
  public var dropped: [String: Int]
  public var endpoints: [String: String]
  public var workers: [WorkerRow]
  /// Environment faults summed over the workers' last heartbeats: steps that
  /// raised, env host processes started again, non-finite observations or rewards.
  public var envStepErrors = 0
  public var envHostRestarts = 0
  public var envNonFinite = 0
  /// The learner process's open files (descriptors: three per worker) and their
  /// limit (`RLIMIT_NOFILE`); null where /proc cannot say.
  @ExplicitNull public var openFiles: Int? = nil
  @ExplicitNull public var openFilesLimit: Int? = nil
  /// Each `episode_info_keys` entry's mean over the last 100 episodes that had it
  /// (null before one had it; empty without the keys).
  public var episodeInfo: [String: Float?] = [:]
  /// The latest evaluation of the learner's weights and the best so far by mean
  /// return (`evaluation_interval_env_steps`; null before the first), and how many
  /// have finished.
  @ExplicitNull public var evaluation: EvaluationFigures? = nil
  @ExplicitNull public var bestEvaluation: EvaluationFigures? = nil
  @ExplicitNull public var evaluations: Int? = nil
  /// The latest evaluation's mean return and the env steps of the weights it
  /// judged, as `progress.jsonl` has them (null before the first).
  @ExplicitNull public var evaluationReturnMean: Double? = nil
  @ExplicitNull public var evaluationEnvSteps: Int? = nil

  enum CodingKeys: String, CodingKey {
    case schema
    case env = "run/env"
    case runID = "run/learner_session"
    case runDir = "run/dir"
    case status = "run/status"
    case statusReason = "run/status_reason"
    case uptimeSeconds = "run/uptime_seconds"
    case policyVersion = "learner/policy_version"
    case updates = "learner/updates"
    case envStepsSampled = "env_steps/sampled"
    case envStepsTrained = "env_steps/trained"
    case envStepsReused = "env_steps/reused"
    case queueBytes = "queue/bytes"
    case replayFragments = "replay/fragments"
    case replayBytes = "replay/bytes"
    case sampleReuse = "learner/sample_reuse"
    case sampledPerSecond = "throughput/sampled_per_second"
    case trainedPerSecond = "throughput/trained_per_second"
    case episodes = "episodes/total"
    case episodesWindow = "episodes/window"
    case returnMean = "episode_return/mean"
    case returnMin = "episode_return/min"
    case returnMax = "episode_return/max"
    case lengthMean = "episode_length/mean"
    case lossPG = "losses/pg"
    case lossBaseline = "losses/baseline"
    case lossEntropy = "losses/entropy"
    case entropy = "learner/entropy"
    case gradNorm = "learner/grad_norm"
    case learningRate = "learner/lr"
    case entropyCoeff = "learner/entropy_coeff"
    case meanRho = "learner/mean_rho"
    case clippedFraction = "learner/clipped_fraction"
    case skippedUpdates = "learner/skipped_updates"
    case lagP50 = "policy_lag/p50"
    case lagP95 = "policy_lag/p95"
    case lagMax = "policy_lag/max"
    case queueDepth = "queue/depth"
    case queueCapacity = "queue/capacity"
    case secondsSinceFragments = "intake/seconds_since_fragments"
    case wallSeconds = "run/wall_seconds"
    case diskError = "run/disk_error"
    case dropped
    case endpoints
    case workers
    case envStepErrors = "env/step_errors"
    case envHostRestarts = "env/host_restarts"
    case envNonFinite = "env/nonfinite"
    case openFiles = "process/open_files"
    case openFilesLimit = "process/open_files_limit"
    case episodeInfo = "episode_info"
    case evaluation = "evaluation/latest"
    case bestEvaluation = "evaluation/best"
    case evaluations = "evaluation/count"
    case evaluationReturnMean = "evaluation/return_mean"
    case evaluationEnvSteps = "evaluation/env_steps"
  }

  /// One worker, as its heartbeats describe it.
  public struct WorkerRow: Codable, Sendable, Equatable {
    public var id: Int
    public var host: String
    public var pid: Int
    public var envs: Int
    public var envSteps: Int
    public var stepsPerSecond: Double
    public var episodes: Int
    /// Mean return of the worker's last 100 episodes (null before its first).
    @ExplicitNull public var meanReturn: Float?
    /// The policy version the worker acts with.
    public var policyVersion: Int
    public var secondsSinceHeartbeat: Double
    /// `connected`, `lost` (silent for 10 s) or `left` (said goodbye).
    public var state: String
    /// Its environments' faults (see the document's `env/` keys).
    public var envStepErrors = 0
    public var envHostRestarts = 0
    public var envNonFinite = 0

    enum CodingKeys: String, CodingKey {
      case id, host, pid, envs
      case envSteps = "env_steps"
      case stepsPerSecond = "steps_per_second"
      case episodes
      case meanReturn = "mean_return"
      case policyVersion = "policy_version"
      case secondsSinceHeartbeat = "seconds_since_heartbeat"
      case state
      case envStepErrors = "env_step_errors"
      case envHostRestarts = "env_host_restarts"
      case envNonFinite = "env_nonfinite"
    }
  }

  /// Pretty, sorted JSON.
  public func json() throws -> [UInt8] {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return Array(try e.encode(self)) + [10]
  }
}
