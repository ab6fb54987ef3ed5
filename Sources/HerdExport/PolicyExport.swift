import Foundation
import HerdEnvs
import HerdLearner
import HerdNN
import HerdRL

/// A trained policy written for use without Herd: three files in one folder.
///
/// - `policy.safetensors`: every parameter under its PyTorch `state_dict` name
///   (`encoder.0.weight` of an `nn.Linear`, `core.weight_ih_l0` of an `nn.LSTM` or
///   `nn.GRU`, `pi.*`, `vf.*`, and the observation filter's `obs_filter.mean` and
///   `obs_filter.scale` as buffers).
/// - `policy.json`: the sidecar that says how to put them together: the spaces,
///   the encoder, core and heads, the filter (mean, std and scale), whether the
///   previous action and reward are inputs, the ONNX signature, Herd's version.
///   The Python loader (`herd_policy`) rebuilds a `torch.nn.Module` from these two.
/// - `policy.onnx`: one step of the policy (opset ``opset``) with the recurrent
///   state as explicit inputs and outputs.
///
/// One step, as Herd's workers compute it (``PolicyNetwork/step``):
/// ```
/// x = clip((obs - obs_filter.mean) * obs_filter.scale, -10, 10)     (if the run filtered)
/// x = conv(x * input_scale) flattened channels last                   (image observations)
/// z = act(encoder.i(x)) ...                                          (each layer)
/// u = [z ; onehot(prev_action) per head ; prev_reward]               (the inputs in use;
///     Box actions: clip(prev_action, low, high) [N, D] float, not one-hot)
/// h', c' = core(u, (h, c))                                           (LSTM; GRU: h' only; none: h' = u)
/// y = post_act(post.i(h')) ...                                       (each post layer; none: y = h')
/// logits = pi(y)   value = vf(y)[:, 0]
/// ```
/// At an episode start the state is zeros and `prev_action`, `prev_reward` are 0.
public struct PolicyExport {
  /// The ONNX operator set the graph uses.
  public static let opset: Int64 = 17
  /// The sidecar's `format` and `format_version`.
  public static let format = "herd-policy"
  public static let formatVersion = 1
  /// The files an export writes.
  public static let weightsFile = "policy.safetensors"
  public static let sidecarFile = "policy.json"
  public static let onnxFile = "policy.onnx"

  public let policy: TrainedPolicy

  public init(_ policy: TrainedPolicy) { self.policy = policy }

  var network: PolicyNetwork { policy.network }

  // MARK: Names

  /// The PyTorch name of a Herd parameter: recurrent weights gain `_l0`
  /// (`nn.LSTM`/`nn.GRU` name their first layer so); the rest keep their names.
  public static func torchName(_ herdName: String) -> String {
    let recurrent = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    if let last = herdName.split(separator: ".").last, recurrent.contains(String(last)),
      herdName.hasPrefix("core.") || herdName.hasPrefix("vf_core.")
    {
      return herdName + "_l0"
    }
    return herdName
  }

  /// Every parameter, in Herd's layout order, under its PyTorch name; conv weights
  /// in PyTorch's `[out, in, kH, kW]` (Herd keeps `[out, kH, kW, in]`).
  public func tensors() -> [Safetensors.Tensor] {
    network.layout.entries.map { e in
      let v = Array(policy.weights[e.slot.offset..<(e.slot.offset + e.slot.count)])
      if Self.isConvWeight(e.name, shape: e.slot.shape) {
        let s = e.slot.shape
        return Safetensors.Tensor(
          name: Self.torchName(e.name), shape: [s[0], s[3], s[1], s[2]], values: Self.channelsFirst(v, shape: s))
      }
      return Safetensors.Tensor(name: Self.torchName(e.name), shape: e.slot.shape, values: v)
    }
  }

  static func isConvWeight(_ name: String, shape: [Int]) -> Bool {
    name.hasPrefix("conv.") && name.hasSuffix(".weight") && shape.count == 4
  }

  /// `[O, kH, kW, C]` -> `[O, C, kH, kW]`.
  static func channelsFirst(_ v: [Float], shape s: [Int]) -> [Float] {
    let (o, kh, kw, c) = (s[0], s[1], s[2], s[3])
    var out = [Float](repeating: 0, count: v.count)
    for a in 0..<o {
      for y in 0..<kh {
        for x in 0..<kw {
          for ch in 0..<c { out[((a * c + ch) * kh + y) * kw + x] = v[((a * kh + y) * kw + x) * c + ch] }
        }
      }
    }
    return out
  }

