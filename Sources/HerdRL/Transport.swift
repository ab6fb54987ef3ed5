import Foundation
import HerdEnvs
import HerdMath
import Synchronization

// The boundary between a rollout worker and the learner. A worker talks to the
// learner through a ``WorkerTransport``; there are two: ``InMemoryWorkerTransport``
// (worker threads in the learner's process) and the ZeroMQ one in HerdWorker
// (worker processes on any host). ``WorkerLoop`` runs over either.

/// What a learner tells a worker it admits.
public struct Admission: Sendable {
  /// The id the learner gave this session.
  public var workerID: Int
  /// The run's config (the worker acts with its model and environment keys).
  public var config: TrainingConfig
  /// The model the learner trains; the worker checks it builds the same.
  public var spec: ModelSpec
  /// The current weights and their version.
  public var policyVersion: Int
  public var weights: [Float]

  public init(workerID: Int, config: TrainingConfig, spec: ModelSpec, policyVersion: Int, weights: [Float]) {
    self.workerID = workerID
    self.config = config
    self.spec = spec
    self.policyVersion = policyVersion
    self.weights = weights
  }
}

/// The learner's answer to a hello.
public enum Handshake: Sendable {
  /// The worker is admitted.
  case admitted(Admission)
  /// The hello carried no environment spec: here is the run's config; make the
  /// environments it names and say hello again with their spec.
  case describe(TrainingConfig)
}

/// The run's environment spec and model, fixed by the first worker that describes
/// its environments (or by the run directory on resume): the learner never makes an
/// environment itself. Later workers must describe the same environment.
public final class RunModel: Sendable {
  /// The spec and the model built from it.
  public struct Adopted: Sendable {
    public var env: EnvSpec
    public var model: ModelSpec
    public init(env: EnvSpec, model: ModelSpec) {
      self.env = env
      self.model = model
    }
  }

  private let adopted = Mutex<Adopted?>(nil)
  private let build: @Sendable (EnvSpec) throws -> ModelSpec

  /// A gate whose first spec is turned into a model by `build` (which also
  /// publishes the first weights), under the gate's lock.
  public init(build: @escaping @Sendable (EnvSpec) throws -> ModelSpec) {
    self.build = build
  }

  /// The adopted spec and model, if any yet.
  public var current: Adopted? { adopted.withLock { $0 } }

  /// The model for a worker whose environments are `spec`: the first spec is
  /// adopted (the model is built from it); a different one is refused, naming the
  /// difference.
  public func admit(_ spec: EnvSpec) throws(Refusal) -> ModelSpec {
    try adopted.withLock { (a: inout Adopted?) throws(Refusal) -> ModelSpec in
      if let a {
        if let diff = spec.difference(from: a.env) {
          throw Refusal.refused("this worker's environment differs from the run's: \(diff)")
        }
        return a.model
      }
      let model: ModelSpec
      do {
        model = try build(spec)
      } catch let r as Refusal {
        throw r
      } catch {
        throw Refusal.refused("the learner cannot build a model for \(spec): \(error)")
      }
      a = Adopted(env: spec, model: model)
      return model
    }
  }
}

/// Why a learner refuses a worker: a typed decision, the same on every transport
/// (over ZeroMQ it travels as the reject's code).
public enum Refusal: Error, Sendable, Equatable, CustomStringConvertible {
  /// The worker speaks another protocol version: fatal, a different build.
  case protocolVersion(worker: UInt32, learner: UInt32)
  /// The learner does not know this session (it restarted): say hello again.
  case unknownSession
  /// Anything else the learner said no to (fatal), with its words.
  case refused(String)
  /// Not the learner's word but its silence: the connection to it closed and did
  /// not come back (it stopped, or its host or the network is down), with what
  /// the transport saw. Say hello again until one answers.
  case learnerGone(String)

  /// Whether the worker should give up instead of saying hello again.
  public var isFatal: Bool {
    switch self {
    case .unknownSession, .learnerGone: return false
    case .protocolVersion, .refused: return true
    }
  }

  public var description: String {
    switch self {
    case .protocolVersion(let w, let l):
      return "protocol version \(w) is not supported: this learner speaks \(l)"
    case .unknownSession: return "unknown worker session: say hello again"
    case .refused(let why), .learnerGone(let why): return why
    }
  }
}

/// One send's worth of a worker's output.
public struct FragmentBatch: Sendable {
  public var fragments: [Fragment]
  /// Episodes that ended since the last send.
  public var episodes: [EpisodeRecord]
  /// Env steps taken since the last send.
  public var envSteps: Int

