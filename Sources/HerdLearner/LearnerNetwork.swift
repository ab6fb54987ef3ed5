import Foundation
import HerdEnvs
import HerdMath
import HerdRL
import HerdWire
import Logging
import Synchronization

/// The learner's endpoints (DESIGN.md "Processes and channels").
public struct LearnerEndpoints: Sendable, Equatable {
  /// Interface to bind (127.0.0.1 by default; 0.0.0.0 serves other hosts).
  public var host: String
  /// Ports of the control (ROUTER), fragment (PULL) and weight (PUB) sockets;
  /// 0 binds an ephemeral port.
  public var controlPort: Int
  public var fragmentPort: Int
  public var weightsPort: Int

  public init(host: String = "127.0.0.1", controlPort: Int, fragmentPort: Int, weightsPort: Int) {
    self.host = host
    self.controlPort = controlPort
    self.fragmentPort = fragmentPort
    self.weightsPort = weightsPort
  }

  func endpoint(_ port: Int) -> String { "tcp://\(host):\(port == 0 ? "*" : String(port))" }
}

/// CURVE for the learner: its key pair and the worker keys it admits (name -> key).
public struct LearnerSecurity: Sendable {
  public var pair: CurveKeyPair
  public var authorized: [String: CurveKey]

  public init(pair: CurveKeyPair, authorized: [String: CurveKey]) {
    self.pair = pair
    self.authorized = authorized
  }
}

/// The learner's network thread: owns the control ROUTER, the fragment PULL and the
/// weight PUB sockets (one thread, as ZeroMQ requires). It answers hellos with a
/// welcome (config, model spec, current weights, endpoints) or a reject naming the
/// reason, tracks heartbeats, validates every fragment batch and hands the good
/// fragments to the learner's queue, counts every dropped message by reason (and
/// logs each reason once), and publishes new weights from the weight board.
public final class LearnerNetwork: @unchecked Sendable {
  public let config: TrainingConfig
  /// The run's environment spec and model (fixed by the first worker's hello).
  public let model: RunModel
  let queue: FragmentQueue
  let board: WeightBoard
  let stats: RunStats
  let registry: WorkerRegistry
  let logger: Logger
  let stop = StopFlag()
  private let dropped = Mutex<[DropReason: Int]>([:])
  private var sockets: (control: ZMQSocket, fragments: ZMQSocket, weights: ZMQSocket)?
  /// Flow control (max_requests_in_flight_per_worker), on the network thread only:
  /// each worker's control identity and the fragment batches taken from it so far.
  private var identities: [Int: [UInt8]] = [:]
  private var taken: [Int: Int64] = [:]
  /// sync_sampling: per worker, the fragments enqueued so far, and for each batch not
  /// yet acknowledged the count its last fragment brings that total to.
  private var enqueued: [Int: Int] = [:]
  private var awaiting: [Int: [(total: Int, runID: UInt64)]] = [:]
  private var zap: ZAPAuthenticator?
  /// The endpoints actually bound (ephemeral ports resolved), set by ``bind(_:security:)``.
  public private(set) var bound: (control: String, fragments: String, weights: String) = ("", "", "")

  public init(parts: LearnerParts, config: TrainingConfig, logger: Logger) {
    self.config = config
    self.model = parts.model
    self.queue = parts.queue
    self.board = parts.board
    self.stats = parts.stats
    self.registry = parts.registry
    self.logger = logger
  }

  /// Binds the three sockets (``run()`` then serves them). With `security`, every
  /// socket is a CURVE server and a ZAP handler admits only the authorised worker
  /// keys (each refused handshake counts as an `unauthorized` drop).
  public func bind(_ endpoints: LearnerEndpoints, security: LearnerSecurity? = nil) throws {
    let ctx = try ZMQContext()
    if let security {
      let logger = self.logger
      let zap = ZAPAuthenticator(authorized: security.authorized, log: { logger.warning("\($0)") }) { [self] in
        dropped.withLock { $0[.unauthorized, default: 0] += 1 }
      }
      try zap.start(ctx)  // before any CURVE socket exists: no handler would mean no check
      self.zap = zap
    }
    let control = try ZMQSocket(ctx, .router)
    let fragments = try ZMQSocket(ctx, .pull)
    let weights = try ZMQSocket(ctx, .pub)
    if let security {
      for s in [control, fragments, weights] { try s.makeCurveServer(secret: security.pair.secretKey) }
    }
    // Bounded queues: a full learner slows the workers instead of growing memory.
    try fragments.setHighWaterMarks(send: 8, receive: 8)
    try fragments.setKernelBuffers(send: 1 << 16, receive: 1 << 16)
    try weights.setHighWaterMarks(send: 4, receive: 4)
    try control.setMaxMessageSize(1 << 20)
    try fragments.setMaxMessageSize(Int64(64 << 20))
    let ports = Self.ports(endpoints)
    bound = (
      try Self.bind(control, endpoints, ports[0]),
      try Self.bind(fragments, endpoints, ports[1]),
      try Self.bind(weights, endpoints, ports[2])
    )
    sockets = (control, fragments, weights)
    logger.info("learner: control \(bound.control), fragments \(bound.fragments), weights \(bound.weights)")
  }

