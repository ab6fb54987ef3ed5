import HerdEnvs
import HerdMath
import HerdNN
@testable import HerdRL
import HerdTestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// A config for the small Pendulum tests: short episodes (truncated and cut
/// fragments), a small model.
func pendulumConfig(core: String = "lstm", freeLogStd: Bool = true) -> TrainingConfig {
  var c = smallConfig("Pendulum-v1")
  c.env_config.max_episode_steps = 7
  c.use_lstm = core != "none"
  c.rnn_type = core == "gru" ? .gru : .lstm
  c.free_log_std = freeLogStd
  c.reward_scaling = false
  return c
}

/// A Pendulum network and learner for `config`, and 8 fragments a worker (seed 3)
/// collected acting with the learner's weights; `logStd` sets the learned log-std
/// vector first (free_log_std).
func pendulumFragments(_ config: TrainingConfig, logStd: Float? = nil) throws -> (PolicyNetwork, Learner, [Fragment]) {
  let net = try PolicyNetwork(config: config, spec: try EnvironmentFactory.spec(config))
  let learner = Learner(config: config, network: net)
  if let logStd { learner.parameters.value(try #require(net.logStd))[0] = logStd }
  let worker = try RolloutWorker(config: config, network: net, workerID: 0, seed: 3)
  try worker.setWeights(learner.parameters.flatValues, version: 0)
  var fragments: [Fragment] = []
  while fragments.count < 8 { try worker.step(emit: { fragments.append($0) }, episode: { _ in }) }
  return (net, learner, fragments)
}

@Suite struct DiagGaussianTests {
  /// log Q(t) = log P(Z > t) for a standard normal, by the continued fraction of
  /// Mills' ratio (independent of the erfc and the series the code uses).
  func logUpperTail(_ t: Double) -> Double {
    if t < 3 {
      // Simpson's rule over [t, t + 40] of the density.
      let n = 40_000
      let h = 40.0 / Double(n)
      var sum = 0.0
      for i in 0...n {
        let x = t + Double(i) * h
        let w: Double = i == 0 || i == n ? 1 : (i % 2 == 1 ? 4 : 2)
        sum += w * exp(-0.5 * x * x)
      }
      return log(sum * h / 3 / (2 * Double.pi).squareRoot())
    }
    var f = t
    for k in stride(from: 200, through: 1, by: -1) { f = t + Double(k) / f }
    return -0.5 * t * t - 0.5 * log(2 * Double.pi) - log(f)
  }

  /// A sample at or beyond a finite bound counts the probability of its whole
  /// tail; inside the bounds, or without bounds, the density. Above and below, a
  /// mean far inside (the far tail, t up to 45) and a mean beyond the bound.
  @Test func aSampleBeyondABoundCountsItsTail() {
    let bounds = ActionBounds(low: [-2], high: [2])
    // (mean, log std, action): t = distance to the bound in standard deviations.
    let cases: [(Float, Float, Float, Double)] = [
      (0.5, 0.0, 2.0, 1.5), (0.5, 0.0, 3.7, 1.5), (-0.4, -1.0, -2.5, 1.6 / exp(-1.0)), (1.0, -2.0, 2.2, exp(2.0)),
      (3.0, 0.5, 2.5, -1 / exp(0.5)), (-1.0, log(0.065), 2.0, 3 / 0.065), (0.0, log(0.1), -4, 20),
    ]
    for (mean, logStd, action, t) in cases {
      let inputs = [mean, logStd]
      let got = DiagGaussian.logProb(inputs, action: [action], dims: 1, bounds: bounds)
      let expected = logUpperTail(t)
      #expect(
        abs(Double(got) - expected) <= 1e-4 * max(1, abs(expected)),
        "\(mean) \(logStd) \(action): \(got) vs \(expected)")
      let density = DiagGaussian.logProb(inputs, action: [action], dims: 1, bounds: nil)
      #expect(got != density, "the bounds change a sample beyond them")
    }
    // Inside, and where the space has no bound on that side: the density.
    let inside = DiagGaussian.logProb([0.5, 0.0], action: [1.9], dims: 1, bounds: bounds)
    #expect(inside == DiagGaussian.logProb([0.5, 0.0], action: [1.9], dims: 1, bounds: nil))
    let open = ActionBounds(low: [-.infinity], high: [2])
    #expect(
      DiagGaussian.logProb([0.5, 0.0], action: [-9], dims: 1, bounds: open)
        == DiagGaussian.logProb([0.5, 0.0], action: [-9], dims: 1, bounds: nil))
    #expect(!ActionBounds(low: [-.infinity], high: [.infinity]).anyFinite && open.anyFinite)
  }

  /// The tail's gradient by the mean and the log std against central differences
  /// of the tail's log-probability, on both sides, near and far (t up to 45).
  @Test func theTailsGradientMatchesFiniteDifferences() {
    let bounds = ActionBounds(low: [-2, -1], high: [2, 1])
    let cases: [([Float], [Float])] = [
      ([0.5, -0.3, 0.0, -0.5], [2.0, -1.4]), ([1.5, 0.9, -1.0, 0.4], [3.0, -1.0]),
      ([3.0, 0.2, 0.5, -1.0], [2.1, -3.0]),
      ([-1.0, 0.0, log(0.065), log(0.03)], [2.0, 1.2]),
    ]
    for (inputs, action) in cases {
      var g = [Float](repeating: 0, count: 4)
      DiagGaussian.lossGradient(
        inputs, action: action, dims: 2, weight: 1, entropyCoeff: 0, scale: 1, bounds: bounds, into: &g)
      for k in 0..<4 {
        // A mean moves in units of its std (log P is nearly quadratic in it, so a
        // wider step costs little and keeps Float's rounding small).
        let h = k < 2 ? 1e-2 * Double(exp(inputs[2 + k])) : 1e-3
        func f(_ delta: Double) -> Double {
          var x = inputs
          x[k] += Float(delta)
          return Double(DiagGaussian.logProb(x, action: action, dims: 2, bounds: bounds))
        }
        let numeric = (f(h) - f(-h)) / (2 * h)
        // g is the loss's gradient: -d log p.
        #expect(
          abs(Double(-g[k]) - numeric) <= 2e-3 * max(1, abs(numeric)),
          "\(inputs) \(action) [\(k)]: \(-g[k]) vs \(numeric)")
      }
    }
  }

  /// log p and H against their formulas, computed here in Double.
  @Test func logProbAndEntropyFollowTheirFormulas() {
    let inputs: [Float] = [0.3, -1.2, 2.0, -0.5, 0.7, 2.6]  // means, then log stds (the last above the clamp)
    let action: [Float] = [1.1, -1.0, 1.9]
    var expected = 0.0
    var entropy = 0.0
    for j in 0..<3 {
      let ls = max(-20, min(2, Double(inputs[3 + j])))
      let z = (Double(action[j]) - Double(inputs[j])) / exp(ls)
      expected += -0.5 * z * z - ls - 0.5 * log(2 * Double.pi)
      entropy += ls + 0.5 * log(2 * Double.pi * M_E)
    }
    let lp = inputs.withPointer { i in action.withPointer { DiagGaussian.logProb(i, action: $0, dims: 3, bounds: nil) } }
    let h = inputs.withPointer { DiagGaussian.entropy($0, dims: 3) }
    #expect(abs(Double(lp) - expected) <= 1e-5 * max(1, abs(expected)), "\(lp) vs \(expected)")
    #expect(abs(Double(h) - entropy) < 1e-5, "\(h) vs \(entropy)")
  }

  /// Samples have the inputs' mean and standard deviation per dimension; greedy
  /// acting takes the mean.
  @Test func samplesHaveTheirInputsMeanAndStd() {
    let inputs: [Float] = [1.5, -0.25, log(0.5), log(2.0)]
    var rng = SeededGenerator(seed: 11)
    let n = 40_000
    var sum = [Double](repeating: 0, count: 2)
    var sq = [Double](repeating: 0, count: 2)
    var out = [Float](repeating: 0, count: 2)
    for _ in 0..<n {
      inputs.withPointer { i in
        out.withMutablePointer { DiagGaussian.sample(i, dims: 2, greedy: false, rng: &rng, into: $0) }
      }
      for j in 0..<2 {
        sum[j] += Double(out[j])
        sq[j] += Double(out[j]) * Double(out[j])
      }
    }
    for (j, (mu, sigma)) in [(1.5, 0.5), (-0.25, 2.0)].enumerated() {
      let mean = sum[j] / Double(n)
      let std = (sq[j] / Double(n) - mean * mean).squareRoot()
      // 5 standard errors.
      #expect(abs(mean - mu) < 5 * sigma / Double(n).squareRoot(), "dim \(j): mean \(mean)")
      #expect(abs(std / sigma - 1) < 0.02, "dim \(j): std \(std)")
    }
    inputs.withPointer { i in
      out.withMutablePointer { DiagGaussian.sample(i, dims: 2, greedy: true, rng: &rng, into: $0) }
    }
    #expect(out == [1.5, -0.25])
  }

  /// The per-step gradient against central differences of
  /// `-w log p(a) - c H`, inside the log std clamp (the third log std is beyond it,
  /// where the loss is flat: see the next test).
  @Test func stepGradientMatchesFiniteDifferences() throws {
    // [mu0, mu1, mu2 | ls0, ls1, ls2], the last log std above the clamp.
    let inputs = UnsafeMutablePointer<Float>.allocate(capacity: 6)
    defer { inputs.deallocate() }
    for (k, v) in [Float(0.4), -0.3, 0.1, 0.2, -0.6, 2.5].enumerated() { inputs[k] = v }
    let action: [Float] = [1.0, -1.3, 0.25]
    let (w, c): (Float, Float) = (0.7, 0.05)
    var g = [Float](repeating: 0, count: 6)
    action.withPointer { a in
      g.withMutablePointer {
        DiagGaussian.lossGradient(inputs, action: a, dims: 3, weight: w, entropyCoeff: c, scale: 1, bounds: nil, into: $0)
      }
    }
    func loss() -> Double {
      action.withPointer { a in
        Double(-w * DiagGaussian.logProb(inputs, action: a, dims: 3, bounds: nil) - c * DiagGaussian.entropy(inputs, dims: 3))
      }
    }
    for k in 0..<5 {
      let numeric = numericDerivative(inputs + k, eps: 1e-3) { loss() }
      #expect(abs(Double(g[k]) - numeric) <= 1e-3 + 1e-2 * abs(numeric), "d/dinput[\(k)]: \(g[k]) vs \(numeric)")
    }
    #expect(numericDerivative(inputs + 5, eps: 1e-3) { loss() } == 0, "the loss is flat beyond the clamp")
  }

  /// Beyond a bound of the clamp the log std's gradient is the bound's when it
  /// points back inside and 0 when it points further out, at both bounds: a log
  /// std past the clamp can always come back.
  @Test func beyondTheClampOnlyAGradientBackInsidePasses() {
    // One dimension: [mean | log std]; the gradient at the raw log std and at the bound.
    func gradient(logStd: Float, action: Float) -> Float {
      let inputs: [Float] = [0.1, logStd]
      var g: [Float] = [0, 0]
      inputs.withPointer { x in
        [action].withPointer { a in
          g.withMutablePointer {
            DiagGaussian.lossGradient(x, action: a, dims: 1, weight: 0.7, entropyCoeff: 0.05, scale: 1, bounds: nil, into: $0)
          }
        }
      }
      return g[1]
    }
    let top = DiagGaussian.maxLogStd
    let bottom = DiagGaussian.minLogStd
    // Above: an action near the mean asks for a smaller spread (gradient > 0: descent lowers it).
    let inward = gradient(logStd: top, action: 0.2)
    #expect(inward > 0 && gradient(logStd: top + 0.5, action: 0.2) == inward)
    // An action far out asks for a wider one: beyond the bound that is cut.
    #expect(gradient(logStd: top, action: 20) < 0 && gradient(logStd: top + 0.5, action: 20) == 0)
    // Below: an action off the mean asks for a wider spread (gradient < 0: descent raises it).
    let up = gradient(logStd: bottom, action: 0.2)
    #expect(up < 0 && up.isFinite && gradient(logStd: bottom - 1, action: 0.2) == up)
    // Exactly the mean asks for a narrower one: cut.
    #expect(gradient(logStd: bottom, action: 0.1) > 0 && gradient(logStd: bottom - 1, action: 0.1) == 0)
  }
}

