import Foundation
import HerdEnvs
import HerdMath
import HerdNN
@testable import HerdRL
import HerdTestSupport
import Testing

@Suite struct EvaluationTests {
  @Test func quotasSplitTheEpisodesEvenly() {
    #expect(Evaluation.quotas(episodes: 10, envs: 4) == [3, 3, 2, 2])
    #expect(Evaluation.quotas(episodes: 3, envs: 3) == [1, 1, 1])
    #expect(Evaluation.Summary([1, 2, 3, 6]) == Evaluation.Summary(mean: 3, std: (3.5).squareRoot(), min: 1, max: 6))
  }

  /// CartPole with a policy that prefers "push right" only slightly: greedy always
  /// pushes right and every episode ends within about 10 steps; sampled, it is a
  /// near-random policy (episodes about 22 steps on average). Each env runs exactly
  /// its share of the episodes.
  @Test func greedyTakesTheLikeliestActionAndEachEnvRunsItsShare() throws {
    var config = TrainingConfig.defaults(for: "CartPole-v1")
    config.use_lstm = false
    config.fcnet_hiddens = [4]
    let net = PolicyNetwork(config: config, observationSize: 4, actionCount: 2)
    var rng = SeededGenerator(seed: 1)
    let p = Parameters(layout: net.layout, rng: &rng)
    let weight = try #require(net.layout.entry(named: "pi.weight"))
    let bias = try #require(net.layout.entry(named: "pi.bias"))
    p.value(weight.slot).update(repeating: 0, count: weight.slot.count)
    p.value(bias.slot)[0] = 0
    p.value(bias.slot)[1] = 0.1
    func run(greedy: Bool) throws -> Evaluation {
      let envs = try EnvironmentFactory.make(config, count: 4, seed: 5)
      return try Evaluation.run(
        config: config, network: net, weights: p.flatValues, envs: envs, episodes: 30, greedy: greedy, seed: 2)
    }
    let greedy = try run(greedy: true)
    let sampled = try run(greedy: false)
    for r in [greedy, sampled] {
      #expect(r.complete && r.returns.count == 30 && r.lengths.count == 30)
      #expect((0..<4).map { i in r.envIndices.filter { $0 == i }.count } == [8, 8, 7, 7])
      #expect(zip(r.returns, r.lengths).allSatisfy { Int($0) == $1 }, "CartPole pays 1 per step")
    }
    #expect(greedy.lengthSummary.max <= 12, "always pushing right falls within ~10 steps: \(greedy.lengths)")
    #expect(sampled.lengthSummary.mean >= 15, "a near-random policy lasts ~22 steps: \(sampled.lengths)")
  }

  /// Ctrl-C while an environment hangs in its env host: the evaluation ends at
  /// once with the episodes it has (not after env_step_timeout_seconds).
  @Test(.enabled(if: envHostPython != nil || ProcessInfo.processInfo.environment["HERD_REQUIRE_TOOLS"] == "1"))
  func aStopEndsAnEvaluationWaitingForAHungEnvironment() throws {
    var config = TrainingConfig.defaults(for: "gym:herd_env.testing_envs:HerdTest/Slow-v0")
    config.env_config = TrainingConfig.EnvConfig(["slow_every": .number(25), "seconds": .number(600)])
    let envs = try EnvironmentFactory.make(
      config, count: 2, seed: 5, host: EnvHostSettings(python: envHostPython ?? "python3", processes: 1))
    defer { envs.close() }
    let net = PolicyNetwork(config: config, observationSize: 1, actionCount: 2)
    var rng = SeededGenerator(seed: 1)
    let weights = Parameters(layout: net.layout, rng: &rng).flatValues
    let stop = StopFlag()
    let start = Date()
    let result = try Evaluation.run(
      config: config, network: net, weights: weights, envs: envs, episodes: 100, greedy: false, seed: 2, stop: stop
    ) { _ in
      // Episodes are 10 steps: 2 each by the 20th step, before the hang at the 25th.
      DispatchQueue.global().asyncAfter(deadline: .now() + 1) { stop.set() }
    }
    #expect(-start.timeIntervalSinceNow < 10, "\(-start.timeIntervalSinceNow) s")
    #expect(!result.complete && result.returns.count == 4, "\(result.returns)")
  }

  /// `env_wrappers` reach the env host: TimeLimit's keyword argument ends every
  /// CartPole episode at 4 steps (a random policy lasts about 22), and MiniGrid's
  /// one-hot view gives the run a 7 x 7 x 20 image, which `auto` reads flat.
  @Test(.enabled(if: envHostPython != nil || ProcessInfo.processInfo.environment["HERD_REQUIRE_TOOLS"] == "1"))
  func envWrappersWrapTheHostsEnvironments() throws {
    let host = EnvHostSettings(python: envHostPython ?? "python3", processes: 1)
    var config = TrainingConfig.defaults(for: "gym:CartPole-v1")
    config.env_wrappers = [EnvWrapper("gymnasium.wrappers:TimeLimit", kwargs: ["max_episode_steps": .number(4)])]
    try config.validate()
    let net = PolicyNetwork(config: config, observationSize: 4, actionCount: 2)
    var rng = SeededGenerator(seed: 1)
    let weights = Parameters(layout: net.layout, rng: &rng).flatValues
    let envs = try EnvironmentFactory.make(config, count: 2, seed: 5, host: host)
    let r = try Evaluation.run(config: config, network: net, weights: weights, envs: envs, episodes: 6, greedy: false, seed: 2)
    #expect(r.lengths == [Int](repeating: 4, count: 6), "\(r.lengths)")
    var grid = TrainingConfig.defaults(for: "gym:MiniGrid-MemoryS7-v0")
    grid.env_wrappers = [EnvWrapper("minigrid.wrappers:OneHotPartialObsWrapper"), EnvWrapper("minigrid.wrappers:ImgObsWrapper")]
    let spec = try EnvironmentFactory.spec(grid, host: host)
    #expect(spec.observation.description == "Box(7x7x20, uint8)", "\(spec.observation)")
    #expect(try ConvPlan.make(config: grid, observation: spec.observation) == nil)
    #expect(ConvPlan.autoNote(config: grid, observation: spec.observation)?.contains("7x7x20") == true)
    // A wrapper the host cannot load is the host's error, naming it.
    grid.env_wrappers = [EnvWrapper("minigrid.wrappers:NoSuchWrapper")]
    do {
      _ = try EnvironmentFactory.spec(grid, host: host)
      Issue.record("a wrapper that does not exist was accepted")
    } catch {
      #expect("\(error)".contains("env_wrappers") && "\(error)".contains("NoSuchWrapper"), "\(error)")
    }
  }
}
