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
    let dir = NSTemporaryDirectory() + "herd-slowenv-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var config = TrainingConfig.defaults(for: "gym:herd_env.testing_envs:HerdTest/Slow-v0")
    // Each of the 2 copies sleeps 2.5 s at its 20th step (then every 20th).
    config.env_config = TrainingConfig.EnvConfig(["slow_every": .number(20), "seconds": .number(2.5)])
    config.env_step_timeout_seconds = 6  // slow from 1 s on, hung at 6
    config.num_envs_per_worker = 2
    config.train_batch_size = 40
    var settings = LearnerSettings(runDirectory: dir, stop: StopCriteria(seconds: 8))
    settings.network = NetworkSettings(
      endpoints: LearnerEndpoints(host: "127.0.0.1", controlPort: 0, fragmentPort: 0, weightsPort: 0))
    settings.workerLostSeconds = 1.5
    let logs = CollectedLogs()
    let control = SharedControl()
    let result = SharedResult()
    let (cfg, set) = (config, settings)
    let learner = JoinableThread(name: "test-learner") {
      do {
        result.set(.success(try LearnerDaemon(config: cfg, settings: set, logger: logs.logger()).run { control.set($0.control) }))
      } catch {
        result.set(.failure(error))
      }
    }
    let address = try waitFor(seconds: 20) { control.get() }
    let stopWorker = StopFlag()
    let worker = JoinableThread(name: "test-worker") {
      do {
        let transport = try ZMQWorkerTransport(learner: address, logger: logs.logger())
        let loop = WorkerLoop(
          transport: transport, envs: nil, seed: 1, logger: logs.logger(),
          envHost: EnvHostSettings(python: envHostPython ?? "python3", processes: 1))
        loop.heartbeatSeconds = 0.3
        try loop.run(stop: stopWorker)
      } catch {
        logs.logger().error("test worker: \(error)")
      }
    }
    learner.join()
    stopWorker.set()
    worker.join()
    let summary = try #require(try result.get()?.get())
    #expect(summary.env_steps >= 40, "\(summary)")
    #expect(logs.all.contains { $0.contains("a step has taken") }, "a slow step happened: \(logs.all.suffix(8))")
    #expect(!logs.all.contains { $0.contains("lost: no heartbeat") }, "\(logs.all.filter { $0.contains("worker") })")
    #expect(!logs.all.contains { $0.contains("taking it as hung") || $0.contains("test worker:") }, "\(logs.all.suffix(8))")
  }
}

final class SharedControl: @unchecked Sendable {
  private let lock = NSLock()
  private var value: String?
  func set(_ v: String?) { lock.withLock { value = v } }
  func get() -> String? { lock.withLock { value } }
}
