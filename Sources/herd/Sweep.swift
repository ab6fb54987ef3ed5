import ArgumentParser
import Foundation
import HerdLearner
import HerdRL
import HerdStats
import Synchronization

/// `herd sweep`: the same `herd train` over several seeds and settings, one child
/// process per run, and a table of what each setting reached (medians and ranges
/// over its seeds).
struct SweepCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sweep",
    abstract: "Train over several seeds and settings, and compare them.",
    discussion: """
      Runs `herd train` with the options after -- once per seed (--seeds) and
      per combination of the --vary values, each in a child process with its own
      run folder in the sweep folder, and prints a table: for each setting, how
      many runs reached the stop return, the env steps and seconds they took
      (median and range over the seeds), and the best and final 100-episode mean
      returns (and evaluations, when the runs evaluate). Runs go seed by seed,
      every setting of a seed before the next seed, so that a sweep cut short
      still compares its settings on the same seeds.

      Each run's log is SWEEP_DIR/NAME.log; SWEEP_DIR/sweep.json holds every
      run's summary and the table, rewritten as each run ends. Ctrl-C (or
      SIGTERM) stops the runs going cleanly (each writes its checkpoint) and
      prints the table of what finished; the same command with --sweep-dir
      SWEEP_DIR goes on: finished runs are kept, stopped ones resumed (their
      --stop-seconds counts again from the resume), the others started.

      Examples:
        herd sweep -- --env CartPole-v1 --stop-seconds 60
        herd sweep --seeds 1,2,3,4,5 --vary entropy_coeff=0.003,0.01,0.03 \\
          -- --env StatelessCartPole-v1 --stop-steps 2000000
        herd sweep --vary 'fcnet_hiddens=[64],[128,128]' --vary rnn_type=lstm,gru \\
          --parallel 2 -- --config configs/minigrid-memory.json --stop-seconds 600
      """)

  @Option(help: "Seeds, comma-separated: each setting trains once with each.")
  var seeds = "1,2,3"

  @Option(
    name: .customLong("vary"),
    help: ArgumentHelp(
      "A config key and its values to compare, the values in JSON separated by commas (commas inside brackets stay), e.g. --vary lr=0.0005,0.001 or --vary 'fcnet_hiddens=[64],[128,128]'; repeatable: every combination runs.",
      valueName: "KEY=V1,V2,..."))
  var vary: [String] = []

  @Option(help: "The sweep's folder: one run folder per run, their logs and sweep.json (default runs/sweep-TIME).")
  var sweepDir: String?

  @Option(help: "Runs at a time (each is a learner with its workers: on a machine of few cores, 1).")
  var parallel = 1

  @Option(help: "Seconds between the progress lines of the runs going.")
  var progressInterval: Double = 10

  @Argument(
    parsing: .postTerminator,
    help: ArgumentHelp(
      "herd train's options, after --: the environment, config, --set and stop options every run shares (not --seed, --run-dir, --resume, --ready-file, --parent-pid or --print-config, which the sweep sets).",
      valueName: "train options"))
  var trainArguments: [String] = []

  func validate() throws {
    if parallel < 1 { throw ValidationError("--parallel must be at least 1, got \(parallel)") }
    if !(progressInterval > 0) { throw ValidationError("--progress-interval must be positive, got \(progressInterval)") }
  }

  func run() throws {
    let plan = try SweepPlan(seeds: seeds, vary: vary, trainArguments: trainArguments)
    let folder = sweepDir ?? "runs/sweep-\(Train.timestamp())"
    do {
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    } catch {
      throw CommandFailure("--sweep-dir \(folder): cannot create the folder (\(error.localizedDescription))")
    }
    try SweepRunner.checkFolder(folder, plan: plan)
    StopSignals.install(interruptFlag)
    let runner = SweepRunner(plan: plan, folder: folder, parallel: parallel, progressInterval: progressInterval)
    let results = runner.run(until: interruptFlag)
    let table = SweepTable(plan: plan, results: results)
    print(table.text, terminator: "")
    try runner.write(results, table: table)
    let finished = results.filter { $0.status == .done }.count
    printError("sweep: \(finished) of \(plan.runs.count) runs finished; \(folder)/sweep.json holds them")
    if interruptFlag.isSet {
      printError("sweep: interrupted; `herd sweep ... --sweep-dir \(folder)` with the same options goes on from here")
      throw ExitCode(130)
    }
    if results.contains(where: { $0.status == .failed }) { throw ExitCode(1) }
  }
}

