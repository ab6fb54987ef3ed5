import HerdMath
import HerdNN

#if canImport(Glibc)
  import Glibc
#endif

/// The IMPALA loss over a batch (Espeholt et al. 2018, section 4.2), averaged over
/// valid steps:
/// ```
/// pg       = -min(rho_bar_pg, pi/mu) * (r_t + gamma_t v_{t+1} - V(x_t)) * log pi(a_t|x_t)
/// baseline = vf_loss_coeff * 0.5 * (v_t - V(x_t))^2
/// entropy  = -entropy_coeff * H(pi(.|x_t))
/// ```
/// The V-trace targets `v_t` and advantages are constants (no gradient flows
/// through them). Padding and each fragment's bootstrap step contribute nothing.
///
/// With `clip_param` > 0 the policy term is PPO's clipped surrogate on the V-trace
/// targets instead (as RLlib's APPO), for training on the same data many times
/// (`num_epochs`): with `r = pi(a_t)/mu(a_t)` against the stored behaviour policy
/// and `A_t = r_t + gamma_t v_{t+1} - V(x_t)`,
/// ```
/// pg = -min(r * A_t, clip(r, 1 - clip_param, 1 + clip_param) * A_t)
/// ```
/// whose gradient is `-A_t r grad log pi(a_t)` where the clip does not bind, 0 where it does.
///
/// With `clip_anchor` = learner the ratio is taken against the learner's own policy
/// when it first trained on the step (`pi_a`, from the first pass's forward), and the
/// term is weighed by the truncated lag correction `w = min(rho_bar_pg, pi_a/mu)`
/// (the decoupled objective of Hilton et al. 2021, "Batch size-invariance for policy
/// optimization"):
/// ```
/// pg = -w * min(r * A_t, clip(r, 1 - clip_param, 1 + clip_param) * A_t),  r = pi/pi_a
/// ```
/// The clip then bounds how far the passes over one batch move the policy, however
/// many updates old the data was when it arrived; against `mu` it would also clip
/// every step whose behaviour policy is far behind, and zero its gradient.
///
/// The same loss holds for every ``ActionDistribution``: log pi, log mu and H are the
/// categorical heads' or the diagonal Gaussian's (``DiagGaussian``), of the action
/// as sampled (a Gaussian's before the environment's clipping).
public enum ImpalaLoss {
  /// Per-batch loss terms (means over valid steps) and diagnostics.
  public struct Terms: Sendable, Equatable {
    public var policy: Float = 0
    public var baseline: Float = 0
    /// Mean entropy H (the loss term is `-entropy_coeff * entropy`).
    public var entropy: Float = 0
    public var total: Float = 0
    /// Mean importance ratio pi/mu before clipping.
    public var meanRho: Float = 0
    /// Mean V-trace target.
    public var meanTarget: Float = 0
    /// The fraction of acting steps whose policy gradient the clip zeroed
    /// (`clip_param` > 0; 0 otherwise).
    public var clippedFraction: Float = 0
    public var validSteps = 0
    /// Valid steps at which the policy acts: all of them but a turn-based game's
    /// waiting ones (``Batch/waitingSteps(actionMask:)``). `policy`, `entropy`,
    /// `meanRho` and `clippedFraction` are means over these; `baseline` and
    /// `meanTarget` over every valid step.
    public var actingSteps = 0
  }

  /// The counts a shard's gradient is averaged over: the whole batch's, so the
  /// shards' gradients add up to the batch's.
  public struct Normalizer: Sendable, Equatable {
    /// Valid steps (the value loss's mean).
    public var steps: Int
    /// Acting steps (the policy and entropy terms' mean).
    public var acting: Int
    public init(steps: Int, acting: Int) {
      self.steps = steps
      self.acting = acting
    }
  }

  /// Coefficients and V-trace settings from a config.
  public struct Settings: Sendable {
    public var gamma: Float
    public var vfLossCoeff: Float
    public var entropyCoeff: Float
    public var clipping: VTrace.Clipping
    public var clipRewards: Bool
    /// PPO's clip on the ratio (0: IMPALA's policy gradient).
    public var clipParam: Float
    /// Scale the policy-gradient advantages to mean 0, std 1 over each batch
    /// (each shard's, with learner_threads > 1), as PPO implementations do.
    public var normalizeAdvantages: Bool
    /// What the clipped surrogate's ratio is taken against.
    public var clipAnchor: ClipAnchor
    /// A Box action space's bounds, where a sample at or beyond one counts its
    /// tail's probability (`clipped_action_logp`); nil: the Gaussian density.
    public var actionBounds: ActionBounds?
    /// The observation's action-mask entries (`action_mask_key`): a step where they
    /// allow no action waits, and the policy terms' means leave it out.
    public var actionMask: Range<Int>?

