import ArgumentParser
import HerdMath
import HerdRL

/// The `herd` command line: one binary, one subcommand per role.
@main
struct Herd: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "herd",
    abstract: "An IMPALA-style distributed actor-learner for recurrent policies.",
    discussion: """
      Herd trains recurrent (LSTM/GRU) policies with V-trace: rollout workers step
      environments and stream trajectory fragments to a learner over ZeroMQ.
      """,
    version: HerdVersion.string,
    subcommands: [Train.self, LearnerCommand.self, WorkerCommand.self, StatsCommand.self, KeysCommand.self, ExplainCommand.self, EvalCommand.self, ExportCommand.self, Bench.self]
  )
}
