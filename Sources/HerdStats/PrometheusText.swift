import Foundation

/// The stats in Prometheus' text exposition format (version 0.0.4), written by hand:
/// `# HELP` and `# TYPE` before each family, counters named `..._total` (in their
/// HELP and TYPE lines too), gauges for
/// levels, one label set per worker, label values escaped, absent values left out
/// (no sample rather than a made-up number).
public enum PrometheusText {
  /// One metric family.
  struct Family {
    var name: String
    var type: String
    var help: String
    var samples: [(labels: [(String, String)], value: Double)]
  }

  public static func render(_ d: StatsDocument, health: Health) -> String {
    var f: [Family] = []
    func gauge(_ name: String, _ help: String, _ v: Double?) {
      f.append(Family(name: name, type: "gauge", help: help, samples: v.map { [([], $0)] } ?? []))
    }
    func counter(_ name: String, _ help: String, _ v: Int) {
      f.append(Family(name: name, type: "counter", help: help, samples: [([], Double(v))]))
    }
    let run = [("env", d.env), ("run_dir", d.runDir), ("learner_session", d.runID)]
    f.append(Family(name: "herd_run_info", type: "gauge", help: "Constant 1, labelled with the run's env, run directory and learner session.", samples: [(run, 1)]))
    gauge("herd_up", "1 while the run trains or starts (/healthz 200), 0 when stalled or stopped.", health.healthy ? 1 : 0)
    gauge("herd_uptime_seconds", "Seconds since the learner started.", d.uptimeSeconds)
    gauge("herd_policy_version", "Policy version (updates applied).", Double(d.policyVersion))
    counter("herd_updates", "Learner updates applied.", d.updates)
    counter("herd_env_steps_sampled", "Env steps sampled by the workers.", d.envStepsSampled)
    counter("herd_env_steps_trained", "Env steps trained on.", d.envStepsTrained)
    gauge("herd_sampled_steps_per_second", "Env steps sampled per second (last 5 s).", d.sampledPerSecond)
    gauge("herd_trained_steps_per_second", "Env steps trained per second (last 5 s).", d.trainedPerSecond)
    counter("herd_episodes", "Episodes finished.", d.episodes)
    gauge("herd_episode_return_mean", "Mean return over the last 100 episodes.", d.returnMean.map(Double.init))
    gauge("herd_episode_return_min", "Lowest return over the last 100 episodes.", d.returnMin.map(Double.init))
    gauge("herd_episode_return_max", "Highest return over the last 100 episodes.", d.returnMax.map(Double.init))
    gauge("herd_episode_length_mean", "Mean length over the last 100 episodes.", d.lengthMean.map(Double.init))
    var losses: [(labels: [(String, String)], value: Double)] = []
    for (term, v) in [("pg", d.lossPG), ("baseline", d.lossBaseline), ("entropy", d.lossEntropy)] {
      if let v { losses.append(([("term", term)], Double(v))) }
    }
    f.append(Family(name: "herd_loss", type: "gauge", help: "The latest update's loss terms (entropy: -entropy_coeff * entropy).", samples: losses))
    gauge("herd_policy_entropy", "Mean policy entropy in the latest update.", d.entropy.map(Double.init))
    gauge("herd_grad_norm", "Global gradient norm before clipping, latest update.", d.gradNorm.map(Double.init))
    gauge("herd_learning_rate", "Learning rate of the latest update.", d.learningRate.map(Double.init))
    gauge("herd_mean_rho", "Mean importance weight pi/mu in the latest update.", d.meanRho.map(Double.init))
    counter("herd_skipped_updates", "Updates skipped for a non-finite gradient.", d.skippedUpdates)
    gauge("herd_policy_lag_p50", "Median policy lag (updates) over the last 1000 trained fragments.", Double(d.lagP50))
    gauge("herd_policy_lag_p95", "95th percentile policy lag over the last 1000 trained fragments.", Double(d.lagP95))
    gauge("herd_policy_lag_max", "Largest policy lag over the last 1000 trained fragments.", Double(d.lagMax))
    gauge("herd_queue_depth", "Fragments waiting in the learner's queue.", Double(d.queueDepth))
    gauge("herd_queue_capacity", "The learner queue's capacity in fragments.", Double(d.queueCapacity))
    gauge("herd_seconds_since_fragments", "Seconds since fragments last arrived.", d.secondsSinceFragments)
    f.append(
      Family(
        name: "herd_dropped_messages", type: "counter", help: "Messages dropped, by reason.",
        samples: d.dropped.sorted { $0.key < $1.key }.map { ([("reason", $0.key)], Double($0.value)) }))
    let states = ["connected", "lost", "left"]
    f.append(
      Family(
        name: "herd_workers", type: "gauge", help: "Worker sessions by state.",
        samples: states.map { s in ([("state", s)], Double(d.workers.filter { $0.state == s }.count)) }))
    func perWorker(_ name: String, _ type: String, _ help: String, _ value: (StatsDocument.WorkerRow) -> Double?) {
      let samples = d.workers.compactMap { w -> (labels: [(String, String)], value: Double)? in
        value(w).map { ([("worker", String(w.id)), ("host", w.host)], $0) }
      }
      f.append(Family(name: name, type: type, help: help, samples: samples))
    }
    perWorker("herd_worker_env_steps", "counter", "Env steps a worker sampled (its heartbeat).") { Double($0.envSteps) }
    perWorker("herd_worker_episodes", "counter", "Episodes a worker finished.") { Double($0.episodes) }
    perWorker("herd_worker_steps_per_second", "gauge", "A worker's env steps per second.") { $0.stepsPerSecond }
    perWorker("herd_worker_mean_return", "gauge", "Mean return of a worker's last 100 episodes.") { $0.meanReturn.map(Double.init) }
    perWorker("herd_worker_policy_version", "gauge", "The policy version a worker acts with.") { Double($0.policyVersion) }
    perWorker("herd_worker_envs", "gauge", "Environments a worker steps.") { Double($0.envs) }
    perWorker("herd_worker_seconds_since_heartbeat", "gauge", "Seconds since a worker's last heartbeat.") { $0.secondsSinceHeartbeat }
    perWorker("herd_worker_connected", "gauge", "1 while a worker is connected.") { $0.state == "connected" ? 1 : 0 }
    return f.map(text).joined()
  }

  static func text(_ f: Family) -> String {
    // In the 0.0.4 text format a family's HELP/TYPE name is its samples' name, so
    // a counter is declared as `..._total` (as prometheus_client writes it too).
    let sampleName = f.type == "counter" ? f.name + "_total" : f.name
    var out = "# HELP \(sampleName) \(f.help.replacingOccurrences(of: "\\", with: "\\\\"))\n# TYPE \(sampleName) \(f.type)\n"
    for s in f.samples {
      out += sampleName
      if !s.labels.isEmpty {
        out += "{" + s.labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
      }
      out += " \(number(s.value))\n"
    }
    return out
  }

  /// A label value with backslash, quote and newline escaped.
  static func escape(_ s: String) -> String {
    s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
      .replacingOccurrences(of: "\n", with: "\\n")
  }

  /// A sample value as Prometheus writes it (integers without a fraction, +Inf, NaN).
  static func number(_ v: Double) -> String {
    if v.isNaN { return "NaN" }
    if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
    if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
    return "\(v)"
  }
}
