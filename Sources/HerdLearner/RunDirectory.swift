import Foundation
import HerdNN
import HerdRL
import HerdStats

#if canImport(Glibc)
  import Glibc
#endif

/// A write to the run directory that failed (the disk is full, the folder went
/// away...): names the file and the system's reason.
public struct RunDirectoryError: Error, CustomStringConvertible, Equatable {
  public let description: String
  init(_ d: String) { description = d }
}

/// A run's folder: `config.json` (the config used), `progress.jsonl` (one JSON
/// object per progress interval), `checkpoint.herd` (parameters, optimiser state,
/// counters and config), `best.herd` (the weights that played the episodes of the
/// best 100-episode mean return, without optimiser state) and `summary.json` at the
/// end.
///
/// Every write reports failure as a ``RunDirectoryError`` instead of ending the
/// process: files are replaced atomically (temporary file, fsync, rename; the
/// temporary file removed on failure, so a full disk leaves the last good file
/// intact), and a progress record that cannot be written whole is cut back off,
/// so `progress.jsonl` never ends in half a line.
public final class RunDirectory: Sendable {
  /// The folder.
  public let path: String
  private let progressFD: Int32
  /// Temporary files (`NAME.tmp.PID`) that a process no longer running left
  /// behind, removed when the folder was opened (killed outright mid-write, its
  /// file was never renamed into place; the file it was replacing is intact).
  public let removedTemporaries: [String]

  /// Creates the folder (and parents), opens `progress.jsonl` for appending and
  /// locks it until ``release()`` or this object goes, then removes temporary files that
  /// processes no longer running left in the folder.
  ///
  /// The lock (`flock`, exclusive) keeps a second run out of a folder in use: two
  /// learners in one folder would interleave their progress records and overwrite
  /// each other's checkpoints. A file system without `flock` runs unlocked.
  public init(path: String) throws {
    self.path = path
    do {
      try Folders.create(path)
    } catch let error as FolderError {
      throw RunDirectoryError("--run-dir \(path): cannot create the folder (\(error.reason))")
    }
    let progress = (path as NSString).appendingPathComponent("progress.jsonl")
    let fd = open(progress, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw RunDirectoryError("cannot open \(progress): \(Self.errnoText())") }
    if flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK {
      close(fd)
      throw RunDirectoryError(
        "--run-dir \(path) is in use by another run (its progress.jsonl is locked): stop that run first, or give another --run-dir")
    }
    progressFD = fd
    removedTemporaries = Self.removeStaleTemporaries(in: path)
  }

  deinit { close(progressFD) }

  /// Lets another run have the folder now: unlocks `progress.jsonl` (the file
  /// stays open until this object goes). A learner calls it when its run has
  /// ended, so a run resumed right after it in the same process does not find
  /// the folder locked by a service closure not yet released.
  public func release() { flock(progressFD, LOCK_UN) }

  /// Nil while the folder this object opened is still at ``path``; else what
  /// became of it, for the log: removed while the run trained (`rm -rf` of the
  /// run folder, whose open `progress.jsonl` still takes writes nobody will
  /// read), or replaced by another folder or another `progress.jsonl`.
  public var whatBecameOfIt: String? {
    var opened = stat()
    var there = stat()
    guard fstat(progressFD, &opened) == 0 else { return nil }
    if stat(path, &there) != 0 { return "the run directory \(path) was removed while this run trained" }
    let progress = file("progress.jsonl")
    if stat(progress, &there) != 0 || there.st_ino != opened.st_ino || there.st_dev != opened.st_dev {
      return "\(progress) was removed or replaced while this run trained: \(path) is not this run's folder any more"
    }
    return nil
  }

