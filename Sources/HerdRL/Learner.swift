import Synchronization
import HerdMath
import HerdNN

/// What one learner step reports.
public struct LearnerStepStats: Sendable {
  public var terms: ImpalaLoss.Terms
  /// Global gradient norm before clipping.
  public var gradNorm: Float
  public var learningRate: Float
  /// The entropy bonus weight of this step (`entropy_coeff`, or where its decay
  /// has reached).
  public var entropyCoeff: Float
  /// Timesteps trained in this step (valid steps).
  public var timesteps: Int
  /// Policy lag of each fragment: learner version minus the fragment's.
  public var lags: [Int]
  /// The update was skipped because the gradient was not finite.
  public var skipped: Bool
}

/// The learner: owns the master parameters and the optimiser, and turns batches of
/// fragments into updates.
public final class Learner {
  public let config: TrainingConfig
  public let network: PolicyNetwork
  public let parameters: Parameters
  public let optimizer: Optimizer
  /// Policy version: the number of updates applied.
  public private(set) var version = 0
  /// Env steps trained so far, each counted once however often it is reused
  /// (drives the learning rate's and the entropy bonus's schedules).
  public var trainedSteps = 0
  /// Timesteps trained again: the passes after the first (`num_epochs`) and the
  /// idle learner's reuse. (trainedSteps + reusedSteps) / trainedSteps is the reuse ratio.
  public private(set) var reusedSteps = 0
  /// Shuffles the fragments into minibatches.
  var shuffler: SeededGenerator
  /// The observation filter's running statistics (nil with NoFilter), updated from
  /// the raw observations of every batch trained on and written into the filter's
  /// parameters with each new version.
  public private(set) var observationStatistics: ObservationStatistics?
  /// The discounted return's running statistics with `reward_scaling` (nil without):
  /// rewards are trained on multiplied by their ``ReturnStatistics/scale``.
  public private(set) var returnStatistics: ReturnStatistics?
  /// The filter (mean then scale, 2F floats) each recent policy version was
  /// published with: the learner filters a fragment's observations with the filter
  /// its worker acted with, so it trains on the inputs the actor saw.
  var filterHistory: [Int: [Float]] = [:]
  /// The loss's settings; its entropy weight follows ``entropySchedule``.
  var settings: ImpalaLoss.Settings
  let schedule: LinearDecay
  let entropySchedule: LinearDecay
  /// One workspace and one gradient buffer per shard (shard 0 uses `parameters`).
  let workspaces: [TrainingWorkspace]
  let shardParameters: [Parameters]
  let pool: ShardPool

  /// A learner with freshly initialised parameters (PyTorch's defaults) from `config.seed`.
  public init(config: TrainingConfig, network: PolicyNetwork) {
    self.config = config
    self.network = network
    var rng = SeededGenerator(seed: config.seed)
    parameters = Parameters(layout: network.layout, rng: &rng)
    shuffler = SeededGenerator(seed: config.seed &+ 0x5EED_F00D)
    optimizer =
      config.optimizer == .adam
      ? Adam(count: network.layout.count, beta1: config.adam_beta1, beta2: config.adam_beta2, eps: config.adam_epsilon)
      : RMSProp(
        count: network.layout.count, alpha: config.rmsprop_alpha, eps: config.rmsprop_epsilon, momentum: config.momentum
      )
    settings = ImpalaLoss.Settings(config, network: network)
    schedule = LinearDecay(initial: config.lr, final: config.lr_final, totalSteps: config.lr_decay_env_steps)
    entropySchedule = LinearDecay(
      initial: config.entropy_coeff, final: config.entropy_coeff_final, totalSteps: config.entropy_decay_env_steps)
    let shards = max(1, config.learner_threads)
    workspaces = (0..<shards).map { _ in TrainingWorkspace() }
    shardParameters = [parameters] + (1..<shards).map { [parameters] _ in Parameters(sharingValuesWith: parameters) }
    pool = ShardPool(count: shards)
    if network.filterMean != nil { observationStatistics = ObservationStatistics(features: network.observationSize) }
    if config.reward_scaling { returnStatistics = ReturnStatistics(gamma: config.gamma) }
    rememberFilter()
  }

  deinit { pool.shutdown() }