/// What a sweep runs: its settings (every combination of the --vary values, in
/// the order given) times its seeds, checked before anything starts.
struct SweepPlan {
  /// One key's values (their JSON text, as `--set` takes them).
  struct Variation: Equatable {
    var key: String
    var values: [String]
  }

  /// One run: a setting (`key=value` pairs, one per variation) and a seed.
  struct Run: Equatable {
    var setting: [String]
    var seed: UInt64
    /// Its folder's name in the sweep folder.
    var name: String
  }

  let seeds: [UInt64]
  let variations: [Variation]
  /// Every combination of the variations' values (one empty setting without any).
  let settings: [[String]]
  let runs: [Run]
  /// The options after `--`, as given.
  let trainArguments: [String]
  /// The environment, and what stops each run, for the log.
  let env: String
  let stop: String
  /// Whether the runs stop at a target (a mean return, an evaluation's, an info
  /// key's mean), so that the table says which reached it.
  let hasTarget: Bool

  /// Options of `herd train` that the sweep sets itself, and what to give instead.
  static let reserved: [(option: String, instead: String)] = [
    ("--seed", "the sweep gives each run its seed: list them with --seeds"),
    ("--run-dir", "the sweep gives each run its folder: choose where with --sweep-dir"),
    ("--resume", "a sweep resumes its stopped runs itself: give the same --sweep-dir"),
    ("--ready-file", "the sweep writes each run's"),
    ("--parent-pid", "the sweep gives each run its own id"),
    ("--print-config", "use herd train --print-config for one config"),
  ]

  init(seeds text: String, vary: [String], trainArguments: [String]) throws {
    seeds = try Self.seeds(text)
    variations = try vary.map(Self.variation)
    var seen = Set<String>()
    for v in variations where !seen.insert(v.key).inserted {
      throw CommandFailure("--vary \(v.key) is given twice: give all its values in one --vary")
    }
    self.trainArguments = trainArguments
    for argument in trainArguments {
      let option = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
      if let r = Self.reserved.first(where: { $0.option == option }) {
        throw CommandFailure("\(argument) after --: \(r.instead)")
      }
    }
    let train: Train
    do {
      train = try Train.parse(trainArguments)
    } catch {
      throw CommandFailure("herd train's options after --: \(Train.message(for: error))")
    }
    settings = variations.reduce([[]]) { partial, v in
      partial.flatMap { setting in v.values.map { setting + ["\(v.key)=\($0)"] } }
    }
    for v in variations where train.options.overrides.contains(where: { $0.hasPrefix(v.key + "=") }) {
      throw CommandFailure("--vary \(v.key) and --set \(v.key)=... after -- both set \(v.key): give its values to --vary only")
    }
    // Every setting's config is built and checked now: a bad value stops the sweep
    // before its first run, not after hours of others.
    var env = ""
    var stop = ""
    var hasTarget = false
    for setting in settings {
      var options = train.options
      options.overrides += setting
      options.seed = seeds[0]
      do {
        let config = try options.resolve()
        try train.stopping.check(config)
        env = config.env
        let criteria = train.stopping.criteria(for: config.env)
        stop = Train.describe(criteria)
        hasTarget = criteria.reward != nil || criteria.evaluationReward != nil || criteria.info != nil
      } catch {
        let named = setting.isEmpty ? "" : " with --vary \(setting.joined(separator: " "))"
        throw CommandFailure("the runs\(named): \(error)")
      }
    }
    (self.env, self.stop, self.hasTarget) = (env, stop, hasTarget)
    var runs: [Run] = []
    var names = Set<String>()
    for seed in seeds {
      for setting in settings {
        var name = Self.folderName(setting: setting, seed: seed)
        var n = 2
        while names.contains(name) {
          name = Self.folderName(setting: setting, seed: seed) + "-\(n)"
          n += 1
        }
        names.insert(name)
        runs.append(Run(setting: setting, seed: seed, name: name))
      }
    }
    self.runs = runs
  }

