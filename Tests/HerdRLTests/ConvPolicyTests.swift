import Foundation
import HerdEnvs
import HerdMath
import HerdNN
@testable import HerdRL
import HerdTestSupport
import Testing

/// Policies with a convolutional encoder over PixelMemory-v0's 16x16 uint8 frames.
@Suite struct ConvPolicyTests {
  /// A small pixel config: a conv stack over PixelMemory's frames, an LSTM(8).
  static func pixelConfig(core: String = "lstm", activation: Activation = .relu) -> TrainingConfig {
    var c = TrainingConfig.defaults(for: "PixelMemory-v0")
    c.num_envs_per_worker = 4
    c.max_seq_len = 4
    c.lstm_cell_size = 8
    c.use_lstm = core != "none"
    c.rnn_type = core == "gru" ? .gru : .lstm
    c.conv_filters = [[3, 4, 3], [4, 3, 2, 1]]
    c.conv_fc_hiddens = [6]
    c.conv_activation = activation
    c.env_config.length = 6
    return c
  }

  static func network(_ c: TrainingConfig) throws -> PolicyNetwork {
    try PolicyNetwork(config: c, spec: try EnvironmentFactory.spec(c))
  }

  /// The whole loss's gradient through heads, core, fully connected layers and the
  /// convolutions (tanh, so the loss is smooth) against central differences, on
  /// off-policy fragments of uint8 frames scaled by 1/255 inside the network.
  @Test(arguments: ["lstm", "none"])
  func wholeLossGradientMatchesFiniteDifferences(core: String) throws {
    var config = Self.pixelConfig(core: core, activation: .tanh)
    config.entropy_coeff = 0.05
    config.lstm_use_prev_action = true
    let net = try Self.network(config)
    #expect(net.convolution != nil && net.convPlan?.inputScale == 1 / 255)
    let worker = try RolloutWorker(config: config, network: net, workerID: 0, seed: 9)
    try ImpalaLossTests().checkWholeLossGradient(config: config, net: net, worker: worker, label: "conv \(core)")
  }

  /// The learner recomputes the worker's behaviour logits through the
  /// convolutions, from the raw frames the fragments hold.
  @Test(arguments: ["lstm", "gru", "none"])
  func learnerRecomputesTheBehaviourLogits(core: String) throws {
    var config = Self.pixelConfig(core: core)
    config.env_config.length = 9
    let net = try Self.network(config)
    let learner = Learner(config: config, network: net)
    for i in 0..<learner.parameters.count { learner.parameters.values[i] *= 3 }
    let worker = try RolloutWorker(config: config, network: net, workerID: 0, seed: 3)
    try worker.setWeights(learner.parameters.flatValues, version: 0)
    var fragments: [Fragment] = []
    for _ in 0..<30 { try worker.step(emit: { fragments.append($0) }, episode: { _ in }) }
    let (recomputed, recorded) = try recomputedAndRecordedLogits(
      net, learner.parameters, fragments: fragments, maxLength: config.max_seq_len)
    let c = closeness(recomputed, recorded, rtol: 1e-5, atol: 1e-5)
    #expect(c.ok, "\(core): \(c)")
    #expect(Set(recorded).count > 10, "the logits vary with the frames")
    // The fragments hold the raw frames (0...255) as bytes, not the scaled ones.
    #expect(fragments.contains { $0.observations.contains(255) })
    #expect(fragments.allSatisfy { $0.observations.isBytes })
  }

