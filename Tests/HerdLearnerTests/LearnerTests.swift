import Foundation
import HerdNN
import Logging
import Synchronization
import Testing

@testable import HerdLearner
@testable import HerdRL
@testable import HerdStats

/// A log handler that keeps every message (what the learner tells its operator).
final class CollectedLogs: Sendable {
  let lines = Mutex<[String]>([])
  var all: [String] { lines.withLock { $0 } }

  func logger() -> Logger {
    Logger(label: "test") { _ in Handler(logs: self) }
  }

  struct Handler: LogHandler {
    let logs: CollectedLogs
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
      get { metadata[key] }
      set { metadata[key] = newValue }
    }
    func log(event: LogEvent) { logs.lines.withLock { $0.append("\(event.level): \(event.message)") } }
  }
}

@Suite struct WorkerRegistryTests {
  /// Joined, lost and back again are each logged (the learner used to say nothing
  /// when a lost worker's heartbeats returned).
  @Test func aLostWorkerThatComesBackIsLogged() {
    let logs = CollectedLogs()
    let registry = WorkerRegistry(logger: logs.logger(), lostAfter: 10)
    let id = registry.admit(WorkerHello(runID: 7, host: "h", pid: 1, envs: nil), defaultEnvs: 4, policyVersion: 0)
    #expect(registry.sessions.first?.envs == 4)
    #expect(registry.sweep(now: Date(timeIntervalSinceNow: 11)) == [id])
    #expect(registry.sessions.first?.connected == false)
    let beat = WorkerBeat(workerID: id, runID: 7, envSteps: 5, episodes: 0, stepsPerSecond: 1, meanReturn: .nan, policyVersion: 0)
    #expect(registry.heartbeat(beat))
    #expect(registry.sessions.first?.connected == true)
    let lines = logs.all
    #expect(lines.contains { $0.contains("worker \(id) joined") })
    #expect(lines.contains { $0.hasPrefix("warning") && $0.contains("worker \(id) lost") })
    #expect(lines.contains { $0.contains("worker \(id) is back") }, "\(lines)")
    // A second heartbeat is not news.
    #expect(registry.heartbeat(beat))
    #expect(logs.all.filter { $0.contains("is back") }.count == 1)
    // Another run id under the same worker id is not this session.
    var stranger = beat
    stranger.runID = 8
    #expect(!registry.heartbeat(stranger))
  }
}

@Suite struct CheckpointTests {
  func archive(_ meta: [String: String]) -> TensorArchive { TensorArchive(metadata: meta, entries: []) }

