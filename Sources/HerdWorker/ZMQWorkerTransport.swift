import Foundation
import HerdEnvs
import HerdMath
import HerdRL
import HerdWire
import Logging

/// Errors in a worker's set-up.
public enum WorkerError: Error, CustomStringConvertible {
  /// `--learner` is not `tcp://HOST:PORT`.
  case badAddress(String)
  /// `--learner`'s port is not a TCP port.
  case badPort(String, Int)

  public var description: String {
    switch self {
    case .badAddress(let a): return "--learner \(a) is not tcp://HOST:PORT"
    case .badPort(let a, let p): return "--learner \(a): port \(p) is not a TCP port (1 to 65535; the learner's --port, 5555 by default)"
    }
  }
}

/// A worker process's end of the ZeroMQ channels: control DEALER to the learner's
/// ROUTER (hello, heartbeats, goodbye; welcome and rejects back), fragments PUSH,
/// weights SUB. One address, the learner's control endpoint, is all it needs: the
/// welcome brings the config, the model spec, the weights and the other endpoints.
/// With CURVE keys every socket is a CURVE client, and a refused handshake is
/// logged with its cause.
public final class ZMQWorkerTransport: WorkerTransport {
  public let learnerAddress: String
  let learnerHost: String
  let learnerPort: Int
  /// CURVE: the learner's public key and this worker's pair (nil: plain TCP).
  let curve: (server: CurveKey, pair: CurveKeyPair)?
  let logger: Logger
  let ctx: ZMQContext
  private var attempt = 0
  /// Handshake problems already logged (each kind once).
  private var warned: Set<String> = []
  /// Handshake problems seen so far, by kind.
  private var sightings: [String: Int] = [:]
  /// Whether the learner's address sends the ZMTP signature (``ZMTPProbe``), asked
  /// when a handshake breaks off without detail; nil until a probe could tell.
  private var addressSpeaksZeroMQ: Bool?
  /// Whether the learner's host name resolves, checked after each unanswered hello.
  private let resolution = HostResolution()
  private var control: ZMQSocket?
  private var monitor: ZMQSocket?
  private var push: ZMQSocket?
  private var sub: ZMQSocket?
  private var spec: ModelSpec?
  private var refusal: Refusal?
  /// Flow control (max_requests_in_flight_per_worker; 0: none): fragment batches
  /// this session sent, and how many of them the learner said it has taken.
  private var flow = (limit: 0, workerID: -1, runID: UInt64(0), sent: Int64(0), taken: Int64(0))
  private var warnedUntaken = false
  /// When the control connection closed and has not come back (nil: it is up).
  private var lostSince: Date?
  /// How long the control connection may stay closed before the session is given
  /// up (``Refusal/learnerGone(_:)``) and the worker says hello again: a learner
  /// restarted on the same port within it keeps the session's sockets.
  public var goneAfterSeconds = 5.0
  /// sync_sampling: after each acknowledgement, wait for weights newer than those
  /// the batch was acted on with. `known` is the newest version handed to the worker,
  /// `early` weights read while waiting, handed over by the next ``receiveWeights``.
  private var sync = false
  private var known = -1
  private var early: (version: Int, weights: [Float])?
  /// The last heartbeat sent and when: sent again while a send waits for a full
  /// learner, so a learner busy with a long update (a big model, a slow disk) does
  /// not take a worker it is itself holding up as lost.
  private var lastBeat: (message: [UInt8], sent: Date)?
  /// Seconds after which a waiting send repeats the last heartbeat.
  public var keepAliveSeconds = 2.0

  public init(learner: String, curve: (server: CurveKey, pair: CurveKeyPair)? = nil, logger: Logger) throws {
    guard learner.hasPrefix("tcp://"), let colon = learner.lastIndex(of: ":"),
      colon > learner.index(learner.startIndex, offsetBy: 6), let port = Int(learner[learner.index(after: colon)...])
    else { throw WorkerError.badAddress(learner) }
    guard (1...65535).contains(port) else { throw WorkerError.badPort(learner, port) }
    learnerAddress = learner
    learnerHost = String(learner[learner.index(learner.startIndex, offsetBy: 6)..<colon])
    learnerPort = port
    self.curve = curve
    self.logger = logger
    ctx = try ZMQContext()
  }

