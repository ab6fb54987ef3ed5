import HerdEnvs
import HerdMath
import HerdNN

/// The policy of DESIGN.md, one forward step:
/// ```
/// o_t --filter (MeanStdFilter only)--> [--conv stack, flattened--> (image observations)] --encoder (MLP)--> z_t
/// x_t = [ z_t ; onehot(a_{t-1}) if lstm_use_prev_action ; r_{t-1} if lstm_use_prev_reward ]
///       (Box actions: a_{t-1} as its D floats clipped to the space's bounds instead of the one-hot)
/// (h_t, c_t) = LSTM(x_t, (h_{t-1}, c_{t-1}))      (GRU: h only; no core: h_t = x_t)
/// u_t = post(h_t)                   (the post_fcnet_hiddens layers; none: u_t = h_t)
/// logits_t = W_pi u_t + b_pi        value_t = w_v . u_t + b_v
/// ```
/// For a Box action space the head's outputs are a diagonal Gaussian's inputs
/// (``ActionDistribution``): `[mean ; log std] = W_pi h_t + b_pi`, or with
/// `free_log_std` (the default) `mean = W_pi h_t + b_pi` and the log std the
/// learned vector `pi.log_std`, the same for every state.
/// Parameters live in one ``Parameters`` buffer: `obs_filter.*` (with MeanStdFilter:
/// running statistics, never trained, see ``ObservationFilter``), `conv.*` (a
/// convolutional encoder, ``ConvPlan``), `encoder.*`, `core.*`, `post.*`, `pi.*`, `vf.*`.
/// With convolutions, `encoder.*` are the fully connected layers after the
/// flattened feature map (y, x, channel order).
///
/// With `vf_share_layers = false` the value has its own encoder and core
/// (`vf_encoder.*`, `vf_core.*`, `vf_post.*`, the same sizes as the policy's, over
/// the same filtered observation and extras): `value_t = w_v . post^v(h^v_t) + b_v`. The state per
/// sequence is then `[h ; h^v]` followed by `[c ; c^v]` (LSTM), so everything that
/// carries states (rollout, fragments, the wire) carries both cores unchanged.
public struct PolicyNetwork: Sendable {
  /// Observation floats F.
  public let observationSize: Int
  /// Logits per step A (the sum of the heads' sizes).
  public let actionCount: Int
  /// The categorical heads (one for a Discrete action space; one head of 1 for a Gaussian).
  public let heads: ActionHeads
  /// What the head's outputs parameterise.
  public let distribution: ActionDistribution
  /// The Gaussian's state-independent log std `[D]` (`free_log_std`), nil otherwise.
  public let logStd: ParameterSlot?
  /// The convolutional stack over image observations, nil for flat ones.
  public let convolution: ConvNet?
  /// What the convolutional stack was built from.
  public let convPlan: ConvPlan?
  /// The encoder: the MLP over the flat observation, or the fully connected
  /// layers after the convolutions.
  public let encoder: MLP
  /// The recurrent core, nil for a feed-forward policy.
  public let core: (any RecurrentLayer)?
  /// The layers between the core and the heads (`post_fcnet_hiddens`; no layers:
  /// the heads read the core's output).
  public let post: MLP
  /// The value's own post layers (`vf_share_layers = false`), nil when it shares the policy's.
  public let valuePost: MLP?
  /// The value's own encoder (`vf_share_layers = false`), nil when it shares the policy's.
  public let valueEncoder: MLP?
  /// The value's own core (`vf_share_layers = false` with a core), nil otherwise.
  public let valueCore: (any RecurrentLayer)?
  /// Policy head `[A, H]`.
  public let policyHead: Linear
  /// Value head `[1, H]`.
  public let valueHead: Linear
  /// Append the previous action to the core input: one one-hot per head, or
  /// for a Box action space its D floats clipped to ``actionLow`` ... ``actionHigh``.
  public let usePrevAction: Bool
  /// A Box action space's bounds `[D]` each, which the previous action is
  /// clipped to as an input (what the environment took); empty for discrete
  /// actions, and infinite where the space has no bound.
  public let actionLow: [Float]
  public let actionHigh: [Float]
  /// A Box action space's bounds when some dimension has a finite one, else nil.
  public var actionBounds: ActionBounds? {
    guard !actionLow.isEmpty else { return nil }
    let bounds = ActionBounds(low: actionLow, high: actionHigh)
    return bounds.anyFinite ? bounds : nil
  }
  /// Append the previous reward to the core input.
  public let usePrevReward: Bool
  /// All parameters' layout.
  public let layout: ParameterLayout
  /// The observation filter's mean and scale `[F]` each (nil with NoFilter).
  public let filterMean: ParameterSlot?
  public let filterScale: ParameterSlot?
  /// The entries of the flat observation that mask the logits (`action_mask_key`;
  /// one per logit), or nil. See ``ActionMask``.
  public let actionMask: Range<Int>?