  /// Sets the version after restoring a checkpoint, and the filter's statistics
  /// (nil leaves them as they are: a checkpoint without them restarts them).
  public func restore(
    version: Int, trainedSteps: Int, reusedSteps: Int = 0, observationStatistics: ObservationStatistics? = nil,
    returnStatistics: ReturnStatistics? = nil
  ) {
    self.version = version
    self.trainedSteps = trainedSteps
    self.reusedSteps = reusedSteps
    if let r = returnStatistics, self.returnStatistics != nil { self.returnStatistics = r }
    if let s = observationStatistics, self.observationStatistics != nil {
      precondition(s.features == network.observationSize, "observation statistics do not fit the model")
      self.observationStatistics = s
      writeFilter()
    } else {
      rememberFilter()
    }
  }

  /// Adds the raw observations the fragments' steps acted on (not their bootstrap
  /// observations, which the next fragment or nobody acted on) to the statistics;
  /// the next version is published with them.
  func updateFilter(_ fragments: [Fragment]) {
    guard var stats = observationStatistics else { return }
    for fr in fragments {
      fr.observations.withFloats { stats.update($0, rows: fr.length) }
    }
    observationStatistics = stats
  }

  /// The statistics' mean and scale into the filter's parameters (after the
  /// optimiser too, so nothing it does to them, weight decay say, is published),
  /// remembered as the filter of the current version.
  func writeFilter() {
    guard let stats = observationStatistics, let meanSlot = network.filterMean, let scaleSlot = network.filterScale
    else { return }
    stats.write(mean: parameters.value(meanSlot), scale: parameters.value(scaleSlot))
    if let mask = network.actionMask {
      ActionMask.pin(mean: parameters.value(meanSlot), scale: parameters.value(scaleSlot), entries: mask)
    }
    rememberFilter()
  }

  /// Records the filter in the parameters as the current version's.
  func rememberFilter() {
    guard let meanSlot = network.filterMean, let scaleSlot = network.filterScale else { return }
    let f = network.observationSize
    filterHistory[version] =
      Array(UnsafeBufferPointer(start: parameters.value(meanSlot), count: f))
      + Array(UnsafeBufferPointer(start: parameters.value(scaleSlot), count: f))
    // Older fragments are dropped as stale; their filters are not needed.
    filterHistory[version - config.max_policy_lag - 2] = nil
  }

  /// Filters each fragment's observations in `batch` with the filter its policy
  /// version was published with (the current one when that is no longer known).
  func filterObservations(_ batch: inout Batch, fragments: [Fragment]) {
    guard network.filterMean != nil else { return }
    let f = network.observationSize
    let stride = (batch.maxLength + 1) * f
    guard let current = filterHistory[version] else { preconditionFailure("no filter for version \(version)") }
    batch.obs.withMutableFloats { obs in
      for (i, fr) in fragments.enumerated() {
        let filter = filterHistory[fr.policyVersion] ?? current
        filter.withPointer { m in
          ObservationFilter.apply(
            obs + i * stride, mean: m, scale: m + f, rows: fr.length + 1, features: f, into: obs + i * stride)
        }
      }
    }
    batch.observationsFiltered = true
  }

  /// Trains on a batch of fragments: `passes` passes over it (`num_epochs` unless
  /// given), each split into minibatches of `minibatch_size` timesteps (whole
  /// fragments, shuffled when there is more than one minibatch or pass), one update
  /// per minibatch. Every update is off-policy-correct the same way: V-trace weighs
  /// each fragment by its stored behaviour logits, however many updates ago it was
  /// acted on. With `fresh` the fragments are new (their observations join the
  /// filter's statistics and count as trained steps on the first pass); without,
  /// they are trained again (the idle learner's reuse) and count as reused.
  ///
  /// - Throws: ``BatchError`` for fragments that do not fit the model.
  public func train(_ fragments: [Fragment], passes: Int? = nil, fresh: Bool = true) throws -> [LearnerStepStats] {
    try train(fragments, replayed: [], passes: passes, fresh: fresh)
  }