  /// Removes `NAME.tmp.PID` files of ``writeFile(_:bytes:)`` in `folder` whose
  /// process is gone (`kill(PID, 0)` fails with ESRCH); a live process's are its
  /// writes in progress and stay. Returns the names removed.
  static func removeStaleTemporaries(in folder: String) -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
    var removed: [String] = []
    for name in names.sorted() {
      guard let marker = name.range(of: ".tmp.", options: .backwards), marker.lowerBound > name.startIndex,
        let pid = Int32(name[marker.upperBound...]), pid > 0
      else { continue }
      guard kill(pid, 0) == -1 && errno == ESRCH else { continue }
      if unlink((folder as NSString).appendingPathComponent(name)) == 0 { removed.append(name) }
    }
    return removed
  }

  /// Path of a file in the run folder.
  public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

  /// For a new run in a folder that has no checkpoint but another run's records
  /// (that run stopped, or was killed, before its first checkpoint, or its
  /// checkpoint was removed by hand; it cannot be resumed): empties `progress.jsonl`
  /// and removes that run's `summary.json`, `best.herd`, evaluations (`evaluations.jsonl`,
  /// `best_eval.herd`), milestones and TensorBoard event files,
  /// so the new run's curves and record are its own, not mixed with another's.
  /// Returns the names emptied or removed (nothing else in the folder is touched).
  public func clearPreviousRun() -> [String] {
    var cleared: [String] = []
    if lseek(progressFD, 0, SEEK_END) > 0 && ftruncate(progressFD, 0) == 0 { cleared.append("progress.jsonl") }
    let names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    for name in names
    where ["summary.json", "best.herd", Self.evaluationsFile, Self.bestEvaluationFile].contains(name)
      || name.hasPrefix("events.out.tfevents.")
    {
      if unlink(file(name)) == 0 { cleared.append(name) }
    }
    // The old run's milestones (its own files only; the folder goes when that empties it).
    let milestones = file(Self.milestoneFolder)
    let kept = ((try? FileManager.default.contentsOfDirectory(atPath: milestones)) ?? []).sorted()
    let removed = kept.filter { $0.hasSuffix(".herd") && unlink(milestones + "/" + $0) == 0 }
    if !removed.isEmpty {
      cleared.append("\(Self.milestoneFolder)/ (\(removed.count) file(s))")
      rmdir(milestones)
    }
    return cleared
  }

  /// One line per evaluation of the learner's weights (`evaluation_interval_env_steps`).
  public static let evaluationsFile = "evaluations.jsonl"
  /// The weights of the best evaluation so far.
  public static let bestEvaluationFile = "best_eval.herd"

  /// Appends one evaluation to `evaluations.jsonl`, whole or not at all.
  public func appendEvaluation(_ record: [String: Any]) throws {
    let path = file(Self.evaluationsFile)
    guard
      let data = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys, .withoutEscapingSlashes])
    else { throw RunDirectoryError("an evaluation record is not JSON: \(record)") }
    let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw RunDirectoryError("cannot append to \(path): \(Self.errnoText())") }
    defer { close(fd) }
    let before = lseek(fd, 0, SEEK_END)
    if !Self.writeAll(fd, Array(data) + [10]) {
      let why = Self.errnoText()
      if before >= 0 { _ = ftruncate(fd, before) }  // no half line left behind
      throw RunDirectoryError("cannot append to \(path): \(why)")
    }
  }

  /// The evaluations of `evaluations.jsonl`, oldest first (lines that are not
  /// records are skipped): a resumed run goes on with its latest and best.
  public func evaluations() -> [EvaluationFigures] {
    guard let data = FileManager.default.contents(atPath: file(Self.evaluationsFile)) else { return [] }
    return data.split(separator: 10).compactMap { line in
      (try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any]).flatMap(Self.evaluation)
    }
  }

  /// Keeps in `evaluations.jsonl` only the evaluations that finished by `seconds` of
  /// run time (on resume, as ``dropProgress(after:)`` does for progress records).
  /// Returns how many went.
  public func dropEvaluations(after seconds: Double) throws -> Int {
    guard let data = FileManager.default.contents(atPath: file(Self.evaluationsFile)) else { return 0 }
    let lines = data.split(separator: 10)
    let kept = lines.filter { line in
      guard let r = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else { return true }
      return ((r[MetricKey.wallSeconds] as? NSNumber)?.doubleValue ?? 0) <= seconds
    }
    guard kept.count < lines.count else { return 0 }
    try writeAtomically(Self.evaluationsFile, kept.map { String(decoding: $0, as: UTF8.self) + "\n" }.joined())
    return lines.count - kept.count
  }

  /// The `evaluations.jsonl` record of `e` (the names of ``MetricKey``).
  public static func evaluationRecord(_ e: EvaluationFigures) -> [String: Any] {
    func number(_ x: Double?) -> Any { x.flatMap { $0.isFinite ? $0 : nil } ?? NSNull() }
    var record: [String: Any] = [
      MetricKey.wallSeconds: e.wallSeconds, MetricKey.evaluationPolicyVersion: e.policyVersion,
      MetricKey.evaluationEnvSteps: e.envSteps, MetricKey.evaluationSeconds: e.seconds,
      MetricKey.evaluationEpisodes: e.episodes, MetricKey.evaluationGreedy: e.greedy,
      MetricKey.evaluationReturnMean: number(e.returnMean), MetricKey.evaluationReturnStd: number(e.returnStd),
      MetricKey.evaluationReturnMin: number(e.returnMin), MetricKey.evaluationReturnMax: number(e.returnMax),
      MetricKey.evaluationLengthMean: number(e.lengthMean),
    ]
    for (key, v) in e.info { record[MetricKey.evaluationInfo(key)] = number(v) }
    return record
  }

  /// The evaluation an `evaluations.jsonl` record holds (nil when it is not one).
  static func evaluation(_ r: [String: Any]) -> EvaluationFigures? {
    func double(_ key: String) -> Double? { (r[key] as? NSNumber)?.doubleValue }
    guard let version = (r[MetricKey.evaluationPolicyVersion] as? NSNumber)?.intValue,
      let steps = (r[MetricKey.evaluationEnvSteps] as? NSNumber)?.intValue,
      let t = double(MetricKey.wallSeconds)
    else { return nil }
    var e = EvaluationFigures(
      policyVersion: version, envSteps: steps, wallSeconds: t, seconds: double(MetricKey.evaluationSeconds) ?? 0,
      episodes: (r[MetricKey.evaluationEpisodes] as? NSNumber)?.intValue ?? 0,
      greedy: (r[MetricKey.evaluationGreedy] as? Bool) ?? true, returnMean: double(MetricKey.evaluationReturnMean),
      returnStd: double(MetricKey.evaluationReturnStd), returnMin: double(MetricKey.evaluationReturnMin),
      returnMax: double(MetricKey.evaluationReturnMax), lengthMean: double(MetricKey.evaluationLengthMean))
    let prefix = MetricKey.evaluationInfo("")
    for (key, value) in r where key.hasPrefix(prefix) {
      e.info[String(key.dropFirst(prefix.count))] = .some((value as? NSNumber)?.doubleValue)
    }
    return e
  }

  /// The folder of a run's milestone policies (`checkpoint_milestone_env_steps`).
  public static let milestoneFolder = "milestones"

  /// The name of the milestone policy at `steps` env steps, within the run folder.
  public static func milestoneName(_ steps: Int) -> String { "\(milestoneFolder)/\(steps).herd" }

  /// Makes the milestones folder when it is missing (not the run folder itself: a
  /// removed run folder stays removed).
  public func makeMilestoneFolder() throws {
    let folder = file(Self.milestoneFolder)
    guard mkdir(folder, 0o755) == 0 || errno == EEXIST else {
      throw RunDirectoryError("cannot make \(folder): \(Self.errnoText())")
    }
  }

  /// Writes `text` to `name` atomically (temporary file, fsync, rename).
  public func writeAtomically(_ name: String, _ text: String) throws {
    try Self.writeFile(file(name), bytes: Array(text.utf8))
  }

  /// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename.
  /// A reader sees the old file or the whole new one; a failure leaves no temporary file.
  public static func writeFile(_ path: String, bytes: [UInt8]) throws {
    let tmp = path + ".tmp.\(getpid())"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw RunDirectoryError("cannot write \(path): \(errnoText())") }
    let failure = writeAll(fd, bytes) ? (fsync(fd) == 0 ? nil : errnoText()) : errnoText()
    close(fd)
    if let failure {
      unlink(tmp)
      throw RunDirectoryError("cannot write \(path): \(failure)")
    }
    guard rename(tmp, path) == 0 else {
      let why = errnoText()
      unlink(tmp)
      throw RunDirectoryError("cannot replace \(path): \(why)")
    }
  }

  /// Appends one record to `progress.jsonl`, whole or not at all.
  public func appendProgress(_ record: [String: Any]) throws {
    guard
      let data = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys, .withoutEscapingSlashes])
    else { throw RunDirectoryError("a progress record is not JSON: \(record)") }
    let before = lseek(progressFD, 0, SEEK_END)
    if !Self.writeAll(progressFD, Array(data) + [10]) {
      let why = Self.errnoText()
      if before >= 0 { _ = ftruncate(progressFD, before) }  // no half line left behind
      throw RunDirectoryError("cannot append to \(file("progress.jsonl")): \(why)")
    }
  }

  /// Removes from the end of `progress.jsonl` the records past `seconds` of run
  /// time: on resume, those of the training after the checkpoint, which the run
  /// lost and does again (kept, the file would hold two records for each of those
  /// seconds and run its clock backwards). They are the file's last lines, so only
  /// its tail is read (a week's run writes hundreds of megabytes); the file is cut
  /// in place (the lock is on it). Returns how many records went.
  public func dropProgress(after seconds: Double) throws -> Int {
    let size = Int(lseek(progressFD, 0, SEEK_END))
    let reader = open(file("progress.jsonl"), O_RDONLY | O_CLOEXEC)  // ours is write-only
    guard reader >= 0 else { throw RunDirectoryError("cannot read \(file("progress.jsonl")): \(Self.errnoText())") }
    defer { close(reader) }
    var tail: [UInt8] = []  // the file's bytes from `start` to its end
    var start = size
    func readBlock() throws {
      let n = min(start, 1 << 16)
      var block = [UInt8](repeating: 0, count: n)
      guard pread(reader, &block, n, off_t(start - n)) == n else {
        throw RunDirectoryError("cannot read \(file("progress.jsonl")): \(Self.errnoText())")
      }
      tail = block + tail
      start -= n
    }
    var end = size  // the length kept so far
    var dropped = 0
    while end > 0 {
      if start > end - 1 { try readBlock() }
      // The last line before `end`, its newline left out.
      let lineEnd = tail[end - 1 - start] == 10 ? end - 1 : end
      var lineStart = 0
      while true {
        if let i = tail[0..<(lineEnd - start)].lastIndex(of: 10) {
          lineStart = start + i + 1
          break
        }
        if start == 0 { break }
        try readBlock()
      }
      guard let r = (try? JSONSerialization.jsonObject(with: Data(tail[(lineStart - start)..<(lineEnd - start)])))
          as? [String: Any],
        let t = (r[MetricKey.wallSeconds] as? NSNumber)?.doubleValue, t > seconds
      else { break }
      dropped += 1
      end = lineStart
    }
    guard dropped > 0 else { return 0 }
    guard ftruncate(progressFD, off_t(end)) == 0 else {
      throw RunDirectoryError("cannot cut \(file("progress.jsonl")) back: \(Self.errnoText())")
    }
    return dropped
  }

  /// The learning curves of `progress.jsonl` up to `seconds` of run time, for a
  /// resumed run's dashboard: the records of the invocations before it (records
  /// written after the checkpoint it resumes from are of training it dropped, and
  /// are left out). Lines that are not records are skipped.
  public func progressHistory(upTo seconds: Double) -> [HistoryPoint] {
    guard let data = FileManager.default.contents(atPath: file("progress.jsonl")) else { return [] }
    var points: [HistoryPoint] = []
    for line in data.split(separator: 10) {
      guard let any = try? JSONSerialization.jsonObject(with: Data(line)), let r = any as? [String: Any],
        let t = (r[MetricKey.wallSeconds] as? NSNumber)?.doubleValue, t <= seconds,
        let steps = (r[MetricKey.envStepsSampled] as? NSNumber)?.intValue
      else { continue }
      func float(_ key: String) -> Float? { (r[key] as? NSNumber).map { $0.floatValue } }
      func double(_ key: String) -> Double { (r[key] as? NSNumber)?.doubleValue ?? 0 }
      func int(_ key: String) -> Int { (r[key] as? NSNumber)?.intValue ?? 0 }
      var point = HistoryPoint(
        wallSeconds: t, envSteps: steps, meanReturn: float(MetricKey.returnMean),
        sampledPerSecond: double(MetricKey.sampledPerSecond), trainedPerSecond: double(MetricKey.trainedPerSecond),
        policyLoss: float(MetricKey.lossPG), baselineLoss: float(MetricKey.lossBaseline),
        entropyLoss: float(MetricKey.lossEntropy), lagP50: int(MetricKey.lagP50), lagP95: int(MetricKey.lagP95))
      let prefix = MetricKey.episodeInfo("")
      for (key, value) in r where key.hasPrefix(prefix) {
        if let v = (value as? NSNumber)?.floatValue { point.episodeInfo[String(key.dropFirst(prefix.count))] = v }
      }
      point.evaluationReturn = float(MetricKey.evaluationReturnMean)
      points.append(point)
    }
    return points
  }

  /// Writes `checkpoint.herd` (or `name`): parameters, optimiser state, and
  /// `metadata` (plus the policy version, trained steps and config).
  ///
  /// With `weights` (an earlier version's parameters, as ``PublishedWeights`` keeps
  /// them) the file holds those, under their version, and no optimiser state: the
  /// optimiser's moments belong to the newest weights, and a run resumes from
  /// `checkpoint.herd`.
  public func writeCheckpoint(
    _ learner: Learner, metadata: [String: String], name: String = "checkpoint.herd",
    weights: (version: Int, values: [Float])? = nil
  ) throws {
    var meta = metadata
    meta[CheckpointKey.policyVersion] = String(weights?.version ?? learner.version)
    meta[CheckpointKey.trainedSteps] = String(learner.trainedSteps)
    meta[CheckpointKey.reusedSteps] = String(learner.reusedSteps)
    meta[CheckpointKey.config] = (try? learner.config.prettyJSON()) ?? ""
    if let stats = learner.observationStatistics { meta[CheckpointKey.observationStatistics] = try stats.json() }
    if let returns = learner.returnStatistics { meta[CheckpointKey.returnStatistics] = try returns.json() }
    do {
      let archive =
        weights.map { learner.parameters.archive(metadata: meta, values: $0.values) }
        ?? learner.parameters.archive(optimizer: learner.optimizer, metadata: meta)
      try archive.write(to: file(name))
    } catch {
      throw RunDirectoryError("cannot write the checkpoint: \(error)")
    }
  }

  /// Writes all of `bytes`; false (errno set) when the system refuses some.
  static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { raw in
      var done = 0
      while done < raw.count {
        let n = write(fd, raw.baseAddress! + done, raw.count - done)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 {
          if n == 0 { errno = ENOSPC }
          return false
        }
        done += n
      }
      return true
    }
  }

  static func errnoText() -> String { String(cString: strerror(errno)) }
}

