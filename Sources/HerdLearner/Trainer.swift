import Foundation
import HerdEnvs
import HerdMath
import HerdNN
import HerdRL
import HerdStats
import Logging

/// When a run stops (any criterion that is set).
public struct StopCriteria: Sendable, Equatable {
  /// Mean return over the last 100 episodes at or above this (checked once 100 episodes are done).
  public var reward: Float?
  /// Env steps sampled.
  public var envSteps: Int?
  /// Wall-clock seconds.
  public var seconds: Double?
  /// An `episode_info_keys` entry's mean over the last 100 episodes that had it at
  /// or above `value` (checked once 100 episodes had it).
  public var info: InfoTarget?
  /// An evaluation's mean return (`evaluation_interval_env_steps`) at or above this
  /// (checked as each evaluation finishes).
  public var evaluationReward: Float?

  public struct InfoTarget: Sendable, Equatable {
    public var key: String
    public var value: Float
    public init(key: String, value: Float) {
      self.key = key
      self.value = value
    }
  }

  public init(
    reward: Float? = nil, envSteps: Int? = nil, seconds: Double? = nil, info: InfoTarget? = nil,
    evaluationReward: Float? = nil
  ) {
    self.reward = reward
    self.envSteps = envSteps
    self.seconds = seconds
    self.info = info
    self.evaluationReward = evaluationReward
  }
}

/// What `summary.json` holds (every key present: absent values are `null`).
public struct RunSummary: Codable, Sendable {
  public var env: String
  public var env_steps: Int
  public var trained_steps: Int
  /// Timesteps trained again (num_epochs passes after the first, the idle learner's reuse).
  public var reused_steps = 0
  public var updates: Int
  public var episodes: Int
  public var wall_seconds: Double
  @ExplicitNull public var final_mean_return: Float?
  @ExplicitNull public var best_mean_return: Float?
  @ExplicitNull public var stop_reward: Float?
  public var stop_reward_reached: Bool
  @ExplicitNull public var env_steps_to_stop_reward: Int?
  @ExplicitNull public var seconds_to_stop_reward: Double?
  public var stopped_because: String
  public var dropped_stale_fragments: Int
  public var skipped_updates: Int
  public var use_lstm: Bool
  public var run_dir: String
  /// The last write the run directory refused (null when every write succeeded in
  /// the end): when set, the final checkpoint may be an older one.
  @ExplicitNull public var disk_error: String?
  /// Each `episode_info_keys` entry's mean over the last 100 episodes that had it
  /// (null when none had it; empty without the keys).
  public var final_episode_info: [String: Float?] = [:]
  /// The run's evaluations (`evaluation_interval_env_steps`): how many finished,
  /// the latest and the best by mean return (null without any).
  public var evaluations = 0
  @ExplicitNull public var last_evaluation: EvaluationFigures? = nil
  @ExplicitNull public var best_evaluation: EvaluationFigures? = nil
  /// The evaluation of the weights the run ended with (those of its final
  /// checkpoint): null when the run does not evaluate, or stopped on Ctrl-C or an
  /// error before it.
  @ExplicitNull public var final_evaluation: EvaluationFigures? = nil
}

/// Everything the learner's side of a run holds: model, learner, channels, stats.
public struct LearnerParts: Sendable {
  /// The run's environment spec and model: built when the first worker describes
  /// its environments (or at once on resume).
  public let model: RunModel
  public let queue: FragmentQueue
  public let board: WeightBoard
  public let stats: RunStats
  public let registry: WorkerRegistry
  /// The trainer's published status and curves (the stats endpoint reads it).
  public let status: StatusBoard
}

extension Learner: @unchecked Sendable {}

/// The learner loop: batch -> update -> publish -> stats, until a stop criterion,
/// `interrupted` or a failure; then the final checkpoint and `summary.json`. It
/// only learns: fragments arrive in the queue from worker threads or the network
/// thread, and the status it publishes once a second is what everyone else reads.
/// A run directory that refuses writes (disk full) does not stop it: the failure
/// is logged, shown on `/healthz`, and checkpoints are retried every few seconds.
final class Trainer: @unchecked Sendable {
  // Used by one thread at a time: prepared on the caller's, then run on the trainer's.
  let config: TrainingConfig
  let stop: StopCriteria
  let runDirectory: RunDirectory
  let logger: Logger
  /// TensorBoard's copy of each progress record (nil: none).
  var tensorBoard: TensorBoardEvents?
  /// Whether `config.json` still has to be written (it is retried like checkpoints).
  private var configPending = true
  /// Files whose last write failed, with the reason.
  private var failing: [String: String] = [:]
  /// Whether the log has said that the run folder was removed (said once).
  private var folderGoneLogged = false
  /// What `/healthz` and the summary show while any write is failing.
  private var diskError: String? { failing.min { $0.key < $1.key }?.value }
  /// Whether this run continues the one in its directory (`--resume`).
  private var resumed = false
  /// The policy version and run second of `checkpoint.herd` as it is on disk (the
  /// resumed one, then each written one); nil while the run has none.
  private var savedCheckpoint: (version: Int, seconds: Double)?
  /// Set once training has stopped: a failed write is then not retried.
  private var ending = false
  /// Seconds without a heartbeat after which the worker table takes a worker as lost.
  var workerLostSeconds: Double = 10
  /// Called after each update of new data with the policy version (tests).
  var afterUpdate: (@Sendable (Int) -> Void)?
  /// Evaluates the weights every `evaluation_interval_env_steps` (nil: never).
  var evaluator: PeriodicEvaluator?
  /// The latest evaluation, the best by mean return, and how many have finished
  /// (a resumed run's from its `evaluations.jsonl`).
  private var evaluation: EvaluationFigures?
  private var bestEvaluation: EvaluationFigures?
  private var evaluationCount = 0
  /// Bytes of recently published weights kept for `best.herd` (``PublishedWeights``)
  /// at most: 8 versions of a 1M-parameter model. The versions older than every
  /// episode of the mean-return window are dropped first, so usually only the
  /// policy lag's few are kept.
  static let publishedWeightsBudget = 32 << 20

