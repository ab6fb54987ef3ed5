import Foundation
import HerdMath
import HerdRL
import HerdWire

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

/// One connected worker session, as the learner sees it.
public struct WorkerSession: Sendable {
  public var id: Int
  public var runID: UInt64
  public var host: String
  public var pid: Int
  public var envs: Int
  public var envSteps: Int64 = 0
  public var episodes: Int64 = 0
  public var stepsPerSecond: Double = 0
  public var meanReturn: Float = .nan
  public var policyVersion: Int64 = 0
  public var lastSeen: Date
  public var connected = true
  /// The worker said goodbye (a clean stop), as opposed to going silent.
  public var saidGoodbye = false
}

/// The learner's network thread: owns the control ROUTER, the fragment PULL and the
/// weight PUB sockets (one thread, as ZeroMQ requires). It answers hellos with a
/// welcome (config, model spec, current weights, endpoints) or a reject naming the
/// reason, tracks heartbeats, validates every fragment batch and hands the good
/// fragments to the learner's queue, counts every dropped message by reason (and
/// logs each reason once), and publishes new weights from the weight board.
public final class LearnerNetwork: @unchecked Sendable {
  public let config: TrainingConfig
  public let spec: WireModelSpec
  let queue: FragmentQueue
  let board: WeightBoard
  let stats: RunStats
  let log: @Sendable (String) -> Void
  let stop = StopFlag()
  let lock = SpinlessLock()
  private var sessions: [Int: WorkerSession] = [:]
  private var dropped: [DropReason: Int] = [:]
  private var nextWorkerID = 0
  private var thread: Thread?
  private var zap: ZAPAuthenticator?
  /// The endpoints actually bound (ephemeral ports resolved), set by ``start()``.
  public private(set) var bound: (control: String, fragments: String, weights: String) = ("", "", "")

  public init(
    config: TrainingConfig, spec: WireModelSpec, queue: FragmentQueue, board: WeightBoard, stats: RunStats,
    log: @escaping @Sendable (String) -> Void
  ) {
    self.config = config
    self.spec = spec
    self.queue = queue
    self.board = board
    self.stats = stats
    self.log = log
  }

