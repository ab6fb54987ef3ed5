import ArgumentParser
import Foundation
import HerdMath
import HerdLearner
import HerdRL
import HerdStats
import Logging
import Synchronization

/// Options shared by every command that builds a config (`train`, `explain`, ...).
struct ConfigOptions: ParsableArguments {
  @Option(
    help:
      "Environment: \(TrainingConfig.environmentNames.joined(separator: ", ")), gym:ID for a Gymnasium one or pz:ID for a PettingZoo one (default: the config file's \"env\", else StatelessCartPole-v1). Picks that environment's tuned preset (docs/configuration.md lists what each sets)."
  )
  var env: String?

  @Option(help: "A JSON config file; its keys override the environment's preset (examples in configs/; every key in docs/configuration.md).")
  var config: String?

  @Option(
    name: .customLong("set"),
    help: ArgumentHelp(
      "Override one config key, the value in JSON, e.g. --set lstm_cell_size=128, --set fcnet_hiddens=[128,128] or --set env_config.length=30 (repeatable; every key in docs/configuration.md).",
      valueName: "KEY=VALUE"))
  var overrides: [String] = []

  @Option(parsing: .unconditional, help: "Random seed (overrides the config's seed).", transform: seedArgument)
  var seed: UInt64?

  /// The effective config: env defaults, then the file, then --set, then --seed; validated.
  func resolve() throws -> TrainingConfig {
    try resolve(resuming: nil).config
  }

  /// The effective config of a run that `resuming` (a run directory) continues, or
  /// of a new run when nil. Resuming without --config starts from the run's own
  /// `config.json` instead of the environment's preset, so that the run goes on as
  /// it was trained; --set and --seed still apply on top. --env must then name the
  /// run's environment. `fromRun` says whether the run's config was the base.
  func resolve(resuming runDirectory: String?) throws -> (config: TrainingConfig, fromRun: String?) {
    var c: TrainingConfig
    var fromRun: String?
    if let runDirectory { try Self.checkResumable(runDirectory) }
    if let env, let set = overrides.first(where: { $0.hasPrefix("env=") }) {
      throw ConfigError("--env \(env) and --set \(set) both name the environment: give one")
    }
    if let path = config {
      c = try TrainingConfig.load(path: path, env: env)
      if let env { c.env = env }
    } else if let runDirectory, FileManager.default.fileExists(atPath: runDirectory + "/config.json") {
      let path = runDirectory + "/config.json"
      c = try TrainingConfig.load(path: path, env: nil)
      if let env, env != c.env {
        throw ConfigError(
          "--env \(env): the run in \(runDirectory) trained \(c.env) (\(path)); leave out --env to continue it, "
            + "or give another --run-dir for a new run")
      }
      fromRun = path
    } else {
      c = TrainingConfig.defaults(for: env ?? TrainingConfig().env)
    }
    c = try c.applying(overrides: overrides)
    if let seed { c.seed = seed }
    try c.validate()
    return (c, fromRun)
  }