  init(config: TrainingConfig, stop: StopCriteria, runDirectory: RunDirectory, logger: Logger) {
    self.config = config
    self.stop = stop
    self.runDirectory = runDirectory
    self.logger = logger
  }

  /// Sets up the queue, weight board, worker table and the run model, whose first
  /// environment spec builds the network and learner (restored from
  /// `RUN_DIR/checkpoint.herd` when `resume`; the spec then comes from
  /// `RUN_DIR/env_spec.json`, so the model exists before any worker).
  func prepare(resume: Bool) throws -> LearnerParts {
    // A built-in environment's spaces are known now: a model or batch too large for
    // this machine is a config error at start, not every worker's refusal later.
    try MemoryFootprint.checkBuiltIn(config, worker: false)
    let stats = RunStats(window: 100, infoKeys: config.reportedInfoKeys)
    let board = WeightBoard()
    let model = RunModel { [self] spec in try self.build(spec, resume: resume, stats: stats, board: board) }
    let status = StatusBoard()
    resumed = resume
    if resume {
      let spec = try resumedSpec()
      do {
        _ = try model.admit(spec)
      } catch {
        throw RunDirectoryError("cannot resume \(runDirectory.path): \(error)\(configDifferences())")
      }
      // Records written after the checkpoint are of training this run lost.
      let dropped = try runDirectory.dropProgress(after: clockOffset)
      if dropped > 0 {
        logger.notice(
          "resume: removed \(dropped) progress record(s) written after the checkpoint (its training was lost and is done again)")
      }
      // The dashboard's curves go on from the invocations before this one.
      status.seed(runDirectory.progressHistory(upTo: clockOffset))
      // So do the evaluations (those after the checkpoint judged weights it lost).
      let droppedEvaluations = try runDirectory.dropEvaluations(after: clockOffset)
      if droppedEvaluations > 0 {
        logger.notice(
          "resume: removed \(droppedEvaluations) evaluation(s) finished after the checkpoint from \(RunDirectory.evaluationsFile)")
      }
      let before = runDirectory.evaluations()
      evaluation = before.last
      bestEvaluation = before.max { ($0.returnMean ?? -.infinity) < ($1.returnMean ?? -.infinity) }
      evaluationCount = before.count
    }
    writeConfig()
    return LearnerParts(
      model: model, queue: FragmentQueue(capacity: config.learner_queue_size), board: board, stats: stats,
      registry: WorkerRegistry(logger: logger, lostAfter: workerLostSeconds), status: status)
  }