  func values(_ slot: ParameterSlot) -> [Float] { Array(policy.weights[slot.offset..<(slot.offset + slot.count)]) }

  // MARK: Files

  /// `policy.safetensors`'s bytes. Its metadata is fixed (`format: pt`), so the
  /// same weights give the same bytes.
  public func safetensors() -> [UInt8] { Safetensors.encode(tensors(), metadata: ["format": "pt"]) }

  /// One line for logs: "encoder 4-64-64 tanh, lstm(64), 2 logits, filter".
  public var summary: String {
    let net = network
    let convs = net.convolution.map { "conv \($0.input) -> \($0.output) (\(net.convPlan?.name ?? "custom")), " } ?? ""
    let sizes = [net.convolution?.output.count ?? net.observationSize] + net.encoder.layers.map(\.outFeatures)
    let core = net.core.map { "\(coreType)(\($0.hiddenSize))" } ?? "no core"
    let post =
      net.post.layers.isEmpty
      ? "" : "post \(net.post.layers.map { String($0.outFeatures) }.joined(separator: "-")) \(net.post.activation.rawValue), "
    return "\(convs)encoder \(sizes.map(String.init).joined(separator: "-")) \(net.encoder.activation.rawValue), \(core), "
      + post
      + (net.distribution.isContinuous
        ? "Gaussian over \(net.distribution.actionWidth) dims" : "\(net.actionCount) logits")
      + (net.sharesValueLayers ? "" : ", the value's own encoder and \(net.core == nil ? "no core" : core)")
      + (net.filterMean == nil ? "" : ", obs filter")
  }

  /// The core's kind as the sidecar names it.
  var coreType: String {
    switch network.core {
    case is LSTM: return "lstm"
    case is GRU: return "gru"
    default: return "none"
    }
  }

  /// The ONNX graph's inputs and outputs, in order.
  var onnxInputs: [String] {
    var names = ["obs"]  // h and c: [N, W], the value core's columns after the policy's
    if network.usePrevAction { names.append("prev_action") }
    if network.usePrevReward { names.append("prev_reward") }
    if network.core != nil { names.append("h") }
    if network.core is LSTM { names.append("c") }
    return names
  }

  var onnxOutputs: [String] {
    var names = ["logits", "value"]
    if network.core != nil { names.append("h_out") }
    if network.core is LSTM { names.append("c_out") }
    return names
  }