/// The metadata keys of `checkpoint.herd`.
public enum CheckpointKey {
  public static let policyVersion = "policy_version"
  public static let trainedSteps = "trained_steps"
  /// Timesteps trained again (passes after the first, idle reuse); absent in
  /// checkpoints from before it was kept, read as 0.
  public static let reusedSteps = "reused_steps"
  public static let envSteps = "env_steps"
  public static let episodes = "episodes"
  /// `best.herd` only: the 100-episode mean return that made it the best.
  public static let bestMeanReturn = "best_mean_return"
  /// `best.herd` only: the learner's policy version when it saw the record. Its
  /// `policy_version` is that of the weights that played the record's episodes (the
  /// median of theirs), which the learner had moved past by the policy lag.
  public static let recordSeenAtVersion = "record_seen_at_policy_version"
  /// A milestone only: the 100-episode training mean return when it was kept
  /// (absent before 100 episodes).
  public static let meanReturn = "mean_return"
  /// A milestone only: the multiple of `checkpoint_milestone_env_steps` it stands for.
  public static let milestoneEnvSteps = "milestone_env_steps"
  /// `best_eval.herd` only: the evaluation that made it the best (its mean return,
  /// episodes, and whether greedy).
  public static let evaluationReturnMean = "evaluation_return_mean"
  public static let evaluationEpisodes = "evaluation_episodes"
  public static let evaluationGreedy = "evaluation_greedy"
  public static let config = "config"
  /// The observation filter's running statistics (JSON), with MeanStdFilter.
  public static let observationStatistics = "observation_statistics"
  /// `reward_scaling`'s return statistics (``ReturnStatistics/json()``).
  public static let returnStatistics = "return_statistics"
  /// Seconds the run had trained when the checkpoint was written, summed over
  /// every invocation of it: a resumed run's clock goes on from there.
  public static let wallSeconds = "wall_seconds"
  /// The returns (JSON array) of the episodes in the mean-return window, oldest
  /// first: a resumed run's mean goes on from them.
  public static let recentReturns = "recent_returns"
  /// Their lengths (JSON array), in the same order.
  public static let recentLengths = "recent_lengths"
  /// Each `episode_info_keys` entry's values in its window, oldest first (a JSON
  /// object of arrays): a resumed run's means go on from them.
  public static let recentEpisodeInfo = "recent_episode_info"
}

