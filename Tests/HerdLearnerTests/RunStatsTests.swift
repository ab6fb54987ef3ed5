import Foundation
import Testing

@testable import HerdLearner
@testable import HerdRL
@testable import HerdStats

@Suite struct RunStatsTests {
  /// Rates over a sliding window of samples (5 s here).
  @Test func rateWindowSlides() {
    var w = RateWindow(seconds: 5)
    #expect(w.add(t: 0, sampled: 0, trained: 0) == (0, 0))
    #expect(w.add(t: 1, sampled: 100, trained: 50) == (100, 50))
    #expect(w.add(t: 2, sampled: 300, trained: 100) == (150, 50))
    _ = w.add(t: 6, sampled: 700, trained: 100)
    // The samples at t = 0 and 1 have left the window: (1700 - 300) / (8 - 2).
    let r = w.add(t: 8, sampled: 1700, trained: 400)
    #expect(abs(r.sampled - 1400.0 / 6) < 1e-9)
    #expect(abs(r.trained - 300.0 / 6) < 1e-9)
  }

  /// Lag percentiles cover the last `lagWindow` fragments only.
  @Test func lagWindowKeepsTheLatest() {
    let stats = RunStats(window: 100, lagWindow: 10)
    stats.recordLags(Array(repeating: 100, count: 10))
    #expect(stats.snapshot().lagP50 == 100)
    stats.recordLags(Array(0..<10))
    let s = stats.snapshot()
    #expect(s.lagMax == 9)
    #expect(s.lagP50 == 5)
    #expect(stats.snapshot(lags: false).lagMax == 0, "no percentiles when not asked for")
  }

  /// The time since env steps last arrived is nil until they do.
  @Test func secondsSinceEnvSteps() {
    let stats = RunStats()
    #expect(stats.snapshot().secondsSinceEnvSteps == nil)
    stats.addEnvSteps(10)
    let s = stats.snapshot().secondsSinceEnvSteps
    #expect(s != nil && s! >= 0 && s! < 5)
  }

  /// summary.json has every key: absent values are null, and it decodes back.
  @Test func summaryEncodesNullsAndDecodes() throws {
    let summary = RunSummary(
      env: "CartPole-v1", env_steps: 10, trained_steps: 9, updates: 1, episodes: 0, wall_seconds: 1.5,
      final_mean_return: nil, best_mean_return: 20, stop_reward: nil, stop_reward_reached: false,
      env_steps_to_stop_reward: nil, seconds_to_stop_reward: nil, stopped_because: "interrupted",
      dropped_stale_fragments: 0, skipped_updates: 0, use_lstm: true, run_dir: "runs/x", disk_error: nil)
    let data = try JSONEncoder().encode(summary)
    let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    #expect(object.count == 19)
    for key in ["final_mean_return", "stop_reward", "env_steps_to_stop_reward", "seconds_to_stop_reward", "disk_error"] {
      #expect(object[key] is NSNull, "\(key)")
    }
    #expect((object["best_mean_return"] as? NSNumber)?.floatValue == 20)
    let back = try JSONDecoder().decode(RunSummary.self, from: data)
    #expect(back.best_mean_return == 20 && back.final_mean_return == nil)
    // A key left out decodes as nil.
    var trimmed = object
    trimmed.removeValue(forKey: "stop_reward")
    let again = try JSONDecoder().decode(RunSummary.self, from: try JSONSerialization.data(withJSONObject: trimmed))
    #expect(again.stop_reward == nil)
  }
}