  /// Sends a hello and waits up to 3 s for the welcome (nil on silence).
  public func connect(_ hello: WorkerHello, stop: StopFlag) throws -> Handshake? {
    let control = try ZMQSocket(ctx, .dealer)
    try control.setReconnect(initialMs: 100, maxMs: 5000)
    // A learner host that vanishes sends no FIN: without heartbeats the connection
    // would look up for ever.
    try control.setHeartbeat(intervalMs: 2000, timeoutMs: 10000)
    try secure(control)
    attempt += 1
    lostSince = nil
    let monitor = try control.monitorConnection(ctx, name: "\(hello.runID)-\(attempt)")
    self.control = control
    self.monitor = monitor
    try control.connect(learnerAddress)
    flow.runID = hello.runID
    var h = Hello(runID: hello.runID, host: hello.host, pid: hello.pid, numEnvs: hello.envs ?? 0, build: "herd")
    h.envSpecJson = hello.envSpec?.json() ?? ""
    try control.send([try ControlCodec.encode(.hello(h))], dontWait: true)
    let deadline = Date(timeIntervalSinceNow: 3)
    var (handshaken, failed) = (false, false)
    while Date() < deadline && !stop.isSet {
      while let event = try monitor.receive(timeoutMs: 0).flatMap(ZMQMonitorEvent.init) {
        if event.isHandshakeSuccess { handshaken = true }
        if event.isHandshakeFailure { failed = true }
        // A connection closed before any handshake, with no failure said: the
        // peer speaks ZeroMQ but is no control socket (a learner's fragment or
        // weights port).
        let problem =
          event.isHandshakeFailure
          ? handshakeProblem(event) : event.isDisconnected && !handshaken && !failed ? closedProblem() : nil
        // A learner that stops while this worker connects breaks off one handshake
        // (then refuses connections); a port that is no learner's breaks off every
        // one. So those two kinds are said at their second sighting.
        if let (kind, text) = problem {
          sightings[kind, default: 0] += 1
          let due = ["broke", "closed"].contains(kind) ? 2 : 1
          if sightings[kind] ?? 0 >= due, warned.insert(kind).inserted {
            logger.error("worker: \(text); retrying, further such failures are not logged")
          }
        }
      }
      guard let frames = try control.receive(timeoutMs: 100) else { continue }
      switch try? ControlCodec.decode(frames.last ?? []) {
      case .welcome(let w)? where !w.hasModel:
        // No model yet: the run's config, to make the environments from.
        return .describe(
          try TrainingConfig.decode(json: Data(w.configJson.utf8), over: TrainingConfig(), source: "welcome"))
      case .welcome(let w)?: return .admitted(try admit(w))
      case .reject(let r)?:
        let refusal = Refusal(r)
        if refusal.isFatal { throw refusal }
      default: continue
      }
    }
    if !stop.isSet { resolution.check(address: learnerAddress, logger: logger) }
    return nil
  }

