import Foundation
import HerdNN
import Testing

@testable import HerdLearner
@testable import HerdRL
@testable import HerdStats

/// A small tmpfs mounted for one test (root only), with a filler file that takes
/// every free byte.
struct TinyDisk {
  let path: String

  static var canMount: Bool { getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/bin/mount") }

  init(megabytes: Int) throws {
    path = NSTemporaryDirectory() + "herd-tinydisk-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    try Self.sh("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path])
  }

  /// Fills the disk to the last byte.
  func fill() {
    let fd = open(path + "/filler", O_WRONLY | O_CREAT | O_APPEND, 0o644)
    let chunk = [UInt8](repeating: 7, count: 4096)
    while chunk.withUnsafeBytes({ write(fd, $0.baseAddress, 4096) }) > 0 {}
    var one: UInt8 = 1
    while write(fd, &one, 1) > 0 {}
    close(fd)
  }

  func free() { unlink(path + "/filler") }

  func unmount() {
    try? Self.sh("/bin/umount", [path])
    try? FileManager.default.removeItem(atPath: path)
  }

  static func sh(_ exe: String, _ args: [String]) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw RunDirectoryError("\(exe) \(args) exited \(p.terminationStatus)") }
  }
}

@Suite(.serialized) struct FullDiskTests {
  /// The run folder's disk is full before the first checkpoint: the learner keeps
  /// training, says so (status `degraded`, the reason, a log line), writes no half
  /// progress line, and once space returns writes config.json and the checkpoint.
  /// (It used to die with SIGILL in FileHandle.write, leaving no checkpoint.)
  @Test(.enabled(if: TinyDisk.canMount || ProcessInfo.processInfo.environment["HERD_REQUIRE_TOOLS"] == "1"))
  func aFullDiskDoesNotStopTraining() throws {
    let disk = try TinyDisk(megabytes: 2)
    defer { disk.unmount() }
    let dir = disk.path + "/run"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    disk.fill()

    let daemon = DaemonThread.memoryChain(in: dir, checkpointSeconds: 1, milestoneSteps: 100_000)
    defer { daemon.stop() }
    let (logs, board, result) = (daemon.logs, daemon.board, daemon.result)
    // A milestone the disk refuses is said, and tried again once there is space.
    _ = try waitFor(seconds: 30) { logs.all.contains { $0.contains("/milestones/") && $0.contains("No space left") } ? true : nil }
    // Degraded, with the reason, while the disk is full.
    let full = try waitFor(seconds: 20) { board.get()?.status.flatMap { $0.updates > 0 ? $0.diskError : nil } }
    #expect(full.contains("No space left on device"), "\(full)")
    let health = Health.judge(
      status: board.get()?.status, uptime: 5, secondsSinceBeat: 0, secondsSinceFragments: 0, workersConnected: 1,
      stallSeconds: 30)
    #expect(health.status == "degraded" && health.healthy && health.reason.contains("No space left"))
    #expect(logs.all.contains {
      $0.hasPrefix("error") && $0.contains("No space left") && $0.contains("training goes on")
        && $0.contains("no checkpoint has been written yet")
    })
    #expect(!FileManager.default.fileExists(atPath: dir + "/checkpoint.herd"))

    // Space again: the retried writes land.
    disk.free()
    _ = try waitFor(seconds: 20) { board.get()?.status.flatMap { $0.diskError == nil ? true : nil } }
    #expect(FileManager.default.fileExists(atPath: dir + "/config.json"))
    let archive = try TensorArchive.read(from: dir + "/checkpoint.herd")
    #expect(try CheckpointCounters(archive, source: "checkpoint").policyVersion > 0)
    #expect(logs.all.contains { $0.contains("writable again") })
    let milestone = try waitFor(seconds: 20) {
      ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/milestones")) ?? []).first { $0.hasSuffix(".herd") }
    }
    #expect(try TensorArchive.read(from: dir + "/milestones/" + milestone).metadata["milestone_env_steps"] != nil)

    // Full again mid-run: the last good checkpoint stays whole and loadable.
    disk.fill()
    _ = try waitFor(seconds: 20) { board.get()?.status?.diskError }
    daemon.stop()
    let summary = try #require(try result.get()?.get())
    #expect(summary.disk_error != nil, "the final checkpoint could not be written, and the summary says so")
    let kept = try TensorArchive.read(from: dir + "/checkpoint.herd")
    let keptVersion = try CheckpointCounters(kept, source: "checkpoint").policyVersion
    #expect(keptVersion > 0)
    // The log names the checkpoint that stays, and at the end what was lost.
    #expect(logs.all.contains { $0.contains("training goes on, the last good checkpoint (policy version ") })
    let lost = logs.all.filter { $0.contains("the final checkpoint was not written") }
    #expect(lost.count == 1, "\(lost)")
    #expect(
      lost.first?.contains("\(dir)/checkpoint.herd holds policy version \(keptVersion) of ") == true
        && lost.first?.contains("--resume continues from it") == true, "\(lost)")
    #expect(!logs.all.contains { $0.contains("retried") && $0.contains("final") })
    // Every progress line is whole JSON.
    let text = try String(contentsOfFile: dir + "/progress.jsonl", encoding: .utf8)
    for line in text.split(separator: "\n") {
      #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) != nil, "half a line: \(line.prefix(80))")
    }
    #expect(text.isEmpty || text.hasSuffix("\n"))
    // The TensorBoard events too: one file, whole records only.
    let events = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("events.out.tfevents.") }
    #expect(events.count == 1, "\(events)")
    for name in events { #expect(try tfRecords(dir + "/" + name).count >= 2) }
  }
}

