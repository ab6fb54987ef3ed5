import Foundation
import HerdTestSupport
import HerdWorker
import Testing

@testable import HerdLearner
@testable import HerdRL

@Suite(.serialized) struct BusyLearnerTests {
  /// A learner busy with one long update (3 s, longer than it waits for a
  /// heartbeat) holds up its worker's sends once its queue is full; the worker
  /// repeats its last heartbeat while it waits, so it is not taken as lost. (It
  /// used to be: "worker 1 lost: no heartbeat", then "is back", at every update
  /// of a model whose updates take longer than 10 s.) Real ZeroMQ sockets on
  /// loopback, CartPole stepped in the worker.
  @Test func aWorkerHeldUpByABusyLearnerStaysConnected() throws {
    let dir = NSTemporaryDirectory() + "herd-busy-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var config = TrainingConfig.defaults(for: "CartPole-v1")
    config.num_envs_per_worker = 2
    config.train_batch_size = 40
    config.learner_queue_size = 2
    var settings = LearnerSettings(runDirectory: dir, stop: StopCriteria(seconds: 6))
    settings.network = NetworkSettings(
      endpoints: LearnerEndpoints(host: "127.0.0.1", controlPort: 0, fragmentPort: 0, weightsPort: 0))
    settings.workerLostSeconds = 1.5
    let paused = StopFlag()
    settings.afterUpdate = { version in
      if version == 3 && !paused.isSet {
        paused.set()
        usleep(3_000_000)
      }
    }
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
        transport.keepAliveSeconds = 0.3
        let loop = WorkerLoop(transport: transport, envs: nil, seed: 1, logger: logs.logger())
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
    #expect(paused.isSet && summary.updates > 3, "\(summary)")
    #expect(!logs.all.contains { $0.contains("lost: no heartbeat") }, "\(logs.all.filter { $0.contains("worker") })")
    #expect(!logs.all.contains { $0.contains("test worker:") }, "\(logs.all.suffix(8))")
  }
}
