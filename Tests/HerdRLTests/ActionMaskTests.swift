import Foundation
import HerdEnvs
import HerdMath
import HerdNN
@testable import HerdRL
import HerdTestSupport
import Testing

/// K copies of a task whose actions are not all allowed: the observation is a Dict
/// of `action_mask` (one 0/1 per logit, drawn at random each step with at least one
/// allowed per head) and `x` (2 random floats); reward 1 when head 0's action is
/// the allowed one nearest to `x[0]`'s bucket. Records every action taken where its
/// mask was 0. Episodes end terminated after 5 steps or truncated after 3. With
/// `idleEvery` n > 0, row i's mask is all 0 at each step t with (t + i) % n == 0,
/// as a turn-based game's is for the player whose turn it is not: its action is
/// ignored (reward 0, never a violation).
final class MaskedEnvironments: VectorEnv {
  let spec: EnvSpec
  let count: Int
  let heads: [Int]
  let logits: Int
  var observationSize: Int { logits + 2 }
  var actionDims: Int { heads.count }
  var groups: [Range<Int>] { [0..<count] }
  private(set) var observations: [Float]
  private(set) var finalObservations: [Float]
  private(set) var outcomes: [StepOutcome]
  var faults: EnvFaults { EnvFaults() }
  /// Actions taken where the mask said 0, and actions taken in all.
  private(set) var violations = 0
  private(set) var taken = 0
  /// How many of the masks drawn allowed one action only in some head, and all.
  private(set) var maskedEntries = 0
  private var t: [Int]
  private var rng = SeededGenerator(seed: 8)
  let idleEvery: Int
  /// Steps taken on an all-0 mask.
  private(set) var idleSteps = 0

  init(count: Int, heads: [Int] = [5], idleEvery: Int = 0) {
    self.count = count
    self.heads = heads
    self.idleEvery = idleEvery
    logits = heads.reduce(0, +)
    let action: Space = heads.count == 1 ? .discrete(heads[0]) : .multiDiscrete(nvec: heads, start: heads.map { _ in 0 })
    let observation: Space = .dict([
      .init(key: "action_mask", space: .multiBinary(shape: [heads.reduce(0, +)])),
      .init(key: "x", space: .box(low: [-1, -1], high: [1, 1])),
    ])
    spec = EnvSpec(id: "Masked", config: "{}", observation: observation, action: action)
    observations = [Float](repeating: 0, count: count * (logits + 2))
    finalObservations = observations
    outcomes = [StepOutcome](repeating: StepOutcome(reward: 0, terminated: false, truncated: false), count: count)
    t = [Int](repeating: 0, count: count)
  }

  private func draw(_ i: Int) {
    let base = i * observationSize
    var offset = 0
    if idleEvery > 0 && (t[i] + i) % idleEvery == 0 {
      for j in 0..<logits { observations[base + j] = 0 }
      offset = logits
    }
    for n in heads where offset < logits {
      let keep = Int(rng.next() % UInt64(n))  // always allowed
      for j in 0..<n {
        let allowed = j == keep || rng.nextUnitFloat() < 0.4
        observations[base + offset + j] = allowed ? 1 : 0
        if !allowed { maskedEntries += 1 }
      }
      offset += n
    }
    observations[base + logits] = rng.nextUnitFloat() * 2 - 1
    observations[base + logits + 1] = rng.nextUnitFloat() * 2 - 1
  }

  func reset() { for i in 0..<count { draw(i) } }

  func beginStep(group: Int, actions: UnsafePointer<Int32>) {
    for i in 0..<count {
      let base = i * observationSize
      var offset = 0
      var right = false
      let idle = (0..<logits).allSatisfy { observations[base + $0] < 0.5 }
      if idle { idleSteps += 1 }
      for (h, n) in heads.enumerated() where !idle {
        let a = Int(actions[i * heads.count + h])
        taken += 1
        if !(0..<n).contains(a) || observations[base + offset + a] < 0.5 { violations += 1 }
        if h == 0 {
          let bucket = min(n - 1, Int((observations[base + logits] + 1) / 2 * Float(n)))
          right = a == bucket
        }
        offset += n
      }
      t[i] += 1
      let terminated = i % 2 == 0 && t[i] == 5
      let truncated = i % 2 == 1 && t[i] == 3
      outcomes[i] = StepOutcome(reward: right ? 1 : 0, terminated: terminated, truncated: truncated)
      draw(i)
      if terminated || truncated {
        for j in 0..<observationSize { finalObservations[base + j] = observations[base + j] }
        draw(i)
        t[i] = 0
      }
    }
  }

