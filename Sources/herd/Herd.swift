import ArgumentParser
import Foundation
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
    version: "\(HerdVersion.string) (built for \(BuildTarget.summary))",
    subcommands: [Train.self, SweepCommand.self, LearnerCommand.self, WorkerCommand.self, StatsCommand.self, KeysCommand.self, ExplainCommand.self, EvalCommand.self, ExportCommand.self, Bench.self]
  )

  /// Parses and runs, after naming a misspelt subcommand: ArgumentParser
  /// suggests options, but answers `herd trian` with "Unexpected argument".
  static func main() {
    // First: a binary built for a newer CPU names what this one lacks (not SIGILL).
    BuildTarget.exitUnlessThisCPURunsIt()
    if let message = unknownSubcommand(Array(CommandLine.arguments.dropFirst())) {
      writeWhole(2, message)
      Foundation.exit(ExitCode.validationFailure.rawValue)
    }
    main(nil)
  }

  /// The error for the first word that should name a subcommand and names none,
  /// or nil. Walks the command groups (`herd`, `herd bench`, `herd keys`: commands
  /// with subcommands and no arguments of their own) as far as `arguments` go;
  /// options and `help` end the walk, for ArgumentParser to handle.
  static func unknownSubcommand(_ arguments: [String]) -> String? {
    var command: any ParsableCommand.Type = Herd.self
    var path = ["herd"]
    for word in arguments {
      let children = command.configuration.subcommands
      guard !children.isEmpty, !word.hasPrefix("-"), word != "help" else { return nil }
      let names = children.map { $0._commandName }
      guard let i = names.firstIndex(of: word) else {
        let usage = path.joined(separator: " ")
        return """
          Error: Unknown command '\(word)'\(Spelling.hint(for: word, among: names)); \(usage) has: \(names.joined(separator: ", "))
          Usage: \(usage) <subcommand>
            See '\(usage) --help' for more information.

          """
      }
      command = children[i]
      path.append(word)
    }
    return nil
  }
}
