import HerdNN
@testable import HerdRL
import Testing

@Suite struct ExplainTests {
  func lines(_ c: TrainingConfig) throws -> (String, PolicyNetwork) {
    let s = try EnvironmentFactory.spaces(c)
    return (Explain.text(c, observationSize: s.observationSize, actionCount: s.actionCount),
      PolicyNetwork(config: c, observationSize: s.observationSize, actionCount: s.actionCount))
  }

  /// The parameter table adds up to the model's real count, entry by entry.
  func checkParameters(_ text: String, _ net: PolicyNetwork) {
    for e in net.layout.entries {
      let row = text.split(separator: "\n").first { $0.hasPrefix("  \(e.name) ") }
      #expect(row?.hasSuffix(" \(e.slot.count)") == true, "\(e.name) row: \(row ?? "missing")")
    }
    #expect(text.contains("total") && text.hasSuffix(" \(net.layout.count)"))
  }

  @Test func lstmWithPreviousActionOnStatelessCartPole() throws {
    let (text, net) = try lines(TrainingConfig.defaults(for: "StatelessCartPole-v1"))
    #expect(text.contains("core input x_t               [z_t [64] ; onehot(a_{t-1}) [2]] = [66]"))
    // The core's line lines up with the others (its value at column 31).
    #expect(text.contains("\n  LSTM core, cell size 64      (h, c) = 2 x [64] per episode"))
    #expect(text.contains("\n  observation o_t              ["))
    #expect(text.contains("obs [32, 2] -> encoder [32, 64] -> x [32, 66] -> LSTM step with (h, c) [32, 64] each -> logits [32, 2], values [32]"))
    #expect(text.contains("obs [32, 21, 2]"))
    #expect(text.contains("state_in (h, c) [32, 64] each"))
    #expect(text.contains("previous reward: not an input"))
    #expect(text.contains("(o - running mean) / std"))
    #expect(text.contains("obs_filter.mean   [2]"))
    #expect(text.contains("trained (all but obs_filter.*") && net.trainableCount == net.layout.count - 4)
    checkParameters(text, net)
  }

  @Test func gruWithPreviousRewardAndOtherShapes() throws {
    var c = TrainingConfig.defaults(for: "MemoryChain-v0")
    c.lstm_use_prev_reward = true
    c.lstm_cell_size = 48
    c.max_seq_len = 10
    c.train_batch_size = 160
    c.num_envs_per_worker = 8
    c.fcnet_hiddens = [32, 16]
    let (text, net) = try lines(c)
    #expect(text.contains("GRU(48) policy"))
    #expect(text.contains("[3] -> 32 -> 16 = z_t [16]"))
    #expect(text.contains("[z_t [16] ; r_{t-1} [1]] = [17]"))
    // A GRU's shorter label is padded to the same column as the LSTM's.
    #expect(text.contains("\n  GRU core, cell size 48       h = 1 x [48] per episode"))
    #expect(text.contains("N = B / T = 16 fragments"))
    #expect(text.contains("obs [16, 11, 3]") && text.contains("state_in h [16, 48]") && text.contains("mask [16, 10]"))
    #expect(text.contains("x [8, 17] -> GRU step with h [8, 48] -> logits [8, 2]"))
    #expect(net.layout.entry(named: "core.weight_ih")?.slot.shape == [144, 17])
    checkParameters(text, net)
  }

  /// Post layers between the core and the heads: their shapes, the heads reading
  /// their output, and the rollout line passing through them.
  @Test func postLayersSitBetweenTheCoreAndTheHeads() throws {
    var c = TrainingConfig.defaults(for: "StatelessCartPole-v1")
    c.post_fcnet_hiddens = [32, 16]
    let (text, net) = try lines(c)
    #expect(text.contains("post layers (MLP, relu)      h_t [64] -> 32 -> 16 = u_t [16]"), "\(text)")
    #expect(text.contains("logits_t = W_pi u_t + b_pi [2],  value_t = w_v . u_t + b_v [1]   (u_t [16])"))
    #expect(text.contains("(h, c) [32, 64] each -> post [32, 16] -> logits [32, 2], values [32]"))
    #expect(net.layout.entry(named: "pi.weight")?.slot.shape == [2, 16])
    #expect(net.layout.entry(named: "post.0.weight")?.slot.shape == [32, 64])
    checkParameters(text, net)
  }

  @Test func feedForwardSaysNothingIsRemembered() throws {
    var c = TrainingConfig.defaults(for: "MemoryChain-v0")
    c.use_lstm = false
    let (text, net) = try lines(c)
    #expect(text.contains("feed-forward policy"))
    #expect(text.contains("nothing is remembered between steps"))
    #expect(text.contains("nothing is carried from one step to the next"))
    #expect(!text.contains("BPTT") && !text.contains("state_in"))
    #expect(!net.layout.entries.contains { $0.name.hasPrefix("core.") })
    checkParameters(text, net)
  }
}
