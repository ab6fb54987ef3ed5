import Foundation
import HerdEnvs
import HerdMath
import HerdNN
import HerdRL
import HerdStats
import Testing

@testable import HerdLearner

/// The evaluator's thread (`evaluation_interval_env_steps`): what it evaluates, that
/// it takes one set of weights at a time, and how it says it cannot evaluate.
@Suite struct EvaluatorTests {
  /// A run model adopted from `config`'s built-in environment, and weights for it.
  static func model(_ config: TrainingConfig) throws -> (RunModel, EnvSpec, [Float]) {
    let spec = VectorEnvironment(
      count: 1, seed: 0, id: config.env, config: config.env_config.json, make: try EnvironmentFactory.maker(config)
    ).spec
    let network = try PolicyNetwork(config: config, spec: spec)
    let model = RunModel { _ in ModelSpec(config: config, network: network) }
    _ = try model.admit(spec)
    var rng = SeededGenerator(seed: 3)
    return (model, spec, Parameters(layout: network.layout, rng: &rng).flatValues)
  }

  /// Waits (at most 60 s) for the evaluator's next outcomes.
  static func outcomes(_ evaluator: PeriodicEvaluator) -> [PeriodicEvaluator.Outcome] {
    for _ in 0..<600 {
      let done = evaluator.takeFinished()
      if !done.isEmpty { return done }
      Thread.sleep(forTimeInterval: 0.1)
    }
    return []
  }

  /// Each evaluation is the one `herd eval --seed 1000000 --greedy` runs (the same
  /// environments, seeds and episodes), and every evaluation meets the same
  /// episode starts: the same weights evaluated twice give the same returns.
  @Test func anEvaluationIsHerdEvalsAndRepeatsItsEpisodeStarts() throws {
    var config = TrainingConfig.defaults(for: "CartPole-v1")
    config.evaluation_interval_env_steps = 1000
    config.evaluation_episodes = 7
    config.num_envs_per_worker = 4
    let (model, spec, weights) = try Self.model(config)
    let evaluator = PeriodicEvaluator(config: config, model: model, envHost: EnvHostSettings())
    #expect(evaluator.envCount == 4)
    let stop = StopFlag()
    let thread = Thread { evaluator.run(stop: stop) { _ in } }
    thread.start()
    defer { stop.set() }
    let request = PeriodicEvaluator.Request(version: 5, weights: weights, envSteps: 1234, runSeconds: 2)
    #expect(evaluator.offer(request))
    #expect(!evaluator.offer(request), "one set of weights at a time")
    let first = Self.outcomes(evaluator)
    #expect(first.count == 1 && first.first?.failure == nil, "\(first.map(\.failure))")
    let result = try #require(first.first?.result)
    #expect(first.first?.request.version == 5 && first.first?.request.envSteps == 1234)
    #expect(result.returns.count == 7 && result.complete)
    // herd eval's own run of the same weights.
    #expect(PeriodicEvaluator.seed == 1_000_000)
    let envs = try EnvironmentFactory.make(config, count: 4, seed: 1_000_000_000)
    defer { envs.close() }
    let network = try PolicyNetwork(config: config, spec: spec)
    let alone = try Evaluation.run(
      config: config, network: network, weights: weights, envs: envs, episodes: 7, greedy: true, seed: 1_000_000)
    #expect(alone.returns == result.returns && alone.lengths == result.lengths)
    #expect(evaluator.offer(request), "free again")
    let second = try #require(Self.outcomes(evaluator).first?.result)
    #expect(second.returns == result.returns, "the same episode starts")
    // Sampled actions: a different evaluation of the same weights.
    config.evaluation_greedy = false
    let sampler = PeriodicEvaluator(config: config, model: model, envHost: EnvHostSettings())
    let samplerThread = Thread { sampler.run(stop: stop) { _ in } }
    samplerThread.start()
    #expect(sampler.offer(request))
    let sampled = try #require(Self.outcomes(sampler).first?.result)
    #expect(sampled.returns != result.returns, "greedy \(result.returns), sampled \(sampled.returns)")
  }

  /// Environments the learner cannot make, or that differ from the run's: one
  /// outcome that says why, and the thread ends (no more evaluations).
  @Test func environmentsItCannotMakeOrThatDifferAreSaid() throws {
    var config = TrainingConfig.defaults(for: "CartPole-v1")
    config.evaluation_interval_env_steps = 1000
    let (model, _, weights) = try Self.model(config)
    let request = PeriodicEvaluator.Request(version: 1, weights: weights, envSteps: 1000, runSeconds: 1)
    var other = config
    other.env_config.max_episode_steps = 200
    var gym = config
    gym.env = "gym:CartPole-v1"
    for (c, host, expected) in [
      (other, EnvHostSettings(), "the learner's own CartPole-v1 environments differ from the ones the run was built from: env_config"),
      (gym, EnvHostSettings(python: "/nonexistent/python", processes: 1), "cannot make 10 gym:CartPole-v1 environments in the learner's process"),
    ] {
      let evaluator = PeriodicEvaluator(config: c, model: model, envHost: host)
      let stop = StopFlag()
      let thread = JoinableThread(name: "evaluator") { evaluator.run(stop: stop) { _ in } }
      #expect(evaluator.offer(request))
      let outcome = Self.outcomes(evaluator)
      #expect(outcome.count == 1 && outcome.first?.result == nil)
      #expect(outcome.first?.failure?.contains(expected) == true, "\(String(describing: outcome.first?.failure))")
      thread.join()  // it ended by itself
      #expect(!stop.isSet)
    }
  }
}