  /// Builds the network for `config` over an environment's spaces: `actionCount`
  /// logits in `actionHeads` (nil: one head of `actionCount`), or with
  /// `continuousDims` D a Gaussian over D floats (`actionCount` must be 2D) whose
  /// `actionBounds` (`[D]` each; nil: unbounded) clip the previous action as an
  /// input, and with `conv` a convolutional encoder
  /// (``ConvPlan/make(config:observation:)``). `actionMask`: the observation's
  /// entries that mask the logits (one per logit; categorical heads and flat
  /// observations only).
  public init(
    config: TrainingConfig, observationSize: Int, actionCount: Int, actionHeads: [Int]? = nil,
    continuousDims: Int? = nil, actionBounds: (low: [Float], high: [Float])? = nil, conv: ConvPlan? = nil,
    actionMask: Range<Int>? = nil
  ) {
    self.observationSize = observationSize
    self.actionCount = actionCount
    if let actionMask {
      precondition(
        continuousDims == nil && conv == nil && actionMask.count == actionCount && actionMask.lowerBound >= 0
          && actionMask.upperBound <= observationSize,
        "an action mask is \(actionCount) entries of a flat observation of \(observationSize), for categorical heads")
    }
    self.actionMask = actionMask
    if let d = continuousDims {
      precondition(d >= 1 && actionCount == 2 * d, "a Gaussian over \(d) dims has 2 x \(d) inputs, not \(actionCount)")
      distribution = .gaussian(dims: d, freeLogStd: config.free_log_std)
      heads = ActionHeads(single: 1)
      let bounds = actionBounds ?? ([Float](repeating: -.infinity, count: d), [Float](repeating: .infinity, count: d))
      precondition(bounds.low.count == d && bounds.high.count == d, "action bounds of \(d) floats each")
      actionLow = bounds.low
      actionHigh = bounds.high
    } else {
      precondition(actionBounds == nil, "action bounds are for Box actions")
      actionLow = []
      actionHigh = []
      heads = ActionHeads(actionHeads ?? [actionCount])
      precondition(heads.logits == actionCount, "heads \(heads.sizes) do not sum to \(actionCount) logits")
      distribution = .categorical(heads)
    }
    usePrevAction = config.lstm_use_prev_action
    usePrevReward = config.lstm_use_prev_reward
    var layout = ParameterLayout()
    // The filter's statistics first: constants, so they draw nothing from the RNG
    // and the trained parameters start as they would without them.
    if config.observation_filter == .MeanStdFilter {
      filterMean = layout.declare("obs_filter.mean", shape: [observationSize], initializer: .constant(0))
      filterScale = layout.declare("obs_filter.scale", shape: [observationSize], initializer: .constant(1))
    } else {
      filterMean = nil
      filterScale = nil
    }
    convPlan = conv
    if let conv {
      precondition(
        conv.image.count == observationSize, "a \(conv.image) image is \(conv.image.count) floats, not \(observationSize)")
      let net: ConvNet
      do {
        net = try ConvNet("conv", input: conv.image, specs: conv.layers, activation: conv.activation, layout: &layout)
      } catch {
        preconditionFailure("the convolutional encoder does not fit: \(error)")
      }
      convolution = net
      encoder = MLP(
        "encoder", inFeatures: net.output.count, hiddenSizes: conv.fcHiddens, activation: conv.activation,
        layout: &layout)
    } else {
      convolution = nil
      encoder = MLP(
        "encoder", inFeatures: observationSize, hiddenSizes: config.fcnet_hiddens,
        activation: config.fcnet_activation, layout: &layout)
    }
    let coreIn =
      encoder.outFeatures + (usePrevAction ? distribution.prevActionWidth : 0) + (usePrevReward ? 1 : 0)
    if config.use_lstm {
      core =
        config.rnn_type == .gru
        ? GRU("core", inputSize: coreIn, hiddenSize: config.lstm_cell_size, layout: &layout)
        : LSTM("core", inputSize: coreIn, hiddenSize: config.lstm_cell_size, layout: &layout)
    } else {
      core = nil
    }
    let features = core?.hiddenSize ?? coreIn
    post = MLP(
      "post", inFeatures: features, hiddenSizes: config.post_fcnet_hiddens, activation: config.post_fcnet_activation,
      layout: &layout)
    // Heads start small (as IMPALA's and RLlib's do) so the first policy is near uniform.
    let freeLogStd = config.free_log_std && distribution.isContinuous
    policyHead = Linear(
      "pi", inFeatures: post.outFeatures, outFeatures: freeLogStd ? actionCount / 2 : actionCount, layout: &layout,
      weightBound: 0.01)
    if config.vf_share_layers {
      valueEncoder = nil
      valueCore = nil
      valuePost = nil
    } else {
      precondition(conv == nil, "vf_share_layers = false is for flat observations")
      let e = MLP(
        "vf_encoder", inFeatures: observationSize, hiddenSizes: config.fcnet_hiddens,
        activation: config.fcnet_activation, layout: &layout)
      valueEncoder = e
      if let core {
        valueCore =
          core.stateCount == 1
          ? GRU("vf_core", inputSize: coreIn, hiddenSize: core.hiddenSize, layout: &layout)
          : LSTM("vf_core", inputSize: coreIn, hiddenSize: core.hiddenSize, layout: &layout)
      } else {
        valueCore = nil
      }
      valuePost = MLP(
        "vf_post", inFeatures: features, hiddenSizes: config.post_fcnet_hiddens,
        activation: config.post_fcnet_activation, layout: &layout)
    }
    valueHead = Linear("vf", inFeatures: post.outFeatures, outFeatures: 1, layout: &layout, weightBound: 0.01)
    // Last, so a discrete policy's layout is what it was before Gaussians existed.
    logStd =
      freeLogStd
      ? layout.declare("pi.log_std", shape: [actionCount / 2], initializer: .constant(config.log_std_init)) : nil
    if config.weight_init == .orthogonal {
      let encoderActivation = conv?.activation ?? config.fcnet_activation
      layout.reinitialize { Self.orthogonalInit($0.name, config: config, encoderActivation: encoderActivation) }
    }
    if distribution.isContinuous && !freeLogStd {
      // The log std per state: the head's last D biases start at log_std_init,
      // so every state's log std starts there up to the head's small weights.
      layout.reinitialize { e in
        e.name == "pi.bias" ? .lastEntries(e.initializer, count: actionCount / 2, value: config.log_std_init) : nil
      }
    }
    self.layout = layout
  }

