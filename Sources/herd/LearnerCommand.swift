import ArgumentParser
import Foundation
import HerdLearner
import HerdMath
import HerdRL
import HerdStats
import HerdWire
import HerdWorker
import Logging

/// Options naming the learner's endpoints.
struct EndpointOptions: ParsableArguments {
  @Option(help: "Interface to bind: 127.0.0.1 (this machine only) or 0.0.0.0 (serve other hosts).")
  var host = "127.0.0.1"
  @Option(
    parsing: .unconditional,
    help: "Control port (ROUTER); fragments and weights default to port+1 and port+2. 0: ephemeral ports.")
  var port = 5555
  @Option(parsing: .unconditional, help: "Fragment port (PULL); default port+1.")
  var fragmentPort: Int?
  @Option(parsing: .unconditional, help: "Weights port (PUB); default port+2.")
  var weightsPort: Int?

  var endpoints: LearnerEndpoints {
    LearnerEndpoints(
      host: host, controlPort: port, fragmentPort: fragmentPort ?? (port == 0 ? 0 : port + 1),
      weightsPort: weightsPort ?? (port == 0 ? 0 : port + 2))
  }

  func validate() throws {
    for (name, p) in [("--port", port), ("--fragment-port", fragmentPort ?? 0), ("--weights-port", weightsPort ?? 0)] where p < 0 || p > 65535 {
      throw ValidationError("\(name) \(p) is not a port (0-65535)")
    }
    let e = endpoints
    for (name, p, offset) in [("--fragment-port", e.fragmentPort, 1), ("--weights-port", e.weightsPort, 2)] where p > 65535 {
      throw ValidationError(
        "--port \(port): the \(name.dropFirst(2).replacingOccurrences(of: "-port", with: "")) port would be \(p) (port+\(offset)), past 65535; choose a lower --port or set \(name)"
      )
    }
  }
}

/// `herd learner`: the learner daemon.
struct LearnerCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "learner",
    abstract: "Run the learner daemon: workers connect to it over ZeroMQ.",
    discussion: """
      Binds the control (ROUTER), fragment (PULL) and weight (PUB) endpoints on
      --host at --port, port+1 and port+2, trains on the fragments workers push,
      and broadcasts new weights. Same run directory as `herd train`
      (config.json, progress.jsonl, events.out.tfevents.*, checkpoint.herd,
      summary.json); --resume continues from the run directory's checkpoint,
      with its config.json unless --config is given (--set and --seed apply on
      top; --env, if given, must be the run's). SIGTERM or Ctrl-C: stop,
      checkpoint, summary. Without stop options it stops as `herd train` does:
      at the solved return of an environment Herd knows (475 for CartPole) or
      after 10 minutes; a daemon meant to run on gives --stop-seconds.

      Example: herd learner --env StatelessCartPole-v1 --run-dir runs/a --port 5555
               herd worker --learner tcp://127.0.0.1:5555
      """
  )

  @OptionGroup var options: ConfigOptions
  @OptionGroup var endpoints: EndpointOptions
  @OptionGroup var stopping: StopOptions
  @OptionGroup var stats: StatsOptions
  @OptionGroup var curve: LearnerCurveOptions
  @OptionGroup var logs: LogOptions
  @Option(help: "Run folder (default runs/ENV-TIME); one that holds a run takes --resume or --resume-if-present.")
  var runDir: String?
  @Flag(help: "Write no TensorBoard event files (by default RUN_DIR/events.out.tfevents.* get each progress record).")
  var noTensorboard = false
  @Flag(
    help:
      "Continue from RUN_DIR/checkpoint.herd (policy version, optimiser state, counters) with RUN_DIR/config.json unless --config is given."
  )
  var resume = false
  @Flag(help: "Resume when RUN_DIR/checkpoint.herd exists, else start fresh (for services that restart).")
  var resumeIfPresent = false
  @OptionGroup var ready: ReadyOptions
  @Option(
    help: """
      Python interpreter for the learner's own gym:ID environments, which evaluate the weights when \
      evaluation_interval_env_steps is set (default: $HERD_PYTHON, else ./.venv/bin/python when present, else the \
      .venv of the checkout this herd was built in, else python3).
      """)
  var python: String?

  func validate() throws {
    if let p = python, p.isEmpty { throw ValidationError("--python must name an interpreter") }
    try stopping.validate()
    try endpoints.validate()
    try stats.validate()
    try curve.validate()
    if (resume || resumeIfPresent) && runDir == nil {
      throw ValidationError("--resume needs --run-dir (the run to continue)")
    }
  }

  func run() throws {
    let logger = logs.bootstrap(label: "herd.learner")
    let resuming =
      resume || (resumeIfPresent && runDir.map { FileManager.default.fileExists(atPath: $0 + "/checkpoint.herd") } == true)
    var (config, fromRun) = try options.resolve(resuming: resuming ? runDir : nil)
    if let fromRun {
      logger.info("\(Train.resumeBase(fromRun, overrides: options.overrides, seed: options.seed, workers: nil))")
    } else {
      // As herd train does (a gym: run only); the workers take the config from the
      // learner. A learner host without herd_env's Python keeps the defaults.
      do {
        try options.fitDefaults(&config, host: EnvHostSettings(), logger: logger)
      } catch {
        logger.warning(
          "cannot ask \(config.env)'s action space on this host (\(error)): lstm_use_prev_action stays true as the Gymnasium defaults have it; if its actions are a Box, set it to false in the config, as herd train would (discrete actions keep it)")
      }
    }
    if let notice = options.environmentNotice(config, fromRun: fromRun) { logger.notice("\(notice)") }
    if let notice = config.roundingNotice { logger.notice("\(notice)") }
    if let notice = config.selfPlayNotice { logger.notice("\(notice)") }
    try stopping.check(config)
    let security = try curve.security(logger: logger)
    let dirPath = runDir ?? Train.defaultRunDirectory(config.env)
    BLAS.setThreadCount(1)
    logger.info("learner: OpenBLAS threads 1 (\(BLAS.configuration))")
    StopSignals.install(interruptFlag)
    let e = endpoints.endpoints
    var settings = LearnerSettings(runDirectory: dirPath, stop: stopping.criteria(for: config.env))
    settings.resume = resuming
    settings.network = NetworkSettings(endpoints: e, security: security)
    settings.stats = try stats.settings(host: e.host, defaultPort: e.controlPort == 0 ? 0 : e.controlPort + 3)
    settings.tensorBoard = !noTensorboard
    settings.envHost = EnvHostSettings(python: python ?? EnvHostSettings.defaultPython, processes: 1)
    let summary = try LearnerDaemon(config: config, settings: settings, logger: logger).run(interrupted: interruptFlag) {
      r in
      if let url = r.statsURL { stats.announce(url, host: e.host, logger: logger) }
      try ready.write(r, runDirectory: dirPath)
    }
    printSummary(summary)
    if summary.disk_error != nil { throw ExitCode(1) }
  }
}