  /// `1,2,3` as seeds; an error names what is not one.
  static func seeds(_ text: String) throws -> [UInt64] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false).map {
      $0.trimmingCharacters(in: .whitespaces)
    }
    var seeds: [UInt64] = []
    for p in parts {
      guard let s = UInt64(p) else {
        throw CommandFailure("--seeds \(text): '\(p)' is not a seed (a whole number from 0, e.g. --seeds 1,2,3)")
      }
      guard !seeds.contains(s) else { throw CommandFailure("--seeds \(text): seed \(s) is given twice") }
      seeds.append(s)
    }
    return seeds
  }

  /// `KEY=V1,V2` as a variation: the values split at commas outside brackets,
  /// braces and strings, so JSON arrays and objects stay whole.
  static func variation(_ text: String) throws -> Variation {
    guard let eq = text.firstIndex(of: "="), eq > text.startIndex else {
      throw CommandFailure("--vary \(text): give KEY=V1,V2,..., e.g. --vary lr=0.0005,0.001")
    }
    let key = String(text[..<eq]).trimmingCharacters(in: .whitespaces)
    let values = splitTopLevel(String(text[text.index(after: eq)...]))
    if values.isEmpty || values.contains(where: \.isEmpty) {
      throw CommandFailure("--vary \(text): an empty value; give KEY=V1,V2,..., e.g. --vary \(key)=...")
    }
    if let repeated = values.first(where: { v in values.filter { $0 == v }.count > 1 }) {
      throw CommandFailure("--vary \(text): \(repeated) is given twice")
    }
    return Variation(key: key, values: values)
  }

  /// The parts of `text` between commas that are not inside `[]`, `{}` or a
  /// double-quoted string, trimmed.
  static func splitTopLevel(_ text: String) -> [String] {
    var parts: [String] = []
    var current = ""
    var depth = 0
    var inString = false
    var escaped = false
    for c in text {
      if inString {
        if escaped {
          escaped = false
        } else if c == "\\" {
          escaped = true
        } else if c == "\"" {
          inString = false
        }
      } else if c == "\"" {
        inString = true
      } else if c == "[" || c == "{" {
        depth += 1
      } else if c == "]" || c == "}" {
        depth -= 1
      } else if c == "," && depth == 0 {
        parts.append(current.trimmingCharacters(in: .whitespaces))
        current = ""
        continue
      }
      current.append(c)
    }
    parts.append(current.trimmingCharacters(in: .whitespaces))
    return parts == [""] ? [] : parts
  }

  /// `lr=0.001-seed-1`: the setting's pairs, then the seed, with every character
  /// but letters, digits, `.`, `_`, `=` and `-` made a `-`.
  static func folderName(setting: [String], seed: UInt64) -> String {
    let text = (setting + ["seed-\(seed)"]).joined(separator: "-")
    return String(text.map { c -> Character in c.isASCII && (c.isLetter || c.isNumber || "._=-".contains(c)) ? c : "-" })
  }
}

/// One run's outcome.
struct SweepResult: Sendable {
  enum Status: String, Sendable {
    /// Stopped by its stop criteria (now or in an earlier invocation).
    case done
    /// Stopped by Ctrl-C or SIGTERM; resumed by the next invocation.
    case interrupted
    /// Exited with an error.
    case failed
    /// Never started (the sweep was interrupted first).
    case notRun = "not run"
  }

  var run: SweepPlan.Run
  var status: Status
  var summary: RunSummary?
  /// The last `Error:` line of its log, for a failed run.
  var error: String?
}

/// Starts the plan's runs as `herd train` child processes, at most `parallel` at
/// a time, reports their progress and collects their summaries.
final class SweepRunner {
  let plan: SweepPlan
  let folder: String
  let parallel: Int
  let progressInterval: Double
  /// The program started as `PROGRAM train ...` (tests give another).
  let executable: String

  init(plan: SweepPlan, folder: String, parallel: Int, progressInterval: Double, executable: String? = nil) {
    (self.plan, self.folder, self.parallel, self.progressInterval) = (plan, folder, parallel, progressInterval)
    self.executable = executable ?? ownExecutable()
  }

  /// A run going: its child, where it writes, and when it started.
  private struct Going {
    let index: Int
    let process: Process
    let runDirectory: String
    let log: String
    let ready: String
    let started: Date
    var announced = false
  }

  func runDirectory(_ run: SweepPlan.Run) -> String { (folder as NSString).appendingPathComponent(run.name) }
  func logFile(_ run: SweepPlan.Run) -> String { (folder as NSString).appendingPathComponent(run.name + ".log") }

