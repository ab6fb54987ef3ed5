import Foundation
import HerdEnvs
import HerdMath
import HerdNN
@testable import HerdRL
import Testing

/// The entropy bonus weight's linear decay (`entropy_coeff` to
/// `entropy_coeff_final` over `entropy_decay_env_steps`), driven by the env steps
/// trained as the learning rate's is.
@Suite struct ScheduleTests {
  /// A learner of `config` (seed 0) whose trained steps stand at `trained`.
  func learner(_ config: TrainingConfig, trained: Int) throws -> Learner {
    let spaces = try EnvironmentFactory.spaces(config)
    let net = PolicyNetwork(config: config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
    let learner = Learner(config: config, network: net)
    learner.trainedSteps = trained
    return learner
  }

  /// 8 fragments acted on with `learner`'s weights.
  func fragments(_ config: TrainingConfig, _ learner: Learner) throws -> [Fragment] {
    let worker = try RolloutWorker(config: config, network: learner.network, workerID: 0, seed: 4)
    try worker.setWeights(learner.parameters.flatValues, version: learner.version)
    var out: [Fragment] = []
    while out.count < 8 { try worker.step(emit: { out.append($0) }, episode: { _ in }) }
    return Array(out.prefix(8))
  }

  /// Part-way through the decay an update is the one a constant weight of the
  /// schedule's value there makes (the same parameters to the bit), not the
  /// starting weight's; past the decay the weight stays at its final value. Each
  /// step reports the weight it used, and its total loss is made with it.
  @Test func theEntropyWeightDecaysWithTheTrainedSteps() throws {
    var config = smallConfig("CartPole-v1")
    config.train_batch_size = 32
    config.entropy_coeff = 0.5  // large, so that the entropy term moves the weights visibly
    config.entropy_coeff_final = 0.02
    config.entropy_decay_env_steps = 1000
    try config.validate()
    let scheduled = try learner(config, trained: 250)
    let batch = try fragments(config, scheduled)
    let stats = try scheduled.step(batch)
    let expected = LinearDecay(initial: 0.5, final: 0.02, totalSteps: 1000).rate(at: 250)
    #expect(abs(expected - 0.38) < 1e-6)
    #expect(stats.entropyCoeff == expected)
    #expect(
      abs(stats.terms.total - (stats.terms.policy + config.vf_loss_coeff * stats.terms.baseline - expected * stats.terms.entropy))
        < 1e-5)

    var constant = config
    constant.entropy_coeff = expected
    constant.entropy_coeff_final = 0
    constant.entropy_decay_env_steps = 0
    let same = try learner(constant, trained: 250)
    #expect(try same.step(batch).entropyCoeff == expected)
    let identical = scheduled.parameters.flatValues == same.parameters.flatValues
    #expect(identical, "the update of the schedule's weight at 250 steps")

    var start = config
    start.entropy_decay_env_steps = 0
    start.entropy_coeff_final = 0
    let undecayed = try learner(start, trained: 250)
    #expect(try undecayed.step(batch).entropyCoeff == 0.5)
    let moved = zip(undecayed.parameters.flatValues, scheduled.parameters.flatValues).map { abs($0 - $1) }.max() ?? 0
    #expect(moved > 1e-6, "a constant 0.5 makes another update (largest difference \(moved))")

    let past = try learner(config, trained: 5000)
    #expect(try past.step(batch).entropyCoeff == 0.02)
    #expect(past.trainedSteps == 5000 + batch.reduce(0) { $0 + $1.length })
  }

  /// Bad schedules are refused by name, and a final value without its decay is
  /// named as having no effect (it used to be taken silently for the learning rate).
  @Test func badSchedulesAreNamed() throws {
    func error(_ change: (inout TrainingConfig) -> Void) -> String {
      var config = TrainingConfig.defaults(for: "CartPole-v1")
      change(&config)
      do {
        try config.validate()
        return "accepted"
      } catch { return "\(error)" }
    }
    #expect(error { $0.entropy_decay_env_steps = -1 } == "entropy_decay_env_steps = -1 is invalid: must be 0 (constant) or positive")
    #expect(
      error { $0.entropy_coeff_final = 0.001 }
        == "entropy_coeff_final = 0.001 is invalid: needs entropy_decay_env_steps (the env steps over which entropy_coeff decays to it, e.g. 10000000): without it entropy_coeff stays constant"
    )
    #expect(
      error { $0.lr_final = 0.0001 }
        == "lr_final = 0.0001 is invalid: needs lr_decay_env_steps (the env steps over which lr decays to it, e.g. 10000000): without it lr stays constant"
    )
    #expect(
      error {
        $0.entropy_coeff_final = -0.1
        $0.entropy_decay_env_steps = 100
      } == "entropy_coeff_final = -0.1 is invalid: must be 0 or positive")
    #expect(
      error {
        $0.entropy_coeff_final = 0.001
        $0.entropy_decay_env_steps = 100
      } == "accepted")
    // Other frameworks' schedule keys name Herd's.
    let rllib = try #require(TrainingConfig.otherNames.first { $0.name == "entropy_coeff_schedule" })
    #expect(rllib.here.contains("`entropy_decay_env_steps`"))
  }

  /// `herd explain` shows the decay in its loss line.
  @Test func explainShowsTheDecay() throws {
    var config = TrainingConfig.defaults(for: "CartPole-v1")
    let spaces = try EnvironmentFactory.spaces(config)
    func lossLine() -> String? {
      Explain.text(config, observationSize: spaces.observationSize, actionCount: spaces.actionCount)
        .split(separator: "\n").first { $0.contains("loss = pg") }.map(String.init)
    }
    #expect(lossLine()?.contains("- 0.01 x entropy") == true, "\(lossLine() ?? "none")")
    config.entropy_coeff_final = 0.001
    config.entropy_decay_env_steps = 2_000_000
    #expect(lossLine()?.contains("- (0.01 to 0.001 over 2,000,000 env steps) x entropy") == true, "\(lossLine() ?? "none")")
  }
}
