import ArgumentParser
import HerdRL

/// `herd explain`: what the model sees, remembers and how batches are shaped.
struct ExplainCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "explain",
    abstract: "Print the model's data flow and every tensor shape for a config, in rollout and in training.",
    discussion: """
      Answers the recurring questions about recurrent policies for your config: what
      the LSTM sees, what it remembers, why batches are 2-D in rollout and 3-D in
      training, where padding goes, what each fragment bootstraps from, and the
      parameter count per tensor.

      Examples: herd explain --env MemoryChain-v0 --set lstm_use_prev_reward=true
                herd explain --env gym:MiniGrid-MemoryS7-v0
      """
  )

  @OptionGroup var options: ConfigOptions
  @OptionGroup var envHost: EnvHostOptions

  func run() throws {
    let config = try options.resolve()
    // A gym:ID environment is asked for its spaces through one env host.
    let (spec, agents, notes) = try EnvironmentFactory.describe(config, host: envHost.settings)
    print(try Explain.text(config, spec: spec, agents: agents, notes: notes))
  }
}
