import Foundation
import HerdRL
import HerdStats
import Testing

@testable import HerdLearner
@testable import herd

/// `herd sweep`: its plan (settings, seeds, folder names), the errors that stop it
/// before any run, its table, and real sweeps of `herd train` child processes.
@Suite(.serialized) struct SweepTests {
  /// The message of what `body` throws ("accepted" when nothing).
  func failure(_ body: () throws -> Void) -> String {
    do {
      try body()
      return "accepted"
    } catch { return "\(error)" }
  }

  @Test func valuesSplitAtCommasOutsideBracketsAndStrings() {
    #expect(SweepPlan.splitTopLevel("0.001, 0.002") == ["0.001", "0.002"])
    #expect(SweepPlan.splitTopLevel("[64],[128,128]") == ["[64]", "[128,128]"])
    #expect(SweepPlan.splitTopLevel(#""a,b","c\",d""#) == [#""a,b""#, #""c\",d""#])
    #expect(SweepPlan.splitTopLevel(#"{"x":1,"y":[2,3]},{"x":4}"#) == [#"{"x":1,"y":[2,3]}"#, #"{"x":4}"#])
    #expect(SweepPlan.splitTopLevel("").isEmpty)
  }

  /// Every combination of the --vary values, in the order given (the first key
  /// slowest), times the seeds, seed by seed; each run's folder names its setting
  /// and seed in characters a path takes.
  @Test func thePlanIsEveryCombinationSeedBySeed() throws {
    let plan = try SweepPlan(
      seeds: "1, 2", vary: ["lr=0.001,0.002", #"fcnet_hiddens=[32],[64,64]"#],
      trainArguments: ["--env", "CartPole-v1", "--stop-steps", "1000"])
    #expect(plan.seeds == [1, 2])
    #expect(
      plan.settings == [
        ["lr=0.001", "fcnet_hiddens=[32]"], ["lr=0.001", "fcnet_hiddens=[64,64]"], ["lr=0.002", "fcnet_hiddens=[32]"],
        ["lr=0.002", "fcnet_hiddens=[64,64]"],
      ])
    #expect(plan.runs.count == 8)
    #expect(plan.runs.map(\.seed) == [1, 1, 1, 1, 2, 2, 2, 2])
    #expect(plan.runs[1].name == "lr=0.001-fcnet_hiddens=-64-64--seed-1")
    #expect(Set(plan.runs.map(\.name)).count == 8)
    #expect(plan.env == "CartPole-v1" && plan.stop == "1000 env steps")
    let plain = try SweepPlan(seeds: "3", vary: [], trainArguments: ["--env", "CartPole-v1"])
    #expect(plain.settings == [[]] && plain.runs.map(\.name) == ["seed-3"])
    #expect(plain.stop == "mean return >= 475.0 or 600.0 s", "herd train's own default")
  }