@Suite struct ContinuousActionTests {
  /// The whole loss's gradient (Gaussian heads, BPTT, encoder; pi.log_std with a free
  /// log std) against central differences, on off-policy Pendulum data, with
  /// IMPALA's policy gradient and with the clipped surrogate. "... prev": the
  /// previous action (its float, clipped) is an input of the core.
  @Test(arguments: [
    ("lstm", true, false), ("lstm", false, true), ("none", true, true), ("gru", false, false), ("gru prev", true, true),
  ])
  func wholeLossGradientMatchesFiniteDifferences(variant: String, freeLogStd: Bool, clip: Bool) throws {
    let core = String(variant.split(separator: " ")[0])
    var config = pendulumConfig(core: core, freeLogStd: freeLogStd)
    config.lstm_use_prev_reward = true
    config.lstm_use_prev_action = variant.hasSuffix(" prev")
    config.entropy_coeff = 0.05
    config.clip_param = clip ? 0.1 : 0
    let spec = try EnvironmentFactory.spec(config)
    let net = try PolicyNetwork(config: config, spec: spec)
    #expect(net.distribution == .gaussian(dims: 1, freeLogStd: freeLogStd))
    #expect((net.logStd != nil) == freeLogStd && net.actionCount == 2 && net.headOutputs == (freeLogStd ? 1 : 2))
    let worker = try RolloutWorker(config: config, network: net, workerID: 0, seed: 9)
    try ImpalaLossTests().checkWholeLossGradient(
      config: config, net: net, worker: worker, label: "\(variant) free \(freeLogStd) clip \(clip)",
      minChecked: core == "none" ? 30 : 50)
  }

