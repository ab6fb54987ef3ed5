import ArgumentParser
import Foundation
import HerdLearner
import HerdRL

/// `herd eval`: a trained policy, run for N episodes, its returns and lengths.
struct EvalCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "eval",
    abstract: "Run a trained policy for a number of episodes and report its returns and episode lengths.",
    discussion: """
      Reads a run directory (its checkpoint.herd, config and env_spec.json) or a
      checkpoint file, makes the run's environment (or --env, with the same spaces)
      and runs the policy as it acted in training: each environment carries its
      recurrent state and previous action and reward through its episode, and they
      start from zeros at every episode start. Actions are sampled from the policy,
      or with --greedy each head's most likely action (a Gaussian policy's mean).
      Environment i runs a fixed share of the episodes, so short episodes are not
      favoured.

      Prints progress on stderr, then the result as JSON on stdout: the mean,
      standard deviation, min and max of the return and the length, and under
      "info" those of each info key (--info-key, or the run's episode_info_keys:
      a success flag, a score) over the episodes whose last info had it. --output
      writes the same with every episode's return, length and info values. Ctrl-C
      stops early and reports the episodes finished so far ("complete": false).

      Examples:
        herd eval --checkpoint runs/demo --episodes 100 --greedy
        herd eval --checkpoint runs/demo/checkpoint.herd --env CartPole-v1 \\
          --output eval.json
        herd eval --checkpoint runs/fetch --info-key is_success
      """
  )

  @Option(help: "A run directory (its checkpoint.herd) or a checkpoint file.")
  var checkpoint: String
  @Option(
    help: """
      Evaluate on this environment instead of the run's (a built-in name or gym:ID); its observation and action \
      spaces must be the run's.
      """)
  var env: String?
  @Option(parsing: .unconditional, help: "Episodes to run (at least 1).")
  var episodes = 100
  @Flag(help: "Act with each head's most likely action (a Gaussian policy's mean) instead of sampling from the policy.")
  var greedy = false
  @Option(
    parsing: .unconditional,
    help: "Environments stepped together (default: the smaller of --episodes and the run's envs per worker).")
  var envs: Int?
  @Option(parsing: .unconditional, help: "Seed for the environments (copy i gets seed * 1000 + i) and for sampling.", transform: seedArgument)
  var seed: UInt64 = 1
  @Option(
    help: """
      Also write the result JSON, with every episode's return and length, to this file (its folder is made if \
      missing; the file is written whole, then renamed into place).
      """)
  var output: String?
  @Option(
    help: """
      Write the first episode of environment 0 to this animated GIF (gym:ID environments that render rgb_array \
      frames; needs Pillow, which make venv installs; its folder is made if missing).
      """)
  var record: String?
  @Option(
    name: .customLong("info-key"),
    help: ArgumentHelp(
      "Record this key of the info dict at each episode's end and report its mean, as a number (a bool counts 1 or 0); repeatable (default: the run's episode_info_keys). gym:ID environments only.",
      valueName: "KEY"))
  var infoKeys: [String] = []
  @OptionGroup var envHost: EnvHostOptions

  func validate() throws {
    guard episodes >= 1 else { throw ValidationError("--episodes must be at least 1, got \(episodes)") }
    if let k = envs, k < 1 { throw ValidationError("--envs must be at least 1, got \(k)") }
    try envHost.validate()
  }

  func run() throws {
    let policy = try TrainedPolicy.load(checkpoint, host: envHost.settings)
    var config = policy.config
    if let env {
      config.env = env
      config.env_config = TrainingConfig.defaults(for: env).env_config
      let spec = try EnvironmentFactory.spec(config, host: envHost.settings)
      guard spec.observation == policy.spec.observation, spec.action == policy.spec.action else {
        throw CommandFailure(
          "--env \(env) has observation space \(spec.observation) and action space \(spec.action); the policy was trained on \(policy.spec.observation) and \(policy.spec.action)"
        )
      }
    }
    if !infoKeys.isEmpty {
      guard config.gymID != nil else {
        throw CommandFailure("--info-key needs a gym:ID environment: \(config.env) is built in and has no info dict")
      }
      config.episode_info_keys = infoKeys
      do {
        try config.validate()
      } catch let error as ConfigError {
        throw CommandFailure("--info-key: \(error)")
      }
    } else if config.gymID == nil {
      config.episode_info_keys = []  // the run's keys were for its gym:ID environment, not this built-in one
    }
    if record != nil && config.gymID == nil {
      throw CommandFailure(
        "--record needs an environment that renders frames: \(config.env) is built in and has no renderer (gym:ID environments render, e.g. gym:CartPole-v1)"
      )
    }
    // A path that cannot be written fails now, not after the episodes.
    if let output { try Self.prepareFile(output, option: "--output", example: "eval.json") }
    if let record { try Self.prepareFile(record, option: "--record", example: "episode.gif") }
    let k = min(envs ?? min(episodes, config.num_envs_per_worker), episodes)
    StopSignals.install(interruptFlag)
    printError(
      "eval: \(policy.source) (policy version \(policy.policyVersion)) on \(config.env), \(episodes) episodes in \(k) envs, \(greedy ? "greedy" : "sampled")"
    )
    var host = envHost.settings
    host.record = record.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
    let environments = try EnvironmentFactory.make(
      config, count: k, seed: seed &* 1000, host: host, log: { printError($0) })
    defer { environments.close() }
    let clock = ContinuousClock()
    let start = clock.now
    var lastShown = clock.now
    let result = try Evaluation.run(
      config: config, network: policy.network, weights: policy.weights, envs: environments, episodes: episodes,
      greedy: greedy, seed: seed, stop: interruptFlag
    ) { r in
      guard clock.now - lastShown >= .seconds(2) else { return }
      lastShown = clock.now
      printError(
        String(
          format: "  %5.1fs  %d/%d episodes  return mean %.3f", seconds(clock.now - start), r.returns.count, episodes,
          r.returnSummary.mean))
    }
    if !result.complete { printError("eval: stopped after \(result.returns.count) of \(episodes) episodes") }
    if let path = host.record, !FileManager.default.fileExists(atPath: path) {
      printError(
        "eval: no recording in \(path): environment 0 did not finish an episode, or it could not render (the env host "
          + "says so above)")
    }
    let ret = result.returnSummary
    let len = result.lengthSummary
    printError(
      String(
        format: "eval: return %.3f +- %.3f (min %.3f, max %.3f), length %.1f +- %.1f (min %.0f, max %.0f) over %d episodes",
        ret.mean, ret.std, ret.min, ret.max, len.mean, len.std, len.min, len.max, result.returns.count))
    for (k, key) in config.episode_info_keys.enumerated() {
      let (s, n) = result.infoSummary(k)
      printError(
        n == 0
          ? "eval: info \(key): no episode had it"
          : String(format: "eval: info %@ %.3f +- %.3f (min %.3f, max %.3f) over %d episodes", key, s.mean, s.std, s.min, s.max, n))
    }
    let elapsed = seconds(clock.now - start)
    // The summary first: a file that fails to write at the end (a full disk) loses
    // no result.
    print(try report(result, policy: policy, config: config, k: k, seconds: elapsed, episodes: false))
    if let output {
      let json = try report(result, policy: policy, config: config, k: k, seconds: elapsed, episodes: true)
      try RunDirectory.writeFile(output, bytes: Array((json + "\n").utf8))
    }
  }

  /// Makes the folder of a file the command writes at the end (as `herd export`
  /// makes its --output) and checks that it can hold a new file, so that a path
  /// that names a folder, or a folder that cannot be made or written, is refused
  /// before the episodes run.
  static func prepareFile(_ path: String, option: String, example: String) throws {
    let url = URL(fileURLWithPath: path).standardizedFileURL
    var isFolder: ObjCBool = false
    if FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), isFolder.boolValue {
      throw CommandFailure("\(option) \(path) is a folder: name a file in it, e.g. \(option) \(url.appendingPathComponent(example).path)")
    }
    let folder = url.deletingLastPathComponent().path
    do {
      try Folders.create(folder)
    } catch let error as FolderError {
      throw CommandFailure("\(option) \(path): \(error)")
    }
    guard access(folder, W_OK | X_OK) == 0 else {
      throw CommandFailure("\(option) \(path): cannot write into \(folder): \(String(cString: strerror(errno)))")
    }
  }

  func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }

  /// The result as JSON; with `episodes`, every episode's return and length too.
  func report(
    _ r: Evaluation, policy: TrainedPolicy, config: TrainingConfig, k: Int, seconds: Double, episodes withEpisodes: Bool
  ) throws -> String {
    func summary(_ s: Evaluation.Summary) -> [String: Any] {
      ["mean": s.mean.isFinite ? s.mean : NSNull(), "std": s.std.isFinite ? s.std : NSNull(),
       "min": s.min.isFinite ? s.min : NSNull(), "max": s.max.isFinite ? s.max : NSNull()]
    }
    var object: [String: Any] = [
      "checkpoint": policy.source, "policy_version": policy.policyVersion, "env": config.env,
      "episodes": r.returns.count, "episodes_asked": episodes, "complete": r.complete, "greedy": greedy, "seed": seed,
      "envs": k, "env_steps": r.envSteps, "wall_seconds": seconds,
      "return": summary(r.returnSummary), "length": summary(r.lengthSummary),
    ]
    var info: [String: Any] = [:]
    for (k, key) in config.episode_info_keys.enumerated() {
      let (s, n) = r.infoSummary(k)
      var entry = n == 0 ? ["mean": NSNull(), "std": NSNull(), "min": NSNull(), "max": NSNull()] : summary(s)
      entry["episodes"] = n
      info[key] = entry
    }
    object["info"] = info
    if withEpisodes {
      object["returns"] = r.returns.map(Double.init)
      object["lengths"] = r.lengths
      var values: [String: Any] = [:]
      for (k, key) in config.episode_info_keys.enumerated() {
        values[key] = r.info.map { k < $0.count && $0[k].isFinite ? Double($0[k]) as Any : NSNull() }
      }
      object["info_values"] = values
    }
    let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    return String(decoding: data, as: UTF8.self)
  }
}
