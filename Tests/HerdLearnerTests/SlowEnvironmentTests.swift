import Foundation
import HerdTestSupport
import HerdWorker
import Testing

@testable import HerdLearner
@testable import HerdRL

@Suite(
  .serialized,
  .enabled(
    if: envHostPython != nil || ProcessInfo.processInfo.environment["HERD_REQUIRE_TOOLS"] == "1",
    "needs herd_env in a Python (make venv)"))
struct SlowEnvironmentTests {
  /// A worker whose environment takes longer for one step than the learner waits
  /// for a heartbeat stays connected: it beats while it waits for its env host.
  /// (It used to fall silent for the whole step: "worker 1 lost: no heartbeat",
  /// then "is back", at every slow step of a slow simulator.) A learner with real
  /// ZeroMQ sockets on loopback, a worker loop over the ZeroMQ transport.
  @Test func aSlowEnvironmentKeepsItsWorkerConnected() throws {
    // Each of the 2 copies sleeps 2.5 s at its 20th step (then every 20th).
    let run = try LearnerAndWorker(slowEvery: 20, seconds: 2.5, learnerSeconds: 8)
    run.learner.join()
    run.stopWorker.set()
    run.worker.join()
    let summary = try #require(try run.result.get()?.get())
    let logs = run.logs
    #expect(summary.env_steps >= 40, "\(summary)")
    #expect(logs.all.contains { $0.contains("a step has taken") }, "a slow step happened: \(logs.all.suffix(8))")
    #expect(!logs.all.contains { $0.contains("lost: no heartbeat") }, "\(logs.all.filter { $0.contains("worker") })")
    #expect(!logs.all.contains { $0.contains("taking it as hung") || $0.contains("test worker:") }, "\(logs.all.suffix(8))")
  }

  /// A worker told to stop while its env host hangs stops at once (it used to wait
  /// for the step until env_step_timeout_seconds), says goodbye, and leaves no
  /// host process.
  @Test func aWorkerStopsWithoutWaitingForAHungEnvironment() throws {
    let run = try LearnerAndWorker(slowEvery: 20, seconds: 600, learnerSeconds: 60)
    defer {
      run.interruptLearner.set()
      run.learner.join()
    }
    _ = try waitFor(seconds: 30) { run.logs.all.first { $0.contains("a step has taken") } }
    let start = Date()
    run.stopWorker.set()
    run.worker.join()
    #expect(-start.timeIntervalSinceNow < 4, "stopped \(-start.timeIntervalSinceNow) s after being told")
    #expect(run.logs.all.contains { $0.contains("stopping without waiting for the environments' step") })
    #expect(!run.logs.all.contains { $0.contains("taking it as hung") || $0.contains("test worker:") })
    _ = try waitFor(seconds: 10) { run.logs.all.contains { $0.contains("left: stopped") } ? true : nil }
  }
}

/// A learner daemon with ZeroMQ sockets on loopback in one thread, and a worker
/// loop over the ZeroMQ transport in another whose 2 environments (HerdTest/Slow-v0)
/// sleep `seconds` at every `slowEvery`-th step; the learner takes a worker as lost
/// after 1.5 s without a heartbeat, the worker beats every 0.3 s, and an env host
/// is slow after 1 s and hung after 6.
struct LearnerAndWorker {
  let logs = CollectedLogs()
  let result = SharedResult()
  let interruptLearner = StopFlag()
  let stopWorker = StopFlag()
  let learner: JoinableThread
  let worker: JoinableThread

  init(slowEvery: Int, seconds: Double, learnerSeconds: Double) throws {
    let dir = NSTemporaryDirectory() + "herd-slowenv-\(UInt32.random(in: 0...UInt32.max))"
    var config = TrainingConfig.defaults(for: "gym:herd_env.testing_envs:HerdTest/Slow-v0")
    config.env_config = TrainingConfig.EnvConfig(["slow_every": .number(Double(slowEvery)), "seconds": .number(seconds)])
    config.env_step_timeout_seconds = 6
    config.num_envs_per_worker = 2
    config.train_batch_size = 40
    var settings = LearnerSettings(runDirectory: dir, stop: StopCriteria(seconds: learnerSeconds))
    settings.network = NetworkSettings(
      endpoints: LearnerEndpoints(host: "127.0.0.1", controlPort: 0, fragmentPort: 0, weightsPort: 0))
    settings.workerLostSeconds = 1.5
    let control = SharedControl()
    let (cfg, set, logs, result, interrupted) = (config, settings, logs, result, interruptLearner)
    learner = JoinableThread(name: "test-learner") {
      defer { try? FileManager.default.removeItem(atPath: dir) }
      do {
        let daemon = LearnerDaemon(config: cfg, settings: set, logger: logs.logger())
        result.set(.success(try daemon.run(interrupted: interrupted) { control.set($0.control) }))
      } catch {
        result.set(.failure(error))
      }
    }
    let address = try waitFor(seconds: 20) { control.get() }
    let stop = stopWorker
    worker = JoinableThread(name: "test-worker") {
      do {
        let transport = try ZMQWorkerTransport(learner: address, logger: logs.logger())
        let loop = WorkerLoop(
          transport: transport, envs: nil, seed: 1, logger: logs.logger(),
          envHost: EnvHostSettings(python: envHostPython ?? "python3", processes: 1))
        loop.heartbeatSeconds = 0.3
        try loop.run(stop: stop)
      } catch {
        logs.logger().error("test worker: \(error)")
      }
    }
  }
}

final class SharedControl: @unchecked Sendable {
  private let lock = NSLock()
  private var value: String?
  func set(_ v: String?) { lock.withLock { value = v } }
  func get() -> String? { lock.withLock { value } }
}