/// `herd worker`: one rollout worker process.
struct WorkerCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "worker",
    abstract: "Run a rollout worker that connects to a learner.",
    discussion: """
      The learner's control address is all a worker needs: its first answer brings
      the run's config; the worker makes the environments it names (gym:ID ones in
      env host processes), says hello with their spaces, and the welcome brings the
      model and the current weights. A worker outlives its learner: when the
      connection stays closed for 5 s (the run ended, or the learner's host or the
      network is down) it says so and says hello with backoff until a learner
      answers on that address, which then gets it. A learner restarted within the
      5 s keeps it. SIGTERM or Ctrl-C: goodbye and exit.

      Example: herd worker --learner tcp://10.0.0.5:5555 --envs 32
      """
  )

  @Option(help: "The learner's control endpoint, tcp://HOST:PORT.")
  var learner: String
  @Option(parsing: .unconditional, help: "Environments stepped as one batch (default: the run's num_envs_per_worker).")
  var envs: Int?
  @Option(parsing: .unconditional, help: "Seed for this worker's environments and sampling.", transform: seedArgument)
  var seed: UInt64 = 0
  @Option(
    parsing: .unconditional,
    help: ArgumentHelp(
      "Stop cleanly, as on SIGTERM, once process PID is no longer this worker's parent (checked every second). herd train passes its own id, so its workers end with it even when it is killed outright (SIGKILL, the OOM killer).",
      valueName: "PID"))
  var parentPid: Int32?
  @OptionGroup var envHost: EnvHostOptions
  @OptionGroup var curve: WorkerCurveOptions
  @OptionGroup var logs: LogOptions

  func validate() throws {
    if let e = envs, e < 1 { throw ValidationError("--envs must be at least 1, got \(e)") }
    if let p = parentPid, p < 1 { throw ValidationError("--parent-pid must be a process id (1 or more), got \(p)") }
    try envHost.validate()
    try curve.validate()
  }

  func run() throws {
    let logger = logs.bootstrap(label: "herd.worker")
    // A worker herd train started gets the terminal's Ctrl-C beside it: one announcement is enough.
    StopSignals.install(interruptFlag, announce: parentPid == nil)
    if let parentPid { ParentWatch.start(parent: parentPid, stop: interruptFlag, logger: logger, who: "worker") }
    BLAS.setThreadCount(1)
    let transport = try ZMQWorkerTransport(learner: learner, curve: try curve.keys(), logger: logger)
    let loop = WorkerLoop(transport: transport, envs: envs, seed: seed, logger: logger, envHost: envHost.settings)
    if parentPid != nil { loop.stopLogLevel = .debug }
    logger.info("worker: run \(String(loop.runID, radix: 16)), connecting to \(learner)")
    do {
      try loop.run(stop: interruptFlag)
    } catch let r as Refusal {
      throw CommandFailure("the learner refused this worker: \(r)")
    }
  }
}