  func finishStep(group: Int) {}
  func close() {}
}

@Suite struct ActionMaskTests {
  static func config() -> TrainingConfig {
    var config = smallConfig("CartPole-v1")
    config.lstm_use_prev_action = true
    config.entropy_coeff = 0.05
    return config
  }

  /// The network over the masked task's spec, as a run builds it.
  static func network(_ config: TrainingConfig, _ envs: MaskedEnvironments) throws -> PolicyNetwork {
    try PolicyNetwork(config: config, spec: envs.spec)
  }

  /// Where the mask sits, and what cannot mask the actions.
  @Test func theMaskIsFoundOrRefusedByName() throws {
    let envs = MaskedEnvironments(count: 2, heads: [3, 2])
    #expect(try envs.spec.observation.actionMask(key: "action_mask", actions: 5) == 0..<5)
    #expect(try envs.spec.observation.actionMask(key: "other", actions: 5) == nil)
    #expect(try envs.spec.observation.actionMask(key: "", actions: 5) == nil)
    #expect(try Space.box(low: [0, 0], high: [1, 1]).actionMask(key: "action_mask", actions: 2) == nil)
    let later: Space = .dict([
      .init(key: "a", space: .discrete(3)), .init(key: "action_mask", space: .box(low: [0, 0], high: [1, 1])),
    ])
    #expect(try later.actionMask(key: "action_mask", actions: 2) == 3..<5)
    #expect(throws: SpaceError.self) { try later.actionMask(key: "action_mask", actions: 3) }
    do {
      _ = try later.actionMask(key: "a", actions: 3)
      Issue.record("a Discrete entry is not a mask")
    } catch {
      #expect("\(error)".contains("the observation's 'a' entry is Discrete(3): an action mask is a Box or MultiBinary of 0/1"), "\(error)")
    }
    var config = Self.config()
    #expect(try Self.network(config, envs).actionMask == 0..<5)
    config.action_mask_key = ""
    #expect(try Self.network(config, envs).actionMask == nil)
    // Refused: a size that is not the logits', and continuous actions.
    config.action_mask_key = "action_mask"
    let wrong = EnvSpec(id: "W", config: "{}", observation: envs.spec.observation, action: .discrete(4))
    do {
      _ = try PolicyNetwork(config: config, spec: wrong)
      Issue.record("a mask of 5 for 4 actions")
    } catch {
      #expect("\(error)".contains("has 5 entries, but the action space has 4 actions to mask"), "\(error)")
      #expect("\(error)".contains(#"action_mask_key = "" reads the entry as an input only"#), "\(error)")
    }
    let box = EnvSpec(id: "B", config: "{}", observation: envs.spec.observation, action: .box(low: [-1], high: [1]))
    do {
      _ = try PolicyNetwork(config: config, spec: box)
      Issue.record("a mask for continuous actions")
    } catch {
      #expect("\(error)".contains("would mask the actions, but they are continuous"), "\(error)")
    }
    config.action_mask_key = ""
    #expect(try PolicyNetwork(config: config, spec: box).actionMask == nil)
  }

  /// Sampled and greedy, for one head and two: no action is ever taken where its
  /// mask is 0, and the behaviour logits the fragments carry are -1e9 exactly
  /// there and a head's own values elsewhere.
  @Test(arguments: [[5], [3, 2]])
  func maskedActionsAreNeverTaken(heads: [Int]) throws {
    let config = Self.config()
    for greedy in [false, true] {
      let envs = MaskedEnvironments(count: 4, heads: heads)
      let net = try Self.network(config, envs)
      let learner = Learner(config: config, network: net)
      let p = learner.parameters
      for i in 0..<p.count { p.values[i] *= 20 }  // far from uniform: masked actions would be likely
      let worker = try RolloutWorker(config: config, network: net, envs: envs, workerID: 0, seed: 3)
      worker.greedy = greedy
      try worker.setWeights(p.flatValues, version: 0)
      var fragments: [Fragment] = []
      while envs.taken < 2000 { try worker.step(emit: { fragments.append($0) }, episode: { _ in }) }
      #expect(envs.violations == 0, "\(heads) greedy \(greedy): \(envs.violations) of \(envs.taken)")
      #expect(envs.maskedEntries > 500)
      let a = net.actionCount
      var checked = 0
      for fr in fragments.prefix(20) {
        for t in 0..<fr.length {
          let obs = Array(fr.observations.floats[(t * net.observationSize)..<((t + 1) * net.observationSize)])
          for j in 0..<a {
            let logit = fr.behaviourLogits[t * a + j]
            if obs[j] < 0.5 {
              #expect(logit == ActionMask.maskedLogit)
              checked += 1
            } else {
              #expect(logit > -1e6)
            }
          }
        }
      }
      #expect(checked > 20)
    }
  }

