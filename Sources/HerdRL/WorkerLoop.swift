import Foundation
import HerdEnvs
import HerdMath
import Logging

/// The one rollout loop every worker runs, in a thread of the learner's process or
/// in a worker process on another host; only the ``WorkerTransport`` differs.
///
/// Connect (backing off while the learner does not answer) -> session: pick up new
/// weights -> act -> step -> record -> send -> heartbeat, until `stop` or the
/// learner forgets the session (then say hello again). A fatal ``Refusal`` ends it.
public final class WorkerLoop {
  let transport: any WorkerTransport
  /// Environments to step (nil: the run's `num_envs_per_worker`).
  let envs: Int?
  let seed: UInt64
  /// Random per worker start: the learner tells a restarted worker by it.
  public let runID: UInt64
  let logger: Logger
  /// Host name and pid reported in the hello.
  let host: String
  let pid: Int
  /// How Gymnasium environments are hosted.
  let envHost: EnvHostSettings
  /// The environments, made once from the run's config and kept across sessions.
  private var made: (envs: any VectorEnv, config: TrainingConfig)?

  /// Fragments per send, and the longest a completed fragment waits to be sent.
  public var sendEvery = (fragments: 8, seconds: 0.1)
  /// Seconds between heartbeats.
  public var heartbeatSeconds = 2.0
  /// The share of a progress interval's env steps ending in a fault (a step that
  /// raised, a misshapen or non-finite observation) from which the worker warns.
  static let faultWarningShare = 0.1
  /// The level of the lines that say the worker stopped (`herd train`'s workers
  /// log them at debug: the run's summary follows).
  public var stopLogLevel = Logger.Level.info

  public init(
    transport: any WorkerTransport, envs: Int?, seed: UInt64, runID: UInt64? = nil, logger: Logger,
    host: String = ProcessInfo.processInfo.hostName, pid: Int = Int(getpid()),
    envHost: EnvHostSettings = EnvHostSettings()
  ) {
    self.envHost = envHost
    self.transport = transport
    self.envs = envs
    self.seed = seed
    var g = SystemRandomNumberGenerator()
    self.runID = runID ?? g.next()
    self.logger = logger
    self.host = host
    self.pid = pid
  }

  /// Runs sessions until `stop` is set; between sessions it reconnects with
  /// backoff (0.5 s doubling to 10 s). The first answer is the run's config: the
  /// worker makes its environments from it, then says hello with their spec. Throws
  /// a fatal ``Refusal`` or a local error (environments that cannot be made).
  public func run(stop: StopFlag) throws {
    defer {
      made?.envs.close()
      made = nil
    }
    var backoff = 0.5
    while !stop.isSet {
      let hello = WorkerHello(runID: runID, host: host, pid: pid, envs: envs, envSpec: made?.envs.spec)
      guard let answer = try transport.connect(hello, stop: stop) else {
        transport.disconnect()
        if stop.isSet { break }
        logger.info(
          "worker: no answer from \(transport.learnerAddress); retrying in \(String(format: "%.1f", backoff)) s")
        _ = stop.wait(seconds: backoff)
        backoff = min(backoff * 2, 10)
        continue
      }
      backoff = 0.5
      switch answer {
      case .describe(var config):
        transport.disconnect()
        if let envs { config.num_envs_per_worker = envs }
        try makeEnvironments(config)
      case .admitted(let admission):
        defer { transport.disconnect() }
        try session(admission, stop: stop)
      }
    }
    logger.log(level: stopLogLevel, "worker: stopped")
  }

  /// Makes the run's environments (once; again only if the run's environment changed).
  func makeEnvironments(_ config: TrainingConfig) throws {
    if let m = made, m.config.env == config.env, m.config.env_config == config.env_config,
      m.envs.count == config.num_envs_per_worker
    {
      return
    }
    made?.envs.close()
    made = nil
    try MemoryFootprint.checkBuiltIn(config, learner: false)  // before making K copies
    let logger = self.logger
    let envs = try EnvironmentFactory.make(
      config, count: config.num_envs_per_worker, seed: RolloutWorker.envSeed(seed: seed, workerID: 0),
      host: envHost, exactCount: true, log: { logger.warning("\($0)") })
    let spec = envs.spec
    let processes = (envs as? HostedEnvironments)?.hostPIDs.count
    let hosts = processes.map { $0 == 1 ? " in 1 env host process" : " in \($0) env host processes" } ?? ""
    let agents = envs.agentsPerGame
    let games = agents > 1 ? " (\(envs.count / agents) games of \(agents) agents, a row each, one policy)" : ""
    for note in (envs as? HostedEnvironments)?.notes ?? [] { logger.notice("\(config.env): \(note)") }
    for part in spec.observation.droppedParts {
      logger.notice("\(config.env): observation part \(part) is not numbers; the policy does not see it")
    }
    logger.info(
      "worker: \(envs.count) envs of \(config.env)\(games)\(config.wrappedText)\(hosts): observations \(spec.observation) (\(spec.observationSize) \(spec.observation.flatIsBytes ? "bytes" : "floats")), actions \(spec.action)"
    )
    made = (envs, config)
  }