  /// Throws unless `runDirectory` holds a run to continue (its `checkpoint.herd`),
  /// before anything is made or written there.
  static func checkResumable(_ runDirectory: String) throws {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: runDirectory, isDirectory: &isDirectory), isDirectory.boolValue else {
      throw ConfigError("cannot resume \(runDirectory): no such directory (without --resume a new run starts there)")
    }
    guard FileManager.default.fileExists(atPath: runDirectory + "/checkpoint.herd") else {
      throw ConfigError(
        "cannot resume \(runDirectory): it holds no checkpoint.herd, so no run was saved there (without --resume a new run starts there)")
    }
  }

  /// For a new run, the line that says where its environment came from when that
  /// may surprise: nothing named one (no --env, no "env" in the config file or a
  /// --set), so it trains the default; or --env replaced the config file's. nil
  /// otherwise. A config file made for one task (configs/sample-efficient.json)
  /// would otherwise train StatelessCartPole without a word.
  func environmentNotice(_ c: TrainingConfig, fromRun: String?) -> String? {
    guard fromRun == nil else { return nil }
    if let env, let file = fileValue("env") as? String, file != env {
      return "--env \(env) replaces the config's \"env\" \(file) (its other keys apply)"
    }
    guard env == nil, !names("env") else { return nil }
    let named = config.map { " and no \"env\" in \($0)" } ?? ""
    return "no --env\(named): training \(c.env), the default "
      + "(--env picks another: \(TrainingConfig.environmentNames.joined(separator: ", ")) or gym:ID)"
  }

  /// Whether the config file or a --set names `key` (rather than the defaults).
  func names(_ key: String) -> Bool {
    if overrides.contains(where: { $0.hasPrefix(key + "=") }) { return true }
    return fileValue(key) != nil
  }

  /// The config file's value for `key`, nil without a file or that key.
  func fileValue(_ key: String) -> Any? {
    guard let path = config, let data = FileManager.default.contents(atPath: path),
      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    else { return nil }
    return object[key]
  }

  /// A Gymnasium environment's defaults give the core the previous action. For a
  /// Box action space, unless the user asked for it, the run goes without it (asking
  /// the environment's spaces through one env host): the continuous defaults were
  /// tuned without it. An explicit `lstm_use_prev_action: true` keeps it.
  func fitDefaults(_ c: inout TrainingConfig, host: EnvHostSettings, logger: Logger) throws {
    guard c.gymID != nil, c.lstm_use_prev_action, !names("lstm_use_prev_action") else { return }
    let spec = try EnvironmentFactory.spec(c, host: host)
    guard try spec.action.continuousAction() != nil else { return }
    c.lstm_use_prev_action = false
    logger.notice(
      "\(c.env) has Box actions \(spec.action): lstm_use_prev_action is off (the Gymnasium defaults turn it on for discrete actions only)")
  }
}

/// Stop criteria options shared by `train` and `learner`.
struct StopOptions: ParsableArguments {
  @Option(parsing: .unconditional, help: "Stop when the mean return over the last 100 episodes reaches this.")
  var stopReward: Float?
  @Option(parsing: .unconditional, help: "Stop after this many env steps.")
  var stopSteps: Int?
  @Option(
    parsing: .unconditional,
    help: "Stop after this many seconds (of this invocation: a resumed run gets this much more).")
  var stopSeconds: Double?
  @Option(
    name: .customLong("stop-info"), parsing: .unconditional,
    help: ArgumentHelp(
      "Stop when the mean of an episode_info_keys entry over the last 100 episodes that had it reaches VALUE, e.g. is_success=0.95.",
      valueName: "KEY=VALUE"))
  var stopInfo: String?
  @Option(
    name: .customLong("stop-eval-reward"), parsing: .unconditional,
    help: ArgumentHelp(
      "Stop when an evaluation's mean return reaches this (needs evaluation_interval_env_steps: the learner's weights are evaluated on episodes of their own every that many env steps).",
      valueName: "RETURN"))
  var stopEvalReward: Float?

  /// Whether any stop option was given.
  var anyGiven: Bool { stopReward != nil || stopSteps != nil || stopSeconds != nil || stopInfo != nil || stopEvalReward != nil }

  /// `--stop-info`'s key and value.
  var infoTarget: StopCriteria.InfoTarget? {
    guard let text = stopInfo, let eq = text.lastIndex(of: "="), let v = Float(text[text.index(after: eq)...]), v.isFinite,
      eq > text.startIndex
    else { return nil }
    return StopCriteria.InfoTarget(key: String(text[..<eq]), value: v)
  }

  /// Checks `--stop-info` against the run's config: its key must be recorded; and
  /// `--stop-eval-reward`: the run must evaluate.
  func check(_ config: TrainingConfig) throws {
    if let r = stopEvalReward, config.evaluation_interval_env_steps == 0 {
      throw CommandFailure(
        "--stop-eval-reward \(r): this run does not evaluate (evaluation_interval_env_steps is 0); give it the env steps between evaluations, e.g. --set evaluation_interval_env_steps=\(max(config.train_batch_size, 50_000))"
      )
    }
    guard let t = infoTarget, !config.reportedInfoKeys.contains(t.key) else { return }
    let keys = config.reportedInfoKeys.isEmpty ? "none" : config.reportedInfoKeys.joined(separator: ", ")
    throw CommandFailure(
      "--stop-info \(stopInfo ?? ""): \(t.key) is not in episode_info_keys (here: \(keys)); add it, e.g. --set 'episode_info_keys=[\"\(t.key)\"]'"
    )
  }

