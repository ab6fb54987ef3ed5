import Foundation
import HerdEnvs
import HerdMath
import HerdNN
@testable import HerdRL
import HerdTestSupport
import Testing

/// `weight_init`: PyTorch's defaults, or orthogonal matrices with a gain per tower.
@Suite struct WeightInitTests {
  /// The largest deviation of `w`'s fewer vectors (rows or columns, the first
  /// dimension against the rest) from orthonormal times `gain`.
  static func orthogonalityError(_ w: [Float], shape: [Int], gain: Double) -> Double {
    let rows = shape.count > 1 ? shape[0] : 1
    let cols = w.count / rows
    func at(_ i: Int, _ k: Int) -> Double { Double(rows <= cols ? w[i * cols + k] : w[k * cols + i]) }
    var worst = 0.0
    for i in 0..<min(rows, cols) {
      for j in i..<min(rows, cols) {
        var dot = 0.0
        for k in 0..<max(rows, cols) { dot += at(i, k) * at(j, k) }
        worst = max(worst, abs(dot - (i == j ? gain * gain : 0)) / (gain * gain))
      }
    }
    return worst
  }

  /// Checks every entry of `net` under `weight_init = orthogonal` against the gain
  /// its tower should have (`gains` by the name's first part); biases are 0 and
  /// the observation filter and the free log std keep their constants.
  static func check(_ config: TrainingConfig, gains: [String: Double]) throws {
    let net = try PolicyNetwork(config: config, spec: try EnvironmentFactory.spec(config))
    var rng = SeededGenerator(seed: 5)
    let p = Parameters(layout: net.layout, rng: &rng)
    var checked = Set<String>()
    for e in net.layout.entries {
      let w = try p.tensor(named: e.name).scalars
      let tower = String(e.name.split(separator: ".")[0])
      let leaf = e.name.split(separator: ".").last!
      if tower == "obs_filter" || e.name == "pi.log_std" {
        #expect(w.allSatisfy { $0 == (e.name == "obs_filter.scale" ? 1 : 0) }, "\(e.name) changed")
      } else if leaf.hasPrefix("bias") {
        #expect(w.allSatisfy { $0 == 0 }, "\(e.name) is not zero")
      } else {
        let gain = try #require(gains[tower], "no gain expected for \(e.name)")
        let err = Self.orthogonalityError(w, shape: e.slot.shape, gain: gain)
        #expect(err < 1e-4, "\(e.name) \(e.slot.shape): \(err) from orthogonal with gain \(gain)")
        checked.insert(tower)
      }
    }
    #expect(checked == Set(gains.keys), "towers checked: \(checked.sorted())")
  }

  @Test func pixelsLSTM() throws {
    var c = ConvPolicyTests.pixelConfig(core: "lstm", activation: .relu)
    c.weight_init = .orthogonal
    c.lstm_use_prev_action = true
    try Self.check(c, gains: ["conv": 2.0.squareRoot(), "encoder": 2.0.squareRoot(), "core": 1, "pi": 0.01, "vf": 1])
  }

  @Test func flatTowersOfTheirOwn() throws {
    var c = TrainingConfig.defaults(for: "StatelessCartPole-v1")
    c.weight_init = .orthogonal
    c.fcnet_activation = .tanh
    c.observation_filter = .MeanStdFilter
    c.rnn_type = .gru
    c.vf_share_layers = false
    c.post_fcnet_hiddens = [5]
    try Self.check(
      c,
      gains: [
        "encoder": 5.0 / 3, "vf_encoder": 5.0 / 3, "core": 1, "vf_core": 1, "post": 2.0.squareRoot(),
        "vf_post": 2.0.squareRoot(), "pi": 0.01, "vf": 1,
      ])
  }

  /// log_std_init: the learned vector starts at it; with the log std per state the
  /// head's last D biases start at it, and every other value is the one the same
  /// seed gives without it (the head still takes all its draws), under either
  /// weight_init. A Pendulum-like Box with D = 3 (a 3-link arm's torques).
  @Test(arguments: [WeightInit.pytorch, .orthogonal], [true, false])
  func theLogStdStartsAtLogStdInit(weightInit: WeightInit, freeLogStd: Bool) throws {
    var config = pendulumConfig(core: "lstm", freeLogStd: freeLogStd)
    config.weight_init = weightInit
    func values(_ logStdInit: Float) throws -> (PolicyNetwork, [String: [Float]]) {
      var c = config
      c.log_std_init = logStdInit
      try c.validate()
      let spec = EnvSpec(
        id: "Arm3", config: "{}", observation: .box(low: [-1, -1], high: [1, 1]),
        action: .box(shape: [3], dtype: "float32", low: [-1, -2, -3], high: [1, 2, 3]))
      let net = try PolicyNetwork(config: c, spec: spec)
      var rng = SeededGenerator(seed: 11)
      let p = Parameters(layout: net.layout, rng: &rng)
      var all: [String: [Float]] = [:]
      for e in net.layout.entries { all[e.name] = try p.tensor(named: e.name).scalars }
      return (net, all)
    }
    let (net, base) = try values(0)
    let (_, moved) = try values(-1.5)
    #expect(net.distribution == .gaussian(dims: 3, freeLogStd: freeLogStd))
    #expect(Set(base.keys) == Set(moved.keys))
    for (name, b) in base {
      let m = try #require(moved[name])
      switch (name, freeLogStd) {
      case ("pi.log_std", true):
        #expect(b == [0, 0, 0] && m == [-1.5, -1.5, -1.5], "\(name): \(b) then \(m)")
      case ("pi.bias", false):
        // [mean | log std]: the means' biases as drawn, the log stds' at the setting.
        #expect(b.count == 6 && Array(m.prefix(3)) == Array(b.prefix(3)), "the means' biases: \(b) then \(m)")
        #expect(Array(b.suffix(3)) == [0, 0, 0] && Array(m.suffix(3)) == [-1.5, -1.5, -1.5], "\(b) then \(m)")
      default:
        #expect(m == b, "\(name) moved with log_std_init")
      }
    }
  }

  /// The default leaves PyTorch's initialisers as each layer declares them.
  @Test func pytorchIsTheDefault() throws {
    let c = TrainingConfig.defaults(for: "StatelessCartPole-v1")
    #expect(c.weight_init == .pytorch)
    let net = try PolicyNetwork(config: c, spec: try EnvironmentFactory.spec(c))
    for e in net.layout.entries {
      if case .orthogonal = e.initializer { Issue.record("\(e.name) is orthogonal by default") }
    }
    let loaded = try c.applying(overrides: ["weight_init=orthogonal"])
    #expect(loaded.weight_init == .orthogonal)
  }
}
