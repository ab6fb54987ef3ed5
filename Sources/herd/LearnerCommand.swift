import ArgumentParser
import Foundation
import HerdLearner
import HerdMath
import HerdRL
import HerdStats
import HerdWire
import HerdWorker

/// Options naming the learner's endpoints.
struct EndpointOptions: ParsableArguments {
  @Option(help: "Interface to bind: 127.0.0.1 (this machine only) or 0.0.0.0 (serve other hosts).")
  var host = "127.0.0.1"
  @Option(help: "Control port (ROUTER); fragments and weights default to port+1 and port+2. 0: ephemeral ports.")
  var port = 5555
  @Option(help: "Fragment port (PULL); default port+1.")
  var fragmentPort: Int?
  @Option(help: "Weights port (PUB); default port+2.")
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
  }
}

/// `herd learner`: the learner daemon.
struct LearnerCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "learner",
    abstract: "Run the learner daemon: workers connect to it over ZeroMQ.",
    discussion: """
      Binds the control (ROUTER), fragment (PULL) and weight (PUB) endpoints on
      --host at --port, port+1 and port+2, trains on the fragments workers push, and
      broadcasts new weights. Same run directory as `herd train` (config.json,
      progress.jsonl, checkpoint.herd, summary.json); --resume continues from the
      run directory's checkpoint. SIGTERM or Ctrl-C: stop, checkpoint, summary.

      Example: herd learner --env StatelessCartPole-v1 --run-dir runs/a --port 5555
               herd worker --learner tcp://127.0.0.1:5555
      """
  )

  @OptionGroup var options: ConfigOptions
  @OptionGroup var endpoints: EndpointOptions
  @OptionGroup var stopping: StopOptions
  @OptionGroup var stats: StatsOptions
  @OptionGroup var curve: LearnerCurveOptions
  @Option(help: "Run folder (default runs/ENV-TIME).")
  var runDir: String?
  @Flag(help: "Continue from RUN_DIR/checkpoint.herd (policy version, optimiser state, counters).")
  var resume = false
  @Flag(help: "Resume when RUN_DIR/checkpoint.herd exists, else start fresh (for services that restart).")
  var resumeIfPresent = false
  @Flag(help: "No progress lines.")
  var quiet = false

  func validate() throws {
    try stopping.validate()
    try endpoints.validate()
    try stats.validate()
    try curve.validate()
  }

  func run() throws {
    let config = try options.resolve()
    let security = try curve.security()
    if (resume || resumeIfPresent) && runDir == nil {
      throw ValidationError("--resume needs --run-dir (the run to continue)")
    }
    let dirPath = runDir ?? "runs/\(config.env)-\(Train.timestamp())"
    let resuming = resume || (resumeIfPresent && FileManager.default.fileExists(atPath: dirPath + "/checkpoint.herd"))
    BLAS.setThreadCount(1)
    let runDirectory = try RunDirectory(path: dirPath)
    installStopSignals()
    let q = quiet
    let run = TrainingRun(config: config, stop: stopping.criteria(for: config.env), runDirectory: runDirectory) { line in
      if !q { printError(line) }
    }
    let e = endpoints.endpoints
    let summary = try serve(
      run, endpoints: e, security: security, stats: stats,
      defaultStatsPort: e.controlPort == 0 ? 0 : e.controlPort + 3, resume: resuming, interrupted: interruptFlag
    ) { _, _ in }
    printSummary(summary)
  }
}

/// Runs a learner daemon for `run` with its stats endpoint; `ready` receives the
/// bound control endpoint.
func serve(
  _ run: TrainingRun, endpoints: LearnerEndpoints, security: LearnerSecurity? = nil, stats: StatsOptions, defaultStatsPort: Int, resume: Bool,
  interrupted: StopFlag, ready: (_ control: String, _ status: StatusBoard) -> Void
) throws -> RunSummary {
  let parts = try run.prepare(resume: resume)
  let spec = WireModelSpec(
    env: run.config.env, observationSize: parts.network.observationSize, actionCount: parts.network.actionCount,
    stateSize: parts.network.stateSize, maxSeqLen: run.config.max_seq_len, parameterCount: parts.network.layout.count)
  let network = LearnerNetwork(
    config: run.config, spec: spec, queue: parts.queue, board: parts.board, stats: parts.stats, log: { printError($0) })
  try network.start(endpoints, security: security)
  if endpoints.host != "127.0.0.1" && endpoints.host != "localhost" && security == nil {
    printError(
      "warning: serving on \(endpoints.host) without CURVE: anyone who reaches these ports can feed this learner "
        + "(herd keys generate; --curve-secret-key, --authorized-keys)")
  }
  let sources = StatsSources(
    env: run.config.env, runID: StatsEndpoint.newSessionID(), runDir: run.runDirectory.path, board: parts.status,
    workers: { network.workers }, drops: { network.drops },
    endpoints: ["control": network.bound.control, "fragments": network.bound.fragments, "weights": network.bound.weights])
  let endpoint: StatsEndpoint?
  do {
    endpoint = try stats.start(sources: sources, host: endpoints.host, defaultPort: defaultStatsPort)
  } catch {
    network.shutdown()
    throw error
  }
  ready(network.bound.control, parts.status)
  return try run.trainLoop(parts, interrupted: interrupted, failure: { nil }) {
    parts.queue.close()
    network.shutdown()
    endpoint?.stop()
    let drops = network.drops
    if !drops.isEmpty {
      printError("dropped messages by reason: " + drops.map { "\($0.key.rawValue) \($0.value)" }.sorted().joined(separator: ", "))
    }
  }
}

/// `herd worker`: one rollout worker process.
struct WorkerCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "worker",
    abstract: "Run a rollout worker that connects to a learner.",
    discussion: """
      The learner's control address is all a worker needs: its welcome brings the
      config, the model and the current weights. The worker reconnects with backoff
      when the learner goes away and says hello again to a restarted one. SIGTERM or
      Ctrl-C: goodbye and exit.

      Example: herd worker --learner tcp://10.0.0.5:5555 --envs 32
      """
  )

  @Option(help: "The learner's control endpoint, tcp://HOST:PORT.")
  var learner: String
  @Option(help: "Environments stepped as one batch (default: the run's num_envs_per_worker).")
  var envs: Int?
  @Option(help: "Seed for this worker's environments and sampling.")
  var seed: UInt64 = 0
  @OptionGroup var curve: WorkerCurveOptions

  func validate() throws {
    if let e = envs, e < 1 { throw ValidationError("--envs must be at least 1, got \(e)") }
    try curve.validate()
  }

  func run() throws {
    installStopSignals()
    let worker = try RemoteWorker(learner: learner, envs: envs, seed: seed, curve: try curve.keys()) { printError($0) }
    printError("worker: run \(String(worker.runID, radix: 16)), connecting to \(learner)")
    try worker.run(stop: interruptFlag)
  }
}