  /// Throws when `folder` holds a sweep of other `herd train` options: its finished
  /// runs would be taken as this sweep's. (Other seeds and --vary values are
  /// welcome: each run's folder names its setting and seed.)
  static func checkFolder(_ folder: String, plan: SweepPlan) throws {
    let path = (folder as NSString).appendingPathComponent("sweep.json")
    guard let data = FileManager.default.contents(atPath: path),
      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
      let before = object["train_arguments"] as? [String], before != plan.trainArguments
    else { return }
    throw CommandFailure(
      "--sweep-dir \(folder) holds a sweep of other herd train options (-- \(before.joined(separator: " "))): give the same options to go on with it, or another --sweep-dir"
    )
  }

  /// The `summary.json` of the run in `dir`, nil while it has none (or half of one).
  static func summary(in dir: String) -> RunSummary? {
    FileManager.default.contents(atPath: dir + "/summary.json").flatMap { try? JSONDecoder().decode(RunSummary.self, from: $0) }
  }

  /// What an earlier invocation left of a run: its summary when it finished,
  /// whether it can be resumed (a checkpoint without a finished summary).
  func previous(_ run: SweepPlan.Run) -> (finished: RunSummary?, resumable: Bool) {
    let dir = runDirectory(run)
    let summary = Self.summary(in: dir)
    if let summary, summary.stopped_because != "interrupted", !summary.stopped_because.hasPrefix("error") {
      return (summary, false)
    }
    return (nil, FileManager.default.fileExists(atPath: dir + "/checkpoint.herd"))
  }

  /// Runs every run not finished before, until all are done or `stop` is set
  /// (then the runs going are stopped with SIGTERM and waited for).
  func run(until stop: StopFlag) -> [SweepResult] {
    var results = plan.runs.map { SweepResult(run: $0, status: .notRun) }
    let total = plan.runs.count
    let settingCount = plan.settings.count
    printError(
      "sweep: \(settingCount) setting\(settingCount == 1 ? "" : "s") x \(plan.seeds.count) seed\(plan.seeds.count == 1 ? "" : "s") = \(total) runs of herd train \(plan.trainArguments.joined(separator: " ")) (\(plan.env), stop at \(plan.stop)), \(parallel) at a time, in \(folder)"
    )
    // Each run not finished before, and whether it resumes.
    var pending: [(index: Int, resume: Bool)] = []
    for (i, r) in plan.runs.enumerated() {
      let before = previous(r)
      if let summary = before.finished {
        results[i].status = .done
        results[i].summary = summary
        printError("run \(i + 1)/\(total) \(label(r)): finished before (\(runDirectory(r))): \(Self.outcome(summary))")
      } else {
        pending.append((i, before.resumable))
      }
    }
    var going: [Going] = []
    var stopping = false
    var lastProgress = Date()
    /// Seconds each run that finished in this invocation took, for the estimate.
    var durations: [Double] = []
    while !(pending.isEmpty && going.isEmpty) {
      if stop.isSet && !stopping {
        stopping = true
        for g in going where g.process.isRunning { kill(g.process.processIdentifier, SIGTERM) }
      }
      while !stopping && going.count < parallel, let next = pending.first {
        pending.removeFirst()
        let left = Self.estimate(durations, runsLeft: pending.count + going.count + 1, parallel: parallel)
        if let g = start(next.index, resume: next.resume, left: left) {
          going.append(g)
        } else {
          results[next.index].status = .failed
          results[next.index].error = "could not start \(executable)"
        }
      }
      if stopping { pending.removeAll() }
      usleep(100_000)
      for k in going.indices where !going[k].announced {
        if let url = Self.statsURL(going[k].ready) {
          going[k].announced = true
          printError("run \(going[k].index + 1)/\(total) \(label(plan.runs[going[k].index])): dashboard \(url)/")
        }
      }
      // Decided once per run: one that ends between two looks must not be dropped.
      let running = going.map(\.process.isRunning)
      let ended = zip(going, running).filter { !$0.1 }.map(\.0)
      going = zip(going, running).filter { $0.1 }.map(\.0)
      for g in ended {
        g.process.waitUntilExit()
        results[g.index] = finish(g)
        if results[g.index].status == .done { durations.append(Date().timeIntervalSince(g.started)) }
      }
      let now = Date()
      if now.timeIntervalSince(lastProgress) >= progressInterval {
        lastProgress = now
        for g in going where now.timeIntervalSince(g.started) >= progressInterval { printError(progressLine(g)) }
      }
    }
    return results
  }