/// `herd worker --parent-pid` and `herd train --parent-pid`: a thread that sets the
/// stop flag once the process's parent is another process than the one named,
/// which is what Linux does to an orphan (it is handed to init or a subreaper).
/// Polling rather than `PR_SET_PDEATHSIG`, which fires when the thread that
/// spawned the child ends, not its process.
enum ParentWatch {
  static func start(parent: Int32, stop: StopFlag, logger: Logger, who: String) {
    let thread = Thread {
      while !stop.isSet {
        if getppid() != parent {
          logger.warning("\(who): parent process \(parent) is gone; stopping")
          stop.set()
          return
        }
        stop.wait(seconds: 1)
      }
    }
    thread.name = "parent-watch"
    thread.start()
  }
}

/// `--ready-file`: a readiness signal with a defined format for scripts, tests and
/// supervisors, instead of reading log lines.
struct ReadyOptions: ParsableArguments {
  @Option(
    help: """
      Once every endpoint is bound, write {"control", "stats", "pid", "run_dir"} as one JSON \
      object to this file (atomically; "control" and "stats" are null when not served).
      """)
  var readyFile: String?

  /// Writes the ready file, if one was asked for.
  func write(_ r: LearnerReady, runDirectory: String) throws {
    guard let path = readyFile else { return }
    let object: [String: Any] = [
      "control": r.control ?? NSNull(), "stats": r.statsURL ?? NSNull(), "pid": Int(getpid()), "run_dir": runDirectory,
    ]
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    do {
      try (data + Data("\n".utf8)).write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
      throw CommandFailure("--ready-file \(path): cannot write it (\((error as NSError).localizedDescription))")
    }
  }
}

/// How a worker hosts Gymnasium environments (`gym:ID`); built-in ones ignore it.
struct EnvHostOptions: ParsableArguments {
  @Option(
    help: """
      Python interpreter with herd_env, gymnasium and the environment's package installed, for gym:ID \
      environments (default: $HERD_PYTHON, else ./.venv/bin/python when present, else the .venv of the \
      checkout this herd was built in, else python3).
      """)
  var python: String?
  @Option(
    parsing: .unconditional,
    help: """
      Env host processes per worker for gym:ID environments (default: 1 on machines with fewer than 4 CPUs, else 2; \
      here \(EnvHostSettings.defaultProcesses)).
      """)
  var envProcesses: Int?
  @Option(
    parsing: .unconditional,
    help: """
      Row groups per env host process (at most 26): a host steps one group while the policy acts for another; 1 \
      makes the two take turns. Default: 2 with one host process, 1 with more (they already overlap) and for `herd \
      train` on machines with fewer than 4 CPUs (its learner keeps the other CPU busy).
      """)
  var envGroups: Int?

  func validate() throws {
    if let p = envProcesses, p < 1 { throw ValidationError("--env-processes must be at least 1, got \(p)") }
    if let g = envGroups, !(1...26).contains(g) { throw ValidationError("--env-groups must be in 1...26, got \(g)") }
    if let p = python, p.isEmpty { throw ValidationError("--python must name an interpreter") }
  }

  var settings: EnvHostSettings {
    EnvHostSettings(python: python ?? EnvHostSettings.defaultPython, processes: envProcesses, groups: envGroups)
  }

  /// The same options for a child `herd worker`.
  var arguments: [String] {
    ["--python", settings.python] + (envProcesses.map { ["--env-processes", String($0)] } ?? [])
      + (envGroups.map { ["--env-groups", String($0)] } ?? [])
  }
}