  /// Trains on new fragments with replayed ones mixed into the same batch (the
  /// replay buffer's `replay_proportion`): the two are shuffled together into the
  /// minibatches of every pass, but only `fragments` are fresh (filter statistics,
  /// return statistics and trained steps); the replayed ones count as reused. Both
  /// are weighed against their own stored behaviour logits.
  public func train(
    _ fragments: [Fragment], replayed: [Fragment], passes: Int? = nil, fresh: Bool = true
  ) throws -> [LearnerStepStats] {
    let isFresh = [Bool](repeating: fresh, count: fragments.count) + [Bool](repeating: false, count: replayed.count)
    let fragments = fragments + replayed
    let epochs = max(1, passes ?? config.num_epochs)
    let perUpdate =
      config.minibatch_size == 0 ? fragments.count : max(1, config.minibatch_size / max(1, config.max_seq_len))
    // With clip_anchor = learner, each fragment's log pi(a_t) from the pass that
    // first trained on it anchors the passes after.
    var anchors = [[Float]?](repeating: nil, count: fragments.count)
    let anchored = config.clip_param > 0 && config.clip_anchor == .learner && epochs > 1
    // With freeze_targets, each fragment's V-trace targets from its first pass.
    var frozen = [ImpalaLoss.FrozenTargets?](repeating: nil, count: fragments.count)
    let freezing = config.freeze_targets && epochs > 1
    var order = Array(fragments.indices)
    var out: [LearnerStepStats] = []
    for epoch in 0..<epochs {
      if epochs > 1 || perUpdate < order.count { order.shuffle(using: &shuffler) }
      for start in stride(from: 0, to: order.count, by: perUpdate) {
        let chunk = Array(order[start..<min(order.count, start + perUpdate)])
        let (stats, logProbs, targets) = try update(
          chunk.map { fragments[$0] }, anchors: anchored ? chunk.map { anchors[$0] } : nil,
          fresh: chunk.map { isFresh[$0] && epoch == 0 }, frozen: freezing ? chunk.map { frozen[$0] } : nil)
        if anchored && epoch == 0 {
          for (k, j) in chunk.enumerated() { anchors[j] = logProbs[k] }
        }
        if freezing && epoch == 0 {
          for (k, j) in chunk.enumerated() { frozen[j] = targets[k] }
        }
        out.append(stats)
      }
    }
    return out
  }

  /// One update: batch -> forward -> V-trace -> loss -> backward -> clip -> optimiser.
  ///
  /// With `learner_threads` > 1 the fragments are split into that many shards,
  /// each batched, run forward, through V-trace and the loss (normalised by the
  /// whole batch's valid steps) and backward on its own thread; the shards'
  /// gradients are summed before clipping, so the update is the whole batch's.
  ///
  /// - Throws: ``BatchError`` for fragments that do not fit the model.
  /// `fresh`: the fragments are trained on for the first time (see ``train(_:passes:fresh:)``).
  public func step(_ fragments: [Fragment], fresh: Bool = true) throws -> LearnerStepStats {
    try update(fragments, anchors: nil, fresh: fresh).stats
  }

  /// ``update(_:anchors:fresh:)`` with all fragments fresh or all trained again.
  func update(
    _ fragments: [Fragment], anchors: [[Float]?]?, fresh: Bool
  ) throws -> (stats: LearnerStepStats, logProbs: [[Float]], targets: [ImpalaLoss.FrozenTargets]) {
    try update(fragments, anchors: anchors, fresh: [Bool](repeating: fresh, count: fragments.count))
  }