  /// The learner recomputes the worker's behaviour from each fragment's stored
  /// state: with the same weights its [mean | log std] rows equal the stored ones
  /// and every ratio is 1. After an update the ratios it reports are
  /// pi_new(a) / mu(a) with mu the stored behaviour, which this test computes itself.
  /// "... prev": the previous action is an input, so a fragment that opens
  /// mid-episode must carry the action before it (and one at an episode start zeros).
  @Test(arguments: ["lstm", "none", "lstm prev", "none prev"])
  func learnerRecomputesTheBehaviourFromTheStoredState(variant: String) throws {
    let core = String(variant.split(separator: " ")[0])
    var config = pendulumConfig(core: core)
    config.lstm_use_prev_action = variant.hasSuffix(" prev")
    config.lr = 0.01  // an update that moves the ratios well away from 1
    // std 1.5 around a mean near 0: a fair share of samples beyond the bounds of +-2.
    let (net, learner, fragments) = try pendulumFragments(config, logStd: log(1.5))
    #expect(fragments.allSatisfy { $0.actionValues.count == $0.length && $0.actions.allSatisfy { $0 == 0 } })
    #expect(net.coreInputSize == net.encoder.outFeatures + (config.lstm_use_prev_action ? 1 : 0))
    #expect(
      fragments.allSatisfy { $0.prevActionValues.count == 1 && ($0.indexInEpisode > 0 || $0.prevActionValues == [0]) })
    #expect(fragments.contains { $0.indexInEpisode > 0 && $0.prevActionValues != [0] }, "a fragment opens mid-episode")
    let batch = try Batch(
      fragments: fragments, maxLength: config.max_seq_len, observationSize: net.observationSize,
      actionCount: net.actionCount, stateSize: net.stateSize, distribution: net.distribution)
    let ws = TrainingWorkspace()
    try net.forward(learner.parameters, batch: batch, ws: ws)
    let packing = try #require(ws.packing)
    var worst: Float = 0
    for i in 0..<batch.sequences {
      for t in 0..<batch.seqLens[i] {
        let r = packing.row(sequence: i, time: t)
        for j in 0..<2 {
          worst = max(worst, abs(ws.logits.pointer[r * 2 + j] - fragments[i].behaviourLogits[t * 2 + j]))
        }
      }
    }
    #expect(worst < 1e-5, "\(variant): behaviour recomputed within \(worst)")
    let settings = ImpalaLoss.Settings(config, network: net)
    let bounds = try #require(settings.actionBounds, "clipped_action_logp is on and Pendulum's bounds are finite")
    #expect(bounds.low == [-2] && bounds.high == [2])
    let beyond = fragments.reduce(0) { $0 + $1.actionValues.count { abs($0) >= 2 } }
    #expect(beyond > 0, "some samples lie beyond a bound, so the tail's probability is in the ratios")
    #expect(abs(ImpalaLoss.targets(batch: batch, ws: ws, settings: settings).meanRho - 1) < 1e-5)
    // One update, then the ratios against the stored behaviour.
    _ = try learner.step(fragments)
    try net.forward(learner.parameters, batch: batch, ws: ws)
    let targets = ImpalaLoss.targets(batch: batch, ws: ws, settings: settings)
    var sum = 0.0
    for i in 0..<batch.sequences {
      for t in 0..<batch.seqLens[i] {
        let r = packing.row(sequence: i, time: t)
        let a = Double(fragments[i].actionValues[t])
        // The density inside the bounds; at or beyond one, log P(tail) = log(erfc(t / sqrt 2) / 2).
        func logp(_ mu: Float, _ ls: Float) -> Double {
          let sigma = exp(Double(ls))
          if a >= 2 { return log(0.5 * erfc((2 - Double(mu)) / sigma / 2.0.squareRoot())) }
          if a <= -2 { return log(0.5 * erfc((Double(mu) + 2) / sigma / 2.0.squareRoot())) }
          let z = (a - Double(mu)) / sigma
          return -0.5 * z * z - Double(ls) - 0.5 * log(2 * Double.pi)
        }
        let b = fragments[i].behaviourLogits
        sum += exp(logp(ws.logits.pointer[r * 2], ws.logits.pointer[r * 2 + 1]) - logp(b[t * 2], b[t * 2 + 1]))
      }
    }
    let mean = sum / Double(batch.validSteps)
    #expect(abs(mean - 1) > 1e-4, "the update moved the policy")
    #expect(abs(Double(targets.meanRho) - mean) < 1e-4 * max(1, mean), "\(targets.meanRho) vs \(mean)")
  }

  /// The environment gets each sample clipped to the bounds; the fragment keeps the
  /// sample itself (its log-probability is the one V-trace needs).
  @Test func rolloutClipsForTheEnvironmentAndRecordsTheSample() throws {
    var config = pendulumConfig(core: "none")
    config.env_config.max_episode_steps = 50
    let net = try PolicyNetwork(config: config, spec: try EnvironmentFactory.spec(config))
    let p = Parameters(layout: net.layout)
    p.value(try #require(net.logStd))[0] = log(3)  // std 3: many samples beyond [-2, 2]
    let envs = RecordingBoxEnvironments(count: 4)
    let worker = try RolloutWorker(config: config, network: net, envs: envs, workerID: 0, seed: 5)
    try worker.setWeights(p.flatValues, version: 0)
    var fragments: [Fragment] = []
    while fragments.count < 12 { try worker.step(emit: { fragments.append($0) }, episode: { _ in }) }
    let recorded = fragments.flatMap(\.actionValues)
    #expect(recorded.contains { abs($0) > 2 }, "samples beyond the bounds are recorded as drawn")
    #expect(!envs.seen.isEmpty && envs.seen.allSatisfy { abs($0) <= 2 }, "the environment saw them clipped")
    #expect(envs.seen.contains { $0 == 2 || $0 == -2 })
  }

  /// With `lstm_use_prev_action` a Gaussian policy's core reads the previous
  /// action as the environment took it: its float clipped to the space's bounds
  /// ([-2, 2] on Pendulum). A sample beyond a bound acts as the bound, one inside
  /// as itself, and the input changes the output.
  @Test func thePreviousBoxActionIsAnInputClippedToTheBounds() throws {
    var config = pendulumConfig()
    config.lstm_use_prev_action = true
    let net = try PolicyNetwork(config: config, spec: try EnvironmentFactory.spec(config))
    #expect(net.actionLow == [-2] && net.actionHigh == [2])
    #expect(net.coreInputSize == net.encoder.outFeatures + 1)
    let p = Learner(config: config, network: net).parameters
    for i in 0..<p.count { p.values[i] *= 4 }
    let ws = PolicyWorkspace()
    let obs: [Float] = [0.3, -0.8, 1.5]
    func output(_ prev: Float) -> [Float] {
      var h = [Float](repeating: 0, count: net.stateWidth)
      var c = h
      let prevActionValues = [prev]
      net.step(
        p, obs: obs, prevActions: [0], prevActionValues: prevActionValues, prevRewards: [0], rows: 1, h: &h, c: &c,
        ws: ws)
      return Array(UnsafeBufferPointer(start: ws.logits.pointer, count: net.actionCount)) + [ws.values.pointer[0]] + h
    }
    #expect(output(5) == output(2), "beyond the upper bound: the bound")
    #expect(output(-7.5) == output(-2), "beyond the lower bound: the bound")
    #expect(output(1.25) != output(2) && output(1.25) != output(0), "inside the bounds: itself")
    #expect(output(0) != output(2), "the previous action is an input")
  }
}