  /// `policy.json`: everything a reader needs besides the weights.
  public func sidecar() throws -> [String: Any] {
    let encoder = JSONEncoder()
    func json<T: Encodable>(_ v: T) throws -> Any {
      try JSONSerialization.jsonObject(with: try encoder.encode(v), options: [.fragmentsAllowed])
    }
    let net = network
    var filter: Any = NSNull()
    if let m = net.filterMean, let s = net.filterScale {
      let scale = values(s)
      filter = [
        "mean": values(m).map(Double.init),
        "scale": scale.map(Double.init),
        // scale = 1 / (std + 1e-8), so std = 1 / scale - 1e-8.
        "std": scale.map { Double(1 / $0) - 1e-8 },
        "clip": 10,
        "formula": "clip((obs - mean) * scale, -clip, clip), scale = 1 / (std + 1e-8)",
      ] as [String: Any]
    }
    func describe(_ mlp: MLP, _ name: String) -> [[String: Any]] {
      mlp.layers.enumerated().map { i, l in
        ["name": "\(name).\(i)", "in_features": l.inFeatures, "out_features": l.outFeatures]
      }
    }
    let layers = describe(net.encoder, "encoder")
    // The layers between a core and the heads (none: an empty list).
    func post(_ mlp: MLP, _ name: String) -> [String: Any] {
      ["type": "mlp", "activation": mlp.activation.rawValue, "layers": describe(mlp, name)]
    }
    var core: [String: Any] = ["type": coreType, "input_size": net.coreInputSize]
    if let c = net.core {
      core["hidden_size"] = c.hiddenSize
      core["state"] = c.stateCount == 2 ? ["h", "c"] : ["h"]
      core["state_width"] = net.stateWidth
      core["gate_order"] = c.stateCount == 2 ? "i, f, g, o (nn.LSTM)" : "r, z, n (nn.GRU)"
    }
    var valueTower: Any = NSNull()
    if let e = net.valueEncoder {
      var tower: [String: Any] = [
        "encoder": [
          "type": "mlp", "activation": e.activation.rawValue,
          "layers": describe(e, "vf_encoder"),
        ] as [String: Any],
        "post": net.valuePost.map { post($0, "vf_post") } ?? NSNull(),
        "core": ["type": coreType, "input_size": net.coreInputSize, "hidden_size": net.valueCore?.hiddenSize ?? 0]
          as [String: Any],
        "input": "the observation as the policy's encoder reads it (filtered), and the same core inputs",
      ]
      if let c = net.core {
        tower["state"] =
          "each state tensor is [N, \(net.stateWidth)]: columns 0..<\(c.hiddenSize) the policy core's, the rest vf_core's"
      }
      valueTower = tower
    }
    let shapes = Dictionary(uniqueKeysWithValues: tensors().map { ($0.name, $0.shape) })
    let continuous = net.distribution.isContinuous
    let prevActionInput = continuous ? "prev_action clipped to the action bounds" : "one-hot of prev_action per head"
    let prevActionType: (dtype: String, shape: [Any]) =
      continuous ? ("float32", ["N", net.distribution.actionWidth]) : ("int64", ["N"])
    return [
      "format": Self.format,
      "format_version": Self.formatVersion,
      "herd_version": HerdVersion.string,
      "source": [
        "checkpoint": policy.source, "policy_version": policy.policyVersion,
        "env": policy.config.env, "env_spec": try json(policy.spec),
        "env_wrappers": try json(policy.config.env_wrappers),
      ] as [String: Any],
      "observation": [
        "space": try json(policy.spec.observation), "size": net.observationSize,
        "flattening": "Herd's: Box as is, Discrete/MultiBinary/MultiDiscrete one-hot, Dict/Tuple parts concatenated",
      ] as [String: Any],
      "action": try actionSidecar(),
      "obs_filter": filter,
      "conv": convSidecar() ?? NSNull(),
      "encoder": ["type": "mlp", "activation": net.encoder.activation.rawValue, "layers": layers] as [String: Any],
      "prev_action": net.usePrevAction,
      "prev_reward": net.usePrevReward,
      "core_input": ["encoder features"] + (net.usePrevAction ? [prevActionInput] : [])
        + (net.usePrevReward ? ["prev_reward"] : []),
      "core": core,
      "post": post(net.post, "post"),
      "value_tower": valueTower,
      "heads": [
        "pi": ["in_features": net.headInputSize, "out_features": net.headOutputs],
        "vf": ["in_features": net.headInputSize, "out_features": 1],
      ],
      "episode_start": "state zeros, prev_action 0, prev_reward 0",
      "tensors": shapes,
      "onnx": [
        "file": Self.onnxFile, "opset": Int(Self.opset), "inputs": onnxInputs, "outputs": onnxOutputs,
        "prev_action_dtype": prevActionType.dtype, "prev_action_shape": prevActionType.shape,
      ] as [String: Any],
    ]
  }

