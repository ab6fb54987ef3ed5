import Foundation
import Prometheus

/// `/metrics`: the stats document in Prometheus' text format (0.0.4) through
/// swift-prometheus. Each scrape fills a fresh `PrometheusCollectorRegistry` from
/// one ``StatsDocument``, so the exposition is exactly that document: counters
/// named `..._total`, gauges for levels, one label set per worker, label values
/// escaped by the library, and absent values left out (no sample rather than a
/// made-up number). A registry kept across scrapes would have to forget departed
/// label sets by hand; the document is already the single source of the values.
public struct MetricsExporter: Sendable {
  public init() {}

  public func render(_ d: StatsDocument, health: Health) -> String {
    let r = PrometheusCollectorRegistry()
    func gauge(_ name: String, _ help: String, _ v: Double?, labels: [(String, String)] = []) {
      guard let v else { return }
      r.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels).set(v)
    }
    func counter(_ name: String, _ help: String, _ v: Int, labels: [(String, String)] = []) {
      r.makeCounter(descriptor: MetricNameDescriptor(metricName: name, unitName: "total", helpText: help), labels: labels)
        .increment(by: Int64(max(0, v)))
    }
    gauge(
      "herd_run_info", "Constant 1, labelled with the run's env, run directory and learner session.", 1,
      labels: [("env", d.env), ("run_dir", d.runDir), ("learner_session", d.runID)])
    gauge("herd_up", "1 while the run trains or starts (/healthz 200), 0 when stalled or stopped.", health.healthy ? 1 : 0)
    gauge("herd_uptime_seconds", "Seconds since the learner started.", d.uptimeSeconds)
    gauge("herd_policy_version", "Policy version (updates applied).", Double(d.policyVersion))
    counter("herd_updates", "Learner updates applied.", d.updates)
    counter("herd_env_steps_sampled", "Env steps sampled by the workers.", d.envStepsSampled)
    counter("herd_env_steps_trained", "Env steps trained on.", d.envStepsTrained)
    counter("herd_env_steps_reused", "Timesteps trained again (num_epochs passes after the first, idle reuse).", d.envStepsReused)
    gauge("herd_sample_reuse", "(trained + reused) / trained timesteps: 1 when each sample is trained on once.", d.sampleReuse)
    counter("herd_env_step_errors", "Environment steps that raised (the episode ended, the environment was made again).", d.envStepErrors)
    counter("herd_env_host_restarts", "Env host processes that died and were started again.", d.envHostRestarts)
    counter("herd_env_nonfinite", "Non-finite observations or rewards (the episode ended and was reset).", d.envNonFinite)
    gauge("herd_sampled_steps_per_second", "Env steps sampled per second (last 5 s).", d.sampledPerSecond)
    gauge("herd_trained_steps_per_second", "Env steps trained per second (last 5 s).", d.trainedPerSecond)
    counter("herd_episodes", "Episodes finished.", d.episodes)
    gauge("herd_episode_return_mean", "Mean return over the last 100 episodes.", d.returnMean.map(Double.init))
    gauge("herd_episode_return_min", "Lowest return over the last 100 episodes.", d.returnMin.map(Double.init))
    gauge("herd_episode_return_max", "Highest return over the last 100 episodes.", d.returnMax.map(Double.init))
    gauge("herd_episode_length_mean", "Mean length over the last 100 episodes.", d.lengthMean.map(Double.init))
    for (key, v) in d.episodeInfo.sorted(by: { $0.key < $1.key }) {
      gauge(
        "herd_episode_info_mean", "Mean of an episode_info_keys entry over the last 100 episodes that had it.",
        v.map(Double.init), labels: [("key", key)])
    }
    counter("herd_evaluations", "Evaluations of the learner's weights finished (evaluation_interval_env_steps).", d.evaluations ?? 0)
    if let e = d.evaluation {
      gauge("herd_evaluation_return_mean", "Mean return of the latest evaluation's episodes.", e.returnMean)
      gauge("herd_evaluation_length_mean", "Mean length of the latest evaluation's episodes.", e.lengthMean)
      gauge("herd_evaluation_env_steps", "Env steps sampled when the latest evaluation's weights were taken.", Double(e.envSteps))
      for (key, v) in e.info.sorted(by: { $0.key < $1.key }) {
        gauge(
          "herd_evaluation_info_mean", "Mean of an episode_info_keys entry over the latest evaluation's episodes that had it.",
          v, labels: [("key", key)])
      }
    }
    gauge("herd_evaluation_return_best", "The best evaluation's mean return so far.", d.bestEvaluation?.returnMean)
    let lossHelp = "The latest update's loss terms (entropy: -entropy_coeff * entropy)."
    for (term, v) in [("pg", d.lossPG), ("baseline", d.lossBaseline), ("entropy", d.lossEntropy)] {
      gauge("herd_loss", lossHelp, v.map(Double.init), labels: [("term", term)])
    }
    gauge("herd_policy_entropy", "Mean policy entropy in the latest update.", d.entropy.map(Double.init))
    gauge("herd_grad_norm", "Global gradient norm before clipping, latest update.", d.gradNorm.map(Double.init))
    gauge("herd_learning_rate", "Learning rate of the latest update.", d.learningRate.map(Double.init))
    gauge("herd_entropy_coeff", "Entropy bonus weight of the latest update.", d.entropyCoeff.map(Double.init))
    gauge("herd_mean_rho", "Mean importance weight pi/mu in the latest update.", d.meanRho.map(Double.init))
    gauge(
      "herd_clipped_fraction", "Fraction of the latest update's steps whose policy gradient the clip zeroed.",
      d.clippedFraction.map(Double.init))
    counter("herd_skipped_updates", "Updates skipped for a non-finite gradient.", d.skippedUpdates)
    gauge("herd_policy_lag_p50", "Median policy lag (updates) over the last 1000 trained fragments.", Double(d.lagP50))
    gauge("herd_policy_lag_p95", "95th percentile policy lag over the last 1000 trained fragments.", Double(d.lagP95))
    gauge("herd_policy_lag_max", "Largest policy lag over the last 1000 trained fragments.", Double(d.lagMax))
    gauge("herd_queue_depth", "Fragments waiting in the learner's queue.", Double(d.queueDepth))
    gauge("herd_queue_bytes", "Bytes the fragments in the learner's queue hold (uint8 images: one per pixel).", Double(d.queueBytes))
    gauge("herd_replay_fragments", "Fragments in the learner's replay buffer (replay_buffer_num_slots).", Double(d.replayFragments))
    gauge("herd_replay_bytes", "Bytes the fragments in the replay buffer hold.", Double(d.replayBytes))
    gauge("herd_queue_capacity", "The learner queue's capacity in fragments.", Double(d.queueCapacity))
    gauge("herd_seconds_since_fragments", "Seconds since fragments last arrived.", d.secondsSinceFragments)
    gauge("herd_disk_ok", "1 while the run directory takes every write, 0 after a failed write (disk full).", d.diskError == nil ? 1 : 0)
    // The names of Prometheus' own process collectors, which alerts already use.
    gauge("process_open_fds", "Open file descriptors of the learner process.", d.openFiles.map(Double.init))
    gauge("process_max_fds", "The learner process's open-file limit (RLIMIT_NOFILE, soft).", d.openFilesLimit.map(Double.init))
    for (reason, n) in d.dropped.sorted(by: { $0.key < $1.key }) {
      counter("herd_dropped_messages", "Messages dropped, by reason.", n, labels: [("reason", reason)])
    }
    for state in ["connected", "lost", "left"] {
      gauge("herd_workers", "Worker sessions by state.", Double(d.workers.filter { $0.state == state }.count), labels: [("state", state)])
    }
    for w in d.workers {
      let l = [("worker", String(w.id)), ("host", w.host)]
      counter("herd_worker_env_steps", "Env steps a worker sampled (its heartbeat).", w.envSteps, labels: l)
      counter("herd_worker_episodes", "Episodes a worker finished.", w.episodes, labels: l)
      gauge("herd_worker_steps_per_second", "A worker's env steps per second.", w.stepsPerSecond, labels: l)
      gauge("herd_worker_mean_return", "Mean return of a worker's last 100 episodes.", w.meanReturn.map(Double.init), labels: l)
      gauge("herd_worker_policy_version", "The policy version a worker acts with.", Double(w.policyVersion), labels: l)
      gauge("herd_worker_envs", "Environments a worker steps.", Double(w.envs), labels: l)
      gauge("herd_worker_seconds_since_heartbeat", "Seconds since a worker's last heartbeat.", w.secondsSinceHeartbeat, labels: l)
      gauge("herd_worker_connected", "1 while a worker is connected.", w.state == "connected" ? 1 : 0, labels: l)
    }
    return r.emitToString()
  }
}