  /// "lr=0.001 seed 2" (or "seed 2" without settings).
  func label(_ r: SweepPlan.Run) -> String { (r.setting + ["seed \(r.seed)"]).joined(separator: " ") }

  /// ", about 4 min of the sweep left": from the mean time of the runs finished so
  /// far, for `runsLeft` runs (this one included) `parallel` at a time; empty
  /// before any run has finished.
  static func estimate(_ durations: [Double], runsLeft: Int, parallel: Int) -> String {
    guard !durations.isEmpty, runsLeft > 0 else { return "" }
    let mean = durations.reduce(0, +) / Double(durations.count)
    let seconds = mean * Double((runsLeft + parallel - 1) / parallel)
    let text =
      seconds < 90
      ? "\(Int(seconds.rounded())) s"
      : seconds < 5400 ? "\(Int((seconds / 60).rounded())) min" : String(format: "%.1f h", seconds / 3600)
    return ", about \(text) of the sweep left"
  }

  /// Starts run `i` (resuming it from its checkpoint); nil when its process could
  /// not start. `left` ends its line (``estimate(_:runsLeft:parallel:)``).
  private func start(_ i: Int, resume: Bool, left: String) -> Going? {
    let r = plan.runs[i]
    let dir = runDirectory(r)
    let ready = (folder as NSString).appendingPathComponent(".\(r.name).ready.json")
    try? FileManager.default.removeItem(atPath: ready)
    var arguments = ["train"] + plan.trainArguments
    for s in r.setting { arguments += ["--set", s] }
    arguments += [
      "--seed", String(r.seed), "--run-dir", dir, "--ready-file", ready, "--parent-pid", String(getpid()),
    ]
    if resume { arguments.append("--resume") }
    let log = logFile(r)
    _ = FileManager.default.createFile(atPath: log, contents: nil)
    guard let handle = FileHandle(forWritingAtPath: log) else { return nil }
    handle.seekToEndOfFile()
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    p.standardOutput = handle
    p.standardError = handle
    p.standardInput = FileHandle.nullDevice
    do {
      try p.run()
    } catch {
      printError("run \(i + 1)/\(plan.runs.count) \(label(r)): could not start \(executable): \(error)")
      return nil
    }
    try? handle.close()
    printError(
      "run \(i + 1)/\(plan.runs.count) \(label(r)): \(resume ? "resumed" : "started") in \(dir) (pid \(p.processIdentifier), log \(log))\(left)")
    return Going(index: i, process: p, runDirectory: dir, log: log, ready: ready, started: Date())
  }

  /// The outcome of an ended run, from its exit and its summary, said on stderr.
  private func finish(_ g: Going) -> SweepResult {
    let r = plan.runs[g.index]
    try? FileManager.default.removeItem(atPath: g.ready)
    var result = SweepResult(run: r, status: .failed)
    result.summary = Self.summary(in: g.runDirectory)
    let status = g.process.terminationStatus
    let head = "run \(g.index + 1)/\(plan.runs.count) \(label(r))"
    if g.process.terminationReason == .exit && status == 0, let s = result.summary {
      result.status = .done
      printError("\(head): \(Self.outcome(s))")
    } else if g.process.terminationReason == .exit && status == 130 {
      result.status = .interrupted
      printError("\(head): stopped (it resumes from its checkpoint when the sweep goes on)")
    } else {
      result.error = Self.lastError(g.log)
      let how = g.process.terminationReason == .exit ? "exited with status \(status)" : "was killed by signal \(status)"
      printError("\(head): \(how)\(result.error.map { ": \($0)" } ?? "") (log \(g.log))")
    }
    return result
  }

  /// "reached 475 at 2.90M env steps in 55.2 s; best mean return 477" or
  /// "stop_seconds reached at 1.20M env steps; best mean return 250".
  static func outcome(_ s: RunSummary) -> String {
    let best = s.best_mean_return.map { "; best mean return \(SweepTable.number(Double($0)))" } ?? "; no episode ended"
    if s.stop_reward_reached, let steps = s.env_steps_to_stop_reward, let seconds = s.seconds_to_stop_reward,
      let target = s.stop_reward
    {
      return "reached \(SweepTable.number(Double(target))) at \(SweepTable.steps(Double(steps))) env steps in \(String(format: "%.1f", seconds)) s\(best)"
    }
    return "\(s.stopped_because) at \(SweepTable.steps(Double(s.env_steps))) env steps\(best)"
  }

