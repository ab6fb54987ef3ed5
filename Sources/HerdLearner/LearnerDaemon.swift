import Foundation
import HerdMath
import HerdRL
import HerdStats
import HerdWire
import Logging
import ServiceLifecycle

/// How a learner daemon is reached and what it runs beside the trainer.
public struct LearnerSettings: Sendable {
  /// The run folder (config.json, progress.jsonl, checkpoint.herd, summary.json).
  public var runDirectory: String
  public var stop: StopCriteria
  /// Continue from RUN_DIR/checkpoint.herd.
  public var resume = false
  /// Why the run cannot go on, once the workers its caller started can no longer
  /// work (every one exited with an error); the run then ends as their failure.
  public var workersFailed: @Sendable () -> String? = { nil }
  /// ZeroMQ endpoints for worker processes (nil: none, in-process workers only).
  public var network: NetworkSettings?
  /// Rollout worker threads in this process (the in-memory transport).
  public var inProcessWorkers = 0
  /// How in-process workers host Gymnasium environments.
  public var envHost = EnvHostSettings()
  /// The HTTP stats endpoint (nil: none).
  public var stats: StatsSettings?
  /// TensorBoard event files in RUN_DIR (``TensorBoardEvents``).
  public var tensorBoard = true
  /// SIGTERM and SIGINT stop the run cleanly (set by the command line, not by tests).
  public var handleSignals = false
  /// Seconds without a heartbeat after which a worker process counts as lost
  /// (tests shorten it).
  var workerLostSeconds: Double = 10
  /// Called on the trainer's thread after each update with the policy version
  /// (tests stand in a long update with it).
  var afterUpdate: (@Sendable (Int) -> Void)?

  public init(runDirectory: String, stop: StopCriteria) {
    self.runDirectory = runDirectory
    self.stop = stop
  }
}

/// The learner's ZeroMQ side.
public struct NetworkSettings: Sendable {
  public var endpoints: LearnerEndpoints
  public var security: LearnerSecurity?

  public init(endpoints: LearnerEndpoints, security: LearnerSecurity? = nil) {
    self.endpoints = endpoints
    self.security = security
  }
}

/// The stats endpoint's settings.
public struct StatsSettings: Sendable {
  public var host: String
  /// The port (0: any free port).
  public var port: Int
  /// When `port` is taken, take any free port instead of failing.
  public var anyPortIfTaken = false
  public var stallSeconds: Double = 30
  public var token: String?

  public init(host: String, port: Int) {
    self.host = host
    self.port = port
  }
}

/// What a started daemon tells its caller before training begins.
public struct LearnerReady: Sendable {
  /// The control endpoint workers connect to (nil without a network).
  public var control: String?
  /// `http://HOST:PORT` of the stats endpoint (nil without one).
  public var statsURL: String?
  /// The trainer's status board (progress displays read it).
  public var status: StatusBoard
}

/// A learner daemon, startable from code: the trainer, the intake and weight
/// publishing (the ZeroMQ network thread and/or in-process worker threads over the
/// in-memory transport), checkpoints and the run directory, the status board and
/// the stats endpoint.
///
/// The parts run as services of one `ServiceGroup` (swift-service-lifecycle), in
/// this order: stats server, network, in-process workers, trainer. They stop in
/// reverse: the trainer first (final checkpoint, summary), then the workers, the
/// network, and the stats server last, so `/healthz` says "stopped" to the end.
/// The group stops when the trainer finishes (a stop criterion), on SIGTERM/SIGINT
/// (with ``LearnerSettings/handleSignals``), or when `interrupted` is set.
public final class LearnerDaemon {
  public let config: TrainingConfig
  public let settings: LearnerSettings
  let logger: Logger

  /// A daemon for `config`; `logger` gets its logs (by default swift-log's
  /// standard handler, stderr at info).
  public init(config: TrainingConfig, settings: LearnerSettings, logger: Logger = Logger(label: "herd.learner")) {
    self.config = config
    self.settings = settings
    self.logger = logger
  }