  public init(fragments: [Fragment], episodes: [EpisodeRecord], envSteps: Int) {
    self.fragments = fragments
    self.episodes = episodes
    self.envSteps = envSteps
  }
}

/// A worker's end of the channel to the learner. One thread uses it.
public protocol WorkerTransport: AnyObject {
  /// Where the learner is, for logs (`tcp://HOST:PORT`, `in-process`).
  var learnerAddress: String { get }
  /// Says hello and waits for the answer: an admission, the run's config (a hello
  /// without an environment spec), or nil when none came in time (the caller backs
  /// off and tries again). Throws a ``Refusal``.
  func connect(_ hello: WorkerHello, stop: StopFlag) throws -> Handshake?
  /// The newest weights newer than `version`, if any have arrived.
  func receiveWeights(newerThan version: Int) throws -> (version: Int, weights: [Float])?
  /// Hands a batch over, waiting while the learner is full (backpressure). False
  /// when `stop` was set or the channel closed first.
  func send(_ batch: FragmentBatch, session: Admission, runID: UInt64, stop: StopFlag) throws -> Bool
  /// Reports liveness and figures.
  func heartbeat(_ beat: WorkerBeat) throws
  /// A refusal the learner sent since the last call (e.g. it forgot the session).
  func receiveRefusal() throws -> Refusal?
  /// A clean goodbye (best effort).
  func goodbye(workerID: Int, runID: UInt64, reason: String)
  /// Closes this session's channels; ``connect(_:stop:)`` may open new ones.
  func disconnect()
}

/// The learner's side of the in-memory transport: what worker threads in the
/// learner's process reach directly (the queue the trainer reads, the weight
/// board, the worker table and the run's counters).
public final class InMemoryLearnerPort: Sendable {
  public let config: TrainingConfig
  public let model: RunModel
  public let queue: FragmentQueue
  public let board: WeightBoard
  public let stats: RunStats
  public let registry: WorkerRegistry

  public init(
    config: TrainingConfig, model: RunModel, queue: FragmentQueue, board: WeightBoard, stats: RunStats,
    registry: WorkerRegistry
  ) {
    self.config = config
    self.model = model
    self.queue = queue
    self.board = board
    self.stats = stats
    self.registry = registry
  }

  /// A transport for one worker thread.
  public func connectWorker() -> InMemoryWorkerTransport { InMemoryWorkerTransport(port: self) }
}

/// A worker thread's end of the in-memory transport: hello, heartbeats and
/// goodbye go to the same ``WorkerRegistry`` as remote workers', fragments into the
/// trainer's queue (blocking while it is full), weights from the ``WeightBoard``.
public final class InMemoryWorkerTransport: WorkerTransport {
  let port: InMemoryLearnerPort
  private var refusal: Refusal?

  init(port: InMemoryLearnerPort) { self.port = port }

  public var learnerAddress: String { "in-process" }

  public func connect(_ hello: WorkerHello, stop: StopFlag) throws -> Handshake? {
    guard let envSpec = hello.envSpec else { return .describe(port.config) }
    let spec = try port.model.admit(envSpec)
    let (version, weights) = port.board.latest(newerThan: -1) ?? (0, [])
    let id = port.registry.admit(hello, defaultEnvs: port.config.num_envs_per_worker, policyVersion: version)
    return .admitted(
      Admission(workerID: id, config: port.config, spec: spec, policyVersion: version, weights: weights))
  }

  public func receiveWeights(newerThan version: Int) -> (version: Int, weights: [Float])? {
    port.board.latest(newerThan: version)
  }

  public func send(_ batch: FragmentBatch, session: Admission, runID: UInt64, stop: StopFlag) -> Bool {
    guard port.registry.isKnown(workerID: session.workerID, runID: runID) else {
      refusal = .unknownSession
      return true
    }
    port.stats.addEnvSteps(batch.envSteps)
    for e in batch.episodes { port.stats.record(e) }
    for f in batch.fragments where !port.queue.send(f) { return false }
    return !stop.isSet
  }

  public func heartbeat(_ beat: WorkerBeat) {
    if !port.registry.heartbeat(beat) { refusal = .unknownSession }
  }

  public func receiveRefusal() -> Refusal? {
    defer { refusal = nil }
    return refusal
  }

  public func goodbye(workerID: Int, runID: UInt64, reason: String) {
    port.registry.goodbye(workerID: workerID, runID: runID, reason: reason)
  }

  public func disconnect() {}
}