  /// What a failed handshake means, for the log: a kind (logged once) and the text.
  private func handshakeProblem(_ event: ZMQMonitorEvent) -> (String, String) {
    if event.isAuthFailure {
      let key = curve.map { "its public key \($0.pair.publicKey.z85) is not in the learner's --authorized-keys" }
      return (
        "auth",
        "the learner at \(learnerAddress) refused the handshake (authentication, status \(event.value)): \(key ?? "it admits only workers with CURVE keys (--learner-public-key, --curve-secret-key)")"
      )
    }
    if event.isMechanismMismatch {
      return curve == nil
        ? (
          "mechanism",
          "the learner at \(learnerAddress) refused the handshake (CURVE): it requires CURVE keys (--learner-public-key, --curve-secret-key)"
        )
        : (
          "mechanism",
          "the learner at \(learnerAddress) refused the handshake (CURVE): it does not use CURVE, and this worker has keys; start the learner with --curve-secret-key and --authorized-keys, or the worker without keys"
        )
    }
    if event.isNotZeroMQ {
      // A ZeroMQ socket of the wrong type (a learner's fragment or weights port)
      // sometimes shows as this too, by the timing of its close: its greeting
      // tells it from a server of another protocol (the stats port).
      if curve == nil && addressSpeaksZeroMQ == nil { addressSpeaksZeroMQ = ZMTPProbe.speaksZeroMQ(host: learnerHost, port: learnerPort) }
      if curve == nil && addressSpeaksZeroMQ == true { return closedProblem() }
      // With CURVE, a learner that cannot decrypt the hello (another learner's
      // public key) breaks off the same way as a peer that is not ZeroMQ at all.
      return curve == nil
        ? (
          "broke",
          "\(learnerAddress) does not speak ZeroMQ (the handshake broke off): is it the learner's control port (--port), not its stats port?"
        )
        : (
          "broke",
          "the handshake with \(learnerAddress) broke off: is --learner-public-key that learner's public key, and is the address its control port (--port)?"
        )
    }
    return (
      "protocol",
      "the learner at \(learnerAddress) refused the handshake (ZeroMQ protocol error 0x\(String(event.value, radix: 16)))"
    )
  }

  /// A connection that closed before its handshake finished, for the log.
  private func closedProblem() -> (String, String) {
    (
      "closed",
      "\(learnerAddress) closed the connection during the handshake: is it the learner's control port (--port)? Its fragment and weights ports (--port + 1 and + 2) take no hellos"
    )
  }

  /// Opens the fragment and weight channels a welcome names.
  private func admit(_ w: Welcome) throws -> Admission {
    let config = try TrainingConfig.decode(json: Data(w.configJson.utf8), over: TrainingConfig(), source: "welcome")
    let spec = try ModelSpec(proto: w.model)
    let weights = try TensorCodec.floats(w.weights, shape: [spec.parameterCount], name: "welcome weights")
    let push = try ZMQSocket(ctx, .push)
    try secure(push)
    try push.setHighWaterMarks(send: 4, receive: 4)
    try push.setKernelBuffers(send: 1 << 16, receive: 1 << 16)
    try push.setSendTimeout(ms: 50)
    try push.connect(rehost(w.fragmentEndpoint))
    let sub = try ZMQSocket(ctx, .sub)
    try secure(sub)
    try sub.subscribe()
    try sub.connect(rehost(w.weightsEndpoint))
    (self.push, self.sub, self.spec) = (push, sub, spec)
    flow = (config.max_requests_in_flight_per_worker, Int(w.workerID), flow.runID, 0, 0)
    (sync, known, early) = (config.sync_sampling, Int(w.policyVersion), nil)
    return Admission(
      workerID: Int(w.workerID), config: config, spec: spec, policyVersion: Int(w.policyVersion), weights: weights)
  }

  public func receiveWeights(newerThan version: Int) throws -> (version: Int, weights: [Float])? {
    guard let sub, let spec else { return nil }
    var newest = early.flatMap { $0.version > version ? $0 : nil }
    early = nil
    while let frames = try sub.receive(timeoutMs: 0) {
      if let (v, blob) = try? WeightsCodec.decode(frames[0], spec: spec), v > max(version, newest?.version ?? -1) {
        newest = (v, blob)
      }
    }
    known = max(known, version, newest?.version ?? -1)
    return newest
  }

  /// sync_sampling: waits (watching `stop`, at most 10 s) until weights newer than
  /// `version` arrive, and keeps them for ``receiveWeights(newerThan:)``.
  private func awaitWeights(newerThan version: Int, stop: StopFlag) throws {
    guard let sub, let spec else { return }
    let deadline = Date(timeIntervalSinceNow: 10)
    while (early?.version ?? -1) <= version && !stop.isSet && Date() < deadline {
      guard let frames = try sub.receive(timeoutMs: 1) else {
        try keepAlive()
        continue
      }
      if let (v, blob) = try? WeightsCodec.decode(frames[0], spec: spec), v > max(version, early?.version ?? -1) {
        early = (v, blob)
      }
    }
  }