  /// Runs until the trainer finishes; `ready` is called once every endpoint is
  /// bound, before training begins. Returns the run's summary.
  ///
  /// Blocks the calling thread for the whole run: call it from a thread of your
  /// own (the main thread, a `Thread`). From async code use `await run()`, which
  /// holds no thread of Swift's cooperative pool: the services' shutdown needs one
  /// (see ``ServiceRunner``).
  public func run(interrupted: StopFlag = StopFlag(), ready: (LearnerReady) throws -> Void = { _ in }) throws
    -> RunSummary
  {
    let started = try start(interrupted: interrupted)
    defer { started.runDirectory.release() }
    do {
      let statsURL = try started.statsServer.map { "http://\($0.host):\(try $0.waitUntilBound())" }
      try ready(started.ready(statsURL: statsURL))
    } catch {
      interrupted.set()
      started.runner.shutdown()
      throw error
    }
    try started.runner.wait()
    return try started.result()
  }

  /// Runs until the trainer finishes, suspending instead of blocking; `ready` is
  /// called once every endpoint is bound, before training begins. Returns the
  /// run's summary. Cancelling the calling task stops the run as `interrupted` does.
  public func run(interrupted: StopFlag = StopFlag(), ready: (LearnerReady) throws -> Void = { _ in }) async throws
    -> RunSummary
  {
    let started = try start(interrupted: interrupted)
    defer { started.runDirectory.release() }
    do {
      var statsURL: String?
      if let server = started.statsServer { statsURL = "http://\(server.host):\(try await server.waitUntilBound())" }
      try ready(started.ready(statsURL: statsURL))
    } catch {
      interrupted.set()
      await started.runner.shutdown()
      throw error
    }
    try await withTaskCancellationHandler {
      try await started.runner.wait()
    } onCancel: {
      interrupted.set()
    }
    return try started.result()
  }

  /// A started run: its services running, training not yet begun.
  struct Started {
    let runner: ServiceRunner
    /// The run's folder, released when the run ends.
    let runDirectory: RunDirectory
    let statsServer: StatsServer?
    let control: String?
    let status: StatusBoard
    let summary: SummaryBox
    let failure: FailureBox
    let workersFailed: @Sendable () -> String?

    func ready(statsURL: String?) -> LearnerReady {
      LearnerReady(control: control, statsURL: statsURL, status: status)
    }

    /// The summary once the group has ended, or the failure that ended it.
    func result() throws -> RunSummary {
      guard let result = summary.value else { throw RunDirectoryError("the trainer ended without a summary") }
      if let f = failure.message ?? workersFailed() { throw LearnerError.workerFailed(f) }
      return result
    }
  }