    /// The settings of `config`, with `network`'s action bounds when
    /// `clipped_action_logp` asks for them. `network` has no default: nil means
    /// the Gaussian density for every sample, which a caller should say it wants.
    public init(_ config: TrainingConfig, network: PolicyNetwork?) {
      actionBounds = config.clipped_action_logp ? network?.actionBounds : nil
      actionMask = network?.actionMask
      gamma = config.gamma
      vfLossCoeff = config.vf_loss_coeff
      entropyCoeff = config.entropy_coeff
      clipping = VTrace.Clipping(
        rho: config.vtrace_clip_rho_threshold, pgRho: config.vtrace_clip_pg_rho_threshold,
        c: config.vtrace_clip_c_threshold, lambda: config.vtrace_lambda,
        gaeAdvantages: config.pg_advantage == .gae)
      clipRewards = config.reward_clipping == .abs_one
      clipParam = config.clip_param
      normalizeAdvantages = config.normalize_advantages
      clipAnchor = config.clip_anchor
    }
  }

  /// V-trace targets and advantages per valid step, packed like the batch rows.
  public struct Targets: Sendable {
    /// `v_t` per packed row (0 on bootstrap rows).
    public var vs: [Float]
    /// Policy-gradient advantages per packed row (0 on bootstrap rows).
    public var advantages: [Float]
    /// `r_t + gamma_t v_{t+1} - V(x_t)` (the advantage without the ratio; with
    /// `pg_advantage` = gae, `v_{t+1}` mixed with `V(x_{t+1})` by lambda) per packed
    /// row, for the clipped surrogate.
    public var surrogateAdvantages: [Float]
    /// The log-probability the surrogate's ratio is taken against, per packed row:
    /// `log mu(a_t)`, or the anchor's with `clip_anchor` = learner.
    public var anchorLogProbs: [Float]
    /// The surrogate's weight per packed row: 1, or `min(rho_bar_pg, pi_a/mu)` with
    /// `clip_anchor` = learner.
    public var surrogateWeights: [Float]
    /// `log pi(a_t)` under the weights of this forward, per packed row: the anchor
    /// a later pass takes its ratio against.
    public var currentLogProbs: [Float]
    /// Mean unclipped ratio over the acting steps.
    public var meanRho: Float
    /// Per step `[N, T]`, whether it waits (``Batch/waitingSteps(actionMask:)``);
    /// empty when none does.
    public var waiting: [Bool] = []
    /// Valid steps that do not wait.
    public var actingSteps = 0
    /// Per sequence, the value targets and advantages as computed (before any
    /// normalisation): what `freeze_targets` keeps for the passes after. Empty
    /// unless ``targets(batch:ws:settings:anchors:frozen:)`` was given `frozen`.
    public var frozen: [FrozenTargets] = []
  }

  /// One sequence's V-trace outputs per step, kept by `freeze_targets`.
  public struct FrozenTargets: Sendable, Equatable {
    public var vs: [Float]
    public var advantages: [Float]
    public var surrogateAdvantages: [Float]
  }