  /// A checkpoint without its counters is refused, naming what is missing (it used
  /// to resume silently from policy version 0).
  @Test func countersAreRequired() throws {
    let full = ["policy_version": "12", "trained_steps": "340", "env_steps": "400", "episodes": "9"]
    let c = try CheckpointCounters(archive(full), source: "x.herd")
    #expect(c == CheckpointCounters.make(policyVersion: 12, trainedSteps: 340, envSteps: 400, episodes: 9))
    for key in full.keys {
      var meta = full
      meta.removeValue(forKey: key)
      #expect {
        try CheckpointCounters(archive(meta), source: "x.herd")
      } throws: { "\($0)".contains("has no \(key)") && "\($0)".contains("x.herd") }
    }
    var bad = full
    bad["policy_version"] = "twelve"
    #expect { try CheckpointCounters(archive(bad), source: "x.herd") } throws: { "\($0)".contains("\"twelve\"") }
  }

  /// The run's clock and the episodes of its mean-return window round-trip through
  /// a checkpoint's metadata; a checkpoint from before they were kept reads as 0 s
  /// and an empty window; a malformed value is an error that names it.
  @Test func progressRoundTripsAndOlderCheckpointsReadAsFresh() throws {
    let p = CheckpointProgress(wallSeconds: 123.5, returns: [1, -2.5, .nan, 21.25], lengths: [10, 20, 30, 40])
    #expect(p.returns == [1, -2.5, 21.25] && p.lengths == [10, 20, 40], "a non-finite return goes, with its length")
    #expect(try CheckpointProgress(archive(p.metadata), source: "x.herd") == p)
    let older = try CheckpointProgress(archive(["policy_version": "3"]), source: "x.herd")
    #expect(older == CheckpointProgress(wallSeconds: 0, returns: [], lengths: []))
    #expect { try CheckpointProgress(archive(["wall_seconds": "soon"]), source: "x.herd") } throws: {
      "\($0)".contains("x.herd: wall_seconds is \"soon\"")
    }
    #expect {
      try CheckpointProgress(archive(["recent_returns": "[1, 2]", "recent_lengths": "[3]"]), source: "x.herd")
    } throws: { "\($0)".contains("2 recent_returns but 1 recent_lengths") }
    #expect { try CheckpointProgress(archive(["recent_returns": "{}"]), source: "x.herd") } throws: {
      "\($0)".contains("recent_returns is not a JSON array")
    }
    // The episode info windows too (absent in older checkpoints: none).
    let info = CheckpointProgress(
      wallSeconds: 1, returns: [1], lengths: [1], episodeInfo: ["is_success": [1, 0, .nan, 1], "x": []])
    #expect(info.episodeInfo == ["is_success": [1, 0, 1], "x": []])
    #expect(try CheckpointProgress(archive(info.metadata), source: "x.herd") == info)
    #expect(older.episodeInfo.isEmpty)
    #expect { try CheckpointProgress(archive(["recent_episode_info": "[1]"]), source: "x.herd") } throws: {
      "\($0)".contains("recent_episode_info is not a JSON object of number arrays")
    }
  }

  /// The daemon refuses to resume from such a checkpoint (and says why).
  @Test func resumeRefusesACheckpointWithoutAVersion() throws {
    let dir = NSTemporaryDirectory() + "herd-resume-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var config = TrainingConfig.defaults(for: "MemoryChain-v0")
    config.num_envs_per_worker = 2
    let network = PolicyNetwork(config: config, observationSize: 3, actionCount: 2)
    let learner = Learner(config: config, network: network)
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try learner.parameters.archive(optimizer: learner.optimizer, metadata: ["env_steps": "5"]).write(
      to: dir + "/checkpoint.herd")
    var settings = LearnerSettings(runDirectory: dir, stop: StopCriteria(seconds: 1))
    settings.resume = true
    #expect {
      try LearnerDaemon(config: config, settings: settings, logger: CollectedLogs().logger()).run()
    } throws: { "\($0)".contains("has no policy_version") }
  }
}

extension CheckpointCounters {
  static func make(policyVersion: Int, trainedSteps: Int, envSteps: Int, episodes: Int) -> CheckpointCounters {
    let meta = [
      "policy_version": String(policyVersion), "trained_steps": String(trainedSteps), "env_steps": String(envSteps),
      "episodes": String(episodes),
    ]
    // swift-format-ignore: the initialiser reads the same keys.
    return try! CheckpointCounters(TensorArchive(metadata: meta, entries: []), source: "made")
  }
}

@Suite(.serialized) struct LearnerDaemonTests {
  /// Started from code with in-process workers over the in-memory transport: the
  /// same worker loop and worker table as remote workers, a summary at the end.
  @Test func trainsFromCodeWithInProcessWorkers() throws {
    let dir = NSTemporaryDirectory() + "herd-daemon-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var config = TrainingConfig.defaults(for: "MemoryChain-v0")
    config.num_envs_per_worker = 8
    var settings = LearnerSettings(runDirectory: dir, stop: StopCriteria(envSteps: 30_000, seconds: 60))
    settings.inProcessWorkers = 2
    let logs = CollectedLogs()
    var board: StatusBoard?
    let summary = try LearnerDaemon(config: config, settings: settings, logger: logs.logger()).run { ready in
      board = ready.status
      #expect(ready.control == nil && ready.statsURL == nil)
    }
    #expect(summary.stopped_because == "stop_steps reached")
    #expect(summary.env_steps >= 30_000 && summary.updates > 0)
    #expect(summary.disk_error == nil)
    #expect(board?.status?.stoppedBecause == "stop_steps reached")
    #expect(FileManager.default.fileExists(atPath: dir + "/checkpoint.herd"))
    let joined = logs.all.filter { $0.contains("joined") }
    #expect(joined.count == 2, "both threads say hello to the worker table: \(joined)")
    #expect(logs.all.filter { $0.contains("left: stopped") }.count == 2, "and goodbye")
  }