  /// Prepares the trainer, binds the sockets and starts every service.
  private func start(interrupted: StopFlag) throws -> Started {
    let workersFailed = settings.workersFailed
    // A learner that cannot serve says so before it makes its run folder, so a
    // mistyped port leaves no folder behind (runs/ENV-TIME by default).
    if let n = settings.network { try LearnerNetwork.checkBindable(n.endpoints) }
    // A new run never writes over another's checkpoint (its weights, optimiser
    // state and counters would be gone, its progress.jsonl mixed with ours).
    let existing = (settings.runDirectory as NSString).appendingPathComponent("checkpoint.herd")
    if !settings.resume && FileManager.default.fileExists(atPath: existing) {
      throw RunDirectoryError(
        "--run-dir \(settings.runDirectory) holds a run already (\(existing)): --resume continues it; a new run needs another --run-dir (or that folder removed)")
    }
    let runDirectory = try RunDirectory(path: settings.runDirectory)
    for name in runDirectory.removedTemporaries {
      logger.notice("run dir: removed \(name), a temporary file a process no longer running left half-written")
    }
    if !settings.resume {
      let cleared = runDirectory.clearPreviousRun()
      if !cleared.isEmpty {
        logger.notice(
          "run dir: a new run in \(runDirectory.path), which held a run without a checkpoint (it cannot be resumed): emptied or removed its \(cleared.joined(separator: ", "))"
        )
      }
    }
    let trainer = Trainer(config: config, stop: settings.stop, runDirectory: runDirectory, logger: logger)
    trainer.workerLostSeconds = settings.workerLostSeconds
    trainer.afterUpdate = settings.afterUpdate
    if settings.tensorBoard {
      trainer.tensorBoard = TensorBoardEvents(folder: runDirectory.path, createsFolder: false)
    }
    let parts = try trainer.prepare(resume: settings.resume)
    let board = settings.tensorBoard ? " (TensorBoard: tensorboard --logdir \(runDirectory.path))" : ""
    logger.info("run: env \(config.env), run dir \(runDirectory.path)\(board)")
    var services: [ServiceGroupConfiguration.ServiceConfiguration] = []

    // ZeroMQ sockets: bound now, so the stats endpoint can list them.
    var endpoints: [String: String] = [:]
    var network: LearnerNetwork?
    if let n = settings.network {
      // Three descriptors per worker: the soft limit (1024 in a Debian shell or
      // systemd unit) would hold some 320 workers; the hard one is the real bound.
      if let raised = OpenFiles.raiseLimit() {
        logger.info(
          "learner: open-file limit raised from \(raised.from) to \(raised.to) (room for about \(OpenFiles.workerRoom(limit: raised.to)) workers)"
        )
      } else if let limit = OpenFiles.limit, OpenFiles.workerRoom(limit: limit) < 1000 {
        logger.notice(
          "learner: the open-file limit is \(limit), its hard limit too: room for about \(OpenFiles.workerRoom(limit: limit)) workers (raise it with ulimit -Hn as root, or LimitNOFILE= in a systemd unit)"
        )
      }
      let net = LearnerNetwork(parts: parts, config: config, logger: logger)
      try net.bind(n.endpoints, security: n.security)
      if !["127.0.0.1", "localhost"].contains(n.endpoints.host) && n.security == nil {
        logger.warning(
          "serving on \(n.endpoints.host) without CURVE: anyone who reaches these ports can feed this learner (herd keys generate; --curve-secret-key, --authorized-keys)"
        )
      }
      endpoints = ["control": net.bound.control, "fragments": net.bound.fragments, "weights": net.bound.weights]
      network = net
    }
    if settings.inProcessWorkers > 0 { endpoints["in_process_workers"] = String(settings.inProcessWorkers) }
    // Stats endpoint (first service: it stops last).
    var statsServer: StatsServer?
    if let s = settings.stats {
      let network = network
      let sources = StatsSources(
        env: config.env, runID: StatsEndpoint.newSessionID(), runDir: runDirectory.path, board: parts.status,
        workers: { parts.registry.sessions }, drops: { network?.drops ?? [:] }, endpoints: endpoints)
      let service = StatsService(sources: sources, stallSeconds: s.stallSeconds, token: s.token)
      var port = s.port
      if s.anyPortIfTaken, port != 0, !Self.portIsFree(host: s.host, port: port) {
        logger.notice("stats: port \(port) is taken; using any free port instead")
        port = 0
      }
      let server = StatsServer(service: service, host: s.host, port: port, logger: logger)
      services.append(.init(service: server))
      statsServer = server
    }

    // Network thread.
    if let network {
      services.append(
        .init(service: BlockingService(name: "herd-learner-network", body: { network.run() }, stop: { network.requestStop() })))
    }

    // In-process worker threads over the in-memory transport.
    let failure = FailureBox()
    if settings.inProcessWorkers > 0 {
      let port = InMemoryLearnerPort(
        config: config, model: parts.model, queue: parts.queue, board: parts.board, stats: parts.stats,
        registry: parts.registry)
      let workersStop = StopFlag()
      let count = settings.inProcessWorkers
      let (cfg, logger, envHost) = (config, self.logger, settings.envHost)
      services.append(
        .init(
          service: BlockingService(
            name: "herd-workers",
            body: {
              let threads = (0..<count).map { w in
                JoinableThread(name: "herd-worker-\(w)") {
                  let loop = WorkerLoop(
                    transport: port.connectWorker(), envs: nil, seed: cfg.seed &+ UInt64(w), logger: logger,
                    envHost: envHost)
                  do {
                    try loop.run(stop: workersStop)
                  } catch {
                    failure.set("worker thread \(w): \(error)")
                  }
                }
              }
              for t in threads { t.join() }
            },
            stop: {
              workersStop.set()
              parts.queue.close()  // unblocks a worker waiting for room
            })))
    }

    // The evaluator's thread (evaluation_interval_env_steps): it stops after the
    // trainer, abandoning an evaluation still running. When evaluations cannot run
    // it ends by itself, and the run goes on without them.
    if config.evaluation_interval_env_steps > 0 {
      let evaluator = PeriodicEvaluator(config: config, model: parts.model, envHost: settings.envHost)
      trainer.evaluator = evaluator
      let evaluatorStop = StopFlag()
      let logger = self.logger
      let own = config.evaluation_env_config.values.isEmpty ? "" : " with env_config \(evaluator.environmentConfig.env_config.json)"
      logger.info(
        "evaluation: every \(config.evaluation_interval_env_steps.formatted()) env steps, \(config.evaluation_episodes) \(config.evaluation_greedy ? "greedy" : "sampled") episodes in \(evaluator.envCount) environments of the learner's own\(own) (\(RunDirectory.evaluationsFile), \(RunDirectory.bestEvaluationFile))"
      )
      services.append(
        .init(
          service: BlockingService(
            name: "herd-evaluator", body: { evaluator.run(stop: evaluatorStop) { logger.info("evaluation: \($0)") } },
            stop: { evaluatorStop.set() }),
          successTerminationBehavior: .ignore))
    }

    // The trainer, last: the first to stop.
    let summary = SummaryBox()
    services.append(
      .init(
        service: BlockingService(
          name: "herd-trainer",
          body: {
            summary.value = trainer.run(parts, interrupted: interrupted, failure: { failure.message ?? workersFailed() })
          },
          stop: { interrupted.set() }),
        successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup))

    let runner = ServiceRunner(
      services: services, signals: settings.handleSignals ? [.sigterm, .sigint] : [], logger: logger,
      name: "herd-learner-services")
    return Started(
      runner: runner, runDirectory: runDirectory, statsServer: statsServer, control: network?.bound.control, status: parts.status,
      summary: summary, failure: failure, workersFailed: workersFailed)
  }