  /// Computes V-trace from the forward's logits and values.
  ///
  /// - Parameter anchors: with `clip_anchor` = learner, per sequence, the anchor
  ///   log-probabilities of its steps (`currentLogProbs` of the pass that first trained
  ///   on it), or nil for a first pass, whose anchor is this forward's policy.
  /// - Parameter frozen: with `freeze_targets`, per sequence, the targets a first
  ///   pass computed (``Targets/frozen``), used instead of this forward's; nil
  ///   computes them.
  public static func targets(
    batch: Batch, ws: TrainingWorkspace, settings: Settings, anchors: [[Float]?]? = nil,
    frozen: [FrozenTargets?]? = nil
  ) -> Targets {
    guard let packing = ws.packing else { preconditionFailure("targets before forward") }
    let a = batch.actionCount
    let t1 = batch.maxLength
    var vsOut = [Float](repeating: 0, count: packing.rowCount)
    var advOut = [Float](repeating: 0, count: packing.rowCount)
    var rawOut = [Float](repeating: 0, count: packing.rowCount)
    var anchorOut = [Float](repeating: 0, count: packing.rowCount)
    var weightOut = [Float](repeating: 1, count: packing.rowCount)
    var logPiOut = [Float](repeating: 0, count: packing.rowCount)
    var rhoSum: Double = 0
    var kept: [FrozenTargets] = []
    kept.reserveCapacity(batch.sequences)
    let logProbs = ws.logProbs.pointer
    let heads = batch.heads
    var behaviour = [Float](repeating: 0, count: a)
    let d = batch.distribution.actionWidth
    let waiting = batch.waitingSteps(actionMask: settings.actionMask)
    for i in 0..<batch.sequences {
      let n = batch.seqLens[i]
      var logRhos = [Float](repeating: 0, count: n)
      var discounts = [Float](repeating: settings.gamma, count: n)
      var rewards = [Float](repeating: 0, count: n)
      var values = [Float](repeating: 0, count: n)
      for t in 0..<n {
        let r = packing.row(sequence: i, time: t)
        let k = i * t1 + t
        var logPi: Float = 0
        var logMu: Float = 0
        if d > 0 {
          // The Gaussian: log pi(a) - log mu(a) of the stored sample.
          batch.actionValues.withPointer { av in
            batch.behaviourLogits.withPointer { bl in
              logMu = DiagGaussian.logProb(bl + k * a, action: av + k * d, dims: d, bounds: settings.actionBounds)
              logPi = DiagGaussian.logProb(
                ws.logits.pointer + r * a, action: av + k * d, dims: d, bounds: settings.actionBounds)
            }
          }
        } else {
          // log pi(a) - log mu(a), summed over the heads (independent categoricals).
          let act = Int(batch.actions[k])
          batch.behaviourLogits.withPointer { bl in
            behaviour.withMutablePointer { mu in
              for h in 0..<heads.count {
                let o = heads.offsets[h]
                Kernels.logSoftmax(bl + k * a + o, mu + o, rows: 1, cols: heads.sizes[h])
              }
            }
          }
          for h in 0..<heads.count {
            let j = heads.offsets[h] + heads.component(act, head: h)
            logPi += logProbs[r * a + j]
            logMu += behaviour[j]
          }
        }
        let logRho = logPi - logMu
        logPiOut[r] = logPi
        switch settings.clipAnchor {
        case .behaviour:
          anchorOut[r] = logMu
        case .learner:
          let anchor = anchors?[i]?[t] ?? logPiOut[r]
          anchorOut[r] = anchor
          weightOut[r] = min(settings.clipping.pgRho, expf(anchor - logMu))
        }
        logRhos[t] = logRho
        if waiting.isEmpty || !waiting[k] { rhoSum += Double(expf(logRhos[t])) }
        let reward = batch.rewards[k]
        rewards[t] = settings.clipRewards ? max(-1, min(1, reward)) : reward
        values[t] = ws.values.pointer[r]
      }
      let terminated = batch.ends[i] == .terminated
      if terminated { discounts[n - 1] = 0 }
      let bootstrap = terminated ? 0 : ws.values.pointer[packing.row(sequence: i, time: n)]
      if let f = frozen?[i] {
        precondition(f.vs.count == n, "frozen targets for \(f.vs.count) steps, sequence has \(n)")
        for t in 0..<n {
          let r = packing.row(sequence: i, time: t)
          vsOut[r] = f.vs[t]
          advOut[r] = f.advantages[t]
          rawOut[r] = f.surrogateAdvantages[t]
        }
        kept.append(f)
        continue
      }
      let (vs, adv) = VTrace.compute(
        logRhos: logRhos, discounts: discounts, rewards: rewards, values: values, bootstrapValue: bootstrap,
        clipping: settings.clipping)
      for t in 0..<n {
        let r = packing.row(sequence: i, time: t)
        vsOut[r] = vs[t]
        advOut[r] = adv[t]
        let next =
          t + 1 < n ? settings.clipping.advantageBootstrap(nextVs: vs[t + 1], nextV: values[t + 1]) : bootstrap
        rawOut[r] = rewards[t] + discounts[t] * next - values[t]
      }
      // Kept only when asked for (freeze_targets): nothing extra on the usual path.
      if frozen != nil {
        let raw = (0..<n).map { rawOut[packing.row(sequence: i, time: $0)] }
        kept.append(FrozenTargets(vs: vs, advantages: adv, surrogateAdvantages: raw))
      }
    }
    if settings.normalizeAdvantages {
      normalize(&advOut, packing: packing, batch: batch, waiting: waiting)
      normalize(&rawOut, packing: packing, batch: batch, waiting: waiting)
    }
    let acting = batch.validSteps - waiting.reduce(0) { $0 + ($1 ? 1 : 0) }
    return Targets(
      vs: vsOut, advantages: advOut, surrogateAdvantages: rawOut, anchorLogProbs: anchorOut,
      surrogateWeights: weightOut, currentLogProbs: logPiOut, meanRho: Float(rhoSum / Double(max(1, acting))),
      waiting: waiting, actingSteps: acting, frozen: kept)
  }