  /// ``step(_:fresh:)`` with the clipped surrogate's anchors per fragment (see
  /// ``ImpalaLoss/targets(batch:ws:settings:anchors:)``); also returns each
  /// fragment's `log pi(a_t)` under the weights before this update. `isFresh`
  /// says per fragment whether it is trained on for the first time (a replayed
  /// fragment beside new ones is not). `frozen`, with `freeze_targets`: per
  /// fragment, the V-trace targets of the pass that first trained on it (nil to
  /// compute them); with it, each fragment's targets as used come back in
  /// `targets` (empty without).
  func update(
    _ fragments: [Fragment], anchors: [[Float]?]?, fresh isFresh: [Bool],
    frozen: [ImpalaLoss.FrozenTargets?]? = nil
  ) throws -> (stats: LearnerStepStats, logProbs: [[Float]], targets: [ImpalaLoss.FrozenTargets]) {
    // The fragments seen for the first time (the rest are trained again).
    let fresh = zip(fragments, isFresh).filter(\.1).map(\.0)
    // Batch: [N, T+1, F] and friends, one per shard.
    let shards = split(fragments)
    var batches = try shards.map {
      try Batch(
        fragments: $0, maxLength: config.max_seq_len, observationSize: network.observationSize,
        actionCount: network.actionCount, stateSize: network.stateSize, distribution: network.distribution)
    }
    let total = batches.reduce(0) { $0 + $1.validSteps }
    // The fragments fit the model: each is filtered as its worker filtered it, and
    // their raw observations join the filter's statistics (for the next versions).
    for s in batches.indices { filterObservations(&batches[s], fragments: shards[s]) }
    if !fresh.isEmpty { updateFilter(fresh) }
    if var returns = returnStatistics {
      if !fresh.isEmpty {
        for f in fresh { returns.update(f) }
        returnStatistics = returns
      }
      // The rewards V-trace sees; the core's previous-reward inputs stay as acted on.
      let scale = returns.scale
      for s in batches.indices { batches[s].scaleRewards(by: scale) }
    }
    settings.entropyCoeff = entropySchedule.rate(at: trainedSteps)
    let acting = batches.map { $0.actingSteps(actionMask: settings.actionMask) }
    let normalizer = ImpalaLoss.Normalizer(steps: total, acting: acting.reduce(0, +))
    // Forward from the stored states, V-trace (constants), loss, backward.
    let results = ShardResults(count: batches.count)
    var firsts = [0]
    for shard in shards { firsts.append(firsts[firsts.count - 1] + shard.count) }
    let logProbs = ShardLogProbs(count: fragments.count)
    let used = ShardFrozenTargets(count: frozen == nil ? 0 : fragments.count)
    pool.run { [self] s in
      guard s < batches.count else { return }
      let ws = workspaces[s]
      let p = shardParameters[s]
      do {
        try network.forward(p, batch: batches[s], ws: ws)
        let targets = ImpalaLoss.targets(
          batch: batches[s], ws: ws, settings: settings, anchors: anchors.map { Array($0[firsts[s]..<firsts[s + 1]]) },
          frozen: frozen.map { Array($0[firsts[s]..<firsts[s + 1]]) })
        for (i, f) in targets.frozen.enumerated() { used.set(firsts[s] + i, f) }
        if let packing = ws.packing {
          for i in 0..<batches[s].sequences {
            logProbs.set(
              firsts[s] + i, (0..<batches[s].seqLens[i]).map { targets.currentLogProbs[packing.row(sequence: i, time: $0)] })
          }
        }
        let terms = ImpalaLoss.evaluate(
          batch: batches[s], ws: ws, targets: targets, settings: settings, normalizer: normalizer)
        p.zeroGrads()
        network.backward(p, ws: ws)
        results.set(s, .success(terms))
      } catch {
        results.set(s, .failure(error))
      }
    }
    var terms = ImpalaLoss.Terms()
    for (s, result) in results.all.enumerated() {
      let t = try result.get()
      // The value terms weigh each shard by its valid steps, the policy's by its acting ones.
      let w = Float(batches[s].validSteps) / Float(max(1, total))
      let wa = Float(acting[s]) / Float(max(1, normalizer.acting))
      terms.policy += wa * t.policy
      terms.baseline += w * t.baseline
      terms.entropy += wa * t.entropy
      terms.meanRho += wa * t.meanRho
      terms.meanTarget += w * t.meanTarget
      terms.clippedFraction += wa * t.clippedFraction
    }
    terms.validSteps = total
    terms.actingSteps = normalizer.acting
    terms.total = terms.policy + settings.vfLossCoeff * terms.baseline - settings.entropyCoeff * terms.entropy
    let lr = schedule.rate(at: trainedSteps)
    var stats = LearnerStepStats(
      terms: terms, gradNorm: 0, learningRate: lr, entropyCoeff: settings.entropyCoeff, timesteps: total,
      lags: fragments.map { version - $0.policyVersion }, skipped: false)
    // The shards' gradients summed, clipped and applied: a non-finite gradient skips
    // the update; otherwise a new policy version.
    guard let norm = update(shards: batches.count, lr: lr) else {
      stats.skipped = true
      stats.gradNorm = .nan
      return (stats, logProbs.all, used.all)
    }
    stats.gradNorm = Float(norm)
    version += 1
    writeFilter()
    let freshSteps = fresh.reduce(0) { $0 + $1.length }
    trainedSteps += freshSteps
    reusedSteps += total - freshSteps
    return (stats, logProbs.all, used.all)
  }

