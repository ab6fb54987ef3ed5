import Foundation
import HerdEnvs
import HerdMath
import HerdNN
@testable import HerdRL
import Testing

@Suite struct SampleReuseTests {
  /// Fragments acted on by a worker holding `learner`'s current weights.
  func fragments(_ config: TrainingConfig, _ net: PolicyNetwork, _ learner: Learner, count: Int) throws -> [Fragment] {
    let worker = try RolloutWorker(config: config, network: net, workerID: 0, seed: 4)
    try worker.setWeights(learner.parameters.flatValues, version: learner.version)
    var out: [Fragment] = []
    while out.count < count { try worker.step(emit: { out.append($0) }, episode: { _ in }) }
    return out
  }

  /// A learner for `config` and 8 fragments acted on with its current weights.
  func learnerAndFragments(_ config: TrainingConfig) throws -> (PolicyNetwork, Learner, [Fragment]) {
    let spaces = try EnvironmentFactory.spaces(config)
    let net = PolicyNetwork(config: config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
    let learner = Learner(config: config, network: net)
    return (net, learner, try fragments(config, net, learner, count: 8))
  }

  /// num_epochs passes, each cut into minibatches of minibatch_size timesteps: one
  /// update per minibatch; the samples count as trained once and as reused after;
  /// the filter's statistics take each observation once.
  @Test func passesAndMinibatchesMakeOneUpdateEach() throws {
    var config = smallConfig("CartPole-v1")
    config.observation_filter = .MeanStdFilter
    config.num_epochs = 3
    config.train_batch_size = 32  // 8 fragments of 4
    config.minibatch_size = 16  // 4 fragments per update
    let spaces = try EnvironmentFactory.spaces(config)
    let net = PolicyNetwork(config: config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
    let learner = Learner(config: config, network: net)
    let batch = try fragments(config, net, learner, count: 8)
    let steps = batch.reduce(0) { $0 + $1.length }
    let stats = try learner.train(batch)
    #expect(stats.count == 6 && learner.version == 6)
    #expect(stats.allSatisfy { !$0.skipped && $0.timesteps > 0 })
    #expect(stats.prefix(2).reduce(0) { $0 + $1.timesteps } == steps, "the first pass covers every fragment once")
    #expect(learner.trainedSteps == steps && learner.reusedSteps == 2 * steps)
    #expect(learner.observationStatistics?.count == Double(steps), "each observation joins the statistics once")
    // The idle learner's reuse: one more pass, counted as reused.
    _ = try learner.train(batch, passes: 1, fresh: false)
    #expect(learner.trainedSteps == steps && learner.reusedSteps == 3 * steps && learner.version == 8)
    #expect(learner.observationStatistics?.count == Double(steps))
  }

  /// freeze_targets: the passes after the first take the value targets the first
  /// pass computed (the mean target stays to the bit, though the value function has
  /// moved), while the importance ratios are still taken under each pass's weights;
  /// without it every pass recomputes its targets.
  @Test func frozenTargetsStayAsTheFirstPassComputedThem() throws {
    func run(freeze: Bool) throws -> [LearnerStepStats] {
      var config = smallConfig("CartPole-v1")
      config.observation_filter = .NoFilter
      config.num_epochs = 3
      config.freeze_targets = freeze
      config.lr = 0.01
      let (_, learner, batch) = try learnerAndFragments(config)
      return try learner.train(batch)
    }
    let frozen = try run(freeze: true)
    let recomputed = try run(freeze: false)
    #expect(frozen.count == 3 && recomputed.count == 3)
    #expect(frozen[0].terms.meanTarget == recomputed[0].terms.meanTarget, "the first passes are the same")
    #expect(frozen[1].terms.meanTarget == frozen[0].terms.meanTarget && frozen[2].terms.meanTarget == frozen[0].terms.meanTarget)
    #expect(recomputed[1].terms.meanTarget != recomputed[0].terms.meanTarget, "recomputed under the new values")
    #expect(abs(frozen[1].terms.meanRho - 1) > 1e-4, "ratios under the second pass's weights (\(frozen[1].terms.meanRho))")
    #expect(frozen[1].terms.meanRho == recomputed[1].terms.meanRho, "the same weights after one identical update")
  }

  /// Data trained on again is weighed against the behaviour policy stored with it,
  /// not against the current policy: after an update, the mean importance ratio the
  /// learner reports equals pi_current(a) / mu_stored(a) computed independently (the
  /// rollout step from each fragment's stored state with the new weights, and the
  /// stored behaviour logits), and is not 1.
  @Test(arguments: ["lstm", "gru"])
  func reusedDataIsWeighedAgainstItsStoredBehaviourPolicy(core: String) throws {
    var config = smallConfig("CartPole-v1")
    config.observation_filter = .NoFilter
    config.rnn_type = core == "gru" ? .gru : .lstm
    config.lstm_use_prev_action = true
    config.lstm_use_prev_reward = true
    config.lr = 0.01
    let (net, learner, batch) = try learnerAndFragments(config)
    let first = try learner.step(batch)
    #expect(abs(first.terms.meanRho - 1) < 1e-5, "fresh data from the same weights: ratios of 1")
    // Independently: the new policy's log-probabilities by stepping each fragment.
    let ratios = try ratiosUnderCurrentWeights(batch, net, learner)
    let expected = ratios.sum / Double(ratios.count)
    let again = try learner.train(batch, passes: 1, fresh: false)
    let reported = Double(again[0].terms.meanRho)
    #expect(abs(reported - expected) <= 1e-4 * expected, "reported \(reported), from the stored behaviour \(expected)")
    #expect(abs(reported - 1) > 1e-3, "after an update the ratios are not 1 (\(reported))")
    #expect(again[0].lags.allSatisfy { $0 == 1 }, "the reused fragments are one update old")
  }

  /// clip_anchor = learner: the first pass over a batch takes its ratio against the
  /// learner's own policy, so on data acted on by older weights it clips nothing
  /// where the behaviour anchor clips; the log-probabilities the first pass returns
  /// are the pre-update policy's (checked by stepping each fragment independently),
  /// and a later pass anchored at them clips once the policy has moved.
  @Test func theLearnerAnchorClipsAgainstTheFirstPassNotTheBehaviourPolicy() throws {
    var config = smallConfig("CartPole-v1")
    config.observation_filter = .NoFilter
    config.lstm_use_prev_action = true
    config.clip_param = 0.1
    config.lr = 0.05
    let spaces = try EnvironmentFactory.spaces(config)
    let net = PolicyNetwork(config: config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
    let learner = Learner(config: config, network: net)
    let p = learner.parameters
    for i in 0..<p.count { p.values[i] *= 3 }
    // Data from older weights: the behaviour policy differs from the learner's.
    var behaviour = p.flatValues
    var rng = SeededGenerator(seed: 5)
    for i in behaviour.indices { behaviour[i] += 0.6 * (rng.nextUnitFloat() - 0.5) }
    let worker = try RolloutWorker(config: config, network: net, workerID: 0, seed: 4)
    try worker.setWeights(behaviour, version: 0)
    var batch: [Fragment] = []
    while batch.count < 8 { try worker.step(emit: { batch.append($0) }, episode: { _ in }) }
    let before = p.flatValues

    let againstBehaviour = Learner(config: config, network: net)
    try againstBehaviour.parameters.load(flatValues: before)
    let b = try againstBehaviour.update(batch, anchors: nil, fresh: true).stats
    #expect(b.terms.clippedFraction > 0.05, "against mu: \(b.terms.clippedFraction)")

    var anchored = config
    anchored.clip_anchor = .learner
    let learnerAnchored = Learner(config: anchored, network: net)
    try learnerAnchored.parameters.load(flatValues: before)
    let (first, logProbs, _) = try learnerAnchored.update(batch, anchors: nil, fresh: true)
    #expect(first.terms.clippedFraction == 0, "first pass, anchored at itself: \(first.terms.clippedFraction)")
    // The returned log-probabilities are the pre-update policy's.
    let q = Parameters(layout: net.layout)
    try q.load(flatValues: before)
    let ws = PolicyWorkspace()
    let (f, a, hs) = (net.observationSize, net.actionCount, net.core!.hiddenSize)
    var worst: Float = 0
    for (k, fr) in batch.enumerated() {
      #expect(logProbs[k].count == fr.length)
      var h = Array(fr.stateIn[0..<hs])
      var c = Array(fr.stateIn[hs..<(2 * hs)])
      var pa = fr.prevAction
      for t in 0..<fr.length {
        net.step(
          q, obs: Array(fr.observations[(t * f)..<((t + 1) * f)]), prevActions: [pa], prevRewards: [fr.prevReward],
          rows: 1, h: &h, c: &c, ws: ws)
        let logits = Array(UnsafeBufferPointer(start: ws.logits.pointer, count: a))
        let m = logits.max()!
        let logZ = m + log(logits.reduce(0) { $0 + exp($1 - m) })
        worst = max(worst, abs(logProbs[k][t] - (logits[Int(fr.actions[t])] - logZ)))
        pa = fr.actions[t]
      }
    }
    #expect(worst < 1e-4, "first-pass log pi against an independent rollout step: \(worst)")
    // A second pass anchored at the first pass's policy: the update has moved it.
    let second = try learnerAnchored.update(batch, anchors: logProbs.map { $0 }, fresh: false).stats
    #expect(second.terms.clippedFraction > 0, "second pass: \(second.terms.clippedFraction)")
    // train() threads the anchors through its passes the same way.
    anchored.num_epochs = 2
    let viaTrain = Learner(config: anchored, network: net)
    try viaTrain.parameters.load(flatValues: before)
    let passes = try viaTrain.train(batch)
    #expect(passes.count == 2 && passes[0].terms.clippedFraction == 0)
    // (The pass's shuffled order sums the gradient in another order: a step may sit
    // on the clip's edge.)
    #expect(abs(passes[1].terms.clippedFraction - second.terms.clippedFraction) <= 1.5 / Float(second.timesteps))
  }

  /// normalize_advantages: over a batch's valid steps the advantages (both kinds)
  /// have mean 0 and standard deviation 1, bootstrap rows stay 0, and their order is kept.
  @Test func normalizedAdvantagesHaveMeanZeroAndUnitSpread() throws {
    var config = smallConfig("CartPole-v1")
    config.observation_filter = .NoFilter
    let spaces = try EnvironmentFactory.spaces(config)
    let net = PolicyNetwork(config: config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
    let learner = Learner(config: config, network: net)
    let batch = try Batch(
      fragments: try fragments(config, net, learner, count: 8), maxLength: config.max_seq_len,
      observationSize: net.observationSize, actionCount: net.actionCount, stateSize: net.stateSize, heads: net.heads)
    let ws = TrainingWorkspace()
    try net.forward(learner.parameters, batch: batch, ws: ws)
    var settings = ImpalaLoss.Settings(config, network: net)
    let plain = ImpalaLoss.targets(batch: batch, ws: ws, settings: settings)
    settings.normalizeAdvantages = true
    let scaled = ImpalaLoss.targets(batch: batch, ws: ws, settings: settings)
    let packing = try #require(ws.packing)
    for (raw, norm) in [(plain.advantages, scaled.advantages), (plain.surrogateAdvantages, scaled.surrogateAdvantages)] {
      var valid: [(Float, Float)] = []
      for i in 0..<batch.sequences {
        for t in 0..<batch.seqLens[i] { valid.append((raw[packing.row(sequence: i, time: t)], norm[packing.row(sequence: i, time: t)])) }
        #expect(norm[packing.row(sequence: i, time: batch.seqLens[i])] == 0, "bootstrap rows stay 0")
      }
      let n = Float(valid.count)
      let mean = valid.reduce(0) { $0 + $1.1 } / n
      let variance = valid.reduce(0) { $0 + ($1.1 - mean) * ($1.1 - mean) } / n
      #expect(abs(mean) < 1e-5 && abs(variance - 1) < 1e-3, "mean \(mean), variance \(variance)")
      let order = valid.sorted { $0.0 < $1.0 }.map(\.1)
      #expect(order == order.sorted(), "an affine map with a positive scale keeps the order")
    }
    #expect(scaled.vs == plain.vs, "the value targets are not touched")
  }

  @Test func badReuseSettingsAreNamed() throws {
    var config = smallConfig("CartPole-v1")
    config.minibatch_size = 2  // below max_seq_len 4
    #expect(throws: ConfigError.self) { try config.validate() }
    config.minibatch_size = 0
    config.num_epochs = 0
    #expect(throws: ConfigError.self) { try config.validate() }
    config.num_epochs = 2
    config.clip_param = -0.1
    #expect(throws: ConfigError.self) { try config.validate() }
    config.clip_param = 0.2
    config.max_requests_in_flight_per_worker = -1
    do {
      try config.validate()
      Issue.record("max_requests_in_flight_per_worker -1 was accepted")
    } catch { #expect("\(error)".contains("max_requests_in_flight_per_worker") && "\(error)".contains("-1")) }
    config.max_requests_in_flight_per_worker = 1
    config.max_sample_reuse = 0.5
    do {
      try config.validate()
      Issue.record("max_sample_reuse 0.5 was accepted")
    } catch { #expect("\(error)".contains("max_sample_reuse") && "\(error)".contains("at least 1")) }
    config.max_sample_reuse = 1
    config.sync_sampling = true
    config.max_requests_in_flight_per_worker = 0
    do {
      try config.validate()
      Issue.record("sync_sampling without an in-flight limit was accepted")
    } catch { #expect("\(error)".contains("max_requests_in_flight_per_worker = 0") && "\(error)".contains("sync_sampling")) }
    config.max_requests_in_flight_per_worker = 1
    config.replay_proportion = -1
    do {
      try config.validate()
      Issue.record("replay_proportion -1 was accepted")
    } catch { #expect("\(error)".contains("replay_proportion = -1.0")) }
    config.replay_proportion = 0.5
    do {
      try config.validate()
      Issue.record("replay_proportion without a buffer was accepted")
    } catch { #expect("\(error)".contains("replay_buffer_num_slots = 0") && "\(error)".contains("0.5")) }
    config.replay_buffer_num_slots = 16
    try config.validate()
  }

  /// The replay buffer keeps the newest fragments up to its capacity, drops stale
  /// ones, and owes `proportion` fragments per new one, carrying the fractions over;
  /// within one draw no fragment comes twice while it holds enough.
  @Test func theReplayBufferKeepsTheNewestAndDrawsItsProportion() throws {
    let config = smallConfig("CartPole-v1")
    let spaces = try EnvironmentFactory.spaces(config)
    let net = PolicyNetwork(config: config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
    let learner = Learner(config: config, network: net)
    var made = try fragments(config, net, learner, count: 10)
    for i in made.indices { made[i].policyVersion = i; made[i].episodeID = UInt64(1000 + i) }
    var buffer = ReplayBuffer(capacity: 6, proportion: 0.5, seed: 3)
    #expect(buffer.draw(forNew: 4).isEmpty, "nothing to replay yet (the 2 owed are forgone)")
    buffer.add(Array(made[0..<4]))
    buffer.add(Array(made[4..<10]))
    #expect(buffer.fragments.map(\.policyVersion) == [4, 5, 6, 7, 8, 9], "the newest 6, oldest first")
    let first = buffer.draw(forNew: 3)  // 1.5 owed: 1 now, 0.5 carried
    let second = buffer.draw(forNew: 3)  // 0.5 + 1.5: 2
    #expect(first.count == 1 && second.count == 2)
    #expect(Set(second.map(\.episodeID)).count == 2, "no fragment twice in one draw")
    let many = buffer.draw(forNew: 20)  // 10 owed from 6: each once, then again
    #expect(many.count == 10 && Set(many.map(\.episodeID)).count == 6)
    buffer.dropStale(version: 12, maxLag: 5)
    #expect(buffer.fragments.map(\.policyVersion) == [7, 8, 9])
    var off = ReplayBuffer(capacity: 6, proportion: 0, seed: 3)
    off.add(made)
    #expect(!off.isActive && off.fragments.isEmpty && off.draw(forNew: 8).isEmpty)
  }

  /// Replayed fragments mixed into a new batch: one update over both, the new ones
  /// count as trained (and join the filter's statistics), the replayed ones as
  /// reused; and the replayed ones are weighed against their stored behaviour
  /// policy, so the reported mean ratio is (new steps x 1 + the replayed steps'
  /// pi_current / mu_stored, computed independently) over all steps.
  @Test(arguments: ["lstm", "gru"])
  func replayedFragmentsAreWeighedAgainstTheirStoredBehaviour(core: String) throws {
    var config = smallConfig("CartPole-v1")
    config.observation_filter = .MeanStdFilter
    config.rnn_type = core == "gru" ? .gru : .lstm
    config.lstm_use_prev_action = true
    config.lr = 0.01
    let spaces = try EnvironmentFactory.spaces(config)
    let net = PolicyNetwork(config: config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
    let learner = Learner(config: config, network: net)
    let old = try fragments(config, net, learner, count: 8)
    _ = try learner.step(old)
    let oldSteps = old.reduce(0) { $0 + $1.length }
    let new = try fragments(config, net, learner, count: 8)
    let newSteps = new.reduce(0) { $0 + $1.length }
    let ratios = try ratiosUnderCurrentWeights(old, net, learner)
    let expected = (Double(newSteps) + ratios.sum) / Double(newSteps + ratios.count)
    #expect(ratios.count == oldSteps)
    let (trained, reused, seen) = (learner.trainedSteps, learner.reusedSteps, learner.observationStatistics?.count)
    let stats = try learner.train(new, replayed: old, passes: 1)
    #expect(stats.count == 1 && stats[0].timesteps == newSteps + oldSteps, "one update over both")
    let reported = Double(stats[0].terms.meanRho)
    #expect(abs(reported - expected) <= 1e-4 * expected, "reported \(reported), from the stored behaviour \(expected)")
    #expect(abs(reported - 1) > 1e-4, "the replayed steps' ratios are not 1 (\(reported))")
    #expect(learner.trainedSteps == trained + newSteps && learner.reusedSteps == reused + oldSteps)
    #expect(learner.observationStatistics?.count == (seen ?? 0) + Double(newSteps), "only the new observations join")
    #expect(Set(stats[0].lags) == [0, 1], "the new fragments are current, the replayed ones one update old")
  }

  /// Sum and count of pi_current(a) / mu_stored(a) over every step of `batch`, with
  /// the learner's current weights, by stepping each fragment from its stored state
  /// (filtering as the learner does: with the filter its worker acted with).
  func ratiosUnderCurrentWeights(
    _ batch: [Fragment], _ net: PolicyNetwork, _ learner: Learner
  ) throws -> (sum: Double, count: Int) {
    let p = Parameters(layout: net.layout)
    try p.load(flatValues: learner.parameters.flatValues)
    let ws = PolicyWorkspace()
    let (f, a, hs) = (net.observationSize, net.actionCount, net.core!.hiddenSize)
    func logSoftmax(_ x: ArraySlice<Float>, _ k: Int) -> Double {
      let m = Double(x.max()!)
      return Double(x[x.startIndex + k]) - m - log(x.reduce(0) { $0 + exp(Double($1) - m) })
    }
    var sum = 0.0
    var n = 0
    for fr in batch {
      // The filter the worker acted with goes into this copy's filter slots.
      if let actedWith = learner.filterHistory[fr.policyVersion], let mean = net.filterMean, let scale = net.filterScale {
        for j in 0..<f { (p.value(mean)[j], p.value(scale)[j]) = (actedWith[j], actedWith[f + j]) }
        p.valuesChanged()
      }
      var h = Array(fr.stateIn[0..<hs])
      var c = net.core!.stateCount == 2 ? Array(fr.stateIn[hs..<(2 * hs)]) : [Float](repeating: 0, count: hs)
      var (pa, pr) = (fr.prevAction, fr.prevReward)
      for t in 0..<fr.length {
        net.step(
          p, obs: Array(fr.observations[(t * f)..<((t + 1) * f)]), prevActions: [pa], prevRewards: [pr], rows: 1,
          h: &h, c: &c, ws: ws)
        let logits = Array(UnsafeBufferPointer(start: ws.logits.pointer, count: a))
        let act = Int(fr.actions[t])
        sum += exp(logSoftmax(logits[...], act) - logSoftmax(fr.behaviourLogits[(t * a)..<((t + 1) * a)], act))
        n += 1
        (pa, pr) = (fr.actions[t], fr.rewards[t])
      }
    }
    return (sum, n)
  }
}
