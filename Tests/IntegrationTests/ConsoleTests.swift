import Foundation
import HerdLearner
import HerdRL
import HerdStats
import Testing

@testable import herd

/// `herd train`'s status bar on a terminal.
@Suite struct ConsoleTests {
  static func status(envSteps: Int, seconds: Double) -> TrainerStatus {
    let stats = RunStats(window: 100)
    stats.addEnvSteps(envSteps)
    return TrainerStatus(
      wallSeconds: seconds, stats: stats.snapshot(), updates: 12, trainedSteps: envSteps, sampledPerSecond: 1000,
      trainedPerSecond: 1000, lastUpdate: nil, queueDepth: 0, queueCapacity: 8, stoppedBecause: nil)
  }

  /// The bar is the furthest stop criterion; an evaluation shows beside the
  /// return, with `--stop-eval-reward`'s target, which moves the bar too.
  @Test func theBarShowsTheEvaluationAndItsTarget() {
    var s = Self.status(envSteps: 10_000, seconds: 30)
    let plain = ProgressDisplay.render(s, stop: StopCriteria(envSteps: 100_000), width: 200)
    #expect(plain.hasPrefix("██░░░░░░░░░░░░░░░░░░  10%  return -  steps 10,000"), "\(plain)")
    #expect(!plain.contains("eval"))
    s.evaluation = EvaluationFigures(
      policyVersion: 12, envSteps: 9000, wallSeconds: 29, seconds: 1, episodes: 10, greedy: true, returnMean: 375,
      returnStd: 0, returnMin: 375, returnMax: 375, lengthMean: 375)
    let withTarget = ProgressDisplay.render(s, stop: StopCriteria(envSteps: 100_000, evaluationReward: 500), width: 200)
    #expect(withTarget.hasPrefix("███████████████░░░░░  75%  return -  eval 375.0 / 500  steps 10,000"), "\(withTarget)")
    let without = ProgressDisplay.render(s, stop: StopCriteria(envSteps: 100_000), width: 200)
    #expect(without.contains("  10%  return -  eval 375.0  steps"), "\(without)")
  }
}
