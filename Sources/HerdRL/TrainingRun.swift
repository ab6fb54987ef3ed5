import Foundation
import HerdMath
import HerdNN
import Synchronization

/// When a run stops (any criterion that is set).
public struct StopCriteria: Sendable, Equatable {
  /// Mean return over the last 100 episodes at or above this (checked once 100 episodes are done).
  public var reward: Float?
  /// Env steps sampled.
  public var envSteps: Int?
  /// Wall-clock seconds.
  public var seconds: Double?

  public init(reward: Float? = nil, envSteps: Int? = nil, seconds: Double? = nil) {
    self.reward = reward
    self.envSteps = envSteps
    self.seconds = seconds
  }
}

/// A flag threads poll to stop (set by signals, stop criteria or errors).
public final class StopFlag: Sendable {
  private let flag = Atomic<Bool>(false)
  public init() {}
  public func set() { flag.store(true, ordering: .releasing) }
  public var isSet: Bool { flag.load(ordering: .acquiring) }
}

/// What `summary.json` holds (every key present: absent values are `null`).
public struct RunSummary: Codable, Sendable {
  public var env: String
  public var env_steps: Int
  public var trained_steps: Int
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
}

/// One training run in one process: `num_workers` rollout threads and the learner
/// on the calling thread, joined by an in-memory ``FragmentQueue`` and ``WeightBoard``
/// (the ZeroMQ channels' in-process stand-ins).
public final class TrainingRun {
  public let config: TrainingConfig
  public let stop: StopCriteria
  public let runDirectory: RunDirectory
  let log: (String) -> Void

  /// A run of `config` writing into `runDirectory`; `log` receives progress lines.
  public init(config: TrainingConfig, stop: StopCriteria, runDirectory: RunDirectory, log: @escaping (String) -> Void) {
    self.config = config
    self.stop = stop
    self.runDirectory = runDirectory
    self.log = log
  }

  /// Everything a run's learner side holds: model, learner, channels, stats.
  public struct Parts {
    public let network: PolicyNetwork
    public let learner: Learner
    public let queue: FragmentQueue
    public let board: WeightBoard
    public let stats: RunStats
    /// The trainer's published status and curves (the stats endpoint reads it).
    public let status: StatusBoard
  }