  public func send(_ batch: FragmentBatch, session: Admission, runID: UInt64, stop: StopFlag) throws -> Bool {
    guard let push else { return false }
    let bytes = try FragmentCodec.encodeBatch(
      batch.fragments, episodes: batch.episodes, envSteps: batch.envSteps, workerID: session.workerID, runID: runID,
      spec: session.spec)
    // A full learner: wait for room inside the send (ZMQ_SNDTIMEO, so it goes as
    // soon as there is room), up to 50 ms a try, watching `stop` and the connection
    // between tries (a learner that went away never makes room: the batch is
    // dropped and the session ends).
    while !(try push.send([bytes])) {
      if stop.isSet { return false }
      try watchConnection()
      if refusal != nil { return true }
      try keepAlive()
    }
    flow.sent += 1
    // Flow control: at most `limit` batches on the way that the learner has not
    // taken into its queue, so what the worker acts on next is at most that far
    // behind the learner. A learner that never answers (a message it could not
    // decode) holds a send up for at most 10 s.
    guard flow.limit > 0 else { return true }
    let actedWith = known
    let deadline = Date(timeIntervalSinceNow: 10)
    while flow.sent - flow.taken >= Int64(flow.limit) && refusal == nil {
      try readControl(timeoutMs: 1)
      if stop.isSet { return false }
      try keepAlive()
      if Date() > deadline {
        if !warnedUntaken {
          warnedUntaken = true
          logger.warning(
            "worker \(session.workerID): the learner has not \(sync ? "trained on" : "taken") \(flow.sent - flow.taken) fragment batches in 10 s (max_requests_in_flight_per_worker \(flow.limit)\(sync ? ", sync_sampling" : "")); sending on, further waits are not logged"
          )
        }
        flow.taken = flow.sent
      }
    }
    // The learner trained on the batch and published the weights it made: act on them.
    if sync && refusal == nil { try awaitWeights(newerThan: actedWith, stop: stop) }
    return true
  }

  /// Reads what the learner sent on the control channel: rejects (kept for
  /// ``receiveRefusal()``) and flow control.
  private func readControl(timeoutMs: Int32) throws {
    try watchConnection()
    guard let control else { return }
    var wait = timeoutMs
    while let frames = try control.receive(timeoutMs: wait) {
      wait = 0
      switch try? ControlCodec.decode(frames.last ?? []) {
      case .reject(let r)?: refusal = Refusal(r)
      case .taken(let t)? where Int(t.workerID) == flow.workerID && t.runID == flow.runID:
        flow.taken = max(flow.taken, t.batches)
      default: break
      }
    }
  }

  /// Reads the control connection's events: a disconnection starts the clock, a
  /// handshake stops it; once it has run ``goneAfterSeconds`` the session ends
  /// (``Refusal/learnerGone(_:)``, read by ``receiveRefusal()``).
  private func watchConnection() throws {
    guard let monitor, flow.workerID >= 0 else { return }
    while let event = try monitor.receive(timeoutMs: 0).flatMap(ZMQMonitorEvent.init) {
      if event.isDisconnected && lostSince == nil {
        lostSince = Date()
      } else if event.isHandshakeSuccess, let since = lostSince {
        lostSince = nil
        logger.info(
          "worker \(flow.workerID): the connection to the learner at \(learnerAddress) closed and came back after \(String(format: "%.1f", -since.timeIntervalSinceNow)) s"
        )
      }
    }
    if let since = lostSince, refusal == nil, -since.timeIntervalSinceNow >= goneAfterSeconds {
      refusal = .learnerGone(
        "the connection to the learner at \(learnerAddress) closed \(Int(-since.timeIntervalSinceNow)) s ago and has not come back (the learner stopped, or its host or the network is down)"
      )
    }
  }