  /// `weight_init = orthogonal`'s initialiser for the parameter `name` (nil: keep
  /// the declared one): biases 0; weights orthogonal with the gain of the
  /// activation that follows (PyTorch's `calculate_gain`: relu sqrt(2), tanh 5/3,
  /// linear 1), 1 in the recurrent core and the value head, 0.01 in the policy head
  /// so the first policy is near uniform.
  static func orthogonalInit(_ name: String, config: TrainingConfig, encoderActivation: Activation) -> ParameterInit? {
    let parts = name.split(separator: ".")
    guard let tower = parts.first, let leaf = parts.last, tower != "obs_filter", name != "pi.log_std" else {
      return nil
    }
    if leaf.hasPrefix("bias") { return .constant(0) }
    func gain(_ a: Activation) -> Float {
      switch a {
      case .relu: return Float(2).squareRoot()
      case .tanh: return 5.0 / 3.0
      case .linear: return 1
      }
    }
    switch tower {
    case "conv", "encoder": return .orthogonal(gain: gain(encoderActivation))
    case "vf_encoder": return .orthogonal(gain: gain(config.fcnet_activation))
    case "post", "vf_post": return .orthogonal(gain: gain(config.post_fcnet_activation))
    case "pi": return .orthogonal(gain: 0.01)
    default: return .orthogonal(gain: 1)  // core, vf_core, vf
    }
  }

