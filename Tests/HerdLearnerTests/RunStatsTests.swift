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

  /// A restored mean-return window gives the mean it was saved with, and new
  /// episodes push its oldest out (a resumed run's mean goes on).
  @Test func restoredWindowGoesOn() {
    let stats = RunStats(window: 3)
    stats.restore(envSteps: 50, episodes: 7, recentReturns: [1, 2, 3, 4], recentLengths: [5, 6, 7, 8])
    var s = stats.snapshot()
    #expect(s.windowEpisodes == 3 && s.episodes == 7 && s.envSteps == 50)
    #expect(s.meanReturn == 3 && s.meanLength == 7, "the newest 3 of 4: returns 2, 3, 4")
    stats.record(EpisodeRecord(workerID: 1, envReturn: 11, length: 9))
    s = stats.snapshot()
    #expect(s.episodes == 8 && s.meanReturn == 6 && s.maxReturn == 11)
    let recent = stats.recentEpisodes()
    #expect(recent.returns == [3, 4, 11] && recent.lengths == [7, 8, 9])
  }

  /// Each info key's mean covers the last `window` episodes that had it (a NaN is
  /// a key the episode lacked); a record with another count of values is left out.
  @Test func episodeInfoMeansSkipMissingValues() {
    let stats = RunStats(window: 3, infoKeys: ["is_success", "odd"])
    #expect(stats.snapshot().episodeInfo == [
      RunStats.InfoMean(key: "is_success", mean: nil, episodes: 0), RunStats.InfoMean(key: "odd", mean: nil, episodes: 0),
    ])
    for (ok, odd) in [(1, 5), (0, Float.nan), (1, 7), (1, .nan), (0, .infinity)] as [(Float, Float)] {
      stats.record(EpisodeRecord(workerID: 1, envReturn: 0, length: 1, info: [ok, odd]))
    }
    stats.record(EpisodeRecord(workerID: 1, envReturn: 0, length: 1, info: [9]))
    stats.record(EpisodeRecord(workerID: 1, envReturn: 0, length: 1))
    let s = stats.snapshot().episodeInfo
    #expect(s[0] == RunStats.InfoMean(key: "is_success", mean: 2.0 / 3, episodes: 3), "the newest 3: 1, 1, 0")
    #expect(s[1] == RunStats.InfoMean(key: "odd", mean: 6, episodes: 2), "5 and 7; NaN and infinity skipped")
    // Many more than the window: the trimmed values stay the newest.
    for v in 0..<50 { stats.record(EpisodeRecord(workerID: 1, envReturn: 0, length: 1, info: [Float(v), .nan])) }
    #expect(stats.snapshot().episodeInfo[0].mean == 48 && stats.snapshot().episodeInfo[1].mean == 6)
    // A checkpoint's windows: what recentInfo gives, restore takes back (another key left out).
    #expect(stats.recentInfo() == ["is_success": [47, 48, 49], "odd": [5, 7]])
    let resumed = RunStats(window: 3, infoKeys: ["is_success", "odd"])
    resumed.restoreInfo(["is_success": [1, 2, 3, 4], "odd": [2], "gone": [9]])
    #expect(resumed.snapshot().episodeInfo == [
      RunStats.InfoMean(key: "is_success", mean: 3, episodes: 3), RunStats.InfoMean(key: "odd", mean: 2, episodes: 1),
    ])
  }

  /// The window's policy version is the median of its episodes' versions, over the
  /// episodes whose version is known, and follows the window as it slides.
  @Test func windowPolicyVersionIsTheMedianOfItsEpisodes() {
    let stats = RunStats(window: 4)
    #expect(stats.snapshot().windowPolicyVersion == nil)
    stats.record(EpisodeRecord(workerID: 1, envReturn: 0, length: 1))
    #expect(stats.snapshot().windowPolicyVersion == nil, "no version known")
    for v in [9, 3, 5] { stats.record(EpisodeRecord(workerID: 1, envReturn: 0, length: 1, policyVersion: v)) }
    #expect(stats.snapshot().windowPolicyVersion == 5, "3, 5, 9; the unknown one left out")
    #expect(stats.snapshot().windowOldestPolicyVersion == 3)
    for v in [20, 21, 22] { stats.record(EpisodeRecord(workerID: 1, envReturn: 0, length: 1, policyVersion: v)) }
    #expect(stats.snapshot().windowPolicyVersion == 21, "the newest 4: 5, 20, 21, 22 (upper median)")
    // Many more episodes than the window: the trimmed arrays stay in step.
    for v in 100..<150 { stats.record(EpisodeRecord(workerID: 1, envReturn: Float(v), length: 1, policyVersion: v)) }
    let s = stats.snapshot()
    #expect(s.windowPolicyVersion == 148 && s.windowOldestPolicyVersion == 146 && s.meanReturn == 147.5)
    stats.restore(envSteps: 0, episodes: 0, recentReturns: [1, 2], recentLengths: [1, 1])
    #expect(stats.snapshot().windowPolicyVersion == nil, "a restored window's versions are unknown")
  }

  /// Published weights are kept by version up to a count and a byte budget, the
  /// newest always; a version no longer kept gives the oldest kept after it.
  @Test func publishedWeightsKeepTheRecentVersions() throws {
    var p = PublishedWeights(budgetBytes: 3 * 8 * 4, maxVersions: 5)  // three versions of 8 floats
    #expect(p.weights(for: 0) == nil)
    for v in 10...14 { p.add(version: v, weights: [Float](repeating: Float(v), count: 8)) }
    #expect(p.entries.map(\.version) == [12, 13, 14], "the budget holds three")
    #expect(p.weights(for: 13)?.version == 13 && p.weights(for: 13)?.weights.first == 13)
    #expect(p.weights(for: 4)?.version == 12, "gone: the oldest kept after it")
    #expect(p.weights(for: 30)?.version == 14, "not yet published: the newest")
    var q = PublishedWeights(budgetBytes: 1 << 20, maxVersions: 2)
    for v in 1...4 { q.add(version: v, weights: [Float(v)]) }
    #expect(q.entries.map(\.version) == [3, 4], "the count holds two")
    q.drop(before: 4)
    #expect(q.entries.map(\.version) == [4])
    q.drop(before: 9)
    #expect(q.entries.map(\.version) == [4], "the newest stays")
    var big = PublishedWeights(budgetBytes: 4, maxVersions: 5)
    big.add(version: 1, weights: [1, 2, 3])
    big.add(version: 2, weights: [4, 5, 6])
    #expect(big.entries.map(\.version) == [2], "over budget alone: the newest is still kept")
    big.add(version: 2, weights: [7, 8, 9])
    #expect(big.entries.count == 1 && big.weights(for: 2)?.weights == [7, 8, 9], "a version published again replaces it")
  }

  /// `evaluations.jsonl`: records appended whole, read back (lines that are not
  /// records skipped), cut back to a resumed checkpoint's clock, and removed with
  /// `best_eval.herd` by a new run in a folder without a checkpoint.
  @Test func evaluationsFileAppendsReadsDropsAndClears() throws {
    let dir = NSTemporaryDirectory() + "herd-evaluations-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let run = try RunDirectory(path: dir)
    #expect(run.evaluations().isEmpty)
    var written: [EvaluationFigures] = []
    for i in 1...4 {
      var e = EvaluationFigures(
        policyVersion: i * 10, envSteps: i * 1000 + 7, wallSeconds: Double(i) * 5, seconds: 0.5, episodes: 10,
        greedy: i != 2, returnMean: Double(i) * 1.5, returnStd: 0.25, returnMin: 1, returnMax: Double(i) * 2,
        lengthMean: 9)
      e.info = ["is_success": i == 3 ? nil : 0.5]
      written.append(e)
      try run.appendEvaluation(RunDirectory.evaluationRecord(e))
    }
    let handle = try #require(FileHandle(forWritingAtPath: dir + "/evaluations.jsonl"))
    handle.seekToEndOfFile()
    handle.write(Data("half a li\n".utf8))
    try handle.close()
    #expect(run.evaluations() == written)
    // Resuming from a checkpoint at 12 s: the evaluations that finished after it go.
    #expect(try run.dropEvaluations(after: 12) == 2)
    #expect(run.evaluations() == Array(written.prefix(2)))
    #expect(try run.dropEvaluations(after: 12) == 0)
    try run.writeAtomically("best_eval.herd", "weights")
    let cleared = run.clearPreviousRun()
    #expect(cleared.contains("evaluations.jsonl") && cleared.contains("best_eval.herd"), "\(cleared)")
    #expect(run.evaluations().isEmpty && !FileManager.default.fileExists(atPath: dir + "/best_eval.herd"))
  }

  /// A resumed run's dashboard starts with the curves of `progress.jsonl` up to
  /// the checkpoint it resumes from: records past it (training the resume drops)
  /// and lines that are not records are left out; the board keeps its capacity.
  @Test func historyFromProgressUpToTheCheckpoint() throws {
    let dir = NSTemporaryDirectory() + "herd-history-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let run = try RunDirectory(path: dir)
    for t in 1...20 {
      try run.appendProgress([
        MetricKey.wallSeconds: Double(t) * 2, MetricKey.envStepsSampled: t * 100,
        MetricKey.returnMean: t < 3 ? NSNull() : Double(t) / 2, MetricKey.sampledPerSecond: 50.0,
        MetricKey.trainedPerSecond: 49.0, MetricKey.lossPG: 0.25, MetricKey.lagP50: 3, MetricKey.lagP95: 7,
        MetricKey.episodeInfo("is_success"): t < 5 ? NSNull() : Double(t) / 20,
        MetricKey.evaluationReturnMean: t < 6 ? NSNull() : Double(t) * 10,
      ])
    }
    let handle = try #require(FileHandle(forWritingAtPath: dir + "/progress.jsonl"))
    handle.seekToEndOfFile()
    handle.write(Data("not json\n{\"no\": \"seconds\"}\n".utf8))
    try handle.close()
    let points = run.progressHistory(upTo: 30)
    #expect(points.map(\.wallSeconds) == (1...15).map { Double($0) * 2 })
    #expect(points[0].meanReturn == nil && points[2].meanReturn == 1.5)
    #expect(points[4].envSteps == 500 && points[4].policyLoss == 0.25 && points[4].baselineLoss == nil)
    #expect(points[4].lagP95 == 7 && points[4].sampledPerSecond == 50)
    #expect(points[3].episodeInfo.isEmpty && points[4].episodeInfo == ["is_success": 0.25], "info means, nulls left out")
    #expect(points[4].evaluationReturn == nil && points[5].evaluationReturn == 60, "the evaluations' column")
    let board = StatusBoard(capacity: 8)
    board.seed(points)
    let kept = board.history
    #expect(kept.count < 8 && kept.first == points.first, "thinned to fit, oldest kept")
    #expect(zip(kept, kept.dropFirst()).allSatisfy { $0.wallSeconds < $1.wallSeconds })
  }

  /// A run folder that cannot be made says which part of the path is in the way,
  /// in the system's words (not Foundation's "NSCocoaErrorDomain error 512").
  @Test func aRunFolderBlockedByAFileNamesIt() throws {
    let dir = NSTemporaryDirectory() + "herd-blocked-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let run = try RunDirectory(path: dir)
    try run.writeAtomically("config.json", "{}\n")
    let blocked = run.file("config.json") + "/run"
    let error = try #require(throws: RunDirectoryError.self) { try RunDirectory(path: blocked) }
    #expect(
      "\(error)" == "--run-dir \(blocked): cannot create the folder (\(run.file("config.json")) exists and is not a folder)")
  }

  /// A process killed outright while writing a file leaves `NAME.tmp.PID` beside
  /// it; opening the folder again removes those of processes no longer running and
  /// nothing else: not a running process's write in progress, not a name whose
  /// last part is no process id, not the files themselves.
  @Test func openingARunFolderRemovesTheTemporariesOfGoneProcesses() throws {
    let dir = NSTemporaryDirectory() + "herd-stale-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let gone = Process()
    gone.executableURL = URL(fileURLWithPath: "/bin/true")
    try gone.run()
    gone.waitUntilExit()
    let stale = "checkpoint.herd.tmp.\(gone.processIdentifier)"
    let kept = ["checkpoint.herd", "summary.json.tmp.\(getpid())", "notes.tmp.abc", ".tmp.1", "config.json"]
    do {
      let first = try RunDirectory(path: dir)
      #expect(first.removedTemporaries.isEmpty)
      for name in kept + [stale] { try first.writeAtomically(name, "x\n") }
    }
    let again = try RunDirectory(path: dir)
    #expect(again.removedTemporaries == [stale])
    let left = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
    #expect(left == Set(kept + ["progress.jsonl"]), "\(left)")
  }

  /// On resume the records past the checkpoint's clock go from the end of the
  /// file, in place (the folder stays locked, appends go on after the kept ones),
  /// read a block at a time from the end (here across several blocks).
  @Test func dropProgressRemovesTheRecordsPastTheCheckpoint() throws {
    let dir = NSTemporaryDirectory() + "herd-drop-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let run = try RunDirectory(path: dir)
    #expect(try run.dropProgress(after: 0) == 0, "an empty file")
    let padding = String(repeating: "x", count: 30_000)  // records longer than half a block
    for t in [1.0, 2.0, 3.0, 4.0, 5.0] { try run.appendProgress([MetricKey.wallSeconds: t, "pad": padding]) }
    #expect(try run.dropProgress(after: 6) == 0)
    #expect(try run.dropProgress(after: 2) == 3)
    try run.appendProgress([MetricKey.wallSeconds: 2.5])
    let lines = try String(contentsOfFile: run.file("progress.jsonl"), encoding: .utf8).split(separator: "\n")
    let times = lines.map { ((try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any])?[MetricKey.wallSeconds] as? Double }
    #expect(times == [1, 2, 2.5])
    #expect(try run.dropProgress(after: 0) == 3, "every record, back to the file's start")
    #expect(try String(contentsOfFile: run.file("progress.jsonl"), encoding: .utf8).isEmpty)
    #expect(throws: RunDirectoryError.self) { try RunDirectory(path: dir) }
  }

  /// A folder one run has open is refused to a second, with a message that says
  /// why and what to do; once the first releases it (while still alive, as a
  /// learner's run directory is after its run when a closure still holds it) or
  /// is gone, it opens.
  @Test func aRunFolderInUseIsRefusedToASecondRun() throws {
    let dir = NSTemporaryDirectory() + "herd-inuse-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    do {
      let first = try RunDirectory(path: dir)
      let error = try #require(throws: RunDirectoryError.self) { try RunDirectory(path: dir) }
      #expect(
        "\(error)"
          == "--run-dir \(dir) is in use by another run (its progress.jsonl is locked): stop that run first, or give another --run-dir")
      try first.appendProgress(["t": 1])
      first.release()
      let meanwhile = try RunDirectory(path: dir)
      try meanwhile.appendProgress(["t": 1.5])
    }
    let second = try RunDirectory(path: dir)
    try second.appendProgress(["t": 2])
    let lines = try String(contentsOfFile: second.file("progress.jsonl"), encoding: .utf8).split(separator: "\n")
    #expect(lines == [#"{"t":1}"#, #"{"t":1.5}"#, #"{"t":2}"#])
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
    #expect(object.count == 24)
    #expect(object["evaluations"] as? Int == 0 && object["last_evaluation"] is NSNull && object["best_evaluation"] is NSNull)
    #expect(object["final_evaluation"] is NSNull)
    #expect((object["final_episode_info"] as? [String: Any])?.isEmpty == true)
    var withInfo = summary
    withInfo.final_episode_info = ["is_success": 0.5, "never": nil]
    let info = try #require(
      try JSONSerialization.jsonObject(with: try JSONEncoder().encode(withInfo)) as? [String: Any])["final_episode_info"]
      as? [String: Any]
    #expect(info?["is_success"] as? Double == 0.5 && info?["never"] is NSNull, "a key no episode had is null")
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