  /// Binds the three sockets and starts the network thread. With `security`, every
  /// socket is a CURVE server and a ZAP handler admits only the authorised worker
  /// keys (each refused handshake counts as an `unauthorized` drop).
  public func start(_ endpoints: LearnerEndpoints, security: LearnerSecurity? = nil) throws {
    let ctx = try ZMQContext()
    if let security {
      let zap = ZAPAuthenticator(authorized: security.authorized, log: log) { [self] in
        lock.withLock { dropped[.unauthorized, default: 0] += 1 }
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
    bound = (
      try control.bind(endpoints.endpoint(endpoints.controlPort)),
      try fragments.bind(endpoints.endpoint(endpoints.fragmentPort)),
      try weights.bind(endpoints.endpoint(endpoints.weightsPort))
    )
    log("learner: control \(bound.control), fragments \(bound.fragments), weights \(bound.weights)")
    let t = Thread { [self] in
      self.loop(control: control, fragments: fragments, weights: weights)
      control.close()
      fragments.close()
      weights.close()
    }
    t.name = "herd-learner-network"
    thread = t
    t.start()
  }

  /// Stops the network thread (and the ZAP handler) and waits for them.
  public func shutdown() {
    stop.set()
    while let t = thread, !t.isFinished { usleep(1000) }
    zap?.shutdown()
  }

  /// Dropped messages by reason.
  public var drops: [DropReason: Int] { lock.withLock { dropped } }
  /// Worker sessions (connected and lost).
  public var workers: [WorkerSession] { lock.withLock { Array(sessions.values).sorted { $0.id < $1.id } } }

  // MARK: The loop

  private func loop(control: ZMQSocket, fragments: ZMQSocket, weights: ZMQSocket) {
    var published = -1
    var lastSweep = Date()
    while !stop.isSet {
      do {
        // Read fragments only while the learner's queue has room (backpressure).
        let room = queue.hasRoom
        let ready = try ZMQSocket.poll(room ? [control, fragments] : [control], timeoutMs: 5)
        if ready[0], let frames = try control.receive(timeoutMs: 0) { handleControl(frames, on: control) }
        if room, ready.count > 1, ready[1], let frames = try fragments.receive(timeoutMs: 0) { handleFragments(frames) }
        if let (v, blob) = board.latest(newerThan: published) {
          try weights.send([try WeightsCodec.encode(version: v, weights: blob)], dontWait: true)
          published = v
        }
        if Date().timeIntervalSince(lastSweep) > 1 {
          sweepLostWorkers()
          lastSweep = Date()
        }
      } catch {
        log("learner network: \(error)")
        if case ZMQError.closed = error { return }
      }
    }
  }

  private func drop(_ e: WireError) {
    let first = lock.withLock { () -> Bool in
      dropped[e.reason, default: 0] += 1
      return dropped[e.reason] == 1
    }
    if first { log("dropped a message (\(e.reason.rawValue)): \(e.detail); further drops of this kind are only counted") }
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
      let known = lock.withLock { () -> Bool in
        guard var s = sessions[Int(b.workerID)], s.runID == b.runID else { return false }
        s.envSteps = b.envSteps
        s.episodes = b.episodes
        s.stepsPerSecond = b.stepsPerSecond
        s.meanReturn = b.meanReturn
        s.policyVersion = b.policyVersion
        s.lastSeen = Date()
        if !s.connected { (s.connected, s.saidGoodbye) = (true, false) }
        sessions[s.id] = s
        return true
      }
      if !known {
        // A worker from before a learner restart: ask it to say hello again.
        drop(WireError(.unknownWorker, "heartbeat from worker \(b.workerID) (run \(b.runID)), not welcomed by this learner"))
        var r = Reject()
        r.reason = "unknown worker: say hello again"
        r.protocolVersion = protocolVersion
        _ = try? socket.send([identity, try ControlCodec.encode(.reject(r))], dontWait: true)
      }
    case .goodbye(let g):
      lock.withLock {
        sessions[Int(g.workerID)]?.connected = false
        sessions[Int(g.workerID)]?.saidGoodbye = true
      }
      log("worker \(g.workerID) left: \(g.reason)")
    case .welcome, .reject:
      drop(WireError(.unexpected, "a worker sent a learner-only message"))
    }
  }

  private func answerHello(_ h: Hello, identity: [UInt8], on socket: ZMQSocket) {
    guard h.protocolVersion == protocolVersion else {
      drop(WireError(.protocolVersion, "hello from \(h.host) pid \(h.pid) speaks protocol \(h.protocolVersion)"))
      var r = Reject()
      r.reason = "protocol version \(h.protocolVersion) is not supported: this learner speaks \(protocolVersion)"
      r.protocolVersion = protocolVersion
      _ = try? socket.send([identity, try ControlCodec.encode(.reject(r))], dontWait: true)
      return
    }
    let id = lock.withLock { () -> Int in
      nextWorkerID += 1
      let id = nextWorkerID
      let envs = h.numEnvs > 0 ? Int(h.numEnvs) : config.num_envs_per_worker
      sessions[id] = WorkerSession(id: id, runID: h.runID, host: h.host, pid: Int(h.pid), envs: envs, lastSeen: Date())
      return id
    }
    var w = Welcome()
    w.protocolVersion = protocolVersion
    w.workerID = Int32(id)
    w.configJson = (try? config.prettyJSON()) ?? "{}"
    w.model = spec.proto
    let (version, blob) = board.latest(newerThan: -1) ?? (0, [])
    w.policyVersion = Int64(version)
    w.weights = TensorCodec.encode(blob, shape: [blob.count])
    w.fragmentEndpoint = bound.fragments
    w.weightsEndpoint = bound.weights
    do {
      try socket.send([identity, try ControlCodec.encode(.welcome(w))])
      log("worker \(id) joined: \(h.host) pid \(h.pid), \(h.numEnvs > 0 ? Int(h.numEnvs) : config.num_envs_per_worker) envs, run \(String(h.runID, radix: 16)); sent policy version \(version)")
    } catch {
      log("welcome to \(h.host) pid \(h.pid) failed: \(error)")
    }
  }

  private func handleFragments(_ frames: [[UInt8]]) {
    guard frames.count == 1 else {
      drop(WireError(.undecodable, "fragment message with \(frames.count) frames"))
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
    let known = lock.withLock { sessions[batch.workerID].map { $0.runID == batch.runID } ?? false }
    guard known else {
      drop(WireError(.unknownWorker, "fragments from worker \(batch.workerID) (run \(batch.runID)), not welcomed by this learner"))
      return
    }
    for e in batch.dropped { drop(e) }
    stats.addEnvSteps(batch.envSteps)
    for e in batch.episodes { stats.record(e) }
    queue.enqueue(batch.fragments)  // never blocks this thread: it only reads while there is room
  }

  /// Marks workers silent for 10 s as lost (they may come back and say hello again).
  private func sweepLostWorkers() {
    let lost = lock.withLock { () -> [Int] in
      var ids: [Int] = []
      for (id, s) in sessions where s.connected && Date().timeIntervalSince(s.lastSeen) > 10 {
        sessions[id]?.connected = false
        ids.append(id)
      }
      return ids
    }
    for id in lost { log("worker \(id) lost: no heartbeat for 10 s") }
  }
}