  /// The network for `config` over `spec`'s spaces (categorical heads or a Gaussian).
  public init(config: TrainingConfig, spec: EnvSpec) throws {
    let conv = try ConvPlan.make(config: config, observation: spec.observation)
    if conv != nil && !config.vf_share_layers {
      throw ConfigError(
        "vf_share_layers = false is supported for flat observations only; \(config.env) observes images through a convolutional encoder: set vf_share_layers to true")
    }
    if let box = try spec.action.continuousAction() {
      _ = try Self.actionMask(config: config, observation: spec.observation, actions: nil, conv: conv)
      self.init(
        config: config, observationSize: spec.observationSize, actionCount: 2 * box.low.count,
        continuousDims: box.low.count, actionBounds: (box.low, box.high), conv: conv)
    } else {
      let count = try spec.actionCount()
      self.init(
        config: config, observationSize: spec.observationSize, actionCount: count,
        actionHeads: try spec.action.actionHeads(), conv: conv,
        actionMask: try Self.actionMask(config: config, observation: spec.observation, actions: count, conv: conv))
    }
  }

  /// The entries of `observation`'s flat vector that mask the logits
  /// (`action_mask_key`), or nil when it has no such entry. `actions`: the logits
  /// of categorical heads, nil for a Gaussian policy. Throws, naming the key, for
  /// an entry that cannot mask these actions (continuous ones, a size that is not
  /// the logits', an image read by convolutions).
  public static func actionMask(
    config: TrainingConfig, observation: Space, actions: Int?, conv: ConvPlan?
  ) throws -> Range<Int>? {
    let key = config.action_mask_key
    guard !key.isEmpty, case .dict(let entries) = observation, entries.contains(where: { $0.key == key }) else {
      return nil
    }
    let unmask = "action_mask_key = \"\" reads the entry as an input only"
    guard let actions else {
      throw ConfigError(
        "\(config.env): the observation's '\(key)' entry would mask the actions, but they are continuous: masks are for Discrete and MultiDiscrete actions (\(unmask))")
    }
    let mask: Range<Int>?
    do {
      mask = try observation.actionMask(key: key, actions: actions)
    } catch {
      throw ConfigError("\(config.env): \(error) (\(unmask))")
    }
    if mask != nil && conv != nil {
      throw ConfigError(
        "\(config.env): the observation's '\(key)' entry would mask the actions, but Herd reads masks from flat observations and this one goes through a convolutional encoder (\(unmask))")
    }
    return mask
  }

  /// Outputs of the policy head per step: A, or D with a free log std.
  public var headOutputs: Int { logStd == nil ? actionCount : actionCount / 2 }

  /// Writes the distribution inputs `[rows, A]` from the head's outputs `[rows, D]`
  /// written contiguously at its start (free log std): spreads each row's mean
  /// to stride A and fills the log std columns. Rows are walked from the last so
  /// the spread can run in place.
  @inlinable
  func spreadFreeLogStd(_ p: Parameters, _ y: UnsafeMutablePointer<Float>, rows: Int) {
    guard let logStd else { return }
    let d = logStd.count
    let ls = p.value(logStd)
    var r = rows &- 1
    while r >= 0 {
      let src = y + r &* d
      let dst = y + r &* 2 &* d
      // dst >= src: copy from the back so an overlap is safe.
      var j = d &- 1
      while j >= 0 {
        dst[j] = src[j]
        j &-= 1
      }
      (dst + d).update(from: ls, count: d)
      r &-= 1
    }
  }

  /// Floats of the core's input per step: encoder features plus the extras.
  public var coreInputSize: Int {
    encoder.outFeatures + (usePrevAction ? distribution.prevActionWidth : 0) + (usePrevReward ? 1 : 0)
  }
  /// Floats of the core's output per step (H, or the core input without a core).
  public var featureSize: Int { core?.hiddenSize ?? coreInputSize }
  /// Floats of the heads' input per step: the post layers' output, or ``featureSize``.
  public var headInputSize: Int { post.outFeatures }
  /// Parameters the optimiser trains (all but the filter's statistics).
  public var trainableCount: Int { layout.count - 2 * (filterMean == nil ? 0 : observationSize) }

  /// The observations as the encoder reads them for `rows` rows into `out`:
  /// filtered, or scaled (uint8 images); nil (nothing written) when they are read
  /// as they are. `out` may be `obs`.
  @inlinable
  func prepareInput(
    _ p: Parameters, obs: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>
  ) -> UnsafePointer<Float>? {
    if let filtered = filter(p, obs: obs, rows: rows, into: out) { return filtered }
    guard let scale = convPlan?.inputScale, scale != 1 else { return nil }
    Kernels.scale(obs, by: scale, into: out, count: rows &* observationSize)
    return UnsafePointer(out)
  }