  /// One session: from an admission until `stop` or the learner forgets it.
  func session(_ a: Admission, stop: StopFlag) throws {
    var config = a.config
    if let envs { config.num_envs_per_worker = envs }
    guard let made else { throw Refusal.refused("admitted before the environments were made") }
    let conv: ConvPlan?
    do {
      conv = try ConvPlan.make(config: config, observation: made.envs.spec.observation)
    } catch {
      throw Refusal.refused("the learner's config does not fit the environments here: \(error)")
    }
    // The action mask, as the learner found it in the same spaces (they described them).
    let mask: Range<Int>?
    do {
      guard made.envs.spec.observationSize == a.spec.observationSize else {
        throw ConfigError(
          "its observations have \(a.spec.observationSize) floats, these \(made.envs.spec.observationSize)")
      }
      mask = try PolicyNetwork.actionMask(
        config: config, observation: made.envs.spec.observation, actions: a.spec.actionDims > 0 ? nil : a.spec.actionCount,
        conv: conv)
    } catch {
      throw Refusal.refused("the learner's config does not fit the environments here: \(error)")
    }
    let network = PolicyNetwork(
      config: config, observationSize: a.spec.observationSize, actionCount: a.spec.actionCount,
      actionHeads: a.spec.actionHeads, continuousDims: a.spec.actionDims > 0 ? a.spec.actionDims : nil, conv: conv,
      actionMask: mask)
    guard ModelSpec(config: config, network: network) == a.spec else {
      throw Refusal.refused(
        "the learner's model (\(a.spec)) is not the one its config builds here (\(ModelSpec(config: config, network: network)))"
      )
    }
    // Built-in environments were checked before their copies were made.
    if config.gymID != nil {
      do {
        try MemoryFootprint.worker(
          config, network: network, envs: made.envs.count,
          observationBytes: made.envs.spec.observation.flatIsBytes ? 1 : 4
        ).check(against: MemoryFootprint.physicalMemory, role: "worker")
      } catch {
        throw Refusal.refused("\(error)")
      }
    }
    let worker = try RolloutWorker(
      config: config, network: network, envs: made.envs, workerID: a.workerID, seed: seed, runID: runID, selfPlay: true)
    defer {
      worker.drain()  // with the waiting handler still set: a stop does not wait for a hung host
      made.envs.setWaitingHandler(nil)
    }
    try worker.setWeights(a.weights, version: a.policyVersion)
    logger.info(
      "worker \(a.workerID): welcomed by \(transport.learnerAddress) at policy version \(a.policyVersion); \(config.num_envs_per_worker) envs of \(config.env)"
    )
    if let s = worker.pool?.settings {
      logger.info(
        "worker \(a.workerID): self-play against the past: keeps its policy every \(s.interval) versions, the newest \(s.size); one of them plays every seat but one in \(Int((s.fraction * 100).rounded()))% of games"
      )
    }
    var pending: [Fragment] = []
    var episodes: [EpisodeRecord] = []
    var recent: [Float] = []
    var stepsSinceSend = 0
    var stepsInWindow = 0
    var totalEpisodes = 0
    let clock = ContinuousClock()
    var lastSend = clock.now
    var lastBeat: ContinuousClock.Instant?
    var lastBeatSteps = 0
    var lastWeights = clock.now
    var lastProgress = (time: clock.now, steps: 0)
    var lastFaults = worker.envs.faults
    var faultWarnedAt: ContinuousClock.Instant?
    func seconds(since t: ContinuousClock.Instant) -> Double {
      let d = clock.now - t
      return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
    func meanRecent() -> Float { recent.isEmpty ? .nan : recent.reduce(0, +) / Float(recent.count) }

    /// A heartbeat, when one is due: from the loop, and while a slow environment
    /// step keeps the loop waiting (so the learner does not take a worker whose
    /// environment takes seconds per step as lost).
    func beatIfDue() throws {
      guard lastBeat.map({ seconds(since: $0) >= heartbeatSeconds }) ?? true else { return }
      let dt = lastBeat.map { seconds(since: $0) } ?? 1
      try transport.heartbeat(
        WorkerBeat(
          workerID: a.workerID, runID: runID, envSteps: Int64(worker.envSteps), episodes: Int64(totalEpisodes),
          stepsPerSecond: Double(worker.envSteps - lastBeatSteps) / max(dt, 1e-3), meanReturn: meanRecent(),
          policyVersion: Int64(worker.policyVersion), faults: worker.envs.faults))
      lastBeat = clock.now
      lastBeatSteps = worker.envSteps
    }
    // While it waits for a slow environment: stop when told (a hung env host
    // would otherwise hold the worker for env_step_timeout_seconds), else beat. A
    // failed beat is tried again at the next one; the loop's own reports it.
    made.envs.setWaitingHandler { _ in
      if stop.isSet { throw StoppedWhileWaiting() }
      try? beatIfDue()
    }

    while !stop.isSet {
      // Weights: keep the newest that arrived.
      if let (v, blob) = try transport.receiveWeights(newerThan: worker.policyVersion) {
        try worker.setWeights(blob, version: v)
        lastWeights = clock.now
      }
      // Act, step, record.
      let before = worker.envSteps
      // sync_sampling: every env's fragments close together every max_seq_len steps,
      // and only then is the batch sent (a window of K x T steps, like PPO's rollout).
      let cut = config.sync_sampling && stepsInWindow + 1 >= config.max_seq_len
      do {
        try worker.step(emit: { pending.append($0) }, episode: { episodes.append($0) }, cut: cut)
      } catch is StoppedWhileWaiting {
        logger.log(level: stopLogLevel, "worker \(a.workerID): stopping without waiting for the environments' step")
        break
      }
      stepsInWindow = cut ? 0 : stepsInWindow + 1
      stepsSinceSend += worker.envSteps - before
      // Send what completed; a full learner makes this wait (backpressure).
      let due =
        config.sync_sampling
        ? cut && !pending.isEmpty
        : pending.count >= sendEvery.fragments || (!pending.isEmpty && seconds(since: lastSend) > sendEvery.seconds)
      if due {
        let batch = FragmentBatch(fragments: pending, episodes: episodes, envSteps: stepsSinceSend)
        if !(try transport.send(batch, session: a, runID: runID, stop: stop)) { break }
        for e in episodes { recent.append(e.envReturn) }
        if recent.count > 100 { recent.removeFirst(recent.count - 100) }
        totalEpisodes += episodes.count
        pending.removeAll(keepingCapacity: true)
        episodes.removeAll(keepingCapacity: true)
        stepsSinceSend = 0
        lastSend = clock.now
      }
      try beatIfDue()
      // A progress line every 5 progress intervals (10 s by default).
      let sinceProgress = seconds(since: lastProgress.time)
      if sinceProgress >= 5 * config.progress_interval_seconds {
        let steps = worker.envSteps - lastProgress.steps
        let rate = Double(steps) / sinceProgress
        let ret = recent.isEmpty ? "-" : String(format: "%.2f", meanRecent())
        let faults = worker.envs.faults
        let (errors, nonFinite, restarts) = (
          faults.stepErrors - lastFaults.stepErrors, faults.nonFiniteObservations - lastFaults.nonFiniteObservations,
          faults.hostRestarts - lastFaults.hostRestarts
        )
        let faultText =
          errors + nonFinite + restarts > 0
          ? "  env faults: \(errors.formatted()) step errors, \(nonFinite.formatted()) non-finite, \(restarts) host restarts"
          : ""
        logger.info(
          "worker \(a.workerID): steps \(worker.envSteps.formatted()) (\(Int(rate).formatted())/s)  episodes \(totalEpisodes)  return \(ret)  policy version \(worker.policyVersion) (weights \(String(format: "%.1f", seconds(since: lastWeights))) s old)\(faultText)"
        )
        // Most steps ending in a fault: the run learns nothing, whatever its curves
        // look like. Said at once, then at most every 10 minutes while it lasts.
        if steps > 0 && Double(errors + nonFinite) >= Self.faultWarningShare * Double(steps),
          faultWarnedAt.map({ seconds(since: $0) >= 600 }) ?? true
        {
          faultWarnedAt = clock.now
          logger.warning(
            "worker \(a.workerID): \((errors + nonFinite).formatted()) of \(steps.formatted()) env steps in the last \(Int(sinceProgress.rounded())) s ended in an environment fault (\(errors.formatted()) raised in step or had an observation of another shape, \(nonFinite.formatted()) non-finite): each such episode ends at once and teaches the policy nothing; the env host's first traceback of each kind is above"
          )
        }
        lastFaults = faults
        lastProgress = (clock.now, worker.envSteps)
      }
      // The learner's decisions.
      if let r = try transport.receiveRefusal() {
        if r.isFatal { throw r }
        if case .learnerGone = r {
          logger.warning("worker \(a.workerID): \(r); saying hello until a learner answers")
        } else {
          logger.notice("worker \(a.workerID): the learner does not know this session (\(r)); saying hello again")
        }
        return
      }
    }
    transport.goodbye(workerID: a.workerID, runID: runID, reason: "stopped")
    logger.log(
      level: stopLogLevel,
      "worker \(a.workerID): stopping after \(worker.envSteps.formatted()) env steps and \(totalEpisodes.formatted()) episodes; said goodbye to \(transport.learnerAddress)"
    )
  }
}

/// Thrown by the waiting handler of a worker (or an evaluation) told to stop while
/// it waits for its environments' step.
struct StoppedWhileWaiting: Error {}