  func validate() throws {
    if let r = stopReward, !r.isFinite { throw ValidationError("--stop-reward must be a number, got \(r)") }
    if let r = stopEvalReward, !r.isFinite { throw ValidationError("--stop-eval-reward must be a number, got \(r)") }
    if stopInfo != nil && infoTarget == nil {
      throw ValidationError("--stop-info must be KEY=VALUE with VALUE a number, e.g. is_success=0.95; got \(stopInfo!)")
    }
    if let s = stopSteps, s < 1 { throw ValidationError("--stop-steps must be at least 1, got \(s)") }
    if let s = stopSeconds, !(s > 0) { throw ValidationError("--stop-seconds must be positive, got \(s)") }
  }

  /// The criteria; with none given, the env's solved return or 600 s.
  func criteria(for env: String) -> StopCriteria {
    StopCriteria(
      reward: stopReward ?? (anyGiven ? nil : Train.solvedReturn(env)), envSteps: stopSteps,
      seconds: stopSeconds ?? (anyGiven ? nil : 600), info: infoTarget, evaluationReward: stopEvalReward)
  }
}

/// Prints a run summary as JSON on stdout.
func printSummary(_ summary: RunSummary) {
  let encoder = JSONEncoder()
  encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
  if let data = try? encoder.encode(summary) { print(String(decoding: data, as: UTF8.self)) }
}

/// Set by SIGINT/SIGTERM (``StopSignals``); another signal a second or more
/// later exits at once.
let interruptFlag = StopFlag()