/// K copies of a Box([-2, 2]) environment that record every action they take.
final class RecordingBoxEnvironments: VectorEnv {
  let spec = EnvSpec(
    id: "RecordingBox", config: "{}", observation: .box(low: [-1, -1, -1], high: [1, 1, 1]),
    action: .box(shape: [1], dtype: "float32", low: [-2], high: [2]))
  let count: Int
  let observationSize = 3
  let actionDims = 1
  var groups: [Range<Int>] { [0..<count] }
  private(set) var observations: [Float]
  private(set) var finalObservations: [Float]
  private(set) var outcomes: [StepOutcome]
  var faults: EnvFaults { EnvFaults() }
  private(set) var seen: [Float] = []
  private var t: [Int]

  init(count: Int) {
    self.count = count
    observations = [Float](repeating: 0.5, count: count * 3)
    finalObservations = observations
    outcomes = [StepOutcome](repeating: StepOutcome(reward: 0, terminated: false, truncated: false), count: count)
    t = [Int](repeating: 0, count: count)
  }

  func reset() {}

  func beginStep(group: Int, actions: UnsafePointer<Int32>) { Issue.record("discrete actions sent to a Box env") }

  func beginStep(group: Int, continuousActions: UnsafePointer<Float>) {
    for i in 0..<count {
      seen.append(continuousActions[i])
      t[i] += 1
      outcomes[i] = StepOutcome(reward: -abs(continuousActions[i]), terminated: false, truncated: t[i] == 6)
      if t[i] == 6 { t[i] = 0 }
    }
  }

