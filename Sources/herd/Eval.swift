import ArgumentParser
import Foundation
import HerdEnvs
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

      In a game of several agents (pz:ID), --opponent plays one policy against
      another: the opponent (another run or checkpoint of the same spaces, of
      any model) takes every seat but one in every game, and the seat left to
      the evaluated policy moves on by one each game, so each plays every seat
      equally often. The result is the evaluated policy's return. With --greedy
      both act greedily; in a game without chance that repeats a few games, so
      a head-to-head is best sampled.

      A folder of checkpoints (a run's milestones/, kept with
      checkpoint_milestone_env_steps) evaluates each one in the order of its env
      steps, on the same environments and episode starts, one line each, then
      one JSON document with them all: the policy along its run.

      Examples:
        herd eval --checkpoint runs/demo --episodes 100 --greedy
        herd eval --checkpoint runs/demo/checkpoint.herd --env CartPole-v1 \\
          --output eval.json
        herd eval --checkpoint runs/fetch --info-key is_success
        herd eval --checkpoint runs/connect4 \\
          --env-config '{"herd_opponent": "random"}'
        herd eval --checkpoint runs/connect4 --opponent runs/connect4-b
        herd eval --checkpoint runs/demo/milestones --episodes 20 --greedy
      """
  )

  @Option(
    help: """
      A run directory (its checkpoint.herd), a checkpoint file, or a folder of checkpoints (a run's milestones/: \
      each is evaluated in turn).
      """)
  var checkpoint: String
  @Option(
    help: """
      Evaluate on this environment instead of the run's (a built-in name, gym:ID or pz:ID); its observation and \
      action spaces must be the run's.
      """)
  var env: String?
  @Option(
    name: .customLong("env-config"),
    help: ArgumentHelp(
      """
      Environment options to set over the run's env_config, a JSON object (e.g. '{"herd_opponent": "random"}' \
      plays a self-play policy of a PettingZoo game against random moves).
      """, valueName: "JSON"))
  var envConfig: String?
  @Option(
    help: ArgumentHelp(
      """
      In a game of several agents, the policy (a run directory or a checkpoint file, of the same spaces) that \
      plays every seat but one of every game; the seat left takes turns.
      """, valueName: "CHECKPOINT"))
  var opponent: String?
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
      Write the first episode of environment 0 to this animated GIF (gym:ID and pz:ID environments that render \
      rgb_array frames; needs Pillow, which make venv installs; its folder is made if missing).
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
    let files = try Self.checkpointFiles(checkpoint)
    let policy = try TrainedPolicy.load(files.first ?? checkpoint, host: envHost.settings)
    var rival: TrainedPolicy?
    if let opponent {
      do {
        rival = try TrainedPolicy.load(opponent, host: envHost.settings)
      } catch {
        throw CommandFailure("--opponent \(opponent): \(error)")
      }
    }
    if let rival, rival.spec.observation != policy.spec.observation || rival.spec.action != policy.spec.action {
      throw CommandFailure(
        "--opponent \(opponent ?? ""): a policy of observations \(rival.spec.observation) and actions \(rival.spec.action); the one evaluated was trained on \(policy.spec.observation) and \(policy.spec.action)"
      )
    }
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
    if let envConfig {
      guard let extra = try? JSONDecoder().decode(TrainingConfig.EnvConfig.self, from: Data(envConfig.utf8)) else {
        throw CommandFailure(
          #"--env-config \#(envConfig): not a JSON object of environment options, e.g. '{"herd_opponent": "random"}'"#)
      }
      config.env_config.values.merge(extra.values) { $1 }
      do {
        try config.validate()
      } catch let error as ConfigError {
        throw CommandFailure("--env-config: \(error)")
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
    if record != nil && files.count > 1 {
      throw CommandFailure("--record takes one checkpoint: \(checkpoint) holds \(files.count); give one of them")
    }
    // A path that cannot be written fails now, not after the episodes.
    if let output { try Self.prepareFile(output, option: "--output", example: "eval.json") }
    if let record { try Self.prepareFile(record, option: "--record", example: "episode.gif") }
    let k = min(envs ?? min(episodes, config.num_envs_per_worker), episodes)
    StopSignals.install(interruptFlag)
    if files.count > 1 {
      printError(
        "eval: \(files.count) checkpoints in \(checkpoint) on \(config.env)\(config.wrappedText), \(episodes) episodes each in \(k) envs, \(greedy ? "greedy" : "sampled"); each meets the same episode starts"
      )
    } else {
      printError(
        "eval: \(policy.source) (policy version \(policy.policyVersion)) on \(config.env)\(config.wrappedText), \(episodes) episodes in \(k) envs, \(greedy ? "greedy" : "sampled")"
      )
    }
    if let rival {
      printError("eval: against \(rival.source) (policy version \(rival.policyVersion)) in every seat but the evaluated one")
    }
    var host = envHost.settings
    host.record = record.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
    let environments = try EnvironmentFactory.make(
      config, count: k, seed: seed &* 1000, host: host, log: { printError($0) })
    defer { environments.close() }
    if files.count > 1 {
      try runEach(files, first: policy, config: config, environments: environments, k: k, rival: rival)
      return
    }
    let (result, elapsed) = try evaluate(policy, config: config, environments: environments, rival: rival)
    if !result.complete { printError("eval: stopped after \(result.returns.count) of \(episodes) episodes") }
    if let path = host.record, !FileManager.default.fileExists(atPath: path) {
      printError(
        "eval: no recording in \(path): environment 0 did not finish an episode, or it could not render (the env host "
          + "says so above)")
    }
    summarise(result, config: config, prefix: "eval: ")
    // The summary first: a file that fails to write at the end (a full disk) loses
    // no result.
    print(
      try Self.json(
        report(result, policy: policy, rival: rival, config: config, k: k, seconds: elapsed, episodes: false)))
    if let output {
      let json = try Self.json(
        report(result, policy: policy, rival: rival, config: config, k: k, seconds: elapsed, episodes: true))
      try RunDirectory.writeFile(output, bytes: Array((json + "\n").utf8))
    }
  }

  /// Each checkpoint of a folder in turn, on the same environments (each run
  /// resets them with the same seeds, so every checkpoint meets the same episode
  /// starts): one line per checkpoint, then one JSON document with them all.
  func runEach(
    _ files: [String], first: TrainedPolicy, config: TrainingConfig, environments: any VectorEnv, k: Int,
    rival: TrainedPolicy?
  ) throws {
    var short: [[String: Any]] = []
    var full: [[String: Any]] = []
    for (i, file) in files.enumerated() {
      if interruptFlag.isSet { break }
      let policy = i == 0 ? first : try TrainedPolicy.load(file, host: envHost.settings)
      guard policy.spec == first.spec, policy.config.env == first.config.env else {
        throw CommandFailure(
          "\(file) is a policy for \(policy.config.env) (\(policy.spec.observation) -> \(policy.spec.action)), \(files[0]) for \(first.config.env) (\(first.spec.observation) -> \(first.spec.action)): the checkpoints of one folder are evaluated on one environment"
        )
      }
      let (result, elapsed) = try evaluate(policy, config: config, environments: environments, rival: rival)
      let steps = policy.envSteps
      let at = steps.map { ", \($0.formatted()) env steps" } ?? ""
      summarise(result, config: config, prefix: "eval: \((file as NSString).lastPathComponent) (policy version \(policy.policyVersion)\(at)): ")
      var entry = report(result, policy: policy, rival: rival, config: config, k: k, seconds: elapsed, episodes: false)
      entry["env_steps_trained_on"] = steps ?? NSNull()
      short.append(entry)
      if output != nil {
        var withEpisodes = report(
          result, policy: policy, rival: rival, config: config, k: k, seconds: elapsed, episodes: true)
        withEpisodes["env_steps_trained_on"] = steps ?? NSNull()
        full.append(withEpisodes)
      }
      if !result.complete { break }
    }
    if short.count < files.count { printError("eval: stopped after \(short.count) of \(files.count) checkpoints") }
    print(try Self.json(["folder": checkpoint, "checkpoints": short]))
    if let output {
      let json = try Self.json(["folder": checkpoint, "checkpoints": full])
      try RunDirectory.writeFile(output, bytes: Array((json + "\n").utf8))
    }
  }

  /// Runs `policy` for the episodes asked (against `rival` in the other seats),
  /// with a progress line every 2 s.
  func evaluate(
    _ policy: TrainedPolicy, config: TrainingConfig, environments: any VectorEnv, rival: TrainedPolicy?
  ) throws -> (Evaluation, Double) {
    let clock = ContinuousClock()
    let start = clock.now
    var lastShown = clock.now
    let result = try Evaluation.run(
      config: config, network: policy.network, weights: policy.weights, envs: environments, episodes: episodes,
      greedy: greedy, seed: seed, opponent: rival?.weights, opponentNetwork: rival?.network, stop: interruptFlag
    ) { r in
      guard clock.now - lastShown >= .seconds(2) else { return }
      lastShown = clock.now
      printError(
        String(
          format: "  %5.1fs  %d/%d episodes  return mean %.3f", seconds(clock.now - start), r.returns.count, episodes,
          r.returnSummary.mean))
    }
    return (result, seconds(clock.now - start))
  }

  /// The result's lines on stderr: return and length, and each info key.
  func summarise(_ result: Evaluation, config: TrainingConfig, prefix: String) {
    let ret = result.returnSummary
    let len = result.lengthSummary
    printError(
      prefix
        + String(
          format: "return %.3f +- %.3f (min %.3f, max %.3f), length %.1f +- %.1f (min %.0f, max %.0f) over %d episodes",
          ret.mean, ret.std, ret.min, ret.max, len.mean, len.std, len.min, len.max, result.returns.count))
    for (k, key) in config.episode_info_keys.enumerated() {
      let (s, n) = result.infoSummary(k)
      printError(
        n == 0
          ? "\(prefix)info \(key): no episode had it"
          : prefix
            + String(format: "info %@ %.3f +- %.3f (min %.3f, max %.3f) over %d episodes", key, s.mean, s.std, s.min, s.max, n))
    }
  }

  /// The checkpoint files `path` names: itself (a file, or a run directory, whose
  /// checkpoint.herd `TrainedPolicy.load` finds), or for a folder without a
  /// checkpoint.herd but with `.herd` files (a run's `milestones/`), each of them,
  /// in the order of the env steps their names or metadata give.
  static func checkpointFiles(_ path: String) throws -> [String] {
    var isFolder: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue,
      !FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent("checkpoint.herd"))
    else { return [path] }
    let names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasSuffix(".herd") }
    guard !names.isEmpty else { return [path] }  // TrainedPolicy.load says what is missing
    func order(_ name: String) -> (Int, String) { (Int(name.dropLast(5)) ?? Int.max, name) }
    return names.sorted { order($0) < order($1) }.map { (path as NSString).appendingPathComponent($0) }
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

  /// The result as a JSON object; with `episodes`, every episode's return, length
  /// and info values too.
  func report(
    _ r: Evaluation, policy: TrainedPolicy, rival: TrainedPolicy?, config: TrainingConfig, k: Int, seconds: Double,
    episodes withEpisodes: Bool
  ) -> [String: Any] {
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
    if let rival {
      object["opponent"] = rival.source
      object["opponent_policy_version"] = rival.policyVersion
    }
    if withEpisodes {
      object["returns"] = r.returns.map(Double.init)
      object["lengths"] = r.lengths
      var values: [String: Any] = [:]
      for (k, key) in config.episode_info_keys.enumerated() {
        values[key] = r.info.map { k < $0.count && $0[k].isFinite ? Double($0[k]) as Any : NSNull() }
      }
      object["info_values"] = values
    }
    return object
  }

  static func json(_ object: [String: Any]) throws -> String {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    return String(decoding: data, as: UTF8.self)
  }
}