  /// The stats URL a run's ready file names, once it is written.
  static func statsURL(_ path: String) -> String? {
    guard let data = FileManager.default.contents(atPath: path),
      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    else { return nil }
    return object["stats"] as? String
  }

  /// The last `Error: ...` line of a log, without its prefix.
  static func lastError(_ path: String) -> String? {
    guard let data = FileManager.default.contents(atPath: path) else { return nil }
    let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
    return lines.last { $0.hasPrefix("Error: ") }.map { String($0.dropFirst("Error: ".count)) }
  }

  /// A running run's latest progress record, as one line.
  private func progressLine(_ g: Going) -> String {
    let head = "run \(g.index + 1)/\(plan.runs.count) \(label(plan.runs[g.index]))"
    guard let record = Self.lastRecord(g.runDirectory + "/progress.jsonl") else {
      return "\(head): starting (\(String(format: "%.0f", Date().timeIntervalSince(g.started))) s)"
    }
    let seconds = (record[MetricKey.wallSeconds] as? Double).map { String(format: "%.0f s", $0) } ?? "-"
    let steps = (record[MetricKey.envStepsSampled] as? Double).map { SweepTable.steps($0) } ?? "-"
    let mean = (record[MetricKey.returnMean] as? Double).map(SweepTable.number) ?? "-"
    let evaluation = (record[MetricKey.evaluationReturnMean] as? Double).map { "  eval \(SweepTable.number($0))" } ?? ""
    return "\(head): \(seconds)  \(steps) env steps  return \(mean)\(evaluation)"
  }

  /// The last whole line of a JSON-lines file, parsed (read from its end).
  static func lastRecord(_ path: String) -> [String: Any]? {
    guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? handle.close() }
    let size = handle.seekToEndOfFile()
    let tail = min(size, 16_384)
    handle.seek(toFileOffset: size - tail)
    let text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
    guard text.hasSuffix("\n"), let line = text.split(separator: "\n").last else { return nil }
    return (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
  }

  /// Writes `sweep.json`: the command, every run's outcome and summary, and the table.
  func write(_ results: [SweepResult], table: SweepTable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    var runs: [[String: Any]] = []
    for r in results {
      var entry: [String: Any] = [
        "name": r.run.name, "seed": r.run.seed, "setting": r.run.setting, "status": r.status.rawValue,
        "run_dir": runDirectory(r.run), "log": logFile(r.run),
      ]
      if let s = r.summary, let data = try? encoder.encode(s) {
        entry["summary"] = try JSONSerialization.jsonObject(with: data)
      }
      if let e = r.error { entry["error"] = e }
      runs.append(entry)
    }
    let object: [String: Any] = [
      "train_arguments": plan.trainArguments, "seeds": plan.seeds,
      "vary": plan.variations.map { ["key": $0.key, "values": $0.values] }, "env": plan.env, "stop": plan.stop,
      "runs": runs, "table": table.rows.map(\.object),
    ]
    let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    let path = (folder as NSString).appendingPathComponent("sweep.json")
    let temporary = path + ".tmp.\(getpid())"
    guard FileManager.default.createFile(atPath: temporary, contents: data + Data("\n".utf8)) else {
      throw CommandFailure("cannot write \(path)")
    }
    guard rename(temporary, path) == 0 else {
      unlink(temporary)
      throw CommandFailure("cannot write \(path): \(String(cString: strerror(errno)))")
    }
  }
}

/// The sweep's table: one row per setting, each figure the median over the
/// setting's finished runs with its range.
struct SweepTable {
  struct Row {
    var setting: String
    var planned: Int
    var finished: Int
    var reached: Int
    /// Env steps and seconds to the stop return, over the runs that reached it.
    var stepsToTarget: [Double]
    var secondsToTarget: [Double]
    var bestReturn: [Double]
    var finalReturn: [Double]
    var bestEvaluation: [Double]
    var finalEvaluation: [Double]

    var object: [String: Any] {
      func stats(_ xs: [Double]) -> Any {
        guard let m = SweepTable.median(xs) else { return NSNull() }
        return ["median": m, "min": xs.min()!, "max": xs.max()!, "values": xs]
      }
      return [
        "setting": setting, "runs": planned, "finished": finished, "reached": reached,
        "env_steps_to_stop_reward": stats(stepsToTarget), "seconds_to_stop_reward": stats(secondsToTarget),
        "best_mean_return": stats(bestReturn), "final_mean_return": stats(finalReturn),
        "best_evaluation": stats(bestEvaluation), "final_evaluation": stats(finalEvaluation),
      ]
    }
  }

