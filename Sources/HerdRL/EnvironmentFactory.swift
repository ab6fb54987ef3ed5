import Foundation
import HerdEnvs

/// How a worker runs Gymnasium environments (its command line's `--python` and
/// `--env-processes`); built-in environments ignore it.
public struct EnvHostSettings: Sendable, Equatable {
  /// The interpreter with herd_env installed.
  public var python: String
  /// Host processes per worker P (nil: ``defaultProcesses``).
  public var processes: Int?

  /// One host on machines with fewer than 4 CPUs, two otherwise. With two, the
  /// worker runs the policy for one group of environments while the other steps
  /// (double buffering), but each wake-up then crosses to another CPU: on the
  /// 2-core machines a cross-CPU pipe round trip took ~115 us against ~7 us on one
  /// CPU, and a learner with one worker sampled gym:CartPole-v1 at 62k steps/s with
  /// one host against 52k with two (README, "Bring your own environment").
  public static var defaultProcesses: Int { ProcessInfo.processInfo.activeProcessorCount >= 4 ? 2 : 1 }

  /// Row groups per host process (nil: ``defaultGroups(processes:)``).
  public var groups: Int?

  /// Two with one host: it steps one half of its environments while the policy
  /// acts for the other (a worker with one host sampled gym:CartPole-v1 1.27x
  /// faster so: 80k against 63k steps/s, `herd bench envhost`). One with more
  /// hosts, which already overlap (two hosts with two groups each were slower).
  public static func defaultGroups(processes: Int) -> Int { processes >= 2 ? 1 : 2 }

  /// Record copy 0's first episode to this GIF file (``HostedEnvironments/Options/record``).
  public var record: String?

  public init(
    python: String = EnvHostSettings.defaultPython, processes: Int? = nil, groups: Int? = nil, record: String? = nil
  ) {
    self.python = python
    self.processes = processes
    self.groups = groups
    self.record = record
  }

  /// `$HERD_PYTHON`, else the project's virtualenv `.venv/bin/python` (what `make`
  /// installs herd_env into) of the current directory or of the checkout this
  /// executable was built in, else `python3`.
  public static var defaultPython: String {
    let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
    return python(
      environment: ProcessInfo.processInfo.environment["HERD_PYTHON"],
      currentDirectory: FileManager.default.currentDirectoryPath, executable: executable,
      isExecutable: { FileManager.default.isExecutableFile(atPath: $0) })
  }

  /// The interpreter for `HERD_PYTHON`'s value `environment`, the working directory
  /// and the executable's path: the variable when set; else `.venv/bin/python` in
  /// the working directory; else in the package checkout the executable lies in
  /// (the part of its path before `/.build/`: `make build` puts `herd` in
  /// `CHECKOUT/.build/release/`), so `herd` run from elsewhere finds `make venv`'s
  /// interpreter; else `python3` from PATH.
  public static func python(
    environment: String?, currentDirectory: String, executable: String, isExecutable: (String) -> Bool
  ) -> String {
    if let p = environment, !p.isEmpty { return p }
    let here = currentDirectory + "/.venv/bin/python"
    if isExecutable(here) { return here }
    if let build = executable.range(of: "/.build/") {
      let checkout = String(executable[..<build.lowerBound]) + "/.venv/bin/python"
      if isExecutable(checkout) { return checkout }
    }
    return "python3"
  }
}

/// Builds the environments a config names: built-in Swift ones in this thread, or
/// Gymnasium (`gym:ID`) and PettingZoo (`pz:ID`) ones in env host processes.
public enum EnvironmentFactory {
  /// K = `count` copies of `config.env`, copy i seeded `seed + i`. A PettingZoo
  /// environment's games take a row per agent: with `exactCount` a `count` that
  /// is not whole games is an error (a training worker's `num_envs_per_worker`),
  /// else it is rounded up to whole games (an evaluation's, a spec's).
  public static func make(
    _ config: TrainingConfig, count: Int, seed: UInt64, host: EnvHostSettings = EnvHostSettings(),
    exactCount: Bool = false, log: @escaping (String) -> Void = { _ in }
  ) throws -> any VectorEnv {
    if let id = config.gymID {
      let processes = host.processes ?? EnvHostSettings.defaultProcesses
      var options = HostedEnvironments.Options(
        id: id, config: config.env_config.json, count: count, processes: processes, seed: seed, python: host.python)
      options.groupsPerHost = host.groups ?? EnvHostSettings.defaultGroups(processes: processes)
      options.record = host.record
      options.stepSeconds = config.env_step_timeout_seconds
      options.infoKeys = config.episode_info_keys
      options.wrappers = config.env_wrappers.isEmpty ? nil : EnvWrapper.json(config.env_wrappers)
      options.roundUpToGames = !exactCount
      return try HostedEnvironments(options, log: log)
    }
    let make = try maker(config)
    return VectorEnvironment(count: count, seed: seed, id: config.env, config: config.env_config.json, make: make)
  }

  /// A constructor for copy `i` of a built-in `config.env` (seeds are applied by the
  /// vectorised environment at reset).
  public static func maker(_ config: TrainingConfig) throws -> (Int) -> any Environment {
    guard let r = Environments.named(config.env) else {
      throw ConfigError("env = '\(config.env)' is invalid: use \(TrainingConfig.environmentChoices)")
    }
    var options: [String: Int] = [:]
    for (key, fallback) in r.options { options[key] = config.env_config[key]?.intValue ?? fallback }
    return { [options] _ in r.make(options) }
  }

  /// The spec of `config.env` (a Gymnasium one is asked through one env host).
  public static func spec(_ config: TrainingConfig, host: EnvHostSettings = EnvHostSettings()) throws -> EnvSpec {
    try describe(config, host: host).spec
  }

  /// The spec of `config.env` and the rows one of its games takes (a PettingZoo
  /// environment's agents; 1 for any other).
  public static func describe(_ config: TrainingConfig, host: EnvHostSettings = EnvHostSettings()) throws -> (
    spec: EnvSpec, agents: Int, notes: [String]
  ) {
    let envs = try make(config, count: 1, seed: config.seed, host: EnvHostSettings(python: host.python, processes: 1))
    defer { envs.close() }
    let hosted = envs as? HostedEnvironments
    return (envs.spec, hosted?.agentsPerGame ?? 1, hosted?.notes ?? [])
  }

  /// Observation size and action count of `config.env`, for categorical actions
  /// (a Box action space throws: build the network from ``spec(_:host:)``).
  public static func spaces(_ config: TrainingConfig, host: EnvHostSettings = EnvHostSettings()) throws -> (
    observationSize: Int, actionCount: Int
  ) {
    let s = try spec(config, host: host)
    return (s.observationSize, try s.actionCount())
  }
}
