import Foundation
import HerdTestSupport
import HerdWorker
import Testing

@testable import HerdLearner
@testable import HerdRL

/// A learner daemon with ZeroMQ sockets on loopback in one thread, and a worker
/// loop over the ZeroMQ transport in another. The learner takes a worker as lost
/// after 1.5 s without a heartbeat; the worker beats every 0.3 s, and repeats its
/// last beat every 0.3 s while a send waits. Gymnasium environments run in the
/// project's Python.
struct LoopbackRun {
  let logs = CollectedLogs()
  let result = SharedResult()
  let interruptLearner = StopFlag()
  let stopWorker = StopFlag()
  let learner: JoinableThread
  let worker: JoinableThread

  init(config: TrainingConfig, learnerSeconds: Double, adjust: (inout LearnerSettings) -> Void = { _ in }) throws {
    let dir = NSTemporaryDirectory() + "herd-loopback-\(UInt32.random(in: 0...UInt32.max))"
    var settings = LearnerSettings(runDirectory: dir, stop: StopCriteria(seconds: learnerSeconds))
    settings.network = NetworkSettings(
      endpoints: LearnerEndpoints(host: "127.0.0.1", controlPort: 0, fragmentPort: 0, weightsPort: 0))
    settings.workerLostSeconds = 1.5
    adjust(&settings)
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
        transport.keepAliveSeconds = 0.3
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

  /// Runs until the learner stops by itself, then stops the worker; the summary.
  func finish() throws -> RunSummary {
    learner.join()
    stopWorker.set()
    worker.join()
    return try #require(try result.get()?.get())
  }
}

final class SharedControl: @unchecked Sendable {
  private let lock = NSLock()
  private var value: String?
  func set(_ v: String?) { lock.withLock { value = v } }
  func get() -> String? { lock.withLock { value } }
}