  /// Whether `host:port` can be bound now (for ``StatsSettings/anyPortIfTaken``).
  static func portIsFree(host: String, port: Int) -> Bool { bindErrno(host: host, port: port) == 0 }

  /// Why a TCP socket cannot bind `host:port` now (an errno; 0: it can), with
  /// SO_REUSEADDR as ZeroMQ and the stats server bind. `host` is an IPv4 address
  /// or `localhost`.
  static func bindErrno(host: String, port: Int) -> Int32 {
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard s >= 0 else { return errno }
    defer { close(s) }
    var one: Int32 = 1
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr(host == "localhost" ? "127.0.0.1" : host)
    let rc = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    return rc == 0 ? 0 : errno
  }
}

/// Errors that end a learner daemon.
public enum LearnerError: Error, CustomStringConvertible {
  /// An in-process worker thread failed (its error).
  case workerFailed(String)
  /// An endpoint cannot be bound (what and why, for people).
  case cannotBind(String)

  public var description: String {
    switch self {
    case .workerFailed(let why), .cannotBind(let why): return why
    }
  }
}

/// The summary the trainer's thread hands back.
final class SummaryBox: @unchecked Sendable {
  // Written once by the trainer's thread before its service returns; read after
  // the service group has ended (the group's end orders the two).
  var value: RunSummary?
}

/// A blocking loop on its own thread as a service: graceful shutdown calls `stop`,
/// and the service ends when `body` returns.
struct BlockingService: Service {
  let name: String
  let body: @Sendable () -> Void
  let stop: @Sendable () -> Void

  func run() async throws {
    await withGracefulShutdownHandler {
      await withTaskCancellationHandler {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
          _ = JoinableThread(name: name) {
            body()
            c.resume()
          }
        }
      } onCancel: {
        stop()
      }
    } onGracefulShutdown: {
      stop()
    }
  }
}
