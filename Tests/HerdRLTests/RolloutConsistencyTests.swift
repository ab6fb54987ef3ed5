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

  func recompute(core: String, prevInputs: Bool, filter: Bool) throws {
    var config = TrainingConfig.defaults(for: "MemoryChain-v0")
    config.observation_filter = filter ? .MeanStdFilter : .NoFilter
    config.env_config.length = 13
    config.max_seq_len = 5
    config.num_envs_per_worker = 6
    config.use_lstm = core != "none"
    config.rnn_type = core == "gru" ? .gru : .lstm
    config.lstm_cell_size = 16
    config.fcnet_hiddens = [8]
    config.lstm_use_prev_action = prevInputs
    config.lstm_use_prev_reward = prevInputs
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
