import Foundation
import HerdMath
import HerdRL
import HerdWire

/// Errors that end a worker process.
public enum WorkerError: Error, CustomStringConvertible {
  /// The learner refused the worker for good (e.g. protocol versions differ).
  case rejected(String)
  /// `--learner` is not `tcp://HOST:PORT`.
  case badAddress(String)

  public var description: String {
    switch self {
    case .rejected(let r): return "the learner refused this worker: \(r)"
    case .badAddress(let a): return "--learner \(a) is not tcp://HOST:PORT"
    }
  }
}

/// A rollout worker process: one address (the learner's control endpoint) is all it
/// needs; the welcome brings the config, the model spec, the current weights and the
/// other endpoints. It steps K envs with batched inference, pushes fragments as they
/// complete, applies new weights between steps, sends heartbeats, reconnects with
/// backoff when the learner goes away and says hello again when a restarted learner
/// does not know it. The run id is random per process start.
public final class RemoteWorker {
  public let learner: String
  let learnerHost: String
  let envs: Int?
  let seed: UInt64
  public let runID: UInt64
  let log: (String) -> Void
  /// CURVE: the learner's public key and this worker's pair (nil: plain TCP).
  let curve: (server: CurveKey, pair: CurveKeyPair)?
  private var warnedRefused = false

  public init(
    learner: String, envs: Int?, seed: UInt64, curve: (server: CurveKey, pair: CurveKeyPair)? = nil,
    log: @escaping (String) -> Void
  ) throws {
    guard learner.hasPrefix("tcp://"), let colon = learner.lastIndex(of: ":"), colon > learner.index(learner.startIndex, offsetBy: 6),
      Int(learner[learner.index(after: colon)...]) != nil
    else { throw WorkerError.badAddress(learner) }
    self.learner = learner
    learnerHost = String(learner[learner.index(learner.startIndex, offsetBy: 6)..<colon])
    self.envs = envs
    self.seed = seed
    self.curve = curve
    var g = SystemRandomNumberGenerator()
    runID = g.next()
    self.log = log
  }

  /// Runs sessions until `stop` is set; between sessions it reconnects with backoff.
  public func run(stop: StopFlag) throws {
    let ctx = try ZMQContext()
    var backoff = 0.5
    var attempt = 0
    while !stop.isSet {
      let control = try ZMQSocket(ctx, .dealer)
      try control.setReconnect(initialMs: 100, maxMs: 5000)
      try secure(control)
      attempt += 1
      let monitor = try control.monitorHandshakes(ctx, name: "\(runID)-\(attempt)")
      defer { monitor.close() }
      try control.connect(learner)
      guard let welcome = try hello(control, monitor: monitor, stop: stop) else {
        control.close()
        if stop.isSet { break }
        log("worker: no answer from \(learner); retrying in \(String(format: "%.1f", backoff)) s")
        // Back off, but stay responsive to SIGTERM.
        let until = Date(timeIntervalSinceNow: backoff)
        while !stop.isSet && Date() < until { usleep(50_000) }
        backoff = min(backoff * 2, 10)
        continue
      }
      backoff = 0.5
      try session(welcome, control: control, ctx: ctx, stop: stop)
      control.close()
    }
  }

  /// Sends a hello and waits up to 3 s for the answer: a welcome, nil on silence;
  /// a reject is fatal unless it asks for another hello.
  func hello(_ control: ZMQSocket, monitor: ZMQSocket, stop: StopFlag) throws -> Welcome? {
    // 0 envs: the run's num_envs_per_worker (the worker learns it from the welcome).
    let h = Hello(runID: runID, host: ProcessInfo.processInfo.hostName, pid: Int(getpid()), numEnvs: envs ?? 0, build: "herd")
    try control.send([try ControlCodec.encode(.hello(h))], dontWait: true)
    let deadline = Date(timeIntervalSinceNow: 3)
    while Date() < deadline && !stop.isSet {
      while let event = try monitor.receive(timeoutMs: 0).flatMap(ZMQMonitorEvent.init), event.isHandshakeFailure {
        if !warnedRefused {
          warnedRefused = true
          let key = curve.map { "its public key \($0.pair.publicKey.z85) is not in the learner's --authorized-keys" }
          log(
            "worker: the learner at \(learner) refused the handshake (\(event.isAuthFailure ? "authentication, status \(event.value)" : "CURVE protocol")): "
              + (key ?? "the learner requires CURVE keys (--learner-public-key, --curve-secret-key)")
              + "; retrying, further refusals are not logged")
        }
      }
      guard let frames = try control.receive(timeoutMs: 100) else { continue }
      switch try? ControlCodec.decode(frames.last ?? []) {
      case .welcome(let w)?: return w
      case .reject(let r)?:
        if r.reason.contains("say hello again") { continue }
        throw WorkerError.rejected(r.reason)
      default: continue
      }
    }
    return nil
  }