  /// Scales the acting rows of `x` (valid and not `waiting`) to mean 0 and
  /// standard deviation 1 (1e-8 added).
  static func normalize(_ x: inout [Float], packing: PackedSequences, batch: Batch, waiting: [Bool]) {
    var sum = 0.0
    var sq = 0.0
    var count = 0
    for i in 0..<batch.sequences {
      for t in 0..<batch.seqLens[i] where waiting.isEmpty || !waiting[i * batch.maxLength + t] {
        let v = Double(x[packing.row(sequence: i, time: t)])
        sum += v
        sq += v * v
        count += 1
      }
    }
    let n = Double(max(1, count))
    let mean = sum / n
    let std = (max(0, sq / n - mean * mean)).squareRoot()
    for i in 0..<batch.sequences {
      for t in 0..<batch.seqLens[i] {
        let r = packing.row(sequence: i, time: t)
        x[r] = Float((Double(x[r]) - mean) / (std + 1e-8))
      }
    }
  }

  /// The loss terms for fixed `targets`, and its gradient w.r.t. the logits and
  /// values in `ws.gradLogits` / `ws.gradValues` (zero on bootstrap rows).
  ///
  /// The value loss is a mean over the valid steps, the policy and entropy terms
  /// over the acting ones (``Targets/actingSteps``): a turn-based game's waiting
  /// steps add 0 to those terms, and counting them would shrink the terms' weight
  /// against the value loss by the share of steps that wait.
  ///
  /// - Parameter normalizer: the counts the gradient is averaged over (default:
  ///   this batch's); a shard of a larger batch passes the whole batch's counts so
  ///   the shards' gradients add up to the batch's. The returned terms are means
  ///   over this batch's own steps.
  public static func evaluate(
    batch: Batch, ws: TrainingWorkspace, targets: Targets, settings: Settings, normalizer: Normalizer? = nil
  ) -> Terms {
    guard let packing = ws.packing else { preconditionFailure("loss before forward") }
    let a = batch.actionCount
    let rows = packing.rowCount
    let count = batch.validSteps
    let scale = 1 / Float(max(1, normalizer?.steps ?? count))
    let acting = targets.actingSteps
    let policyScale = 1 / Float(max(1, normalizer?.acting ?? acting))
    let heads = batch.heads
    let dLogits = ws.gradLogits.zeroed(rows * a)
    let dValues = ws.gradValues.zeroed(rows)
    var pg: Double = 0
    var base: Double = 0
    var ent: Double = 0
    var targetSum: Double = 0
    var clippedSteps = 0
    let d = batch.distribution.actionWidth
    for i in 0..<batch.sequences {
      for t in 0..<batch.seqLens[i] {
        let r = packing.row(sequence: i, time: t)
        if d > 0 {
          let (p, b, h, c) = gaussianStep(
            batch: batch, ws: ws, targets: targets, settings: settings, row: r, step: i * batch.maxLength + t,
            scale: policyScale, into: dLogits + r * a)
          pg += Double(p)
          ent += Double(h)
          base += Double(b)
          if c { clippedSteps += 1 }
          targetSum += Double(targets.vs[r])
          dValues[r] = -settings.vfLossCoeff * (targets.vs[r] - ws.values.pointer[r]) * scale
          continue
        }
        let v = ws.values.pointer[r]
        let err = targets.vs[r] - v
        base += Double(0.5 * err * err)
        targetSum += Double(targets.vs[r])
        dValues[r] = -settings.vfLossCoeff * err * scale
        // A waiting step's policy and entropy terms are exactly 0 and its logits
        // constants: no policy gradient (the row's stays zeroed).
        if !targets.waiting.isEmpty && targets.waiting[i * batch.maxLength + t] { continue }
        let act = Int(batch.actions[i * batch.maxLength + t])
        let logProbs = ws.logProbs.pointer + r * a
        var adv = targets.advantages[r]
        var pgScale: Float = 1  // d pg / d log pi(a) = -adv * pgScale
        var pgValue: Float = 0
        if settings.clipParam > 0 {
          // The clipped surrogate: ratio against the stored behaviour policy.
          var logPi: Float = 0
          for hd in 0..<heads.count { logPi += logProbs[heads.offsets[hd] + heads.component(act, head: hd)] }
          let ratio = expf(logPi - targets.anchorLogProbs[r])
          adv = targets.surrogateAdvantages[r]
          let w = targets.surrogateWeights[r]
          let clipped = min(max(ratio, 1 - settings.clipParam), 1 + settings.clipParam)
          let binds = ratio * adv > clipped * adv
          pgValue = -w * (binds ? clipped * adv : ratio * adv)
          pgScale = binds ? 0 : w * ratio
          if binds { clippedSteps += 1 }
        }
        // Per head: d/dlogits of (-adv log pi_h(a_h) - entropy_coeff H_h); log pi
        // and H are sums over the heads.
        let g = dLogits + r * a
        for hd in 0..<heads.count {
          let o = heads.offsets[hd]
          let lp = logProbs + o
          let chosen = heads.component(act, head: hd)
          var h: Float = 0
          for j in 0..<heads.sizes[hd] { h -= expf(lp[j]) * lp[j] }
          if settings.clipParam == 0 { pg -= Double(adv * lp[chosen]) }
          ent += Double(h)
          let weight = adv * pgScale
          for j in 0..<heads.sizes[hd] {
            let pj = expf(lp[j])
            g[o + j] = (-weight * ((j == chosen ? 1 : 0) - pj) + settings.entropyCoeff * pj * (lp[j] + h)) * policyScale
          }
        }
        if settings.clipParam > 0 { pg += Double(pgValue) }
      }
    }
    let c = Double(max(1, count))
    let ca = Double(max(1, acting))
    var terms = Terms()
    terms.policy = Float(pg / ca)
    terms.baseline = Float(base / c)
    terms.entropy = Float(ent / ca)
    terms.total = terms.policy + settings.vfLossCoeff * terms.baseline - settings.entropyCoeff * terms.entropy
    terms.meanRho = targets.meanRho
    terms.meanTarget = Float(targetSum / c)
    terms.clippedFraction = Float(Double(clippedSteps) / ca)
    terms.validSteps = count
    terms.actingSteps = acting
    return terms
  }