  /// Contiguous groups of fragments with about equal step counts, one per shard.
  func split(_ fragments: [Fragment]) -> [[Fragment]] {
    let n = min(workspaces.count, fragments.count)
    guard n > 1 else { return [fragments] }
    let total = fragments.reduce(0) { $0 + $1.length }
    var groups: [[Fragment]] = [[]]
    var acc = 0
    for f in fragments {
      if acc >= total * groups.count / n && groups.count < n && !groups[groups.count - 1].isEmpty { groups.append([]) }
      groups[groups.count - 1].append(f)
      acc += f.length
    }
    return groups
  }
}

/// Per-fragment log-probabilities written by shard threads, read after they finish.
/// Each fragment's V-trace targets, written by shard threads.
final class ShardFrozenTargets: Sendable {
  private let items: Mutex<[ImpalaLoss.FrozenTargets]>
  init(count: Int) { items = Mutex(Array(repeating: ImpalaLoss.FrozenTargets(vs: [], advantages: [], surrogateAdvantages: []), count: count)) }
  func set(_ i: Int, _ value: ImpalaLoss.FrozenTargets) { items.withLock { $0[i] = value } }
  var all: [ImpalaLoss.FrozenTargets] { items.withLock { $0 } }
}

final class ShardLogProbs: Sendable {
  private let items: Mutex<[[Float]]>
  init(count: Int) { items = Mutex(Array(repeating: [], count: count)) }
  func set(_ i: Int, _ values: [Float]) { items.withLock { $0[i] = values } }
  var all: [[Float]] { items.withLock { $0 } }
}

/// Results written by shard threads, read after they finish.
extension Learner {
  /// Sums the first `shards` shards' gradients into `parameters.grads`, clips them to
  /// the global norm `grad_clip` and takes the optimiser's step with rate `lr`.
  /// Returns the norm before clipping, or nil (nothing changed but the sum) when it
  /// is not finite.
  ///
  /// Each pool thread works on its own slice of the parameters, cut at multiples of
  /// ``Kernels/normBlock``: the sum, the blocks' squared norms, the scaling and the
  /// update of every element happen in the order one thread would use, so the bits
  /// are those of ``GradientClipping/clipGlobalNorm(_:maxNorm:)`` and
  /// ``Optimizer/step(_:lr:)`` on the summed gradients, whatever the thread count.
  func update(shards: Int, lr: Float) -> Double? {
    let count = parameters.count
    let blocks = (count + Kernels.normBlock - 1) / Kernels.normBlock
    let squares = UnsafeMutablePointer<Double>.allocate(capacity: max(1, blocks))
    defer { squares.deallocate() }
    let total = parameters.grads.baseAddress.unsafelyUnwrapped
    pool.sum(
      shardParameters.prefix(max(1, shards)).map { UnsafePointer($0.grads.baseAddress.unsafelyUnwrapped) }, into: total,
      count: count
    ) { r in
      Kernels.blockSquares(total + r.lowerBound, count: r.count, into: squares + r.lowerBound / Kernels.normBlock)
    }
    let norm = Kernels.sumOfSquares(squares, blocks: blocks).squareRoot()
    guard norm.isFinite else { return nil }
    let factor = GradientClipping.factor(norm: norm, maxNorm: config.grad_clip)
    optimizer.beginStep(parameters)
    let slices = ShardPool.slices(count: count, parts: pool.count, alignment: Kernels.normBlock)
    pool.run { [optimizer, parameters] s in
      let r = slices[s]
      guard !r.isEmpty else { return }
      if let factor { BLAS.scale(factor, total + r.lowerBound, count: r.count) }
      optimizer.apply(parameters, lr: lr, range: r)
    }
    return norm
  }
}

final class ShardResults: Sendable {
  private let items: Mutex<[Result<ImpalaLoss.Terms, any Error>]>
  init(count: Int) { items = Mutex(Array(repeating: .failure(CancellationError()), count: count)) }
  func set(_ i: Int, _ r: Result<ImpalaLoss.Terms, any Error>) { items.withLock { $0[i] = r } }
  var all: [Result<ImpalaLoss.Terms, any Error>] { items.withLock { $0 } }
}