  /// `await run()` holds no thread of the cooperative pool: more daemons than the
  /// pool has threads, each with a stats endpoint, run at once from tasks and all
  /// end (their shutdown needs a pool thread; the blocking form would hang here).
  /// Cancelling a run's task stops it as an interruption. A watchdog on a GCD
  /// thread turns a hang into a crash (a time limit needs the blocked pool).
  @Test func asyncRunsShareTheCooperativePool() async throws {
    let finished = StopFlag()
    defer { finished.set() }
    DispatchQueue.global().asyncAfter(deadline: .now() + 120) {
      if !finished.isSet { fatalError("the daemons' async runs did not end within 120 s: a pool thread is blocked") }
    }
    let count = min(ProcessInfo.processInfo.activeProcessorCount, 4) + 1
    let base = NSTemporaryDirectory() + "herd-async-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: base) }
    func daemon(_ i: Int, steps: Int) -> LearnerDaemon {
      var config = TrainingConfig.defaults(for: "MemoryChain-v0")
      config.num_envs_per_worker = 4
      var settings = LearnerSettings(runDirectory: "\(base)/\(i)", stop: StopCriteria(envSteps: steps, seconds: 60))
      settings.inProcessWorkers = 1
      settings.stats = StatsSettings(host: "127.0.0.1", port: 0)
      return LearnerDaemon(config: config, settings: settings, logger: CollectedLogs().logger())
    }
    let results = try await withThrowingTaskGroup(of: (String?, RunSummary).self) { group in
      for i in 0..<count {
        group.addTask {
          var url: String?
          let summary = try await daemon(i, steps: 5_000).run { url = $0.statsURL }
          return (url, summary)
        }
      }
      return try await group.reduce(into: []) { $0.append($1) }
    }
    #expect(results.count == count)
    for (url, summary) in results {
      #expect(url?.hasPrefix("http://127.0.0.1:") == true)
      #expect(summary.stopped_because == "stop_steps reached" && summary.env_steps >= 5_000)
    }
    #expect(Set(results.compactMap { $0.0 }).count == count, "each endpoint on its own port")

    // Cancelled once it is running: an interruption, with its final checkpoint.
    let started = StopFlag()
    let run = Task {
      try await daemon(count, steps: 100_000_000).run { _ in started.set() }
    }
    while !started.isSet { try await Task.sleep(for: .milliseconds(10)) }
    try await Task.sleep(for: .milliseconds(300))
    run.cancel()
    let summary = try await run.value
    #expect(summary.stopped_because == "interrupted")
    #expect(summary.env_steps < 100_000_000)
    #expect(FileManager.default.fileExists(atPath: "\(base)/\(count)/checkpoint.herd"))
  }

  /// `progress_interval_seconds` below a second is honoured: the status board and
  /// progress.jsonl used to follow a fixed one-second beat whatever the config said.
  @Test func progressRecordsFollowAShortInterval() throws {
    let dir = NSTemporaryDirectory() + "herd-interval-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var config = TrainingConfig.defaults(for: "MemoryChain-v0")
    config.num_envs_per_worker = 8
    config.progress_interval_seconds = 0.1
    var settings = LearnerSettings(runDirectory: dir, stop: StopCriteria(seconds: 2.5))
    settings.inProcessWorkers = 1
    let summary = try LearnerDaemon(config: config, settings: settings, logger: CollectedLogs().logger()).run()
    let records = try String(contentsOfFile: dir + "/progress.jsonl", encoding: .utf8).split(separator: "\n")
    // 0.1 s apart over about 2.5 s is some 25 records; a one-second beat gives 3-4.
    #expect(records.count >= 10, "\(records.count) records in \(summary.wall_seconds) s")
  }