  /// For a resume that failed: the keys in which this invocation's config differs
  /// from the run's (`config.json`, not yet rewritten), and how to pass the run's
  /// own; empty when there is no config.json or nothing differs.
  private func configDifferences() -> String {
    func object(_ data: Data?) -> [String: Any]? {
      data.flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
    }
    let path = runDirectory.file("config.json")
    // The run's file as this version reads it: a key it lacks (written by an older
    // version) has the value a resume gives it, not a difference.
    let runConfig = (try? TrainingConfig.load(path: path, env: nil)).flatMap { try? $0.prettyJSON().data(using: .utf8) }
    guard let run = object(runConfig ?? FileManager.default.contents(atPath: path)),
      let now = object(try? config.prettyJSON().data(using: .utf8))
    else { return "" }
    func text(_ value: Any?) -> String {
      guard let value else { return "(none)" }
      guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed])
      else { return "\(value)" }
      return String(decoding: data, as: UTF8.self)
    }
    let differing = Set(run.keys).union(now.keys).sorted().filter { text(run[$0]) != text(now[$0]) }
    guard !differing.isEmpty else { return "" }
    let listed = differing.map { "\($0) (the run: \(text(run[$0])), now: \(text(now[$0])))" }
    return "; this invocation's config differs from the run's in \(listed.joined(separator: ", ")). "
      + "To continue the run as it was trained, resume with its own config, \(path) "
      + "(herd train and herd learner take it when --resume has no --config), without --set for these keys"
  }

  /// The spec a resumed run continues with: `env_spec.json`, or for a built-in
  /// environment of a run directory from before env_spec.json, its registration's.
  private func resumedSpec() throws -> EnvSpec {
    let path = runDirectory.file("env_spec.json")
    if let text = try? String(contentsOfFile: path, encoding: .utf8) {
      return try EnvSpec(json: text.trimmingCharacters(in: .whitespacesAndNewlines))
    }
    guard config.gymID == nil else {
      throw RunDirectoryError("cannot resume \(runDirectory.path): env_spec.json is missing")
    }
    return try EnvironmentFactory.spec(config)
  }

  /// The network and learner for the run's environment (called once, by the run
  /// model, under its lock): restores the checkpoint on resume, publishes the first
  /// weights and records `env_spec.json`.
  private func build(_ spec: EnvSpec, resume: Bool, stats: RunStats, board: WeightBoard) throws -> ModelSpec {
    guard spec.id == (config.gymID ?? config.env) else {
      throw Refusal.refused("this worker's environment is \(spec.id), the run's is \(config.env)")
    }
    guard spec.config == config.env_config.json else {
      throw Refusal.refused("this worker's env_config is \(spec.config), the run's is \(config.env_config.json)")
    }
    try spec.observation.checkObservation()
    let network = try PolicyNetwork(config: config, spec: spec)
    if config.gymID != nil { try Self.checkMemory(config, spec: spec, network: network) }  // built-ins: in prepare
    let learner = Learner(config: config, network: network)
    if resume {
      let path = runDirectory.file("checkpoint.herd")
      let archive = try TensorArchive.read(from: path)
      let counters = try CheckpointCounters(archive, source: path)
      try learner.parameters.restore(from: archive, optimizer: learner.optimizer, source: path)
      var statistics: ObservationStatistics?
      if learner.observationStatistics != nil {
        guard let text = archive.metadata[CheckpointKey.observationStatistics] else {
          throw RunDirectoryError("\(path) has no observation filter statistics, but the run uses MeanStdFilter")
        }
        statistics = try ObservationStatistics(json: text, features: network.observationSize)
      }
      var returns: ReturnStatistics?
      if learner.returnStatistics != nil {
        // A checkpoint from before reward_scaling was turned on restarts them.
        if let text = archive.metadata[CheckpointKey.returnStatistics] { returns = try ReturnStatistics(json: text) }
      }
      let progress = try CheckpointProgress(archive, source: path)
      learner.restore(
        version: counters.policyVersion, trainedSteps: counters.trainedSteps, reusedSteps: counters.reusedSteps,
        observationStatistics: statistics,
        returnStatistics: returns)
      stats.restore(
        envSteps: counters.envSteps, episodes: counters.episodes, recentReturns: progress.returns,
        recentLengths: progress.lengths)
      stats.restoreInfo(progress.episodeInfo)
      clockOffset = progress.wallSeconds
      savedCheckpoint = (learner.version, progress.wallSeconds)
      tensorBoard?.restartStep = counters.envSteps + 1  // TensorBoard keeps the steps below it
      let mean = progress.returns.isEmpty ? "" : String(
        format: ", mean return %.2f over its last %d episodes", progress.returns.reduce(0, +) / Float(progress.returns.count),
        progress.returns.count)
      logger.info(
        "resumed from \(path): policy version \(learner.version), \(counters.envSteps) env steps, \(String(format: progress.wallSeconds < 10 ? "%.1f" : "%.0f", progress.wallSeconds)) s trained\(mean)")
    }
    board.publish(version: learner.version, weights: learner.parameters.flatValues)
    self.network = network
    self.learner = learner
    let model = ModelSpec(config: config, network: network)
    logger.info(
      "run: \(spec.id) observations \(spec.observation) (\(spec.observationSize) \(spec.observation.flatIsBytes ? "bytes" : "floats")), actions \(spec.action); model \(network.layout.count) parameters, batch \(config.fragmentsPerBatch) x \(config.max_seq_len)"
    )
    if let note = ConvPlan.autoNote(config: config, observation: spec.observation) { logger.info("run: \(note)") }
    if let mask = network.actionMask {
      logger.info(
        "run: actions masked by the observation's '\(config.action_mask_key)' (entries \(mask.lowerBound)..<\(mask.upperBound)): where it is 0 an action is never taken")
    }
    return model
  }

  /// Throws a ``ConfigError`` when the model and one batch cannot fit in this
  /// machine's memory (``MemoryFootprint``, a lower bound), before they are allocated.
  static func checkMemory(_ config: TrainingConfig, spec: EnvSpec, network: PolicyNetwork) throws {
    try MemoryFootprint.learner(config, network: network, observationBytes: spec.observation.flatIsBytes ? 1 : 4)
      .check(against: MemoryFootprint.physicalMemory, role: "learner")
  }

  /// Set by ``build(_:resume:stats:board:)`` under the run model's lock; read by
  /// the trainer's thread after ``RunModel/wait(stop:)`` (the lock orders the two).
  private var network: PolicyNetwork?
  private var learner: Learner?
  /// The run's seconds before this invocation (0 for a fresh run): progress,
  /// `/history` and the summary count the run's time from it; the stop criterion
  /// `seconds` counts this invocation's.
  private var clockOffset = 0.0

  /// Trains until a stop criterion, `interrupted` or `failure()`; always writes the
  /// final checkpoint and `summary.json` (as far as the disk allows).
  func run(_ parts: LearnerParts, interrupted: StopFlag, failure: () -> String?) -> RunSummary {
    let (queue, board, stats) = (parts.queue, parts.board, parts.stats)
    let clock = ContinuousClock()
    let start = clock.now
    /// This invocation's seconds (intervals and the stop criterion).
    func seconds() -> Double {
      let d = clock.now - start
      return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
    /// The run's seconds over all its invocations (what progress and the summary show).
    func runSeconds() -> Double { clockOffset + seconds() }
    // The model exists once a worker has described its environments.
    var waitingSince = -1.0
    while parts.model.current == nil {
      parts.status.beat()
      var reason: String?
      if let f = failure() { reason = "error: \(f)" }
      if interrupted.isSet { reason = "interrupted" }
      if let s = stop.seconds, seconds() >= s { reason = "stop_seconds reached" }
      if let reason {
        logger.warning("stopped before any worker described its environments (\(reason)); no model, no checkpoint")
        let summary = RunSummary(
          env: config.env, env_steps: 0, trained_steps: 0, updates: 0, episodes: 0, wall_seconds: runSeconds(),
          final_mean_return: nil, best_mean_return: nil, stop_reward: stop.reward, stop_reward_reached: false,
          env_steps_to_stop_reward: nil, seconds_to_stop_reward: nil, stopped_because: reason,
          dropped_stale_fragments: 0, skipped_updates: 0, use_lstm: config.use_lstm, run_dir: runDirectory.path,
          disk_error: diskError)
        return summary
      }
      if waitingSince < 0 || seconds() - waitingSince >= 30 {
        logger.info("waiting for a worker to describe the environments of \(config.env) (the model is built from them)")
        waitingSince = seconds()
      }
      _ = interrupted.wait(seconds: 0.1)
    }
    guard let learner = self.learner, let adopted = parts.model.current else {
      preconditionFailure("run model adopted without a learner")
    }
    // What the model was built from, for `--resume` (retried with the checkpoints).
    var specPending = true
    func writeSpec() {
      guard specPending else { return }
      attempt("env_spec.json") { try runDirectory.writeAtomically("env_spec.json", adopted.env.json() + "\n") }
      specPending = failing["env_spec.json"] != nil
    }
    writeSpec()
    var pending: [Fragment] = []
    // The last batch trained, for the idle learner's reuse (max_sample_reuse).
    var lastBatch: [Fragment] = []
    // Experience replay: each new batch mixes in fragments drawn from this.
    var replay = ReplayBuffer(
      capacity: config.replay_buffer_num_slots, proportion: config.replay_proportion, seed: config.seed &+ 0xB0FF_E4)
    if replay.isActive {
      logger.info(
        "replay: \(config.replay_proportion) replayed fragments per new one, from the newest \(config.replay_buffer_num_slots) fragments trained on")
    }
    var lastPublished = learner.version
    let n = config.fragmentsPerBatch
    var last: LearnerStepStats?
    var lastProgress = 0.0
    var lastStatus = -1.0
    var lastCheckpoint = 0.0
    var rates = RateWindow(seconds: 5)
    var best: Float?
    var bestUnsaved = false
    var lastBestSave = -Double.infinity
    // The weights of the last versions published, so the record's own weights can
    // be saved (they played its episodes; the learner is past them by the lag).
    var published = PublishedWeights(
      budgetBytes: Self.publishedWeightsBudget, maxVersions: config.max_policy_lag + 1)
    published.add(version: learner.version, weights: learner.parameters.flatValues)
    var bestWeights: (version: Int, values: [Float], seenAt: Int)?
    // A resumed run keeps the record its best.herd holds, so it only replaces it
    // with a better one (a new run's folder has none: `clearPreviousRun`).
    let bestFile = runDirectory.file("best.herd")
    let recordBefore =
      resumed
      ? (try? TensorArchive.read(from: bestFile)).flatMap { $0.metadata[CheckpointKey.bestMeanReturn] }
        .flatMap(Float.init) : nil
    func saveBest(_ snap: RunStats.Snapshot, _ now: Double) {
      guard let b = best, let w = bestWeights else { return }
      attempt("best.herd") {
        try runDirectory.writeCheckpoint(
          learner,
          metadata: [
            CheckpointKey.envSteps: String(snap.envSteps), CheckpointKey.episodes: String(snap.episodes),
            CheckpointKey.bestMeanReturn: String(b), CheckpointKey.recordSeenAtVersion: String(w.seenAt),
          ], name: "best.herd", weights: (w.version, w.values))
      }
      (bestUnsaved, lastBestSave) = (false, now)
    }
    // Milestones: the learner's weights each time the env steps pass a multiple of
    // checkpoint_milestone_env_steps (one file, the highest, when a batch passes
    // several), kept for good. A resumed run goes on from its env steps.
    let milestoneEvery = config.checkpoint_milestone_env_steps
    var nextMilestone =
      milestoneEvery > 0 ? (stats.snapshot(lags: false).envSteps / milestoneEvery + 1) * milestoneEvery : Int.max
    var milestoneRetryAt = -Double.infinity
    func saveMilestone(_ snap: RunStats.Snapshot, _ now: Double) {
      let steps = snap.envSteps / milestoneEvery * milestoneEvery
      let name = RunDirectory.milestoneName(steps)
      var metadata = [
        CheckpointKey.envSteps: String(snap.envSteps), CheckpointKey.episodes: String(snap.episodes),
        CheckpointKey.milestoneEnvSteps: String(steps),
      ]
      if let m = snap.meanReturn, snap.windowEpisodes >= 100 { metadata[CheckpointKey.meanReturn] = String(m) }
      attempt("milestones") {
        try runDirectory.makeMilestoneFolder()
        try runDirectory.writeCheckpoint(
          learner, metadata: metadata, name: name, weights: (learner.version, learner.parameters.flatValues))
        logger.info(
          "milestone: policy version \(learner.version) at \(snap.envSteps.formatted()) env steps kept as \(runDirectory.file(name))")
      }
      // A milestone the disk refused is tried again in 5 s (as the multiple reached then).
      if failing["milestones"] == nil { nextMilestone = steps + milestoneEvery } else { milestoneRetryAt = now + 5 }
    }
    // Evaluations: the learner's newest weights each time the env steps pass a
    // multiple of evaluation_interval_env_steps, handed to the evaluator's thread
    // (when it is busy, at the first iteration it is free); what it finishes comes
    // back here to be reported and written. A resumed run goes on from its env steps.
    let evaluateEvery = config.evaluation_interval_env_steps
    var nextEvaluation =
      evaluator != nil && evaluateEvery > 0
      ? (stats.snapshot(lags: false).envSteps / evaluateEvery + 1) * evaluateEvery : Int.max
    // The best evaluation's weights while best_eval.herd does not hold them yet.
    var bestEvaluationWeights: (version: Int, values: [Float])?
    var bestEvaluationRetryAt = -Double.infinity
    var evaluationReached = false
    var evaluationsFailed = false
    // The policy version of the final evaluation, once offered (for its log line),
    // and whether a log line has called an evaluation the final weights'.
    var finalVersion: Int?
    var finalSaid = false
    func saveBestEvaluation(_ now: Double) {
      guard let w = bestEvaluationWeights, let e = bestEvaluation else { return }
      let name = RunDirectory.bestEvaluationFile
      attempt(name) {
        try runDirectory.writeCheckpoint(
          learner,
          metadata: [
            CheckpointKey.envSteps: String(e.envSteps), CheckpointKey.evaluationEpisodes: String(e.episodes),
            CheckpointKey.evaluationReturnMean: String(e.returnMean ?? .nan),
            CheckpointKey.evaluationGreedy: String(e.greedy),
          ], name: name, weights: (w.version, w.values))
      }
      // One the disk refused is tried again in 5 s.
      if failing[name] == nil { bestEvaluationWeights = nil } else { bestEvaluationRetryAt = now + 5 }
    }
    func record(_ outcome: PeriodicEvaluator.Outcome, now: Double) {
      guard let r = outcome.result else {
        logger.error("evaluation: \(outcome.failure ?? "it failed"); no more evaluations in this run")
        nextEvaluation = Int.max
        evaluationsFailed = true
        return
      }
      let (ret, len) = (r.returnSummary, r.lengthSummary)
      var e = EvaluationFigures(
        policyVersion: outcome.request.version, envSteps: outcome.request.envSteps, wallSeconds: clockOffset + now,
        seconds: outcome.seconds, episodes: r.returns.count, greedy: config.evaluation_greedy, returnMean: ret.mean,
        returnStd: ret.std, returnMin: ret.min, returnMax: ret.max, lengthMean: len.mean)
      var infoText = ""
      for (k, key) in config.episode_info_keys.enumerated() {
        let (s, n) = r.infoSummary(k)
        e.info.updateValue(n > 0 ? s.mean : nil, forKey: key)
        infoText += n > 0 ? String(format: ", %@ %.3f", key, s.mean) : ", \(key) -"
      }
      evaluationCount += 1
      evaluation = e
      if e.policyVersion == finalVersion { finalSaid = true }
      let best = (e.returnMean ?? -.infinity) > (bestEvaluation?.returnMean ?? -.infinity)
      logger.info(
        "\(String(format: "evaluation %d: policy version %d (%@ env steps): return %.3f +- %.3f (min %.3f, max %.3f), length %.1f over %d %@ episodes%@ in %.2f s", evaluationCount, e.policyVersion, e.envSteps.formatted(), ret.mean, ret.std, ret.min, ret.max, len.mean, e.episodes, e.greedy ? "greedy" : "sampled", infoText, e.seconds))\(e.policyVersion == finalVersion ? " (the final weights)" : "")\(best ? " (the best so far: \(RunDirectory.bestEvaluationFile))" : "")"
      )
      let evaluationRecord = RunDirectory.evaluationRecord(e)
      attempt(RunDirectory.evaluationsFile) { try runDirectory.appendEvaluation(evaluationRecord) }
      if let tensorBoard {
        let scalars = Self.scalars(evaluationRecord).filter {
          $0.tag.hasPrefix(MetricKey.evaluationPrefix) && $0.tag != MetricKey.evaluationGreedy
        }
        attempt("tensorboard") {
          try tensorBoard.append(step: e.envSteps, wallTime: Date().timeIntervalSince1970, scalars: scalars)
        }
      }
      if best {
        bestEvaluation = e
        bestEvaluationWeights = (outcome.request.version, outcome.request.weights)
        saveBestEvaluation(now)
      }
      if finalVersion == nil, let target = stop.evaluationReward, let m = e.returnMean, m >= Double(target) {
        evaluationReached = true
        logger.info("stop: evaluation \(evaluationCount)'s mean return \(m) is at or above \(target)")
      }
    }
    var reachedAt: (steps: Int, seconds: Double)?
    var reason = "stop criteria"
    func report(now: Double, stopped: String? = nil) -> TrainerStatus {
      let full = stats.snapshot()
      let r = rates.add(t: now, sampled: full.envSteps, trained: learner.trainedSteps)
      var status = TrainerStatus(
        wallSeconds: now, stats: full, updates: learner.version, trainedSteps: learner.trainedSteps,
        sampledPerSecond: r.sampled, trainedPerSecond: r.trained,
        lastUpdate: last.map {
          var u = TrainerStatus.UpdateFigures(
            policyLoss: $0.terms.policy, baselineLoss: $0.terms.baseline,
            entropyLoss: -$0.entropyCoeff * $0.terms.entropy, entropy: $0.terms.entropy, gradNorm: $0.gradNorm,
            learningRate: $0.learningRate, meanRho: $0.terms.meanRho)
          u.entropyCoeff = $0.entropyCoeff
          u.clippedFraction = $0.terms.clippedFraction
          return u
        }, queueDepth: queue.depth, queueCapacity: queue.capacity, stoppedBecause: stopped, diskError: diskError)
      status.reusedSteps = learner.reusedSteps
      status.queueBytes = queue.bytes
      status.replayFragments = replay.fragments.count
      status.replayBytes = replay.storageBytes
      status.evaluation = evaluation
      status.bestEvaluation = bestEvaluation
      status.evaluations = evaluationCount
      return status
    }
    // The final evaluation: a run that stopped on its criteria (not on Ctrl-C or
    // an error) evaluates the weights it ends with, unless its latest evaluation
    // already judged them. An evaluation still running is let finish first. The
    // status says the run has stopped meanwhile (no fragment is trained any more,
    // so /healthz must not call it stalled), and Ctrl-C skips the rest. Then the
    // run's last status and progress record carry it.
    func evaluateFinalWeights() {
      guard let evaluator, !evaluationsFailed, !interrupted.isSet, !reason.hasPrefix("error") else { return }
      parts.status.publish(report(now: clockOffset + seconds(), stopped: "\(reason); evaluating the final weights"))
      func drain() { for outcome in evaluator.takeFinished() { record(outcome, now: seconds()) } }
      /// Waits (the trainer's heart still beating) until `done`; false on Ctrl-C or
      /// when evaluations fail.
      func wait(until done: () -> Bool) -> Bool {
        while true {
          drain()
          if done() { return true }
          if interrupted.isSet || evaluationsFailed { return false }
          parts.status.beat()
          Thread.sleep(forTimeInterval: 0.02)
        }
      }
      finalVersion = learner.version
      if wait(until: { evaluator.idle }) {
        drain()
        if let e = evaluation, e.policyVersion == learner.version, !finalSaid {
          logger.info("final evaluation: evaluation \(evaluationCount) already judged the final weights (policy version \(e.policyVersion))")
        } else if evaluation?.policyVersion != learner.version {
          let steps = stats.snapshot(lags: false).envSteps
          if evaluator.offer(
            .init(
              version: learner.version, weights: learner.parameters.flatValues, envSteps: steps,
              runSeconds: clockOffset + seconds()))
          {
            logger.info(
              "final evaluation: policy version \(learner.version) (\(steps.formatted()) env steps), \(config.evaluation_episodes) \(config.evaluation_greedy ? "greedy" : "sampled") episodes; Ctrl-C skips it"
            )
            if !wait(until: { evaluation?.policyVersion == learner.version }) && interrupted.isSet {
              logger.notice("final evaluation: skipped (Ctrl-C)")
            }
          }
        }
      }
    }

    while true {
      parts.status.beat()
      // Intake: fresh fragments only.
      // With sync_sampling a worker's batch is never split between updates (the
      // worker waits for the update that trains all of it), and a batch is trained
      // as soon as nothing more arrives, full or not.
      let incoming = queue.receive(max: config.sync_sampling ? Int.max : n - pending.count, timeout: 0.05)
      let fresh = incoming.filter { learner.version - $0.policyVersion <= config.max_policy_lag }
      if fresh.count < incoming.count {
        stats.addDroppedStale(incoming.count - fresh.count)
        board.markDone(incoming.filter { learner.version - $0.policyVersion > config.max_policy_lag })
      }
      var trainedNow: [Fragment] = []
      pending += fresh
      // Update and publish.
      if pending.count >= n || (config.sync_sampling && incoming.isEmpty && !pending.isEmpty) {
        do {
          replay.dropStale(version: learner.version, maxLag: config.max_policy_lag)
          let steps = try learner.train(pending, replayed: replay.draw(forNew: pending.count))
          stats.addSkippedUpdates(steps.filter(\.skipped).count)
          stats.recordLags(steps[0].lags)
          last = steps.last
        } catch {
          reason = "error: the learner step failed: \(error)"
          pending.removeAll()
          break
        }
        afterUpdate?(learner.version)
        replay.add(pending)
        trainedNow = pending
        lastBatch = pending
        pending.removeAll(keepingCapacity: true)
      } else if incoming.isEmpty && config.max_sample_reuse > 1 && !lastBatch.isEmpty {
        // Idle (nothing arrived within the intake wait): train the last batch again,
        // while the reuse stays within max_sample_reuse and its fragments within
        // max_policy_lag.
        lastBatch.removeAll { learner.version - $0.policyVersion > config.max_policy_lag }
        let batchSteps = lastBatch.reduce(0) { $0 + $1.length }
        let trained = Double(learner.trainedSteps + learner.reusedSteps + batchSteps)
        if !lastBatch.isEmpty && trained <= config.max_sample_reuse * Double(learner.trainedSteps) {
          do {
            let steps = try learner.train(lastBatch, passes: 1, fresh: false)
            stats.addSkippedUpdates(steps.filter(\.skipped).count)
            last = steps.last
          } catch {
            reason = "error: the learner step failed: \(error)"
            break
          }
        }
      }
      if learner.version - lastPublished >= config.broadcast_interval
        || (config.sync_sampling && !trainedNow.isEmpty && learner.version > lastPublished)
      {
        let weights = learner.parameters.flatValues
        board.publish(version: learner.version, weights: weights)
        published.add(version: learner.version, weights: weights)
        lastPublished = learner.version
      }
      board.markDone(trainedNow)  // after the publication: sync_sampling's acknowledgement
      // Status, progress, checkpoints, stop criteria.
      var now = seconds()
      let snap = stats.snapshot(lags: false)
      if let oldest = snap.windowOldestPolicyVersion { published.drop(before: oldest) }
      if let m = snap.meanReturn, snap.windowEpisodes >= 100, m > best ?? -.infinity {
        best = m
        bestUnsaved = m > recordBefore ?? -.infinity
        if bestUnsaved, let w = published.weights(for: snap.windowPolicyVersion ?? learner.version) {
          bestWeights = (w.version, w.weights, learner.version)
        }
      }
      // best.herd: the weights that played the episodes of the last record (not
      // the learner's newest, which no episode has judged yet), written at most
      // every 5 s (a record within that time is written when it is over).
      if bestUnsaved && now - lastBestSave >= 5 { saveBest(snap, now) }
      if snap.envSteps >= nextMilestone && now >= milestoneRetryAt { saveMilestone(snap, now) }
      if snap.envSteps >= nextEvaluation, let evaluator,
        evaluator.offer(
          .init(
            version: learner.version, weights: learner.parameters.flatValues, envSteps: snap.envSteps,
            runSeconds: clockOffset + now))
      {
        nextEvaluation = (snap.envSteps / evaluateEvery + 1) * evaluateEvery
      }
      for outcome in evaluator?.takeFinished() ?? [] { record(outcome, now: now) }
      if bestEvaluationWeights != nil && now >= bestEvaluationRetryAt { saveBestEvaluation(now) }
      if reachedAt == nil, let r = stop.reward, let m = snap.meanReturn, snap.windowEpisodes >= 100, m >= r {
        reachedAt = (snap.envSteps, clockOffset + now)
      }
      var finished = false
      if let f = failure() { (reason, finished) = ("error: \(f)", true) }
      if interrupted.isSet { (reason, finished) = ("interrupted", true) }
      if reachedAt != nil { (reason, finished) = ("stop_reward reached", true) }
      if evaluationReached { (reason, finished) = ("stop_eval_reward reached", true) }
      if let target = stop.info, let i = snap.episodeInfo.first(where: { $0.key == target.key }), i.episodes >= 100,
        let m = i.mean, m >= target.value, !finished
      {
        (reason, finished) = ("stop_info reached", true)
        logger.info("stop: \(target.key) \(m) over the last 100 episodes that had it, at or above \(target.value)")
      }
      if let s = stop.envSteps, snap.envSteps >= s { (reason, finished) = ("stop_steps reached", true) }
      if let s = stop.seconds, now >= s { (reason, finished) = ("stop_seconds reached", true) }
      if finished {
        evaluateFinalWeights()
        now = seconds()
      }
      // The status board every second, or at the progress interval when shorter.
      if now - lastStatus >= min(1, config.progress_interval_seconds) || finished {
        let status = report(now: clockOffset + now, stopped: finished ? reason : nil)
        parts.status.publish(status)
        lastStatus = now
        if now - lastProgress >= config.progress_interval_seconds || finished {
          writeProgress(status)
          lastProgress = now
        }
      }
      // A failing disk is retried every 5 s rather than every interval.
      let interval = diskError == nil ? config.checkpoint_interval_seconds : min(5, config.checkpoint_interval_seconds)
      if now - lastCheckpoint >= interval {
        writeSpec()
        checkpoint(learner, snap, window: stats, seconds: clockOffset + now)
        lastCheckpoint = now
      }
      if finished { break }
    }

    // The end: final checkpoint (and a record not yet written) and summary.
    ending = true
    let final = stats.snapshot(lags: false)
    checkpoint(learner, final, window: stats, seconds: runSeconds())
    if let why = failing["checkpoint.herd"] { logLostFinalCheckpoint(why, version: learner.version) }
    if bestUnsaved { saveBest(final, seconds()) }
    if bestEvaluationWeights != nil { saveBestEvaluation(seconds()) }
    var summary = RunSummary(
      env: config.env, env_steps: final.envSteps, trained_steps: learner.trainedSteps, updates: learner.version,
      episodes: final.episodes, wall_seconds: runSeconds(), final_mean_return: final.meanReturn, best_mean_return: best,
      stop_reward: stop.reward, stop_reward_reached: reachedAt != nil, env_steps_to_stop_reward: reachedAt?.steps,
      seconds_to_stop_reward: reachedAt?.seconds, stopped_because: reason, dropped_stale_fragments: final.droppedStale,
      skipped_updates: final.skippedUpdates, use_lstm: config.use_lstm, run_dir: runDirectory.path,
      disk_error: diskError)
    summary.reused_steps = learner.reusedSteps
    summary.final_episode_info = Dictionary(uniqueKeysWithValues: final.episodeInfo.map { ($0.key, $0.mean) })
    (summary.evaluations, summary.last_evaluation, summary.best_evaluation) = (evaluationCount, evaluation, bestEvaluation)
    // The final evaluation, when one judged the weights the run ends with.
    summary.final_evaluation = finalVersion != nil && evaluation?.policyVersion == learner.version ? evaluation : nil
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    if let data = try? encoder.encode(summary) {
      attempt("summary.json") { try runDirectory.writeAtomically("summary.json", String(decoding: data, as: UTF8.self) + "\n") }
    }
    summary.disk_error = diskError  // summary.json itself may have failed
    // The final status says why the run stopped, and whether the disk took it all.
    parts.status.publish(report(now: runSeconds(), stopped: reason))
    return summary
  }

  /// Runs a write to the run directory. A failure is logged (once per file and
  /// reason) and shown on `/healthz` until that same file is written again; when
  /// no file is failing any more, one line says the directory is writable again.
  /// (Per file: on a nearly full disk a short progress line may still fit while a
  /// checkpoint does not.)
  private func attempt(_ what: String, _ write: () throws -> Void) {
    do {
      try write()
      if let was = failing.removeValue(forKey: what), failing.isEmpty {
        logger.notice("run directory writable again (\(what) written); it had refused: \(was)")
      }
    } catch {
      let text = "\(error)"
      let changed = failing.updateValue(text, forKey: what) != text
      if let gone = runDirectory.whatBecameOfIt {
        // A removed run folder explains every failure at once, and no free space helps.
        if !folderGoneLogged {
          folderGoneLogged = true
          logger.error(
            "\(gone): nothing more of it can be saved (\(text)); training goes on for /stats and the log, Ctrl-C stops it"
          )
        }
      } else if changed && !(ending && what == "checkpoint.herd") {
        logger.error(ending ? "\(text)" : "\(text); training goes on, \(checkpointOnDisk), writes are retried every 5 s")
      }
    }
  }

  /// What a failed write leaves: the checkpoint on disk, or that there is none.
  private var checkpointOnDisk: String {
    guard let saved = savedCheckpoint else { return "no checkpoint has been written yet" }
    return "the last good checkpoint (policy version \(saved.version), written \(Int(saved.seconds)) s into the run) stays"
  }

  /// The final checkpoint failed: says what the run folder holds instead and what
  /// to do, as the run is over and nothing retries it.
  private func logLostFinalCheckpoint(_ why: String, version: Int) {
    let folder = runDirectory.path
    var text = "the final checkpoint was not written (\(why)): "
    if let gone = runDirectory.whatBecameOfIt {
      text += "\(gone), and its checkpoints with it, so this run cannot be resumed"
    } else if let saved = savedCheckpoint {
      text += "\(folder)/checkpoint.herd holds policy version \(saved.version) of \(version)"
      text += saved.version < version ? " (the last \(version - saved.version) updates are lost)" : ""
      text += "; free space there, then --resume continues from it"
    } else {
      text += "\(folder) has no checkpoint, so this run cannot be resumed"
      if FileManager.default.fileExists(atPath: runDirectory.file("best.herd")) {
        text += " (best.herd, the best policy so far, can be evaluated and exported)"
      }
    }
    logger.error("\(text)")
  }

  private func writeConfig() {
    guard configPending, let json = try? config.prettyJSON() else { return }
    attempt("config.json") { try runDirectory.writeAtomically("config.json", json + "\n") }
    if failing["config.json"] == nil { configPending = false }
  }

  /// Writes `checkpoint.herd` with the counters, the run's clock (`seconds`) and
  /// the episodes of the mean-return window of `stats`.
  private func checkpoint(_ learner: Learner, _ s: RunStats.Snapshot, window stats: RunStats, seconds: Double) {
    writeConfig()
    let recent = stats.recentEpisodes()
    let progress = CheckpointProgress(
      wallSeconds: seconds, returns: recent.returns, lengths: recent.lengths, episodeInfo: stats.recentInfo())
    attempt("checkpoint.herd") {
      try runDirectory.writeCheckpoint(
        learner,
        metadata: progress.metadata.merging(
          [CheckpointKey.envSteps: String(s.envSteps), CheckpointKey.episodes: String(s.episodes)]) { $1 })
      savedCheckpoint = (learner.version, seconds)
    }
  }

  private func writeProgress(_ t: TrainerStatus) {
    let record = Self.progressRecord(t)
    attempt("progress.jsonl") { try runDirectory.appendProgress(record) }
    if let tensorBoard {
      attempt("tensorboard") {
        try tensorBoard.append(
          step: t.stats.envSteps, wallTime: Date().timeIntervalSince1970, scalars: Self.progressScalars(record))
      }
    }
    logger.info("\(Self.progressLine(t))")
  }

  /// The numbers of a record, by name (its nulls left out).
  static func scalars(_ record: [String: Any]) -> [(tag: String, value: Double)] {
    record.compactMap { key, value in (value as? NSNumber).map { (key, $0.doubleValue) } }.sorted { $0.tag < $1.tag }
  }

  /// A progress record's numbers for TensorBoard: all but the evaluation's, which
  /// repeat in every record after it; TensorBoard gets those once, when the
  /// evaluation finishes, at the env steps of the weights it judged.
  static func progressScalars(_ record: [String: Any]) -> [(tag: String, value: Double)] {
    scalars(record).filter { !$0.tag.hasPrefix(MetricKey.evaluationPrefix) }
  }

  /// One `progress.jsonl` record, with the `/stats` names (``MetricKey``).
  static func progressRecord(_ t: TrainerStatus) -> [String: Any] {
    let s = t.stats
    let u = t.lastUpdate
    var record: [String: Any] = [
      MetricKey.wallSeconds: t.wallSeconds, MetricKey.envStepsSampled: s.envSteps,
      MetricKey.envStepsTrained: t.trainedSteps, MetricKey.updates: t.updates, MetricKey.policyVersion: t.updates,
      MetricKey.envStepsReused: t.reusedSteps, MetricKey.sampleReuse: t.sampleReuse,
      MetricKey.episodes: s.episodes, MetricKey.episodesWindow: s.windowEpisodes,
      MetricKey.returnMean: jsonNumber(s.meanReturn), MetricKey.returnMin: jsonNumber(s.minReturn),
      MetricKey.returnMax: jsonNumber(s.maxReturn), MetricKey.lengthMean: jsonNumber(s.meanLength),
      MetricKey.sampledPerSecond: t.sampledPerSecond, MetricKey.trainedPerSecond: t.trainedPerSecond,
      MetricKey.lossPG: jsonNumber(u?.policyLoss), MetricKey.lossBaseline: jsonNumber(u?.baselineLoss),
      MetricKey.lossEntropy: jsonNumber(u?.entropyLoss), MetricKey.entropy: jsonNumber(u?.entropy),
      MetricKey.gradNorm: jsonNumber(u?.gradNorm), MetricKey.learningRate: jsonNumber(u?.learningRate),
      MetricKey.entropyCoeff: jsonNumber(u?.entropyCoeff),
      MetricKey.meanRho: jsonNumber(u?.meanRho), MetricKey.clippedFraction: jsonNumber(u?.clippedFraction),
      MetricKey.skippedUpdates: s.skippedUpdates,
      MetricKey.lagP50: s.lagP50, MetricKey.lagP95: s.lagP95, MetricKey.lagMax: s.lagMax,
      MetricKey.droppedStale: s.droppedStale, MetricKey.queueDepth: t.queueDepth,
      MetricKey.queueBytes: t.queueBytes, MetricKey.replayFragments: t.replayFragments,
      MetricKey.replayBytes: t.replayBytes,
    ]
    for i in s.episodeInfo { record[MetricKey.episodeInfo(i.key)] = jsonNumber(i.mean) }
    record[MetricKey.evaluationReturnMean] = t.evaluation?.returnMean.flatMap { $0.isFinite ? $0 : nil } ?? NSNull()
    record[MetricKey.evaluationEnvSteps] = t.evaluation.map { $0.envSteps as Any } ?? NSNull()
    return record
  }

  /// The one-line progress report the learner logs every few seconds.
  public static func progressLine(_ t: TrainerStatus) -> String {
    let s = t.stats
    func f(_ x: Float?, _ digits: Int = 2) -> String { x.map { String(format: "%.\(digits)f", $0) } ?? "-" }
    let ret = s.meanReturn.map { "\(f($0)) (\(s.windowEpisodes) ep)" } ?? "- (no episode yet)"
    let reuse = t.reusedSteps > 0 ? String(format: "  reuse %.2fx", t.sampleReuse) : ""
    let info = s.episodeInfo.map { "  \($0.key) \(f($0.mean, 3))" }.joined()
      + (t.evaluation.map { "  eval \(f($0.returnMean.map(Float.init)))" } ?? "")
    return String(
      format: "%7.1fs  steps %@ (%@/s)  updates %d%@  return %@%@  loss pg %@ vf %@ ent %@  lag p50 %d max %d",
      t.wallSeconds, Int(s.envSteps).formatted(), Int(t.sampledPerSecond).formatted(), t.updates, reuse, ret, info,
      f(t.lastUpdate?.policyLoss, 3), f(t.lastUpdate?.baselineLoss, 3), f(t.lastUpdate?.entropy, 3), s.lagP50,
      s.lagMax)
  }
}
