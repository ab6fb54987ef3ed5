import ArgumentParser
import HerdMath

/// `herd bench`: speed measurements, never timing assertions.
struct Bench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Measure Herd's speed on this machine.",
    discussion: """
      Each benchmark measures Herd beside a reference measured in the same run
      (interleaved rounds, medians), because these machines are shared and noisy.
      Report ratios, with the command and whether the other core was busy.
      """,
    subcommands: [BenchRecurrent.self, BenchConv.self, BenchLearner.self, BenchInference.self, BenchGemm.self, BenchWorker.self, BenchWire.self, BenchEnvHost.self]
  )
}