  /// A run whose entropy bonus weight decays over its first 20,000 env steps:
  /// progress.jsonl has the weight of each record's update, never rising, at its
  /// final value by the end, and the entropy loss term made with it.
  @Test func progressRecordsCarryTheDecayingEntropyWeight() throws {
    let dir = NSTemporaryDirectory() + "herd-entropy-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var (config, settings) = Self.shortCartPoleRun(in: dir)
    config.entropy_coeff = 0.05
    config.entropy_coeff_final = 0.005
    config.entropy_decay_env_steps = 20_000
    config.progress_interval_seconds = 0.01
    settings.stop = StopCriteria(envSteps: 40_000, seconds: 60)
    _ = try LearnerDaemon(config: config, settings: settings, logger: CollectedLogs().logger()).run()
    let records = try String(contentsOfFile: dir + "/progress.jsonl", encoding: .utf8).split(separator: "\n").map {
      try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
    }
    let weights = records.compactMap { $0[MetricKey.entropyCoeff] as? Double }
    #expect(weights.count >= 2, "\(records.count) records")
    #expect(weights == weights.sorted(by: >), "\(weights)")
    #expect(weights.allSatisfy { $0 <= 0.05 + 1e-6 && $0 >= 0.005 - 1e-6 })
    #expect(weights.contains { $0 < 0.05 - 1e-6 && $0 > 0.005 + 1e-6 }, "a weight part-way: \(weights)")
    #expect(abs((weights.last ?? 0) - 0.005) < 1e-6, "40,000 env steps are past the decay: \(weights)")
    for r in records {
      guard let w = r[MetricKey.entropyCoeff] as? Double, let h = r[MetricKey.entropy] as? Double,
        let term = r[MetricKey.lossEntropy] as? Double
      else { continue }
      #expect(abs(term + w * h) < 1e-6, "\(r)")
    }
  }

  /// A run of 8,000 CartPole steps in `dir`: one in-process worker of 8
  /// environments, a progress record every 0.2 s.
  static func shortCartPoleRun(in dir: String) -> (TrainingConfig, LearnerSettings) {
    var config = TrainingConfig.defaults(for: "CartPole-v1")
    config.num_envs_per_worker = 8
    config.progress_interval_seconds = 0.2
    var settings = LearnerSettings(runDirectory: dir, stop: StopCriteria(envSteps: 8_000, seconds: 60))
    settings.inProcessWorkers = 1
    return (config, settings)
  }

  /// A resumed run goes on with the run's clock and its 100-episode mean: the
  /// seconds in progress.jsonl never go back, the resumed run's curves start with
  /// the first invocation's, and its log names the mean it resumed with.
  @Test func resumeKeepsTheClockAndTheReturnWindow() throws {
    let dir = NSTemporaryDirectory() + "herd-clock-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let (config, firstSettings) = Self.shortCartPoleRun(in: dir)
    var settings = firstSettings
    let first = try LearnerDaemon(config: config, settings: settings, logger: CollectedLogs().logger()).run()
    let saved = try CheckpointProgress(TensorArchive.read(from: dir + "/checkpoint.herd"), source: "checkpoint")
    #expect(abs(saved.wallSeconds - first.wall_seconds) < 1 && saved.wallSeconds > 0)
    #expect(!saved.returns.isEmpty && saved.returns.count <= 100)
    #expect(saved.returns == saved.lengths.map { Float($0) }, "CartPole pays 1 a step: each return is its length")
    settings.resume = true
    settings.stop = StopCriteria(envSteps: 12_000, seconds: 60)
    let logs = CollectedLogs()
    var board: StatusBoard?
    let second = try LearnerDaemon(config: config, settings: settings, logger: logs.logger()).run { board = $0.status }
    #expect(second.wall_seconds > saved.wallSeconds)
    let mean = saved.returns.reduce(0, +) / Float(saved.returns.count)
    let said = String(format: "mean return %.2f over its last %d episodes", mean, saved.returns.count)
    #expect(logs.all.contains { $0.contains("resumed from") && $0.contains(said) }, "\(logs.all.prefix(5))")
    // The run's clock so far, with a decimal while it is short (a run of 0.4 s is not "0 s").
    let clock = String(format: saved.wallSeconds < 10 ? "%.1f s trained" : "%.0f s trained", saved.wallSeconds)
    #expect(logs.all.contains { $0.contains("resumed from") && $0.contains(clock) }, "\(clock): \(logs.all.prefix(5))")
    let records = try String(contentsOfFile: dir + "/progress.jsonl", encoding: .utf8).split(separator: "\n")
    let times = try records.map {
      try #require((try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?[MetricKey.wallSeconds] as? Double)
    }
    #expect(times.contains { $0 <= first.wall_seconds } && times.contains { $0 > saved.wallSeconds })
    #expect(times == times.sorted(), "one clock over both invocations: \(times)")
    let history = try #require(board?.history)
    #expect(history.first?.wallSeconds == times.first, "the curve starts with the first invocation's first record")
    #expect(history.last.map { $0.wallSeconds > saved.wallSeconds } == true, "then this one's")
  }