/// `herd train`: learner and rollout workers in one process.
struct Train: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Train a policy: a learner and rollout workers on this machine.",
    discussion: """
      Trains with V-trace (IMPALA) using the environment's tuned defaults, a
      config file and --set overrides. Progress is printed every few seconds and
      appended to RUN_DIR/progress.jsonl and, as TensorBoard scalars, to an
      event file in RUN_DIR (tensorboard --logdir runs); the checkpoint is
      written every checkpoint interval, at the end and on Ctrl-C;
      RUN_DIR/summary.json is written at the end. --resume continues a stopped
      run from RUN_DIR/checkpoint.herd: the policy version, optimiser state,
      counters, the 100-episode mean return and the run's clock go on
      (progress.jsonl, the dashboard's curves and summary.json count the run's
      time over every invocation); --stop-steps and --stop-reward are the run's
      totals, --stop-seconds is this invocation's time. Without --config a
      resume starts from the run's own RUN_DIR/config.json (--set, --seed and
      --workers apply on top; --env, if given, must be the run's).

      With evaluation_interval_env_steps the learner also evaluates its weights
      on episodes of their own along the run (RUN_DIR/evaluations.jsonl, the
      best in RUN_DIR/best_eval.herd; --stop-eval-reward stops on them), and
      the final weights when the run stops (not on Ctrl-C).

      Without stop options a run stops at the environment's solved return (475 for
      CartPole, 0.9 for MemoryChain and PixelMemory: 95% right, -200 for Pendulum,
      -300 for StatelessPendulum) or after 10 minutes; any other gym:ID or
      pz:ID environment after 10 minutes (give --stop-reward for its own
      scale).

      Examples:
        herd train --env CartPole-v1
        herd train --env Pendulum-v1 --stop-reward=-200
        herd train --env StatelessCartPole-v1 --set use_lstm=false \\
          --stop-steps 300000
        herd train --env MemoryChain-v0 --set env_config.length=30
        herd train --config configs/pong.json --run-dir runs/pong --stop-seconds 3600
        herd train --run-dir runs/pong --resume --stop-seconds 1800
      """
  )

  @OptionGroup var options: ConfigOptions

  @OptionGroup var stopping: StopOptions
  @OptionGroup var stats: StatsOptions

  @Option(
    help:
      "Run folder for config.json, progress.jsonl, checkpoint.herd, summary.json (default runs/ENV-TIME); one that holds a run takes --resume."
  )
  var runDir: String?

  @Flag(help: "Write no TensorBoard event files (by default RUN_DIR/events.out.tfevents.* get each progress record).")
  var noTensorboard = false

  @Option(
    parsing: .unconditional,
    help: "Rollout worker processes (threads with --in-process); default num_workers (1).")
  var workers: Int?

  @Flag(help: "Run workers as threads in this process, joined by in-memory queues (tests, debugging).")
  var inProcess = false

  @Flag(
    help:
      "Continue from RUN_DIR/checkpoint.herd (policy version, optimiser state, counters) with RUN_DIR/config.json unless --config is given; needs --run-dir."
  )
  var resume = false

  @Flag(help: "Print the effective config as JSON and exit.")
  var printConfig = false

  @Option(
    parsing: .unconditional,
    help: ArgumentHelp(
      "Stop cleanly, as on SIGTERM, once process PID is no longer this run's parent (checked every second). herd sweep passes its own id, so its runs end with it even when it is killed outright.",
      valueName: "PID"))
  var parentPid: Int32?

  @OptionGroup var envHost: EnvHostOptions

  @OptionGroup var logs: LogOptions
  @OptionGroup var ready: ReadyOptions
  let display = SharedSlot<ProgressDisplay>()

  enum CodingKeys: CodingKey {
    case options, stopping, stats, runDir, noTensorboard, workers, inProcess, resume, printConfig, parentPid, envHost, logs
    case ready
  }

  func validate() throws {
    try stopping.validate()
    try stats.validate()
    if let w = workers, w < 1 { throw ValidationError("--workers must be at least 1, got \(w)") }
    if resume && runDir == nil { throw ValidationError("--resume needs --run-dir (the run to continue)") }
    if let p = parentPid, p < 1 { throw ValidationError("--parent-pid must be a process id (1 or more), got \(p)") }
    try envHost.validate()
  }

  func run() throws {
    // Config errors name the key and value; no usage line (the command line is fine).
    var (config, fromRun) = try options.resolve(resuming: resume ? runDir : nil)
    if let w = workers { config.num_workers = w }
    try Self.checkWorkerCount(config.num_workers, cpus: ProcessInfo.processInfo.activeProcessorCount)
    try MemoryFootprint.checkBuiltIn(config)  // the workers run here too: an error now, not each child's
    let logger = logs.bootstrap(label: "herd.train")
    if let fromRun {
      logger.info("\(Self.resumeBase(fromRun, overrides: options.overrides, seed: options.seed, workers: workers))")
    } else {
      try options.fitDefaults(&config, host: envHost.settings, logger: logger)
    }
    if let notice = options.environmentNotice(config, fromRun: fromRun) { logger.notice("\(notice)") }
    if let notice = config.roundingNotice { logger.notice("\(notice)") }
    if let notice = config.selfPlayNotice, !printConfig { logger.notice("\(notice)") }
    if printConfig {
      print(try config.prettyJSON())
      return
    }
    BLAS.setThreadCount(1)
    try stopping.check(config)
    let stop = stopping.criteria(for: config.env)
    StopSignals.install(interruptFlag)
    if let parentPid { ParentWatch.start(parent: parentPid, stop: interruptFlag, logger: logger, who: "herd train") }
    logger.info(
      "herd train: OpenBLAS threads 1 (\(BLAS.configuration)); stop at \(Self.describe(stop)); Ctrl-C stops cleanly")
    var settings = LearnerSettings(runDirectory: runDir ?? Self.defaultRunDirectory(config.env), stop: stop)
    settings.stats = try stats.settings(host: "127.0.0.1", defaultPort: 5558)
    settings.tensorBoard = !noTensorboard
    settings.resume = resume
    // Beside a learner on fewer than 4 CPUs, a host's two groups cannot overlap
    // (every CPU is busy) and their extra wake-ups cost: one group, unless asked.
    var envHost = envHost
    if envHost.envGroups == nil && ProcessInfo.processInfo.activeProcessorCount < 4 { envHost.envGroups = 1 }
    settings.envHost = envHost.settings  // in-process workers' and the evaluations' environments
    if inProcess {
      settings.inProcessWorkers = config.num_workers
    } else {
      settings.network = NetworkSettings(
        endpoints: LearnerEndpoints(host: "127.0.0.1", controlPort: 0, fragmentPort: 0, weightsPort: 0))
    }
    let children = ChildWorkers()
    defer {
      children.stop()
      display.value?.finish()
    }
    let runDirectory = settings.runDirectory
    settings.workersFailed = { children.allFailed }
    let summary = try LearnerDaemon(config: config, settings: settings, logger: logger).run(interrupted: interruptFlag) {
      r in
      if let url = r.statsURL { stats.announce(url, host: "127.0.0.1", logger: logger) }
      if let control = r.control {
        children.start(
          count: config.num_workers, control: control, seed: config.seed, logLevel: logs.level,
          extra: config.gymID != nil ? envHost.arguments : [], until: interruptFlag)
        logger.info("started \(children.count) worker process(es) for \(control)")
      }
      try ready.write(r, runDirectory: runDirectory)
      showProgress(r.status, stop)
    }
    children.stop()
    display.value?.finish()
    printSummary(summary)
    if interruptFlag.isSet { throw ExitCode(130) }
    if summary.disk_error != nil { throw ExitCode(1) }
  }

  /// Worker processes `herd train` starts per CPU of its machine, at most: beyond a
  /// few per CPU they only take turns, and a mistyped count (100000) would start
  /// processes until the machine runs out of memory.
  static let workersPerCPU = 32

  /// Throws for a worker count `herd train` should not start on a machine of
  /// `cpus` CPUs, naming the count, the limit and what to do instead.
  static func checkWorkerCount(_ n: Int, cpus: Int) throws {
    let most = workersPerCPU * max(1, cpus)
    guard n > most else { return }
    throw CommandFailure(
      "--workers / num_workers = \(n) is more worker processes than herd train starts on one machine: at most \(most) here (\(workersPerCPU) per CPU, \(cpus) CPU\(cpus == 1 ? "" : "s")). For more environments per worker set num_envs_per_worker; for more machines run `herd learner` and start `herd worker` on each"
    )
  }

  /// The status bar (on a terminal, at log level info or below).
  func showProgress(_ board: StatusBoard, _ stop: StopCriteria) {
    if logs.level <= .info { display.value = ProgressDisplay.show(board: board, stop: stop) }
  }

  /// The return at which a run on `env` counts as solved, for the environments
  /// whose scale Herd knows; nil for any other (a `gym:ID` whose returns may be
  /// in the thousands, as HalfCheetah's, or never reach 475, as Pong's), whose
  /// runs then stop on time alone unless told otherwise.
  static func solvedReturn(_ env: String) -> Float? {
    switch env {
    case "CartPole-v1", "StatelessCartPole-v1", "gym:CartPole-v1": return 475
    case "MemoryChain-v0", "PixelMemory-v0": return 0.9
    case "Pendulum-v1", "gym:Pendulum-v1": return -200
    case "StatelessPendulum-v1": return -300
    default: return nil
    }
  }

  static func describe(_ s: StopCriteria) -> String {
    var parts: [String] = []
    if let r = s.reward { parts.append("mean return >= \(r)") }
    if let n = s.envSteps { parts.append("\(n) env steps") }
    if let t = s.seconds { parts.append("\(t) s") }
    if let i = s.info { parts.append("mean \(i.key) >= \(i.value)") }
    if let r = s.evaluationReward { parts.append("an evaluation's mean return >= \(r)") }
    return parts.joined(separator: " or ")
  }

  /// The log line that says a resume took the run's own config, and what the
  /// command line changed on top of it.
  static func resumeBase(_ path: String, overrides: [String], seed: UInt64?, workers: Int?) -> String {
    var changes = overrides.map { "--set \($0)" }
    if let seed { changes.append("--seed \(seed)") }
    if let workers { changes.append("--workers \(workers)") }
    let changed = changes.isEmpty ? "" : ", then \(changes.joined(separator: " "))"
    return "resuming with the run's config \(path)\(changed)"
  }

  static func timestamp() -> String {
    let f = DateFormatter()
    f.dateFormat = "yyyyMMdd-HHmmss"
    return f.string(from: Date())
  }

  /// `runs/ENV-TIME`, the environment's name with every character but letters,
  /// digits, `.`, `_` and `-` made a `-`: `gym:ALE/Pong-v5` must not become a
  /// folder `gym:ALE` holding `Pong-v5-TIME`.
  static func defaultRunDirectory(_ env: String) -> String {
    let name = String(
      env.map { c -> Character in c.isASCII && (c.isLetter || c.isNumber || "._-".contains(c)) ? c : "-" })
    return "runs/\(name)-\(timestamp())"
  }
}

