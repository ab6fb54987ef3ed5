import Foundation
import HerdTestSupport
import Testing

@testable import HerdEnvs

/// Options for an env host test with the interpreter that has herd_env.
enum EnvHostPython {
  static var available: Bool { envHostPython != nil || requireTools }

  static func options(_ id: String, config: String = "{}", count: Int, processes: Int, seed: UInt64 = 7)
    -> HostedEnvironments.Options
  {
    HostedEnvironments.Options(
      id: id, config: config, count: count, processes: processes, seed: seed, python: envHostPython ?? "python3")
  }
}

@Suite(.serialized, .enabled(if: EnvHostPython.available, "needs herd_env in a Python (make venv)"))
struct HostedEnvironmentsTests {
  /// Steps every group with `action` and collects it.
  func stepAll(_ envs: HostedEnvironments, action: Int32 = 1) throws {
    let actions = [Int32](repeating: action, count: envs.count)
    try actions.withUnsafeBufferPointer { a in
      for g in envs.groups.indices { try envs.beginStep(group: g, actions: a.baseAddress!) }
      for g in envs.groups.indices { try envs.finishStep(group: g) }
    }
  }

  @Test func cartPoleThroughTwoHostsHasGymnasiumsSpacesAndEpisodes() throws {
    let envs = try HostedEnvironments(
      EnvHostPython.options("CartPole-v1", config: #"{"max_episode_steps":30}"#, count: 6, processes: 2), log: { _ in })
    defer { envs.close() }
    #expect(envs.groups == [0..<1, 1..<3, 3..<4, 4..<6], "two groups per host by default")
    #expect(envs.spec.id == "CartPole-v1" && envs.spec.action == .discrete(n: 2, start: 0))
    guard case .box(let shape, "float32", let low, _) = envs.spec.observation else {
      Issue.record("observation space \(envs.spec.observation)")
      return
    }
    #expect(shape == [4] && low.count == 4 && low[1] == -.infinity)
    try envs.reset()
    // Reset observations are Gymnasium's U(-0.05, 0.05) draws, distinct per copy (seed + i).
    #expect(envs.observations.allSatisfy { abs($0) <= 0.05 })
    #expect(Set(stride(from: 0, to: 24, by: 4).map { envs.observations[$0] }).count == 6)
    var ends = 0
    for _ in 0..<40 {
      try stepAll(envs)
      for (i, o) in envs.outcomes.enumerated() where o.done {
        ends += 1
        // The final observation is the episode's last; the row already holds the next start.
        #expect(envs.finalObservations[(i * 4)..<(i * 4 + 4)] != envs.observations[(i * 4)..<(i * 4 + 4)])
        #expect(envs.observations[(i * 4)..<(i * 4 + 4)].allSatisfy { abs($0) <= 0.05 })
      }
    }
    #expect(ends >= 6, "always pushing right ends every episode within 40 steps")
    #expect(envs.faults == EnvFaults())
  }

  /// A PettingZoo game takes a row per agent: hosts and row groups split along
  /// whole games (3 runners each in `parallel_race`), a count that is not whole
  /// games is rounded up or refused as asked, and a game's rows end together.
  @Test func pettingZooGamesAreSplitAlongWholeGames() throws {
    let race = "pz:herd_env.testing_envs:parallel_race"
    var options = EnvHostPython.options(race, count: 9, processes: 2)
    let envs = try HostedEnvironments(options, log: { _ in })
    defer { envs.close() }
    #expect(envs.agentsPerGame == 3 && envs.count == 9)
    #expect(envs.groups == [0..<3, 3..<6, 6..<9], "host 0 holds one game (one group), host 1 two")
    try envs.reset()
    for step in 1...4 {
      try stepAll(envs, action: 1)
      // Runners need 2, 3 and 4 points: runner i waits from step i + 3 on with
      // reward 0, and every row ends at step 4, terminated.
      let rewards = envs.outcomes.map(\.reward)
      #expect(rewards == (0..<9).map { i -> Float in step <= i % 3 + 2 ? 1 : 0 }, "step \(step)")
      #expect(envs.outcomes.allSatisfy { $0.terminated == (step == 4) && !$0.truncated })
    }
    // One host of three games in two groups: the host splits them as the worker
    // does (one game and two), not at row 4, inside the second game.
    var one = EnvHostPython.options(race, count: 9, processes: 1)
    one.groupsPerHost = 2
    let uneven = try HostedEnvironments(one, log: { _ in })
    defer { uneven.close() }
    #expect(uneven.groups == [0..<3, 3..<9])
    try uneven.reset()
    try stepAll(uneven, action: 1)
    #expect(uneven.outcomes.allSatisfy { $0.reward == 1 })
    options.count = 4
    let rounded = try HostedEnvironments(options, log: { _ in })
    defer { rounded.close() }
    #expect(rounded.count == 6, "an evaluation's 4 rows round up to 2 games")
    options.roundUpToGames = false
    #expect {
      try HostedEnvironments(options, log: { _ in })
    } throws: { error in
      "\(error)".contains("4 rows are not whole games: num_envs_per_worker must be a multiple of 3 (3 or 6)")
    }
  }

  @Test func aKilledHostIsStartedAgainAndItsEpisodesEndTruncated() throws {
    var lines: [String] = []
    let envs = try HostedEnvironments(
      EnvHostPython.options("CartPole-v1", count: 4, processes: 2), log: { lines.append($0) })
    defer { envs.close() }
    try envs.reset()
    try stepAll(envs, action: 0)
    let before = envs.hostPIDs
    let rowsBefore = Array(envs.observations[0..<8])
    kill(before[0], SIGKILL)
    try stepAll(envs, action: 0)
    #expect(envs.faults.hostRestarts == 1)
    #expect(envs.hostPIDs[0] != before[0] && envs.hostPIDs[1] == before[1])
    #expect(!processAlive(before[0]))
    #expect(envs.outcomes[0..<2].allSatisfy { $0.truncated && !$0.terminated && $0.reward == 0 })
    #expect(Array(envs.finalObservations[0..<8]) == rowsBefore, "bootstrap from the last observation seen")
    #expect(lines.contains { $0.contains("was killed by signal 9") && $0.contains("starting it again") }, "\(lines)")
    // And it goes on stepping.
    for _ in 0..<5 { try stepAll(envs) }
    #expect(envs.faults.hostRestarts == 1)
  }

  /// A slow step (a sixth of the timeout or more) is logged once per host process,
  /// and the waiting handler is called while it lasts (the rollout worker's
  /// heartbeats); a fast one calls neither.
  @Test func aSlowStepIsSaidOnceAndTheWaitIsReported() throws {
    var options = EnvHostPython.options(
      "herd_env.testing_envs:HerdTest/Slow-v0", config: #"{"slow_every":2,"seconds":1.4}"#, count: 1, processes: 1)
    options.stepSeconds = 3
    var lines: [String] = []
    let envs = try HostedEnvironments(options, log: { lines.append($0) })
    defer { envs.close() }
    var waits: [Double] = []
    envs.setWaitingHandler { waits.append($0) }
    try envs.reset()
    try stepAll(envs)  // call 1: fast
    #expect(waits.isEmpty && lines.isEmpty, "\(waits) \(lines)")
    try stepAll(envs)  // call 2: 1.4 s (the handler every half second)
    #expect(waits.count >= 2 && waits.allSatisfy { $0 > 0.4 && $0 < 1.4 }, "\(waits)")
    let slow = lines.filter { $0.contains("a step has taken") }
    #expect(slow.count == 1 && slow[0].contains("at 3.0 s (env_step_timeout_seconds) it is taken as hung"), "\(lines)")
    try stepAll(envs)
    try stepAll(envs)  // call 4: slow again, not said again
    #expect(lines.filter { $0.contains("a step has taken") }.count == 1, "\(lines)")
    #expect(envs.faults.hostRestarts == 0)
    envs.setWaitingHandler(nil)
  }

  /// A step that does not finish within the timeout: the host is taken as hung,
  /// asked for its stack, killed and started again, its episodes end truncated and
  /// stepping goes on.
  @Test func aHungHostIsKilledAtTheTimeoutAndStartedAgain() throws {
    var options = EnvHostPython.options(
      "herd_env.testing_envs:HerdTest/Slow-v0", config: #"{"slow_every":3,"seconds":600}"#, count: 2, processes: 1)
    options.stepSeconds = 1.2
    options.groupsPerHost = 1
    var lines: [String] = []
    let envs = try HostedEnvironments(options, log: { lines.append($0) })
    defer { envs.close() }
    try envs.reset()
    try stepAll(envs)
    try stepAll(envs)
    let pid = envs.hostPIDs[0]
    let start = Date()
    try stepAll(envs)  // call 3 sleeps for ten minutes
    let took = -start.timeIntervalSinceNow
    #expect(took >= 1.2 && took < 30, "\(took)")
    #expect(envs.faults.hostRestarts == 1 && !processAlive(pid) && envs.hostPIDs[0] != pid)
    #expect(envs.outcomes.allSatisfy { $0.truncated && !$0.terminated }, "\(envs.outcomes)")
    #expect(
      lines.contains {
        $0.contains("(pid \(pid)) did not finish a step within 1.2 s (env_step_timeout_seconds); taking it as hung")
      }, "\(lines)")
    try stepAll(envs)
    try stepAll(envs)
    #expect(envs.faults.hostRestarts == 1)
  }

  /// An error from the waiting handler ends the wait at once and is thrown on
  /// (the worker is stopping): no waiting out the timeout of a hung host, and
  /// closing afterwards leaves no host process.
  @Test func theWaitingHandlerCanEndTheWait() throws {
    struct Stop: Error {}
    var options = EnvHostPython.options(
      "herd_env.testing_envs:HerdTest/Slow-v0", config: #"{"slow_every":1,"seconds":600}"#, count: 1, processes: 1)
    options.stepSeconds = 60
    let envs = try HostedEnvironments(options, log: { _ in })
    try envs.reset()
    let pid = envs.hostPIDs[0]
    envs.setWaitingHandler { waited in if waited > 1 { throw Stop() } }
    let start = Date()
    #expect(throws: Stop.self) { try stepAll(envs) }
    #expect(-start.timeIntervalSinceNow < 5)
    let closing = Date()
    #expect(envs.faults.hostRestarts == 0)
    envs.close()
    #expect(!processAlive(pid))
    #expect(-closing.timeIntervalSinceNow < 2, "a host busy with an abandoned step is killed, not asked to quit")
  }

  /// A worker's order with two groups per host: finish a group, act, begin it, then
  /// the next. The host steps one group while the other's actions are chosen; a
  /// host killed meanwhile ends both groups' episodes (the one under way too) and
  /// the stepping goes on without another restart or a stray answer.
  @Test func groupsOfOneHostInterleaveAndSurviveAKill() throws {
    var options = EnvHostPython.options("CartPole-v1", count: 4, processes: 1)
    options.stepSeconds = 10
    let envs = try HostedEnvironments(options, log: { _ in })
    defer { envs.close() }
    #expect(envs.groups == [0..<2, 2..<4])
    var one = EnvHostPython.options("CartPole-v1", count: 4, processes: 1)
    one.groupsPerHost = 1
    let single = try HostedEnvironments(one, log: { _ in })
    defer { single.close() }
    #expect(single.groups == [0..<4])
    try envs.reset()
    try single.reset()
    let actions = [Int32](repeating: 1, count: 4)
    func interleaved(_ rounds: Int, kill pid: Int32? = nil) throws {
      try actions.withUnsafeBufferPointer { a in
        for r in 0..<rounds {
          for g in envs.groups.indices {
            try envs.finishStep(group: g)
            if r == 1, g == 1, let pid { kill(pid, SIGKILL) }  // group 0 is under way
            try envs.beginStep(group: g, actions: a.baseAddress!)
          }
        }
        for g in envs.groups.indices { try envs.finishStep(group: g) }
      }
    }
    // Same seeds and actions, one group or two: the same episodes.
    try interleaved(12)
    for _ in 0..<12 {
      try actions.withUnsafeBufferPointer { a in
        try single.beginStep(group: 0, actions: a.baseAddress!)
        try single.finishStep(group: 0)
      }
    }
    #expect(envs.observations == single.observations)
    let pid = envs.hostPIDs[0]
    try interleaved(3, kill: pid)
    #expect(envs.faults.hostRestarts == 1 && !processAlive(pid))
    try interleaved(8)
    #expect(envs.faults.hostRestarts == 1, "no stray or missing answer after the restart")
    #expect(envs.observations.allSatisfy { $0.isFinite })
  }

  @Test func stepErrorsAndNonFiniteObservationsAreCountedAndTrainingGoesOn() throws {
    let flaky = try HostedEnvironments(
      EnvHostPython.options(
        "herd_env.testing_envs:HerdTest/Flaky-v0", config: #"{"fail_every":4}"#, count: 2, processes: 1),
      log: { _ in })
    defer { flaky.close() }
    try flaky.reset()
    for n in 1...8 {
      let before = flaky.observations
      try stepAll(flaky)
      if n == 4 {
        // The 4th call raises: truncated, and the bootstrap is the observation the
        // action was taken on (t = 3); the remade environment starts again at t = 0.
        #expect(flaky.outcomes.allSatisfy { $0.truncated && $0.reward == 0 })
        #expect(flaky.finalObservations == before && before == [0.3, 0.3])
        #expect(flaky.observations == [0, 0])
      }
    }
    #expect(flaky.faults.stepErrors == 4)  // calls 4 and 8 of each copy
    let bad = try HostedEnvironments(
      EnvHostPython.options(
        "herd_env.testing_envs:HerdTest/NonFinite-v0", config: #"{"bad_every":3}"#, count: 2, processes: 1),
      log: { _ in })
    defer { bad.close() }
    try bad.reset()
    for _ in 0..<6 {
      try stepAll(bad)
      #expect(bad.observations.allSatisfy(\.isFinite) && bad.finalObservations.allSatisfy(\.isFinite))
    }
    #expect(bad.faults.nonFiniteObservations == 4)
  }

  /// The info keys of each episode's last step reach the worker's rows through two
  /// hosts; an episode a killed host ended has none.
  @Test func episodeInfoKeysArriveAtEachEpisodesEnd() throws {
    var options = EnvHostPython.options(
      "herd_env.testing_envs:HerdTest/Scored-v0", config: #"{"length":2}"#, count: 4, processes: 2)
    options.infoKeys = ["steps", "is_success", "odd"]
    let envs = try HostedEnvironments(options, log: { _ in })
    defer { envs.close() }
    #expect(envs.infoKeyCount == 3 && envs.episodeInfo.count == 12)
    try envs.reset()
    for episode in 1...3 {
      try stepAll(envs, action: 0)
      #expect(envs.outcomes.allSatisfy { !$0.done })
      try stepAll(envs, action: episode == 2 ? 0 : 1)
      #expect(envs.outcomes.allSatisfy { $0.terminated })
      for i in 0..<4 {
        let row = Array(envs.episodeInfo[(i * 3)..<(i * 3 + 3)])
        #expect(row[0] == 2 && row[1] == (episode == 2 ? 0 : 1), "episode \(episode), row \(i): \(row)")
        #expect(episode % 2 == 1 ? row[2] == 1 : row[2].isNaN, "episode \(episode), row \(i): \(row)")
      }
    }
    try stepAll(envs)
    kill(envs.hostPIDs[1], SIGKILL)
    try stepAll(envs)
    #expect(envs.outcomes[2..<4].allSatisfy { $0.truncated })
    #expect(envs.episodeInfo[6..<12].allSatisfy { $0.isNaN }, "\(envs.episodeInfo)")
    #expect(envs.outcomes[0..<2].allSatisfy(\.terminated) && envs.episodeInfo[0] == 2 && envs.episodeInfo[3] == 2)
  }

  @Test func everySpaceKindFlattensAsDocumented() throws {
    let envs = try HostedEnvironments(
      EnvHostPython.options("herd_env.testing_envs:HerdTest/Spaces-v0", count: 1, processes: 1), log: { _ in })
    defer { envs.close() }
    #expect(envs.observationSize == 3 + 4 + 3 + 5 + 2 + 2)
    #expect(envs.spec.observation.droppedParts == ["text (Text)"])
    #expect(envs.actionDims == 2)
    #expect(try envs.spec.action.actionHeads() == [3, 2])
    try envs.reset()
    let o = envs.observations
    #expect(o[0..<3].allSatisfy { $0 == 0 || $0 == 1 })  // bits
    #expect(o[7..<10].reduce(0, +) == 1)  // cat: one-hot
    #expect(o[10..<12].reduce(0, +) == 1 && o[12..<15].reduce(0, +) == 1)  // multi: two one-hots
  }

  @Test func startupErrorsNameTheEnvironment() throws {
    func message(_ o: HostedEnvironments.Options) -> String {
      do {
        _ = try HostedEnvironments(o, log: { _ in })
        return "no error"
      } catch { return "\(error)" }
    }
    let unknown = message(EnvHostPython.options("NoSuchEnv-v3", count: 1, processes: 1))
    #expect(unknown.contains("NoSuchEnv-v3") && unknown.contains("cannot be made"), "\(unknown)")
    let noModule = message(EnvHostPython.options("no_such_module:Thing-v0", count: 1, processes: 1))
    #expect(noModule.contains("no_such_module"), "\(noModule)")
    let intBox = message(EnvHostPython.options("herd_env.testing_envs:HerdTest/IntBoxAction-v0", count: 1, processes: 1))
    #expect(intBox.contains("Box") && intBox.contains("Discrete") && intBox.contains("float"), "\(intBox)")
    var badPython = EnvHostPython.options("CartPole-v1", count: 1, processes: 1)
    badPython.python = "/nonexistent/python"
    #expect(message(badPython).contains("--python"))
  }

  /// A herd_env from another version of Herd (another layout, or one from before
  /// the layout was said: version 1) is named as such before the memory is mapped.
  @Test func aHerdEnvOfAnotherVersionIsSaidSo() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("herd-oldenv-\(getpid())").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    for (name, line, expected) in [
      ("old", #"{"id": "CartPole-v1", "config": "{}"}"#, "lays out shared memory version 1, this herd version 2"),
      ("new", #"{"layout": 3, "herd_env": "/elsewhere/herd_env"}"#,
       "(/elsewhere/herd_env) lays out shared memory version 3, this herd version 2"),
    ] {
      // A stand-in interpreter that answers like a host of that version.
      let script = dir + "/" + name
      try "#!/bin/sh\necho '\(line)'\ncat >/dev/null\n".write(toFile: script, atomically: true, encoding: .utf8)
      chmod(script, 0o755)
      var o = EnvHostPython.options("CartPole-v1", count: 1, processes: 1)
      o.python = script
      let m: String
      do {
        _ = try HostedEnvironments(o, log: { _ in })
        m = "no error"
      } catch { m = "\(error)" }
      #expect(m.contains(expected) && m.contains("different versions of Herd") && m.contains("pip install -e python/"), "\(m)")
    }
  }

  @Test func closingLeavesNoHostProcess() throws {
    let envs = try HostedEnvironments(EnvHostPython.options("CartPole-v1", count: 2, processes: 2), log: { _ in })
    let pids = envs.hostPIDs
    #expect(pids.allSatisfy(processAlive))
    envs.close()
    #expect(!pids.contains(where: processAlive))
  }
}
