import Foundation
import HerdLearner
import HerdStats
import Testing

@testable import herd

/// How `herd train` and `herd learner` stop: by default, and on signals.
@Suite(.serialized) struct StopTests {
  /// Without stop options a run stops at the solved return of an environment
  /// whose scale Herd knows, or after 600 s; any other `gym:ID` on time alone (a
  /// return of 475 is out of Pong's reach and early for HalfCheetah's). Each
  /// option given replaces the defaults.
  @Test func withoutStopOptionsOnlyAKnownEnvironmentStopsAtAReturn() throws {
    let none = try StopOptions.parse([])
    for (env, reward) in [
      ("CartPole-v1", 475), ("StatelessCartPole-v1", 475), ("gym:CartPole-v1", 475), ("MemoryChain-v0", 0.9),
      ("PixelMemory-v0", 0.9), ("Pendulum-v1", -200), ("gym:Pendulum-v1", -200), ("StatelessPendulum-v1", -300),
    ] as [(String, Float)] {
      #expect(none.criteria(for: env) == StopCriteria(reward: reward, seconds: 600), "\(env)")
    }
    for env in ["gym:ALE/Pong-v5", "gym:HalfCheetah-v5", "gym:LunarLander-v3", "gym:CartPole-v0"] {
      #expect(none.criteria(for: env) == StopCriteria(seconds: 600), "\(env)")
    }
    let seconds = try StopOptions.parse(["--stop-seconds", "30"])
    #expect(seconds.criteria(for: "CartPole-v1") == StopCriteria(seconds: 30))
    let reward = try StopOptions.parse(["--stop-reward", "18"])
    #expect(reward.criteria(for: "gym:ALE/Pong-v5") == StopCriteria(reward: 18))
    let steps = try StopOptions.parse(["--stop-steps", "1000"])
    #expect(steps.criteria(for: "CartPole-v1") == StopCriteria(envSteps: 1000))
  }

  /// The terminal closing (an ssh session dropped) sends SIGHUP: a clean stop with
  /// the final checkpoint and summary, not death. Started with SIGHUP ignored
  /// (`nohup`), the run goes on.
  @Test func aHangupIsACleanStopUnlessIgnored() throws {
    let dir = HerdBinary.tempDir("hangup")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let args = [
      "train", "--env", "CartPole-v1", "--in-process", "--run-dir", dir, "--stop-seconds", "60", "--stop-reward",
      "100000", "--no-tensorboard", "--no-stats",
    ]
    let train = try HerdProcess(args)
    #expect(train.waitFor(30) { $0.contains("updates") }, "\(train.stderr.suffix(1500))")
    train.signal(SIGHUP)
    #expect(train.wait(30) == 130, "\(train.stderr.suffix(1500))")
    #expect(train.stderr.contains("SIGHUP (the terminal closed): stopping cleanly"), "\(train.stderr.suffix(800))")
    let files = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
    #expect(files.isSuperset(of: ["checkpoint.herd", "summary.json"]), "\(files)")

    let ignoring = try HerdProcess(args.map { $0 == dir ? dir + "-nohup" : $0 }, shell: "trap '' HUP")
    defer { try? FileManager.default.removeItem(atPath: dir + "-nohup") }
    #expect(ignoring.waitFor(30) { $0.contains("updates") }, "\(ignoring.stderr.suffix(1500))")
    ignoring.signal(SIGHUP)
    usleep(1_500_000)
    #expect(ignoring.process.isRunning, "nohup's SIGHUP is ignored: \(ignoring.stderr.suffix(800))")
    ignoring.signal(SIGTERM)
    #expect(ignoring.wait(30) == 130, "\(ignoring.stderr.suffix(800))")
  }

  /// `herd train | head`: the reader leaves after a few lines; the run still ends
  /// with its checkpoint and summary (it used to die of SIGPIPE at its next line).
  @Test func aReaderThatLeavesDoesNotKillTheRun() throws {
    let dir = HerdBinary.tempDir("pipe")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let command =
      "\"$0\" train --env CartPole-v1 --in-process --run-dir \"$1\" --stop-seconds 4 --stop-reward 100000 --no-stats 2>&1 | head -c 200 >/dev/null"
    let r = try HerdBinary.runCommand("/bin/bash", ["-c", command, HerdBinary.path, dir], timeout: 60)
    #expect(r.status == 0, "\(r.stderr)")
    let files = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
    #expect(files.isSuperset(of: ["checkpoint.herd", "summary.json"]), "\(files)")
  }