  /// One session: from a welcome until the learner forgets this worker or `stop`.
  func session(_ w: Welcome, control: ZMQSocket, ctx: ZMQContext, stop: StopFlag) throws {
    var config = try TrainingConfig.decode(json: Data(w.configJson.utf8), over: TrainingConfig(), source: "welcome")
    if let envs { config.num_envs_per_worker = envs }
    let spec = try WireModelSpec(proto: w.model)
    let network = PolicyNetwork(config: config, observationSize: spec.observationSize, actionCount: spec.actionCount)
    guard network.layout.count == spec.parameterCount, network.stateSize == spec.stateSize else {
      throw WorkerError.rejected("the welcome's model spec \(spec) does not match the model its config builds")
    }
    BLAS.setThreadCount(1)
    let worker = try RolloutWorker(config: config, network: network, workerID: Int(w.workerID), seed: seed, runID: runID)
    try worker.setWeights(try TensorCodec.floats(w.weights, shape: [spec.parameterCount], name: "welcome weights"), version: Int(w.policyVersion))
    let push = try ZMQSocket(ctx, .push)
    try secure(push)
    try push.setHighWaterMarks(send: 4, receive: 4)
    try push.setKernelBuffers(send: 1 << 16, receive: 1 << 16)
    try push.connect(rehost(w.fragmentEndpoint))
    let sub = try ZMQSocket(ctx, .sub)
    try secure(sub)
    try sub.subscribe()
    try sub.connect(rehost(w.weightsEndpoint))
    log("worker \(w.workerID): welcomed by \(learner) at policy version \(w.policyVersion); \(config.num_envs_per_worker) envs of \(config.env)")
    defer {
      push.close()
      sub.close()
    }
    var pending: [Fragment] = []
    var episodes: [EpisodeRecord] = []
    var recent: [Float] = []
    var stepsSinceSend = 0
    var totalEpisodes = 0
    var lastSend = Date()
    var lastBeat = Date.distantPast
    var lastBeatSteps = 0
    var lastWeights = Date()
    var lastProgress = (time: Date(), steps: 0)
    while !stop.isSet {
      // New weights between steps (keep the newest).
      while let frames = try sub.receive(timeoutMs: 0) {
        if let (v, blob) = try? WeightsCodec.decode(frames[0], spec: spec), v > worker.policyVersion {
          try worker.setWeights(blob, version: v)
          lastWeights = Date()
        }
      }
      // Act, step, record.
      let before = worker.envSteps
      worker.step(emit: { pending.append($0) }, episode: { episodes.append($0) })
      stepsSinceSend += worker.envSteps - before
      // Send what completed (a full learner blocks this send: backpressure).
      if pending.count >= 8 || (!pending.isEmpty && Date().timeIntervalSince(lastSend) > 0.1) {
        let bytes = try FragmentCodec.encodeBatch(
          pending, episodes: episodes, envSteps: stepsSinceSend, workerID: Int(w.workerID), runID: runID, spec: spec)
        while !stop.isSet, !(try push.send([bytes], dontWait: true)) { usleep(1000) }
        for e in episodes { recent.append(e.envReturn) }
        if recent.count > 100 { recent.removeFirst(recent.count - 100) }
        totalEpisodes += episodes.count
        pending.removeAll(keepingCapacity: true)
        episodes.removeAll(keepingCapacity: true)
        stepsSinceSend = 0
        lastSend = Date()
      }
      // Heartbeat every 2 s; a reject asking for a hello ends the session.
      if Date().timeIntervalSince(lastBeat) >= 2 {
        let dt = lastBeat == .distantPast ? 1 : Date().timeIntervalSince(lastBeat)
        var b = Heartbeat()
        b.workerID = w.workerID
        b.runID = runID
        b.envSteps = Int64(worker.envSteps)
        b.episodes = Int64(totalEpisodes)
        b.meanReturn = recent.isEmpty ? .nan : recent.reduce(0, +) / Float(recent.count)
        b.stepsPerSecond = Double(worker.envSteps - lastBeatSteps) / dt
        b.policyVersion = Int64(worker.policyVersion)
        _ = try control.send([try ControlCodec.encode(.heartbeat(b))], dontWait: true)
        lastBeat = Date()
        lastBeatSteps = worker.envSteps
      }
      // A progress line every progress_interval_seconds x 5 (10 s by default).
      let sinceProgress = Date().timeIntervalSince(lastProgress.time)
      if sinceProgress >= 5 * config.progress_interval_seconds {
        let rate = Double(worker.envSteps - lastProgress.steps) / sinceProgress
        let ret = recent.isEmpty ? "-" : String(format: "%.2f", recent.reduce(0, +) / Float(recent.count))
        log(
          "worker \(w.workerID): steps \(worker.envSteps.formatted()) (\(Int(rate).formatted())/s)  episodes \(totalEpisodes)  "
            + "return \(ret)  policy version \(worker.policyVersion) (weights \(String(format: "%.1f", Date().timeIntervalSince(lastWeights))) s old)")
        lastProgress = (Date(), worker.envSteps)
      }
      if let frames = try control.receive(timeoutMs: 0), case .reject(let r)? = try? ControlCodec.decode(frames.last ?? []) {
        log("worker \(w.workerID): the learner does not know this session (\(r.reason)); saying hello again")
        return
      }
    }
    var g = Goodbye()
    g.workerID = w.workerID
    g.runID = runID
    g.reason = "stopped"
    _ = try? control.send([try ControlCodec.encode(.goodbye(g))], dontWait: true)
  }

  /// Makes `socket` a CURVE client of the learner when keys were given.
  func secure(_ socket: ZMQSocket) throws {
    if let curve { try socket.makeCurveClient(server: curve.server, pair: curve.pair) }
  }

  /// The learner's endpoint with this worker's view of the learner's host (a learner
  /// bound to 0.0.0.0 reports that address, which is not where to connect).
  func rehost(_ endpoint: String) -> String {
    guard let colon = endpoint.lastIndex(of: ":") else { return endpoint }
    return "tcp://\(learnerHost)\(endpoint[colon...])"
  }
}