/// `herd train`'s worker child processes: `herd worker` connected to the learner
/// over loopback, their log lines forwarded through this process (above the
/// status bar), stopped with SIGTERM (then SIGKILL after 5 s) when the run ends,
/// and stopping themselves when this process is gone (`--parent-pid`: killed
/// outright, it cannot stop them).
///
/// A child that dies during the run (killed by a signal, the OOM killer, a
/// crash, an error exit) after running at least ``restartAfterSeconds`` is
/// started again a second later with a new seed, at most ``restartsPerMinute``
/// times a minute per worker; the learner welcomes it as any joining worker. One
/// that dies sooner, or more often, is counted as failed: its error would come
/// back (a bad environment, a missing package), and once every worker has
/// failed the run stops (``allFailed``).
final class ChildWorkers: @unchecked Sendable {
  /// Seconds a child must have run for its death to be taken as an accident.
  let restartAfterSeconds: Double
  /// Restarts per worker within any 60 s before it counts as failed.
  let restartsPerMinute: Int
  /// The program started as `PROGRAM worker --learner ...`: this one (tests give a script).
  private let executable: String?

  init(restartAfterSeconds: Double = 10, restartsPerMinute: Int = 3, executable: String? = nil) {
    (self.restartAfterSeconds, self.restartsPerMinute, self.executable) = (restartAfterSeconds, restartsPerMinute, executable)
  }