  /// Bad seeds, values, keys and train options stop the sweep before any run,
  /// each error naming what was wrong and what to give instead.
  @Test func badSweepsAreNamedBeforeAnyRun() {
    let cartPole = ["--env", "CartPole-v1"]
    #expect(
      failure { _ = try SweepPlan(seeds: "1,x", vary: [], trainArguments: cartPole) }
        == "--seeds 1,x: 'x' is not a seed (a whole number from 0, e.g. --seeds 1,2,3)")
    #expect(failure { _ = try SweepPlan(seeds: "1,1", vary: [], trainArguments: cartPole) } == "--seeds 1,1: seed 1 is given twice")
    #expect(
      failure { _ = try SweepPlan(seeds: "1", vary: ["lr"], trainArguments: cartPole) }
        == "--vary lr: give KEY=V1,V2,..., e.g. --vary lr=0.0005,0.001")
    #expect(failure { _ = try SweepPlan(seeds: "1", vary: ["lr=0.1,"], trainArguments: cartPole) }.contains("an empty value"))
    #expect(
      failure { _ = try SweepPlan(seeds: "1", vary: ["lr=0.1", "lr=0.2"], trainArguments: cartPole) }
        == "--vary lr is given twice: give all its values in one --vary")
    let misspelt = failure { _ = try SweepPlan(seeds: "1", vary: ["lrr=0.1,0.2"], trainArguments: cartPole) }
    #expect(misspelt.hasPrefix("the runs with --vary lrr=0.1: ") && misspelt.contains("did you mean 'lr'"), "\(misspelt)")
    let negative = failure { _ = try SweepPlan(seeds: "1", vary: ["lr=0.1,-1"], trainArguments: cartPole) }
    #expect(negative.hasPrefix("the runs with --vary lr=-1: lr = -1.0 is invalid"), "\(negative)")
    #expect(
      failure { _ = try SweepPlan(seeds: "1", vary: [], trainArguments: cartPole + ["--seed", "4"]) }
        == "--seed after --: the sweep gives each run its seed: list them with --seeds")
    #expect(
      failure { _ = try SweepPlan(seeds: "1", vary: [], trainArguments: cartPole + ["--run-dir=runs/x"]) }
        == "--run-dir=runs/x after --: the sweep gives each run its folder: choose where with --sweep-dir")
    #expect(
      failure { _ = try SweepPlan(seeds: "1", vary: ["lr=0.1"], trainArguments: cartPole + ["--set", "lr=0.2"]) }
        == "--vary lr and --set lr=... after -- both set lr: give its values to --vary only")
    let unknown = failure { _ = try SweepPlan(seeds: "1", vary: [], trainArguments: cartPole + ["--stop-stepz", "5"]) }
    #expect(unknown.hasPrefix("herd train's options after --: ") && unknown.contains("--stop-stepz"), "\(unknown)")
  }

  /// The time left: the finished runs' mean times the rounds of `parallel` runs left.
  @Test func theEstimateIsTheMeanRunTimesTheRoundsLeft() {
    #expect(SweepRunner.estimate([], runsLeft: 5, parallel: 1) == "")
    #expect(SweepRunner.estimate([10, 20], runsLeft: 3, parallel: 1) == ", about 45 s of the sweep left")
    #expect(SweepRunner.estimate([60], runsLeft: 3, parallel: 2) == ", about 2 min of the sweep left")
    #expect(SweepRunner.estimate([3600], runsLeft: 3, parallel: 1) == ", about 3.0 h of the sweep left")
  }

  /// A finished summary with these figures.
  func summary(
    reached: Bool, steps: Int, seconds: Double, best: Float, final: Float, evaluation: Double? = nil
  ) -> RunSummary {
    var s = RunSummary(
      env: "CartPole-v1", env_steps: steps, trained_steps: steps, updates: 10, episodes: 10, wall_seconds: seconds,
      final_mean_return: final, best_mean_return: best, stop_reward: 475, stop_reward_reached: reached,
      env_steps_to_stop_reward: reached ? steps : nil, seconds_to_stop_reward: reached ? seconds : nil,
      stopped_because: reached ? "stop_reward reached" : "stop_seconds reached", dropped_stale_fragments: 0,
      skipped_updates: 0, use_lstm: true, run_dir: "d", disk_error: nil)
    if let evaluation {
      let e = EvaluationFigures(
        policyVersion: 1, envSteps: steps, wallSeconds: seconds, seconds: 1, episodes: 10, greedy: true,
        returnMean: evaluation, returnStd: 0, returnMin: evaluation, returnMax: evaluation, lengthMean: 1)
      s.best_evaluation = e
      s.final_evaluation = e
    }
    return s
  }

  /// Each setting's row: runs finished of planned, how many reached the stop
  /// return, medians and ranges over the finished runs (env steps and seconds to
  /// the target over those that reached it); interrupted and failed runs are not
  /// in the figures.
  @Test func theTableGivesMediansAndRangesPerSetting() throws {
    let plan = try SweepPlan(seeds: "1,2,3", vary: ["lr=0.001,0.002"], trainArguments: ["--env", "CartPole-v1"])
    func result(_ i: Int, _ status: SweepResult.Status, _ s: RunSummary?) -> SweepResult {
      SweepResult(run: plan.runs[i], status: status, summary: s)
    }
    // Runs alternate lr=0.001, lr=0.002 seed by seed.
    let results = [
      result(0, .done, summary(reached: true, steps: 2_000_000, seconds: 20, best: 480, final: 470)),
      result(1, .done, summary(reached: false, steps: 5_000_000, seconds: 60, best: 300, final: 250)),
      result(2, .done, summary(reached: true, steps: 3_000_000, seconds: 31, best: 476, final: 476)),
      result(3, .failed, nil),
      result(4, .done, summary(reached: false, steps: 5_000_000, seconds: 60, best: 400, final: 12.5)),
      result(5, .interrupted, summary(reached: true, steps: 1, seconds: 1, best: 999, final: 999)),
    ]
    let table = SweepTable(plan: plan, results: results)
    #expect(table.rows.map(\.setting) == ["lr=0.001", "lr=0.002"])
    let a = table.rows[0]
    #expect(a.planned == 3 && a.finished == 3 && a.reached == 2)
    #expect(a.stepsToTarget == [2_000_000, 3_000_000] && a.bestReturn == [480, 476, 400])
    #expect(SweepTable.median(a.bestReturn) == 476 && SweepTable.median(a.stepsToTarget) == 2_500_000)
    let b = table.rows[1]
    #expect(b.planned == 3 && b.finished == 1 && b.reached == 0 && b.bestReturn == [300])
    let lines = table.text.split(separator: "\n").map(String.init)
    #expect(lines.count == 3)
    #expect(
      lines[0].split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        == "setting runs reached env steps to target seconds to target best mean return final mean return")
    #expect(lines[1].hasPrefix("lr=0.001  3 "), "\(lines[1])")
    for cell in ["2/3", "2.50M (2.00M to 3.00M)", "25.5 (20.0 to 31.0)", "476 (400 to 480)", "470 (12.5 to 476)"] {
      #expect(lines[1].contains(cell), "\(cell) in \(lines[1])")
    }
    for cell in ["1 of 3", "0/1", "300", "250"] { #expect(lines[2].contains(cell), "\(cell) in \(lines[2])") }
    #expect(!table.text.contains("evaluation"), "no run evaluated")
    let evaluated = SweepTable(
      plan: plan, results: [result(0, .done, summary(reached: false, steps: 10, seconds: 1, best: 1, final: 1, evaluation: 0.25))])
    #expect(evaluated.text.contains("best evaluation") && evaluated.rows[0].bestEvaluation == [0.25])
    #expect(SweepTable.number(-0.4567) == "-0.457" && SweepTable.steps(9_500) == "9500" && SweepTable.steps(371_000) == "371k")
    // A run stopped by an evaluation's return (or an info key's mean) reached its
    // target at its stop; one stopped by time did not.
    var byEvaluation = summary(reached: false, steps: 700_000, seconds: 42, best: 0.5, final: 0.5, evaluation: 0.95)
    byEvaluation.stopped_because = "stop_eval_reward reached"
    #expect(SweepTable.toTarget(byEvaluation).map { [$0.steps, $0.seconds] } == [700_000, 42])
    #expect(SweepTable.toTarget(summary(reached: false, steps: 9, seconds: 9, best: 1, final: 1)) == nil)
    let eval = try SweepPlan(
      seeds: "1", vary: [],
      trainArguments: ["--env", "CartPole-v1", "--set", "evaluation_interval_env_steps=100000", "--stop-eval-reward", "400"])
    let row = SweepTable(plan: eval, results: [SweepResult(run: eval.runs[0], status: .done, summary: byEvaluation)])
    #expect(row.hasTarget && row.rows[0].reached == 1 && row.text.contains("700k"), "\(row.text)")
    let timed = try SweepPlan(seeds: "1", vary: [], trainArguments: ["--env", "CartPole-v1", "--stop-seconds", "9"])
    #expect(!timed.hasTarget && !SweepTable(plan: timed, results: []).text.contains("reached"))
  }

  /// A run whose process fails is reported as failed with its log's last error,
  /// and the sweep goes on to the next run.
  @Test func aFailingRunIsNamedAndTheSweepGoesOn() throws {
    let folder = HerdBinary.tempDir("sweep-fail")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let script = folder + "/fake-herd.sh"
    try """
    #!/bin/sh
    echo "Error: broken on purpose ($*)" >&2
    exit 3
    """.write(toFile: script, atomically: true, encoding: .utf8)
    chmod(script, 0o755)
    let plan = try SweepPlan(seeds: "1,2", vary: [], trainArguments: ["--env", "CartPole-v1"])
    let runner = SweepRunner(plan: plan, folder: folder, parallel: 1, progressInterval: 60, executable: script)
    let results = runner.run(until: StopFlag())
    #expect(results.map(\.status) == [.failed, .failed])
    #expect(results[0].error?.hasPrefix("broken on purpose (train --env CartPole-v1 --seed 1 --run-dir \(folder)/seed-1") == true)
    #expect(results[1].error?.contains("--seed 2") == true)
    try runner.write(results, table: SweepTable(plan: plan, results: results))
    let written = try HerdBinary.json(folder + "/sweep.json")
    let runs = try #require(written["runs"] as? [[String: Any]])
    #expect(runs.map { $0["status"] as? String } == ["failed", "failed"])
  }

  /// A real sweep: two settings by two seeds of CartPole, each run a `herd train`
  /// process with its own folder and config, the table on stdout with the reached
  /// column, sweep.json with every summary.
  @Test func aSweepTrainsEverySettingWithEverySeed() throws {
    let folder = HerdBinary.tempDir("sweep")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let r = try HerdBinary.run([
      "sweep", "--seeds", "1,2", "--vary", "lr=0.001,0.002", "--sweep-dir", folder, "--", "--env", "CartPole-v1",
      "--stop-steps", "40000", "--stop-reward", "15", "--no-stats",
    ])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(r.stderr.contains("sweep: 2 settings x 2 seeds = 4 runs of herd train --env CartPole-v1"), "\(r.stderr)")
    let starts = r.stderr.split(separator: "\n").filter { $0.contains(": started in ") }
    #expect(starts.count == 4 && !starts[0].contains("left") && starts[1].hasSuffix(" of the sweep left"), "\(starts)")
    let lines = r.stdout.split(separator: "\n").map(String.init)
    #expect(lines.count == 3 && lines[0].hasPrefix("setting") && lines[0].contains("reached"), "\(r.stdout)")
    #expect(lines[1].hasPrefix("lr=0.001") && lines[2].hasPrefix("lr=0.002"), "\(r.stdout)")
    for (name, lr, seed) in [("lr=0.001-seed-1", 0.001, 1), ("lr=0.002-seed-1", 0.002, 1), ("lr=0.001-seed-2", 0.001, 2)] {
      let config = try HerdBinary.json("\(folder)/\(name)/config.json")
      #expect(abs((config["lr"] as? Double ?? 0) - lr) < 1e-9 && config["seed"] as? Int == seed, "\(name): \(config)")
      #expect(FileManager.default.fileExists(atPath: "\(folder)/\(name).log"))
    }
    let sweep = try HerdBinary.json(folder + "/sweep.json")
    let runs = try #require(sweep["runs"] as? [[String: Any]])
    #expect(runs.count == 4 && runs.allSatisfy { $0["status"] as? String == "done" }, "\(runs)")
    #expect(runs.allSatisfy { (($0["summary"] as? [String: Any])?["env_steps"] as? Int ?? 0) > 0 })
    let table = try #require(sweep["table"] as? [[String: Any]])
    #expect(table.map { $0["finished"] as? Int } == [2, 2])
  }

  /// SIGTERM stops the run going cleanly (exit 130, the table of none finished,
  /// the run "interrupted" and the next "not run" in sweep.json); the same command
  /// again resumes the stopped run from its checkpoint and starts the other.
  @Test func anInterruptedSweepGoesOnWhereItStopped() throws {
    let folder = HerdBinary.tempDir("sweep-stop")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let arguments = [
      "sweep", "--seeds", "1,2", "--sweep-dir", folder, "--", "--env", "CartPole-v1", "--stop-steps", "1500000", "--no-stats",
      "--set", "progress_interval_seconds=0.2",
    ]
    let p = Process()
    p.executableURL = URL(fileURLWithPath: HerdBinary.path)
    p.arguments = arguments
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    let progress = folder + "/seed-1/progress.jsonl"
    let deadline = Date(timeIntervalSinceNow: 60)
    while Date() < deadline && ((try? FileManager.default.attributesOfItem(atPath: progress)[.size] as? Int) ?? 0) == 0 {
      usleep(50_000)
    }
    kill(p.processIdentifier, SIGTERM)
    p.waitUntilExit()
    #expect(p.terminationStatus == 130)
    let stopped = try #require(try HerdBinary.json(folder + "/sweep.json")["runs"] as? [[String: Any]])
    #expect(stopped.map { $0["status"] as? String } == ["interrupted", "not run"], "\(stopped)")
    #expect(FileManager.default.fileExists(atPath: folder + "/seed-1/checkpoint.herd"))

    let again = try HerdBinary.run(arguments)
    #expect(again.status == 0, "\(again.stderr)")
    #expect(again.stderr.contains("run 1/2 seed 1: resumed in \(folder)/seed-1"), "\(again.stderr)")
    #expect(again.stderr.contains("run 2/2 seed 2: started in \(folder)/seed-2"), "\(again.stderr)")
    let runs = try #require(try HerdBinary.json(folder + "/sweep.json")["runs"] as? [[String: Any]])
    #expect(runs.map { $0["status"] as? String } == ["done", "done"])
    for run in runs {
      #expect((((run["summary"] as? [String: Any])?["env_steps"]) as? Int ?? 0) >= 1_500_000, "\(run)")
    }
    // A third time: nothing left to run, both kept; with other train options, refused.
    let third = try HerdBinary.run(arguments)
    #expect(third.status == 0 && third.stderr.contains("run 2/2 seed 2: finished before"), "\(third.stderr)")
    let other = try HerdBinary.run(arguments.map { $0 == "1500000" ? "3000000" : $0 })
    #expect(other.status != 0, "\(other.stderr)")
    #expect(
      other.stderr.contains(
        "--sweep-dir \(folder) holds a sweep of other herd train options (-- --env CartPole-v1 --stop-steps 1500000 --no-stats --set progress_interval_seconds=0.2): give the same options to go on with it, or another --sweep-dir"
      ), "\(other.stderr)")
  }

  /// Whether process `pid` has ended (gone, or a zombie nobody reaped yet).
  func ended(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
      let close = stat.range(of: ") ", options: .backwards)
    else { return true }
    return stat[close.upperBound...].first == "Z"
  }

  /// A sweep killed outright (SIGKILL: nothing forwards a signal) takes its run
  /// down with it: the run sees its parent gone, stops cleanly with its
  /// checkpoint and an "interrupted" summary, and says why in its log.
  @Test func aKilledSweepsRunStopsCleanly() throws {
    let folder = HerdBinary.tempDir("sweep-kill")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: HerdBinary.path)
    p.arguments = [
      "sweep", "--seeds", "1", "--sweep-dir", folder, "--", "--env", "CartPole-v1", "--stop-steps", "100000000",
      "--no-stats", "--set", "progress_interval_seconds=0.2",
    ]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    let ready = folder + "/.seed-1.ready.json"
    var run: Int32?
    let deadline = Date(timeIntervalSinceNow: 60)
    while run == nil && Date() < deadline {
      run = (try? HerdBinary.json(ready))?["pid"] as? Int32
      usleep(50_000)
    }
    let pid = try #require(run, "the run's ready file \(ready)")
    kill(p.processIdentifier, SIGKILL)
    p.waitUntilExit()
    let gone = Date(timeIntervalSinceNow: 30)
    while !ended(pid) && Date() < gone { usleep(100_000) }
    #expect(ended(pid), "the run (pid \(pid)) outlived its sweep by 30 s")
    if !ended(pid) { kill(pid, SIGKILL) }
    let summary = try HerdBinary.json(folder + "/seed-1/summary.json")
    #expect(summary["stopped_because"] as? String == "interrupted", "\(summary)")
    #expect(FileManager.default.fileExists(atPath: folder + "/seed-1/checkpoint.herd"))
    let log = try String(contentsOfFile: folder + "/seed-1.log", encoding: .utf8)
    #expect(log.contains("herd train: parent process \(p.processIdentifier) is gone; stopping"), "\(log.suffix(2000))")
  }
}