  /// The sidecar's `action` entry: the heads and their packing, or the Gaussian.
  func actionSidecar() throws -> [String: Any] {
    let space = try JSONSerialization.jsonObject(
      with: try JSONEncoder().encode(policy.spec.action), options: [.fragmentsAllowed])
    let net = network
    if case .gaussian(let d, let free) = net.distribution {
      let bounds = try policy.spec.action.continuousAction()
      // JSON has no infinity: an unbounded side is the string "inf" or "-inf", as in env_spec.json.
      func bound(_ x: Float) -> Any { x.isFinite ? Double(x) : x > 0 ? "inf" : "-inf" }
      return [
        "space": space, "distribution": "gaussian", "dims": d, "free_log_std": free, "logits": 2 * d,
        "low": (bounds?.low ?? []).map(bound), "high": (bounds?.high ?? []).map(bound),
        "encoding": "logits = [mean (D) | log std (D)]; "
          + (free ? "the log std is pi.log_std for every state" : "both from pi"),
        "log_std_clamp": [Double(DiagGaussian.minLogStd), Double(DiagGaussian.maxLogStd)],
        "acting": "a = mean + exp(clamp(log_std)) * N(0, 1), clipped to [low, high] for the environment; "
          + "the log-probability is of the unclipped sample; greedy: the mean, clipped",
      ]
    }
    let heads = net.heads
    var entry: [String: Any] = [
      "space": space,
      "distribution": heads.count == 1 ? "categorical" : "multi_categorical",
      "heads": heads.sizes, "logit_offsets": heads.offsets, "strides": heads.strides, "logits": heads.logits,
      "encoding": "action index a = sum over heads of component_k * strides[k]; component_k = (a / strides[k]) % heads[k]",
    ]
    if let mask = net.actionMask {
      entry["mask"] = [
        "key": policy.config.action_mask_key, "obs_start": mask.lowerBound, "obs_end": mask.upperBound,
        "masked_logit": Double(ActionMask.maskedLogit),
        "rule": "logits[:, j] = masked_logit where obs[:, obs_start + j] < 0.5 (the raw observation; "
          + "the ONNX graph and herd_policy apply it)",
      ] as [String: Any]
    }
    return entry
  }

  /// The sidecar's `conv` entry: the image, its scale, and each layer in order
  /// (nil without convolutions).
  func convSidecar() -> [String: Any]? {
    guard let conv = network.convolution else { return nil }
    let layers: [[String: Any]] = conv.layers.enumerated().map { i, layer in
      switch layer {
      case .conv(let c):
        return [
          "type": "conv", "name": "conv.\(i)", "in_channels": c.input.channels, "out_channels": c.output.channels,
          "kernel": c.kernelHeight, "stride": c.stride, "padding": c.padding,
        ]
      case .activation: return ["type": "activation"]
      case .maxPool(let m): return ["type": "max_pool", "kernel": m.kernel, "stride": m.stride, "padding": m.padding]
      case .residual(let r):
        return [
          "type": "residual", "name": "conv.\(i)", "channels": r.shape.channels,
          "formula": "x + conv1(act(conv0(act(x)))), 3x3 convs with padding 1",
        ]
      }
    }
    let shape = { (s: ImageShape) in [s.height, s.width, s.channels] }
    return [
      "input": shape(conv.input), "output": shape(conv.output), "output_size": conv.output.count,
      "input_scale": Double(network.convPlan?.inputScale ?? 1), "activation": conv.activation.rawValue,
      "layers": layers,
      "layout": "obs rows are H x W x C images flattened channels last; the convs run on N C H W "
        + "(PyTorch's layout, weights [out, in, kH, kW]); their output is flattened channels last (y, x, c) "
        + "before encoder.0",
      "order": "obs_filter, then x input_scale, then the layers",
    ]
  }