  /// The filtered observations for `rows` rows into `out`; nil (nothing written)
  /// without a filter.
  @inlinable
  func filter(
    _ p: Parameters, obs: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>
  ) -> UnsafePointer<Float>? {
    guard let filterMean, let filterScale else { return nil }
    ObservationFilter.apply(
      obs, mean: p.value(filterMean), scale: p.value(filterScale), rows: rows, features: observationSize, into: out)
    return UnsafePointer(out)
  }

  /// Floats of recurrent state per sequence: 2W (LSTM: h then c), W (GRU), 0,
  /// where W is ``stateWidth``.
  public var stateSize: Int { stateWidth * (core?.stateCount ?? 0) }
  /// Floats of each state vector (h, or c) per sequence: H, or 2H with the value's
  /// own core (`[h ; h^v]`); 0 without a core.
  public var stateWidth: Int { (core?.hiddenSize ?? 0) + (valueCore?.hiddenSize ?? 0) }
  /// Whether the value head reads its own encoder and core.
  public var sharesValueLayers: Bool { valueEncoder == nil }

  /// Writes `x = [z ; onehot(prevAction) ; prevReward]` for `rows` rows; for Box
  /// actions the previous action is `prevActionValues` `[rows, D]` (required then)
  /// clipped to the bounds.
  @inlinable
  func assembleCoreInput(
    z: UnsafePointer<Float>, prevActions: UnsafePointer<Int32>, prevActionValues: UnsafePointer<Float>?,
    prevRewards: UnsafePointer<Float>, rows: Int, into x: UnsafeMutablePointer<Float>
  ) {
    let zs = encoder.outFeatures
    let width = coreInputSize
    let d = actionLow.count
    precondition(
      !usePrevAction || d == 0 || prevActionValues != nil, "a Box policy with the previous action needs its values")
    for r in 0..<rows {
      let row = x + r &* width
      row.update(from: z + r &* zs, count: zs)
      var k = zs
      if usePrevAction, d > 0, let prevActionValues {
        let a = prevActionValues + r &* d
        for j in 0..<d { row[k &+ j] = min(max(a[j], actionLow[j]), actionHigh[j]) }
        k &+= d
      } else if usePrevAction {
        // One one-hot per head (the action's components).
        (row + k).update(repeating: 0, count: actionCount)
        let a = Int(prevActions[r])
        if a >= 0 && a < heads.values {
          for h in 0..<heads.count { row[k &+ heads.offsets[h] &+ heads.component(a, head: h)] = 1 }
        }
        k &+= actionCount
      }
      if usePrevReward { row[k] = prevRewards[r] }
    }
  }
}

/// Rollout-side workspaces of a ``PolicyNetwork`` (one per worker).
public final class PolicyWorkspace {
  let convolution = ConvNetCache()
  let encoder = MLPCache()
  let core = RecurrentCache()
  let coreInput = FloatBuffer()
  let filtered = FloatBuffer()
  // The value's own tower (vf_share_layers = false), and each core's state
  // gathered out of the rows' `[h ; h^v]` while it steps.
  let valueEncoder = MLPCache()
  let valueCore = RecurrentCache()
  let valueCoreInput = FloatBuffer()
  let post = MLPCache()
  let valuePost = MLPCache()
  let towerH = FloatBuffer()
  let towerC = FloatBuffer()
  /// Logits of the last step `[K, A]`.
  public let logits = FloatBuffer()
  /// Values of the last step `[K]`.
  public let values = FloatBuffer()

  /// Empty workspaces.
  public init() {}
}

