import ArgumentParser
import Foundation
import HerdRL
import HerdMath

/// Times `subject` and `floor` in alternating rounds (so both see the same machine
/// state), printing each round to stderr; returns the median timesteps/s of each.
func alternatingRounds(
  rounds: Int, seconds: Double, timesteps: Double, subject: () -> Void, floor: () -> Void
) -> (subject: Double, floor: Double) {
  var a: [Double] = []
  var b: [Double] = []
  subject()
  floor()
  for round in 1...rounds {
    a.append(timesteps / timePerCall(seconds: seconds, subject))
    b.append(timesteps / timePerCall(seconds: seconds, floor))
    printError("round \(round)/\(rounds): \(Int(a[round - 1])) vs floor \(Int(b[round - 1])) timesteps/s")
  }
  return (median(a), median(b))
}

/// Throws a ValidationError naming the first option below 1.
func requirePositive(_ options: [(String, Int)]) throws {
  for (name, v) in options where v < 1 { throw ValidationError("\(name) must be at least 1, got \(v)") }
}

/// The OpenBLAS line every benchmark prints.
func openBLASLine() -> String {
  "OpenBLAS: \(BLAS.configuration), threads \(BLAS.threadCount), OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "(unset)")"
}

/// The batch shape and timing options of the GEMM-floor benchmarks.
struct BatchShapeOptions: ParsableArguments {
  @Option(name: .customLong("sequences"), parsing: .unconditional, help: "Sequences (fragments) per batch (N).")
  var sequences = 32
  @Option(name: .customLong("time"), parsing: .unconditional, help: "Steps per sequence (T, max_seq_len).")
  var steps = 20
  @Option(parsing: .unconditional, help: "Input features per step (F).")
  var features = 67
  @Option(parsing: .unconditional, help: "Cell size (H, lstm_cell_size).")
  var hidden = 256
  @Option(help: "Recurrent cell.")
  var cell = RNNType.lstm
  @Option(parsing: .unconditional, help: "OpenBLAS threads for this run (set once at start-up).")
  var threads = 1
  @Option(parsing: .unconditional, help: "Alternating rounds; medians are reported.")
  var rounds = 7
  @Option(parsing: .unconditional, help: "Seconds per round per side.")
  var seconds = 0.5

  func validate() throws {
    try requirePositive([("--sequences", sequences), ("--time", steps), ("--features", features), ("--hidden", hidden), ("--threads", threads), ("--rounds", rounds)])
    guard seconds > 0 else { throw ValidationError("--seconds must be positive, got \(seconds)") }
  }
}

/// Records the GEMMs one call of `step` issues, then times `step` against those
/// products alone (alternating rounds) and prints both, in GFLOP/s of matrix
/// products, and their ratio on a line of its own.
func benchAgainstFloor<G: RandomNumberGenerator>(
  label: String, timesteps: Double, rounds: Int, seconds: Double, rng: inout G, step: () -> Void,
  unit: String = "timesteps"
) {
  let recorder = GemmRecorder()
  GemmRecorder.$current.withValue(recorder) { step() }
  let shapes = recorder.shapes
  let flops = shapes.reduce(0) { $0 + $1.flops }
  print("matrix products per step: \(shapes.count) GEMMs, \(String(format: "%.1f", flops / 1e6)) MFLOP for \(Int(timesteps)) \(unit)")
  let floor = GemmReplay(shapes: shapes, rng: &rng)
  let (rate, floorRate) = alternatingRounds(rounds: rounds, seconds: seconds, timesteps: timesteps, subject: step, floor: { floor.run() })
  let gflops = { (r: Double) in r / timesteps * flops / 1e9 }
  print(String(format: "%@: %.0f %@/s, %.1f GFLOP/s (median of %d rounds)", label, rate, unit, gflops(rate), rounds))
  print(String(format: "GEMM floor (the same %d products alone): %.0f %@/s, %.1f GFLOP/s", shapes.count, floorRate, unit, gflops(floorRate)))
  print(String(format: "ratio: %.2f", rate / floorRate))
}

extension RNNType: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
