import Synchronization
import HerdEnvs
import HerdMath
import HerdNN
@testable import HerdRL
import HerdTestSupport
import Testing

func smallConfig(_ env: String = "MemoryChain-v0") -> TrainingConfig {
  var c = TrainingConfig.defaults(for: env)
  c.num_envs_per_worker = 4
  c.max_seq_len = 4
  c.lstm_cell_size = 8
  c.fcnet_hiddens = [6]
  c.env_config.length = 6
  return c
}

@Suite struct FragmentTests {
  /// Fragments hold at most T steps, never cross an episode, carry the right end
  /// flag and bootstrap observation, and tile each episode exactly.
  @Test(arguments: ["MemoryChain-v0", "CartPole-v1"])
  func fragmentsTileEpisodesWithoutCrossingThem(env: String) throws {
    var config = smallConfig(env)
    config.env_config.max_episode_steps = 9  // CartPole: truncations too
    let spaces = try EnvironmentFactory.spaces(config)
    let net = PolicyNetwork(config: config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
    let worker = try RolloutWorker(config: config, network: net, workerID: 2, seed: 1)
    try worker.setWeights(worker.parameters.flatValues, version: 7)
    var fragments: [Fragment] = []
    var episodes: [EpisodeRecord] = []
    for _ in 0..<60 { try worker.step(emit: { fragments.append($0) }, episode: { episodes.append($0) }) }
    #expect(!fragments.isEmpty && !episodes.isEmpty)
    // Both carry the version the worker acted with (the record's weights are found by it).
    #expect(fragments.allSatisfy { $0.policyVersion == 7 } && episodes.allSatisfy { $0.policyVersion == 7 })
    var byEpisode: [UInt64: [Fragment]] = [:]
    for f in fragments {
      #expect(f.length >= 1 && f.length <= config.max_seq_len)
      #expect(f.observations.count == (f.length + 1) * spaces.observationSize)
      #expect(f.workerID == 2 && f.runID == worker.runID)
      if f.indexInEpisode == 0 { #expect(f.stateIn.allSatisfy { $0 == 0 } && f.prevAction == 0 && f.prevReward == 0) }
      byEpisode[f.episodeID, default: []].append(f)
    }
    for (_, list) in byEpisode {
      let sorted = list.sorted { $0.indexInEpisode < $1.indexInEpisode }
      var next = 0
      for (k, f) in sorted.enumerated() {
        #expect(f.indexInEpisode == next, "contiguous within the episode")
        next += f.length
        if k < sorted.count - 1 {
          #expect(f.end == .cut && f.length == config.max_seq_len)
          // A cut fragment bootstraps from the next fragment's first observation,
          // and the next one starts with this one's last action and reward.
          let nf = sorted[k + 1]
          #expect(nf.prevAction == f.actions.last && nf.prevReward == f.rewards.last)
        } else if env == "MemoryChain-v0" {
          // MemoryChain has no time limit: an episode's last fragment is cut (still
          // running when the test stopped) or terminated.
          #expect(f.end == .cut || f.end == .terminated)
        }
      }
    }
    if env == "MemoryChain-v0" {
      #expect(fragments.filter { $0.end == .terminated }.allSatisfy { $0.indexInEpisode + $0.length == 6 })
      #expect(!fragments.contains { $0.end == .truncated })
    } else {
      #expect(fragments.contains { $0.end == .truncated || $0.end == .terminated })
      for f in fragments where f.end == .truncated { #expect(f.indexInEpisode + f.length == 9) }
    }
  }
}

@Suite struct BatchTests {
  func fragment(_ n: Int, f: Int = 2, a: Int = 3, s: Int = 4, end: FragmentEnd = .cut, version: Int = 0) -> Fragment {
    Fragment(
      stateIn: (0..<s).map { Float($0) + 0.5 }, observations: (0..<((n + 1) * f)).map { Float($0 + 1) },
      actions: (0..<n).map { Int32($0 % a) }, rewards: (0..<n).map { Float($0) * 0.5 + 1 },
      behaviourLogits: (0..<(n * a)).map { Float($0) * 0.1 }, prevAction: 2, prevReward: -1, end: end,
      policyVersion: version, workerID: 0, runID: 1, envIndex: 0, episodeID: 0, indexInEpisode: 5)
  }

  @Test func buildsPaddedTensorsWithMaskAndShiftedPreviousInputs() throws {
    let b = try Batch(fragments: [fragment(3), fragment(1, end: .terminated)], maxLength: 4, observationSize: 2, actionCount: 3, stateSize: 4)
    #expect(b.seqLens == [3, 1])
    #expect(b.mask == [1, 1, 1, 0, 1, 0, 0, 0])
    #expect(b.obs.count == 2 * 5 * 2)
    // Bootstrap observation in slot seq_len; zeros after it.
    #expect(Array(b.obs[6..<8]) == [7, 8])
    #expect(Array(b.obs[8..<10]) == [0, 0])
    #expect(Array(b.obs[10..<14]) == [1, 2, 3, 4])
    #expect(Array(b.obs[14..<20]).allSatisfy { $0 == 0 })
    #expect(Array(b.prevActions[0..<4]) == [2, 0, 1, 2])
    #expect(Array(b.prevRewards[0..<4]) == [-1, 1, 1.5, 2])
    #expect(Array(b.actions[4..<8]) == [0, 0, 0, 0])
    #expect(b.stateIn == [0.5, 1.5, 2.5, 3.5, 0.5, 1.5, 2.5, 3.5])
    #expect(b.ends == [.cut, .terminated])
    #expect(b.validSteps == 4)
  }

  @Test func rejectsFragmentsThatDoNotFit() {
    func build(_ f: Fragment) throws { _ = try Batch(fragments: [f], maxLength: 4, observationSize: 2, actionCount: 3, stateSize: 4) }
    #expect(throws: BatchError.self) { try build(fragment(5)) }
    #expect(throws: BatchError.self) { try build(fragment(2, f: 3)) }
    #expect(throws: BatchError.self) { try build(fragment(2, s: 2)) }
    var bad = fragment(2)
    bad.actions[1] = 7
    #expect(throws: BatchError.self) { try build(bad) }
    var empty = fragment(1)
    empty.actions = []
    #expect(throws: BatchError.self) { try build(empty) }
  }
}

@Suite struct FragmentQueueTests {
  /// The learner's network thread stops reading at a full queue and waits for
  /// the queue's word: it comes once each time a take brings the queue below
  /// half its capacity, and not for takes that leave it at half or more.
  @Test func aTakeBelowHalfWakesTheReader() {
    let queue = FragmentQueue(capacity: 8)
    let wakes = Mutex(0)
    queue.whenRoom { wakes.withLock { $0 += 1 } }
    let one = BatchTests().fragment(2)
    for _ in 0..<8 { #expect(queue.send(one)) }
    var seen: [Int] = []
    for take in [2, 2, 1, 1, 2] {
      #expect(queue.receive(max: take, timeout: 0).count == take)
      seen.append(wakes.withLock { $0 })
    }
    // Depths 6, 4 (half: no word yet), 3 (below: the word), 2, 0.
    #expect(seen == [0, 0, 1, 1, 1])
    queue.enqueue(Array(repeating: one, count: 9))  // the reader overshoots by a message
    #expect(queue.receive(max: 5, timeout: 0).count == 5 && wakes.withLock { $0 } == 1)
    #expect(queue.receive(max: 5, timeout: 0).count == 4 && wakes.withLock { $0 } == 2)
    // An empty queue's timed-out take says nothing.
    #expect(queue.receive(max: 5, timeout: 0).isEmpty && wakes.withLock { $0 } == 2)
  }
}