  /// `policy.json`'s bytes (sorted keys, indented).
  public func sidecarJSON() throws -> [UInt8] {
    let data = try JSONSerialization.data(
      withJSONObject: try sidecar(), options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    return Array(data) + [10]
  }

  /// Writes the three files into `directory` (created if missing), each atomically.
  /// Returns their paths.
  @discardableResult
  public func write(to directory: String) throws -> [String] {
    do {
      try Folders.create(directory)
    } catch let error as FolderError {
      throw ExportError(error.description)
    }
    let files: [(String, [UInt8])] = [
      (Self.weightsFile, safetensors()), (Self.sidecarFile, try sidecarJSON()), (Self.onnxFile, onnx()),
    ]
    var paths: [String] = []
    for (name, bytes) in files {
      let path = (directory as NSString).appendingPathComponent(name)
      try RunDirectory.writeFile(path, bytes: bytes)
      paths.append(path)
    }
    return paths
  }
}

extension PolicyExport {
  /// `policy.onnx`'s bytes: one step for a batch of N rows (N is dynamic).
  public func onnx() -> [UInt8] {
    let net = network
    var m = ONNXModel(graphName: "herd_policy", opset: Self.opset, producerVersion: HerdVersion.string)
    m.docString = "Herd policy, one step; recurrent state in and out. See policy.json."
    m.metadata = [("herd_version", HerdVersion.string), ("env", policy.config.env)]
    let n = ONNXModel.Value.Dim.named("N")
    m.inputs.append(.init(name: "obs", type: .float, shape: [n, .fixed(net.observationSize)]))
    if net.usePrevAction {
      let d = net.distribution.actionWidth
      m.inputs.append(
        d > 0
          ? .init(name: "prev_action", type: .float, shape: [n, .fixed(d)])
          : .init(name: "prev_action", type: .int64, shape: [n]))
    }
    if net.usePrevReward { m.inputs.append(.init(name: "prev_reward", type: .float, shape: [n])) }
    let width = ONNXModel.Value.Dim.fixed(net.stateWidth)
    if let core = net.core {
      m.inputs.append(.init(name: "h", type: .float, shape: [n, width]))
      if core.stateCount == 2 { m.inputs.append(.init(name: "c", type: .float, shape: [n, width])) }
    }
    func weight(_ slot: ParameterSlot, _ herdName: String) -> String {
      m.constant(Self.torchName(herdName), floats: values(slot), dims: slot.shape)
    }
    func linear(_ x: String, _ l: Linear, _ name: String, output: String? = nil) -> String {
      linearNode(&m, x, l, name, output: output)
    }

    // The filter.
    var x = "obs"
    if let mean = net.filterMean, let scale = net.filterScale {
      let centred = m.op("Sub", x, weight(mean, "obs_filter.mean"))
      let scaled = m.op("Mul", centred, weight(scale, "obs_filter.scale"))
      let lo = m.constant(floats: [-10], dims: [])
      let hi = m.constant(floats: [10], dims: [])
      x = m.node("Clip", [scaled, lo, hi])[0]
    }
    // The convolutions, on N C H W, flattened back channels last.
    if let conv = net.convolution {
      if let scale = net.convPlan?.inputScale, scale != 1 { x = m.op("Mul", x, m.constant(floats: [scale], dims: [])) }
      let image = conv.input
      x = m.op("Reshape", x, m.constant(ints: [-1, Int64(image.height), Int64(image.width), Int64(image.channels)], dims: [4]))
      x = m.node("Transpose", [x], [.ints("perm", [0, 3, 1, 2])])[0]
      func convolve(_ x: String, _ c: Conv2D, _ name: String) -> String {
        let w = m.constant(
          Self.torchName("\(name).weight"), floats: Self.channelsFirst(values(c.weight), shape: c.weight.shape),
          dims: [c.output.channels, c.input.channels, c.kernelHeight, c.kernelWidth])
        let b = weight(c.bias, "\(name).bias")
        let p = Int64(c.padding)
        return m.node(
          "Conv", [x, w, b],
          [
            .ints("kernel_shape", [Int64(c.kernelHeight), Int64(c.kernelWidth)]),
            .ints("strides", [Int64(c.stride), Int64(c.stride)]), .ints("pads", [p, p, p, p]),
          ])[0]
      }
      func activate(_ x: String) -> String {
        switch conv.activation {
        case .tanh: return m.op("Tanh", x)
        case .relu: return m.op("Relu", x)
        case .linear: return x
        }
      }
      for (i, layer) in conv.layers.enumerated() {
        switch layer {
        case .conv(let c): x = convolve(x, c, "conv.\(i)")
        case .activation: x = activate(x)
        case .maxPool(let pool):
          let k = Int64(pool.kernel)
          let s = Int64(pool.stride)
          let p = Int64(pool.padding)
          // ONNX's max-pool never picks its padding, as Herd's and PyTorch's.
          x = m.node(
            "MaxPool", [x],
            [.ints("kernel_shape", [k, k]), .ints("strides", [s, s]), .ints("pads", [p, p, p, p])])[0]
        case .residual(let r):
          let u = convolve(activate(x), r.conv0, "conv.\(i).conv0")
          x = m.op("Add", x, convolve(activate(u), r.conv1, "conv.\(i).conv1"))
        }
      }
      x = m.node("Transpose", [x], [.ints("perm", [0, 2, 3, 1])])[0]
      x = m.op("Reshape", x, m.constant(ints: [-1, Int64(conv.output.count)], dims: [2]))
    }
    // The policy's encoder and core, then the value's own when it has them. With
    // its own core, each state input is split in halves and the outputs joined.
    let split = net.valueCore != nil
    var hs = ["h", "h"]
    var cs = ["c", "c"]
    if split {
      hs = m.node("Split", ["h"], count: 2, [.int("axis", 1)])
      if net.core is LSTM { cs = m.node("Split", ["c"], count: 2, [.int("axis", 1)]) }
    }
    let policy = tower(
      &m, x, encoder: net.encoder, "encoder", core: net.core, "core", h: hs[0], c: cs[0],
      outputs: split ? nil : ("h_out", "c_out"))
    var valueFeatures = policy.features
    if let e = net.valueEncoder {
      let value = tower(
        &m, x, encoder: e, "vf_encoder", core: net.valueCore, "vf_core", h: hs[1], c: cs[1], outputs: nil)
      valueFeatures = value.features
      if split {
        m.node("Concat", [policy.h, value.h], outputs: ["h_out"], [.int("axis", 1)])
        if net.core is LSTM { m.node("Concat", [policy.c, value.c], outputs: ["c_out"], [.int("axis", 1)]) }
      }
    }
    // The post layers, then the heads.
    let features = mlpLayers(&m, policy.features, net.post, "post")
    valueFeatures =
      net.valuePost.map { mlpLayers(&m, valueFeatures, $0, "vf_post") } ?? features
    if let logStd = net.logStd {
      // [mean | log std]: the learned vector beside every row's mean.
      let mean = linear(features, net.policyHead, "pi")
      let spread = m.op("Add", m.op("Mul", mean, m.constant(floats: [0], dims: [])), weight(logStd, "pi.log_std"))
      m.node("Concat", [mean, spread], outputs: ["logits"], [.int("axis", 1)])
    } else if let mask = net.actionMask {
      // Masked logits: obs[:, mask] < 0.5 -> masked_logit (ActionMask).
      let raw = linear(features, net.policyHead, "pi")
      let entries = m.node(
        "Slice",
        [
          "obs", m.constant(ints: [Int64(mask.lowerBound)], dims: [1]),
          m.constant(ints: [Int64(mask.upperBound)], dims: [1]), m.constant(ints: [1], dims: [1]),
        ])[0]
      let masked = m.op("Less", entries, m.constant(floats: [0.5], dims: []))
      m.node("Where", [masked, m.constant(floats: [ActionMask.maskedLogit], dims: []), raw], outputs: ["logits"])
    } else {
      _ = linear(features, net.policyHead, "pi", output: "logits")
    }
    let v = linear(valueFeatures, net.valueHead, "vf")
    m.node("Squeeze", [v, m.constant(ints: [1], dims: [1])], outputs: ["value"])

    m.outputs.append(.init(name: "logits", type: .float, shape: [n, .fixed(net.actionCount)]))
    m.outputs.append(.init(name: "value", type: .float, shape: [n]))
    if let core = net.core {
      m.outputs.append(.init(name: "h_out", type: .float, shape: [n, width]))
      if core.stateCount == 2 { m.outputs.append(.init(name: "c_out", type: .float, shape: [n, width])) }
    }
    return m.encoded()
  }

