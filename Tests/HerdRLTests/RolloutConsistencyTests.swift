import HerdEnvs
import HerdMath
import HerdNN
@testable import HerdRL
import HerdTestSupport
import Testing

@Suite struct RolloutConsistencyTests {
  /// The learner, given the fragments a worker produced with the same weights,
  /// recomputes exactly the behaviour logits (to float tolerance): the stored
  /// state_in, previous action/reward and packing reproduce what the worker saw,
  /// including fragments cut mid-episode that start from a non-zero state.
  @Test(arguments: ["lstm", "gru", "none"], [false, true])
  func learnerRecomputesTheBehaviourLogits(core: String, prevInputs: Bool) throws {
    try recompute(core: core, prevInputs: prevInputs, filter: false)
  }

  /// With MeanStdFilter the filter is part of the weights: the worker acts with the
  /// filter it was sent and records raw observations, and the learner applies the
  /// same filter to the batch. (A worker that recorded filtered observations would
  /// be filtered twice here, and disagree.)
  @Test(arguments: ["lstm", "none"])
  func learnerRecomputesTheBehaviourLogitsThroughTheFilter(core: String) throws {
    try recompute(core: core, prevInputs: true, filter: true)
  }

  /// With the value's own encoder and core (vf_share_layers = false) the state is
  /// `[h ; h^v]` and `[c ; c^v]`. Each episode is replayed from zeros one step at a
  /// time: every fragment's stored state_in must be the replay's state where the
  /// fragment opens (both cores, in that layout), and the learner's values and
  /// logits over the batch must be the replay's.
  /// "... post": with post layers (`post_fcnet_hiddens`, and the value's own
  /// `vf_post`); "... shared": one tower for both heads (only with post, whose
  /// shared layers the value then reads).
  @Test(arguments: ["lstm", "gru", "none", "lstm post", "gru post", "none post", "lstm post shared"])
  func learnerRecomputesTheValueTowerFromTheStoredState(variant: String) throws {
    let core = String(variant.split(separator: " ")[0])
    let shared = variant.hasSuffix(" shared")
    var config = Self.config(core: core, prevInputs: true)
    config.vf_share_layers = shared
    if variant.contains("post") {
      config.post_fcnet_hiddens = [7, 5]
      config.post_fcnet_activation = shared ? .relu : .tanh
    }
    let spaces = try EnvironmentFactory.spaces(config)
    let net = PolicyNetwork(config: config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
    let width = core == "none" ? 0 : shared ? 16 : 32
    #expect(net.stateWidth == width && (net.valueEncoder != nil) == !shared)
    #expect(net.stateSize == (core == "lstm" ? 2 * width : width))
    #expect(net.post.layers.count == config.post_fcnet_hiddens.count && net.headInputSize == (config.post_fcnet_hiddens.last ?? net.featureSize))
    #expect((net.valuePost?.layers.count ?? 0) == (shared ? 0 : config.post_fcnet_hiddens.count))
    let learner = Learner(config: config, network: net)
    let p = learner.parameters
    for i in 0..<p.count { p.values[i] *= 4 }
    let worker = try RolloutWorker(config: config, network: net, workerID: 0, seed: 3)
    try worker.setWeights(p.flatValues, version: 0)
    var fragments: [Fragment] = []
    for _ in 0..<40 { try worker.step(emit: { fragments.append($0) }, episode: { _ in }) }
    #expect(fragments.contains { $0.end == .cut && $0.indexInEpisode > 0 } || core == "none")
    let batch = try Batch(
      fragments: fragments, maxLength: config.max_seq_len, observationSize: net.observationSize,
      actionCount: net.actionCount, stateSize: net.stateSize)
    let ws = TrainingWorkspace()
    try net.forward(p, batch: batch, ws: ws)
    let packing = try #require(ws.packing)
    // Replay each episode from its start, fragment by fragment in episode order.
    let f = net.observationSize
    let a = net.actionCount
    let w = net.stateWidth
    let episodes = Dictionary(grouping: fragments.indices) { fragments[$0].episodeID }
    let step = PolicyWorkspace()
    var checkedStates = 0
    var valuesChecked = 0
    for (_, members) in episodes {
      let ordered = members.sorted { fragments[$0].indexInEpisode < fragments[$1].indexInEpisode }
      guard fragments[ordered[0]].indexInEpisode == 0 else { continue }
      var h = [Float](repeating: 0, count: max(1, w))
      var c = h
      for i in ordered {
        let fr = fragments[i]
        if w > 0 {
          let expected = Array(h[0..<w]) + (core == "lstm" ? Array(c[0..<w]) : [])
          let cmp = closeness(fr.stateIn, expected, rtol: 1e-5, atol: 1e-6)
          #expect(cmp.ok, "\(variant) state_in at step \(fr.indexInEpisode): \(cmp)")
          if fr.indexInEpisode > 0 { checkedStates += 1 }
        }
        for t in 0..<fr.length {
          let obs = (0..<f).map { fr.observations[t * f + $0] }
          let pa: [Int32] = [t == 0 ? fr.prevAction : fr.actions[t - 1]]
          let pr: [Float] = [t == 0 ? fr.prevReward : fr.rewards[t - 1]]
          net.step(p, obs: obs, prevActions: pa, prevRewards: pr, rows: 1, h: &h, c: &c, ws: step)
          let r = packing.row(sequence: i, time: t)
          let v = closeness([ws.values.pointer[r]], [step.values.pointer[0]], rtol: 1e-5, atol: 1e-5)
          #expect(v.ok, "\(variant) value at step \(fr.indexInEpisode + t): \(v)")
          let l = closeness(
            (0..<a).map { ws.logits.pointer[r * a + $0] }, (0..<a).map { step.logits.pointer[$0] }, rtol: 1e-5,
            atol: 1e-5)
          #expect(l.ok, "\(variant) logits at step \(fr.indexInEpisode + t): \(l)")
          valuesChecked += 1
        }
      }
    }
    #expect(valuesChecked > 100)
    #expect(checkedStates > 5 || core == "none")
  }

  /// sync_sampling's windows: a step with `cut` closes every open fragment, so all
  /// envs start their next fragments together. The cut fragments tile each episode
  /// without a gap, each bootstraps from the observation its successor starts
  /// with, and the learner still recomputes every behaviour logit from the stored
  /// states (cuts every 3 steps, inside fragments of up to 5).
  @Test(arguments: ["lstm", "gru"])
  func cutWindowsCloseEveryOpenFragmentAndStillRecompute(core: String) throws {
    let config = Self.config(core: core, prevInputs: true)
    let spaces = try EnvironmentFactory.spaces(config)
    let net = PolicyNetwork(config: config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
    let learner = Learner(config: config, network: net)
    for i in 0..<learner.parameters.count { learner.parameters.values[i] *= 4 }
    let worker = try RolloutWorker(config: config, network: net, workerID: 0, seed: 3)
    try worker.setWeights(learner.parameters.flatValues, version: 0)
    var fragments: [Fragment] = []
    for call in 1...40 {
      let cut = call % 3 == 0
      try worker.step(emit: { fragments.append($0) }, episode: { _ in }, cut: cut)
      if cut { #expect(worker.builders.allSatisfy { $0.count == 0 }, "call \(call): every fragment closed") }
    }
    #expect(fragments.contains { $0.end == .cut && $0.length < config.max_seq_len && $0.indexInEpisode > 0 })
    #expect(fragments.allSatisfy { $0.length <= 3 }, "no fragment outlives a window of 3 steps")
    let f = net.observationSize
    for (_, parts) in Dictionary(grouping: fragments, by: \.episodeID) {
      let ordered = parts.sorted { $0.indexInEpisode < $1.indexInEpisode }
      #expect(ordered[0].indexInEpisode == 0 || ordered[0].indexInEpisode > 0 && ordered[0].stateIn.contains { $0 != 0 })
      for (a, b) in zip(ordered, ordered.dropFirst()) {
        #expect(b.indexInEpisode == a.indexInEpisode + a.length, "no gap between the fragments of an episode")
        #expect(a.end == .cut)
        #expect(
          Array(a.observations[(a.length * f)..<((a.length + 1) * f)]) == Array(b.observations[0..<f]),
          "a cut fragment bootstraps from its successor's first observation")
      }
    }
    let (recomputed, recorded) = try recomputedAndRecordedLogits(
      net, learner.parameters, fragments: fragments, maxLength: config.max_seq_len)
    let c = closeness(recomputed, recorded, rtol: 1e-5, atol: 1e-5)
    #expect(c.ok, "\(core) with cuts: \(c)")
  }

  /// MemoryChain (L = 13) in fragments of 5 over 6 envs, a small `core` ("lstm",
  /// "gru", "none") with the previous action and reward as inputs or not.
  static func config(core: String, prevInputs: Bool) -> TrainingConfig {
    var config = TrainingConfig.defaults(for: "MemoryChain-v0")
    config.env_config.length = 13
    config.max_seq_len = 5
    config.num_envs_per_worker = 6
    config.use_lstm = core != "none"
    config.rnn_type = core == "gru" ? .gru : .lstm
    config.lstm_cell_size = 16
    config.fcnet_hiddens = [8]
    config.lstm_use_prev_action = prevInputs
    config.lstm_use_prev_reward = prevInputs
    return config
  }

  func recompute(core: String, prevInputs: Bool, filter: Bool) throws {
    var config = Self.config(core: core, prevInputs: prevInputs)
    config.observation_filter = filter ? .MeanStdFilter : .NoFilter
    let spaces = try EnvironmentFactory.spaces(config)
    let net = PolicyNetwork(config: config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
    let learner = Learner(config: config, network: net)
    // Larger weights than the default init so the state matters to the logits.
    for i in 0..<learner.parameters.count { learner.parameters.values[i] *= 4 }
    if filter {
      // A filter far from the identity: every feature shifted and scaled.
      let mean = learner.parameters.value(try #require(net.filterMean))
      let scale = learner.parameters.value(try #require(net.filterScale))
      for k in 0..<net.observationSize {
        mean[k] = 0.3 + 0.1 * Float(k)
        scale[k] = 2.5 - 0.2 * Float(k)
      }
    }
    let worker = try RolloutWorker(config: config, network: net, workerID: 0, seed: 3)
    try worker.setWeights(learner.parameters.flatValues, version: 0)
    var fragments: [Fragment] = []
    for _ in 0..<40 { try worker.step(emit: { fragments.append($0) }, episode: { _ in }) }
    #expect(fragments.contains { $0.end == .cut && $0.indexInEpisode > 0 && $0.stateIn.contains { $0 != 0 } } || core == "none")
    #expect(fragments.contains { $0.end == .terminated })
    let (recomputed, recorded) = try recomputedAndRecordedLogits(
      net, learner.parameters, fragments: fragments, maxLength: config.max_seq_len)
    let c = closeness(recomputed, recorded, rtol: 1e-5, atol: 1e-5)
    #expect(c.ok, "\(core) prev inputs \(prevInputs) filter \(filter): \(c)")
    // Raw observations in the fragments: MemoryChain's query is 0 or 1 and its
    // context -1, 0 or +1 (filtered ones would not be).
    let f = net.observationSize
    #expect(
      fragments.allSatisfy { fr in
        (0...fr.length).allSatisfy { [0, 1].contains(fr.observations[$0 * f + 1]) && [-1, 0, 1].contains(fr.observations[$0 * f + 2]) }
      })
  }
}

/// The learner's logits for `fragments` recomputed with `p`, beside the behaviour
/// logits the worker recorded, step by step in fragment order.
func recomputedAndRecordedLogits(
  _ net: PolicyNetwork, _ p: Parameters, fragments: [Fragment], maxLength: Int
) throws -> (recomputed: [Float], recorded: [Float]) {
  let batch = try Batch(
    fragments: fragments, maxLength: maxLength, observationSize: net.observationSize,
    actionCount: net.actionCount, stateSize: net.stateSize)
  let ws = TrainingWorkspace()
  try net.forward(p, batch: batch, ws: ws)
  let packing = try #require(ws.packing)
  var recomputed: [Float] = []
  var recorded: [Float] = []
  for (i, f) in fragments.enumerated() {
    for t in 0..<f.length {
      let r = packing.row(sequence: i, time: t)
      recomputed += (0..<net.actionCount).map { ws.logits.pointer[r * net.actionCount + $0] }
      recorded += f.behaviourLogits[(t * net.actionCount)..<((t + 1) * net.actionCount)]
    }
  }
  return (recomputed, recorded)
}