  let rows: [Row]
  /// Whether the runs stop at a target (the reached columns say something).
  let hasTarget: Bool

  /// The env steps and seconds a finished run took to its target: to its stop
  /// return, or, stopped by an evaluation's return or an info key's mean, to its
  /// stop; nil when it did not reach one.
  static func toTarget(_ s: RunSummary) -> (steps: Double, seconds: Double)? {
    if s.stop_reward_reached, let steps = s.env_steps_to_stop_reward, let seconds = s.seconds_to_stop_reward {
      return (Double(steps), seconds)
    }
    guard ["stop_eval_reward reached", "stop_info reached"].contains(s.stopped_because) else { return nil }
    return (Double(s.env_steps), s.wall_seconds)
  }

  init(plan: SweepPlan, results: [SweepResult]) {
    rows = plan.settings.map { setting in
      let mine = results.filter { $0.run.setting == setting }
      let done = mine.filter { $0.status == .done }.compactMap(\.summary)
      let reached = done.compactMap(Self.toTarget)
      return Row(
        setting: setting.isEmpty ? "(as given)" : setting.joined(separator: " "), planned: mine.count,
        finished: done.count, reached: reached.count, stepsToTarget: reached.map(\.steps),
        secondsToTarget: reached.map(\.seconds),
        bestReturn: done.compactMap { $0.best_mean_return.map(Double.init) },
        finalReturn: done.compactMap { $0.final_mean_return.map(Double.init) },
        bestEvaluation: done.compactMap { $0.best_evaluation?.returnMean },
        finalEvaluation: done.compactMap { ($0.final_evaluation ?? $0.last_evaluation)?.returnMean })
    }
    hasTarget = plan.hasTarget
  }

  /// The table as text, columns aligned; the evaluation columns only when a run evaluated.
  var text: String {
    let evaluated = rows.contains { !$0.bestEvaluation.isEmpty }
    var header = ["setting", "runs"]
    if hasTarget { header += ["reached", "env steps to target", "seconds to target"] }
    header += ["best mean return", "final mean return"]
    if evaluated { header += ["best evaluation", "final evaluation"] }
    var lines = [header]
    for r in rows {
      var cells = [r.setting, r.finished == r.planned ? "\(r.planned)" : "\(r.finished) of \(r.planned)"]
      if hasTarget {
        cells += [
          "\(r.reached)/\(r.finished)", Self.spread(r.stepsToTarget, Self.steps),
          Self.spread(r.secondsToTarget) { String(format: "%.1f", $0) },
        ]
      }
      cells += [Self.spread(r.bestReturn, Self.number), Self.spread(r.finalReturn, Self.number)]
      if evaluated { cells += [Self.spread(r.bestEvaluation, Self.number), Self.spread(r.finalEvaluation, Self.number)] }
      lines.append(cells)
    }
    let widths = header.indices.map { c in lines.map { $0[c].count }.max() ?? 0 }
    return lines.map { cells in
      cells.enumerated().map { c, cell in c == cells.count - 1 ? cell : cell.padding(toLength: widths[c], withPad: " ", startingAt: 0) }
        .joined(separator: "  ")
    }.joined(separator: "\n") + "\n"
  }

  /// "477 (475 to 478)": the median and, over several values, the range (with "to":
  /// returns may be negative); "-" for none.
  static func spread(_ xs: [Double], _ format: (Double) -> String) -> String {
    guard let m = median(xs) else { return "-" }
    guard xs.count > 1 else { return format(m) }
    return "\(format(m)) (\(format(xs.min()!)) to \(format(xs.max()!)))"
  }

  static func median(_ xs: [Double]) -> Double? {
    guard !xs.isEmpty else { return nil }
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
  }

  /// A return: whole above 100, one decimal above 10, else three.
  static func number(_ x: Double) -> String {
    let a = abs(x)
    return String(format: a >= 100 ? "%.0f" : a >= 10 ? "%.1f" : "%.3f", x)
  }

  /// Env steps: 2.90M, 371k, 9500.
  static func steps(_ x: Double) -> String {
    if x >= 1e6 { return String(format: "%.2fM", x / 1e6) }
    if x >= 1e4 { return String(format: "%.0fk", x / 1e3) }
    return String(format: "%.0f", x)
  }
}
