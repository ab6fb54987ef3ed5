import Foundation
import HerdTestSupport
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
    var config = TrainingConfig.defaults(for: "CartPole-v1")
    config.num_envs_per_worker = 2
    config.train_batch_size = 40
    config.learner_queue_size = 2
    let paused = StopFlag()
    let run = try LoopbackRun(config: config, learnerSeconds: 6) { settings in
      settings.afterUpdate = { version in
        if version == 3 && !paused.isSet {
          paused.set()
          usleep(3_000_000)
        }
      }
    }
    let summary = try run.finish()
    let logs = run.logs
    #expect(paused.isSet && summary.updates > 3, "\(summary)")
    #expect(!logs.all.contains { $0.contains("lost: no heartbeat") }, "\(logs.all.filter { $0.contains("worker") })")
    #expect(!logs.all.contains { $0.contains("test worker:") }, "\(logs.all.suffix(8))")
  }
}