  /// A masked entry's probability is exactly 0 for the sampler whatever the
  /// rounding, and an allowed one keeps its share.
  @Test func theSamplerNeverDrawsAMaskedAction() {
    var rng = SeededGenerator(seed: 1)
    let logits: [Float] = [ActionMask.maskedLogit, 3, ActionMask.maskedLogit, -2, ActionMask.maskedLogit]
    var counts = [0, 0, 0, 0, 0]
    for _ in 0..<20_000 { counts[logits.withUnsafeBufferPointer { sampleCategorical($0.baseAddress!, count: 5, rng: &rng) }] += 1 }
    #expect(counts[0] == 0 && counts[2] == 0 && counts[4] == 0, "\(counts)")
    let share = Double(counts[3]) / 20_000
    #expect(abs(share - Double(1 / (1 + expf(5)))) < 0.003, "\(counts)")
  }

  /// The learner recomputes the worker's masked behaviour logits bit for bit
  /// (every importance ratio 1), its log-probabilities of masked actions are about
  /// -1e9 and no loss gradient reaches a masked logit.
  @Test(arguments: [[5], [3, 2]])
  func theLearnerMasksAsTheWorkerDid(heads: [Int]) throws {
    var config = Self.config()
    config.observation_filter = .MeanStdFilter
    let envs = MaskedEnvironments(count: 4, heads: heads)
    let net = try Self.network(config, envs)
    let learner = Learner(config: config, network: net)
    let worker = try RolloutWorker(config: config, network: net, envs: envs, workerID: 0, seed: 3)
    var fragments: [Fragment] = []
    // A few updates first, so the filter has statistics (pinned over the mask).
    for _ in 0..<3 {
      try worker.setWeights(learner.parameters.flatValues, version: learner.version)
      fragments.removeAll()
      while fragments.count < 8 { try worker.step(emit: { fragments.append($0) }, episode: { _ in }) }
      _ = try learner.train(fragments)
    }
    let p = learner.parameters
    let mean = p.value(try #require(net.filterMean))
    let scale = p.value(try #require(net.filterScale))
    for k in 0..<net.actionCount { #expect(mean[k] == 0 && scale[k] == 1, "mask entry \(k) passes the filter") }
    #expect(mean[net.actionCount] != 0 && scale[net.actionCount] != 1, "the other entries are filtered")
    // A new worker on these weights (the old one's first steps would record actions
    // drawn with the weights before).
    let fresh = try RolloutWorker(config: config, network: net, envs: envs, workerID: 0, seed: 4)
    try fresh.setWeights(p.flatValues, version: learner.version)
    fragments.removeAll()
    while fragments.count < 8 { try fresh.step(emit: { fragments.append($0) }, episode: { _ in }) }
    var batch = try Batch(
      fragments: fragments, maxLength: config.max_seq_len, observationSize: net.observationSize,
      actionCount: net.actionCount, stateSize: net.stateSize, heads: net.heads)
    learner.filterObservations(&batch, fragments: fragments)
    let ws = TrainingWorkspace()
    try net.forward(p, batch: batch, ws: ws)
    let packing = try #require(ws.packing)
    let a = net.actionCount
    var masked = 0
    for (i, fr) in fragments.enumerated() {
      for t in 0..<fr.length {
        let r = packing.row(sequence: i, time: t)
        for j in 0..<a {
          #expect(ws.logits.pointer[r * a + j] == fr.behaviourLogits[t * a + j], "bit-identical logits")
          if fr.behaviourLogits[t * a + j] == ActionMask.maskedLogit {
            masked += 1
            #expect(ws.logProbs.pointer[r * a + j] < -1e8)
          }
        }
      }
    }
    #expect(masked > 10)
    let settings = ImpalaLoss.Settings(config, network: net)
    let targets = ImpalaLoss.targets(batch: batch, ws: ws, settings: settings)
    #expect(abs(targets.meanRho - 1) < 1e-6, "mean rho \(targets.meanRho)")
    let terms = ImpalaLoss.evaluate(batch: batch, ws: ws, targets: targets, settings: settings)
    #expect(terms.total.isFinite && terms.entropy.isFinite && terms.entropy > 0)
    for (i, fr) in fragments.enumerated() {
      for t in 0..<fr.length {
        let r = packing.row(sequence: i, time: t)
        for j in 0..<a where fr.behaviourLogits[t * a + j] == ActionMask.maskedLogit {
          #expect(ws.gradLogits.pointer[r * a + j] == 0)
        }
      }
    }
  }
}

extension ImpalaLossTests {
  /// The whole loss's gradient with masked actions (one head and two), against
  /// central differences: the masked logits are constants, the rest train.
  @Test(arguments: [[5], [3, 2]])
  func maskedLossGradientMatchesFiniteDifferences(heads: [Int]) throws {
    let config = ActionMaskTests.config()
    // Every third step of a row has every action masked (a turn-based game's
    // player waiting for its turn): its logits are constants, so none of the
    // loss's gradient may pass through them to the head.
    let envs = MaskedEnvironments(count: 4, heads: heads, idleEvery: 3)
    let net = try PolicyNetwork(config: config, spec: envs.spec)
    #expect(net.actionMask != nil)
    let worker = try RolloutWorker(config: config, network: net, envs: envs, workerID: 0, seed: 9)
    try checkWholeLossGradient(config: config, net: net, worker: worker, label: "masked \(heads)")
    #expect(envs.violations == 0)
    #expect(envs.idleSteps > 0)
  }
}

/// A turn-based game's waiting steps (every action masked) add nothing to the
/// policy and entropy terms, and the loss takes those terms' means over the steps
/// that act; the value loss stays a mean over every valid step.
@Suite struct WaitingStepTests {
  /// Fragments of the masked task in which row i waits at every step t with
  /// (t + i) % 3 == 0, the batch the learner builds from them, and its forward.
  static func batch(config: TrainingConfig) throws -> (PolicyNetwork, Learner, [Fragment], Batch, TrainingWorkspace) {
    let envs = MaskedEnvironments(count: 4, idleEvery: 3)
    let net = try ActionMaskTests.network(config, envs)
    let learner = Learner(config: config, network: net)
    let worker = try RolloutWorker(config: config, network: net, envs: envs, workerID: 0, seed: 6)
    try worker.setWeights(learner.parameters.flatValues, version: 0)
    var fragments: [Fragment] = []
    while fragments.count < 8 { try worker.step(emit: { fragments.append($0) }, episode: { _ in }) }
    var batch = try Batch(
      fragments: fragments, maxLength: config.max_seq_len, observationSize: net.observationSize,
      actionCount: net.actionCount, stateSize: net.stateSize, heads: net.heads)
    learner.filterObservations(&batch, fragments: fragments)
    let ws = TrainingWorkspace()
    try net.forward(learner.parameters, batch: batch, ws: ws)
    return (net, learner, fragments, batch, ws)
  }

  /// The steps found waiting are exactly those whose observation masks every action.
  @Test func theWaitingStepsAreTheOnesWithNoActionAllowed() throws {
    let (net, _, fragments, batch, _) = try Self.batch(config: ActionMaskTests.config())
    let mask = try #require(net.actionMask)
    let waiting = batch.waitingSteps(actionMask: mask)
    #expect(waiting.count == batch.sequences * batch.maxLength)
    var found = 0
    for (i, fr) in fragments.enumerated() {
      for t in 0..<batch.maxLength {
        let k = i * batch.maxLength + t
        guard t < fr.length else {
          #expect(!waiting[k], "padding never waits")
          continue
        }
        let none = mask.allSatisfy { fr.observations[t * net.observationSize + $0] < 0.5 }
        #expect(waiting[k] == none, "sequence \(i) step \(t)")
        if none { found += 1 }
      }
    }
    #expect(found > 5 && found < batch.validSteps / 2, "\(found) of \(batch.validSteps)")
    #expect(batch.actingSteps(actionMask: mask) == batch.validSteps - found)
    #expect(batch.waitingSteps(actionMask: nil).isEmpty && batch.actingSteps(actionMask: nil) == batch.validSteps)
  }

  /// The terms against their definitions over the acting steps, and the gradient
  /// at each row's logits and value against its closed form: the policy's part
  /// divided by the acting steps, the value's by every valid step.
  @Test func thePolicyTermsAreMeansOverTheActingSteps() throws {
    let config = ActionMaskTests.config()
    let (net, _, _, batch, ws) = try Self.batch(config: config)
    let settings = ImpalaLoss.Settings(config, network: net)
    let targets = ImpalaLoss.targets(batch: batch, ws: ws, settings: settings)
    let terms = ImpalaLoss.evaluate(batch: batch, ws: ws, targets: targets, settings: settings)
    let packing = try #require(ws.packing)
    let waiting = batch.waitingSteps(actionMask: net.actionMask)
    let acting = batch.actingSteps(actionMask: net.actionMask)
    #expect(targets.actingSteps == acting && terms.actingSteps == acting && terms.validSteps == batch.validSteps)
    #expect(acting < batch.validSteps)
    let a = net.actionCount
    var entropy = 0.0
    var policy = 0.0
    var rho = 0.0
    var baseline = 0.0
    var checked = 0
    for i in 0..<batch.sequences {
      for t in 0..<batch.seqLens[i] {
        let r = packing.row(sequence: i, time: t)
        let k = i * batch.maxLength + t
        let err = Double(targets.vs[r] - ws.values.pointer[r])
        baseline += 0.5 * err * err
        let dv = Double(ws.gradValues.pointer[r])
        #expect(abs(dv + Double(settings.vfLossCoeff) * err / Double(batch.validSteps)) < 1e-7)
        let lp = (0..<a).map { Double(ws.logProbs.pointer[r * a + $0]) }
        let g = (0..<a).map { Double(ws.gradLogits.pointer[r * a + $0]) }
        if waiting[k] {
          // Every log-probability rounds to 0: nothing to add, nothing to learn
          // (the loss itself leaves the row's gradient at 0).
          #expect(lp.allSatisfy { $0 == 0 } && g.allSatisfy { $0 == 0 }, "waiting row \(r)")
          continue
        }
        let p = lp.map { exp($0) }
        let h = -zip(p, lp).reduce(0) { $0 + ($1.1 < -1e8 ? 0 : $1.0 * $1.1) }
        let act = Int(batch.actions[k])
        let adv = Double(targets.advantages[r])
        entropy += h
        policy -= adv * lp[act]
        rho += exp(lp[act] - Double(targets.anchorLogProbs[r]))
        for j in 0..<a where lp[j] > -1e8 {
          let expected =
            (-adv * ((j == act ? 1 : 0) - p[j]) + Double(settings.entropyCoeff) * p[j] * (lp[j] + h)) / Double(acting)
          #expect(abs(g[j] - expected) <= 1e-5 * max(1e-3, abs(expected)), "row \(r) logit \(j): \(g[j]) vs \(expected)")
          checked += 1
        }
      }
    }
    #expect(checked > 20)
    #expect(abs(Double(terms.entropy) - entropy / Double(acting)) < 1e-5)
    #expect(abs(Double(terms.policy) - policy / Double(acting)) < 1e-5)
    #expect(abs(Double(targets.meanRho) - rho / Double(acting)) < 1e-5)
    #expect(abs(Double(terms.baseline) - baseline / Double(batch.validSteps)) < 1e-5)
  }

  /// Over shards that wait in different shares, the learner's update is the whole
  /// batch's: every shard's policy gradient is divided by the whole batch's acting
  /// steps, and the terms are weighed by each shard's acting steps.
  @Test func aShardedStepWithWaitingStepsIsTheWholeBatchStep() throws {
    var config = ActionMaskTests.config()
    config.train_batch_size = 8 * config.max_seq_len
    let (net, single, fragments, _, _) = try Self.batch(config: config)
    var sharded = config
    sharded.learner_threads = 2
    let parallel = Learner(config: sharded, network: net)
    #expect(single.parameters.flatValues == parallel.parameters.flatValues, "same seed, same start")
    // The shards' shares of waiting steps differ.
    let halves = parallel.split(fragments).map {
      try? Batch(
        fragments: $0, maxLength: config.max_seq_len, observationSize: net.observationSize,
        actionCount: net.actionCount, stateSize: net.stateSize, heads: net.heads)
    }
    let shares = halves.map { b in b.map { Double($0.actingSteps(actionMask: net.actionMask)) / Double($0.validSteps) } }
    #expect(shares.count == 2 && shares[0] != shares[1], "\(shares)")
    for round in 0..<3 {
      let x = try single.step(fragments)
      let y = try parallel.step(fragments)
      #expect(x.terms.actingSteps == y.terms.actingSteps && x.terms.actingSteps < x.terms.validSteps)
      for (u, v) in [(x.terms.entropy, y.terms.entropy), (x.terms.policy, y.terms.policy), (x.terms.total, y.terms.total)] {
        #expect(abs(u - v) <= 1e-5 * max(1, abs(u)), "round \(round): \(u) vs \(v)")
      }
      #expect(abs(x.gradNorm - y.gradNorm) <= 1e-4 * max(1, x.gradNorm))
      let c = closeness(parallel.parameters.flatValues, single.parameters.flatValues, rtol: 1e-4, atol: 1e-5)
      #expect(c.ok, "round \(round): \(c)")
    }
  }
}