  /// One Gaussian step of ``evaluate``: its policy term, its baseline term
  /// (unweighted), entropy and whether the clip zeroed its policy gradient, with the
  /// gradient w.r.t. its inputs written to `g[2D]`.
  static func gaussianStep(
    batch: Batch, ws: TrainingWorkspace, targets: Targets, settings: Settings, row r: Int, step k: Int,
    scale: Float, into g: UnsafeMutablePointer<Float>
  ) -> (policy: Float, baseline: Float, entropy: Float, clipped: Bool) {
    let d = batch.distribution.actionWidth
    let inputs = ws.logits.pointer + r * batch.actionCount
    return batch.actionValues.withPointer { av in
      let action = av + k * d
      let logPi = DiagGaussian.logProb(inputs, action: action, dims: d, bounds: settings.actionBounds)
      let h = DiagGaussian.entropy(inputs, dims: d)
      var weight = targets.advantages[r]
      var pgValue = -weight * logPi
      var binds = false
      if settings.clipParam > 0 {
        let ratio = expf(logPi - targets.anchorLogProbs[r])
        let adv = targets.surrogateAdvantages[r]
        let w = targets.surrogateWeights[r]
        let clipped = min(max(ratio, 1 - settings.clipParam), 1 + settings.clipParam)
        binds = ratio * adv > clipped * adv
        pgValue = -w * (binds ? clipped * adv : ratio * adv)
        weight = binds ? 0 : w * adv * ratio
      }
      DiagGaussian.lossGradient(
        inputs, action: action, dims: d, weight: weight, entropyCoeff: settings.entropyCoeff, scale: scale,
        bounds: settings.actionBounds, into: g)
      let err = targets.vs[r] - ws.values.pointer[r]
      return (pgValue, 0.5 * err * err, h, binds)
    }
  }
}