  /// The control, fragment and weight ports with what they are and the option
  /// that sets each.
  static func ports(_ e: LearnerEndpoints) -> [(port: Int, role: String, option: String)] {
    [
      (e.controlPort, "control", "--port"), (e.fragmentPort, "fragment", "--fragment-port, default --port + 1"),
      (e.weightsPort, "weight", "--weights-port, default --port + 2"),
    ]
  }

  /// Checks that every port of `endpoints` can be bound now, with a plain TCP
  /// socket, and throws what ``bind(_:_:_:)`` would. Only for an IPv4 host (or
  /// localhost): ZeroMQ also takes interface names, which are left to it.
  public static func checkBindable(_ endpoints: LearnerEndpoints) throws {
    let host = endpoints.host
    var address = in_addr()
    guard host == "localhost" || inet_pton(AF_INET, host, &address) == 1 else { return }
    // Port 0 too: any free port will do, but the host must be this machine's.
    for p in ports(endpoints) {
      let e = LearnerDaemon.bindErrno(host: host, port: p.port)
      if e != 0, let error = bindError(endpoints, p, errno: e, message: String(cString: strerror(e))) { throw error }
    }
  }

  /// Binds `socket` to a port of ``ports(_:)``; a port in use or a host that is not
  /// this machine's is an error that names the option behind it and what would work.
  static func bind(
    _ socket: ZMQSocket, _ endpoints: LearnerEndpoints, _ p: (port: Int, role: String, option: String)
  ) throws -> String {
    do {
      return try socket.bind(endpoints.endpoint(p.port))
    } catch ZMQError.call(let call, let e, let message) {
      throw bindError(endpoints, p, errno: e, message: message) ?? ZMQError.call(call, errno: e, message: message)
    }
  }

  /// The error for a port that cannot be bound (nil: no advice for this errno).
  static func bindError(
    _ endpoints: LearnerEndpoints, _ p: (port: Int, role: String, option: String), errno e: Int32, message: String
  ) -> LearnerError? {
    switch e {
    case EADDRINUSE:
      return .cannotBind(
        "the \(p.role) port \(p.port) (\(p.option)) is in use on \(endpoints.host): another learner, or another program, listens there; choose another --port (each learner takes three ports in a row), or --port 0 for free ports"
      )
    case EADDRNOTAVAIL, ENODEV, EINVAL:
      return .cannotBind(
        "--host \(endpoints.host) is not an address of this machine (\(message)): use 127.0.0.1 (this machine only), 0.0.0.0 (every interface) or one of this machine's own addresses"
      )
    default: return nil
    }
  }