  /// One tower of the graph from the (filtered, convolved) input `x`: the
  /// encoder's layers, the core's input, and one step of `core` from states `h`
  /// and `c` (the graph's names); the new states get the names in `outputs` when
  /// given. Returns the features the heads read and the new states' names.
  private func tower(
    _ m: inout ONNXModel, _ input: String, encoder: MLP, _ encoderName: String, core: (any RecurrentLayer)?,
    _ coreName: String, h: String, c: String, outputs: (h: String, c: String)?
  ) -> (features: String, h: String, c: String) {
    let net = network
    var x = mlpLayers(&m, input, encoder, encoderName)
    // The core's input.
    var parts = [x]
    if net.usePrevAction && net.distribution.isContinuous {
      // What the environment took: the action clipped to the bounds (infinite where unbounded).
      let d = net.distribution.actionWidth
      let high = m.constant(floats: net.actionHigh, dims: [d])
      let low = m.constant(floats: net.actionLow, dims: [d])
      parts.append(m.op("Max", m.op("Min", "prev_action", high), low))
    } else if net.usePrevAction {
      let heads = net.heads
      let onOff = m.constant(floats: [0, 1], dims: [2])
      for k in 0..<heads.count {
        var component = "prev_action"
        if heads.count > 1 {
          let stride = m.constant(ints: [Int64(heads.strides[k])], dims: [])
          let size = m.constant(ints: [Int64(heads.sizes[k])], dims: [])
          component = m.op("Mod", m.op("Div", component, stride), size)
        }
        let depth = m.constant(ints: [Int64(heads.sizes[k])], dims: [])
        parts.append(m.node("OneHot", [component, depth, onOff], [.int("axis", -1)])[0])
      }
    }
    if net.usePrevReward {
      parts.append(m.op("Unsqueeze", "prev_reward", m.constant(ints: [1], dims: [1])))
    }
    if parts.count > 1 { x = m.node("Concat", parts, [.int("axis", 1)])[0] }
    // The core.
    if let lstm = core as? LSTM {
      let gates = m.op(
        "Add", recurrentProjection(&m, x, lstm.weightIH, lstm.biasIH, coreName, "ih"),
        recurrentProjection(&m, h, lstm.weightHH, lstm.biasHH, coreName, "hh"))
      let g = m.node("Split", [gates], count: 4, [.int("axis", 1)])
      let i = m.op("Sigmoid", g[0])
      let f = m.op("Sigmoid", g[1])
      let cand = m.op("Tanh", g[2])
      let o = m.op("Sigmoid", g[3])
      let c2 = m.op("Add", m.op("Mul", f, c), m.op("Mul", i, cand), output: outputs?.c)
      let h2 = m.op("Mul", o, m.op("Tanh", c2), output: outputs?.h)
      return (h2, h2, c2)
    } else if let gru = core as? GRU {
      let gi = m.node(
        "Split", [recurrentProjection(&m, x, gru.weightIH, gru.biasIH, coreName, "ih")], count: 3, [.int("axis", 1)])
      let gh = m.node(
        "Split", [recurrentProjection(&m, h, gru.weightHH, gru.biasHH, coreName, "hh")], count: 3, [.int("axis", 1)])
      let r = m.op("Sigmoid", m.op("Add", gi[0], gh[0]))
      let z = m.op("Sigmoid", m.op("Add", gi[1], gh[1]))
      let cand = m.op("Tanh", m.op("Add", gi[2], m.op("Mul", r, gh[2])))
      let h2 = m.op("Add", cand, m.op("Mul", z, m.op("Sub", h, cand)), output: outputs?.h)
      return (h2, h2, "")
    }
    return (x, "", "")
  }