  /// A new run in a folder whose run has no checkpoint (killed before its first,
  /// or removed by hand) starts its records afresh: progress.jsonl emptied, the
  /// other run's summary, best.herd and TensorBoard files removed, and says so;
  /// other files stay. (progress.jsonl used to get both runs' records, two clocks
  /// from 0 mixed in one file, and TensorBoard both runs' curves in one folder.)
  @Test func aNewRunInAFolderWithoutACheckpointStartsItsRecordsAfresh() throws {
    let dir = NSTemporaryDirectory() + "herd-afresh-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let (config, settings) = Self.shortCartPoleRun(in: dir)
    _ = try LearnerDaemon(config: config, settings: settings, logger: CollectedLogs().logger()).run()
    func names() throws -> Set<String> { Set(try FileManager.default.contentsOfDirectory(atPath: dir)) }
    func records() throws -> [Double] {
      try String(contentsOfFile: dir + "/progress.jsonl", encoding: .utf8).split(separator: "\n").map {
        try #require((try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?[MetricKey.wallSeconds] as? Double)
      }
    }
    func lines() throws -> Set<Substring> {
      Set(try String(contentsOfFile: dir + "/progress.jsonl", encoding: .utf8).split(separator: "\n"))
    }
    let before = try lines()
    #expect(!before.isEmpty)
    try FileManager.default.removeItem(atPath: dir + "/checkpoint.herd")
    try Data("the other run's\n".utf8).write(to: URL(fileURLWithPath: dir + "/best.herd"))
    try Data("mine\n".utf8).write(to: URL(fileURLWithPath: dir + "/notes.txt"))
    let old = try names()
    #expect(old.contains("summary.json") && old.filter { $0.hasPrefix("events.out.tfevents.") }.count == 1)

    let logs = CollectedLogs()
    let second = try LearnerDaemon(config: config, settings: settings, logger: logs.logger()).run()
    let said = logs.all.filter { $0.contains("a new run in \(dir), which held a run without a checkpoint") }
    #expect(said.count == 1, "\(logs.all.prefix(6))")
    #expect(said.first?.hasSuffix("emptied or removed its progress.jsonl, best.herd, \(old.filter { $0.hasPrefix("events.out.tfevents.") }.sorted()[0]), summary.json") == true, "\(said)")
    #expect(try lines().isDisjoint(with: before), "none of the other run's records")
    let times = try records()
    #expect(times == times.sorted(), "one run's clock only: \(times)")
    #expect(times.last.map { abs($0 - second.wall_seconds) < 1 } == true)
    let now = try names()
    #expect(now.filter { $0.hasPrefix("events.out.tfevents.") }.count == 1, "\(now)")
    #expect(now.contains("notes.txt") && now.contains("checkpoint.herd"))
    if now.contains("best.herd") {
      #expect(try TensorArchive.read(from: dir + "/best.herd").metadata[CheckpointKey.bestMeanReturn] != nil)
    }
  }