/// A bounded, blocking, multi-producer queue of fragments: the trainer reads it,
/// worker threads and the network thread fill it.
public final class FragmentQueue: @unchecked Sendable {
  // NSCondition: senders wait for room and the receiver for items (Mutex has no
  // condition variable); every field below is read and written under it.
  private let condition = NSCondition()
  private var items: [Fragment] = []
  private var head = 0
  private var closed = false
  private var held = 0
  private var roomWaiter: (@Sendable () -> Void)?
  /// The most fragments held before senders wait.
  public let capacity: Int

  /// A queue holding at most `capacity` fragments.
  public init(capacity: Int) { self.capacity = max(1, capacity) }

  /// Fragments waiting.
  public var depth: Int {
    condition.lock()
    defer { condition.unlock() }
    return items.count - head
  }

  /// Bytes the waiting fragments hold (``Fragment/storageBytes``).
  public var bytes: Int {
    condition.lock()
    defer { condition.unlock() }
    return held
  }

  /// Whether a send would not wait now.
  public var hasRoom: Bool {
    condition.lock()
    defer { condition.unlock() }
    return items.count - head < capacity
  }

  /// Hands over a fragment, waiting while the queue is full (backpressure).
  /// Returns false when the queue is closed.
  public func send(_ fragment: Fragment) -> Bool {
    condition.lock()
    defer { condition.unlock() }
    while !closed && items.count - head >= capacity { condition.wait() }
    if closed { return false }
    items.append(fragment)
    held += fragment.storageBytes
    condition.broadcast()
    return true
  }

  /// Calls `wake` whenever a receive takes the queue below half its capacity: a
  /// reader that stops reading while there is no room (the learner's network
  /// thread) waits on it instead of polling. Half, not any room: one wake-up per
  /// few batches rather than per batch (each wake-up of another thread on a
  /// 2-core machine pre-empts the trainer or a worker), with half a queue of work
  /// left while the reader refills it.
  public func whenRoom(_ wake: @escaping @Sendable () -> Void) {
    condition.lock()
    defer { condition.unlock() }
    roomWaiter = wake
  }

  /// Up to `max` fragments, waiting at most `timeout` seconds for the first.
  public func receive(max: Int, timeout: Double) -> [Fragment] {
    condition.lock()
    defer { condition.unlock() }
    let deadline = Date(timeIntervalSinceNow: timeout)
    while items.count - head == 0 && !closed {
      if !condition.wait(until: deadline) { break }
    }
    let before = items.count - head
    let n = min(max, before)
    let out = Array(items[head..<(head + n)])
    head += n
    for f in out { held -= f.storageBytes }
    if head > 1024 && head * 2 > items.count {
      items.removeFirst(head)
      head = 0
    }
    condition.broadcast()
    let half = Swift.max(1, capacity / 2)
    if before >= half && before - n < half { roomWaiter?() }
    return out
  }

  /// Appends without waiting, even past capacity (a network thread that must not
  /// block, and reads only while ``hasRoom``, overshoots by at most one message).
  /// Returns false when closed.
  @discardableResult
  public func enqueue(_ fragments: [Fragment]) -> Bool {
    condition.lock()
    defer { condition.unlock() }
    if closed { return false }
    items += fragments
    for f in fragments { held += f.storageBytes }
    condition.broadcast()
    return true
  }

  /// Wakes everyone; later sends fail and receives return what is left.
  public func close() {
    condition.lock()
    closed = true
    condition.broadcast()
    condition.unlock()
  }
}

/// The latest weights, for in-process workers and the network thread's
/// publisher to pick up.
public final class WeightBoard: Sendable {
  private let latest = Mutex<(version: Int, blob: [Float])>((-1, []))
  /// Fragments the trainer is done with (trained, or dropped as stale), per worker
  /// id: `sync_sampling` acknowledges a worker's batch once all of it is counted here.
  private let done = Mutex<[Int: Int]>([:])

  /// An empty board.
  public init() {}

  /// Posts policy `version`.
  public func publish(version: Int, weights: [Float]) {
    latest.withLock { $0 = (version, weights) }
  }

  /// The weights if newer than `version`.
  public func latest(newerThan version: Int) -> (version: Int, weights: [Float])? {
    latest.withLock { $0.version > version ? ($0.version, $0.blob) : nil }
  }

  /// Counts `fragments` as done with, per worker. The trainer calls it after
  /// publishing the weights that trained on them, so whoever sees the count also
  /// finds those weights (or newer) on the board.
  public func markDone(_ fragments: [Fragment]) {
    guard !fragments.isEmpty else { return }
    done.withLock { d in
      for f in fragments { d[f.workerID, default: 0] += 1 }
    }
  }

  /// Fragments done with so far, per worker id.
  public var doneCounts: [Int: Int] { done.withLock { $0 } }
}