  /// Serves the bound sockets on the calling thread until ``requestStop()``, then
  /// closes them and the ZAP handler.
  public func run() {
    guard let (control, fragments, weights) = sockets else { return }
    // A full queue stops the reading of fragments; the trainer's take that brings
    // the queue below half writes a byte to this pipe (FragmentQueue.whenRoom),
    // which the loop polls beside the sockets, so reading starts again at once
    // rather than at the next poll timeout (5 ms: on a fast task the trainer
    // emptied its queue in that time and waited).
    var ends: [Int32] = [-1, -1]
    if pipe(&ends) == 0 {
      for fd in ends { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
      for fd in ends { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
      let writeEnd = ends[1]
      queue.whenRoom {
        var one: UInt8 = 1
        _ = write(writeEnd, &one, 1)
      }
    } else {
      ends = [-1, -1]
    }
    loop(control: control, fragments: fragments, weights: weights, room: ends[0])
    if ends[0] >= 0 {
      queue.whenRoom {}  // under the queue's lock: no call is running or can start
      close(ends[0])
      close(ends[1])
    }
    control.close()
    fragments.close()
    weights.close()
    zap?.shutdown()
    let drops = self.drops
    if !drops.isEmpty {
      logger.notice(
        "dropped messages by reason: \(drops.map { "\($0.key.rawValue) \($0.value)" }.sorted().joined(separator: ", "))")
    }
  }

  /// Asks ``run()`` to return (within one poll, 5 ms).
  public func requestStop() { stop.set() }

  /// Dropped messages by reason.
  public var drops: [DropReason: Int] { dropped.withLock { $0 } }

  // MARK: The loop

  /// `roomFD`: the read end of the pipe the queue writes to when it has room
  /// again (-1: none; the loop then finds out at its next poll).
  private func loop(control: ZMQSocket, fragments: ZMQSocket, weights: ZMQSocket, room roomFD: Int32) {
    var published = -1
    var lastSweep = Date()
    var openFilesWatch = OpenFilesWatch()
    var drain = [UInt8](repeating: 0, count: 64)
    while !stop.isSet {
      do {
        // Read fragments only while the learner's queue has room (backpressure);
        // without room, wait for the queue's word that there is some.
        let room = queue.hasRoom
        let ready = try ZMQSocket.poll(
          room ? [control, fragments] : [control], fds: room || roomFD < 0 ? [] : [roomFD], timeoutMs: 5)
        if roomFD >= 0 && !room && ready.count > 1 && ready[1] {
          while read(roomFD, &drain, drain.count) > 0 {}
        }
        if ready[0], let frames = try control.receive(timeoutMs: 0) { handleControl(frames, on: control) }
        if room, ready.count > 1, ready[1], let frames = try fragments.receive(timeoutMs: 0) {
          handleFragments(frames, control: control)
        }
        // Read before the weights: a batch counted done has its weights on the board.
        let done = awaiting.isEmpty ? [:] : board.doneCounts
        if let (v, blob) = board.latest(newerThan: published) {
          try weights.send([try WeightsCodec.encode(version: v, weights: blob)], dontWait: true)
          published = v
        }
        if !awaiting.isEmpty { acknowledgeTrained(done, control: control) }
        if Date().timeIntervalSince(lastSweep) > 1 {
          registry.sweep()
          if let used = OpenFiles.inUse, let limit = OpenFiles.limit,
            let warning = openFilesWatch.check(used: used, limit: limit)
          {
            logger.warning("\(warning)")
          }
          lastSweep = Date()
        }
      } catch {
        logger.error("learner network: \(error)")
        if case ZMQError.closed = error { return }
      }
    }
  }

  private func drop(_ e: WireError) {
    let first = dropped.withLock { d -> Bool in
      d[e.reason, default: 0] += 1
      return d[e.reason] == 1
    }
    if first { logger.warning("dropped a message (\(e.reason.rawValue)): \(e.detail); further drops of this kind are only counted") }
  }

  private func handleControl(_ frames: [[UInt8]], on socket: ZMQSocket) {
    guard frames.count == 2 else {
      drop(WireError(.undecodable, "control message with \(frames.count) frames"))
      return
    }
    let identity = frames[0]
    let message: ControlMessage
    do {
      message = try ControlCodec.decode(frames[1])
    } catch let e as WireError {
      drop(e)
      return
    } catch {
      return
    }
    switch message {
    case .hello(let h): answerHello(h, identity: identity, on: socket)
    case .heartbeat(let b):
      let beat = WorkerBeat(
        workerID: Int(b.workerID), runID: b.runID, envSteps: b.envSteps, episodes: b.episodes,
        stepsPerSecond: b.stepsPerSecond, meanReturn: b.meanReturn, policyVersion: b.policyVersion,
        faults: EnvFaults(
          stepErrors: Int(clamping: b.envStepErrors), hostRestarts: Int(clamping: b.envHostRestarts),
          nonFiniteObservations: Int(clamping: b.envNonfinite)))
      identities[Int(b.workerID)] = identity
      if !registry.heartbeat(beat) {
        // A worker from before a learner restart: ask it to say hello again.
        drop(WireError(.unknownWorker, "heartbeat from worker \(b.workerID) (run \(b.runID)), not welcomed by this learner"))
        _ = try? socket.send([identity, try ControlCodec.encode(.reject(Refusal.unknownSession.reject))], dontWait: true)
      }
    case .goodbye(let g):
      registry.goodbye(workerID: Int(g.workerID), runID: g.runID, reason: g.reason)
      identities[Int(g.workerID)] = nil
      taken[Int(g.workerID)] = nil
      awaiting[Int(g.workerID)] = nil
    case .welcome, .reject, .taken:
      drop(WireError(.unexpected, "a worker sent a learner-only message"))
    }
  }

  private func answerHello(_ h: Hello, identity: [UInt8], on socket: ZMQSocket) {
    guard h.protocolVersion == protocolVersion else {
      drop(WireError(.protocolVersion, "hello from \(h.host) pid \(h.pid) speaks protocol \(h.protocolVersion)"))
      let refusal = Refusal.protocolVersion(worker: h.protocolVersion, learner: protocolVersion)
      _ = try? socket.send([identity, try ControlCodec.encode(.reject(refusal.reject))], dontWait: true)
      return
    }
    var w = Welcome()
    w.protocolVersion = protocolVersion
    w.configJson = (try? config.prettyJSON()) ?? "{}"
    guard !h.envSpecJson.isEmpty else {
      // No spec yet: the config alone, to make the environments from.
      do {
        try socket.send([identity, try ControlCodec.encode(.welcome(w))])
      } catch {
        logger.error("config to \(h.host) pid \(h.pid) failed: \(error)")
      }
      return
    }
    let spec: ModelSpec
    do {
      spec = try model.admit(try EnvSpec(json: h.envSpecJson))
    } catch {
      let refusal = (error as? Refusal) ?? .refused("\(error)")
      logger.warning("refused the worker on \(h.host) pid \(h.pid): \(refusal)")
      _ = try? socket.send([identity, try ControlCodec.encode(.reject(refusal.reject))], dontWait: true)
      return
    }
    let (version, blob) = board.latest(newerThan: -1) ?? (0, [])
    let hello = WorkerHello(runID: h.runID, host: h.host, pid: Int(h.pid), envs: h.numEnvs > 0 ? Int(h.numEnvs) : nil)
    let id = registry.admit(hello, defaultEnvs: config.num_envs_per_worker, policyVersion: version)
    w.workerID = Int32(id)
    identities[id] = identity
    w.model = spec.proto
    w.policyVersion = Int64(version)
    w.weights = TensorCodec.encode(blob, shape: [blob.count])
    w.fragmentEndpoint = bound.fragments
    w.weightsEndpoint = bound.weights
    do {
      try socket.send([identity, try ControlCodec.encode(.welcome(w))])
    } catch {
      logger.error("welcome to \(h.host) pid \(h.pid) failed: \(error)")
    }
  }

  private func handleFragments(_ frames: [[UInt8]], control: ZMQSocket) {
    guard frames.count == 1 else {
      drop(WireError(.undecodable, "fragment message with \(frames.count) frames"))
      return
    }
    guard let spec = model.current?.model else {
      drop(WireError(.unknownWorker, "fragments before any worker was admitted"))
      return
    }
    let batch: FragmentCodec.DecodedBatch
    do {
      batch = try FragmentCodec.decodeBatch(frames[0], spec: spec)
    } catch let e as WireError {
      drop(e)
      return
    } catch {
      return
    }
    guard registry.isKnown(workerID: batch.workerID, runID: batch.runID) else {
      drop(WireError(.unknownWorker, "fragments from worker \(batch.workerID) (run \(batch.runID)), not welcomed by this learner"))
      return
    }
    for e in batch.dropped { drop(e) }
    stats.addEnvSteps(batch.envSteps)
    for e in batch.episodes { stats.record(e) }
    queue.enqueue(batch.fragments)  // never blocks this thread: it only reads while there is room
    // Flow control: tell the worker this batch is off the wire (with sync_sampling,
    // once the learner has trained on it: acknowledgeTrained).
    if config.sync_sampling {
      let total = enqueued[batch.workerID, default: 0] + batch.fragments.count
      enqueued[batch.workerID] = total
      awaiting[batch.workerID, default: []].append((total, batch.runID))
    } else if config.max_requests_in_flight_per_worker > 0 {
      acknowledge(workerID: batch.workerID, runID: batch.runID, control: control)
    }
  }

  /// Tells a worker the learner has taken one more of its batches.
  private func acknowledge(workerID: Int, runID: UInt64, control: ZMQSocket) {
    guard let identity = identities[workerID] else { return }
    let count = taken[workerID, default: 0] + 1
    taken[workerID] = count
    var t = Taken()
    t.workerID = Int32(workerID)
    t.runID = runID
    t.batches = count
    _ = try? control.send([identity, try ControlCodec.encode(.taken(t))], dontWait: true)
  }

  /// sync_sampling: acknowledges each batch whose fragments the trainer is done with.
  private func acknowledgeTrained(_ done: [Int: Int], control: ZMQSocket) {
    for (worker, totals) in awaiting {
      let count = done[worker, default: 0]
      let ready = totals.prefix { $0.total <= count }.count
      guard ready > 0 else { continue }
      for batch in totals.prefix(ready) { acknowledge(workerID: worker, runID: batch.runID, control: control) }
      awaiting[worker] = totals.count == ready ? nil : Array(totals.dropFirst(ready))
    }
  }
}