extension FullDiskTests {
  /// The run folder removed mid-run (`rm -rf`): one line says so, not one per file
  /// nor advice to free space, training goes on, and the end says the run cannot be
  /// resumed rather than naming a checkpoint that went with the folder.
  @Test func aRemovedRunFolderIsSaidOnceAndTheEndSaysTheRunIsLost() throws {
    let dir = NSTemporaryDirectory() + "herd-removed-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let daemon = DaemonThread.memoryChain(in: dir, checkpointSeconds: 0.5)
    defer { daemon.stop() }
    let (logs, board, result) = (daemon.logs, daemon.board, daemon.result)
    let written = try? waitFor(seconds: 20) { FileManager.default.fileExists(atPath: dir + "/checkpoint.herd") ? true : nil }
    try #require(written != nil, "no checkpoint: \(logs.all)")
    // Gone at once, as `rm -rf` leaves it: renamed aside, then emptied there, so a
    // checkpoint written meanwhile (by its path) cannot add a file to a folder being
    // removed (FileManager's removal then fails: a flaky test, not the daemon).
    let aside = dir + ".removed"
    defer { try? FileManager.default.removeItem(atPath: aside) }
    try #require(rename(dir, aside) == 0, "rename: \(String(cString: strerror(errno)))")
    try FileManager.default.removeItem(atPath: aside)
    let failed = try? waitFor(seconds: 20) { board.get()?.status?.diskError }
    try #require(failed != nil, "no failed write; the folder holds \((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])")
    usleep(1_500_000)  // more checkpoints and progress records fail meanwhile
    daemon.stop()
    #expect(try result.get()?.get().disk_error != nil)
    let removed = logs.all.filter { $0.contains("the run directory \(dir) was removed while this run trained") }
    #expect(removed.count == 2, "the failure once, the lost final checkpoint once: \(removed)")
    #expect(removed.first?.contains("nothing more of it can be saved") == true, "\(removed)")
    #expect(removed.last?.contains("the final checkpoint was not written") == true, "\(removed)")
    #expect(removed.last?.contains("cannot be resumed") == true, "\(removed)")
    #expect(!logs.all.contains { $0.contains("free space") || $0.contains("writes are retried") }, "\(logs.all)")
    #expect(!FileManager.default.fileExists(atPath: dir), "nothing made the folder again")
  }

  /// A folder removed and made again (another run's, say) is not this run's.
  @Test func aRunDirectoryKnowsWhenItsFolderIsGone() throws {
    let dir = NSTemporaryDirectory() + "herd-gone-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let run = try RunDirectory(path: dir)
    #expect(run.whatBecameOfIt == nil)
    try FileManager.default.removeItem(atPath: dir)
    #expect(run.whatBecameOfIt == "the run directory \(dir) was removed while this run trained")
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    FileManager.default.createFile(atPath: dir + "/progress.jsonl", contents: Data())
    #expect(run.whatBecameOfIt?.contains("is not this run's folder any more") == true)
  }
}

/// A learner daemon (with in-process workers) on a thread of its own: its logs,
/// its status board once it is ready, and its summary once it returns.
struct DaemonThread {
  let logs = CollectedLogs()
  let board = SharedBoard()
  let result = SharedResult()
  let interrupted = StopFlag()
  let thread: JoinableThread

  init(config: TrainingConfig, settings: LearnerSettings) {
    let (logs, board, result, interrupted) = (logs, board, result, interrupted)
    thread = JoinableThread(name: "test-daemon") {
      do {
        let s = try LearnerDaemon(config: config, settings: settings, logger: logs.logger()).run(
          interrupted: interrupted
        ) { board.set($0.status) }
        result.set(.success(s))
      } catch {
        result.set(.failure(error))
      }
    }
  }

  /// A MemoryChain run in `dir`: one in-process worker of 8 environments, a
  /// progress record every 0.5 s, a checkpoint every `checkpointSeconds`, 60 s at most.
  static func memoryChain(in dir: String, checkpointSeconds: Double, milestoneSteps: Int = 0) -> DaemonThread {
    var config = TrainingConfig.defaults(for: "MemoryChain-v0")
    config.checkpoint_milestone_env_steps = milestoneSteps
    config.num_envs_per_worker = 8
    config.checkpoint_interval_seconds = checkpointSeconds
    config.progress_interval_seconds = 0.5
    var settings = LearnerSettings(runDirectory: dir, stop: StopCriteria(seconds: 60))
    settings.inProcessWorkers = 1
    return DaemonThread(config: config, settings: settings)
  }

  /// Asks the daemon to stop and waits for it (again: returns at once).
  func stop() {
    interrupted.set()
    thread.join()
  }
}

/// Polls `probe` every 0.1 s until it gives a value, failing after `seconds`.
func waitFor<T>(seconds: Double, _ probe: () -> T?) throws -> T {
  let deadline = Date(timeIntervalSinceNow: seconds)
  while Date() < deadline {
    if let v = probe() { return v }
    usleep(100_000)
  }
  throw RunDirectoryError("timed out after \(seconds) s")
}

final class SharedBoard: @unchecked Sendable {
  private let lock = NSLock()
  private var board: StatusBoard?
  func set(_ b: StatusBoard) { lock.withLock { board = b } }
  func get() -> StatusBoard? { lock.withLock { board } }
}

final class SharedResult: @unchecked Sendable {
  private let lock = NSLock()
  private var value: Result<RunSummary, any Error>?
  func set(_ r: Result<RunSummary, any Error>) { lock.withLock { value = r } }
  func get() -> Result<RunSummary, any Error>? { lock.withLock { value } }
}
