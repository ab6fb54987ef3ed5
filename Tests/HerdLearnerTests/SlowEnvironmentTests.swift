import Foundation
import HerdTestSupport
import Testing

@testable import HerdLearner
@testable import HerdRL

@Suite(
  .serialized,
  .enabled(
    if: envHostPython != nil || ProcessInfo.processInfo.environment["HERD_REQUIRE_TOOLS"] == "1",
    "needs herd_env in a Python (make venv)"))
struct SlowEnvironmentTests {
  /// Two copies of HerdTest/Slow-v0 that sleep `seconds` at every `every`-th step;
  /// an env host is slow after 1 s and hung after 6.
  static func slow(every: Int, seconds: Double) -> TrainingConfig {
    var config = TrainingConfig.defaults(for: "gym:herd_env.testing_envs:HerdTest/Slow-v0")
    config.env_config = TrainingConfig.EnvConfig(["slow_every": .number(Double(every)), "seconds": .number(seconds)])
    config.env_step_timeout_seconds = 6
    config.num_envs_per_worker = 2
    config.train_batch_size = 40
    return config
  }

  /// A worker whose environment takes longer for one step than the learner waits
  /// for a heartbeat stays connected: it beats while it waits for its env host.
  /// (It used to fall silent for the whole step: "worker 1 lost: no heartbeat",
  /// then "is back", at every slow step of a slow simulator.)
  @Test func aSlowEnvironmentKeepsItsWorkerConnected() throws {
    // Each of the 2 copies sleeps 2.5 s at its 20th step (then every 20th).
    let run = try LoopbackRun(config: Self.slow(every: 20, seconds: 2.5), learnerSeconds: 8)
    let summary = try run.finish()
    let logs = run.logs
    #expect(summary.env_steps >= 40, "\(summary)")
    #expect(logs.all.contains { $0.contains("a step has taken") }, "a slow step happened: \(logs.all.suffix(8))")
    #expect(!logs.all.contains { $0.contains("lost: no heartbeat") }, "\(logs.all.filter { $0.contains("worker") })")
    #expect(!logs.all.contains { $0.contains("taking it as hung") || $0.contains("test worker:") }, "\(logs.all.suffix(8))")
  }

  /// A worker told to stop while its env host hangs stops at once (it used to wait
  /// for the step until env_step_timeout_seconds) and says goodbye.
  @Test func aWorkerStopsWithoutWaitingForAHungEnvironment() throws {
    let run = try LoopbackRun(config: Self.slow(every: 20, seconds: 600), learnerSeconds: 60)
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