  func finishStep(group: Int) {}
  func close() {}
}

@Suite struct RewardScalingTests {
  func fragment(run: UInt64, env: Int, episode: UInt64, at index: Int, rewards: [Float], end: FragmentEnd) -> Fragment {
    Fragment(
      stateIn: [], observations: [Float](repeating: 0, count: rewards.count + 1), actions: rewards.map { _ in 0 },
      rewards: rewards, behaviourLogits: [Float](repeating: 0, count: rewards.count * 2), prevAction: 0,
      prevReward: 0, end: end, policyVersion: 0, workerID: 1, runID: run, envIndex: env, episodeID: episode,
      indexInEpisode: index)
  }

  /// The discounted return runs on across an episode's fragments (interleaved with
  /// another stream's), restarts at an episode start, and a fragment whose
  /// predecessor is missing starts from 0. Mean, variance and scale are those of
  /// the returns computed here directly.
  @Test func returnsFollowEachStreamAcrossFragments() throws {
    var stats = ReturnStatistics(gamma: 0.5)  // exact in Float
    let a1 = fragment(run: 1, env: 0, episode: 4, at: 0, rewards: [1, -2, 3], end: .cut)
    let b1 = fragment(run: 1, env: 1, episode: 9, at: 0, rewards: [5, 5], end: .cut)
    let a2 = fragment(run: 1, env: 0, episode: 4, at: 3, rewards: [0.5, 4], end: .truncated)
    let b2 = fragment(run: 1, env: 1, episode: 9, at: 7, rewards: [2], end: .terminated)  // a gap: from 0
    for f in [a1, b1, a2, b2] { stats.update(f) }
    var expected: [Double] = []
    var r = 0.0
    for x in [1.0, -2, 3, 0.5, 4] {
      r = 0.5 * r + x
      expected.append(r)
    }
    r = 0
    for x in [5.0, 5] {
      r = 0.5 * r + x
      expected.append(r)
    }
    expected.append(2)
    let mean = expected.reduce(0, +) / Double(expected.count)
    let variance = expected.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(expected.count)
    #expect(stats.count == Double(expected.count))
    #expect(abs(stats.mean - mean) < 1e-9 && abs(stats.variance - variance) < 1e-9)
    #expect(abs(Double(stats.scale) - 1 / (variance + 1e-8).squareRoot()) < 1e-6)
    let back = try ReturnStatistics(json: try stats.json())
    #expect(back.count == stats.count && back.mean == stats.mean && back.m2 == stats.m2 && back.gamma == 0.5)
    #expect(throws: (any Error).self) { try ReturnStatistics(json: #"{"count": -1, "mean": 0, "m2": 0, "gamma": 0.5}"#) }
  }

