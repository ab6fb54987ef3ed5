import Foundation
import HerdNN
import HerdStats
import HerdTestSupport
import Testing

/// A child `herd` process with its output in files.
final class HerdProcess {
  let process = Process()
  let errPath: String
  let outPath: String
  /// Where a learner (or `herd train`) writes its ready file.
  let readyPath: String

  /// `openFiles`: start it with this soft open-file limit, and this hard one when
  /// given (bash's `ulimit`, then `exec`). `shell`: bash commands run before the
  /// `exec` (`trap '' HUP`, as nohup does).
  init(
    _ args: [String], environment: [String: String] = [:], openFiles: (soft: Int, hard: Int?)? = nil,
    shell: String? = nil
  ) throws {
    let base = HerdBinary.tempDir("proc")
    errPath = base + ".stderr"
    outPath = base + ".stdout"
    readyPath = base + ".ready"
    var args = args
    if ["learner", "train"].contains(args.first) && !args.contains("--print-config") {
      args += ["--ready-file", readyPath]
    }
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    _ = FileManager.default.createFile(atPath: outPath, contents: nil)
    var before: [String] = shell.map { [$0] } ?? []
    if let openFiles {
      // The soft limit first: a hard one below the current soft one is refused.
      before.append("ulimit -S -n \(openFiles.soft)" + (openFiles.hard.map { " && ulimit -H -n \($0)" } ?? ""))
    }
    if !before.isEmpty {
      process.executableURL = URL(fileURLWithPath: "/bin/bash")
      process.arguments = ["-c", before.joined(separator: " && ") + " && exec \"$0\" \"$@\"", HerdBinary.path] + args
    } else {
      process.executableURL = URL(fileURLWithPath: HerdBinary.path)
      process.arguments = args
    }
    if !environment.isEmpty {
      process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    process.standardError = FileHandle(forWritingAtPath: errPath)
    process.standardOutput = FileHandle(forWritingAtPath: outPath)
    try process.run()
  }

  var stderr: String { (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "" }
  var stdout: String { (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "" }

  /// Waits until `predicate(stderr)` holds, at most `timeout` seconds.
  func waitFor(_ timeout: Double, _ predicate: (String) -> Bool) -> Bool {
    let deadline = Date(timeIntervalSinceNow: timeout)
    while Date() < deadline {
      if predicate(stderr) { return true }
      usleep(50_000)
    }
    return predicate(stderr)
  }

  /// Waits for exit, at most `timeout` seconds (then kills); returns the status.
  func wait(_ timeout: Double) -> Int32 {
    let deadline = Date(timeIntervalSinceNow: timeout)
    while process.isRunning && Date() < deadline { usleep(50_000) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    return process.terminationStatus
  }

  func signal(_ s: Int32) { kill(process.processIdentifier, s) }

  deinit {
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    for path in [errPath, outPath, readyPath] { try? FileManager.default.removeItem(atPath: path) }
  }

  /// The learner's ready file, once it is written (its endpoints are bound).
  var readyInfo: [String: Any]? {
    guard let data = FileManager.default.contents(atPath: readyPath) else { return nil }
    return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
  }

  /// Waits for the ready file, at most `timeout` seconds.
  func waitReady(_ timeout: Double) -> Bool {
    let deadline = Date(timeIntervalSinceNow: timeout)
    while Date() < deadline {
      if readyInfo != nil { return true }
      usleep(50_000)
    }
    return readyInfo != nil
  }

  /// The control endpoint from the ready file.
  var controlEndpoint: String? { readyInfo?["control"] as? String }
  /// The stats endpoint from the ready file.
  var statsURL: String? { readyInfo?["stats"] as? String }

  /// Waits until `/stats` shows at least `count` connected workers whose ids are
  /// above `after` (a worker that joined after that one), at most `timeout` seconds.
  func waitForWorkers(_ count: Int, after: Int = 0, _ timeout: Double) -> Bool {
    waitForStats(timeout) { d in d.workers.filter { $0.state == "connected" && $0.id > after }.count >= count }
  }

  /// The learner's `/stats` now (nil when it does not answer).
  var stats: StatsDocument? {
    guard let url = statsURL, let r = try? HTTPClient.get(url + "/stats", timeout: 2) else { return nil }
    return try? JSONDecoder().decode(StatsDocument.self, from: Data(r.body))
  }

  /// Waits until `/stats` satisfies `predicate`, at most `timeout` seconds.
  func waitForStats(_ timeout: Double, _ predicate: (StatsDocument) -> Bool) -> Bool {
    let deadline = Date(timeIntervalSinceNow: timeout)
    while Date() < deadline {
      if let d = stats, predicate(d) { return true }
      usleep(100_000)
    }
    return false
  }
}

/// The real binaries as separate processes on loopback.
@Suite(.serialized) struct DistributedTests {
  @Test func learnerAndTwoWorkersTrainAndAWorkerCanDieAndJoin() throws {
    let dir = HerdBinary.tempDir("dist")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let learner = try HerdProcess([
      "learner", "--env", "StatelessCartPole-v1", "--port", "0", "--run-dir", dir, "--stop-steps", "2500000", "--stop-seconds", "90",
    ])
    #expect(learner.waitReady(10), "\(learner.stderr)")
    let endpoint = try #require(learner.controlEndpoint)
    let a = try HerdProcess(["worker", "--learner", endpoint, "--seed", "1"])
    let b = try HerdProcess(["worker", "--learner", endpoint, "--seed", "2"])
    #expect(learner.waitForWorkers(2, 20), "\(learner.stderr)")
    #expect(learner.waitForStats(30) { $0.updates > 0 }, "\(learner.stderr)")
    // Kill one worker outright; training goes on with the other.
    a.signal(SIGKILL)
    _ = a.wait(5)
    let updatesBefore = learner.stats?.updates ?? 0
    #expect(learner.waitForStats(20) { $0.updates > updatesBefore + 50 }, "training goes on: \(learner.stderr.suffix(800))")
    // A new worker joins mid-run and gets the current weights in its welcome.
    let c = try HerdProcess(["worker", "--learner", endpoint, "--seed", "3"])
    #expect(learner.waitForWorkers(1, after: 2, 20), "a third worker joins: \(learner.stderr)")
    let joined = learner.stderr.components(separatedBy: "\n").first { $0.contains("worker 3 joined") } ?? ""
    #expect(!joined.hasSuffix("policy version 0"), "a late joiner starts from the current weights: \(joined)")
    #expect(learner.wait(120) == 0, "\(learner.stderr.suffix(2000))")
    let summary = try HerdBinary.json(dir + "/summary.json")
    #expect((summary["env_steps"] as? Int ?? 0) >= 2_500_000)
    #expect((summary["best_mean_return"] as? Double ?? 0) > 40, "\(summary)")
    #expect(FileManager.default.fileExists(atPath: dir + "/checkpoint.herd"))
    b.signal(SIGTERM)
    c.signal(SIGTERM)
    let (sb, sc) = (b.wait(15), c.wait(15))
    #expect(sb == 0 && sc == 0, "workers exit cleanly on SIGTERM: \(sb) \(sc)\n\(b.stderr.suffix(800))\n\(c.stderr.suffix(800))")
    for w in [b, c] {
      #expect(
        w.stderr.contains("env steps and") && w.stderr.contains("; said goodbye to \(endpoint)")
          && w.stderr.hasSuffix("worker: stopped\n"),
        "a stopped worker says what it did and that it stopped: \(w.stderr.suffix(600))")
    }
  }

  /// `herd train` killed outright (SIGKILL: it cannot stop its children) leaves no
  /// worker process behind: each watches its parent (`--parent-pid`) and stops by
  /// itself, where before they retried the dead learner for ever.
  @Test func workersEndWithAKilledTrain() throws {
    let dir = HerdBinary.tempDir("killed")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let train = try HerdProcess([
      "train", "--env", "MemoryChain-v0", "--workers", "2", "--run-dir", dir, "--stop-seconds", "60", "--no-stats",
    ])
    let pid = train.process.processIdentifier
    #expect(train.waitFor(30) { $0.contains("worker 2 joined") }, "\(train.stderr)")
    let workers = childPIDs(of: pid)
    defer { for w in workers where processAlive(w) { kill(w, SIGKILL) } }
    #expect(workers.count == 2, "\(workers)")
    train.signal(SIGKILL)
    _ = train.wait(5)
    #expect(waitUntil(15) { !workers.contains(where: processAlive) }, "workers left running: \(workers.filter(processAlive))")
  }

  @Test func aKilledLearnerResumesAndWorkersReconnectByThemselves() throws {
    let dir = HerdBinary.tempDir("resume")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let port = freePortBlock()
    let common = ["--env", "MemoryChain-v0", "--port", String(port), "--run-dir", dir, "--set", "checkpoint_interval_seconds=1"]
    let first = try HerdProcess(["learner"] + common + ["--stop-seconds", "60"])
    #expect(first.waitReady(10), "\(first.stderr)")
    let worker = try HerdProcess(["worker", "--learner", "tcp://127.0.0.1:\(port)", "--seed", "1"])
    #expect(first.waitForWorkers(1, 20), "\(first.stderr)")
    // Let it train and checkpoint, then kill it without warning.
    Thread.sleep(forTimeInterval: 3)
    first.signal(SIGKILL)
    _ = first.wait(5)
    let checkpoint = try TensorArchive.read(from: dir + "/checkpoint.herd")
    let version = Int(checkpoint.metadata["policy_version"] ?? "") ?? 0
    #expect(version > 0)
    // Restart with --resume on the same port: the worker finds it again by itself.
    let second = try HerdProcess(["learner"] + common + ["--resume", "--stop-seconds", "8"])
    #expect(second.waitFor(10) { $0.contains("resumed from") }, "\(second.stderr)")
    #expect(second.waitReady(10) && second.waitForWorkers(1, 30), "the worker says hello again: \(second.stderr)")
    #expect(second.wait(60) == 0, "\(second.stderr.suffix(2000))")
    let summary = try HerdBinary.json(dir + "/summary.json")
    #expect((summary["updates"] as? Int ?? 0) > version, "training continued from the checkpoint's version \(version)")
    worker.signal(SIGTERM)
    let status = worker.wait(15)
    #expect(status == 0, "status \(status): \(worker.stderr.suffix(1500))")
    #expect(!worker.stderr.contains("Fatal error"))
  }
}

/// A worker outlives its learner: once the learner's run ends, the worker says so
/// within seconds (the connection closed and stayed closed), goes back to saying
/// hello, and joins the next learner on that address by itself. It used to wait
/// silently for room in a fragment channel that no one read.
@Suite(.serialized) struct LearnerGoneTests {
  @Test func aWorkerOutlivesItsLearnerAndJoinsTheNext() throws {
    let port = freePortBlock()
    let dirs = [HerdBinary.tempDir("next-a"), HerdBinary.tempDir("next-b")]
    defer { for d in dirs { try? FileManager.default.removeItem(atPath: d) } }
    let common = ["learner", "--env", "MemoryChain-v0", "--port", String(port), "--no-stats", "--stop-steps", "20000"]
    let first = try HerdProcess(common + ["--run-dir", dirs[0]])
    #expect(first.waitReady(10), "\(first.stderr)")
    let worker = try HerdProcess(["worker", "--learner", "tcp://127.0.0.1:\(port)", "--seed", "1"])
    #expect(first.wait(60) == 0, "the first run ends by itself: \(first.stderr.suffix(1500))")
    #expect(
      worker.waitFor(30) { $0.contains("has not come back") && $0.contains("no answer from tcp://127.0.0.1:\(port)") },
      "the worker says the learner is gone and says hello again: \(worker.stderr.suffix(1500))")
    #expect(processAlive(worker.process.processIdentifier), "the worker waits for the next learner")
    let second = try HerdProcess(common + ["--run-dir", dirs[1]])
    #expect(second.wait(60) == 0, "the worker joins the next run, which ends: \(second.stderr.suffix(1500))")
    #expect(second.stderr.contains("worker 1 joined"), "\(second.stderr.suffix(1500))")
    #expect(worker.stderr.components(separatedBy: "welcomed by tcp://127.0.0.1:\(port)").count == 3, "\(worker.stderr)")
    worker.signal(SIGTERM)
    let status = worker.wait(15)
    #expect(status == 0, "status \(status): \(worker.stderr.suffix(1500))")
  }
}

/// `--resume-if-present` (for services that restart): fresh without a checkpoint,
/// resumed with one.
@Suite(.serialized) struct ResumeIfPresentTests {
  @Test func startsFreshThenResumes() throws {
    let dir = HerdBinary.tempDir("resume-if")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let args = ["learner", "--env", "MemoryChain-v0", "--port", "0", "--no-stats", "--run-dir", dir, "--resume-if-present"]
    let first = try HerdProcess(args)
    #expect(first.waitReady(10), "\(first.stderr)")
    #expect(!first.stderr.contains("resumed from"))
    // The model exists once a worker has described its environments.
    let worker = try HerdProcess(["worker", "--learner", try #require(first.controlEndpoint)])
    #expect(first.waitFor(20) { $0.contains("worker 1 joined") }, "\(first.stderr)")
    first.signal(SIGTERM)
    #expect(first.wait(20) == 0)
    worker.signal(SIGTERM)
    _ = worker.wait(10)
    #expect(FileManager.default.fileExists(atPath: dir + "/checkpoint.herd"), "a stopped learner leaves its checkpoint")
    let second = try HerdProcess(args)
    #expect(second.waitFor(10) { $0.contains("resumed from") }, "\(second.stderr)")
    second.signal(SIGTERM)
    #expect(second.wait(20) == 0)
    let bad = try HerdBinary.run(["learner", "--resume-if-present", "--port", "0"], timeout: 10)
    #expect(bad.status != 0 && bad.stderr.contains("--resume needs --run-dir"))
  }

  /// `herd train --resume` continues a stopped run from its own config.json: the
  /// policy version and the env steps go on from the checkpoint, and --stop-steps
  /// counts the whole run. Another model or environment is refused by name.
  @Test func trainResumesItsRun() throws {
    let dir = HerdBinary.tempDir("train-resume")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let args = ["train", "--env", "MemoryChain-v0", "--no-stats", "--run-dir", dir, "--seed", "1"]
    let first = try HerdBinary.run(args + ["--stop-steps", "20000"], timeout: 60)
    #expect(first.status == 0, "\(first.stderr.suffix(1500))")
    #expect(
      first.stderr.contains("worker 1: welcomed by") && !first.stderr.contains("said goodbye")
        && !first.stderr.contains("worker: stopped"),
      "herd train's workers stop without a word (the summary follows): \(first.stderr.suffix(600))")
    let before = try HerdBinary.json(dir + "/summary.json")
    let (steps, updates) = (before["env_steps"] as? Int ?? 0, before["updates"] as? Int ?? 0)
    #expect(steps >= 20000 && updates > 0)
    // Another model than the run's: refused, naming the key and the run's own config.
    // A key the run's config.json lacks (a version from before the key) is not a
    // difference: it has the value a resume gives it.
    var older = try HerdBinary.json(dir + "/config.json")
    older.removeValue(forKey: "episode_info_keys")
    try JSONSerialization.data(withJSONObject: older).write(to: URL(fileURLWithPath: dir + "/config.json"))
    let other = try HerdBinary.run(args + ["--resume", "--set", "lstm_cell_size=32", "--stop-steps", "40000"], timeout: 60)
    #expect(
      other.status != 0 && other.stderr.contains("differs from the run's in lstm_cell_size (the run: 64, now: 32). To")
        && other.stderr.contains("its own config, \(dir)/config.json"), "\(other.stderr.suffix(1500))")
    // Another environment than the run's: refused before anything starts.
    let elsewhere = try HerdBinary.run(
      ["train", "--env", "CartPole-v1", "--no-stats", "--run-dir", dir, "--resume", "--stop-steps", "40000"], timeout: 60)
    #expect(
      elsewhere.status != 0
        && elsewhere.stderr.contains("--env CartPole-v1: the run in \(dir) trained MemoryChain-v0"),
      "\(elsewhere.stderr.suffix(1500))")
    // Neither --env nor --seed: the run's own config.json is the base (the default
    // environment's preset would not fit the checkpoint), --workers on top of it.
    let second = try HerdBinary.run(
      ["train", "--no-stats", "--run-dir", dir, "--resume", "--workers", "1", "--stop-steps", "40000"], timeout: 60)
    #expect(second.status == 0, "\(second.stderr.suffix(1500))")
    #expect(
      second.stderr.contains("resuming with the run's config \(dir)/config.json, then --workers 1"),
      "\(second.stderr.prefix(1500))")
    #expect(second.stderr.contains("resumed from") && second.stderr.contains("policy version \(updates)"), "\(second.stderr.prefix(1500))")
    let after = try HerdBinary.json(dir + "/summary.json")
    #expect((after["env_steps"] as? Int ?? 0) >= 40000 && (after["env_steps"] as? Int ?? 0) < 40000 + steps)
    #expect((after["updates"] as? Int ?? 0) > updates, "\(after)")
    let bad = try HerdBinary.run(["train", "--env", "MemoryChain-v0", "--resume"], timeout: 10)
    #expect(bad.status != 0 && bad.stderr.contains("--resume needs --run-dir"))
    // No run to continue: said at once, and nothing is made (no folder, no file).
    let missing = dir + "-missing"
    let none = try HerdBinary.run(["train", "--run-dir", missing, "--resume", "--no-stats"], timeout: 10)
    #expect(
      none.status != 0 && none.stderr.contains("cannot resume \(missing): no such directory")
        && !none.stderr.contains("training StatelessCartPole-v1"), "\(none.stderr)")
    #expect(!FileManager.default.fileExists(atPath: missing))
    let empty = dir + "-empty"
    try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: empty) }
    let train = try HerdBinary.run(["train", "--run-dir", empty, "--resume", "--no-stats"], timeout: 10)
    let learner = try HerdBinary.run(["learner", "--run-dir", empty, "--resume", "--no-stats", "--port", "0"], timeout: 10)
    for (command, r) in [("train", train), ("learner", learner)] {
      #expect(r.status != 0 && r.stderr.contains("cannot resume \(empty): it holds no checkpoint.herd"), "\(command): \(r.stderr)")
    }
    #expect(try FileManager.default.contentsOfDirectory(atPath: empty).isEmpty)
  }
}
