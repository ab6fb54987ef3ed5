import Foundation
import Synchronization
import HerdEnvs
import HerdMath
import HerdNN
@testable import HerdRL
import HerdTestSupport
import Testing

@Suite struct ImpalaLossTests {
  /// The gradient of the whole loss (heads, BPTT through the core within each
  /// fragment, encoder) against central differences, with the V-trace targets held
  /// constant as the method prescribes. Off-policy data (the behaviour policy had
  /// other weights) so the importance weights are not all 1.
  /// "... vf": the value has its own encoder and core (vf_share_layers = false);
  /// "... post": two post layers between the core and the heads (the value's own
  /// too with "vf").
  @Test(arguments: ["lstm", "gru", "none", "lstm vf", "gru vf", "none vf", "lstm post", "gru vf post", "none post"])
  func wholeLossGradientMatchesFiniteDifferences(variant: String) throws {
    let core = String(variant.split(separator: " ")[0])
    var config = smallConfig("CartPole-v1")
    config.env_config.max_episode_steps = 7
    config.use_lstm = core != "none"
    config.rnn_type = core == "gru" ? .gru : .lstm
    config.vf_share_layers = !variant.contains(" vf")
    if variant.hasSuffix(" post") {
      config.post_fcnet_hiddens = [5, 4]
      config.post_fcnet_activation = .tanh  // smooth: central differences across a ReLU kink would not agree
    }
    config.lstm_use_prev_action = true
    config.lstm_use_prev_reward = true
    config.entropy_coeff = 0.05
    let spaces = try EnvironmentFactory.spaces(config)
    let net = PolicyNetwork(config: config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
    let names = net.layout.entries.map(\.name)
    #expect(names.contains("post.1.weight") == variant.hasSuffix(" post"))
    #expect(names.contains("vf_post.1.weight") == (variant.hasSuffix(" post") && variant.contains(" vf")))
    let worker = try RolloutWorker(config: config, network: net, workerID: 0, seed: 9)
    try checkWholeLossGradient(config: config, net: net, worker: worker, label: variant)
  }

  /// With its own encoder and core, the value's gradient reaches only `vf*`
  /// parameters and the policy's only the rest (and each reaches all of its own).
  /// "lstm post": with post layers, the value's own (`vf_post.*`) among its parameters.
  @Test(arguments: ["lstm", "gru", "none", "lstm post"])
  func ownValueTowerKeepsTheTwoGradientsApart(variant: String) throws {
    let core = String(variant.split(separator: " ")[0])
    var config = smallConfig("CartPole-v1")
    if variant.hasSuffix(" post") { config.post_fcnet_hiddens = [6] }
    config.use_lstm = core != "none"
    config.rnn_type = core == "gru" ? .gru : .lstm
    config.lstm_use_prev_action = true
    config.vf_share_layers = false
    let spaces = try EnvironmentFactory.spaces(config)
    let net = PolicyNetwork(config: config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
    let learner = Learner(config: config, network: net)
    let p = learner.parameters
    let worker = try RolloutWorker(config: config, network: net, workerID: 0, seed: 2)
    try worker.setWeights(p.flatValues, version: 0)
    var fragments: [Fragment] = []
    while fragments.count < 4 { try worker.step(emit: { fragments.append($0) }, episode: { _ in }) }
    let batch = try Batch(
      fragments: fragments, maxLength: config.max_seq_len, observationSize: net.observationSize,
      actionCount: net.actionCount, stateSize: net.stateSize)
    let ws = TrainingWorkspace()
    try net.forward(p, batch: batch, ws: ws)
    let rows = ws.rows
    var rng = SeededGenerator(seed: 5)
    for valueSide in [true, false] {
      let gl = ws.gradLogits.reserve(rows * net.actionCount)
      let gv = ws.gradValues.reserve(rows)
      for i in 0..<(rows * net.actionCount) { gl[i] = valueSide ? 0 : rng.nextUnitFloat() - 0.5 }
      for i in 0..<rows { gv[i] = valueSide ? rng.nextUnitFloat() - 0.5 : 0 }
      p.zeroGrads()
      net.backward(p, ws: ws)
      for entry in p.layout.entries where !entry.name.hasPrefix("obs_filter") {
        let g = p.grad(entry.slot)
        let reached = (0..<entry.slot.count).contains { g[$0] != 0 }
        let isValue = entry.name.hasPrefix("vf")
        #expect(reached == (isValue == valueSide), "\(variant) \(valueSide ? "value" : "policy") gradient at \(entry.name)")
      }
    }
  }

  /// The same with PPO's clipped surrogate on the V-trace targets (clip_param, for
  /// reuse): off-policy data puts some ratios outside the clip, where the policy
  /// term is flat; the gradient still matches finite differences everywhere.
  @Test(arguments: ["lstm", "none"])
  func clippedSurrogateGradientMatchesFiniteDifferences(core: String) throws {
    var config = smallConfig("CartPole-v1")
    config.env_config.max_episode_steps = 7
    config.use_lstm = core != "none"
    config.lstm_use_prev_action = true
    config.entropy_coeff = 0.05
    config.clip_param = 0.1
    let spaces = try EnvironmentFactory.spaces(config)
    let net = PolicyNetwork(config: config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
    let worker = try RolloutWorker(config: config, network: net, workerID: 0, seed: 9)
    try checkWholeLossGradient(config: config, net: net, worker: worker, label: "clip \(core)")
  }

  /// The same with the surrogate anchored at the learner's earlier policy
  /// (clip_anchor = learner): some sequences carry anchors away from the current
  /// policy (ratios inside and outside the clip, lag weights below and at the
  /// truncation), the rest none (a first pass: the anchor is the current policy).
  @Test(arguments: ["lstm", "none"])
  func learnerAnchoredSurrogateGradientMatchesFiniteDifferences(core: String) throws {
    var config = smallConfig("CartPole-v1")
    config.env_config.max_episode_steps = 7
    config.use_lstm = core != "none"
    config.lstm_use_prev_action = true
    config.entropy_coeff = 0.05
    config.clip_param = 0.1
    config.clip_anchor = .learner
    let spaces = try EnvironmentFactory.spaces(config)
    let net = PolicyNetwork(config: config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
    let worker = try RolloutWorker(config: config, network: net, workerID: 0, seed: 9)
    var rng = SeededGenerator(seed: 12)
    try checkWholeLossGradient(config: config, net: net, worker: worker, label: "anchored \(core)") { targets, batch, packing in
      (0..<batch.sequences).map { i -> [Float]? in
        guard i % 3 != 0 else { return nil }
        return (0..<batch.seqLens[i]).map { t in
          targets.currentLogProbs[packing.row(sequence: i, time: t)] + 0.4 * (rng.nextUnitFloat() - 0.5)
        }
      }
    }
  }

  /// The same for a MultiDiscrete action space: two independent heads [3, 2]; log pi
  /// and the entropy are sums over the heads, the gradient is per head.
  @Test func twoHeadLossGradientMatchesFiniteDifferences() throws {
    var config = smallConfig("CartPole-v1")
    config.lstm_use_prev_action = true
    config.entropy_coeff = 0.05
    let envs = TwoHeadEnvironments(count: 4)
    let net = PolicyNetwork(config: config, observationSize: 3, actionCount: 5, actionHeads: [3, 2])
    let worker = try RolloutWorker(config: config, network: net, envs: envs, workerID: 0, seed: 9)
    try checkWholeLossGradient(config: config, net: net, worker: worker, label: "heads [3, 2]")
    // The environments got each packed action's components.
    #expect(envs.seen.contains { $0 != [0, 0] } && envs.seen.allSatisfy { $0[0] < 3 && $0[1] < 2 })
  }

  /// The learner recomputes the worker's behaviour log-probabilities from the
  /// stored state and logits: with the same weights every importance ratio is 1,
  /// for one head and for two.
  @Test(arguments: [[2], [3, 2]])
  func sameWeightsGiveRatiosOfOne(heads: [Int]) throws {
    var config = smallConfig("CartPole-v1")
    config.lstm_use_prev_action = true
    let net = PolicyNetwork(config: config, observationSize: 3, actionCount: heads.reduce(0, +), actionHeads: heads)
    let envs = TwoHeadEnvironments(count: 4, heads: heads)
    let learner = Learner(config: config, network: net)
    let worker = try RolloutWorker(config: config, network: net, envs: envs, workerID: 0, seed: 3)
    try worker.setWeights(learner.parameters.flatValues, version: 0)
    var fragments: [Fragment] = []
    while fragments.count < 8 { try worker.step(emit: { fragments.append($0) }, episode: { _ in }) }
    let batch = try Batch(
      fragments: fragments, maxLength: config.max_seq_len, observationSize: 3, actionCount: net.actionCount,
      stateSize: net.stateSize, heads: net.heads)
    let ws = TrainingWorkspace()
    try net.forward(learner.parameters, batch: batch, ws: ws)
    let targets = ImpalaLoss.targets(batch: batch, ws: ws, settings: ImpalaLoss.Settings(config, network: nil))
    #expect(abs(targets.meanRho - 1) < 1e-5, "\(heads): mean rho \(targets.meanRho)")
  }

  /// `pg_advantage` = gae: on-policy (the worker's weights are the learner's) both
  /// the policy-gradient advantages and the surrogate's are GAE(lambda) of the
  /// batch's rewards and the learner's values, summed directly
  /// (`sum_k (prod_{j<k} gamma_j lambda) delta_k`); with `vtrace` they are not.
  @Test(arguments: [PGAdvantage.gae, .vtrace])
  func gaeAdvantagesAreGAEOnPolicy(form: PGAdvantage) throws {
    var config = smallConfig("CartPole-v1")
    config.vtrace_lambda = 0.8
    config.gamma = 0.95
    config.pg_advantage = form
    let spaces = try EnvironmentFactory.spaces(config)
    let net = PolicyNetwork(config: config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
    let learner = Learner(config: config, network: net)
    let p = learner.parameters
    for i in 0..<p.count { p.values[i] *= 3 }  // values away from 0, so deltas differ
    let worker = try RolloutWorker(config: config, network: net, workerID: 0, seed: 5)
    try worker.setWeights(p.flatValues, version: 0)
    var fragments: [Fragment] = []
    // Until a fallen pole ends a fragment (a terminal step: no bootstrap).
    while fragments.count < 8 || !fragments.contains(where: { $0.end == .terminated }) {
      try worker.step(emit: { fragments.append($0) }, episode: { _ in })
      try #require(fragments.count < 400, "no episode terminated")
    }
    let batch = try Batch(
      fragments: fragments, maxLength: config.max_seq_len, observationSize: net.observationSize,
      actionCount: net.actionCount, stateSize: net.stateSize, distribution: net.distribution)
    #expect(batch.ends.contains(.terminated) && batch.ends.contains { $0 != .terminated }, "both kinds of ends")
    let ws = TrainingWorkspace()
    try net.forward(p, batch: batch, ws: ws)
    let targets = ImpalaLoss.targets(batch: batch, ws: ws, settings: ImpalaLoss.Settings(config, network: nil))
    #expect(abs(targets.meanRho - 1) < 1e-5)
    let packing = try #require(ws.packing)
    let t1 = batch.maxLength
    var worst = 0.0
    var checked = 0
    for i in 0..<batch.sequences {
      let n = batch.seqLens[i]
      func value(_ t: Int) -> Double { Double(ws.values.pointer[packing.row(sequence: i, time: t)]) }
      func discount(_ t: Int) -> Double { t == n - 1 && batch.ends[i] == .terminated ? 0 : Double(config.gamma) }
      func delta(_ t: Int) -> Double {
        let next = t == n - 1 && batch.ends[i] == .terminated ? 0 : value(t + 1)
        return Double(batch.rewards[i * t1 + t]) + discount(t) * next - value(t)
      }
      for s in 0..<n {
        var gae = 0.0
        var weight = 1.0
        for k in s..<n {
          gae += weight * delta(k)
          weight *= discount(k) * Double(config.vtrace_lambda)
        }
        let r = packing.row(sequence: i, time: s)
        for got in [targets.advantages[r], targets.surrogateAdvantages[r]] {
          worst = max(worst, abs(Double(got) - gae) / (1e-3 + abs(gae)))
        }
        checked += 1
      }
    }
    #expect(checked >= 8 * 3)
    if form == .gae {
      #expect(worst < 1e-4, "largest relative difference from GAE: \(worst)")
    } else {
      #expect(worst > 1e-2, "IMPALA's advantage is not GAE(lambda) for lambda < 1: \(worst)")
    }
  }

  /// Whole-loss gradient of `net` on fragments `worker` collects with perturbed
  /// weights, against central differences.
  ///
  /// `anchors`, given the targets without anchors, makes the surrogate's anchors
  /// (clip_anchor = learner); they are constants of the loss.
  func checkWholeLossGradient(
    config: TrainingConfig, net: PolicyNetwork, worker: RolloutWorker, label: String, minChecked: Int = 50,
    anchors: ((ImpalaLoss.Targets, Batch, PackedSequences) -> [[Float]?])? = nil
  ) throws {
    let learner = Learner(config: config, network: net)
    let p = learner.parameters
    for i in 0..<p.count { p.values[i] *= 3 }  // away from the tiny head init
    var behaviour = p.flatValues
    var rng = SeededGenerator(seed: 4)
    for i in behaviour.indices { behaviour[i] += 0.3 * (rng.nextUnitFloat() - 0.5) }
    try worker.setWeights(behaviour, version: 0)
    var fragments: [Fragment] = []
    while fragments.count < 8 { try worker.step(emit: { fragments.append($0) }, episode: { _ in }) }
    let batch = try Batch(
      fragments: fragments, maxLength: config.max_seq_len, observationSize: net.observationSize,
      actionCount: net.actionCount, stateSize: net.stateSize, distribution: net.distribution)
    #expect(Set(batch.ends).count >= 2, "mixed fragment ends")
    let settings = ImpalaLoss.Settings(config, network: net)
    if let bounds = settings.actionBounds {
      // Samples beyond a bound count their tail's probability: some must be there.
      let d = bounds.low.count
      let beyond = fragments.flatMap(\.actionValues).enumerated().filter {
        $0.element >= bounds.high[$0.offset % d] || $0.element <= bounds.low[$0.offset % d]
      }
      #expect(!beyond.isEmpty, "\(label): no sample beyond the bounds")
    }
    let ws = TrainingWorkspace()
    try net.forward(p, batch: batch, ws: ws)
    var targets = ImpalaLoss.targets(batch: batch, ws: ws, settings: settings)
    if let anchors, let packing = ws.packing {
      targets = ImpalaLoss.targets(batch: batch, ws: ws, settings: settings, anchors: anchors(targets, batch, packing))
      // Both sides of the truncated lag weight and of the clip occur.
      let valid = (0..<batch.sequences).flatMap { i in (0..<batch.seqLens[i]).map { packing.row(sequence: i, time: $0) } }
      let weights = valid.map { targets.surrogateWeights[$0] }
      #expect(weights.contains(1) && weights.contains { $0 < 0.99 }, "\(label): lag weights \(weights)")
      let ratios = valid.map { expf(targets.currentLogProbs[$0] - targets.anchorLogProbs[$0]) }
      #expect(ratios.contains { abs($0 - 1) > 0.1 } && ratios.contains { abs($0 - 1) < 0.1 }, "\(label): ratios")
    }
    #expect(abs(targets.meanRho - 1) > 1e-3, "off-policy")
    let terms = ImpalaLoss.evaluate(batch: batch, ws: ws, targets: targets, settings: settings)
    // Bootstrap rows carry no gradient.
    let packing = try #require(ws.packing)
    for i in 0..<batch.sequences {
      let r = packing.row(sequence: i, time: batch.seqLens[i])
      #expect(ws.gradValues.pointer[r] == 0)
      for j in 0..<net.actionCount { #expect(ws.gradLogits.pointer[r * net.actionCount + j] == 0) }
    }
    p.zeroGrads()
    net.backward(p, ws: ws)
    let analytic = p.flatGrads
    func loss() throws -> Double {
      let w = TrainingWorkspace()
      try net.forward(p, batch: batch, ws: w)
      return Double(ImpalaLoss.evaluate(batch: batch, ws: w, targets: targets, settings: settings).total)
    }
    #expect(abs(try loss() - Double(terms.total)) < 1e-6)
    var checked = 0
    for entry in p.layout.entries {
      if entry.slot == net.filterMean || entry.slot == net.filterScale {
        // The filter's statistics are not trained: no gradient reaches them.
        #expect(analytic[entry.slot.offset..<(entry.slot.offset + entry.slot.count)].allSatisfy { $0 == 0 })
        continue
      }
      // Every scalar of small tensors, a spread sample of larger ones.
      let stride = max(1, entry.slot.count / 25)
      for j in Swift.stride(from: 0, to: entry.slot.count, by: stride) {
        let numeric = try numericDerivative(p.value(entry.slot) + j, eps: 3e-3) { try loss() }
        let a = analytic[entry.slot.offset + j]
        #expect(abs(Double(a) - numeric) <= 1e-3 + 3e-2 * abs(numeric), "\(label) d/d\(entry.name)[\(j)]: \(a) vs \(numeric)")
        checked += 1
      }
    }
    #expect(checked > minChecked)
  }

  /// One learner step on fixed data lowers the loss it optimises (a smoke check of
  /// the update's sign and plumbing).
  @Test func aStepAppliesTheOptimiserAndAdvancesTheVersion() throws {
    let config = smallConfig()
    let spaces = try EnvironmentFactory.spaces(config)
    let net = PolicyNetwork(config: config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
    let learner = Learner(config: config, network: net)
    let worker = try RolloutWorker(config: config, network: net, workerID: 0, seed: 1)
    try worker.setWeights(learner.parameters.flatValues, version: 0)
    var fragments: [Fragment] = []
    while fragments.count < config.fragmentsPerBatch { try worker.step(emit: { fragments.append($0) }, episode: { _ in }) }
    let before = learner.parameters.flatValues
    let s = try learner.step(fragments)
    #expect(learner.version == 1 && !s.skipped && s.gradNorm > 0)
    #expect(learner.parameters.flatValues != before)
    #expect(s.lags.allSatisfy { $0 == 0 }, "fresh data: learner version minus fragment version")
    #expect(learner.trainedSteps == fragments.reduce(0) { $0 + $1.length })
  }
}

@Suite struct ShardedLearnerTests {
  /// Splitting a batch over threads and summing the shards' gradients is the same
  /// update as the whole batch at once (to float summation order).
  @Test(arguments: [2, 3])
  func shardedStepEqualsTheWholeBatchStep(threads: Int) throws {
    var config = smallConfig("CartPole-v1")
    config.env_config.max_episode_steps = 11
    config.train_batch_size = 40
    let spaces = try EnvironmentFactory.spaces(config)
    let net = PolicyNetwork(config: config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
    let single = Learner(config: config, network: net)
    var sharded = config
    sharded.learner_threads = threads
    let parallel = Learner(config: sharded, network: net)
    #expect(single.parameters.flatValues == parallel.parameters.flatValues, "same seed, same start")
    let worker = try RolloutWorker(config: config, network: net, workerID: 0, seed: 5)
    try worker.setWeights(single.parameters.flatValues, version: 0)
    var fragments: [Fragment] = []
    while fragments.count < 10 { try worker.step(emit: { fragments.append($0) }, episode: { _ in }) }
    for _ in 0..<3 {
      let a = try single.step(fragments)
      let b = try parallel.step(fragments)
      #expect(abs(a.terms.total - b.terms.total) <= 1e-5 * max(1, abs(a.terms.total)))
      #expect(abs(a.gradNorm - b.gradNorm) <= 1e-4 * max(1, a.gradNorm))
      let r = closeness(parallel.parameters.flatValues, single.parameters.flatValues, rtol: 1e-4, atol: 1e-5)
      #expect(r.ok, "\(threads) shards: \(r)")
    }
    #expect(parallel.version == 3 && parallel.trainedSteps == single.trainedSteps)
  }
}

@Suite struct ShardPoolTests {
  /// Every call runs each shard exactly once and returns after all of them, whether
  /// the helpers catch the next call while spinning (back to back), sleep before it
  /// (a gap past a short spin), or never spin; a pool shuts down with its helpers.
  @Test(arguments: [200e-6, 1e-6, 0])
  func everyShardRunsOncePerCall(spin: Double) {
    let pool = ShardPool(count: 3, spinSeconds: spin)
    defer { pool.shutdown() }
    let counts = Mutex([Int](repeating: 0, count: 3))
    for call in 0..<300 {
      if call % 50 == 49 { Thread.sleep(forTimeInterval: 0.003) }
      pool.run { shard in
        if shard == 2 && call % 7 == 0 { Thread.sleep(forTimeInterval: 0.0005) }  // a late helper
        counts.withLock { $0[shard] += 1 }
      }
      let seen = counts.withLock { $0 }
      #expect(seen == [call + 1, call + 1, call + 1], "call \(call) with spin \(spin)")
      if seen != [call + 1, call + 1, call + 1] { return }
    }
  }
}

@Suite struct ShardedUpdateTests {
  /// Slices cover the vector once, in order, cut at multiples of the alignment.
  @Test func slicesCoverTheVectorAtTheAlignment() {
    for (count, parts) in [(0, 2), (5, 3), (4096, 2), (10_000, 2), (3 * 4096 + 1, 3), (530_000, 2)] {
      let s = ShardPool.slices(count: count, parts: parts, alignment: 4096)
      #expect(s.count == parts)
      #expect(s.first?.lowerBound == 0 && s.last?.upperBound == count)
      for i in 1..<parts { #expect(s[i - 1].upperBound == s[i].lowerBound) }
      for r in s.dropLast() { #expect(r.upperBound % 4096 == 0 || r.upperBound == count) }
      if count >= parts * 4096 { #expect(s.allSatisfy { !$0.isEmpty }, "\(count) in \(parts): \(s)") }
    }
  }

  /// The learner's update on 2 and 3 threads (sum of the shards' gradients, norm,
  /// clipping, RMSProp or Adam) has the bits of the serial path: axpy, then
  /// `clipGlobalNorm` and `step` on the summed gradients. The gradients span several
  /// norm blocks and a clipping norm; a NaN skips the update on both.
  @Test(arguments: [2, 3])
  func updateOnThreadsIsTheSerialUpdate(threads: Int) throws {
    for optimizer in [OptimizerKind.rmsprop, .adam] {
      var config = smallConfig("CartPole-v1")
      config.learner_threads = threads
      config.optimizer = optimizer
      config.grad_clip = 0.5
      config.lstm_cell_size = 48  // 11,321 parameters: three norm blocks, one per thread at 3
      let spaces = try EnvironmentFactory.spaces(config)
      let net = PolicyNetwork(config: config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
      let learner = Learner(config: config, network: net)
      let n = learner.parameters.count
      #expect(n > 2 * Kernels.normBlock, "the gradients span several blocks")
      var serialConfig = config
      serialConfig.learner_threads = 1
      let reference = Learner(config: serialConfig, network: net)
      var rng = SeededGenerator(seed: 9)
      for round in 0..<3 {
        let parts = (0..<threads).map { _ in (0..<n).map { _ in (2 * rng.nextUnitFloat() - 1) * 0.1 } }
        for (s, g) in parts.enumerated() { _ = learner.shardParameters[s].grads.update(fromContentsOf: g) }
        var sum = parts[0]
        for g in parts.dropFirst() {
          g.withPointer { src in sum.withMutablePointer { BLAS.axpy(1, src, $0, count: n) } }
        }
        _ = reference.parameters.grads.update(fromContentsOf: sum)
        let expectedNorm = try GradientClipping.clipGlobalNorm(reference.parameters.grads, maxNorm: 0.5)
        reference.optimizer.step(reference.parameters, lr: 0.01)
        let norm = learner.update(shards: threads, lr: 0.01)
        #expect(norm.map(Float.init) == expectedNorm, "round \(round)")
        #expect(expectedNorm > 0.5, "clipped")
        let sameGrads = learner.parameters.flatGrads == reference.parameters.flatGrads
        let sameValues = learner.parameters.flatValues == reference.parameters.flatValues
        #expect(sameGrads && sameValues, "\(optimizer) round \(round): grads \(sameGrads), values \(sameValues)")
      }
      let before = learner.parameters.flatValues
      for s in 0..<threads { learner.shardParameters[s].grads.update(repeating: 0) }
      learner.shardParameters[threads - 1].grads[n - 1] = .nan
      #expect(learner.update(shards: threads, lr: 0.01) == nil)
      #expect(learner.parameters.flatValues == before, "a NaN gradient changes no value")
      #expect(learner.optimizer.stepCount == 3)
    }
  }
}

/// K copies of a small task with a MultiDiscrete action (`heads`): observation 3
/// random floats; reward 1 when component 0 matches the sign of the first one;
/// episodes end terminated after 5 steps or truncated after 3, alternating by copy.
final class TwoHeadEnvironments: VectorEnv {
  let spec: EnvSpec
  let count: Int
  let observationSize = 3
  let actionDims: Int
  var groups: [Range<Int>] { [0..<count] }
  private(set) var observations: [Float]
  private(set) var finalObservations: [Float]
  private(set) var outcomes: [StepOutcome]
  var faults: EnvFaults { EnvFaults() }
  /// The action components each step received, per copy.
  private(set) var seen: [[Int32]] = []
  private var t: [Int]
  private var rng = SeededGenerator(seed: 5)

  init(count: Int, heads: [Int] = [3, 2]) {
    self.count = count
    actionDims = heads.count
    let action: Space = heads.count == 1 ? .discrete(heads[0]) : .multiDiscrete(nvec: heads, start: heads.map { _ in 0 })
    spec = EnvSpec(id: "TwoHead", config: "{}", observation: .box(low: [-1, -1, -1], high: [1, 1, 1]), action: action)
    observations = [Float](repeating: 0, count: count * 3)
    finalObservations = observations
    outcomes = [StepOutcome](repeating: StepOutcome(reward: 0, terminated: false, truncated: false), count: count)
    t = [Int](repeating: 0, count: count)
  }

  private func draw(_ i: Int) { for j in 0..<3 { observations[i * 3 + j] = rng.nextUnitFloat() * 2 - 1 } }

  func reset() { for i in 0..<count { draw(i) } }

  func beginStep(group: Int, actions: UnsafePointer<Int32>) {
    for i in 0..<count {
      let a = Array(UnsafeBufferPointer(start: actions + i * actionDims, count: actionDims))
      seen.append(a)
      let right = (a[0] == 0) == (observations[i * 3] < 0)
      t[i] += 1
      let terminated = i % 2 == 0 && t[i] == 5
      let truncated = i % 2 == 1 && t[i] == 3
      outcomes[i] = StepOutcome(reward: right ? 1 : 0, terminated: terminated, truncated: truncated)
      draw(i)
      if terminated || truncated {
        for j in 0..<3 { finalObservations[i * 3 + j] = observations[i * 3 + j] }
        draw(i)
        t[i] = 0
      }
    }
  }

  func finishStep(group: Int) {}
  func close() {}
}