  /// With reward_scaling the learner counts each new fragment's returns once (not
  /// again when it reuses them) and trains on the scaled rewards; the
  /// previous-reward inputs of the network stay as acted on.
  @Test func theLearnerCountsNewFragmentsOnceAndScalesTheLossRewards() throws {
    var config = pendulumConfig(core: "lstm")
    config.reward_scaling = true
    config.lstm_use_prev_reward = true
    config.num_epochs = 3
    let (net, learner, fragments) = try pendulumFragments(config)
    let steps = fragments.reduce(0) { $0 + $1.length }
    _ = try learner.train(fragments)
    #expect(learner.returnStatistics?.count == Double(steps))
    _ = try learner.train(fragments, passes: 1, fresh: false)
    #expect(learner.returnStatistics?.count == Double(steps), "reuse does not count again")
    let scale = try #require(learner.returnStatistics?.scale)
    #expect(scale > 1.5 || scale < 0.67, "Pendulum's returns are far from unit scale (\(scale))")
    var batch = try Batch(
      fragments: fragments, maxLength: config.max_seq_len, observationSize: net.observationSize,
      actionCount: net.actionCount, stateSize: net.stateSize, distribution: net.distribution)
    let before = batch
    batch.scaleRewards(by: scale)
    #expect(zip(batch.rewards, before.rewards).allSatisfy { $0 == $1 * scale })
    #expect(batch.prevRewards == before.prevRewards)
  }
}