  @Test func presetsAndErrors() throws {
    let pixels = try EnvironmentFactory.spec(TrainingConfig.defaults(for: "PixelMemory-v0"))
    var c = TrainingConfig.defaults(for: "PixelMemory-v0")
    // auto: conv_filters set -> custom; a uint8 image without -> impala_shallow where
    // it fits (20 x 20 and up), else the flat encoder with a note saying why.
    #expect(try ConvPlan.make(config: c, observation: pixels.observation)?.name == "custom")
    #expect(ConvPlan.autoNote(config: c, observation: pixels.observation) == nil)
    c.conv_filters = []
    #expect(try ConvPlan.make(config: c, observation: pixels.observation) == nil)
    let note = try #require(ConvPlan.autoNote(config: c, observation: pixels.observation))
    #expect(note.contains("16x16x1") && note.contains("impala_shallow") && note.contains("flat"), "\(note)")
    func bytes(_ h: Int, _ w: Int, _ ch: Int) -> Space {
      .box(
        shape: [h, w, ch], dtype: "uint8", low: [Float](repeating: 0, count: h * w * ch),
        high: [Float](repeating: 255, count: h * w * ch))
    }
    for (h, w, expected) in [(19, 40, nil), (40, 19, nil), (20, 20, "impala_shallow"), (7, 7, nil)] as [(Int, Int, String?)] {
      #expect(try ConvPlan.make(config: c, observation: bytes(h, w, 3))?.name == expected, "\(h)x\(w)")
      #expect((ConvPlan.autoNote(config: c, observation: bytes(h, w, 3)) == nil) == (expected != nil), "\(h)x\(w)")
    }
    // Float images stay flat under auto, without a note.
    let floats = Space.box(shape: [7, 7, 3], dtype: "float32", low: [Float](repeating: 0, count: 147), high: [Float](repeating: 1, count: 147))
    #expect(try ConvPlan.make(config: c, observation: floats) == nil)
    #expect(ConvPlan.autoNote(config: c, observation: floats) == nil)
    // Asked for by name, impala_shallow over 16x16 (its second layer sees 3x3) is a
    // config error naming it.
    c.conv_encoder = .impala_shallow
    do {
      _ = try ConvPlan.make(config: c, observation: pixels.observation)
      Issue.record("impala_shallow over 16x16 was accepted")
    } catch let e as ConfigError {
      #expect(e.description.contains("impala_shallow") && e.description.contains("layer 2") && e.description.contains("3x3x16"), "\(e)")
    }
    // On an 84x84x4 uint8 image every preset fits, with the published shapes.
    let atari = Space.box(
      shape: [84, 84, 4], dtype: "uint8", low: [Float](repeating: 0, count: 84 * 84 * 4),
      high: [Float](repeating: 255, count: 84 * 84 * 4))
    let outputs: [ConvEncoderKind: (ImageShape, Int)] = [
      .impala_shallow: (ImageShape(height: 9, width: 9, channels: 32), 256),
      .impala_deep: (ImageShape(height: 11, width: 11, channels: 32), 256),
      .nature: (ImageShape(height: 7, width: 7, channels: 64), 512),
    ]
    c.conv_fc_hiddens = []  // the presets' own
    for (kind, (shape, fc)) in outputs {
      c.conv_encoder = kind
      let plan = try #require(try ConvPlan.make(config: c, observation: atari))
      var layout = ParameterLayout()
      let net = try ConvNet("conv", input: plan.image, specs: plan.layers, activation: plan.activation, layout: &layout)
      #expect(net.output == shape && plan.fcHiddens == [fc] && plan.inputScale == 1 / 255, "\(kind)")
    }
    // A preset over flat observations is an error that names the space.
    var flat = TrainingConfig.defaults(for: "CartPole-v1")
    #expect(try ConvPlan.make(config: flat, observation: try EnvironmentFactory.spec(flat).observation) == nil)
    flat.conv_encoder = .nature
    do {
      _ = try ConvPlan.make(config: flat, observation: try EnvironmentFactory.spec(flat).observation)
      Issue.record("a conv encoder over CartPole was accepted")
    } catch let e as ConfigError {
      #expect(e.description.contains("needs image observations") && e.description.contains("Box(4"), "\(e)")
    }
    // With the MeanStdFilter the filter normalises: no 1/255.
    c.conv_encoder = .impala_shallow
    c.observation_filter = .MeanStdFilter
    #expect(try ConvPlan.make(config: c, observation: atari)?.inputScale == 1)
    // Bad filters are named by validate.
    var bad = TrainingConfig.defaults(for: "PixelMemory-v0")
    bad.conv_filters = [[8, 4, 2], [16, 0, 1]]
    #expect(throws: ConfigError("conv_filters[1] = [16, 0, 1] is invalid: each filter is [channels, kernel, stride] or [channels, kernel, stride, padding], channels, kernel and stride at least 1, padding at least 0")) {
      try bad.validate()
    }
    bad.conv_filters = [[8, 4, 2]]
    bad.conv_encoder = .nature
    #expect(throws: ConfigError.self) { try bad.validate() }
    #expect(throws: ConfigError.self) {
      _ = try TrainingConfig.decode(json: Data(#"{"conv_encoder": "resnet"}"#.utf8), over: TrainingConfig(), source: "t")
    }
  }

  /// The value's own tower is for flat observations: over images the network
  /// refuses it by name, and a flat environment takes it.
  @Test func anOwnValueTowerIsRefusedOverImages() throws {
    var c = Self.pixelConfig()
    c.vf_share_layers = false
    do {
      _ = try Self.network(c)
      Issue.record("vf_share_layers = false over images was accepted")
    } catch let e as ConfigError {
      #expect(e.description.contains("vf_share_layers = false") && e.description.contains("PixelMemory-v0"), "\(e)")
    }
    var flat = TrainingConfig.defaults(for: "MemoryChain-v0")
    flat.vf_share_layers = false
    let net = try PolicyNetwork(config: flat, spec: try EnvironmentFactory.spec(flat))
    #expect(net.valueCore != nil && net.stateWidth == 2 * flat.lstm_cell_size)
  }

  /// The cue is in the pixels of the first frame only, on its side; the answer on
  /// the last step is rewarded by it.
  @Test func pixelMemoryShowsTheCueOnItsSide() {
    for seed in UInt64(0)..<20 {
      var env = PixelMemory(length: 3)
      let first = env.reset(seed: seed)
      let s = PixelMemory.size
      let white = (0..<(s * (s - 1))).filter { first[$0] == 255 }
      #expect(white.count == 16, "a 4x4 cue")
      #expect(white.allSatisfy { ($0 % s >= s / 2) == (env.context == 1) }, "the cue is on its side")
      #expect(first.allSatisfy { [0, 96, 255].contains($0) })
      let (second, o1) = env.step(0)
      #expect(!second.prefix(s * (s - 1)).contains(255) && o1.reward == 0 && !o1.done)
      _ = env.step(0)
      let (last, o3) = env.step(env.context)
      #expect(o3.reward == 1 && o3.terminated)
      #expect(last[(s - 1) * s..<(s * s)].allSatisfy { $0 == 255 }, "the clock row is white when the answer is due")
    }
  }
}