  /// The observation filter's statistics are saved with the checkpoint (its mean
  /// and scale as parameters, its running sums in the metadata) and a resumed run
  /// goes on from them instead of starting them again.
  @Test func resumeKeepsTheObservationFilter() throws {
    let dir = NSTemporaryDirectory() + "herd-filter-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var config = TrainingConfig.defaults(for: "StatelessCartPole-v1")
    #expect(config.observation_filter == .MeanStdFilter)
    config.num_envs_per_worker = 8
    func statistics() throws -> (ObservationStatistics, TensorArchive) {
      let archive = try TensorArchive.read(from: dir + "/checkpoint.herd")
      let text = try #require(archive.metadata[CheckpointKey.observationStatistics])
      return (try ObservationStatistics(json: text, features: 2), archive)
    }
    var settings = LearnerSettings(runDirectory: dir, stop: StopCriteria(envSteps: 20_000, seconds: 60))
    settings.inProcessWorkers = 1
    _ = try LearnerDaemon(config: config, settings: settings, logger: CollectedLogs().logger()).run()
    let (first, archive) = try statistics()
    #expect(first.count >= 10_000)
    var mean: [Float] = [0, 0]
    var scale: [Float] = [0, 0]
    first.write(mean: &mean, scale: &scale)
    #expect(archive.entry("param/obs_filter.mean")?.values == mean)
    #expect(archive.entry("param/obs_filter.scale")?.values == scale)
    // A short resumed run: its statistics go on from the first run's.
    settings.resume = true
    settings.stop = StopCriteria(envSteps: 26_000, seconds: 60)
    _ = try LearnerDaemon(config: config, settings: settings, logger: CollectedLogs().logger()).run()
    let (second, _) = try statistics()
    #expect(second.count > first.count, "restarted statistics would hold only the resumed run's ~6k observations")
  }

  /// reward_scaling's return statistics and the count of reused timesteps are saved
  /// in the checkpoint's metadata and a resumed run goes on from them (a Gaussian
  /// policy on Pendulum, in-process, two passes per batch).
  @Test func resumeKeepsTheReturnStatisticsAndTheReuseCount() throws {
    let dir = NSTemporaryDirectory() + "herd-returns-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var config = TrainingConfig.defaults(for: "Pendulum-v1")
    config.reward_scaling = true
    config.num_envs_per_worker = 8
    config.num_epochs = 2
    func statistics() throws -> ReturnStatistics {
      let archive = try TensorArchive.read(from: dir + "/checkpoint.herd")
      return try ReturnStatistics(json: try #require(archive.metadata[CheckpointKey.returnStatistics]))
    }
    func counters() throws -> CheckpointCounters {
      try CheckpointCounters(try TensorArchive.read(from: dir + "/checkpoint.herd"), source: "test")
    }
    var settings = LearnerSettings(runDirectory: dir, stop: StopCriteria(envSteps: 10_000, seconds: 60))
    settings.inProcessWorkers = 1
    _ = try LearnerDaemon(config: config, settings: settings, logger: CollectedLogs().logger()).run()
    let first = try statistics()
    #expect(first.count >= 5_000 && first.variance > 1, "Pendulum's discounted returns vary widely (\(first))")
    let before = try counters()
    #expect(before.reusedSteps == before.trainedSteps && before.trainedSteps > 0, "two passes: one reused")
    settings.resume = true
    settings.stop = StopCriteria(envSteps: 14_000, seconds: 60)
    _ = try LearnerDaemon(config: config, settings: settings, logger: CollectedLogs().logger()).run()
    #expect(try statistics().count > first.count, "restarted statistics would hold only the resumed run's steps")
    let after = try counters()
    #expect(after.reusedSteps == after.trainedSteps && after.reusedSteps > before.reusedSteps, "\(before) then \(after)")
  }
}
