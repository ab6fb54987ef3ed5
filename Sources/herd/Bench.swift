import ArgumentParser
import HerdMath

/// `herd bench`: speed measurements, never timing assertions.
struct Bench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Measure Herd's speed on this machine.",
    subcommands: []
  )
}