  private struct Launch {
    let exe: String
    let control: String
    let seed: UInt64
    let count: Int
    let logLevel: Logger.Level
    let extra: [String]
  }

  private struct State {
    var launch: Launch?
    var children: [Process] = []
    /// Workers started, and those that failed (not to be restarted) before ``stop()``.
    var started = 0
    var failed = 0
    var stopping = false
    var last: String?
    /// Each worker's restart times.
    var restarts: [Int: [Date]] = [:]
  }

  private let state = Mutex(State())
  /// Entered once per child, left when it exits (no polling to wait for them).
  private let running = DispatchGroup()
  /// Workers started (the log says how many).
  var count: Int { state.withLock { $0.started } }
  /// Restarts so far, over every worker.
  var restartCount: Int { state.withLock { $0.restarts.values.reduce(0) { $0 + $1.count } } }

  /// Why the run cannot go on, once every worker has failed.
  var allFailed: String? {
    state.withLock { e in
      guard e.started > 0, e.failed == e.started, !e.stopping else { return nil }
      return "every worker process exited with an error\(e.last.map { " (the last: \($0))" } ?? "")"
    }
  }

  /// Starts `count` workers, one at a time, until `until` is set (Ctrl-C or SIGTERM
  /// while they start: the rest are not started) or ``stop()`` is called.
  func start(
    count: Int, control: String, seed: UInt64, logLevel: Logger.Level, extra: [String] = [], until: StopFlag? = nil
  ) {
    let exe = executable ?? ownExecutable()
    state.withLock { s in
      s.launch = Launch(exe: exe, control: control, seed: seed, count: count, logLevel: logLevel, extra: extra)
    }
    for i in 0..<count {
      if until?.isSet == true { return }
      let stopped = state.withLock { s -> Bool in
        if s.stopping { return true }
        if spawn(worker: i, generation: 0, &s) { s.started += 1 }
        return false
      }
      if stopped { return }
    }
  }

