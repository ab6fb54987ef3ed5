import Foundation
import HerdEnvs
import Logging
import Synchronization

/// One worker session as the learner sees it (a row of `/stats`' worker table).
public struct WorkerSession: Sendable {
  public var id: Int
  /// The worker process's random run id (a restarted worker has a new one).
  public var runID: UInt64
  public var host: String
  public var pid: Int
  public var envs: Int
  public var envSteps: Int64 = 0
  public var episodes: Int64 = 0
  public var stepsPerSecond: Double = 0
  public var meanReturn: Float = .nan
  public var policyVersion: Int64 = 0
  /// Its environments' faults, as its last heartbeat said.
  public var faults = EnvFaults()
  public var lastSeen: Date
  public var connected = true
  /// The worker said goodbye (a clean stop), as opposed to going silent.
  public var saidGoodbye = false

  public init(id: Int, runID: UInt64, host: String, pid: Int, envs: Int, lastSeen: Date) {
    self.id = id
    self.runID = runID
    self.host = host
    self.pid = pid
    self.envs = envs
    self.lastSeen = lastSeen
  }
}

/// What a worker says when it asks to join.
public struct WorkerHello: Sendable, Equatable {
  public var runID: UInt64
  public var host: String
  public var pid: Int
  /// Environments it will step; nil takes the run's `num_envs_per_worker`.
  public var envs: Int?
  /// What its environments are (nil: it has not made them yet and asks for the
  /// run's config first).
  public var envSpec: EnvSpec?

  public init(runID: UInt64, host: String, pid: Int, envs: Int?, envSpec: EnvSpec? = nil) {
    self.runID = runID
    self.host = host
    self.pid = pid
    self.envs = envs
    self.envSpec = envSpec
  }
}

/// A worker's periodic report: liveness and its own figures.
public struct WorkerBeat: Sendable, Equatable {
  public var workerID: Int
  public var runID: UInt64
  public var envSteps: Int64
  public var episodes: Int64
  public var stepsPerSecond: Double
  public var meanReturn: Float
  public var policyVersion: Int64
  /// Its environments' faults so far.
  public var faults: EnvFaults

  public init(
    workerID: Int, runID: UInt64, envSteps: Int64, episodes: Int64, stepsPerSecond: Double, meanReturn: Float,
    policyVersion: Int64, faults: EnvFaults = EnvFaults()
  ) {
    self.faults = faults
    self.workerID = workerID
    self.runID = runID
    self.envSteps = envSteps
    self.episodes = episodes
    self.stepsPerSecond = stepsPerSecond
    self.meanReturn = meanReturn
    self.policyVersion = policyVersion
  }
}

/// The learner's table of worker sessions, shared by every transport: admits
/// hellos, takes heartbeats and goodbyes, and marks silent workers lost. It logs
/// each change of a session's state: joined, lost, back, left.
public final class WorkerRegistry: Sendable {
  private struct State {
    var sessions: [Int: WorkerSession] = [:]
    var nextID = 0
  }
  private let state = Mutex(State())
  private let logger: Logger
  /// Seconds without a heartbeat before a worker counts as lost.
  public let lostAfter: Double

  public init(logger: Logger, lostAfter: Double = 10) {
    self.logger = logger
    self.lostAfter = lostAfter
  }

  /// Admits a worker and returns its new id.
  public func admit(_ hello: WorkerHello, defaultEnvs: Int, policyVersion: Int) -> Int {
    let envs = hello.envs ?? defaultEnvs
    let id = state.withLock { s -> Int in
      s.nextID += 1
      s.sessions[s.nextID] = WorkerSession(
        id: s.nextID, runID: hello.runID, host: hello.host, pid: hello.pid, envs: envs, lastSeen: Date())
      return s.nextID
    }
    logger.info(
      "worker \(id) joined: \(hello.host) pid \(hello.pid), \(envs) envs, run \(String(hello.runID, radix: 16)); sent policy version \(policyVersion)"
    )
    return id
  }

  /// Whether `workerID` is a session of this learner with `runID`.
  public func isKnown(workerID: Int, runID: UInt64) -> Bool {
    state.withLock { $0.sessions[workerID]?.runID == runID }
  }

  /// Takes a heartbeat. False when this learner does not know the session (a
  /// worker from before a learner restart): it should say hello again.
  public func heartbeat(_ b: WorkerBeat) -> Bool {
    let result = state.withLock { s -> (known: Bool, back: Bool) in
      guard var w = s.sessions[b.workerID], w.runID == b.runID else { return (false, false) }
      w.envSteps = b.envSteps
      w.episodes = b.episodes
      w.stepsPerSecond = b.stepsPerSecond
      w.meanReturn = b.meanReturn
      w.policyVersion = b.policyVersion
      w.faults = b.faults
      w.lastSeen = Date()
      let back = !w.connected
      if back { (w.connected, w.saidGoodbye) = (true, false) }
      s.sessions[w.id] = w
      return (true, back)
    }
    if result.back {
      logger.info("worker \(b.workerID) is back: heartbeats again after it was lost")
    }
    return result.known
  }

  /// A worker's clean goodbye.
  public func goodbye(workerID: Int, runID: UInt64, reason: String) {
    let known = state.withLock { s -> Bool in
      guard s.sessions[workerID]?.runID == runID else { return false }
      s.sessions[workerID]?.connected = false
      s.sessions[workerID]?.saidGoodbye = true
      return true
    }
    if known { logger.info("worker \(workerID) left: \(reason)") }
  }

  /// Marks connected workers silent for ``lostAfter`` seconds as lost (they may
  /// come back) and returns their ids.
  @discardableResult
  public func sweep(now: Date = Date()) -> [Int] {
    let lost = state.withLock { s -> [Int] in
      var ids: [Int] = []
      for (id, w) in s.sessions where w.connected && now.timeIntervalSince(w.lastSeen) > lostAfter {
        s.sessions[id]?.connected = false
        ids.append(id)
      }
      return ids.sorted()
    }
    for id in lost { logger.warning("worker \(id) lost: no heartbeat for \(Int(lostAfter)) s") }
    return lost
  }

  /// Every session, connected or not, by id.
  public var sessions: [WorkerSession] {
    state.withLock { Array($0.sessions.values) }.sorted { $0.id < $1.id }
  }
}