  /// `timeout` sends its signal to the process and then to the process group, so
  /// one request to stop arrives twice, microseconds apart. The second must not
  /// cut the clean stop short: a model big enough that its checkpoint takes a
  /// while to write (a 1024-unit LSTM: 101 MB with Adam's moments), the same
  /// signal again 100 ms after the first. Exit status 130, the checkpoint and the
  /// summary written, no temporary file left, and the stop said once.
  @Test func aSignalRepeatedAtOnceIsOneCleanStop() throws {
    let dir = HerdBinary.tempDir("twice")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let train = try HerdProcess([
      "train", "--env", "CartPole-v1", "--in-process", "--run-dir", dir, "--stop-seconds", "120", "--stop-reward",
      "100000", "--set", "lstm_cell_size=1024", "--set", "fcnet_hiddens=[1024]", "--set", "num_envs_per_worker=8",
      "--no-tensorboard",
    ])
    #expect(train.waitReady(20), "\(train.stderr)")
    #expect(train.waitForStats(60) { $0.updates > 0 }, "\(train.stderr.suffix(1500))")
    train.signal(SIGINT)
    usleep(100_000)
    train.signal(SIGINT)
    #expect(train.wait(60) == 130, "\(train.stderr.suffix(1500))")
    let files = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
    #expect(files.isSuperset(of: ["checkpoint.herd", "summary.json"]), "\(files)")
    #expect(!files.contains { $0.contains(".tmp.") }, "\(files)")
    let said = train.stderr.components(separatedBy: "Ctrl-C (SIGINT): stopping cleanly").count - 1
    #expect(said == 1, "\(train.stderr.suffix(1500))")
    #expect(train.stdout.contains("\"stopped_because\" : \"interrupted\""), "\(train.stdout)")
  }

  /// A run that evaluates (evaluation_interval_env_steps) and stops on its criteria
  /// ends with an evaluation of its final weights. Meanwhile `/healthz` says the
  /// run has stopped and what it is doing, not that it stalled (no fragment is
  /// trained then; --stall-seconds 1), and Ctrl-C skips it: exit 130, the
  /// checkpoint and summary written, `final_evaluation` null. (MemoryChain
  /// evaluated on chains of 10^8 steps: the evaluation would take minutes.)
  @Test func ctrlCSkipsTheFinalEvaluation() throws {
    let dir = HerdBinary.tempDir("final-eval")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let train = try HerdProcess([
      "train", "--env", "MemoryChain-v0", "--in-process", "--run-dir", dir, "--stop-steps", "20000", "--set",
      "evaluation_interval_env_steps=1000000", "--set", "evaluation_env_config.length=100000000", "--set",
      "evaluation_episodes=1", "--stats-port", "0", "--stall-seconds", "1", "--no-tensorboard",
    ])
    #expect(train.waitReady(20), "\(train.stderr)")
    let url = try #require(train.statsURL)
    #expect(
      train.waitFor(60) { $0.contains("final evaluation: policy version ") && $0.contains("Ctrl-C skips it") },
      "\(train.stderr.suffix(1500))")
    usleep(2_000_000)
    let health = try HTTPClient.get(url + "/healthz")
    #expect(health.status == 503, "\(health.text)")
    #expect(
      health.text.contains("the run has stopped: stop_steps reached; evaluating the final weights"), "\(health.text)")
    train.signal(SIGINT)
    #expect(train.wait(30) == 130, "\(train.stderr.suffix(1500))")
    let summary = try HerdBinary.json(dir + "/summary.json")
    #expect(summary["final_evaluation"] is NSNull && summary["evaluations"] as? Int == 0, "\(summary)")
    #expect(summary["stopped_because"] as? String == "stop_steps reached", "\(summary)")
    #expect(train.stderr.contains("final evaluation: skipped (Ctrl-C)"), "\(train.stderr.suffix(800))")
    #expect(FileManager.default.fileExists(atPath: dir + "/checkpoint.herd"))
  }
}
