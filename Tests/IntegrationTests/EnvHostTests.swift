import Foundation
import HerdNN
import HerdStats
import HerdTestSupport
import Testing

func waitUntil(_ timeout: Double, _ predicate: () -> Bool) -> Bool {
  let deadline = Date(timeIntervalSinceNow: timeout)
  while Date() < deadline {
    if predicate() { return true }
    usleep(100_000)
  }
  return predicate()
}

/// Gymnasium environments through real env host processes under real worker and
/// learner processes on loopback.
@Suite(.serialized, .enabled(if: envHostPython != nil || requireTools, "needs herd_env in a Python (make venv)"))
struct EnvHostTests {
  let python = envHostPython ?? "python3"

  /// `herd eval` on a Gymnasium run, through the env host, and `--record`: copy 0's
  /// first episode becomes a GIF with a frame per step plus the first; a built-in
  /// environment has no renderer and is refused.
  @Test func evalThroughTheEnvHostRecordsAnEpisode() throws {
    let dir = HerdBinary.tempDir("gymeval")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let train = try HerdBinary.run([
      "train", "--env", "gym:CartPole-v1", "--in-process", "--stop-steps", "20000", "--run-dir", dir, "--python",
      python, "--log-level", "warning", "--no-stats",
    ])
    #expect(train.status == 0, "\(train.stderr)")
    let gif = dir + "/episode.gif"
    let r = try HerdBinary.run([
      "eval", "--checkpoint", dir, "--episodes", "4", "--record", gif, "--python", python,
    ])
    #expect(r.status == 0, "\(r.stderr)")
    let out = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    #expect(out["env"] as? String == "gym:CartPole-v1" && out["episodes"] as? Int == 4)
    let data = try #require(FileManager.default.contents(atPath: gif))
    #expect(data.starts(with: Array("GIF89a".utf8)), "an animated GIF")
    #expect(r.stderr.contains("recorded an episode of"), "\(r.stderr)")
    let builtIn = HerdBinary.tempDir("mceval")
    defer { try? FileManager.default.removeItem(atPath: builtIn) }
    _ = try HerdBinary.run([
      "train", "--env", "MemoryChain-v0", "--in-process", "--stop-steps", "2000", "--run-dir", builtIn, "--no-stats",
    ])
    let refused = try HerdBinary.run(["eval", "--checkpoint", builtIn, "--record", builtIn + "/x.gif"])
    #expect(refused.status != 0 && refused.stderr.contains("has no renderer"), "\(refused.stderr)")
  }