  /// The layers of `mlp` (named `name.0`, ...) over `x`, each followed by the
  /// MLP's activation; `x` itself when it has none (an encoder or post layers).
  private func mlpLayers(_ m: inout ONNXModel, _ x: String, _ mlp: MLP, _ name: String) -> String {
    var y = x
    for (i, layer) in mlp.layers.enumerated() {
      y = linearNode(&m, y, layer, "\(name).\(i)")
      y = activationNode(&m, y, mlp.activation)
    }
    return y
  }

  /// `x` through `activation`.
  private func activationNode(_ m: inout ONNXModel, _ x: String, _ activation: Activation) -> String {
    switch activation {
    case .tanh: return m.op("Tanh", x)
    case .relu: return m.op("Relu", x)
    case .linear: return x
    }
  }

  /// `x W^T + b` for a linear layer named `name` (its weights as constants).
  private func linearNode(_ m: inout ONNXModel, _ x: String, _ l: Linear, _ name: String, output: String? = nil)
    -> String
  {
    let w = m.constant(Self.torchName("\(name).weight"), floats: values(l.weight), dims: l.weight.shape)
    let b = m.constant(Self.torchName("\(name).bias"), floats: values(l.bias), dims: l.bias.shape)
    return m.node("Gemm", [x, w, b], outputs: output.map { [$0] }, [.int("transB", 1)])[0]
  }

  /// `x W^T + b` for one of a core's two projections.
  private func recurrentProjection(
    _ m: inout ONNXModel, _ x: String, _ w: ParameterSlot, _ b: ParameterSlot, _ core: String, _ side: String
  ) -> String {
    let wn = m.constant("\(core).weight_\(side)_l0", floats: values(w), dims: w.shape)
    let bn = m.constant("\(core).bias_\(side)_l0", floats: values(b), dims: b.shape)
    return m.node("Gemm", [x, wn, bn], [.int("transB", 1)])[0]
  }
}
