import HerdEnvs
import HerdNN

/// `herd explain`: the model's data flow and every tensor shape for a config, in
/// rollout (2-D, one step per env) and in training (3-D, `[B/T, T, F]`), and the
/// parameter count per tensor.
public enum Explain {
  /// The explanation of `config` for the environment `spec` describes: its spaces,
  /// how observations flatten, then the model.
  /// `agents`: the rows one game of a PettingZoo environment takes (1 otherwise);
  /// `notes`: what the env host says it did to the spaces (a game whose agents'
  /// spaces it padded to one).
  public static func text(_ config: TrainingConfig, spec: EnvSpec, agents: Int = 1, notes: [String] = []) throws -> String {
    var out = [
      "Environment \(config.env)" + (spec.config == "{}" ? "" : " with env_config \(spec.config)") + config.wrappedText + ":"
    ]
    if agents > 1 {
      let k = config.num_envs_per_worker
      out.append(
        "  agents             \(agents) per game, a row each, all played by this one policy (self-play): K = \(k) rows \(k % agents == 0 ? "are \(k / agents) games" : "are not whole games (num_envs_per_worker must be a multiple of \(agents))")"
      )
      out.append(
        config.self_play_pool_size > 0
          ? "  past opponents     each worker keeps its policy every \(config.self_play_snapshot_interval) versions, the newest \(config.self_play_pool_size); in \(Int((config.self_play_past_fraction * 100).rounded()))% of games one of them plays every seat but one, and only that seat is learned from (return_vs_past)"
          : "  past opponents     none (self_play_pool_size 0): every game against itself"
      )
    }
    for note in notes { out.append("  spaces             \(note)") }
    out.append("  observation space  \(spec.observation)")
    out.append(
      "  flattened          [\(spec.observationSize)] \(spec.observation.flatIsBytes ? "uint8 (bytes from the env host to the learner's batch)" : "float32"), in this order:"
    )
    var offset = 0
    for (path, part) in flatParts(spec.observation, "") {
      let n = part.flatSize
      let how: String
      switch part {
      case .discrete: how = "one-hot"
      case .multiDiscrete: how = "one one-hot per component"
      case .multiBinary: how = "0/1"
      default: how = "as is, C order"
      }
      out.append("    [\(offset)..<\(offset + n)]".padding(toLength: 22, withPad: " ", startingAt: 0) + "\(path.isEmpty ? "observation" : path): \(part) \(how)")
      offset += n
    }
    for d in spec.observation.droppedParts { out.append("    dropped             \(d): not numbers, the policy does not see it") }
    if let note = ConvPlan.autoNote(config: config, observation: spec.observation) { out.append("  note: \(note)") }
    if let box = try spec.action.continuousAction() {
      let d = box.low.count
      out.append(
        "  action space       \(spec.action): a diagonal Gaussian over \(d) float\(d == 1 ? "" : "s"), log std \(config.free_log_std ? "a learned vector (free_log_std)" : "from the head")")
      out.append(
        "                     logits_t below are [mean | log std] [\(2 * d)]; the sample is clipped to [\(box.low.map { "\($0)" }.joined(separator: ", "))] .. [\(box.high.map { "\($0)" }.joined(separator: ", "))] at the environment")
      out.append("")
      return out.joined(separator: "\n") + "\n"
        + text(
          config, observationSize: spec.observationSize, actionCount: 2 * d, continuousDims: d,
          conv: try ConvPlan.make(config: config, observation: spec.observation))
    }
    let heads = try spec.action.actionHeads()
    out.append("  action space       \(spec.action): \(heads.count == 1 ? "one categorical head of \(heads[0])" : "\(heads.count) categorical heads \(heads)")")
    let conv = try ConvPlan.make(config: config, observation: spec.observation)
    if let mask = try PolicyNetwork.actionMask(
      config: config, observation: spec.observation, actions: heads.reduce(0, +), conv: conv)
    {
      out.append(
        "  action mask        '\(config.action_mask_key)' = o_t[\(mask.lowerBound)..<\(mask.upperBound)]: where it is 0 the logit becomes -1e9 (probability 0, never taken, no gradient); the filter passes it unchanged")
    }
    out.append("")
    return out.joined(separator: "\n") + "\n"
      + text(config, observationSize: spec.observationSize, actionCount: heads.reduce(0, +), actionHeads: heads, conv: conv)
  }

  /// The convolutional encoder, a line per layer: what it does, its shapes and parameters.
  static func convLines(_ conv: ConvNet, plan: ConvPlan, net: PolicyNetwork, line: (String) -> Void) {
    func count(_ slots: [ParameterSlot]) -> String {
      let n = slots.reduce(0) { $0 + $1.count }
      return n == 0 ? "" : "\(n) parameters"
    }
    func shape(_ s: ImageShape) -> String { "[\(s.height), \(s.width), \(s.channels)]" }
    let act = plan.activation.rawValue
    line(
      "  conv encoder \(plan.name)".padding(toLength: 31, withPad: " ", startingAt: 0)
        + "image \(shape(plan.image)) (height, width, channels)"
        + (plan.inputScale != 1 ? ", uint8 scaled to [0, 1] first" : ""))
    var rows: [(String, String, String, String)] = []
    for (i, layer) in conv.layers.enumerated() {
      switch layer {
      case .conv(let c):
        rows.append((
          "conv.\(i)", "conv \(c.kernelHeight)x\(c.kernelWidth) stride \(c.stride) pad \(c.padding)",
          "\(shape(c.input)) -> \(shape(c.output))", count([c.weight, c.bias])))
      case .activation(let s): rows.append(("", act, shape(s), ""))
      case .maxPool(let m):
        rows.append(("", "max-pool \(m.kernel)x\(m.kernel) stride \(m.stride) pad \(m.padding)", "\(shape(m.input)) -> \(shape(m.output))", ""))
      case .residual(let r):
        rows.append((
          "conv.\(i)", "residual: x + conv(\(act)(conv(\(act)(x)))), 3x3", shape(r.shape),
          count([r.conv0.weight, r.conv0.bias, r.conv1.weight, r.conv1.bias])))
      }
    }
    rows.append(("", "flatten (y, x, channel)", "\(shape(conv.output)) -> [\(conv.output.count)]", ""))
    for r in rows {
      line(
        "    " + r.0.padding(toLength: 9, withPad: " ", startingAt: 0) + r.1.padding(toLength: 44, withPad: " ", startingAt: 0)
          + r.2.padding(toLength: 30, withPad: " ", startingAt: 0) + r.3)
    }
    let sizes = net.encoder.layers.map { String($0.outFeatures) }.joined(separator: " -> ")
    line(
      "  " + "encoder (FC, \(act))".padding(toLength: 29, withPad: " ", startingAt: 0)
        + "[\(conv.output.count)] -> \(sizes.isEmpty ? "identity" : sizes) = z_t [\(net.encoder.outFeatures)]   features, not logits")
    line(
      "  " + "".padding(toLength: 29, withPad: " ", startingAt: 0)
        + "\(conv.multiplyAddsPerImage / 1000) thousand multiply-adds per image in the convolutions")
  }

  /// The leaves that flatten to numbers, with their paths, in flat order.
  static func flatParts(_ s: Space, _ path: String) -> [(String, Space)] {
    switch s {
    case .dict(let entries): return entries.flatMap { flatParts($0.space, path.isEmpty ? $0.key : "\(path).\($0.key)") }
    case .tuple(let spaces): return spaces.enumerated().flatMap { flatParts($1, "\(path)[\($0)]") }
    case .other: return []
    default: return [(path, s)]
    }
  }

  /// The explanation of `config` for an environment with `observationSize` floats
  /// and `actionCount` actions (and a convolutional encoder with `conv`).
  public static func text(
    _ config: TrainingConfig, observationSize f: Int, actionCount a: Int, actionHeads: [Int]? = nil,
    continuousDims: Int? = nil, conv: ConvPlan? = nil
  ) -> String {
    let net = PolicyNetwork(
      config: config, observationSize: f, actionCount: a, actionHeads: actionHeads, continuousDims: continuousDims,
      conv: conv)
    let k = config.num_envs_per_worker
    let t = config.max_seq_len
    let n = config.fragmentsPerBatch
    let b = n * t
    let z = net.encoder.outFeatures
    let x = net.coreInputSize
    let h = net.core?.hiddenSize ?? 0
    let w = net.stateWidth
    let cell = config.use_lstm ? config.rnn_type.rawValue.uppercased() : "none"
    let stateParts = net.core.map { $0.stateCount == 2 ? "(h, c)" : "h" } ?? "none"
    var extras: [String] = []
    if net.usePrevAction {
      extras.append(continuousDims.map { "clip(a_{t-1}, low, high) [\($0)]" } ?? "onehot(a_{t-1}) [\(a)]")
    }
    if net.usePrevReward { extras.append("r_{t-1} [1]") }
    var out: [String] = []
    func line(_ s: String = "") { out.append(s) }

    line("herd explain: \(config.env), \(config.use_lstm ? "\(cell)(\(h))" : "feed-forward") policy")
    line()
    line("Model, one step of one env:")
    line("  observation o_t              [\(f)]" + (config.observation_filter == .MeanStdFilter ? "   filtered: (o - running mean) / std, clipped to +-10 (obs_filter.*: the learner's statistics, sent with the weights)" : ""))
    if let conv = net.convolution, let plan = net.convPlan {
      convLines(conv, plan: plan, net: net, line: line)
    } else {
      let hidden = config.fcnet_hiddens.map(String.init).joined(separator: " -> ")
      line("  " + "encoder (MLP, \(config.fcnet_activation.rawValue))".padding(toLength: 29, withPad: " ", startingAt: 0) + "[\(f)] -> \(hidden.isEmpty ? "identity" : hidden) = z_t [\(z)]   features, not logits")
    }
    line("  core input x_t               [z_t [\(z)]" + extras.map { " ; " + $0 }.joined() + "] = [\(x)]")
    if !net.usePrevAction { line("                               previous action: not an input (lstm_use_prev_action = false)") }
    if !net.usePrevReward { line("                               previous reward: not an input (lstm_use_prev_reward = false)") }
    if let core = net.core {
      line(
        "  " + "\(cell) core, cell size \(h)".padding(toLength: 29, withPad: " ", startingAt: 0)
          + "\(stateParts) = \(core.stateCount) x [\(h)] per episode, zeros at the episode's start")
      line("                               remembers across steps of one episode, never across episodes")
    } else {
      line("  no recurrent core            the heads see x_t only: nothing is remembered between steps")
    }
    // What the heads read: h_t, or u_t after the post layers.
    var read = "h_t [\(net.featureSize)]"
    if !net.post.layers.isEmpty {
      let sizes = net.post.layers.map { String($0.outFeatures) }.joined(separator: " -> ")
      line("  " + "post layers (MLP, \(net.post.activation.rawValue))".padding(toLength: 29, withPad: " ", startingAt: 0) + "h_t [\(net.featureSize)] -> \(sizes) = u_t [\(net.headInputSize)]   (post_fcnet_hiddens)")
      read = "u_t [\(net.headInputSize)]"
    }
    let v = read.prefix(3)
    if let logStd = net.logStd {
      line("  heads                        mean_t = W_pi \(v) + b_pi [\(logStd.count)], log std = pi.log_std [\(logStd.count)] (every state),  value_t = w_v . \(v) + b_v [1]   (\(read))")
    } else {
      line("  heads                        logits_t = W_pi \(v) + b_pi [\(a)],  value_t = w_v . \(v) + b_v [1]   (\(read))")
    }
    if !net.sharesValueLayers {
      line("  value tower (vf_share_layers = false): its own encoder vf_encoder [\(f)] -> z^v_t [\(z)], the same extras"
        + (net.valueCore != nil ? ", its own \(cell)(\(h)) vf_core" : "")
        + (net.post.layers.isEmpty ? ", and value_t = w_v . h^v_t + b_v;" : ", its own post layers vf_post, and value_t = w_v . u^v_t + b_v;"))
      line("                               the value loss no longer reaches the policy's layers"
        + (net.valueCore != nil ? "; the state is [h ; h^v] = [\(w)]\(net.core?.stateCount == 2 ? " and [c ; c^v]" : "")" : ""))
    }
    line()
    line("Rollout (a worker, K = \(k) envs): 2-D, one step at a time")
    line("  obs [\(k), \(f)] -> " + (net.convolution.map { "conv [\(k), \($0.output.height), \($0.output.width), \($0.output.channels)] -> " } ?? "") + "encoder [\(k), \(z)] -> x [\(k), \(x)]" + (net.core != nil ? " -> \(cell) step with \(stateParts) [\(k), \(w)]\(net.core?.stateCount == 2 ? " each" : "")" : "") + " -> " + (net.post.layers.isEmpty ? "" : "post [\(k), \(net.headInputSize)] -> ") + "logits [\(k), \(a)], values [\(k)]")
    if net.core != nil || net.usePrevAction || net.usePrevReward {
      line("  each env carries its own \(net.core != nil ? "state" : "previous action/reward"); when its episode ends \(net.core != nil ? "the state" : "they")\(net.core != nil && (net.usePrevAction || net.usePrevReward) ? " and a_{t-1}, r_{t-1}" : "") reset to zeros")
    } else {
      line("  nothing is carried from one step to the next")
    }
    if net.core != nil {
      line("  fragments: at most T = \(t) steps of one episode (never across one), with state_in = the state before")
      line("  their first step, the bootstrap observation o_n, and an end: terminated, truncated or cut")
    } else {
      line("  fragments: at most T = \(t) steps of one episode (never across one), with the bootstrap observation o_n")
      line("  and an end: terminated, truncated or cut (no recurrent state to carry)")
    }
    line()
    line("Training (the learner): B = \(config.train_batch_size) timesteps -> N = B / T = \(n) fragments: 3-D")
    line("  obs [\(n), \(t + 1), \(f)]            slot seq_lens[i] holds fragment i's bootstrap observation o_n")
    line("  actions\(net.distribution.isContinuous ? " [\(n), \(t), \(net.distribution.actionWidth)], rewards" : ", rewards") [\(n), \(t)]   behaviour logits [\(n), \(t), \(a)]   mask [\(n), \(t)]   seq_lens [\(n)] in 1...\(t)")
    if h > 0 {
      line("  state_in \(stateParts) [\(n), \(w)]\(net.core?.stateCount == 2 ? " each" : "")   a constant: no gradient flows into the worker's state")
    }
    line("  padding: steps past seq_lens[i] are zeros, masked out of the loss and V-trace, get no gradient, and cost")
    line("           no arithmetic (sequences ranked by length; each time step multiplies only the rows still running)")
    line("  forward: each fragment runs seq_len + 1 steps\(net.core != nil ? " from its state_in" : ""); the extra step gives V(o_n)")
    if net.core != nil {
      line("  BPTT: within each fragment only (truncated at T = \(t)); up to \(b) timesteps per update")
    } else {
      line("  no recurrence: every step is an independent row; up to \(b) timesteps per update")
    }
    line("  bootstrap: terminated -> 0;  truncated or cut -> V(o_n) of the same episode")
    let entropyWeight =
      config.entropy_decay_env_steps > 0
      ? "(\(config.entropy_coeff) to \(config.entropy_coeff_final) over \(config.entropy_decay_env_steps.formatted()) env steps)"
      : "\(config.entropy_coeff)"
    line("  V-trace (rho-bar \(config.vtrace_clip_rho_threshold), c-bar \(config.vtrace_clip_c_threshold), gamma \(config.gamma)) -> loss = pg + \(config.vf_loss_coeff) x baseline - \(entropyWeight) x entropy, mean over valid steps")
    line()
    line("Parameters:")
    let width = net.layout.entries.map(\.name.count).max() ?? 10
    for e in net.layout.entries {
      let shape = "[" + e.slot.shape.map(String.init).joined(separator: ", ") + "]"
      line("  " + e.name.padding(toLength: width + 2, withPad: " ", startingAt: 0) + shape.padding(toLength: 14, withPad: " ", startingAt: 0) + String(e.slot.count))
    }
    if net.trainableCount < net.layout.count {
      line("  " + "trained (all but obs_filter.*, which no gradient reaches)".padding(toLength: width + 16, withPad: " ", startingAt: 0) + String(net.trainableCount))
    }
    line("  " + "total".padding(toLength: width + 16, withPad: " ", startingAt: 0) + String(net.layout.count))
    return out.joined(separator: "\n")
  }
}