  @Test func aKilledHostIsRestartedCountedAndSIGTERMLeavesNothingBehind() throws {
    let dir = HerdBinary.tempDir("gym")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let shmBefore = Set((try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? [])
    let learner = try HerdProcess([
      "learner", "--env", "gym:CartPole-v1", "--port", "0", "--run-dir", dir, "--stop-seconds", "150",
    ])
    #expect(learner.waitReady(10), "\(learner.stderr)")
    let endpoint = try #require(learner.controlEndpoint)
    let worker = try HerdProcess([
      "worker", "--learner", endpoint, "--python", python, "--env-processes", "2", "--envs", "8",
    ])
    #expect(learner.waitForWorkers(1, 60), "\(learner.stderr)\n\(worker.stderr)")
    #expect(learner.waitForStats(30) { $0.updates > 0 }, "\(learner.stderr.suffix(1500))")
    #expect(learner.stderr.contains("observations Box(4, float32)"), "the learner built its model from the worker's spec")
    let hosts = childPIDs(of: worker.process.processIdentifier)
    #expect(hosts.count == 2, "two env host processes: \(hosts)")
    // SIGKILL one host: the worker starts it again, counts it, and training goes on.
    kill(hosts[0], SIGKILL)
    #expect(learner.waitForStats(20) { $0.envHostRestarts == 1 }, "\(worker.stderr.suffix(1500))")
    #expect(worker.stderr.contains("was killed by signal 9; starting it again"))
    let updates = learner.stats?.updates ?? 0
    #expect(learner.waitForStats(20) { $0.updates > updates + 20 }, "training goes on")
    let hostsNow = childPIDs(of: worker.process.processIdentifier)
    #expect(hostsNow.count == 2 && !hostsNow.contains(hosts[0]))
    // SIGTERM: the worker says goodbye, its hosts exit, and no shared memory has a name.
    worker.signal(SIGTERM)
    #expect(worker.wait(20) == 0, "\(worker.stderr.suffix(1500))")
    #expect(waitUntil(5) { !hostsNow.contains(where: processAlive) }, "no env host left: \(hostsNow)")
    let shmAfter = Set((try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? [])
    #expect(shmAfter.subtracting(shmBefore).isEmpty, "nothing left in /dev/shm: \(shmAfter.subtracting(shmBefore))")
    learner.signal(SIGTERM)
    #expect(learner.wait(20) == 0)
    let spec = try String(contentsOfFile: dir + "/env_spec.json", encoding: .utf8)
    #expect(spec.contains(#""id":"CartPole-v1""#), "\(spec)")
  }

  /// `episode_info_keys` from the env host through a worker process and ZeroMQ to
  /// the learner's /stats, /metrics, progress.jsonl, summary.json, and `herd eval`:
  /// `odd` is in half the episodes (always 1), `label` is a string (no value).
  /// A learner whose own environments cannot be made (its --python lacks them)
  /// says so once and trains on: the evaluations stop, the run does not.
  @Test func evaluationsThatCannotRunLeaveTheRunGoing() throws {
    let dir = HerdBinary.tempDir("evaluations-fail")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let learner = try HerdProcess([
      "learner", "--env", "gym:CartPole-v1", "--port", "0", "--no-stats", "--run-dir", dir, "--stop-seconds", "6",
      "--python", "/nonexistent/python", "--set", "evaluation_interval_env_steps=2000",
    ])
    #expect(learner.waitReady(10), "\(learner.stderr)")
    let worker = try HerdProcess([
      "worker", "--learner", try #require(learner.controlEndpoint), "--envs", "8", "--python", python,
    ])
    #expect(learner.wait(60) == 0, "\(learner.stderr.suffix(2000))")
    worker.signal(SIGTERM)
    _ = worker.wait(10)
    #expect(
      learner.stderr.contains(
        "evaluation: cannot make 10 gym:CartPole-v1 environments in the learner's process: cannot start /nonexistent/python"
      ) && learner.stderr.contains("no more evaluations in this run"), "\(learner.stderr.suffix(2000))")
    let summary = try #require(try JSONSerialization.jsonObject(with: Data(learner.stdout.utf8)) as? [String: Any])
    #expect(summary["stopped_because"] as? String == "stop_seconds reached", "\(learner.stdout)")
    #expect((summary["updates"] as? Int ?? 0) > 0 && summary["evaluations"] as? Int == 0, "\(learner.stdout)")
  }

  @Test func episodeInfoKeysReachEveryReport() throws {
    let dir = HerdBinary.tempDir("gyminfo")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let learner = try HerdProcess([
      "learner", "--env", "gym:herd_env.testing_envs:HerdTest/Scored-v0", "--port", "0", "--run-dir", dir,
      "--stop-seconds", "150", "--set", #"episode_info_keys=["is_success", "odd", "label"]"#,
    ])
    #expect(learner.waitReady(10), "\(learner.stderr)")
    let endpoint = try #require(learner.controlEndpoint)
    let worker = try HerdProcess(["worker", "--learner", endpoint, "--python", python, "--envs", "8"])
    #expect(
      learner.waitForStats(60) { $0.episodesWindow >= 100 && $0.episodeInfo["is_success"] != nil },
      "\(learner.stderr.suffix(1500))\n\(worker.stderr.suffix(1500))")
    let s = try #require(learner.stats)
    #expect(s.episodeInfo.count == 3 && s.episodeInfo["odd"] == 1 && s.episodeInfo["label"] == .some(nil), "\(s.episodeInfo)")
    let success = try #require(s.episodeInfo["is_success"] ?? nil)
    #expect(success >= 0 && success <= 1)
    let metrics = String(decoding: try HTTPClient.get(try #require(learner.statsURL) + "/metrics", timeout: 5).body, as: UTF8.self)
    #expect(metrics.contains(#"herd_episode_info_mean{key="odd"} 1"#), "\(metrics.split(separator: "\n").filter { $0.contains("info") })")
    #expect(worker.stderr.contains("info['label'] at an episode's end is str 'done', not a number"), "\(worker.stderr)")
    #expect(learner.waitForStats(10) { $0.updates > 0 })
    usleep(2_500_000)  // a progress record with the means
    worker.signal(SIGTERM)
    #expect(worker.wait(20) == 0)
    learner.signal(SIGTERM)
    #expect(learner.wait(20) == 0, "\(learner.stderr.suffix(1500))")
    let summaryData = try #require(FileManager.default.contents(atPath: dir + "/summary.json"))
    let summary = try #require(try JSONSerialization.jsonObject(with: summaryData) as? [String: Any])
    let final = try #require(summary["final_episode_info"] as? [String: Any])
    #expect(final["odd"] as? Double == 1 && final["label"] is NSNull && final["is_success"] is Double, "\(final)")
    let progress = try String(contentsOfFile: dir + "/progress.jsonl", encoding: .utf8)
    let last = try #require(progress.split(separator: "\n").last)
    let record = try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
    #expect(record["episode_info/odd"] as? Double == 1 && record["episode_info/label"] is NSNull, "\(last)")
    #expect(learner.stderr.contains("  is_success 0.") || learner.stderr.contains("  is_success 1.000"), "the progress line")
    // A resumed learner's means go on from the checkpoint's windows, before any worker.
    let resumed = try HerdProcess(["learner", "--run-dir", dir, "--resume", "--port", "0", "--stop-seconds", "30"])
    #expect(
      resumed.waitForStats(20) { $0.episodeInfo["odd"] == 1 && $0.episodeInfo["is_success"] != nil },
      "\(resumed.stderr.suffix(1500))")
    resumed.signal(SIGTERM)
    #expect(resumed.wait(20) == 0)
    // herd eval: the run's keys, or --info-key's. Each env runs one episode: its first, an odd one.
    let eval = try HerdBinary.run([
      "eval", "--checkpoint", dir, "--episodes", "6", "--info-key", "odd", "--info-key", "steps", "--python", python,
    ])
    #expect(eval.status == 0, "\(eval.stderr)")
    let out = try #require(try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any])
    let info = try #require(out["info"] as? [String: [String: Any]])
    #expect(info["odd"]?["mean"] as? Double == 1 && info["odd"]?["episodes"] as? Int == 6, "\(info)")
    #expect(info["steps"]?["mean"] as? Double == 5 && info["steps"]?["std"] as? Double == 0, "\(info)")
    #expect(eval.stderr.contains("eval: info odd 1.000 +- 0.000 (min 1.000, max 1.000) over 6 episodes"), "\(eval.stderr)")
  }

  /// `--stop-info KEY=VALUE` ends a run once a recorded info key's mean reaches
  /// VALUE (Scored's success is learned within seconds); a key the run does not
  /// record, or a malformed target, is refused before anything starts.
  @Test func stopInfoEndsTheRunAtTheTarget() throws {
    let dir = HerdBinary.tempDir("stopinfo")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let env = "gym:herd_env.testing_envs:HerdTest/Scored-v0"
    let r = try HerdBinary.run([
      "train", "--env", env, "--set", #"episode_info_keys=["odd", "is_success"]"#, "--stop-info", "is_success=0.9",
      "--stop-seconds", "100", "--run-dir", dir, "--python", python, "--no-stats",
    ])
    #expect(r.status == 0, "\(r.stderr.suffix(1500))")
    let summary = try HerdBinary.json(dir + "/summary.json")
    #expect(summary["stopped_because"] as? String == "stop_info reached", "\(summary)")
    #expect(r.stderr.contains("or mean is_success >= 0.9") && r.stderr.contains("stop: is_success 0.9"), "\(r.stderr.prefix(2000))")
    #expect(((summary["wall_seconds"] as? Double) ?? 100) < 90)
    for (args, expected) in [
      (["--stop-info", "is_success=0.9"], "--stop-info is_success=0.9: is_success is not in episode_info_keys (here: none)"),
      (["--stop-info", "is_success"], "--stop-info must be KEY=VALUE with VALUE a number"),
      (["--stop-info", "is_success=high"], "--stop-info must be KEY=VALUE with VALUE a number"),
    ] {
      let bad = try HerdBinary.run(["train", "--env", env, "--run-dir", dir + "-bad", "--python", python] + args)
      #expect(bad.status != 0 && bad.stderr.contains(expected), "\(args): \(bad.stderr)")
      #expect(!FileManager.default.fileExists(atPath: dir + "-bad"), "nothing made")
    }
  }

  /// An environment whose steps mostly fail is said in a warning (a run on it
  /// learns nothing), and the worker's progress line counts the faults; a few
  /// faults are counted without a warning.
  @Test func mostStepsFailingIsAWarning() throws {
    for (every, warned) in [(1, true), (50, false)] {
      let dir = HerdBinary.tempDir("flaky\(every)")
      defer { try? FileManager.default.removeItem(atPath: dir) }
      let r = try HerdBinary.run([
        "train", "--env", "gym:herd_env.testing_envs:HerdTest/Flaky-v0", "--set", #"env_config={"fail_every": \#(every)}"#,
        "--set", "progress_interval_seconds=0.5", "--stop-seconds", "6", "--run-dir", dir, "--python", python, "--no-stats",
      ])
      #expect(r.status == 0, "\(r.stderr.suffix(1500))")
      let warning = r.stderr.split(separator: "\n").first { $0.contains("ended in an environment fault") }
      #expect((warning != nil) == warned, "fail_every \(every): \(r.stderr.suffix(2500))")
      if let warning { #expect(warning.hasPrefix("warning: worker 1: ") && warning.contains("teaches the policy nothing")) }
      #expect(r.stderr.contains("step errors, 0 non-finite, 0 host restarts"), "\(r.stderr.suffix(2500))")
    }
  }

  @Test func aWorkerWhoseEnvironmentDiffersIsRefusedOnBothSides() throws {
    let dir = HerdBinary.tempDir("gymdiff")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let learner = try HerdProcess([
      "learner", "--env", "gym:herd_env.testing_envs:HerdTest/Flaky-v0", "--port", "0", "--run-dir", dir,
      "--stop-seconds", "120",
    ])
    #expect(learner.waitReady(10), "\(learner.stderr)")
    let endpoint = try #require(learner.controlEndpoint)
    let first = try HerdProcess(["worker", "--learner", endpoint, "--python", python, "--envs", "4"])
    #expect(learner.waitForWorkers(1, 60), "\(learner.stderr)\n\(first.stderr)")
    // The same id, but this host's package makes a bigger observation.
    let other = try HerdProcess(
      ["worker", "--learner", endpoint, "--python", python, "--envs", "4"],
      environment: ["HERD_TEST_FLAKY_SIZE": "2"])
    #expect(other.wait(60) != 0, "the different worker gives up")
    let difference = "observation space Box(2, float32) here, Box(1, float32) in the run"
    #expect(other.stderr.contains(difference), "\(other.stderr.suffix(1500))")
    #expect(learner.stderr.contains("refused the worker") && learner.stderr.contains(difference))
    // Step errors from the first worker's Flaky environments reach /stats.
    #expect(learner.waitForStats(30) { $0.envStepErrors > 0 }, "\(learner.stats.map { "\($0.workers)" } ?? "")")
    first.signal(SIGTERM)
    learner.signal(SIGTERM)
    #expect(first.wait(20) == 0 && learner.wait(20) == 0)
  }

  @Test func ctrlCInHerdTrainLeavesNoHostProcess() throws {
    let dir = HerdBinary.tempDir("gymint")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let train = try HerdProcess([
      "train", "--env", "gym:CartPole-v1", "--in-process", "--python", python, "--env-processes", "2", "--run-dir", dir,
      "--stop-seconds", "120", "--set", "num_envs_per_worker=8",
    ])
    #expect(train.waitReady(10), "\(train.stderr)")
    #expect(waitUntil(60) { childPIDs(of: train.process.processIdentifier).count == 2 }, "\(train.stderr)")
    #expect(train.waitForStats(30) { $0.updates > 0 }, "\(train.stderr.suffix(1500))")
    let hosts = childPIDs(of: train.process.processIdentifier)
    train.signal(SIGINT)
    #expect(train.wait(30) == 130, "\(train.stderr.suffix(1500))")
    #expect(waitUntil(5) { !hosts.contains(where: processAlive) }, "no env host left: \(hosts)")
    #expect(FileManager.default.fileExists(atPath: dir + "/checkpoint.herd"))
  }

  /// A Dict observation of every kind of space and a MultiDiscrete action [3, 2]
  /// through one worker process: reward 1 per step when component 0 names the
  /// observed Discrete (random: 8/3 per 8-step episode, best 8). Generous target.
  /// `herd bench envhost` runs on every action space Herd acts in: its host part
  /// drew one Discrete action per row whatever the space (a precondition failure on
  /// a Box, a read past its array on a MultiDiscrete), and its inference part left
  /// a Box policy's previous action out. Smallest budget; no rate is checked.
  @Test(arguments: ["CartPole-v1", "herd_env.testing_envs:HerdTest/Spaces-v0", "Pendulum-v1"])
  func theEnvHostBenchRunsOnEveryActionSpace(env: String) throws {
    let r = try HerdBinary.run(
      [
        "bench", "envhost", "--env", env, "--envs", "2", "--seconds", "0.05", "--rounds", "1", "--no-async",
        "--python", python,
      ], timeout: 120)
    #expect(r.status == 0, "\(env): \(r.stderr.suffix(1500))")
    #expect(r.stdout.contains("herd bench envhost: \(env)"), "\(r.stdout)")
    #expect(r.stdout.contains("worker, P = 2, 2 groups/host"), "\(env): \(r.stdout)")
  }

  /// Action masking through the env host (TicTacToe's `action_mask`): with the
  /// mask no episode ever ends on a move to a taken square, training or in `herd
  /// eval`, and the policy learns to win; with `action_mask_key = ""` (the mask an
  /// input only) such moves end some of the episodes (a fifth of them at first).
  @Test func maskedMovesAreNeverPlayed() throws {
    let env = "gym:herd_env.games:Herd/TicTacToe-v0"
    func train(_ dir: String, _ extra: [String]) throws -> (stderr: String, info: [String: Any], illegal: [Double]) {
      let r = try HerdBinary.run(
        [
          "train", "--env", env, "--python", python, "--run-dir", dir, "--stop-seconds", "8", "--seed", "1", "--set",
          #"episode_info_keys=["illegal", "win"]"#,
        ] + extra, timeout: 90)
      #expect(r.status == 0, "\(r.stderr.suffix(1500))")
      let progress = try String(contentsOfFile: dir + "/progress.jsonl", encoding: .utf8).split(separator: "\n")
      let illegal = progress.compactMap {
        (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["episode_info/illegal"] as? Double
      }
      let info = try #require(try HerdBinary.json(dir + "/summary.json")["final_episode_info"] as? [String: Any])
      return (r.stderr, info, illegal)
    }
    let dir = HerdBinary.tempDir("masked")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let masked = try train(dir, [])
    #expect(masked.stderr.contains("observations Dict(action_mask: Box(9, int8), board: Box(9x3, float32))"))
    #expect(masked.stderr.contains("run: actions masked by the observation's 'action_mask' (entries 0..<9)"))
    #expect(masked.info["illegal"] as? Double == 0, "\(masked.info)")
    #expect((masked.info["win"] as? Double ?? 0) > 0.6, "a random legal player wins about 0.5: \(masked.info)")
    #expect(!masked.illegal.isEmpty && masked.illegal.allSatisfy { $0 == 0 }, "\(masked.illegal)")
    let eval = try HerdBinary.run(["eval", "--checkpoint", dir, "--episodes", "50", "--python", python])
    #expect(eval.status == 0, "\(eval.stderr)")
    #expect(eval.stderr.contains("eval: info illegal 0.000 +- 0.000"), "\(eval.stderr)")
    let explain = try HerdBinary.run(["explain", "--env", env, "--python", python])
    #expect(explain.stdout.contains("action mask        'action_mask' = o_t[0..<9]"), "\(explain.stdout.prefix(1500))")
    let plainDir = HerdBinary.tempDir("unmasked")
    defer { try? FileManager.default.removeItem(atPath: plainDir) }
    let plain = try train(plainDir, ["--set", #"action_mask_key="""#])
    #expect((plain.illegal.max() ?? 0) > 0.05, "\(plain.illegal)")
  }

  /// Agents whose spaces differ share the one policy through padding: in the
  /// signal game (`herd_env.testing_envs.signal_game`) a speaker sees the target
  /// (3 floats, 3 words) and a listener what was said (4 floats, 4 names). The
  /// worker says what was padded, the policy sees a Dict of the padded
  /// observation with the role and an action mask, and it learns to talk: a
  /// listener naming at random scores 2 per episode of 8 steps, one that repeats
  /// a speaker who says the target 7.3; the run must reach 6 (5-7 s in trials).
  /// `herd explain` says what was padded too.
  @Test func agentsOfDifferentSpacesShareOnePolicyAndLearnToTalk() throws {
    let env = "pz:herd_env.testing_envs:signal_game"
    let dir = HerdBinary.tempDir("signal")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let r = try HerdBinary.run(
      [
        "train", "--env", env, "--python", python, "--run-dir", dir, "--stop-reward", "6", "--stop-seconds", "90",
        "--seed", "1", "--no-stats",
      ], timeout: 180)
    #expect(r.status == 0, "\(r.stderr.suffix(1500))")
    #expect(
      r.stderr.contains(
        "\(env): the agents' spaces differ: observations (speaker_0 3, listener_0 4) padded with zeros to 4 and followed by a one-hot of the role (speaker, listener); actions Discrete(4), masked to each agent's own (speaker_0 3, listener_0 4)"
      ), "\(r.stderr.prefix(3000))")
    #expect(
      r.stderr.contains(
        "observations Dict(action_mask: Box(4, int8), observation: Box(6, float32)) (10 floats), actions Discrete(4)"),
      "\(r.stderr.prefix(3000))")
    #expect(r.stderr.contains("run: actions masked by the observation's 'action_mask'"), "\(r.stderr.prefix(3000))")
    let summary = try HerdBinary.json(dir + "/summary.json")
    #expect(summary["stop_reward_reached"] as? Bool == true, "\(summary)")
    #expect((summary["best_mean_return"] as? Double ?? 0) >= 6, "\(summary)")
    let explain = try HerdBinary.run(["explain", "--env", env, "--python", python])
    #expect(explain.status == 0, "\(explain.stderr)")
    #expect(
      explain.stdout.contains("  spaces             the agents' spaces differ: observations (speaker_0 3, listener_0 4)"),
      "\(explain.stdout.prefix(1500))")
  }

  /// A PettingZoo game through the env host (`pz:classic/connect_four-v3`): each
  /// game's two players take a row each and one policy plays both (self-play),
  /// the waiting player's mask all zeros. The final evaluation, against a random
  /// opponent (`herd_opponent`), is well above a random policy's (about 0; the
  /// greedy policy scored 0.75-0.88 from 200k steps on in trials); `herd eval`
  /// of the self-play game sums to exactly 0 (every game's two results are in
  /// it), and against random moves scores as the evaluation did. Rows that are
  /// not whole games are refused by name. A short run with a pool of past
  /// opponents reports its return against them; the trained policy beats that
  /// run's head to head (`herd eval --opponent`), and an opponent of other spaces
  /// is refused.
  @Test func selfPlayTrainsOnePolicyForEveryAgent() throws {
    let env = "pz:classic/connect_four-v3"
    let dir = HerdBinary.tempDir("selfplay")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let r = try HerdBinary.run(
      [
        "train", "--env", env, "--python", python, "--run-dir", dir, "--stop-steps", "250000", "--stop-seconds", "60",
        "--seed", "1", "--no-stats", "--set", "evaluation_interval_env_steps=1000000000", "--set",
        #"evaluation_env_config={"herd_opponent": "random"}"#, "--set", "evaluation_episodes=100",
      ], timeout: 150)
    #expect(r.status == 0, "\(r.stderr.suffix(1500))")
    #expect(
      r.stderr.contains("32 envs of \(env) (16 games of 2 agents, a row each, one policy)"), "\(r.stderr.prefix(2500))")
    let summary = try HerdBinary.json(dir + "/summary.json")
    let final = try #require(summary["final_evaluation"] as? [String: Any], "\(summary)")
    #expect((final["return_mean"] as? Double ?? -1) > 0.3, "\(final)")
    let selfPlay = try HerdBinary.run(["eval", "--checkpoint", dir, "--episodes", "64", "--envs", "32", "--python", python])
    #expect(selfPlay.status == 0, "\(selfPlay.stderr)")
    let zeroSum = try #require(
      (try JSONSerialization.jsonObject(with: Data(selfPlay.stdout.utf8)) as? [String: Any])?["return"] as? [String: Any])
    #expect(zeroSum["mean"] as? Double == 0, "\(zeroSum)")
    #expect(zeroSum["max"] as? Double == 1 && zeroSum["min"] as? Double == -1, "\(zeroSum)")
    let random = try HerdBinary.run([
      "eval", "--checkpoint", dir, "--episodes", "100", "--greedy", "--python", python, "--env-config",
      #"{"herd_opponent": "random"}"#,
    ])
    #expect(random.status == 0, "\(random.stderr)")
    let vsRandom = try #require(
      (try JSONSerialization.jsonObject(with: Data(random.stdout.utf8)) as? [String: Any])?["return"] as? [String: Any])
    #expect((vsRandom["mean"] as? Double ?? -1) > 0.3, "\(vsRandom)")
    let odd = try HerdBinary.run(
      [
        "train", "--env", env, "--python", python, "--run-dir", dir + "-odd", "--stop-steps", "1000", "--no-stats",
        "--set", "num_envs_per_worker=31",
      ], timeout: 60)
    defer { try? FileManager.default.removeItem(atPath: dir + "-odd") }
    #expect(odd.status != 0)
    #expect(odd.stderr.contains("num_envs_per_worker must be a multiple of 2 (30 or 32)"), "\(odd.stderr.suffix(1500))")
    // Without evaluations the log says how to see what self-play learns; with them it does not.
    #expect(odd.stderr.contains(#"evaluation_env_config={"herd_opponent": "random"}'"#), "\(odd.stderr.prefix(1500))")
    #expect(!r.stderr.contains("the mean return stays 0"), "\(r.stderr.prefix(1500))")
    let explain = try HerdBinary.run(["explain", "--env", env, "--python", python])
    #expect(
      explain.stdout.contains("agents             2 per game, a row each, all played by this one policy (self-play): K = 32 rows are 16 games"),
      "\(explain.stdout.prefix(1500))")
    #expect(explain.stdout.contains("past opponents     none (self_play_pool_size 0)"), "\(explain.stdout.prefix(1500))")

    // Past opponents: every game against one once the first snapshot is kept.
    let pooled = dir + "-pool"
    defer { try? FileManager.default.removeItem(atPath: pooled) }
    let p = try HerdBinary.run(
      [
        "train", "--env", env, "--python", python, "--run-dir", pooled, "--stop-steps", "30000", "--seed", "2",
        "--no-stats", "--set", "self_play_pool_size=4", "--set", "self_play_snapshot_interval=5", "--set",
        "self_play_past_fraction=1",
      ], timeout: 90)
    #expect(p.status == 0, "\(p.stderr.suffix(1500))")
    #expect(
      p.stderr.contains("self-play against the past: keeps its policy every 5 versions, the newest 4; one of them plays every seat but one in 100% of games"),
      "\(p.stderr.prefix(2500))")
    let vsPast = try String(contentsOfFile: pooled + "/progress.jsonl", encoding: .utf8).split(separator: "\n").compactMap {
      (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["episode_info/return_vs_past"] as? Double
    }
    #expect(!vsPast.isEmpty && vsPast.allSatisfy { (-1...1).contains($0) }, "\(vsPast)")
    // Head to head: the 250k-step policy against the 30k-step one, each seat in
    // turn (0.30-0.53 over 200 games in trials; 0 is a draw on the whole).
    let duel = try HerdBinary.run([
      "eval", "--checkpoint", dir, "--opponent", pooled, "--episodes", "400", "--python", python,
    ])
    #expect(duel.status == 0, "\(duel.stderr)")
    #expect(duel.stderr.contains("eval: against \(pooled)/checkpoint.herd"), "\(duel.stderr)")
    let duelResult = try #require(try JSONSerialization.jsonObject(with: Data(duel.stdout.utf8)) as? [String: Any])
    let duelReturn = try #require(duelResult["return"] as? [String: Any])
    #expect((duelReturn["mean"] as? Double ?? -1) > 0.1, "\(duelReturn)")
    #expect(duelResult["opponent"] as? String == pooled + "/checkpoint.herd", "\(duelResult)")
    let cartPole = dir + "-cartpole"
    defer { try? FileManager.default.removeItem(atPath: cartPole) }
    let c = try HerdBinary.run(
      ["train", "--env", "CartPole-v1", "--run-dir", cartPole, "--stop-steps", "1000", "--no-stats"], timeout: 60)
    #expect(c.status == 0, "\(c.stderr.suffix(1500))")
    let mismatched = try HerdBinary.run(["eval", "--checkpoint", dir, "--opponent", cartPole, "--python", python])
    #expect(mismatched.status != 0 && mismatched.stderr.contains("--opponent \(cartPole): a policy of observations"), "\(mismatched.stderr)")
    let missing = try HerdBinary.run(["eval", "--checkpoint", dir, "--opponent", dir + "-nowhere", "--python", python])
    #expect(missing.status != 0 && missing.stderr.contains("--opponent \(dir)-nowhere: "), "\(missing.stderr)")
    let lone = try HerdBinary.run(["eval", "--checkpoint", cartPole, "--opponent", cartPole, "--episodes", "2"])
    #expect(lone.status != 0 && lone.stderr.contains("one agent per game"), "\(lone.stderr)")
  }

  @Test func multiDiscreteActionsTrainEndToEnd() throws {
    let dir = HerdBinary.tempDir("gymmd")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let r = try HerdBinary.run(
      [
        "train", "--env", "gym:herd_env.testing_envs:HerdTest/Spaces-v0", "--python", python, "--run-dir", dir,
        "--stop-reward", "6", "--stop-seconds", "90", "--seed", "1", "--set", "use_lstm=false",
      ], timeout: 150)
    #expect(r.status == 0, "\(r.stderr.suffix(1500))")
    let summary = try HerdBinary.json(dir + "/summary.json")
    #expect(summary["stop_reward_reached"] as? Bool == true, "\(summary)")
    #expect(r.stderr.contains("actions MultiDiscrete([3, 2])"), "\(r.stderr.prefix(2000))")
    #expect(r.stderr.contains("text (Text) is not numbers"), "the dropped part is logged")
  }

  /// A Box action space through the env host: gym:Pendulum-v1 with the Pendulum
  /// preset (configs/Pendulum-v1.json) trains end to end: float32 actions in the
  /// host's shared memory, clipped to the bounds, on the wire as [n, 1] floats.
  /// A random policy averages about -1200; 150k steps reach better than -900.
  @Test func boxActionsTrainEndToEnd() throws {
    let dir = HerdBinary.tempDir("gympend")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let preset = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("configs/Pendulum-v1.json").path
    let r = try HerdBinary.run(
      [
        "train", "--env", "gym:Pendulum-v1", "--config", preset, "--python", python, "--run-dir", dir,
        "--stop-steps", "150000", "--seed", "1", "--no-stats",
      ], timeout: 150)
    #expect(r.status == 0, "\(r.stderr.suffix(1500))")
    #expect(r.stderr.contains("actions Box(1, float32)"), "\(r.stderr.prefix(2000))")
    let summary = try HerdBinary.json(dir + "/summary.json")
    #expect((summary["best_mean_return"] as? Double ?? -9999) > -900, "\(summary)")
    #expect((summary["env_steps"] as? Int ?? 0) >= 150_000)
  }

  /// A Box environment with no config at all starts: the Gymnasium defaults'
  /// previous-action input is turned off for it (logged, and in config.json), while
  /// asking for it explicitly keeps it: the run trains with the action's float as
  /// an input, through the env host, the worker's fragments and the wire.
  @Test func aBoxEnvironmentTrainsFromTheGymDefaults() throws {
    let dir = HerdBinary.tempDir("gymbox")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let r = try HerdBinary.run(
      ["train", "--env", "gym:Pendulum-v1", "--python", python, "--run-dir", dir, "--stop-steps", "3000", "--no-stats"],
      timeout: 120)
    #expect(r.status == 0, "\(r.stderr.suffix(1500))")
    #expect(r.stderr.contains("lstm_use_prev_action is off"), "\(r.stderr.prefix(2000))")
    let config = try HerdBinary.json(dir + "/config.json")
    #expect(config["lstm_use_prev_action"] as? Bool == false && config["lstm_use_prev_reward"] as? Bool == true)
    let asked = try HerdBinary.run(
      [
        "train", "--env", "gym:Pendulum-v1", "--python", python, "--run-dir", dir + "-asked", "--stop-steps", "3000",
        "--set", "lstm_use_prev_action=true", "--no-stats",
      ], timeout: 120)
    defer { try? FileManager.default.removeItem(atPath: dir + "-asked") }
    #expect(asked.status == 0 && !asked.stderr.contains("lstm_use_prev_action is off"), "\(asked.stderr.suffix(1500))")
    let askedConfig = try HerdBinary.json(dir + "-asked/config.json")
    #expect(askedConfig["lstm_use_prev_action"] as? Bool == true)
    let summary = try HerdBinary.json(dir + "-asked/summary.json")
    #expect((summary["env_steps"] as? Int ?? 0) >= 3000 && (summary["updates"] as? Int ?? 0) > 0, "\(summary)")
    #expect(!asked.stderr.contains("dropped messages by reason"), "no fragment refused: \(asked.stderr.suffix(1500))")
  }

  /// `herd learner` fits the Gymnasium defaults to a Box action space as `herd
  /// train` does (it kept the previous action as an input, which the workers then
  /// took from its config); without a Python to ask on the learner's host it keeps
  /// the defaults and says so.
  @Test func theLearnerFitsTheGymDefaultsToBoxActionsToo() throws {
    func learner(_ dir: String, python: String) throws -> (stderr: String, prevAction: Bool?) {
      defer { try? FileManager.default.removeItem(atPath: dir) }
      let r = try HerdBinary.runCommand(
        HerdBinary.path,
        ["learner", "--env", "gym:Pendulum-v1", "--port", "0", "--stop-seconds", "1", "--no-stats", "--run-dir", dir],
        environment: ["HERD_PYTHON": python], timeout: 60)
      #expect(r.status == 0, "\(r.stderr.suffix(1500))")
      return (r.stderr, try HerdBinary.json(dir + "/config.json")["lstm_use_prev_action"] as? Bool)
    }
    let fitted = try learner(HerdBinary.tempDir("gymlearner"), python: python)
    #expect(fitted.prevAction == false && fitted.stderr.contains("lstm_use_prev_action is off"), "\(fitted.stderr)")
    let unasked = try learner(HerdBinary.tempDir("gymlearner-nopy"), python: "/nonexistent/python")
    #expect(unasked.prevAction == true, "\(unasked.stderr)")
    #expect(unasked.stderr.contains("cannot ask gym:Pendulum-v1's action space on this host"), "\(unasked.stderr)")
  }

  /// Atari through the env host with Herd's preprocessing and the Atari preset:
  /// 84x84 grey frames as bytes in the host's shared memory, the IMPALA shallow
  /// encoder with an LSTM on the learner, a checkpoint with the conv weights.
  /// Not a learning test (Pong takes millions of frames); it checks the chain.
  @Test func atariFramesTrainThroughTheConvEncoder() throws {
    let dir = HerdBinary.tempDir("pong")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let preset = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("configs/pong.json").path
    let r = try HerdBinary.run(
      [
        "train", "--config", preset, "--python", python, "--run-dir", dir, "--stop-steps", "4000", "--seed", "1",
        "--set", "num_envs_per_worker=8", "--no-stats",
      ], timeout: 150)
    #expect(r.status == 0, "\(r.stderr.suffix(1500))")
    #expect(r.stderr.contains("observations Box(84x84x1, uint8)") && r.stderr.contains("Discrete(6)"), "\(r.stderr.prefix(2000))")
    let summary = try HerdBinary.json(dir + "/summary.json")
    #expect((summary["env_steps"] as? Int ?? 0) >= 4000 && (summary["updates"] as? Int ?? 0) >= 2, "\(summary)")
    let archive = try TensorArchive.read(from: dir + "/checkpoint.herd")
    #expect(archive.entry("param/conv.0.weight") != nil && archive.entry("param/core.weight_ih") != nil)
  }
}