  /// Builds the model, learner (restored from `RUN_DIR/checkpoint.herd` when
  /// `resume`), queue and weight board, and records the config.
  public func prepare(resume: Bool = false) throws -> Parts {
    let spaces = try EnvironmentFactory.spaces(config)
    let network = PolicyNetwork(config: config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
    let learner = Learner(config: config, network: network)
    let stats = RunStats(window: 100)
    if resume {
      let path = runDirectory.file("checkpoint.herd")
      let archive = try TensorArchive.read(from: path)
      try learner.parameters.restore(from: archive, optimizer: learner.optimizer, source: path)
      let meta = archive.metadata
      learner.restore(version: Int(meta["policy_version"] ?? "") ?? 0, trainedSteps: Int(meta["trained_steps"] ?? "") ?? 0)
      stats.restore(envSteps: Int(meta["env_steps"] ?? "") ?? 0, episodes: Int(meta["episodes"] ?? "") ?? 0)
      log("resumed from \(path): policy version \(learner.version), \(stats.snapshot(lags: false).envSteps) env steps")
    }
    let board = WeightBoard()
    board.publish(version: learner.version, weights: learner.parameters.flatValues)
    try runDirectory.writeAtomically("config.json", try config.prettyJSON() + "\n")
    return Parts(network: network, learner: learner, queue: FragmentQueue(capacity: config.learner_queue_size), board: board, stats: stats,
      status: StatusBoard())
  }

  /// Trains with `num_workers` rollout threads in this process until a stop
  /// criterion, `interrupted` or an error; always writes the checkpoint and
  /// `summary.json` before returning. `started` sees the parts before training
  /// begins (a stats endpoint reads their status board).
  public func run(interrupted: StopFlag, started: (Parts) throws -> Void = { _ in }) throws -> RunSummary {
    let parts = try prepare()
    try started(parts)
    let (network, queue, board, stats) = (parts.network, parts.queue, parts.board, parts.stats)
    let workersStop = StopFlag()
    let failure = FailureBox()
    log("run: env \(config.env), \(network.layout.count) parameters, \(config.num_workers) worker thread(s) x \(config.num_envs_per_worker) envs, batch \(config.fragmentsPerBatch) x \(config.max_seq_len), run dir \(runDirectory.path)")

    // Workers: act -> step -> record -> send, picking up new weights between steps.
    var threads: [Thread] = []
    let cfg = config
    for w in 0..<config.num_workers {
      let t = Thread {
        do {
          let worker = try RolloutWorker(config: cfg, network: network, workerID: w, seed: cfg.seed)
          while !workersStop.isSet {
            if let (v, blob) = board.latest(newerThan: worker.policyVersion) { try worker.setWeights(blob, version: v) }
            let before = worker.envSteps
            worker.step(emit: { f in _ = queue.send(f) }, episode: stats.record)
            stats.addEnvSteps(worker.envSteps - before)
          }
        } catch {
          failure.set("worker \(w): \(error)")
          workersStop.set()
        }
      }
      t.name = "herd-worker-\(w)"
      t.stackSize = 8 << 20
      threads.append(t)
      t.start()
    }
    return try trainLoop(parts, interrupted: interrupted, failure: { failure.message }) {
      workersStop.set()
      queue.close()
      for t in threads { while !t.isFinished { usleep(1000) } }
    }
  }

  /// The learner loop: batch -> update -> publish -> stats, until a stop criterion,
  /// `interrupted` or `failure()` says so; then `shutdown()` (stop the producers),
  /// the final checkpoint and `summary.json`. Fragments arrive in `parts.queue` from
  /// worker threads or from the network.
  public func trainLoop(
    _ parts: Parts, interrupted: StopFlag, failure: () -> String?, shutdown: () -> Void
  ) throws -> RunSummary {
    let (learner, queue, board, stats) = (parts.learner, parts.queue, parts.board, parts.stats)
    // Learner loop: batch -> update -> publish -> stats, until a stop criterion.
    let clock = ContinuousClock()
    let start = clock.now
    func seconds() -> Double {
      let d = clock.now - start; return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
    var pending: [Fragment] = []
    let n = config.fragmentsPerBatch
    var last: LearnerStepStats?
    var lastProgress = 0.0
    var lastStatus = -1.0
    var lastCheckpoint = 0.0
    var rates = RateWindow(seconds: 5)
    var best: Float?
    var reachedAt: (steps: Int, seconds: Double)?
    var reason = "stop criteria"
    func report(now: Double, stopped: String? = nil) -> TrainerStatus {
      let full = stats.snapshot()
      let r = rates.add(t: now, sampled: full.envSteps, trained: learner.trainedSteps)
      return TrainerStatus(
        wallSeconds: now, stats: full, updates: learner.version, trainedSteps: learner.trainedSteps,
        sampledPerSecond: r.sampled, trainedPerSecond: r.trained,
        lastUpdate: last.map {
          .init(
            policyLoss: $0.terms.policy, baselineLoss: $0.terms.baseline,
            entropyLoss: -config.entropy_coeff * $0.terms.entropy, entropy: $0.terms.entropy, gradNorm: $0.gradNorm,
            learningRate: $0.learningRate, meanRho: $0.terms.meanRho)
        }, queueDepth: queue.depth, queueCapacity: queue.capacity, stoppedBecause: stopped)
    }
    while true {
      parts.status.beat()
      // Intake: fresh fragments only.
      let incoming = queue.receive(max: n - pending.count, timeout: 0.05)
      let fresh = incoming.filter { learner.version - $0.policyVersion <= config.max_policy_lag }
      if fresh.count < incoming.count { stats.addDroppedStale(incoming.count - fresh.count) }
      pending += fresh
      // Update and publish.
      if pending.count >= n {
        let s = try learner.step(pending)
        pending.removeAll(keepingCapacity: true)
        if s.skipped { stats.addSkippedUpdate() }
        stats.recordLags(s.lags)
        last = s
        if learner.version % config.broadcast_interval == 0 {
          board.publish(version: learner.version, weights: learner.parameters.flatValues)
        }
      }
      // Status, progress, checkpoints, stop criteria.
      let now = seconds()
      let snap = stats.snapshot(lags: false)
      if let m = snap.meanReturn, snap.windowEpisodes >= 100 { best = max(best ?? m, m) }
      if reachedAt == nil, let r = stop.reward, let m = snap.meanReturn, snap.windowEpisodes >= 100, m >= r {
        reachedAt = (snap.envSteps, now)
      }
      var finished = false
      if let f = failure() { reason = "error: \(f)"; finished = true }
      if interrupted.isSet { reason = "interrupted"; finished = true }
      if reachedAt != nil { reason = "stop_reward reached"; finished = true }
      if let s = stop.envSteps, snap.envSteps >= s { reason = "stop_steps reached"; finished = true }
      if let s = stop.seconds, now >= s { reason = "stop_seconds reached"; finished = true }
      if now - lastStatus >= 1 || finished {
        let status = report(now: now, stopped: finished ? reason : nil)
        parts.status.publish(status)
        lastStatus = now
        if now - lastProgress >= config.progress_interval_seconds || finished {
          writeProgress(status)
          lastProgress = now
        }
      }
      if now - lastCheckpoint >= config.checkpoint_interval_seconds {
        try checkpoint(learner, snap)
        lastCheckpoint = now
      }
      if finished { break }
    }

    // Shutdown: stop the producers (unblock their sends), checkpoint, summary.
    shutdown()
    let final = stats.snapshot(lags: false)
    try checkpoint(learner, final)
    let summary = RunSummary(
      env: config.env, env_steps: final.envSteps, trained_steps: learner.trainedSteps, updates: learner.version,
      episodes: final.episodes, wall_seconds: seconds(), final_mean_return: final.meanReturn, best_mean_return: best,
      stop_reward: stop.reward, stop_reward_reached: reachedAt != nil, env_steps_to_stop_reward: reachedAt?.steps,
      seconds_to_stop_reward: reachedAt?.seconds, stopped_because: reason, dropped_stale_fragments: final.droppedStale,
      skipped_updates: final.skippedUpdates, use_lstm: config.use_lstm, run_dir: runDirectory.path)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    try runDirectory.writeAtomically(
      "summary.json", String(decoding: try encoder.encode(summary), as: UTF8.self) + "\n")
    if let f = failure() { throw ConfigError(f) }
    return summary
  }

  private func checkpoint(_ learner: Learner, _ s: RunStats.Snapshot) throws {
    try runDirectory.writeCheckpoint(
      learner, metadata: ["env_steps": String(s.envSteps), "episodes": String(s.episodes)])
  }

  private func writeProgress(_ t: TrainerStatus) {
    let s = t.stats
    let u = t.lastUpdate
    runDirectory.appendProgress([
      "wall_seconds": t.wallSeconds, "env_steps": s.envSteps, "trained_steps": t.trainedSteps, "updates": t.updates,
      "policy_version": t.updates, "episodes": s.episodes, "mean_return": jsonNumber(s.meanReturn),
      "min_return": jsonNumber(s.minReturn), "max_return": jsonNumber(s.maxReturn),
      "mean_length": jsonNumber(s.meanLength),
      "steps_per_second": t.sampledPerSecond, "trained_steps_per_second": t.trainedPerSecond,
      "losses/pg": jsonNumber(u?.policyLoss), "losses/baseline": jsonNumber(u?.baselineLoss),
      "losses/entropy": jsonNumber(u?.entropyLoss),
      "entropy": jsonNumber(u?.entropy), "grad_norm": jsonNumber(u?.gradNorm), "lr": jsonNumber(u?.learningRate),
      "mean_rho": jsonNumber(u?.meanRho), "policy_lag_p50": s.lagP50, "policy_lag_p95": s.lagP95,
      "policy_lag_max": s.lagMax, "dropped_stale": s.droppedStale, "queue_depth": t.queueDepth,
    ])
    log(Self.progressLine(t))
  }

  /// The one-line progress report the learner logs every few seconds.
  public static func progressLine(_ t: TrainerStatus) -> String {
    let s = t.stats
    func f(_ x: Float?, _ digits: Int = 2) -> String { x.map { String(format: "%.\(digits)f", $0) } ?? "-" }
    let ret = s.meanReturn.map { "\(f($0)) (\(s.windowEpisodes) ep)" } ?? "- (no episode yet)"
    return String(
      format: "%7.1fs  steps %@ (%@/s)  updates %d  return %@  loss pg %@ vf %@ ent %@  lag p50 %d max %d",
      t.wallSeconds, Int(s.envSteps).formatted(), Int(t.sampledPerSecond).formatted(), t.updates, ret,
      f(t.lastUpdate?.policyLoss, 3), f(t.lastUpdate?.baselineLoss, 3), f(t.lastUpdate?.entropy, 3), s.lagP50,
      s.lagMax)
  }
}

/// The first error a worker thread hit.
final class FailureBox: @unchecked Sendable {
  private let lock = SpinlessLock()
  private var text: String?
  func set(_ s: String) { lock.withLock { if text == nil { text = s } } }
  var message: String? { lock.withLock { text } }
}
