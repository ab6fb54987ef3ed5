import HerdEnvs

/// Builds the environment a config names.
public enum EnvironmentFactory {
  /// A constructor for copy `i` of `config.env` (seeds are applied by the
  /// vectorised environment at reset).
  public static func maker(_ config: TrainingConfig) throws -> (Int) -> any Environment {
    let steps = config.env_config.max_episode_steps
    switch config.env {
    case "CartPole-v1": return { _ in CartPole(maxEpisodeSteps: steps) }
    case "StatelessCartPole-v1": return { _ in StatelessCartPole(maxEpisodeSteps: steps) }
    case "MemoryChain-v0":
      let length = config.env_config.length
      return { _ in MemoryChain(length: length) }
    default:
      throw ConfigError(
        "env = '\(config.env)' is invalid: known environments are \(TrainingConfig.environmentNames.joined(separator: ", "))"
      )
    }
  }

  /// Observation size and action count of `config.env`.
  public static func spaces(_ config: TrainingConfig) throws -> (observationSize: Int, actionCount: Int) {
    let env = try maker(config)(0)
    return (env.observationSpace.size, env.actionSpace.size)
  }
}
