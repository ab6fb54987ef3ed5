import Foundation
import HerdTestSupport
import Testing

@testable import herd

/// `herd train`'s worker processes when one dies.
@Suite(.serialized) struct ChildWorkerTests {
  /// A worker process killed outright (as the OOM killer would) after running a
  /// while is started again, joins as a new worker, and the run trains on; a
  /// signal then stops the run cleanly.
  @Test func aKilledWorkerProcessIsStartedAgain() throws {
    let dir = HerdBinary.tempDir("restart")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let train = try HerdProcess([
      "train", "--env", "CartPole-v1", "--run-dir", dir, "--stop-seconds", "120", "--stop-reward", "100000", "--set",
      "num_envs_per_worker=8", "--no-tensorboard",
    ])
    #expect(train.waitReady(20), "\(train.stderr)")
    #expect(train.waitForStats(60) { $0.updates > 0 }, "\(train.stderr.suffix(1500))")
    usleep(useconds_t((ChildWorkers().restartAfterSeconds + 1) * 1e6))
    let workers = childPIDs(of: train.process.processIdentifier)
    try #require(workers.count == 1, "\(workers)")
    kill(workers[0], SIGKILL)
    #expect(
      train.waitForStats(30) { d in d.workers.contains { $0.state == "connected" && $0.id > 1 } },
      "a new worker joins: \(train.stderr.suffix(1500))")
    let updates = train.stats?.updates ?? 0
    #expect(train.waitForStats(30) { $0.updates > updates }, "\(train.stderr.suffix(1500))")
    #expect(
      train.stderr.contains("warning: worker process 1 (pid \(workers[0])) was killed by signal 9"), "\(train.stderr.suffix(1500))")
    #expect(train.stderr.contains("starting it again in 1 s (restart 1 of 3 allowed within a minute)"))
    train.signal(SIGTERM)
    #expect(train.wait(60) == 130, "\(train.stderr.suffix(1500))")
    #expect(train.stdout.contains("\"stopped_because\" : \"interrupted\""), "\(train.stdout)")
    #expect(waitUntil(10) { childPIDs(of: train.process.processIdentifier).isEmpty })
  }

  /// A worker process that fails as it starts would fail again: it is not started
  /// again, and with no worker left the run cannot go on (``allFailed`` says
  /// why, with the child's last error line). A script stands in for `herd`.
  @Test func aWorkerThatFailsAtOnceIsNotStartedAgain() throws {
    let script = try Self.script("echo 'Error: broken on purpose' >&2; exit 3")
    defer { try? FileManager.default.removeItem(atPath: script) }
    let children = ChildWorkers(executable: script)
    children.start(count: 2, control: "tcp://127.0.0.1:1", seed: 0, logLevel: .info)
    #expect(waitUntil(10) { children.allFailed != nil })
    #expect(children.allFailed == "every worker process exited with an error (the last: broken on purpose)")
    usleep(1_500_000)
    #expect(children.restartCount == 0)
    children.stop()
  }

  /// One that dies after running long enough is started again, with a new seed,
  /// as often as allowed within a minute and no more; then it counts as failed.
  /// Each start here logs its arguments to a file the test reads.
  @Test func aWorkerIsStartedAgainAtMostAsOftenAsAllowed() throws {
    let log = HerdBinary.tempDir("starts")
    defer { try? FileManager.default.removeItem(atPath: log) }
    let script = try Self.script("echo \"$@\" >> \(log); sleep 0.3; exit 2")
    defer { try? FileManager.default.removeItem(atPath: script) }
    let children = ChildWorkers(restartAfterSeconds: 0.2, restartsPerMinute: 2, executable: script)
    children.start(count: 1, control: "tcp://127.0.0.1:1", seed: 10, logLevel: .info)
    #expect(waitUntil(20) { children.allFailed != nil })
    #expect(children.restartCount == 2)
    let starts = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n")
    #expect(starts.count == 3, "\(starts)")
    let seeds = starts.map { line in line.split(separator: " ").drop { $0 != "--seed" }.dropFirst().first.map(String.init) }
    #expect(seeds == ["11", "12", "13"], "\(starts)")
    #expect(starts.allSatisfy { $0.hasPrefix("worker --learner tcp://127.0.0.1:1 ") }, "\(starts)")
    children.stop()
  }

  /// An executable shell script running `body`.
  static func script(_ body: String) throws -> String {
    let path = HerdBinary.tempDir("worker") + ".sh"
    try ("#!/bin/sh\n" + body + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    chmod(path, 0o755)
    return path
  }
}