  public func heartbeat(_ beat: WorkerBeat) throws {
    guard let control else { return }
    var b = Heartbeat()
    b.workerID = Int32(beat.workerID)
    b.runID = beat.runID
    b.envSteps = beat.envSteps
    b.episodes = beat.episodes
    b.meanReturn = beat.meanReturn
    b.stepsPerSecond = beat.stepsPerSecond
    b.policyVersion = beat.policyVersion
    b.envStepErrors = Int64(beat.faults.stepErrors)
    b.envHostRestarts = Int64(beat.faults.hostRestarts)
    b.envNonfinite = Int64(beat.faults.nonFiniteObservations)
    let message = try ControlCodec.encode(.heartbeat(b))
    _ = try control.send([message], dontWait: true)
    lastBeat = (message, Date())
  }

  /// Repeats the last heartbeat when ``keepAliveSeconds`` have passed since it went.
  private func keepAlive() throws {
    guard let control, let beat = lastBeat, -beat.sent.timeIntervalSinceNow >= keepAliveSeconds else { return }
    _ = try control.send([beat.message], dontWait: true)
    lastBeat = (beat.message, Date())
  }

  public func receiveRefusal() throws -> Refusal? {
    try readControl(timeoutMs: 0)
    defer { refusal = nil }
    return refusal
  }

  public func goodbye(workerID: Int, runID: UInt64, reason: String) {
    var g = Goodbye()
    g.workerID = Int32(workerID)
    g.runID = runID
    g.reason = reason
    _ = try? control?.send([try ControlCodec.encode(.goodbye(g))], dontWait: true)
  }

  public func disconnect() {
    push?.close()
    sub?.close()
    monitor?.close()
    control?.close()
    (push, sub, monitor, control, spec, refusal) = (nil, nil, nil, nil, nil, nil)
    lastBeat = nil
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

/// Says when the learner's host name does not resolve (a mistyped `--learner`, or
/// a DNS name not there yet): libzmq retries such an address silently, so an
/// unanswered worker would only say "no answer". The lookup runs on a thread of its
/// own (a resolver can take seconds), one at a time; each new failure text is said
/// once, and its end once.
final class HostResolution: @unchecked Sendable {
  private let lock = NSLock()
  private var running = false
  private var said: String?

  /// The host of `tcp://HOST:PORT` when it is a name (nil for an address).
  static func name(in address: String) -> String? {
    guard address.hasPrefix("tcp://"), let colon = address.lastIndex(of: ":") else { return nil }
    let host = String(address[address.index(address.startIndex, offsetBy: 6)..<colon])
    if host.isEmpty || host == "*" || host.hasPrefix("[") { return nil }
    var v4 = in_addr()
    return inet_pton(AF_INET, host, &v4) == 1 ? nil : host
  }

  /// Nil when `host` resolves, else the resolver's reason.
  static func failure(resolving host: String) -> String? {
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var result: UnsafeMutablePointer<addrinfo>?
    let rc = getaddrinfo(host, nil, &hints, &result)
    if rc == 0 {
      freeaddrinfo(result)
      return nil
    }
    return String(cString: gai_strerror(rc))
  }

  func check(address: String, logger: Logger) {
    guard let host = Self.name(in: address) else { return }
    let start = lock.withLock { () -> Bool in
      if running { return false }
      running = true
      return true
    }
    guard start else { return }
    Thread.detachNewThread { [self] in
      let failure = Self.failure(resolving: host)
      let change = lock.withLock { () -> String?? in
        running = false
        guard failure != said else { return .none }
        let was = said
        said = failure
        return .some(was)
      }
      guard case .some(let was) = change else { return }
      if let failure {
        logger.warning(
          "worker: the learner's host \(host) does not resolve (\(failure)): is --learner \(address) right? Retrying until it does"
        )
      } else if was != nil {
        logger.notice("worker: the learner's host \(host) resolves now")
      }
    }
  }
}