/// Where a run stood when a checkpoint was written: its clock, and the episodes of
/// its mean-return window. Read leniently: a checkpoint from before they were kept
/// reads as 0 s and an empty window (the resumed run then starts both again, as it
/// used to); a value that is there but malformed is an error that names it.
public struct CheckpointProgress: Equatable, Sendable {
  public var wallSeconds: Double
  public var returns: [Float]
  public var lengths: [Int]
  /// Each info key's window (``RunStats/recentInfo()``).
  public var episodeInfo: [String: [Float]]

  public init(wallSeconds: Double, returns: [Float], lengths: [Int], episodeInfo: [String: [Float]] = [:]) {
    precondition(returns.count == lengths.count, "one length per return")
    self.wallSeconds = wallSeconds
    // Non-finite returns cannot be written as JSON; they are left out with their lengths.
    let kept = zip(returns, lengths).filter { $0.0.isFinite }
    self.returns = kept.map(\.0)
    self.lengths = kept.map(\.1)
    self.episodeInfo = episodeInfo.mapValues { $0.filter(\.isFinite) }
  }

  /// Reads the values of `archive` (from `source`).
  public init(_ archive: TensorArchive, source: String) throws {
    let meta = archive.metadata
    var seconds = 0.0
    if let text = meta[CheckpointKey.wallSeconds] {
      guard let s = Double(text), s.isFinite, s >= 0 else {
        throw RunDirectoryError("\(source): \(CheckpointKey.wallSeconds) is \"\(text)\", not a number of seconds")
      }
      seconds = s
    }
    func array(_ key: String) throws -> [Double] {
      guard let text = meta[key] else { return [] }
      guard let any = try? JSONSerialization.jsonObject(with: Data(text.utf8)), let values = any as? [Double] else {
        throw RunDirectoryError("\(source): \(key) is not a JSON array of numbers")
      }
      return values
    }
    let returns = try array(CheckpointKey.recentReturns)
    let lengths = try array(CheckpointKey.recentLengths)
    guard returns.count == lengths.count else {
      throw RunDirectoryError(
        "\(source): \(returns.count) \(CheckpointKey.recentReturns) but \(lengths.count) \(CheckpointKey.recentLengths)")
    }
    var info: [String: [Float]] = [:]
    if let text = meta[CheckpointKey.recentEpisodeInfo] {
      guard let any = try? JSONSerialization.jsonObject(with: Data(text.utf8)), let object = any as? [String: [Double]]
      else { throw RunDirectoryError("\(source): \(CheckpointKey.recentEpisodeInfo) is not a JSON object of number arrays") }
      info = object.mapValues { $0.map { Float($0) } }
    }
    self.init(
      wallSeconds: seconds, returns: returns.map { Float($0) }, lengths: lengths.map { Int($0) }, episodeInfo: info)
  }