  /// Starts worker `i` (its `generation`-th start), under the lock; false when it
  /// could not be started.
  private func spawn(worker i: Int, generation: Int, _ s: inout State) -> Bool {
    guard let launch = s.launch else { return false }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: launch.exe)
    // Worker i's seed, then a new one for each restart (the same seeds would replay the same episodes).
    let seed = launch.seed &+ UInt64(i) &+ 1 &+ UInt64(generation) &* UInt64(launch.count)
    p.arguments = [
      "worker", "--learner", launch.control, "--seed", String(seed), "--log-level", launch.logLevel.rawValue,
      "--parent-pid", String(getpid()),
    ] + launch.extra
    let pipe = Pipe()
    p.standardError = pipe
    let forward = LineForwarder()
    // Signalled at the end of the child's stderr, so its last error line is read
    // before its exit is judged (the exit can be seen first).
    let drained = DispatchSemaphore(value: 0)
    pipe.fileHandleForReading.readabilityHandler = { h in
      let data = h.availableData
      forward.feed(data)
      if data.isEmpty {
        h.readabilityHandler = nil
        drained.signal()
      }
    }
    running.enter()
    let began = Date()
    p.terminationHandler = { [self] p in
      defer { running.leave() }
      guard p.terminationStatus != 0 || p.terminationReason != .exit else { return }
      let ranFor = Date().timeIntervalSince(began)
      // An env host the worker started may hold the pipe open a little longer.
      _ = drained.wait(timeout: .now() + 0.5)
      forward.feed(Data())  // a last line without its newline
      let why = forward.lastError.map { String($0.dropFirst("Error: ".count)) }
      ended(worker: i, generation: generation, pid: p.processIdentifier, ranFor: ranFor, how: Self.describe(p), why: why)
    }
    do {
      try p.run()
      s.children.append(p)
      return true
    } catch {
      running.leave()
      printError("error: could not start worker \(i + 1): \(error)")
      return false
    }
  }

  /// A child that did not exit cleanly: started again a second later, or counted as failed.
  private func ended(worker i: Int, generation: Int, pid: Int32, ranFor: Double, how: String, why: String?) {
    let now = Date()
    let restart = state.withLock { s -> Int? in
      guard !s.stopping else { return nil }
      let recent = (s.restarts[i] ?? []).filter { now.timeIntervalSince($0) < 60 }
      guard ranFor >= restartAfterSeconds && recent.count < restartsPerMinute else {
        s.failed += 1
        s.last = why ?? s.last
        return nil
      }
      s.restarts[i] = recent + [now]
      return recent.count + 1
    }
    let ran = "after " + String(format: ranFor < 10 ? "%.1f s" : "%.0f s", ranFor)
    guard let restart else {
      if state.withLock({ !$0.stopping }) {
        let least = restartAfterSeconds == restartAfterSeconds.rounded() ? "\(Int(restartAfterSeconds))" : "\(restartAfterSeconds)"
        let reason = ranFor < restartAfterSeconds ? "it ran less than \(least) s" : "\(restartsPerMinute) restarts within a minute"
        printError("warning: worker process \(i + 1) (pid \(pid)) \(how) \(ran); not started again (\(reason))")
      }
      return
    }
    printError(
      "warning: worker process \(i + 1) (pid \(pid)) \(how) \(ran); starting it again in 1 s (restart \(restart) of \(restartsPerMinute) allowed within a minute)"
    )
    DispatchQueue.global().asyncAfter(deadline: .now() + 1) { [self] in
      state.withLock { s in
        guard !s.stopping, !spawn(worker: i, generation: generation + 1, &s) else { return }
        s.failed += 1
      }
    }
  }

  /// "was killed by signal 9 (Killed)" or "exited with status 1".
  static func describe(_ p: Process) -> String {
    guard p.terminationReason == .uncaughtSignal else { return "exited with status \(p.terminationStatus)" }
    let name = strsignal(p.terminationStatus).map { String(cString: $0) } ?? "signal"
    return "was killed by signal \(p.terminationStatus) (\(name))"
  }

  func stop() {
    let children = state.withLock { s -> [Process] in
      s.stopping = true
      return s.children
    }
    for c in children where c.isRunning { kill(c.processIdentifier, SIGTERM) }
    if running.wait(timeout: .now() + 5) == .timedOut {
      for c in children where c.isRunning { kill(c.processIdentifier, SIGKILL) }
    }
    state.withLock { $0.children.removeAll() }
  }
}