extension PolicyNetwork {
  /// One rollout step for K rows: updates `state` (`[K, stateSize]`, h then c per
  /// row block) in place and writes logits `[K, A]` and values `[K]` into `ws`.
  ///
  /// - Parameters:
  ///   - obs: `[K, F]` raw (the network applies its filter); prevActions, prevRewards: `[K]` (zeros at episode starts).
  ///   - prevActionValues: for Box actions, the previous actions `[K, D]` as
  ///     sampled or as clipped (zeros at episode starts; needed with
  ///     `lstm_use_prev_action`, where `prevActions` is not read).
  ///   - h, c: `[K, W]` each (``stateWidth``; c only for the LSTM; both unused without a core).
  public func step(
    _ p: Parameters, obs: UnsafePointer<Float>, prevActions: UnsafePointer<Int32>,
    prevActionValues: UnsafePointer<Float>? = nil, prevRewards: UnsafePointer<Float>, rows: Int,
    h: UnsafeMutablePointer<Float>, c: UnsafeMutablePointer<Float>, ws: PolicyWorkspace
  ) {
    let input = prepareInput(p, obs: obs, rows: rows, into: ws.filtered.reserve(rows &* observationSize)) ?? obs
    let encoderInput = convolution?.forward(p, x: input, images: rows, cache: ws.convolution) ?? input
    let z = encoder.forward(p, x: encoderInput, rows: rows, cache: ws.encoder)
    let x = ws.coreInput.reserve(rows &* coreInputSize)
    assembleCoreInput(
      z: z, prevActions: prevActions, prevActionValues: prevActionValues, prevRewards: prevRewards, rows: rows, into: x)
    let features: UnsafePointer<Float>
    if let core {
      if valueCore == nil {
        core.step(p, x: x, rows: rows, h: h, c: core.stateCount == 2 ? c : nil, cache: ws.core)
        features = UnsafePointer(h)
      } else {
        features = towerStep(core, p, x: x, rows: rows, h: h, c: c, column: 0, cache: ws.core, ws: ws)
      }
    } else {
      features = UnsafePointer(x)
    }
    let headInput = post.forward(p, x: features, rows: rows, cache: ws.post)
    let logits = ws.logits.reserve(rows &* actionCount)
    policyHead.forward(p, x: headInput, rows: rows, y: logits)
    spreadFreeLogStd(p, logits, rows: rows)
    if let actionMask {
      ActionMask.apply(logits, observations: obs, features: observationSize, entries: actionMask, rows: rows)
    }
    guard let valueEncoder, let valuePost else {
      valueHead.forward(p, x: headInput, rows: rows, y: ws.values.reserve(rows))
      return
    }
    // The value's own encoder, core and post layers over the same input and extras.
    let zv = valueEncoder.forward(p, x: input, rows: rows, cache: ws.valueEncoder)
    let xv = ws.valueCoreInput.reserve(rows &* coreInputSize)
    assembleCoreInput(
      z: zv, prevActions: prevActions, prevActionValues: prevActionValues, prevRewards: prevRewards, rows: rows,
      into: xv)
    let valueFeatures =
      valueCore.map {
        towerStep($0, p, x: xv, rows: rows, h: h, c: c, column: core?.hiddenSize ?? 0, cache: ws.valueCore, ws: ws)
      } ?? UnsafePointer(xv)
    let valueHeadInput = valuePost.forward(p, x: valueFeatures, rows: rows, cache: ws.valuePost)
    valueHead.forward(p, x: valueHeadInput, rows: rows, y: ws.values.reserve(rows))
  }

  /// Steps `core` over its columns `[column, column + H)` of the rows' states
  /// `h`, `c` (`[K, W]` each): gathers them, steps, puts them back, and returns
  /// the new `h` `[K, H]` (valid until the next tower step with `ws`).
  func towerStep(
    _ core: any RecurrentLayer, _ p: Parameters, x: UnsafePointer<Float>, rows: Int,
    h: UnsafeMutablePointer<Float>, c: UnsafeMutablePointer<Float>, column: Int, cache: RecurrentCache,
    ws: PolicyWorkspace
  ) -> UnsafePointer<Float> {
    let hs = core.hiddenSize
    let w = stateWidth
    let th = ws.towerH.reserve(rows &* hs)
    let tc = core.stateCount == 2 ? ws.towerC.reserve(rows &* hs) : nil
    for r in 0..<rows {
      (th + r &* hs).update(from: h + (r &* w &+ column), count: hs)
      tc.map { ($0 + r &* hs).update(from: c + (r &* w &+ column), count: hs) }
    }
    core.step(p, x: x, rows: rows, h: th, c: tc, cache: cache)
    for r in 0..<rows {
      (h + (r &* w &+ column)).update(from: th + r &* hs, count: hs)
      tc.map { (c + (r &* w &+ column)).update(from: $0 + r &* hs, count: hs) }
    }
    return UnsafePointer(th)
  }
}