  /// The metadata entries a checkpoint stores these under.
  public var metadata: [String: String] {
    func json(_ values: [Any]) -> String {
      (try? JSONSerialization.data(withJSONObject: values)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
    }
    var entries = [
      CheckpointKey.wallSeconds: String(wallSeconds), CheckpointKey.recentReturns: json(returns.map { Double($0) }),
      CheckpointKey.recentLengths: json(lengths),
    ]
    if !episodeInfo.isEmpty,
      let data = try? JSONSerialization.data(
        withJSONObject: episodeInfo.mapValues { $0.map { Double($0) } }, options: [.sortedKeys])
    {
      entries[CheckpointKey.recentEpisodeInfo] = String(decoding: data, as: UTF8.self)
    }
    return entries
  }
}

/// The counters a checkpoint carries, read strictly: a checkpoint without them
/// cannot be resumed (it would silently start again from version 0).
public struct CheckpointCounters: Equatable, Sendable {
  public var policyVersion: Int
  public var trainedSteps: Int
  /// 0 when the checkpoint predates the key.
  public var reusedSteps: Int
  public var envSteps: Int
  public var episodes: Int

  /// Reads the counters of `archive` (from `source`), naming any that is missing or not a count.
  public init(_ archive: TensorArchive, source: String) throws {
    func count(_ key: String) throws -> Int {
      guard let text = archive.metadata[key] else {
        throw RunDirectoryError(
          "\(source) has no \(key) in its metadata: it is not a checkpoint Herd can resume (it would restart from version 0)"
        )
      }
      guard let n = Int(text), n >= 0 else { throw RunDirectoryError("\(source): \(key) is \"\(text)\", not a count") }
      return n
    }
    policyVersion = try count(CheckpointKey.policyVersion)
    trainedSteps = try count(CheckpointKey.trainedSteps)
    reusedSteps = archive.metadata[CheckpointKey.reusedSteps] == nil ? 0 : try count(CheckpointKey.reusedSteps)
    envSteps = try count(CheckpointKey.envSteps)
    episodes = try count(CheckpointKey.episodes)
  }
}

/// JSON helpers: finite numbers or null.
public func jsonNumber(_ x: Float?) -> Any {
  guard let x, x.isFinite else { return NSNull() }
  return Double(x)
}
